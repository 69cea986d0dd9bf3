"""When a workload counts as Available, and why one is not: both as tables.

READINESS follows the rules of sigs.k8s.io/cli-utils' kstatus (what `kubectl rollout status`, Argo CD and
Flux health checks read): generic properties first (being deleted, `observedGeneration` behind `generation`,
the Reconciling and Stalled conditions, and for custom resources a Ready condition that is False), then the
kind's own rule. A custom resource that reports no status counts as Available.

WHY_NOT reads the Pods and Events of a workload that is not Available and names the cause in words an
operator acts on: image pull failure, unschedulable, unbound claim, quota, crash loop, ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """Available or not, with kstatus' message (`Available: 1/3`); failed: kstatus Failed (Stalled, deadline)."""

    available: bool
    message: str
    failed: bool = False


READY = Verdict(True, "Available")


def _int(obj: dict[str, Any], *path: str, default: int = 0) -> int:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, int) and not isinstance(node, bool) else default


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    conds = (obj.get("status") or {}).get("conditions") if isinstance(obj.get("status"), dict) else None
    return [c for c in conds or [] if isinstance(c, dict)]


def _short(*checks: tuple[str, int, int]) -> Verdict | None:
    """The first (what, have, want) short of want, as kstatus words it (`Ready: 1/3`); None when none is."""
    for what, have, want in checks:
        if want > have:
            return Verdict(False, f"{what}: {have}/{want}")
    return None


def _extra(have: int, want: int) -> Verdict | None:
    return Verdict(False, f"Pending termination: {have - want}") if have > want else None


def deployment(d: dict[str, Any]) -> Verdict:
    """Replicas, updated, available and ready at spec.replicas; Available and a finished Progressing condition."""
    want = _int(d, "spec", "replicas", default=1)
    have, updated = _int(d, "status", "replicas"), _int(d, "status", "updatedReplicas")
    ready, available = _int(d, "status", "readyReplicas"), _int(d, "status", "availableReplicas")
    progressing = "progressDeadlineSeconds" not in (d.get("spec") or {})
    is_available = False
    for c in _conditions(d):
        if c.get("type") == "Progressing":
            if c.get("reason") == "ProgressDeadlineExceeded":
                return Verdict(False, "progress deadline exceeded", failed=True)
            progressing = progressing or (c.get("status") == "True" and c.get("reason") == "NewReplicaSetAvailable")
        elif c.get("type") == "Available":
            is_available = c.get("status") == "True"
    found = (_short(("Replicas", have, want), ("Updated", updated, want)) or _extra(have, want)
             or _short(("Available", available, updated), ("Ready", ready, want)))
    if found is not None:
        return found
    if not progressing:
        return Verdict(False, "ReplicaSet not Available")
    if not is_available:
        return Verdict(False, "Deployment not Available")
    return READY


def statefulset(s: dict[str, Any]) -> Verdict:
    """Replicas and ready Pods at spec.replicas, the partition rolled out, current and update revisions equal."""
    spec = s.get("spec") or {}
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return READY
    want, have = _int(s, "spec", "replicas", default=1), _int(s, "status", "replicas")
    ready, current = _int(s, "status", "readyReplicas"), _int(s, "status", "currentReplicas")
    updated = _int(s, "status", "updatedReplicas")
    partition = _int(s, "spec", "updateStrategy", "rollingUpdate", "partition", default=-1)
    found = _short(("Replicas", have, want), ("Ready", ready, want)) or _extra(have, want)
    if found is not None:
        return found
    if partition != -1:
        return READY if updated >= want - partition else Verdict(False, f"Updated: {updated}/{want - partition}")
    if want > current:
        return Verdict(False, f"Current: {current}/{want}")
    status = s.get("status") or {}
    if status.get("currentRevision", "") != status.get("updateRevision", ""):
        return Verdict(False, "waiting for the update revision to become current")
    return READY


def daemonset(d: dict[str, Any]) -> Verdict:
    """Every node that should run a Pod runs an updated, available, ready one."""
    if "generation" not in (d.get("metadata") or {}) or "observedGeneration" not in (d.get("status") or {}):
        return Verdict(False, "not observed by the DaemonSet controller yet")
    desired = _int(d, "status", "desiredNumberScheduled", default=-1)
    if desired == -1:
        return Verdict(False, "no status.desiredNumberScheduled yet")
    return _short(*((what, _int(d, "status", field), desired) for field, what in (
        ("currentNumberScheduled", "Current"), ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"), ("numberReady", "Ready")))) or READY


def replicaset(r: dict[str, Any]) -> Verdict:
    """Labelled, available and ready Pods at spec.replicas, no ReplicaFailure."""
    if any(c.get("type") == "ReplicaFailure" and c.get("status") == "True" for c in _conditions(r)):
        return Verdict(False, "ReplicaFailure: cannot create Pods")
    want, have = _int(r, "spec", "replicas", default=1), _int(r, "status", "replicas")
    return _short(*((what, _int(r, "status", field), want) for field, what in (
        ("fullyLabeledReplicas", "Labelled"), ("availableReplicas", "Available"), ("readyReplicas", "Ready")))) \
        or _extra(have, want) or READY


def custom(obj: dict[str, Any]) -> Verdict:
    """A custom resource: its Ready condition when it has one (False: not yet); no status counts as Available."""
    ready = next((c for c in _conditions(obj) if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") == "False":
        return Verdict(False, f"Ready False: {ready.get('message') or ready.get('reason') or ''}".rstrip(": "))
    return READY


# (group, kind) -> its rule; every other kind is judged by `custom` after the generic properties
READINESS: dict[tuple[str, str], Callable[[dict[str, Any]], Verdict]] = {
    ("apps", "Deployment"): deployment,
    ("apps", "StatefulSet"): statefulset,
    ("apps", "DaemonSet"): daemonset,
    ("apps", "ReplicaSet"): replicaset,
}
WORKLOADS = tuple(READINESS)  # the built-in kinds a switchover follows besides the custom resources it brought up


def generic(obj: dict[str, Any]) -> Verdict | None:
    """kstatus' checks for every kind: deletion, observedGeneration, Reconciling, Stalled; None: no verdict."""
    meta, status = obj.get("metadata") or {}, obj.get("status")
    if meta.get("deletionTimestamp"):
        return Verdict(False, "being deleted")
    if isinstance(status, dict) and "observedGeneration" in status and "generation" in meta \
            and status.get("observedGeneration") != meta.get("generation"):
        return Verdict(False, f"generation {meta.get('generation')} not observed yet "
                              f"(observedGeneration {status.get('observedGeneration')})")
    for c in _conditions(obj):
        if c.get("status") != "True":
            continue
        if c.get("type") == "Reconciling":
            return Verdict(False, f"Reconciling: {c.get('message') or c.get('reason') or ''}".rstrip(": "))
        if c.get("type") == "Stalled":
            return Verdict(False, f"Stalled: {c.get('message') or c.get('reason') or ''}".rstrip(": "), failed=True)
    return None


def verdict(obj: dict[str, Any]) -> Verdict:
    """Whether this object is Available, by the generic checks and then its kind's rule."""
    found = generic(obj)
    if found is not None:
        return found
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return READINESS.get((group, str(obj.get("kind"))), custom)(obj)


# ---- why not ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cause:
    """One row of WHY_NOT: where the reason is read, the reason (and text the message must hold), the words."""

    source: str  # "container" (a container's waiting reason), "scheduling" (PodScheduled False), "event", "condition"
    reason: str
    says: str
    contains: str = ""  # a regular expression the message must match (case-insensitive); "" matches any


# First match wins, in this order: the most specific reason first.
WHY_NOT: tuple[Cause, ...] = (
    Cause("container", "ErrImagePull", "image pull failure"),
    Cause("container", "ImagePullBackOff", "image pull failure"),
    Cause("container", "InvalidImageName", "image pull failure"),
    Cause("container", "ErrImageNeverPull", "image pull failure"),
    Cause("container", "CrashLoopBackOff", "crash loop"),
    Cause("container", "CreateContainerConfigError", "container config error (a missing ConfigMap or Secret key?)"),
    Cause("scheduling", "Unschedulable", "unbound claim", r"unbound .*persistentvolumeclaim|persistentvolumeclaim .* not found"),
    Cause("scheduling", "Unschedulable", "unschedulable"),
    Cause("condition", "FailedCreate", "quota", r"exceeded quota"),
    Cause("event", "FailedCreate", "quota", r"exceeded quota"),
    Cause("condition", "FailedCreate", "cannot create Pods"),
    Cause("event", "FailedCreate", "cannot create Pods"),
    Cause("event", "FailedScheduling", "unbound claim", r"unbound .*persistentvolumeclaim"),
    Cause("event", "FailedScheduling", "unschedulable"),
    Cause("event", "ProvisioningFailed", "unbound claim"),
    Cause("event", "FailedMount", "volume cannot be mounted"),
    Cause("event", "BackOff", "crash loop", r"restarting failed container"),
    Cause("event", "Failed", "image pull failure", r"pull"),
)


@dataclass(frozen=True)
class Clue:
    """Something read from the cluster that may explain it: (source, reason, message)."""

    source: str
    reason: str
    message: str


def clues_of_pod(pod: dict[str, Any]) -> list[Clue]:
    """A Pod's container waiting reasons and its PodScheduled condition."""
    status = pod.get("status") or {}
    out = []
    for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = ((c or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            out.append(Clue("container", str(waiting["reason"]), str(waiting.get("message") or "")))
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            out.append(Clue("scheduling", str(cond.get("reason") or ""), str(cond.get("message") or "")))
    return out


def clues_of_workload(obj: dict[str, Any]) -> list[Clue]:
    """A workload's (or its ReplicaSet's) ReplicaFailure condition."""
    return [Clue("condition", str(c.get("reason") or ""), str(c.get("message") or "")) for c in _conditions(obj)
            if c.get("type") == "ReplicaFailure" and c.get("status") == "True"]


def clues_of_events(events: Iterable[dict[str, Any]]) -> list[Clue]:
    """Warning Events (newest first), and BackOff ones."""
    picked = [e for e in events if e.get("type") == "Warning" or e.get("reason") == "BackOff"]
    picked.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)
    return [Clue("event", str(e.get("reason") or ""), str(e.get("message") or "")) for e in picked]


def why_not(clues: Iterable[Clue]) -> str:
    """The first cause the clues show, `image pull failure: Back-off pulling image "x"`; "" when none does."""
    found = list(clues)
    for cause in WHY_NOT:
        for clue in found:
            if clue.source == cause.source and clue.reason == cause.reason and \
                    (not cause.contains or re.search(cause.contains, clue.message, re.IGNORECASE)):
                return f"{cause.says}: {' '.join(clue.message.split())[:160] or clue.reason}"
    return ""
