"""Cluster-scoped objects follow the namespaces that depend on them (real fixtures where they exist)."""

from __future__ import annotations

from kubedr.exporter.events import Event
from kubedr.exporter.selection import Selection
from kubedr.kubeapi import Resource

NS = Resource("", "v1", "namespaces", "Namespace", False)
CR = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
CRB = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False)
SC = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)
PV = Resource("", "v1", "persistentvolumes", "PersistentVolume", False)
PVC = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
CRD = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
WIDGET = Resource("example.com", "v1", "widgets", "Widget", True)
NODE = Resource("", "v1", "nodes", "Node", False)


def obj(rtype: Resource, name: str, ns: str = "", **body) -> dict:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": rtype.api_version, "kind": rtype.kind, "metadata": meta, **body}


def names(decisions) -> dict[str, bool]:
    return {o["metadata"]["name"]: w for o, w in decisions}


def test_namespaces_and_namespaced_objects_follow_the_selection() -> None:
    sel = Selection(["shop"])
    assert names(sel.process(Event("ADDED", NS, obj(NS, "shop")))) == {"shop": True}
    assert names(sel.process(Event("ADDED", NS, obj(NS, "kube-system")))) == {"kube-system": False}
    assert names(sel.process(Event("ADDED", PVC, obj(PVC, "x", "other")))) == {"x": False}
    assert not sel.watches(NODE)
    assert Selection(["shop"], cluster_kinds=["nodes"]).watches(NODE)


def test_cluster_role_follows_a_binding_of_a_selected_service_account() -> None:
    sel = Selection(["shop"])
    assert names(sel.process(Event("ADDED", CR, obj(CR, "reader")))) == {"reader": False}
    binding = obj(CRB, "shop-reader", roleRef={"kind": "ClusterRole", "name": "reader"},
                  subjects=[{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}])
    assert names(sel.process(Event("ADDED", CRB, binding))) == {"shop-reader": True, "reader": True}
    assert names(sel.process(Event("DELETED", CRB, binding))) == {"shop-reader": False, "reader": False}


def test_storage_class_and_volume_follow_claims_and_crd_follows_custom_resources() -> None:
    sel = Selection(["shop"])
    sel.process(Event("ADDED", SC, obj(SC, "fast")))
    sel.process(Event("ADDED", PV, obj(PV, "pv1", spec={"storageClassName": "fast"})))
    sel.process(Event("ADDED", CRD, obj(CRD, "widgets.example.com")))
    claim = obj(PVC, "data", "shop", spec={"storageClassName": "fast", "volumeName": "pv1"})
    assert names(sel.process(Event("ADDED", PVC, claim))) == {"data": True, "fast": True, "pv1": True}
    assert names(sel.process(Event("ADDED", WIDGET, obj(WIDGET, "w", "shop")))) == {
        "w": True, "widgets.example.com": True}
    assert names(sel.process(Event("SYNCED", PVC, None, 0.0, set()))) == {"fast": False, "pv1": False}


def test_all_namespaces_minus_excluded() -> None:
    sel = Selection(None, exclude=["kube-system"])
    assert names(sel.process(Event("ADDED", NS, obj(NS, "kube-system")))) == {"kube-system": False}
    assert names(sel.process(Event("ADDED", NS, obj(NS, "anything")))) == {"anything": True}
    assert names(sel.process(Event("ADDED", PVC, obj(PVC, "x", "kube-system")))) == {"x": False}


VWC = Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                   "ValidatingWebhookConfiguration", False)
MWC = Resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                   "MutatingWebhookConfiguration", False)
APISVC = Resource("apiregistration.k8s.io", "v1", "apiservices", "APIService", False)


def test_webhooks_and_aggregated_apis_follow_the_namespace_serving_them() -> None:
    sel = Selection(["cert-manager"])
    assert sel.watches(VWC) and sel.watches(MWC) and sel.watches(APISVC)

    def webhook(rtype: Resource, name: str, *namespaces: str) -> dict:
        hooks = [{"name": f"{ns}.example.com", "clientConfig": {"service": {"namespace": ns, "name": "hook"}}}
                 for ns in namespaces] + [{"name": "url.example.com", "clientConfig": {"url": "https://x"}}]
        return obj(rtype, name, webhooks=hooks)
    assert names(sel.process(Event("ADDED", VWC, webhook(VWC, "cm", "cert-manager")))) == {"cm": True}
    assert names(sel.process(Event("ADDED", MWC, webhook(MWC, "mixed", "other", "cert-manager")))) == {"mixed": True}
    assert names(sel.process(Event("ADDED", VWC, webhook(VWC, "kyverno", "kyverno")))) == {"kyverno": False}
    metrics = obj(APISVC, "v1beta1.metrics.k8s.io", spec={"service": {"namespace": "cert-manager", "name": "m"}})
    assert names(sel.process(Event("ADDED", APISVC, metrics))) == {"v1beta1.metrics.k8s.io": True}
    local = obj(APISVC, "v1.apps", spec={"service": None, "group": "apps"})  # served by the apiserver itself
    assert names(sel.process(Event("ADDED", APISVC, local))) == {"v1.apps": False}
