"""Standby holds as data: which field of which kind a standby switches off, to what value, and why.

Three sources, in this order of precedence for a kind:
  1. the repo policy's `standby:` section (rules a person wrote for their operators);
  2. BUILTIN: Kubernetes' own workloads and the switches of well-known operators, each row saying why;
  3. every custom resource whose CRD declares a scale subresource: held at standby replicas through its
     `specReplicasPath` (read from the CRD, so no operator needs to be known in advance).
The applier holds objects by these rules and keeps the primary's value in an annotation, so a switchover
needs nothing but the secondary; `kubedr export --explain` and the applier's log report them per kind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubedr import policyfile

REPLICAS_ANNOTATION = "kubedr.io/primary-replicas"  # the primary's spec.replicas (a count; "" when it had none)
SUSPEND_ANNOTATION = "kubedr.io/primary-suspend"  # the primary's spec.suspend ("true" / "false")
VALUES_ANNOTATION = "kubedr.io/primary-values"  # any other held field: JSON {pointer: value, null when absent}
HELD_LABEL = "kubedr.io/held"  # on every object a rule holds: `kubedr switchover` lists kinds by it
MAX_POLICY_RULES = 200
MAX_POINTER = 256


class HoldError(ValueError):
    """A standby rule that cannot be used; one line naming it."""


@dataclass(frozen=True)
class Rule:
    """One kind held on a standby: the field (a JSON pointer), its standby value, and why."""

    group: str
    kind: str
    pointer: str  # /spec/replicas, /metadata/annotations/cnpg.io~1hibernation
    value: Any = None  # the standby value (ignored when replicas)
    replicas: bool = False  # the standby value is the standby replicas of the object's namespace
    why: str = ""
    source: str = "built-in"  # built-in | policy | scale subresource
    unowned_only: bool = False  # a controller's own objects (a Deployment's ReplicaSets) follow their owner
    off: bool = False  # a policy rule that holds nothing: the kind is applied as it is

    @property
    def tokens(self) -> tuple[str, ...]:
        return pointer_tokens(self.pointer)

    @property
    def keep(self) -> str:
        """The annotation that keeps the primary's value."""
        if self.replicas and self.pointer == "/spec/replicas":
            return REPLICAS_ANNOTATION
        if self.pointer == "/spec/suspend" and self.value is True and not self.replicas:
            return SUSPEND_ANNOTATION
        return VALUES_ANNOTATION

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def switch(self) -> str:
        """`spec.replicas at standby replicas`, `annotation cnpg.io/hibernation=on`."""
        tokens = self.tokens
        if tokens[:2] == ("metadata", "annotations"):
            return f"annotation {tokens[2]}={self.value}"
        field = ".".join(tokens)
        return f"{field} at standby replicas" if self.replicas else f"{field}={json.dumps(self.value)}"

    def describe(self) -> str:
        return "not held (policy)" if self.off else f"{self.switch()} ({self.source})"


REPLICAS: Any = object()  # in BUILTIN: the standby replicas (--standby-replicas, per namespace)


def _row(group: str, kind: str, pointer: str, value: Any, why: str, unowned_only: bool = False) -> Rule:
    replicas = value is REPLICAS
    return Rule(group, kind, pointer, None if replicas else value, replicas, why, "built-in", unowned_only)


_FLUX_SOURCE = "Flux: a suspended source is not fetched (`flux suspend source ...`); its consumers stay still"

# (group, kind, switch, standby value, why). A row wins over the kind's scale subresource (Prometheus, Cluster).
BUILTIN: tuple[Rule, ...] = (
    _row("apps", "Deployment", "/spec/replicas", REPLICAS, "Kubernetes: its ReplicaSet runs spec.replicas Pods"),
    _row("apps", "StatefulSet", "/spec/replicas", REPLICAS,
         "Kubernetes: Pods <name>-0 ... follow spec.replicas; their claims are kept"),
    _row("apps", "ReplicaSet", "/spec/replicas", REPLICAS,
         "Kubernetes: runs spec.replicas Pods; a Deployment's ReplicaSets follow their Deployment", unowned_only=True),
    _row("batch", "CronJob", "/spec/suspend", True, "Kubernetes: a suspended CronJob starts no Job"),
    _row("batch", "Job", "/spec/suspend", True,
         "Kubernetes: a suspended Job runs no Pod (a migration would run in both regions); a CronJob's Jobs "
         "follow their CronJob", unowned_only=True),
    _row("kustomize.toolkit.fluxcd.io", "Kustomization", "/spec/suspend", True,
         "Flux: a suspended Kustomization is not reconciled (`flux suspend kustomization`); on a standby it would "
         "apply its source a second time"),
    _row("helm.toolkit.fluxcd.io", "HelmRelease", "/spec/suspend", True,
         "Flux: a suspended HelmRelease is neither installed, upgraded nor rolled back (`flux suspend helmrelease`)"),
    _row("source.toolkit.fluxcd.io", "GitRepository", "/spec/suspend", True, _FLUX_SOURCE),
    _row("source.toolkit.fluxcd.io", "OCIRepository", "/spec/suspend", True, _FLUX_SOURCE),
    _row("source.toolkit.fluxcd.io", "HelmRepository", "/spec/suspend", True, _FLUX_SOURCE),
    _row("source.toolkit.fluxcd.io", "Bucket", "/spec/suspend", True, _FLUX_SOURCE),
    _row("argoproj.io", "CronWorkflow", "/spec/suspend", True,
         "Argo Workflows: `suspend: true` - Workflow scheduling will not occur"),
    _row("velero.io", "Schedule", "/spec/paused", True,
         "Velero (1.10+): a paused Schedule creates no new backup; both regions would back up into one location"),
    _row("keda.sh", "ScaledObject", "/metadata/annotations/autoscaling.keda.sh~1paused-replicas", "0",
         "KEDA: scales the target to this count and stops autoscaling until the annotation is removed; its HPA "
         "would otherwise scale the held Deployment up"),
    _row("keda.sh", "ScaledJob", "/metadata/annotations/autoscaling.keda.sh~1paused", "true",
         "KEDA: a paused ScaledJob creates no Job"),
    _row("monitoring.coreos.com", "Prometheus", "/spec/replicas", REPLICAS,
         "prometheus-operator: its scale subresource moves spec.shards (one StatefulSet per shard, at least 1); "
         "spec.replicas is the Pods of each shard"),
    _row("monitoring.coreos.com", "PrometheusAgent", "/spec/replicas", REPLICAS,
         "prometheus-operator: as Prometheus, the scale subresource moves spec.shards; spec.replicas is the Pods "
         "of each shard"),
    _row("postgresql.cnpg.io", "Cluster", "/metadata/annotations/cnpg.io~1hibernation", "on",
         "CloudNativePG: its scale subresource moves spec.instances, which must be at least 1; declarative "
         "hibernation deletes every Pod and keeps the PVCs"),
)
_BUILTIN = {(r.group, r.kind): r for r in BUILTIN}

# Kinds that run workloads and that no built-in row holds: reported as applied as they are.
RUNS_AS_IS: dict[tuple[str, str], str] = {
    ("apps", "DaemonSet"): "a Pod on every node; hold it with a policy rule (a nodeSelector no node has)",
    ("", "Pod"): "a bare Pod runs as soon as it is applied",
    ("", "ReplicationController"): "runs spec.replicas Pods; hold it with a policy rule",
}


# ---- JSON pointers ----------------------------------------------------------------------------------------

def pointer_tokens(pointer: str) -> tuple[str, ...]:
    """The keys of a JSON pointer (RFC 6901: ~1 is /, ~0 is ~)."""
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def to_pointer(tokens: Iterable[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def annotation_pointer(key: str) -> str:
    return to_pointer(("metadata", "annotations", key))


MISSING: Any = object()


def get(obj: Any, tokens: tuple[str, ...]) -> Any:
    """The value at tokens, MISSING when absent (or when a step is not a mapping)."""
    for t in tokens:
        if not isinstance(obj, dict) or t not in obj:
            return MISSING
        obj = obj[t]
    return obj


def put(obj: dict[str, Any], tokens: tuple[str, ...], value: Any) -> bool:
    """Set the value at tokens, making mappings on the way; False when a step is not a mapping."""
    node = obj
    for t in tokens[:-1]:
        child = node.get(t)
        if child is None:
            child = node[t] = {}
        if not isinstance(child, dict):
            return False
        node = child
    node[tokens[-1]] = value
    return True


def check_pointer(pointer: Any, where: str) -> str:
    """A pointer a hold may set: under /spec, or one annotation; HoldError otherwise."""
    if not isinstance(pointer, str) or not pointer.startswith("/") or len(pointer) > MAX_POINTER:
        raise HoldError(f"{where}: expected a JSON pointer such as /spec/suspend, got {pointer!r}")
    tokens = pointer_tokens(pointer)
    if len(tokens) > 16 or "" in tokens:
        raise HoldError(f"{where}: {pointer!r} has an empty or too deep step")
    if tokens[0] != "spec" and not (tokens[:2] == ("metadata", "annotations") and len(tokens) == 3):
        raise HoldError(f"{where}: {pointer!r}: a hold sets a field under /spec or one annotation")
    return pointer


# ---- the scale subresource and the CRD's schema ----------------------------------------------------------

def _version(crd: Mapping[str, Any], version: str | None) -> dict[str, Any]:
    versions = [v for v in (crd.get("spec") or {}).get("versions") or [] if isinstance(v, dict)]
    return next((v for v in versions if v.get("name") == version), None) or \
        next((v for v in versions if v.get("storage")), None) or (versions[0] if versions else {})


def scale_rule(crd: Mapping[str, Any], version: str | None = None) -> Rule | None:
    """The hold of a CRD that declares a scale subresource (at this version), through its specReplicasPath."""
    spec = crd.get("spec") or {}
    scale = ((_version(crd, version).get("subresources") or {}).get("scale")) or {}
    path = scale.get("specReplicasPath") if isinstance(scale, dict) else None
    names = spec.get("names") or {}
    if not isinstance(path, str) or not path.startswith(".spec.") or not names.get("kind"):
        return None
    pointer = to_pointer(path[1:].split("."))
    return Rule(str(spec.get("group") or ""), str(names["kind"]), pointer, None, True,
                f"its CRD declares a scale subresource: specReplicasPath {path}", "scale subresource")


def schema_refusal(crd: Mapping[str, Any] | None, version: str | None, tokens: tuple[str, ...],
                   value: Any) -> str | None:
    """Why the CRD's schema does not allow value at tokens (type, minimum, maximum, enum); None when it may."""
    if not crd or tokens[:1] != ("spec",):
        return None
    node = ((_version(crd, version).get("schema") or {}).get("openAPIV3Schema")) or {}
    for t in tokens:
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and isinstance(props.get(t), dict):
            node = props[t]
        elif isinstance(node, dict) and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None  # not described (preserve-unknown-fields): nothing says no
    field = ".".join(tokens)
    kind = node.get("type")
    types: dict[str, type | tuple[type, ...]] = {"integer": int, "number": (int, float), "boolean": bool,
                                                  "string": str, "object": dict, "array": list}
    if kind in types and (not isinstance(value, types[kind]) or (kind != "boolean" and isinstance(value, bool))):
        if not node.get("x-kubernetes-int-or-string") or not isinstance(value, int | str):
            return f"its CRD types {field} as {kind}, not {json.dumps(value)}"
    enum = node.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"its CRD allows {field} only {', '.join(json.dumps(e) for e in enum[:5])}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = node.get("minimum"), node.get("maximum")
        if isinstance(low, int | float) and (value < low or (value == low and node.get("exclusiveMinimum"))):
            return f"its CRD allows {field} >= {low} (minimum), not {value}"
        if isinstance(high, int | float) and (value > high or (value == high and node.get("exclusiveMaximum"))):
            return f"its CRD allows {field} <= {high} (maximum), not {value}"
    return None


# ---- the policy's `standby:` section ---------------------------------------------------------------------

def split_kind(text: str) -> tuple[str, str]:
    """`Kind.group` (or `Kind` for the core group) -> (group, kind)."""
    kind, _, group = text.partition(".")
    return group, kind


def policy_rules(data: bytes | None) -> tuple[Rule, ...]:
    """The `standby:` section of the policy file as rules; HoldError (one line) names a bad entry."""
    try:
        doc = policyfile.load(data)
    except policyfile.PolicyFileError as exc:
        raise HoldError(str(exc)) from exc
    raw = doc.get("standby")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise HoldError("standby: expected a list of rules (kind, pointer or annotation, value)")
    if len(raw) > MAX_POLICY_RULES:
        raise HoldError(f"standby: {len(raw)} rules, more than {MAX_POLICY_RULES}")
    rules: dict[tuple[str, str], Rule] = {}
    for i, entry in enumerate(raw):
        rule = _policy_rule(entry, f"standby[{i}]")
        rules[(rule.group, rule.kind)] = rule  # a later rule for the same kind wins
    return tuple(rules.values())


def _policy_rule(entry: Any, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise HoldError(f"{where}: expected a mapping with kind, pointer or annotation, value")
    unknown = set(entry) - {"kind", "pointer", "annotation", "value", "why", "hold"}
    if unknown:
        raise HoldError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    kind_text = entry.get("kind")
    if not isinstance(kind_text, str) or not kind_text or len(kind_text) > 253:
        raise HoldError(f"{where}: kind: expected Kind.group (Kind for the core group)")
    group, kind = split_kind(kind_text)
    why = str(entry.get("why") or "the repo policy")[:200]
    if entry.get("hold") is False:
        return Rule(group, kind, "/spec", why=why, source="policy", off=True)
    if ("pointer" in entry) == ("annotation" in entry):
        raise HoldError(f"{where}: give one of pointer (/spec/...) or annotation")
    if "value" not in entry:
        raise HoldError(f"{where}: value: the field's value in standby is required")
    if "annotation" in entry:
        key = entry["annotation"]
        if not isinstance(key, str) or not key or len(key) > 253:
            raise HoldError(f"{where}: annotation: expected an annotation key")
        pointer, value = annotation_pointer(key), str(entry["value"])
    else:
        pointer, value = check_pointer(entry["pointer"], f"{where}: pointer"), entry["value"]
    return Rule(group, kind, pointer, value, False, why, "policy")


# ---- resolution ------------------------------------------------------------------------------------------

CrdOf = Callable[[str, str], Mapping[str, Any] | None]  # (group, kind) -> its CRD, None for built-in kinds


def resolve(group: str, kind: str, policy: Mapping[tuple[str, str], Rule], crd: Mapping[str, Any] | None,
            version: str | None = None) -> Rule | None:
    """The rule holding a kind: the policy's, else the built-in row, else the CRD's scale subresource."""
    rule = policy.get((group, kind)) or _BUILTIN.get((group, kind))
    if rule is None and crd is not None:
        rule = scale_rule(crd, version)
    return None if rule is None or rule.off else rule


def fingerprint(policy: Iterable[Rule]) -> str:
    """Changes when the rules change (the built-in table with kubedr, the policy with the repo)."""
    rows = [[r.group, r.kind, r.pointer, repr(r.value), r.replicas, r.unowned_only, r.off]
            for r in (*BUILTIN, *policy)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:12]


def report(kinds: Iterable[tuple[str, str]], policy: Mapping[tuple[str, str], Rule], crd_of: CrdOf) -> list[str]:
    """One line per kind of these that is held (by which rule) or runs as it is (and why)."""
    held, as_is = [], []
    for group, kind in sorted(set(kinds)):
        name = f"{kind}.{group}" if group else kind
        explicit = policy.get((group, kind))
        crd = crd_of(group, kind) if "." in group else None
        rule = resolve(group, kind, policy, crd)
        refused = rule is not None and schema_refusal(crd, None, rule.tokens, 0 if rule.replicas else rule.value)
        if rule is not None and refused:
            as_is.append(f"  as is     {name}: {refused} (rule: {rule.describe()}); add a policy rule with "
                         "another switch")
        elif rule is not None:
            held.append(f"  held      {name}: {rule.switch()} ({rule.source}: {rule.why})")
        elif explicit is not None:
            as_is.append(f"  as is     {name}: the repo policy holds it off ({explicit.why})")
        elif (group, kind) in RUNS_AS_IS:
            as_is.append(f"  as is     {name}: {RUNS_AS_IS[(group, kind)]}")
        elif crd is not None:
            as_is.append(f"  as is     {name}: custom resource without a scale subresource or a rule; if it runs "
                         "work, add one to the policy's standby: section")
    return [f"standby holds: {len(held)} kinds held, {len(as_is)} that may run work applied as they are",
            *held, *as_is]
