"""What every cluster's control plane makes for itself: never exported (the secondary has its own) and never
pruned by an applier (an older export may have put one in the repo; deleting it would break the secondary)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def type_name(obj: Obj) -> str:
    """The contract's `Kind.group` name of an object's type (`Kind` for the core group)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", ""))
    return f"{kind}.{group}" if group else kind


def _named(namespace: str, name: str) -> Callable[[Obj], bool]:
    return lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"].get("name")) == (namespace, name)


def _rbac_defaults(obj: Obj) -> bool:
    return (obj["metadata"].get("labels") or {}).get("kubernetes.io/bootstrapping") == "rbac-defaults"


def _system_name(obj: Obj) -> bool:
    return str(obj["metadata"].get("name", "")).startswith("system-")


def _bootstrap_token(obj: Obj) -> bool:
    return obj.get("type") == "bootstrap.kubernetes.io/token"


def _kube_root_ca(obj: Obj) -> bool:
    return bool(obj["metadata"].get("name") == "kube-root-ca.crt")


@dataclass(frozen=True)
class Owned:
    """One class of objects each cluster's control plane makes: kinds, a predicate, and why."""

    id: str
    kinds: frozenset[str]
    when: Callable[[Obj], bool]
    why: str


_RBAC = frozenset({"ClusterRole.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io",
                   "Role.rbac.authorization.k8s.io", "RoleBinding.rbac.authorization.k8s.io"})

OWNED: tuple[Owned, ...] = (
    Owned("apiserver-service", frozenset({"Service", "Endpoints", "EndpointSlice.discovery.k8s.io"}),
          _named("default", "kubernetes"),
          "default/kubernetes: the API server creates and reconciles this Service (labels provider: kubernetes, "
          "component: apiserver), its Endpoints and EndpointSlice itself, with its own address and port"),
    Owned("rbac-defaults", _RBAC, _rbac_defaults,
          "bootstrap policy (label kubernetes.io/bootstrapping: rbac-defaults) the API server reconciles at "
          "every start for its own version (admin, edit, view, system:*)"),
    Owned("system-priority-class", frozenset({"PriorityClass.scheduling.k8s.io"}), _system_name,
          "system-cluster-critical and system-node-critical are made by the API server; users cannot create a "
          "PriorityClass with the reserved system- prefix"),
    Owned("apiserver-authentication", frozenset({"ConfigMap"}),
          _named("kube-system", "extension-apiserver-authentication"),
          "kube-system/extension-apiserver-authentication: the API server writes its own client CAs there"),
    Owned("cluster-info", frozenset({"ConfigMap"}), _named("kube-public", "cluster-info"),
          "kube-public/cluster-info: kubeadm's record of this cluster's CA and API server address for joining"),
    Owned("bootstrap-token", frozenset({"Secret"}), _bootstrap_token,
          "a node-join token of this cluster (type bootstrap.kubernetes.io/token)"),
    Owned("kube-root-ca", frozenset({"ConfigMap"}), _kube_root_ca,
          "published in every namespace by the root-ca-cert-publisher with the cluster's own CA"),
)


def owned_by_cluster(obj: Obj) -> Owned | None:
    """The OWNED entry that says the control plane makes this object itself, or None."""
    kind = type_name(obj)
    return next((o for o in OWNED if kind in o.kinds and o.when(obj)), None)
