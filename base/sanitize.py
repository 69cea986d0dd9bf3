"""Sanitizing: strip server-populated, cluster-specific state and skip what a controller recreates.

Both rule sets are data (``RULES``, ``SKIPS``); every entry has a test built on a real API response
(tests/unit/exporter/test_sanitize.py). Kinds are named as in the repo contract: ``Kind`` for the core
group, ``Kind.group`` otherwise (``Deployment.apps``).

Decisions worth knowing (each one is also the ``why`` of its entry):

- ownerReferences are dropped from everything that is exported. An object with a *controlling* owner is
  not exported when that owner is (its kind is exported, or the cluster itself makes it: CLUSTER_CONTROLLERS):
  the owner's controller recreates it on the secondary. A child of an owner that is not exported (its kind
  excluded, say) is exported like any object. The remaining, non-controlling references carry the owner's uid,
  which does not exist on the secondary, and the garbage collector deletes a dependent whose owners are all gone.
- ``nodePort``, ``healthCheckNodePort``, ``ipFamilies`` and PVC ``volumeName`` are kept only when
  managedFields show a user's field manager owns them (explicitly set); values the server allocated or a
  controller bound are stripped, so the secondary allocates/binds its own. No managedFields -> stripped.
- ``clusterIP``/``clusterIPs`` are always stripped (service CIDRs differ per cluster) except ``None``:
  a headless Service must stay headless.
- PVCs made from a StatefulSet's volumeClaimTemplates are exported (default ``Retain`` policy: they carry
  no ownerReference). The controller only creates a missing claim when it creates the Pod and only from
  the template, so an expanded size or a pre-bound volume would be lost; the StatefulSet adopts an
  existing claim by name. With ``persistentVolumeClaimRetentionPolicy: Delete`` they carry a controlling
  reference to the StatefulSet and are skipped like other owned children.
- The ``default`` ServiceAccount is recreated in every namespace by the serviceaccount controller: it is
  skipped while pristine, and exported as soon as a user adds anything (imagePullSecrets,
  automountServiceAccountToken, labels, …).
- Endpoints have no ownerReference; those the endpoints controller maintains for a Service (same name)
  are recognised by its bookkeeping (managedFields all from system managers or its trigger-time
  annotation). Hand-written Endpoints of a selector-less Service are exported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubedr.owned import OWNED, type_name

# Field managers that belong to the control plane: what they own was not set by a user.
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SYSTEM_MANAGERS = frozenset({
    "kube-controller-manager", "kube-scheduler", "kubelet", "kube-apiserver", "kube-proxy",
    "cloud-controller-manager",
})
SYSTEM_FINALIZERS = frozenset({
    "kubernetes.io/pvc-protection", "kubernetes.io/pv-protection", "batch.kubernetes.io/job-tracking",
    "foregroundDeletion", "orphan", "external-attacher/csi", "kubernetes.io/pv-controller",
})

Path = tuple[str | int, ...]
Exports = Callable[[str, str], bool]  # (group, kind) -> objects of that kind are exported

# Controllers the cluster itself makes, with the children it recreates: (group, kind) -> why.
CLUSTER_CONTROLLERS: dict[tuple[str, str], str] = {
    ("", "Node"): "mirror Pods of a node's static Pods: the kubelet recreates them from its manifest files",
}


@dataclass(frozen=True)
class StripRule:
    """One field to remove: path ("*" = every list item), kinds it applies to (None = all), and why."""

    path: tuple[str, ...]
    kinds: frozenset[str] | None
    why: str
    keep: str | None = None  # name in KEEP: the field stays when that predicate holds

    @property
    def id(self) -> str:
        """Stable name for tests and logs: the dotted path (paths are unique in RULES)."""
        return ".".join(self.path)


@dataclass(frozen=True)
class SkipRule:
    """One class of objects that is never exported: kinds (None = all), a predicate name, and why."""

    id: str
    kinds: frozenset[str] | None
    when: str  # name in WHEN
    why: str
    cluster_owned: bool = False  # every cluster's control plane makes its own: an applier never deletes one
    owner_exported: bool = False  # applies only when the controlling owner is exported (see controller_exported)


def _k(*kinds: str) -> frozenset[str]:
    return frozenset(kinds)


def _ann(key: str, kinds: frozenset[str] | None, why: str) -> StripRule:
    return StripRule(("metadata", "annotations", key), kinds, why)


_TEMPLATE_TS = "server serialization artifact of an embedded template (always null), not user intent"
_POD_CONTROLLERS = _k("Deployment.apps", "StatefulSet.apps", "DaemonSet.apps", "ReplicaSet.apps", "Job.batch",
                      "ReplicationController")

RULES: tuple[StripRule, ...] = (
    StripRule(("status",), None, "observed state written by controllers; the secondary computes its own"),
    StripRule(("metadata", "uid"), None, "assigned by the server, unique per cluster"),
    StripRule(("metadata", "resourceVersion"), None, "etcd revision of the primary; changes on every write"),
    StripRule(("metadata", "generation"), None, "server counter of spec changes"),
    StripRule(("metadata", "creationTimestamp"), None, "set by the server at creation"),
    StripRule(("metadata", "managedFields"), None, "field ownership bookkeeping; the applier owns its own"),
    StripRule(("metadata", "selfLink"), None, "server-computed URL (gone since 1.20, still sent by old servers)"),
    StripRule(("metadata", "deletionTimestamp"), None, "deletion in progress on the primary, set by the server"),
    StripRule(("metadata", "deletionGracePeriodSeconds"), None, "deletion in progress, set by the server"),
    StripRule(("metadata", "ownerReferences"), None,
              "owner uids do not exist on the secondary: its garbage collector would delete the object"),
    StripRule(("metadata", "finalizers", "*"), None,
              "finalizers the control plane adds by itself (pvc/pv protection, job tracking); others are kept",
              keep="not_system_finalizer"),
    _ann("kubectl.kubernetes.io/last-applied-configuration", None,
         "kubectl's copy of the whole last applied object (for Secrets: the values in clear text)"),
    _ann("deployment.kubernetes.io/revision", _k("Deployment.apps", "ReplicaSet.apps"),
         "rollout counter kept by the deployment controller"),
    _ann("deployment.kubernetes.io/desired-replicas", _k("ReplicaSet.apps"), "deployment controller bookkeeping"),
    _ann("deployment.kubernetes.io/max-replicas", _k("ReplicaSet.apps"), "deployment controller bookkeeping"),
    _ann("deprecated.daemonset.template.generation", _k("DaemonSet.apps"), "daemonset controller bookkeeping"),
    _ann("pv.kubernetes.io/bind-completed", _k("PersistentVolumeClaim"), "PV binder state of the primary"),
    _ann("pv.kubernetes.io/bound-by-controller", _k("PersistentVolumeClaim", "PersistentVolume"),
         "PV binder state of the primary"),
    _ann("volume.beta.kubernetes.io/storage-provisioner", _k("PersistentVolumeClaim"),
         "set by the PV controller when provisioning starts"),
    _ann("volume.kubernetes.io/storage-provisioner", _k("PersistentVolumeClaim"),
         "set by the PV controller when provisioning starts"),
    _ann("volume.kubernetes.io/selected-node", _k("PersistentVolumeClaim"),
         "scheduler's node choice for WaitForFirstConsumer; node names differ per cluster"),
    _ann("control-plane.alpha.kubernetes.io/leader", None, "leader-election record of a running component"),
    _ann("endpoints.kubernetes.io/last-change-trigger-time", _k("Endpoints"), "endpoints controller timestamp"),
    _ann("batch.kubernetes.io/job-tracking", _k("Job.batch"), "job controller bookkeeping (1.23-1.26)"),
    # a ServiceAccount token Secret a user created (since 1.24 the only kind there is): the secondary's token
    # controller fills in its own token, CA and namespace, and the uid of its own ServiceAccount
    StripRule(("data", "token"), _k("Secret"), "signed by the primary's service-account key; the secondary's "
              "token controller issues its own", keep="not_sa_token"),
    StripRule(("data", "ca.crt"), _k("Secret"), "the primary's cluster CA; the token controller writes the "
              "secondary's", keep="not_sa_token"),
    StripRule(("data", "namespace"), _k("Secret"), "written by the token controller", keep="not_sa_token"),
    _ann("kubernetes.io/service-account.uid", _k("Secret"),
         "uid of the primary's ServiceAccount; the token controller deletes a token Secret whose uid is not its own"),
    # what kubedr's own applier writes on a secondary: an exporter run there (after a failover) leaves it out
    StripRule(("metadata", "labels", "kubedr.io/managed"), None, "kubedr applier's marker of what it may prune"),
    StripRule(("metadata", "labels", "kubedr.io/source"), None,
              "kubedr applier's mark of the source that applied the object (another source never changes it)"),
    _ann("kubedr.io/path", None, "kubedr applier's note of the repo file the object came from"),
    StripRule(("metadata", "labels", "kubedr.io/held"), None, "kubedr standby bookkeeping: a rule holds the object"),
    _ann("kubedr.io/primary-replicas", None, "kubedr standby bookkeeping: the replicas to restore at switchover"),
    _ann("kubedr.io/primary-suspend", None, "kubedr standby bookkeeping: the suspend value to restore at switchover"),
    _ann("kubedr.io/primary-values", None,
         "kubedr standby bookkeeping: the held fields' values to restore at switchover (kubedr.holds)"),
    StripRule(("spec", "clusterIP"), _k("Service"), "allocated from the primary's service CIDR",
              keep="headless"),
    StripRule(("spec", "clusterIPs"), _k("Service"), "allocated from the primary's service CIDR",
              keep="headless"),
    StripRule(("spec", "ports", "*", "nodePort"), _k("Service"),
              "allocated by the server when not set; kept when a user set it explicitly", keep="user_set"),
    StripRule(("spec", "healthCheckNodePort"), _k("Service"),
              "allocated by the server when not set; kept when a user set it explicitly", keep="user_set"),
    StripRule(("spec", "ipFamilies"), _k("Service"),
              "defaulted from the primary's network config (the secondary may be dual-stack or IPv6)",
              keep="user_set"),
    StripRule(("spec", "volumeName"), _k("PersistentVolumeClaim"),
              "bound by the PV controller to a primary volume; kept when a user pre-bound it", keep="user_set"),
    StripRule(("spec", "nodeName"), _k("Pod"), "scheduler's choice; node names differ per cluster"),
    StripRule(("spec", "claimRef", "uid"), _k("PersistentVolume"),
              "uid of the primary's claim; namespace/name stay so the volume is reserved for the same claim"),
    StripRule(("spec", "claimRef", "resourceVersion"), _k("PersistentVolume"), "revision of the primary's claim"),
    StripRule(("spec", "selector"), _k("Job.batch"),
              "generated from the Job's uid; the server refuses a set selector without manualSelector",
              keep="manual_selector"),
    StripRule(("metadata", "labels", "controller-uid"), _k("Job.batch"), "the primary Job's uid",
              keep="manual_selector"),
    StripRule(("metadata", "labels", "batch.kubernetes.io/controller-uid"), _k("Job.batch"),
              "the primary Job's uid (1.27+)", keep="manual_selector"),
    StripRule(("spec", "template", "metadata", "labels", "controller-uid"), _k("Job.batch"),
              "the primary Job's uid, added to the pod template by the server", keep="manual_selector"),
    StripRule(("spec", "template", "metadata", "labels", "batch.kubernetes.io/controller-uid"), _k("Job.batch"),
              "the primary Job's uid, added to the pod template by the server (1.27+)", keep="manual_selector"),
    StripRule(("secrets", "*"), _k("ServiceAccount"),
              "references to auto-generated token Secrets (not exported); user-listed Secrets are kept",
              keep="not_token_ref"),
    StripRule(("spec", "template", "metadata", "creationTimestamp"), _POD_CONTROLLERS, _TEMPLATE_TS),
    StripRule(("template", "metadata", "creationTimestamp"), _k("PodTemplate"), _TEMPLATE_TS),
    StripRule(("spec", "jobTemplate", "metadata", "creationTimestamp"), _k("CronJob.batch"), _TEMPLATE_TS),
    StripRule(("spec", "jobTemplate", "spec", "template", "metadata", "creationTimestamp"), _k("CronJob.batch"),
              _TEMPLATE_TS),
    StripRule(("spec", "volumeClaimTemplates", "*", "metadata", "creationTimestamp"), _k("StatefulSet.apps"),
              _TEMPLATE_TS),
    StripRule(("spec", "volumeClaimTemplates", "*", "status"), _k("StatefulSet.apps"),
              "status of an embedded claim template, defaulted by the server"),
)


# ---- keep predicates: (original object, concrete path, value) -> keep the field? ------------------------

def _headless(obj: dict[str, Any], path: Path, value: Any) -> bool:
    return bool(value == "None" or value == ["None"])


def _manual_selector(obj: dict[str, Any], path: Path, value: Any) -> bool:
    return bool((obj.get("spec") or {}).get("manualSelector"))


def _not_system_finalizer(obj: dict[str, Any], path: Path, value: Any) -> bool:
    return value not in SYSTEM_FINALIZERS


def _not_token_ref(obj: dict[str, Any], path: Path, value: Any) -> bool:
    name = value.get("name", "") if isinstance(value, dict) else ""
    prefix = obj["metadata"]["name"] + "-token-"
    return not (name.startswith(prefix) and len(name) == len(prefix) + 5)


def _fields_entry(fields: dict[str, dict[str, Any]], container: Any, step: str | int) -> dict[str, Any] | None:
    """The managedFields (FieldsV1) node for one step below `container`, if the manager owns it."""
    if isinstance(step, str):
        return fields.get(f"f:{step}")
    item = container[step]
    for key, sub in fields.items():
        if key.startswith("k:"):
            try:
                wanted = json.loads(key[2:])
            except ValueError:
                continue
            if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
                return sub
        elif key.startswith("v:"):
            try:
                if json.loads(key[2:]) == item:
                    return sub
            except ValueError:
                continue
        elif key == f"i:{step}":
            return sub
    return None


def _not_sa_token(obj: dict[str, Any], path: Path, value: Any) -> bool:
    return obj.get("type") != SA_TOKEN_TYPE


def _user_set(obj: dict[str, Any], path: Path, value: Any) -> bool:
    """True when a non-system field manager owns the field: a user set it explicitly."""
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") in SYSTEM_MANAGERS or entry.get("subresource"):
            continue
        fields: Any = entry.get("fieldsV1") or {}
        container: Any = obj
        for step in path:
            fields = _fields_entry(fields, container, step) if isinstance(fields, dict) else None
            if fields is None:
                break
            container = container[step]
        else:
            return True
    return False


KEEP: dict[str, Callable[[dict[str, Any], Path, Any], bool]] = {
    "headless": _headless,
    "manual_selector": _manual_selector,
    "not_system_finalizer": _not_system_finalizer,
    "not_token_ref": _not_token_ref,
    "not_sa_token": _not_sa_token,
    "user_set": _user_set,
}


# ---- skip predicates: object -> not exported? -----------------------------------------------------------

def _always(obj: dict[str, Any]) -> bool:
    return True


def _controller_made_sa_token(obj: dict[str, Any]) -> bool:
    """Auto-generated (before 1.24) by the token controller: no user's manager ever wrote it."""
    if obj.get("type") != SA_TOKEN_TYPE:
        return False
    managers = {e.get("manager") for e in obj["metadata"].get("managedFields") or []}
    return not managers or managers <= SYSTEM_MANAGERS


def controller_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(group, kind) of the object's controlling owner, or None when nothing controls it."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return str(ref.get("apiVersion", "")).rpartition("/")[0], str(ref.get("kind", ""))
    return None


def controller_kind(obj: dict[str, Any]) -> str | None:
    """The contract's `Kind.group` name of the controlling owner's kind (for reports), or None."""
    owner = controller_of(obj)
    return None if owner is None else f"{owner[1]}.{owner[0]}" if owner[0] else owner[1]


def controller_exported(obj: dict[str, Any], exports: Exports | None) -> bool:
    """Whether the controlling owner is exported or made by the cluster (None: every owner counts as exported)."""
    owner = controller_of(obj)
    if owner is None:
        return False
    return exports is None or owner in CLUSTER_CONTROLLERS or exports(*owner)


def _controlled(obj: dict[str, Any]) -> bool:
    return controller_of(obj) is not None


def _endpoints_of_service(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    if "endpoints.kubernetes.io/last-change-trigger-time" in (meta.get("annotations") or {}):
        return True
    if (meta.get("labels") or {}).get("endpoints.kubernetes.io/managed-by"):
        return True
    managers = {e.get("manager") for e in meta.get("managedFields") or []}
    return bool(managers) and managers <= SYSTEM_MANAGERS


def _finished_job(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def _pristine_default_sa(obj: dict[str, Any]) -> bool:
    if obj["metadata"].get("name") != "default":
        return False
    stripped = strip(obj)
    return set(stripped) <= {"apiVersion", "kind", "metadata"} and set(stripped["metadata"]) <= {"name", "namespace"}


WHEN: dict[str, Callable[[dict[str, Any]], bool]] = {
    **{o.id: o.when for o in OWNED},
    "always": _always,
    "sa_token": _controller_made_sa_token,
    "controlled": _controlled,
    "endpoints_of_service": _endpoints_of_service,
    "pristine_default_sa": _pristine_default_sa,
    "finished_job": _finished_job,
}

SKIPS: tuple[SkipRule, ...] = (
    SkipRule("event", _k("Event", "Event.events.k8s.io"), "always", "a record of what happened, not configuration"),
    SkipRule("lease", _k("Lease.coordination.k8s.io"), "always",
             "leader election and node heartbeats of running components"),
    SkipRule("controller-revision", _k("ControllerRevision.apps"), "always",
             "history kept by StatefulSet/DaemonSet controllers; the secondary builds its own"),
    # what every control plane makes for itself: one table, kubedr.owned, shared with the applier's prune
    *(SkipRule(o.id, o.kinds, o.id, o.why, cluster_owned=True) for o in OWNED),
    SkipRule("service-account-token", _k("Secret"), "sa_token",
             "auto-generated by the token controller, which makes its own on the secondary; a token Secret a "
             "user created is exported without its token (the secondary's controller fills it in)"),
    SkipRule("controlled", None, "controlled",
             "its controlling owner is exported and the owner's controller recreates it (Pods of ReplicaSets, "
             "Jobs, StatefulSets, DaemonSets; ReplicaSets of Deployments; Jobs of CronJobs; EndpointSlices)",
             owner_exported=True),
    SkipRule("endpoints-of-service", _k("Endpoints"), "endpoints_of_service",
             "kept by the endpoints controller for the Service of the same name"),
    SkipRule("default-service-account", _k("ServiceAccount"), "pristine_default_sa",
             "recreated in every namespace by the serviceaccount controller; exported once a user changes it"),
    SkipRule("finished-job", _k("Job.batch"), "finished_job",
             "it ran to completion (or gave up) on the primary: created on the secondary it would run again; "
             "its file is removed when it finishes"),
)


# ---- engine -------------------------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _strip_at(node: Any, rule: StripRule, depth: int, concrete: Path,
              original: dict[str, Any]) -> None:
    step = rule.path[depth]
    last = depth == len(rule.path) - 1
    if step == "*":
        if not isinstance(node, list):
            return
        for index in range(len(node) - 1, -1, -1):
            here = (*concrete, index)
            if last:
                if not (rule.keep and KEEP[rule.keep](original, here, node[index])):
                    del node[index]
            else:
                _strip_at(node[index], rule, depth + 1, here, original)
        return
    if not isinstance(node, dict) or step not in node:
        return
    here = (*concrete, step)
    if last:
        if not (rule.keep and KEEP[rule.keep](original, here, node[step])):
            del node[step]
    else:
        _strip_at(node[step], rule, depth + 1, here, original)
        child = node[step]
        if isinstance(child, dict | list) and not child and not (depth == 0 and step == "metadata"):
            del node[step]  # a map or list left empty by stripping (annotations: {}) goes too


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of the object with every applicable RULES entry applied (no skip check; input untouched)."""
    kind = type_name(obj)
    meta = {k: _clone(v) for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    out = {k: _clone(v) for k, v in obj.items() if k not in ("status", "metadata")}
    out["metadata"] = meta
    for rule in RULES:
        if rule.kinds is None or kind in rule.kinds:
            _strip_at(out, rule, 0, (), obj)
    for key in ("labels", "annotations", "finalizers"):
        if key in meta and not meta[key]:
            del meta[key]
    return out


def skip_rule(obj: dict[str, Any], exports: Exports | None = None) -> SkipRule | None:
    """The first SKIPS entry that keeps the object out of the repo, or None when it is exported.

    `exports` says which kinds the exporter writes (a child is skipped only when its controller is one of
    them); None counts every controller as exported (the applier: a controlled object is never a stray)."""
    kind = type_name(obj)
    for rule in SKIPS:
        if (rule.kinds is None or kind in rule.kinds) and WHEN[rule.when](obj):
            if rule.owner_exported and not controller_exported(obj, exports):
                continue
            return rule
    return None


def skip_reason(obj: dict[str, Any], exports: Exports | None = None) -> str | None:
    """Why an object is not exported (`<id>: <why>`), or None when it is exported."""
    rule = skip_rule(obj, exports)
    return None if rule is None else f"{rule.id}: {rule.why}"


def sanitize(obj: dict[str, Any], exports: Exports | None = None) -> dict[str, Any] | None:
    """The object as it goes to Git, or None when it is not exported; never mutates the input."""
    if skip_reason(obj, exports) is not None:
        return None
    return strip(obj)
