"""Every sanitize rule, shown on a real API object: the field is there before and gone after."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from kubedr import contract
from kubedr import sanitize as sz
from kubedr.sanitize import RULES, SKIPS, sanitize, skip_reason, strip
from tests.conftest import load_fixture

Obj = dict[str, Any]


def fixture(name: str, obj_name: str) -> Obj:
    """One object from a captured list (a fresh copy)."""
    for item in load_fixture(f"objects/{name}")["items"]:
        if item["metadata"]["name"] == obj_name:
            return copy.deepcopy(item)
    raise KeyError(f"{obj_name} not in {name}")


def values_at(obj: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value at a rule path ("*" = each list item)."""
    if not path:
        return [obj]
    head, rest = path[0], path[1:]
    if head == "*":
        return [v for item in obj for v in values_at(item, rest)] if isinstance(obj, list) else []
    if isinstance(obj, dict) and head in obj:
        return values_at(obj[head], rest)
    return []


def ann(key: str, value: str) -> Callable[[Obj], None]:
    def inject(obj: Obj) -> None:
        obj["metadata"].setdefault("annotations", {})[key] = value
    return inject


def setpath(path: tuple[str, ...], value: Any) -> Callable[[Obj], None]:
    def inject(obj: Obj) -> None:
        node = obj
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value
    return inject


def as_kind(kind: str, then: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def inject(obj: Obj) -> None:
        obj["kind"] = kind
        then(obj)
    return inject


# rule id -> (fixture file, object name, inject): inject is None when the real object already has the field;
# otherwise the field is not in the v1.24 captures (noted) and is added to the real object first.
STRIP_CASES: dict[str, tuple[str, str, Callable[[Obj], None] | None]] = {
    "status": ("namespaced-deployment.json", "web", None),
    "metadata.uid": ("namespaced-configmap.json", "app-config", None),
    "metadata.resourceVersion": ("namespaced-configmap.json", "app-config", None),
    "metadata.generation": ("namespaced-deployment.json", "web", None),
    "metadata.creationTimestamp": ("namespaced-configmap.json", "app-config", None),
    "metadata.managedFields": ("namespaced-deployment.json", "web", None),
    # selfLink is gone since 1.20; older servers still send it
    "metadata.selfLink": ("namespaced-configmap.json", "app-config",
                          setpath(("metadata", "selfLink"), "/api/v1/namespaces/fixtures/configmaps/app-config")),
    # an object being deleted (finalizer pending)
    "metadata.deletionTimestamp": ("namespaced-persistentvolumeclaim.json", "static-claim",
                                   setpath(("metadata", "deletionTimestamp"), "2026-11-24T16:50:00Z")),
    "metadata.deletionGracePeriodSeconds": ("namespaced-persistentvolumeclaim.json", "static-claim",
                                            setpath(("metadata", "deletionGracePeriodSeconds"), 0)),
    # a non-controlling reference (controlling ones are skipped): the Deployment's own reference, controller=false
    "metadata.ownerReferences": ("namespaced-configmap.json", "app-config", lambda o: o["metadata"].__setitem__(
        "ownerReferences", [{**fixture("namespaced-replicaset.json", "web-87f8bbf8c")["metadata"]
                             ["ownerReferences"][0], "controller": False}])),
    "metadata.finalizers.*": ("namespaced-persistentvolumeclaim.json", "static-claim", None),
    # the fixtures were applied server-side; client-side `kubectl apply` adds this annotation
    "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration": (
        "namespaced-secret.json", "db-credentials",
        ann("kubectl.kubernetes.io/last-applied-configuration",
            '{"apiVersion":"v1","data":{"password":"bm90LWEtcmVhbC1wYXNzd29yZA=="},"kind":"Secret"}')),
    "metadata.annotations.deployment.kubernetes.io/revision": ("namespaced-deployment.json", "web", None),
    "metadata.annotations.deployment.kubernetes.io/desired-replicas": (
        "namespaced-replicaset.json", "web-87f8bbf8c", None),
    "metadata.annotations.deployment.kubernetes.io/max-replicas": (
        "namespaced-replicaset.json", "web-87f8bbf8c", None),
    # no DaemonSet in the captures: the StatefulSet, as a DaemonSet, with the controller's annotation
    "metadata.annotations.deprecated.daemonset.template.generation": (
        "namespaced-statefulset.json", "db", as_kind("DaemonSet", ann("deprecated.daemonset.template.generation", "1"))),
    "metadata.annotations.pv.kubernetes.io/bind-completed": (
        "namespaced-persistentvolumeclaim.json", "static-claim", None),
    "metadata.annotations.pv.kubernetes.io/bound-by-controller": ("cluster-persistentvolume.json", "fixtures-pv", None),
    # dynamic provisioning did not happen in the capture (static PV / no default class)
    "metadata.annotations.volume.beta.kubernetes.io/storage-provisioner": (
        "namespaced-persistentvolumeclaim.json", "data-db-0",
        ann("volume.beta.kubernetes.io/storage-provisioner", "rancher.io/local-path")),
    "metadata.annotations.volume.kubernetes.io/storage-provisioner": (
        "namespaced-persistentvolumeclaim.json", "data-db-0",
        ann("volume.kubernetes.io/storage-provisioner", "rancher.io/local-path")),
    "metadata.annotations.volume.kubernetes.io/selected-node": (
        "namespaced-persistentvolumeclaim.json", "data-db-0", ann("volume.kubernetes.io/selected-node", "node-a")),
    # old-style leader election on a ConfigMap (kube-system components before Leases)
    "metadata.annotations.control-plane.alpha.kubernetes.io/leader": (
        "namespaced-configmap.json", "app-config",
        ann("control-plane.alpha.kubernetes.io/leader", '{"holderIdentity":"cm-1","leaseDurationSeconds":15}')),
    "metadata.annotations.endpoints.kubernetes.io/last-change-trigger-time": (
        "namespaced-endpoints.json", "web", None),
    "metadata.annotations.batch.kubernetes.io/job-tracking": ("namespaced-job.json", "migrate", None),
    # a token Secret a user created (kubectl) and the token controller filled: the capture's, made the user's
    "data.token": ("namespaced-secret.json", "web-sa-token-k2jdw", None),
    "data.ca.crt": ("namespaced-secret.json", "web-sa-token-k2jdw", None),
    "data.namespace": ("namespaced-secret.json", "web-sa-token-k2jdw", None),
    "metadata.annotations.kubernetes.io/service-account.uid": ("namespaced-secret.json", "web-sa-token-k2jdw", None),
    # kubedr's applier writes these on the secondary (the captures come from a primary)
    "metadata.labels.kubedr.io/managed": ("namespaced-deployment.json", "web",
                                          setpath(("metadata", "labels", "kubedr.io/managed"), "true")),
    "metadata.labels.kubedr.io/source": ("namespaced-deployment.json", "web",
                                         setpath(("metadata", "labels", "kubedr.io/source"), "prod-eu-1")),
    "metadata.annotations.kubedr.io/path": ("namespaced-configmap.json", "app-config",
                                            ann("kubedr.io/path", "fixtures/ConfigMap/app-config.yaml")),
    "metadata.annotations.kubedr.io/primary-replicas": ("namespaced-deployment.json", "web",
                                                        ann("kubedr.io/primary-replicas", "3")),
    "metadata.annotations.kubedr.io/primary-suspend": ("namespaced-cronjob.json", "nightly",
                                                       ann("kubedr.io/primary-suspend", "false")),
    # any kind a standby rule holds, custom resources included
    "metadata.labels.kubedr.io/held": ("namespaced-widget.json", "blue",
                                       setpath(("metadata", "labels", "kubedr.io/held"), "true")),
    "metadata.annotations.kubedr.io/primary-values": ("namespaced-widget.json", "blue",
                                                      ann("kubedr.io/primary-values", '{"/spec/size": 3}')),
    "spec.clusterIP": ("namespaced-service.json", "web", None),
    "spec.clusterIPs": ("namespaced-service.json", "web", None),
    "spec.ports.*.nodePort": ("namespaced-service.json", "web-nodeport", None),
    # allocated for type=LoadBalancer with externalTrafficPolicy=Local (no cloud in the capture)
    "spec.healthCheckNodePort": ("namespaced-service.json", "web-nodeport",
                                 setpath(("spec", "healthCheckNodePort"), 31234)),
    "spec.ipFamilies": ("namespaced-service.json", "web", None),
    "spec.volumeName": ("namespaced-persistentvolumeclaim.json", "static-claim", None),
    # the captured Pods were still Pending (no node)
    "spec.nodeName": ("namespaced-pod.json", "db-0", setpath(("spec", "nodeName"), "node-a")),
    "spec.claimRef.uid": ("cluster-persistentvolume.json", "fixtures-pv", None),
    "spec.claimRef.resourceVersion": ("cluster-persistentvolume.json", "fixtures-pv", None),
    "spec.selector": ("namespaced-job.json", "migrate", None),
    "metadata.labels.controller-uid": ("namespaced-job.json", "migrate", None),
    # 1.27+ adds the prefixed label next to the legacy one
    "metadata.labels.batch.kubernetes.io/controller-uid": (
        "namespaced-job.json", "migrate",
        setpath(("metadata", "labels", "batch.kubernetes.io/controller-uid"), "3c886a4a-9593-42e5-8a61-cd0b1a4ab9d0")),
    "spec.template.metadata.labels.controller-uid": ("namespaced-job.json", "migrate", None),
    "spec.template.metadata.labels.batch.kubernetes.io/controller-uid": (
        "namespaced-job.json", "migrate",
        setpath(("spec", "template", "metadata", "labels", "batch.kubernetes.io/controller-uid"),
                "3c886a4a-9593-42e5-8a61-cd0b1a4ab9d0")),
    "secrets.*": ("namespaced-serviceaccount.json", "web-sa", None),
    "spec.template.metadata.creationTimestamp": ("namespaced-deployment.json", "web", None),
    # no PodTemplate in the captures: the Deployment's template as a PodTemplate object
    "template.metadata.creationTimestamp": (
        "namespaced-deployment.json", "web",
        lambda o: (o.__setitem__("apiVersion", "v1"), o.__setitem__("kind", "PodTemplate"),
                   o.__setitem__("template", o.pop("spec")["template"]))),
    "spec.jobTemplate.metadata.creationTimestamp": ("namespaced-cronjob.json", "nightly", None),
    "spec.jobTemplate.spec.template.metadata.creationTimestamp": ("namespaced-cronjob.json", "nightly", None),
    "spec.volumeClaimTemplates.*.metadata.creationTimestamp": ("namespaced-statefulset.json", "db", None),
    "spec.volumeClaimTemplates.*.status": ("namespaced-statefulset.json", "db", None),
}


def test_sanitize_every_rule_has_a_case_and_ids_are_unique() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(STRIP_CASES), "each RULES entry needs a STRIP_CASES test (and no stale cases)"
    assert all(r.keep is None or r.keep in sz.KEEP for r in RULES)
    assert all(r.why for r in RULES)
    skip_ids = [s.id for s in SKIPS]
    assert len(skip_ids) == len(set(skip_ids)) and set(skip_ids) == set(SKIP_CASES)
    assert all(s.when in sz.WHEN and s.why for s in SKIPS)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_sanitize_strip_rule(rule: sz.StripRule) -> None:
    file, name, inject = STRIP_CASES[rule.id]
    obj = fixture(file, name)
    if inject:
        inject(obj)
    assert rule.kinds is None or sz.type_name(obj) in rule.kinds
    assert values_at(obj, rule.path), f"{rule.id} should be present in {file} {name}"
    before = json.dumps(obj, sort_keys=True)
    out = strip(obj)
    assert values_at(out, rule.path) == [], f"{rule.id} still present after strip"
    assert json.dumps(obj, sort_keys=True) == before, "strip must not mutate its input"
    assert out["metadata"]["name"] == name


def control_plane(namespace: str, name: str, labels: dict[str, str] | None = None, manager: str = "kube-apiserver",
                  then: Callable[[Obj], None] | None = None) -> Callable[[Obj], None]:
    """A captured object turned into what the control plane makes: its name, labels and field manager."""
    def inject(obj: Obj) -> None:
        meta = obj["metadata"]
        meta.update(name=name, labels=labels or {})
        meta.pop("ownerReferences", None)
        if namespace:
            meta["namespace"] = namespace
        for entry in meta.get("managedFields") or []:
            entry["manager"] = manager
        if then:
            then(obj)
    return inject


def _apiserver_ports(obj: Obj) -> None:  # as the API server writes its own Service (no selector)
    obj["spec"].pop("selector", None)
    obj["spec"]["ports"] = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]


RBAC_DEFAULTS = {"kubernetes.io/bootstrapping": "rbac-defaults"}

# No real capture of the control plane's own objects exists in tests/fixtures (the capture namespace was
# `fixtures`): each case is a captured object of the same kind given the name, labels and manager that the
# API server / kubeadm use for theirs (kube-apiserver v1.24+ sources: controlplane/reconcilers,
# rbac/bootstrappolicy, scheduling's system priority classes; kubeadm's bootstrap-token phase).
SKIP_CASES: dict[str, list[tuple[str, str, Callable[[Obj], None] | None]]] = {
    "apiserver-service": [
        ("namespaced-service.json", "web", control_plane("default", "kubernetes", {
            "component": "apiserver", "provider": "kubernetes"}, then=_apiserver_ports)),
        ("namespaced-endpoints.json", "web", control_plane("default", "kubernetes", {
            "endpointslice.kubernetes.io/skip-mirror": "true"})),
        ("namespaced-endpointslice.json", "web-q92ft", control_plane("default", "kubernetes", {
            "kubernetes.io/service-name": "kubernetes"})),
    ],
    "rbac-defaults": [
        ("cluster-clusterrole.json", "fixtures-reader", control_plane("", "view", RBAC_DEFAULTS)),
        ("cluster-clusterrolebinding.json", "fixtures-reader", control_plane("", "system:basic-user", RBAC_DEFAULTS)),
        ("namespaced-role.json", "web-reader", control_plane("kube-system", "extension-apiserver-authentication-reader",
                                                         RBAC_DEFAULTS)),
        ("namespaced-rolebinding.json", "web-reader", control_plane("kube-public", "system:controller:bootstrap-signer",
                                                                RBAC_DEFAULTS)),
    ],
    "system-priority-class": [
        ("cluster-priorityclass.json", "fixtures-high", control_plane("", "system-node-critical")),
        ("cluster-priorityclass.json", "fixtures-high", control_plane("", "system-cluster-critical")),
    ],
    "apiserver-authentication": [("namespaced-configmap.json", "app-config", control_plane(
        "kube-system", "extension-apiserver-authentication"))],
    "cluster-info": [("namespaced-configmap.json", "app-config", control_plane("kube-public", "cluster-info",
                                                                               manager="kubeadm"))],
    "bootstrap-token": [("namespaced-secret.json", "db-credentials", control_plane(
        "kube-system", "bootstrap-token-abcdef", manager="kubeadm",
        then=lambda o: o.update(type="bootstrap.kubernetes.io/token")))],

    "event": [("namespaced-event.json", "web.18eb08bbfe2c8a89", None)],
    # the captured Lease list is empty: a node heartbeat Lease, as the kubelet writes it
    "lease": [("namespaced-configmap.json", "app-config", lambda o: o.update(
        apiVersion="coordination.k8s.io/v1", kind="Lease", data=None,
        spec={"holderIdentity": "node-a", "leaseDurationSeconds": 40}))],
    "controller-revision": [("namespaced-controllerrevision.json", "db-7f89fcd89", None)],
    "kube-root-ca": [("namespaced-configmap.json", "kube-root-ca.crt", None)],
    "service-account-token": [("namespaced-secret.json", "default-token-bm4bg", None),
                              ("namespaced-secret.json", "web-sa-token-k2jdw", None)],
    "controlled": [
        ("namespaced-pod.json", "web-87f8bbf8c-86zm7", None),   # Pod of a ReplicaSet
        ("namespaced-pod.json", "db-0", None),                  # Pod of a StatefulSet
        ("namespaced-pod.json", "migrate-qld52", None),         # Pod of a Job
        ("namespaced-replicaset.json", "web-87f8bbf8c", None),  # ReplicaSet of a Deployment
        ("namespaced-endpointslice.json", "web-q92ft", None),   # EndpointSlice of a Service
        # no CronJob-made Job was captured: the Job with the reference the CronJob controller sets
        ("namespaced-job.json", "migrate", lambda o: o["metadata"].__setitem__("ownerReferences", [{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "controller": True,
            "blockOwnerDeletion": True, "uid": "301b9c35-fe17-4bfa-b6cb-14838d1725df"}])),
        # a DaemonSet's Pod: the ReplicaSet Pod with the DaemonSet as controller
        ("namespaced-pod.json", "web-87f8bbf8c-8n825", lambda o: o["metadata"]["ownerReferences"][0].update(
            kind="DaemonSet", name="agent")),
    ],
    "endpoints-of-service": [("namespaced-endpoints.json", "web", None),
                             ("namespaced-endpoints.json", "web-headless", None)],
    "default-service-account": [("namespaced-serviceaccount.json", "default", None)],
    # the captured Job was still running: the status the job controller writes when it ends (v1.31+)
    "finished-job": [
        ("namespaced-job.json", "migrate", lambda o: o.__setitem__("status", {
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "lastProbeTime": "2026-11-24T16:41:31Z", "lastTransitionTime": "2026-11-24T16:41:31Z"},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "lastProbeTime": "2026-11-24T16:41:31Z", "lastTransitionTime": "2026-11-24T16:41:31Z"}],
            "startTime": "2026-11-24T16:41:20Z", "completionTime": "2026-11-24T16:41:31Z", "succeeded": 1,
            "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}})),
        ("namespaced-job.json", "migrate", lambda o: o.__setitem__("status", {
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}],
            "startTime": "2026-11-24T16:41:20Z", "failed": 7, "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {}})),
    ],
}


@pytest.mark.parametrize("skip_id,case", [(k, c) for k, cases in SKIP_CASES.items() for c in cases],
                         ids=lambda v: v if isinstance(v, str) else v[1])
def test_sanitize_skip_rule(skip_id: str, case: tuple) -> None:
    file, name, inject = case
    obj = fixture(file, name)
    if inject:
        inject(obj)
    reason = skip_reason(obj)
    assert reason is not None and reason.startswith(skip_id + ": ")
    assert sanitize(obj) is None


def test_sanitize_exports_user_objects_of_every_captured_kind() -> None:
    exported = {(o["kind"], o["metadata"]["name"]) for f in [
        "cluster-clusterrole.json", "cluster-clusterrolebinding.json", "cluster-customresourcedefinition.json",
        "cluster-persistentvolume.json", "cluster-priorityclass.json", "cluster-storageclass.json",
        "namespaced-configmap.json", "namespaced-cronjob.json", "namespaced-deployment.json",
        "namespaced-ingress.json", "namespaced-job.json", "namespaced-networkpolicy.json",
        "namespaced-persistentvolumeclaim.json", "namespaced-role.json", "namespaced-rolebinding.json",
        "namespaced-secret.json", "namespaced-service.json", "namespaced-serviceaccount.json",
        "namespaced-statefulset.json", "namespaced-widget.json", "namespace.json"]
        for doc in [load_fixture(f"objects/{f}")] for o in doc.get("items", [doc]) if sanitize(o) is not None}
    assert exported == {
        ("ClusterRole", "fixtures-reader"), ("ClusterRoleBinding", "fixtures-reader"),
        ("CustomResourceDefinition", "widgets.example.com"), ("PersistentVolume", "fixtures-pv"),
        ("PriorityClass", "fixtures-high"), ("StorageClass", "manual"), ("ConfigMap", "app-config"),
        ("CronJob", "nightly"), ("Deployment", "web"), ("Ingress", "web"), ("Job", "migrate"),
        ("NetworkPolicy", "web-allow"), ("PersistentVolumeClaim", "data-db-0"),
        ("PersistentVolumeClaim", "static-claim"), ("Role", "web-reader"), ("RoleBinding", "web-reader"),
        ("Secret", "db-credentials"), ("Service", "web"), ("Service", "web-headless"),
        ("Service", "web-nodeport"), ("ServiceAccount", "web-sa"), ("StatefulSet", "db"), ("Widget", "blue"),
        ("Namespace", "fixtures"),
    }


# ---- ownerReferences: only a controller that is exported (or made by the cluster) keeps a child out ----

APPS_ONLY_CONFIG = {("", "ConfigMap"), ("", "Pod"), ("apps", "ReplicaSet")}  # Deployments excluded, say


def exports(*kinds: tuple[str, str]) -> sz.Exports:
    return lambda group, kind: (group, kind) in kinds


def test_sanitize_an_object_with_a_non_controlling_owner_is_exported_without_the_reference() -> None:
    cm = fixture("namespaced-configmap.json", "app-config")  # as Helm or an operator marks what it made
    cm["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                          "uid": "0b6c4a5e-95d9-4f77-a6c4-3b2f1b0b7d1c", "blockOwnerDeletion": True}]
    assert skip_reason(cm) is None and skip_reason(cm, exports(("apps", "Deployment"))) is None
    cm["metadata"]["ownerReferences"][0]["controller"] = False
    out = sanitize(cm)
    assert out is not None and "ownerReferences" not in out["metadata"] and out["data"] == cm["data"]


def test_sanitize_a_child_whose_controller_is_not_exported_is_exported() -> None:
    rs = fixture("namespaced-replicaset.json", "web-87f8bbf8c")  # controlled by Deployment web
    assert sz.controller_of(rs) == ("apps", "Deployment")
    assert skip_reason(rs, exports(("apps", "Deployment"), ("apps", "ReplicaSet"))).startswith("controlled: ")
    out = sanitize(rs, exports(*APPS_ONLY_CONFIG))
    assert out is not None and "ownerReferences" not in out["metadata"] and out["spec"]["replicas"] == rs["spec"]["replicas"]
    pod = fixture("namespaced-pod.json", "web-87f8bbf8c-86zm7")  # its ReplicaSet is exported: still skipped
    assert skip_reason(pod, exports(*APPS_ONLY_CONFIG)).startswith("controlled: ")
    assert skip_reason(rs) is not None, "without a scope (the applier's strays) every controller counts"


# a mirror Pod: what the kubelet writes for a static Pod (the captured Pod with the reference it sets)
CLUSTER_CONTROLLER_CASES: dict[tuple[str, str], tuple[str, str, Callable[[Obj], None]]] = {
    ("", "Node"): ("namespaced-pod.json", "db-0", lambda o: o["metadata"].update(
        name="etcd-node-a", ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": "node-a", "controller": True,
                                              "uid": "6f1d8e5a-2f0b-4d6e-9c1a-7b3e4f5a6b7c"}],
        annotations={"kubernetes.io/config.mirror": "0cbd1c0f4e1a2d3b", "kubernetes.io/config.source": "file"})),
}


@pytest.mark.parametrize("key", sorted(sz.CLUSTER_CONTROLLERS), ids=lambda k: ".".join(reversed(k)).strip("."))
def test_sanitize_a_child_of_what_the_cluster_makes_is_skipped(key: tuple[str, str]) -> None:
    assert set(CLUSTER_CONTROLLER_CASES) == set(sz.CLUSTER_CONTROLLERS), "each row needs a case (and no stale ones)"
    file, name, inject = CLUSTER_CONTROLLER_CASES[key]
    obj = fixture(file, name)
    inject(obj)
    assert sz.controller_of(obj) == key
    assert skip_reason(obj, exports()).startswith("controlled: "), "never exported, yet its child is recreated"


def test_sanitize_a_job_is_finished_only_by_a_true_complete_or_failed_condition() -> None:
    for conditions in ([{"type": "Suspended", "status": "True", "reason": "JobSuspended"}],
                       [{"type": "Failed", "status": "False"}, {"type": "Complete", "status": "False"}]):
        job = fixture("namespaced-job.json", "migrate")
        job["status"] = {"conditions": conditions, "active": 1}
        assert skip_reason(job) is None, conditions


def test_sanitize_endpoints_the_controller_keeps_are_known_by_label_or_managers() -> None:
    ep = fixture("namespaced-endpoints.json", "web")
    del ep["metadata"]["annotations"]  # no trigger time: the label of the endpoints mirroring / controller
    ep["metadata"]["labels"] = {"endpoints.kubernetes.io/managed-by": "endpoint-controller"}
    assert skip_reason(ep).startswith("endpoints-of-service: ")
    del ep["metadata"]["labels"]  # nothing but who wrote it: the control plane alone
    assert {e["manager"] for e in ep["metadata"]["managedFields"]} <= sz.SYSTEM_MANAGERS
    assert skip_reason(ep).startswith("endpoints-of-service: ")
    ep["metadata"]["managedFields"].append({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
                                            "fieldsType": "FieldsV1", "fieldsV1": {"f:subsets": {}}})
    assert skip_reason(ep) is None, "a person edited it: exported"
    ep["metadata"]["managedFields"] = []
    assert skip_reason(ep) is None, "no managers at all: nothing says the controller keeps it"


# ---- decisions around the keep predicates -----------------------------------------------------------

def test_sanitize_headless_service_keeps_cluster_ip_none() -> None:
    out = sanitize(fixture("namespaced-service.json", "web-headless"))
    assert out["spec"]["clusterIP"] == "None" and out["spec"]["clusterIPs"] == ["None"]


def _own(obj: Obj, manager: str, fields: dict) -> None:
    obj["metadata"]["managedFields"].append(
        {"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields, "manager": manager, "operation": "Apply"})


def test_sanitize_keeps_a_node_port_a_user_set() -> None:
    svc = fixture("namespaced-service.json", "web-nodeport")
    _own(svc, "helm", {"f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:nodePort": {}}}}})
    assert sanitize(svc)["spec"]["ports"][0]["nodePort"] == 32573
    svc = fixture("namespaced-service.json", "web-nodeport")  # owned by a controller: still allocated state
    _own(svc, "kube-controller-manager", {"f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:nodePort": {}}}}})
    assert "nodePort" not in sanitize(svc)["spec"]["ports"][0]
    svc = fixture("namespaced-service.json", "web-nodeport")  # the user owns a different port's entry
    _own(svc, "helm", {"f:spec": {"f:ports": {'k:{"port":443,"protocol":"TCP"}': {"f:nodePort": {}}}}})
    assert "nodePort" not in sanitize(svc)["spec"]["ports"][0]


def test_sanitize_keeps_a_volume_name_a_user_pre_bound() -> None:
    pvc = fixture("namespaced-persistentvolumeclaim.json", "static-claim")
    pvc["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:volumeName"] = {}
    assert sanitize(pvc)["spec"]["volumeName"] == "fixtures-pv"


def test_sanitize_job_with_manual_selector_keeps_selector_and_labels() -> None:
    job = fixture("namespaced-job.json", "migrate")
    job["spec"]["manualSelector"] = True
    out = sanitize(job)
    assert out["spec"]["selector"] == {"matchLabels": {"controller-uid": "3c886a4a-9593-42e5-8a61-cd0b1a4ab9d0"}}
    assert "controller-uid" in out["spec"]["template"]["metadata"]["labels"]


def test_sanitize_service_account_keeps_user_listed_secrets() -> None:
    sa = fixture("namespaced-serviceaccount.json", "web-sa")
    sa["secrets"].append({"name": "registry-pull"})
    assert sanitize(sa)["secrets"] == [{"name": "registry-pull"}]


def test_sanitize_default_service_account_is_exported_once_changed() -> None:
    sa = fixture("namespaced-serviceaccount.json", "default")
    sa["imagePullSecrets"] = [{"name": "registry-pull"}]
    out = sanitize(sa)
    assert out == {"apiVersion": "v1", "kind": "ServiceAccount", "imagePullSecrets": [{"name": "registry-pull"}],
                   "metadata": {"name": "default", "namespace": "fixtures"}}


def test_sanitize_keeps_user_finalizers_and_drops_system_ones() -> None:
    cm = fixture("namespaced-configmap.json", "app-config")
    cm["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection", "example.com/cleanup"]
    assert sanitize(cm)["metadata"]["finalizers"] == ["example.com/cleanup"]
    assert "finalizers" not in sanitize(fixture("namespaced-persistentvolumeclaim.json", "static-claim"))["metadata"]


def test_sanitize_hand_written_endpoints_are_exported() -> None:
    ep = fixture("namespaced-endpoints.json", "web")
    del ep["metadata"]["annotations"]
    ep["metadata"]["managedFields"][0]["manager"] = "kubectl"
    ep["subsets"] = [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 5432}]}]
    assert sanitize(ep)["subsets"][0]["addresses"] == [{"ip": "10.0.0.5"}]


def test_sanitize_pv_keeps_claim_identity() -> None:
    out = sanitize(fixture("cluster-persistentvolume.json", "fixtures-pv"))
    assert out["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": "static-claim",
                                       "namespace": "fixtures"}


def test_sanitize_empty_maps_left_by_stripping_go() -> None:
    out = sanitize(fixture("namespaced-cronjob.json", "nightly"))
    assert "metadata" not in out["spec"]["jobTemplate"]
    out = sanitize(fixture("namespaced-persistentvolumeclaim.json", "static-claim"))
    assert "annotations" not in out["metadata"]


# ---- status-only and bookkeeping-only changes give identical bytes ----------------------------------

def test_sanitize_status_and_bookkeeping_changes_give_identical_bytes() -> None:
    dep = fixture("namespaced-deployment.json", "web")
    later = copy.deepcopy(dep)
    later["metadata"]["resourceVersion"] = "9999"
    later["metadata"]["generation"] = 7
    later["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "5"
    later["metadata"]["managedFields"].append({"manager": "kubectl-rollout", "operation": "Update",
                                               "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {}})
    later["status"] = {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 7}
    assert contract.dump(sanitize(dep)) == contract.dump(sanitize(later))
    later["spec"]["replicas"] = 4  # a real change still shows
    assert contract.dump(sanitize(dep)) != contract.dump(sanitize(later))


def test_sanitize_rebinding_a_claim_gives_identical_bytes() -> None:
    pending = fixture("namespaced-persistentvolumeclaim.json", "static-claim")
    bound = copy.deepcopy(pending)
    for obj in (pending,):
        del obj["spec"]["volumeName"]
        del obj["metadata"]["annotations"]
        obj["status"] = {"phase": "Pending"}
        obj["metadata"]["managedFields"] = obj["metadata"]["managedFields"][:1]
    assert contract.dump(sanitize(pending)) == contract.dump(sanitize(bound))


def test_sanitize_never_mutates_and_copies_deeply() -> None:
    svc = fixture("namespaced-service.json", "web")
    before = json.dumps(svc, sort_keys=True)
    out = sanitize(svc)
    out["spec"]["ports"][0]["port"] = 1
    out["spec"]["selector"]["app"] = "x"
    assert json.dumps(svc, sort_keys=True) == before


def _user_made_token_secret() -> Obj:
    """The captured token Secret as `kubectl apply` of a manifest with type and SA annotation would leave it."""
    obj = fixture("namespaced-secret.json", "web-sa-token-k2jdw")
    obj["metadata"]["managedFields"].insert(0, {
        "apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl", "operation": "Apply",
        "time": "2026-11-24T16:41:19Z", "fieldsV1": {"f:metadata": {"f:annotations": {
            "f:kubernetes.io/service-account.name": {}}}, "f:type": {}}})
    return obj


def test_sanitize_a_user_made_token_secret_is_exported_for_the_secondarys_controller_to_fill() -> None:
    out = sanitize(_user_made_token_secret())
    assert out is not None
    assert out["type"] == "kubernetes.io/service-account-token"
    assert out["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "web-sa"}
    assert not out.get("data")


def test_sanitize_keeps_data_keys_named_like_token_fields_in_other_secrets() -> None:
    obj = fixture("namespaced-secret.json", "db-credentials")
    obj["data"].update(token="dG9r", namespace="bnM=")
    obj["data"]["ca.crt"] = "Y2E="
    assert set(sanitize(obj)["data"]) == {"password", "username", "token", "namespace", "ca.crt"}


def test_sanitize_same_names_elsewhere_are_user_objects() -> None:
    """The control-plane rules match the reserved name and namespace (or label), not the kind."""
    svc = fixture("namespaced-service.json", "web")
    control_plane("shop", "kubernetes")(svc)
    assert sanitize(svc) is not None
    role = fixture("cluster-clusterrole.json", "fixtures-reader")
    control_plane("", "view", {"app": "mine"})(role)
    assert sanitize(role) is not None
    cm = fixture("namespaced-configmap.json", "app-config")
    control_plane("default", "cluster-info")(cm)
    assert sanitize(cm) is not None
