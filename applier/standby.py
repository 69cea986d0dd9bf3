"""Standby: the secondary holds every workload at standby replicas, ready; switchover brings them up.

The primary's replica count travels in an annotation, so a switchover needs nothing but the secondary
itself. The mode (standby, or active for all or some namespaces) lives in the `kubedr-mode` ConfigMap on
the secondary, so every later commit is applied in the mode the operator chose.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubedr.apierrors import ApiError, NotFound
from kubedr.applier.decode import MANAGED_LABEL
from kubedr.applier.state import get_state, put_state
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.applier.standby")

REPLICAS_ANNOTATION = "kubedr.io/primary-replicas"
SUSPEND_ANNOTATION = "kubedr.io/primary-suspend"
MODE_CONFIGMAP = "kubedr-mode"

# (apiVersion, kind, plural): held at standby replicas (ReplicaSets only when no controller owns them)
SCALED: tuple[tuple[str, str, str], ...] = (
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("apps/v1", "ReplicaSet", "replicasets"),
)
# (apiVersion, kind, plural): applied with spec.suspend=true (Jobs only when no controller owns them: a
# standalone Job, such as a database migration, would otherwise run in the DR region at once)
SUSPENDED: tuple[tuple[str, str, str], ...] = (
    ("batch/v1", "CronJob", "cronjobs"),
    ("batch/v1", "Job", "jobs"),
)
_SCALED_KINDS = {("apps", kind) for _, kind, _ in SCALED}
_SUSPENDED_KINDS = {("batch", kind) for _, kind, _ in SUSPENDED}
# kinds a controller makes from its owner: held only when they stand alone
_HELD_ONLY_UNOWNED = {"ReplicaSet", "Job"}


@dataclass
class Mode:
    """Standby everywhere, active everywhere, or standby except some active namespaces."""

    active: bool = False
    active_namespaces: set[str] = field(default_factory=set)
    replicas: int = 0
    namespace_replicas: dict[str, int] = field(default_factory=dict)
    recorded: bool = False  # read from the secondary (not a default)
    exempt: dict[ObjectRef, str] = field(default_factory=dict)  # serve webhooks/APIs: never held (why)

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
                           self.namespace_replicas] + ([sorted(r.path for r in self.exempt)] if self.exempt else []),
                          sort_keys=True)

    def standby_replicas(self, namespace: str) -> int:
        return self.namespace_replicas.get(namespace, self.replicas)


def _controlled(meta: dict[str, Any]) -> bool:
    return any(o.get("controller") for o in meta.get("ownerReferences") or [])


def hold(obj: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """The object as applied in this mode: scaled workloads at standby replicas, CronJobs and Jobs suspended."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    if mode.is_active(ns):
        return obj
    if mode.exempt and ObjectRef(str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind")), ns,
                                 str(meta.get("name"))) in mode.exempt:
        return obj  # serves a webhook or an aggregated API: the cluster itself needs it up
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    if kind in _HELD_ONLY_UNOWNED and _controlled(meta):
        return obj
    if (group, kind) in _SCALED_KINDS:
        primary = spec.get("replicas", 1)
        meta.setdefault("annotations", {})
        meta["annotations"] = dict(meta["annotations"] or {}, **{REPLICAS_ANNOTATION: str(primary)})
        spec["replicas"] = mode.standby_replicas(ns)
    elif (group, kind) in _SUSPENDED_KINDS:
        meta["annotations"] = dict(meta.get("annotations") or {},
                                   **{SUSPEND_ANNOTATION: "true" if spec.get("suspend") else "false"})
        spec["suspend"] = True
    obj["metadata"] = meta
    return obj


# ---- the recorded mode -----------------------------------------------------------------------------------

def read_mode(cluster: Cluster, base: Mode | None = None) -> Mode:
    """The mode recorded on the secondary (standby when nothing is recorded), with base's replica settings."""
    mode = Mode(replicas=base.replicas, namespace_replicas=dict(base.namespace_replicas)) if base else Mode()
    data = get_state(cluster, MODE_CONFIGMAP)
    mode.recorded = data is not None
    data = data or {}
    mode.active = data.get("mode") == "active"
    mode.active_namespaces = set((data.get("activeNamespaces") or "").split())
    return mode


def record_mode(cluster: Cluster, mode: Mode, why: str) -> None:
    """Write the mode so every later round (and `kubedr status`) follows it."""
    put_state(cluster, MODE_CONFIGMAP, {
        "mode": "active" if mode.active else "standby",
        "activeNamespaces": " ".join(sorted(mode.active_namespaces)),
        "changedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reason": why,
    })


# ---- Jobs that left the repo ------------------------------------------------------------------------------

def retire_jobs(cluster: Cluster, refs: list[ObjectRef], mode: Mode) -> list[str]:
    """Mark held Jobs that left the repo (done on the primary) primary-suspend=true: a switchover never runs them."""
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
                or (meta.get("labels") or {}).get(MANAGED_LABEL) != "true"):
            continue
        cluster.request("PATCH", path, {"metadata": {"annotations": {SUSPEND_ANNOTATION: "true"}}},
                        {"fieldManager": "kubedr-standby"}, "application/merge-patch+json")
        marked.append(ref.display)
    return marked


# ---- switchover ------------------------------------------------------------------------------------------

def _list(cluster: Cluster, api_version: str, plural: str, namespace: str | None) -> list[dict[str, Any]]:
    base = "/apis/" + api_version + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    try:
        return cluster.request("GET", base, query={"labelSelector": f"{MANAGED_LABEL}=true"}).get("items") or []
    except NotFound:
        return []


def _patch(cluster: Cluster, api_version: str, plural: str, ns: str, name: str, spec: dict[str, Any]) -> None:
    path = f"/apis/{api_version}/namespaces/{ns}/{plural}/{name}"
    cluster.request("PATCH", path, {"spec": spec}, {"fieldManager": "kubedr-switchover"},
                    "application/merge-patch+json")


Held = tuple[str, str, str, dict[str, Any], dict[str, Any]]  # api_version, plural, kind, live, spec to patch


def _targets(cluster: Cluster, namespaces: list[str] | None, failures: list[str]) -> Iterator[Held]:
    """(api_version, plural, kind, live, spec to patch) for every held object; bad annotations go to failures."""
    scopes: list[str | None] = list(namespaces) if namespaces else [None]  # None: every namespace
    for ns in scopes:
        for api_version, kind, plural in SCALED + SUSPENDED:
            for obj in _list(cluster, api_version, plural, ns):
                meta = obj["metadata"]
                ann = meta.get("annotations") or {}
                spec: dict[str, Any] | None = None
                if ("batch", kind) in _SUSPENDED_KINDS:
                    if SUSPEND_ANNOTATION not in ann:
                        continue
                    spec = {"suspend": ann[SUSPEND_ANNOTATION] == "true"}
                elif REPLICAS_ANNOTATION in ann:
                    try:
                        spec = {"replicas": int(ann[REPLICAS_ANNOTATION])}
                    except ValueError:
                        failures.append(f"{kind} {meta['namespace']}/{meta['name']}: bad {REPLICAS_ANNOTATION}")
                        continue
                if spec is not None:
                    yield api_version, plural, kind, obj, spec


def switchover(cluster: Cluster, namespaces: list[str] | None = None) -> tuple[int, list[str]]:
    """Bring workloads up to the primary's replicas, CronJobs and Jobs to the primary's suspend; (changed, failed)."""
    changed, failures = 0, list[str]()
    for api_version, plural, kind, obj, spec in _targets(cluster, namespaces, failures):
        meta = obj["metadata"]
        try:
            _patch(cluster, api_version, plural, meta["namespace"], meta["name"], spec)
            changed += 1
        except ApiError as exc:
            failures.append(f"{kind} {meta['namespace']}/{meta['name']}: {exc}")
    return changed, failures


def plan(cluster: Cluster, namespaces: list[str] | None = None) -> list[str]:
    """What a switchover would change, one line per object (nothing is changed)."""
    failures: list[str] = []
    out = []
    for _, _, kind, obj, spec in _targets(cluster, namespaces, failures):
        meta, now = obj["metadata"], obj.get("spec") or {}
        key = next(iter(spec))
        out.append(f"{kind} {meta['namespace']}/{meta['name']}: {key} {now.get(key)} -> {spec[key]}")
    return out + [f"(cannot) {f}" for f in failures]
