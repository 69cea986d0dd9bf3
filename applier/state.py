"""kubedr's own state on the secondary: ConfigMaps in kubedr-system, read and written through the base client."""

from __future__ import annotations

from kubedr.apierrors import NotFound
from kubedr.kubeapi import Cluster

SYSTEM_NAMESPACE = "kubedr-system"
STATE_MANAGER = "kubedr-state"


def _cm_path(name: str = "") -> str:
    return f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/configmaps" + (f"/{name}" if name else "")


def ensure_system_namespace(cluster: Cluster) -> None:
    """Create kubedr-system if missing (server-side apply: harmless when it exists)."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
    cluster.request("PATCH", f"/api/v1/namespaces/{SYSTEM_NAMESPACE}", body,
                    {"fieldManager": STATE_MANAGER, "force": "true"}, "application/apply-patch+yaml")


def get_state(cluster: Cluster, name: str) -> dict[str, str] | None:
    """The data of one state ConfigMap, None when absent."""
    try:
        return dict(cluster.request("GET", _cm_path(name)).get("data") or {})
    except NotFound:
        return None


def list_state(cluster: Cluster, selector: str) -> dict[str, dict[str, str]]:
    """Name -> data of the state ConfigMaps matching a label selector."""
    try:
        doc = cluster.request("GET", _cm_path(), query={"labelSelector": selector})
    except NotFound:
        return {}
    return {i["metadata"]["name"]: dict(i.get("data") or {}) for i in doc.get("items") or []}


def labels_of_state(cluster: Cluster, selector: str) -> dict[str, dict[str, str]]:
    """Name -> labels of the state ConfigMaps matching a label selector."""
    try:
        doc = cluster.request("GET", _cm_path(), query={"labelSelector": selector})
    except NotFound:
        return {}
    return {i["metadata"]["name"]: dict(i["metadata"].get("labels") or {}) for i in doc.get("items") or []}


def put_state(cluster: Cluster, name: str, data: dict[str, str], labels: dict[str, str] | None = None,
              manager: str = STATE_MANAGER) -> None:
    """Write one state ConfigMap (the manager's keys, server-side apply), creating kubedr-system when needed."""
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE,
                         "labels": {"app.kubernetes.io/part-of": "kubedr", **(labels or {})}},
            "data": data}
    query = {"fieldManager": manager, "force": "true"}
    try:
        cluster.request("PATCH", _cm_path(name), body, query, "application/apply-patch+yaml")
    except NotFound:
        ensure_system_namespace(cluster)
        cluster.request("PATCH", _cm_path(name), body, query, "application/apply-patch+yaml")


def copy_state(cluster: Cluster, old: str, new: str, labels: dict[str, str]) -> bool:
    """Copy one state ConfigMap under a new name, each key under the field manager that wrote it (so each writer
    keeps updating and removing its own keys); False when old is absent."""
    try:
        live = cluster.request("GET", _cm_path(old))
    except NotFound:
        return False
    data: dict[str, str] = dict(live.get("data") or {})
    by_manager: dict[str, dict[str, str]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        owned = ((entry.get("fieldsV1") or {}).get("f:data") or {}).keys()
        keys = [k[2:] for k in owned if k.startswith("f:") and k[2:] in data]
        manager = entry.get("manager") if entry.get("operation") == "Apply" else STATE_MANAGER
        by_manager.setdefault(str(manager or STATE_MANAGER), {}).update({k: data.pop(k) for k in keys})
    if data:  # keys nobody is recorded for
        by_manager.setdefault(STATE_MANAGER, {}).update(data)
    for manager, part in sorted(by_manager.items(), key=lambda m: m[0] != STATE_MANAGER):
        put_state(cluster, new, part, labels, manager)
    return True


def delete_state(cluster: Cluster, name: str) -> None:
    """Remove one state ConfigMap; absent is fine."""
    try:
        cluster.request("DELETE", _cm_path(name))
    except NotFound:
        pass
