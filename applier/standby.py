"""Standby: the secondary holds everything that runs, by the rules of kubedr.holds; switchover brings it up.

The primary's value of each held field travels in an annotation, so a switchover needs nothing but the
secondary itself. The mode (standby, or active for all or some namespaces) lives in each source's `kubedr-mode`
record on the secondary, so every later commit is applied in the mode the operator chose; a switchover brings up
the objects of one source only (applier.owners).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubedr import holds
from kubedr.apierrors import ApiError, Conflict, Invalid, NotFound
from kubedr.applier.decode import MANAGED_LABEL
from kubedr.applier.holding import Holds
from kubedr.applier.inventory import Inventory
from kubedr.applier.owners import owner_of
from kubedr.applier.sources import MODE, Records
from kubedr.contract import ObjectRef
from kubedr.holds import HELD_LABEL, MISSING, REPLICAS_ANNOTATION, SUSPEND_ANNOTATION, VALUES_ANNOTATION
from kubedr.kubeapi import Cluster, Resource

log = logging.getLogger("kubedr.applier.standby")

MODE_CONFIGMAP = MODE  # one per source: Records.name(MODE_CONFIGMAP)
SWITCHOVER_MANAGER = "kubedr-switchover"

# (apiVersion, kind, plural): the workloads held at standby replicas before any other rule existed; a
# switchover lists them by kubedr's label alone (older appliers did not put the held label on them)
SCALED: tuple[tuple[str, str, str], ...] = (
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("apps/v1", "ReplicaSet", "replicasets"),
)
SUSPENDED: tuple[tuple[str, str, str], ...] = (
    ("batch/v1", "CronJob", "cronjobs"),
    ("batch/v1", "Job", "jobs"),
)
_LEGACY = {(api.rpartition("/")[0], kind) for api, kind, _ in SCALED + SUSPENDED}


@dataclass
class Mode:
    """Standby everywhere, active everywhere, or standby except some active namespaces."""

    active: bool = False
    active_namespaces: set[str] = field(default_factory=set)
    replicas: int = 0
    namespace_replicas: dict[str, int] = field(default_factory=dict)
    recorded: bool = False  # read from the secondary (not a default)
    exempt: dict[ObjectRef, str] = field(default_factory=dict)  # serve webhooks/APIs: never held (why)
    holds: Holds = field(default_factory=Holds)  # the rules: which field of which kind is held

    def is_active(self, namespace: str) -> bool:
        return self.active or namespace in self.active_namespaces

    @property
    def name(self) -> str:
        if self.active:
            return "active"
        return "standby" + (f" (active: {' '.join(sorted(self.active_namespaces))})"
                            if self.active_namespaces else "")

    def fingerprint(self) -> str:
        return json.dumps([self.active, sorted(self.active_namespaces), self.replicas,
                           self.namespace_replicas] + ([sorted(r.path for r in self.exempt)] if self.exempt else [])
                          + [self.holds.fingerprint()], sort_keys=True)

    def standby_replicas(self, namespace: str) -> int:
        return self.namespace_replicas.get(namespace, self.replicas)


def _controlled(meta: dict[str, Any]) -> bool:
    return any(o.get("controller") for o in meta.get("ownerReferences") or [])


def hold(obj: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """The object as applied in this mode: its kind's rule (kubedr.holds) sets the held field to the standby
    value, and the primary's value goes into an annotation for the switchover."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return obj
    ns = meta.get("namespace") or ""
    if mode.is_active(ns):
        return obj
    api_version = str(obj.get("apiVersion", ""))
    group, kind = api_version.rpartition("/")[0], str(obj.get("kind"))
    if mode.exempt and ObjectRef(group, kind, ns, str(meta.get("name"))) in mode.exempt:
        return obj  # serves a webhook or an aggregated API: the cluster itself needs it up
    rule = mode.holds.rule(group, kind, api_version)
    if rule is None or (rule.unowned_only and _controlled(meta)):
        return obj
    value = mode.standby_replicas(ns) if rule.replicas else rule.value
    if mode.holds.refusal(rule, api_version, value):
        return obj
    tokens = rule.tokens
    primary = holds.get(obj, tokens)
    keep = rule.keep
    if keep == REPLICAS_ANNOTATION:
        kept = str(primary) if primary is not MISSING else ("1" if "." not in group else "")  # the API's default
    elif keep == SUSPEND_ANNOTATION:
        kept = "true" if primary is True else "false"
    else:
        kept = json.dumps({rule.pointer: None if primary is MISSING else primary}, sort_keys=True)
    if not holds.put(obj, tokens, value):
        mode.holds.say(f"standby: {rule.name} {meta.get('name')}: {rule.pointer} is not a field of a mapping; "
                       "applied as it is")
        return obj
    meta = obj["metadata"]
    meta["annotations"] = dict(meta.get("annotations") or {}, **{keep: kept})
    meta["labels"] = dict(meta.get("labels") or {}, **{HELD_LABEL: "true"})
    return obj


# ---- the recorded mode -----------------------------------------------------------------------------------

def read_mode(cluster: Cluster, records: Records, base: Mode | None = None) -> Mode:
    """The mode recorded for a source (standby when nothing is recorded), with base's replica settings."""
    mode = Mode(replicas=base.replicas, namespace_replicas=dict(base.namespace_replicas),
                holds=base.holds) if base else Mode()
    data = records.get(cluster, MODE_CONFIGMAP)
    mode.recorded = data is not None
    data = data or {}
    mode.active = data.get("mode") == "active"
    mode.active_namespaces = set((data.get("activeNamespaces") or "").split())
    return mode


def record_mode(cluster: Cluster, mode: Mode, why: str, records: Records) -> None:
    """Write a source's mode so every later round (and `kubedr status`) follows it."""
    records.put(cluster, MODE_CONFIGMAP, {
        "mode": "active" if mode.active else "standby",
        "activeNamespaces": " ".join(sorted(mode.active_namespaces)),
        "changedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reason": why,
    })


# ---- Jobs that left the repo ------------------------------------------------------------------------------

def retire_jobs(cluster: Cluster, refs: list[ObjectRef], mode: Mode, source: str) -> list[str]:
    """Mark held Jobs of this source that left the repo (done on the primary) primary-suspend=true: a switchover
    never runs them."""
    marked: list[str] = []
    for ref in refs:
        if (ref.group, ref.kind) != ("batch", "Job") or mode.is_active(ref.namespace):
            continue
        path = f"/apis/batch/v1/namespaces/{ref.namespace}/jobs/{ref.name}"
        try:
            live = cluster.request("GET", path)
        except NotFound:
            continue
        meta = live.get("metadata") or {}
        if ((meta.get("annotations") or {}).get(SUSPEND_ANNOTATION) != "false"
                or (meta.get("labels") or {}).get(MANAGED_LABEL) != "true" or owner_of(live) not in ("", source)):
            continue
        cluster.request("PATCH", path, {"metadata": {"annotations": {SUSPEND_ANNOTATION: "true"}}},
                        {"fieldManager": "kubedr-standby"}, "application/merge-patch+json")
        marked.append(ref.display)
    return marked


# ---- switchover ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Held:
    """A held object found on the secondary and the JSON patch that gives it the primary's values back."""

    ref: ObjectRef
    resource: Resource
    live: dict[str, Any]
    ops: list[dict[str, Any]]

    def changes(self) -> list[str]:
        """`replicas 0 -> 3`, one per field (spec fields without `spec.`)."""
        out = []
        for op in self.ops:
            tokens = holds.pointer_tokens(op["path"])
            name = f"annotation {tokens[2]}" if tokens[:2] == ("metadata", "annotations") else ".".join(tokens[1:])
            now = holds.get(self.live, tokens)
            new = json.dumps(op["value"]) if op["op"] == "add" else "(removed)"
            out.append(f"{name} {'(none)' if now is MISSING else json.dumps(now)} -> {new}")
        return out


def restore_ops(live: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch that puts the primary's values (from kubedr's annotations) back; ValueError if unreadable."""
    ann = (live.get("metadata") or {}).get("annotations") or {}
    wanted: dict[str, Any] = {}
    if REPLICAS_ANNOTATION in ann:
        raw = ann[REPLICAS_ANNOTATION]
        wanted["/spec/replicas"] = None if raw == "" else int(raw)
    if SUSPEND_ANNOTATION in ann:
        wanted["/spec/suspend"] = ann[SUSPEND_ANNOTATION] == "true"
    if VALUES_ANNOTATION in ann:
        values = json.loads(ann[VALUES_ANNOTATION])
        if not isinstance(values, dict):
            raise ValueError(f"{VALUES_ANNOTATION}: expected a JSON object")
        for pointer, value in values.items():
            wanted[holds.check_pointer(pointer, VALUES_ANNOTATION)] = value
    ops = []
    for pointer, value in wanted.items():
        now = holds.get(live, holds.pointer_tokens(pointer))
        if value is None:
            if now is not MISSING:
                ops.append({"op": "remove", "path": pointer})
        elif now != value or now is MISSING:
            ops.append({"op": "add", "path": pointer, "value": value})
    return ops


def _kinds(applied: set[ObjectRef]) -> list[tuple[str, str, bool]]:
    """(group, kind, legacy) to look at: the five kinds held since the start (found by kubedr's label alone),
    and every other kind the source applied (found by the held label)."""
    kinds = {(r.group, r.kind) for r in applied}
    return [(g, k, True) for g, k in sorted(_LEGACY)] + [(g, k, False) for g, k in sorted(kinds - _LEGACY)]


def _list(cluster: Cluster, resource: Resource, namespace: str | None, legacy: bool) -> list[dict[str, Any]]:
    selector = f"{MANAGED_LABEL}=true" + ("" if legacy else f",{HELD_LABEL}=true")
    if namespace and not resource.namespaced:
        return []
    try:
        items = cluster.request("GET", resource.path(namespace or ""), query={"labelSelector": selector})
    except NotFound:
        return []
    return list(items.get("items") or [])


def targets(cluster: Cluster, namespaces: list[str] | None, failures: list[str], records: Records) -> Iterator[Held]:
    """Every held object of the source in these namespaces (all when None); unreadable annotations go to failures.
    The source's own: labelled with its name, or (applied before sources) unlabelled and in its inventory."""
    scopes: list[str | None] = list(namespaces) if namespaces else [None]  # None: every namespace
    applied = Inventory(cluster, records).load().refs
    for group, kind, legacy in _kinds(applied):
        resource = cluster.resource_of(ObjectRef(group, kind, "", ""))
        if resource is None:
            continue
        for ns in scopes:
            for obj in _list(cluster, resource, ns, legacy):
                meta = obj.get("metadata") or {}
                ref = ObjectRef(group, kind, meta.get("namespace") or "", meta.get("name") or "")
                owner = owner_of(obj)
                if owner != records.source and (owner or ref not in applied):
                    continue  # another source's
                try:
                    ops = restore_ops(obj)
                except (ValueError, holds.HoldError) as exc:
                    failures.append(f"{ref.display}: bad kubedr annotation: {exc}")
                    continue
                if ops or HELD_LABEL in (meta.get("labels") or {}):
                    yield Held(ref, resource, obj, ops)


RACED_TRIES = 3  # a held object an applier changed meanwhile is read again and patched afresh this often


@dataclass
class Switched:
    """What a switchover did: the objects it brought up (their held fields back at the primary's values)."""

    brought_up: list[ObjectRef] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def switchover(cluster: Cluster, records: Records, namespaces: list[str] | None = None,
               concurrency: int = 16) -> Switched:
    """Give every held object of the source the primary's values back (replicas, suspend, switches); safe to
    repeat."""
    done = Switched()

    def bring_up(held: Held) -> None:
        path = held.resource.path(held.ref.namespace, held.ref.name)
        for attempt in range(RACED_TRIES):
            if not held.ops:
                break  # nothing held (left): a running applier may have brought it up already
            try:
                cluster.request("PATCH", path, held.ops, {"fieldManager": SWITCHOVER_MANAGER},
                                "application/json-patch+json")
                break
            except (Invalid, Conflict) as exc:  # changed since it was read (a running applier): read it again
                if attempt == RACED_TRIES - 1:
                    done.failures.append(f"{held.ref.display}: {exc}")
                    return
            except ApiError as exc:
                done.failures.append(f"{held.ref.display}: {exc}")
                return
            try:
                live = cluster.request("GET", path)
                held = Held(held.ref, held.resource, live, restore_ops(live))
            except (ApiError, ValueError, holds.HoldError) as exc:
                done.failures.append(f"{held.ref.display}: {exc}")
                return
        done.brought_up.append(held.ref)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="kubedr-switchover") as pool:
        list(pool.map(bring_up, targets(cluster, namespaces, done.failures, records)))
    return done


def plan(cluster: Cluster, records: Records, namespaces: list[str] | None = None) -> list[str]:
    """What a switchover of the source would change, one line per object (nothing is changed)."""
    failures: list[str] = []
    out = [f"{held.ref.kind} {held.ref.namespace}/{held.ref.name}".replace(" /", " ") + f": {'; '.join(held.changes())}"
           for held in targets(cluster, namespaces, failures, records) if held.ops]
    return out + [f"(cannot) {f}" for f in failures]
