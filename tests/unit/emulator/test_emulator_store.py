"""Store semantics without HTTP: resourceVersions, generation, history rewind, selectors, protobuf bodies."""

from __future__ import annotations

import pytest

from kubedr.emulator import protobuf
from kubedr.emulator.errors import ApiError
from kubedr.emulator.server import bootstrap
from kubedr.emulator.store import ClusterStore
from kubedr.selectors import label_matcher


@pytest.fixture
def store() -> ClusterStore:
    s = ClusterStore(history=50)
    bootstrap(s)
    return s


def _cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data}


def test_one_global_resource_version_and_generation_on_spec_change(store):
    a = store.create(_cm("a", k="1"))
    dep = store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace":
                        "default"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"x": "y"}}, "template": {
                            "metadata": {"labels": {"x": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert int(dep["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    assert "generation" not in a["metadata"] and dep["metadata"]["generation"] == 1
    labelled = store.patch("apps/v1", "Deployment", "d", {"metadata": {"labels": {"l": "v"}}}, namespace="default")
    assert labelled["metadata"]["generation"] == 1
    scaled = store.patch("apps/v1", "Deployment", "d", {"spec": {"replicas": 3}}, namespace="default")
    assert scaled["metadata"]["generation"] == 2
    same = store.patch("apps/v1", "Deployment", "d", {"spec": {"replicas": 3}}, namespace="default")
    assert same["metadata"]["resourceVersion"] == scaled["metadata"]["resourceVersion"]


def test_generate_name_and_validation(store):
    obj = _cm("")
    obj["metadata"] = {"generateName": "web-", "namespace": "default"}
    made = store.create(obj)
    assert made["metadata"]["name"].startswith("web-") and len(made["metadata"]["name"]) == 9
    with pytest.raises(ApiError) as exc:
        store.create(_cm("Bad_Name"))
    assert exc.value.status == 422


def test_list_at_an_old_resource_version_rewinds_the_history(store):
    store.create(_cm("a"))
    rv = store.rv
    store.create(_cm("b"))
    store.patch("v1", "ConfigMap", "a", {"data": {"k": "2"}}, namespace="default")
    store.delete("v1", "ConfigMap", "a", "default")
    at, entries, _ = store.list_rt(store.kind("v1", "ConfigMap"), "default", resource_version=str(rv),
                                   rv_match="Exact")
    assert at == rv and [e.obj["metadata"]["name"] for e in entries if e.obj["metadata"]["name"] != "kube-root-ca.crt"] \
        == ["a"]
    for i in range(60):
        store.create(_cm(f"x{i}"))
    with pytest.raises(ApiError) as exc:
        store.list_rt(store.kind("v1", "ConfigMap"), "default", resource_version=str(rv), rv_match="Exact")
    assert exc.value.status == 410


def test_label_selector_syntax():
    obj = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    for expr, want in (("app=web", True), ("app==web,tier!=back", True), ("app in (web, api)", True),
                       ("app notin (web)", False), ("tier", True), ("!tier", False), ("!missing", True)):
        assert label_matcher(expr)(obj) is want, expr


def test_protobuf_envelope_as_kubectl_sends_it():
    body = (b'k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x1b\n\x11\n\x01x\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00'
            b'\x12\x06\n\x01a\x12\x01b\x1a\x00"\x00')
    assert protobuf.decode(body) == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"},
                                     "data": {"a": "b"}}
