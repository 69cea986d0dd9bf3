"""Fields a real cluster refuses to change after creation: 422 Invalid, worded as the apiserver words it."""

from __future__ import annotations

import pytest

from kubedr.emulator.errors import ApiError
from kubedr.emulator.immutable import go_label_selector, go_role_ref
from kubedr.emulator.server import bootstrap
from kubedr.emulator.store import ClusterStore

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


@pytest.fixture
def store() -> ClusterStore:
    s = ClusterStore(history=50)
    bootstrap(s)
    return s


def _invalid(call) -> ApiError:
    with pytest.raises(ApiError) as exc:
        call()
    assert exc.value.status == 422 and exc.value.reason == "Invalid"
    return exc.value


def test_go_value_dumps():
    assert go_label_selector({"matchLabels": {"b": "2", "a": "1"}}) == (
        'v1.LabelSelector{MatchLabels:map[string]string{"a":"1", "b":"2"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}")
    assert go_label_selector({"matchExpressions": [{"key": "k", "operator": "In", "values": ["x"]}]}) == (
        'v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{'
        'v1.LabelSelectorRequirement{Key:"k", Operator:"In", Values:[]string{"x"}}}}')
    assert go_role_ref({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}) == \
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"r"}'


def test_deployment_selector_is_immutable(store):
    store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    err = _invalid(lambda: store.patch("apps/v1", "Deployment", "web", {"spec": {
        "selector": {"matchLabels": {"app": "web2"}}, "template": {"metadata": {"labels": {"app": "web2"}}}}},
        namespace="default"))
    assert err.message == ('Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{'
                           'MatchLabels:map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement'
                           '(nil)}: field is immutable')
    assert err.details["group"] == "apps" and err.details["kind"] == "Deployment"
    assert err.details["causes"][0]["field"] == "spec.selector"
    # other spec changes still go through
    assert store.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 3}}, namespace="default")[
        "spec"]["replicas"] == 3


def test_statefulset_spec_outside_the_mutable_fields(store):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}}
    store.create(sts)
    store.patch("apps/v1", "StatefulSet", "db", {"spec": {"replicas": 2, "minReadySeconds": 5}}, namespace="default")
    err = _invalid(lambda: store.patch("apps/v1", "StatefulSet", "db", {"spec": {"serviceName": "other"}},
                                       namespace="default"))
    assert err.message.startswith('StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec '
                                  "for fields other than 'replicas', 'ordinals', 'template'")


def test_immutable_configmap_and_secret(store):
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
                  "data": {"a": "1"}, "immutable": True})
    err = _invalid(lambda: store.patch("v1", "ConfigMap", "c", {"data": {"a": "2"}, "immutable": False},
                                       namespace="default"))
    assert err.message == ('ConfigMap "c" is invalid: [immutable: Forbidden: field is immutable when `immutable` is '
                           "set, data: Forbidden: field is immutable when `immutable` is set]")
    store.patch("v1", "ConfigMap", "c", {"metadata": {"labels": {"l": "v"}}}, namespace="default")  # metadata is fine
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
                  "type": "Opaque"})
    err = _invalid(lambda: store.patch("v1", "Secret", "s", {"type": "kubernetes.io/tls"}, namespace="default"))
    assert err.message == 'Secret "s" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable'


def test_role_ref_service_ip_and_storage_class(store):
    store.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                  "metadata": {"name": "rb", "namespace": "default"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"},
                  "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    err = _invalid(lambda: store.patch("rbac.authorization.k8s.io/v1", "RoleBinding", "rb",
                                       {"roleRef": {"name": "b"}}, namespace="default"))
    assert err.message.endswith('roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                                'Kind:"Role", Name:"b"}: cannot change roleRef')
    assert err.message.startswith('RoleBinding.rbac.authorization.k8s.io "rb" is invalid')
    err = _invalid(lambda: store.patch("v1", "Service", "kubernetes", {"spec": {"clusterIP": "10.96.0.2"}},
                                       namespace="default"))
    assert err.details["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.clusterIP",
                                      "message": 'Invalid value: "10.96.0.2": field is immutable'}]
    store.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
                  "provisioner": "csi.example.com", "parameters": {"type": "ssd"}})
    err = _invalid(lambda: store.patch("storage.k8s.io/v1", "StorageClass", "fast", {"parameters": {"type": "hdd"}}))
    assert "parameters: Forbidden: updates to parameters are forbidden." in err.message


def test_pvc_spec_except_requests(store):
    store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data",
                  "namespace": "default"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}})
    store.patch("v1", "PersistentVolumeClaim", "data", {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
                namespace="default")
    err = _invalid(lambda: store.patch("v1", "PersistentVolumeClaim", "data",
                                       {"spec": {"accessModes": ["ReadWriteMany"]}}, namespace="default"))
    assert "spec: Forbidden: spec is immutable after creation except resources.requests" in err.message
