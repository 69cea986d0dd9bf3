"""Recreate an object whose immutable fields changed: the primary deleted and recreated it, so must the secondary.

The exporter's commit shows such a change as an update; server-side apply then gets 422 Invalid ("field is
immutable", "may not change once set", "cannot change roleRef", ...). As Flux's kustomize-controller does
with `force`, kubedr then deletes the live object, waits until it is really gone (a 404, or another uid
under the name) and applies again. Which kinds may be recreated, and with which propagation, is the table
RECREATE; NEVER names the kinds whose deletion loses data, which stay failed with a one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubedr.apierrors import Invalid
from kubedr.applier.decode import MANAGED_LABEL
from kubedr.contract import ObjectRef

RECREATE_TIMEOUT = 60.0  # how long a deletion may take (Foreground waits for dependents) before giving up

# How the apiserver (built-in update validation, CEL transition rules, common webhooks) words "this field
# cannot change"; every cause of the 422 must match one, so a truly invalid manifest is never recreated.
IMMUTABLE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    r"\bis immutable\b",                      # field is immutable [when `immutable` is set]; spec is immutable ...
    r"\bimmutable field",                     # webhooks: "cannot make changes to immutable field(s)"
    r"\bmay not change once set\b",           # Service spec.clusterIPs, loadBalancerClass
    r"\bcannot change roleRef\b",             # RoleBinding, ClusterRoleBinding
    r"\bmay not be changed in an update\b",   # PriorityClass value
    r"\bupdates to .+ are forbidden\b",       # StatefulSet spec, StorageClass parameters/provisioner
    r"\bpod updates may not change fields other than\b",
    r"\bprimary clusterIP can not be unset\b",
))


@dataclass(frozen=True)
class Rule:
    """How one kind is recreated: the delete's propagationPolicy, and a check that can still refuse."""

    propagation: str
    refuse: Callable[[dict[str, Any]], str] | None = None  # live object -> why not ("" = go ahead)


def _claims_deleted_with_it(live: dict[str, Any]) -> str:
    policy = ((live.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted")
    if policy == "Delete":
        return ("its volume claims would be deleted with it (persistentVolumeClaimRetentionPolicy.whenDeleted: "
                "Delete)")
    return ""


# (group, kind) -> Rule. Background: the object goes at once and the garbage collector removes its dependents
# (stateless workloads: the new one starts without waiting for old pods). Foreground: the object stays until
# its dependents are gone, so no two runs of a Job and no two pods of one StatefulSet identity overlap.
RECREATE: dict[tuple[str, str], Rule] = {
    ("apps", "Deployment"): Rule("Background"),
    ("apps", "ReplicaSet"): Rule("Background"),
    ("apps", "DaemonSet"): Rule("Background"),
    ("apps", "StatefulSet"): Rule("Foreground", _claims_deleted_with_it),
    ("batch", "Job"): Rule("Foreground"),
    ("batch", "CronJob"): Rule("Background"),
    ("", "Pod"): Rule("Background"),
    ("", "Service"): Rule("Background"),
    ("", "ConfigMap"): Rule("Background"),
    ("", "Secret"): Rule("Background"),
    ("rbac.authorization.k8s.io", "RoleBinding"): Rule("Background"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): Rule("Background"),
    ("storage.k8s.io", "StorageClass"): Rule("Background"),
    ("storage.k8s.io", "CSIDriver"): Rule("Background"),
    ("scheduling.k8s.io", "PriorityClass"): Rule("Background"),
    ("networking.k8s.io", "IngressClass"): Rule("Background"),
}

# (group, kind) -> why kubedr never deletes it to recreate it, whatever the settings say.
NEVER: dict[tuple[str, str], str] = {
    ("", "PersistentVolumeClaim"): "deleting a claim can delete its volume and the data on it",
    ("", "PersistentVolume"): "deleting a volume can delete the disk behind it",
    ("", "Namespace"): "deleting a namespace deletes everything in it",
}


class ImmutableError(Exception):
    """An immutable field changed and the object was not recreated; str() is the one-line reason."""


class RecreateTimeout(Exception):
    """The old object was still there when the wait ran out; it is created again next round."""


def immutable_change(exc: BaseException) -> str:
    """The server's message when exc is a 422 caused only by changed immutable fields, else ""."""
    if not isinstance(exc, Invalid):
        return ""
    causes = exc.causes or [str(exc).partition(" is invalid: ")[2] or str(exc)]
    if all(any(p.search(c) for p in IMMUTABLE_PATTERNS) for c in causes):
        return str(exc)
    return ""


def refusal(ref: ObjectRef, enabled: bool) -> str:
    """Why this kind may not be recreated now ("" when it may), before looking at the live object."""
    key = (ref.group, ref.kind)
    if key in NEVER:
        return f"kubedr never recreates a {ref.kind} ({NEVER[key]}): recreate it by hand"
    if not enabled:
        return "recreate is off (--no-recreate): delete it by hand and the next round creates it"
    if key not in RECREATE:
        return f"kubedr does not recreate a {ref.kind} (not in its recreate table): delete it by hand"
    return ""


def refusal_for_live(ref: ObjectRef, live: dict[str, Any]) -> str:
    """Why the live object may not be deleted ("" when it may): not kubedr's, or a rule of its kind."""
    if ((live.get("metadata") or {}).get("labels") or {}).get(MANAGED_LABEL) != "true":
        return f"it was not created by kubedr (no {MANAGED_LABEL} label): delete it by hand"
    rule = RECREATE[(ref.group, ref.kind)]
    why = rule.refuse(live) if rule.refuse else ""
    return f"not recreating it: {why}: recreate it by hand" if why else ""


def refused(why: str, server: str) -> ImmutableError:
    """The failure kept for an object that was not recreated: what to do first, then the server's words."""
    return ImmutableError(f"immutable field changed; {why} (server: {server})")
