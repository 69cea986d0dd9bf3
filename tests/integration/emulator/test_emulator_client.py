"""Conformance of the emulator through the kubernetes Python client (typed, dynamic, raw HTTP)."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from kubedr.emulator.server import Emulator
from kubedr.kube import api_client
from tests.conftest import free_port, load_fixture, wait_until


def _raw(emu, path: str, method: str = "GET", body: dict | None = None, headers: dict | None = None,
         token: str | None = "default"):
    req = urllib.request.Request(emu.url + path, method=method, data=json.dumps(body).encode() if body else None)
    if token:
        req.add_header("Authorization", f"Bearer {emu.token if token == 'default' else token}")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _cm(name: str, ns: str = "default", **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "data": {"k": name}}


@pytest.fixture
def core(emulator) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(str(emulator.kubeconfig)))


def test_discovery_matches_the_real_server(emulator):
    for path, fixture in (("/api/v1", "discovery/api-v1.json"), ("/apis/apps/v1", "discovery/apis-apps_v1.json"),
                          ("/apis/rbac.authorization.k8s.io/v1", "discovery/apis-rbac.authorization.k8s.io_v1.json")):
        code, ours = _raw(emulator, path)
        assert code == 200
        real = {r["name"]: r for r in load_fixture(fixture)["resources"]}
        for r in ours["resources"]:
            want = real[r["name"]]
            for key in ("namespaced", "kind", "verbs", "shortNames", "categories", "storageVersionHash", "group",
                        "version"):
                assert r.get(key) == want.get(key), (path, r["name"], key)
    code, api = _raw(emulator, "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    code, groups = _raw(emulator, "/apis")
    names = [g["name"] for g in groups["groups"]]
    real = [g["name"] for g in load_fixture("discovery/apis.json")["groups"]]
    assert [n for n in names if n in real] == [n for n in real if n in names]  # the real server's priority order
    assert names[:2] == ["apiregistration.k8s.io", "apps"]
    assert {"autoscaling", "batch", "admissionregistration.k8s.io", "apiextensions.k8s.io"} <= set(names)


def test_dynamic_client_crud_and_errors_shaped_like_the_real_server(emulator):
    dyn = DynamicClient(api_client(str(emulator.kubeconfig)))
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    created = cms.create(body=_cm("app-config"), namespace="default")
    meta = created.metadata
    assert meta.uid and meta.resourceVersion and meta.creationTimestamp
    assert created.metadata.managedFields[0].manager == "OpenAPI-Generator"
    with pytest.raises(ApiException) as exc:
        cms.create(body=_cm("app-config"), namespace="default")
    assert exc.value.status == 409
    want = load_fixture("errors/409-already-exists.json")
    assert json.loads(exc.value.body) == want
    with pytest.raises(ApiException) as exc:
        cms.get(name="missing", namespace="default")
    assert json.loads(exc.value.body) == load_fixture("errors/404-not-found.json")
    with pytest.raises(ApiException) as exc:
        cms.create(body=_cm("x", "no-such-ns"), namespace="no-such-ns")
    assert json.loads(exc.value.body) == load_fixture("errors/404-namespace-missing.json")
    bad = _cm("Bad_Name")
    with pytest.raises(ApiException) as exc:
        cms.create(body=bad, namespace="default")
    assert json.loads(exc.value.body) == load_fixture("errors/422-invalid.json")


def test_update_with_stale_resource_version_is_a_conflict(emulator, core):
    created = core.create_namespaced_config_map("default", _cm("app-config"))
    created.data = {"k": "new"}
    updated = core.replace_namespaced_config_map("app-config", "default", created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("app-config", "default", created)  # still carries the old rv
    assert json.loads(exc.value.body) == load_fixture("errors/409-conflict-stale-resourceversion.json")
    same = core.replace_namespaced_config_map("app-config", "default", updated)
    assert same.metadata.resource_version == updated.metadata.resource_version  # a no-op write bumps nothing


def test_list_selectors_and_pagination(emulator, core):
    for i in range(5):
        core.create_namespaced_config_map("default", _cm(f"c{i}", tier="a" if i % 2 else "b"))
    names = [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="tier=a").items]
    assert names == ["c1", "c3"]
    names = [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="tier in (a,b),"
                                                                      "tier!=b").items]
    assert names == ["c1", "c3"]
    got = core.list_namespaced_config_map("default", field_selector="metadata.name=c2").items
    assert [c.metadata.name for c in got] == ["c2"]
    page = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in page.items] == ["c0", "c1"]
    assert page.metadata.remaining_item_count == 4 and page.metadata._continue
    seen = [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
        seen += [c.metadata.name for c in page.items]
    assert seen == ["c0", "c1", "c2", "c3", "c4", "kube-root-ca.crt"]
    everywhere = core.list_config_map_for_all_namespaces(label_selector="tier")
    assert len(everywhere.items) == 5


def test_dry_run_stores_nothing_and_bumps_nothing(emulator, core):
    rv = emulator.store.rv
    out = core.create_namespaced_config_map("default", _cm("dry"), dry_run="All")
    assert out.metadata.name == "dry" and out.metadata.uid
    assert emulator.store.rv == rv
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", "default")


def test_watch_from_resource_version_and_bookmarks(emulator, core):
    first = core.create_namespaced_config_map("default", _cm("watched"))
    core.patch_namespaced_config_map("watched", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("watched", "default")
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=first.metadata.resource_version,
                       allow_watch_bookmarks=True, timeout_seconds=3):
        events.append(ev)
        if ev["type"] == "BOOKMARK":
            break
    types = [e["type"] for e in events]
    assert types == ["MODIFIED", "DELETED", "BOOKMARK"]
    assert events[1]["object"].metadata.name == "watched"
    assert int(events[1]["object"].metadata.resource_version) > int(events[0]["object"].metadata.resource_version)


def test_watch_without_resource_version_starts_with_synthetic_added(emulator, core):
    core.create_namespaced_config_map("default", _cm("one"))
    got = []

    def consume():
        for ev in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=5):
            got.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "two":
                return

    t = threading.Thread(target=consume)
    t.start()
    wait_until(lambda: len(got) >= 2, what="synthetic ADDED events")
    core.create_namespaced_config_map("default", _cm("two"))
    t.join(10)
    assert ("ADDED", "one") in got and ("ADDED", "kube-root-ca.crt") in got and got[-1] == ("ADDED", "two")


def test_watch_from_compacted_resource_version_is_410_expired(tmp_path):
    with Emulator(listen=f"127.0.0.1:{free_port()}", history=20) as emu:
        emu.write_kubeconfig(tmp_path / "kc")
        for i in range(40):
            emu.api.create(_cm(f"c{i}"))
        raw = urllib.request.Request(emu.url + "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=2",
                                     headers={"Authorization": f"Bearer {emu.token}"})
        with urllib.request.urlopen(raw) as resp:
            lines = resp.read().decode().splitlines()
        want = json.loads(load_fixture_line("watch/too-old-resourceversion.jsonl"))
        got = json.loads(lines[0])
        assert got["type"] == "ERROR" and got["object"]["code"] == 410 and got["object"]["reason"] == "Expired"
        assert set(got["object"]) == set(want["object"])
        assert got["object"]["message"].startswith("too old resource version: 2 (")
        core = client.CoreV1Api(api_client(str(emu.kubeconfig)))
        with pytest.raises(ApiException) as exc:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="2",
                                          timeout_seconds=2):
                pass
        assert exc.value.status == 410


def load_fixture_line(rel: str) -> str:
    from tests.conftest import FIXTURES
    return (FIXTURES / rel).read_text().splitlines()[0]


def test_namespace_lifecycle_and_terminating_forbids_creates(emulator, core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="shop")))
    wait_until(lambda: emulator.api.list("v1", "ServiceAccount", "shop"), what="default ServiceAccount")
    ns = core.read_namespace("shop")
    assert ns.status.phase == "Active" and ns.metadata.labels["kubernetes.io/metadata.name"] == "shop"
    core.create_namespaced_config_map("shop", _cm("a", "shop"))
    held = _cm("held", "shop")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_config_map("shop", held)
    core.delete_namespace("shop")
    ns = core.read_namespace("shop")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp
    wait_until(lambda: [c.metadata.name for c in core.list_namespaced_config_map("shop").items] == ["held"],
               what="namespace emptied but for the object with a finalizer")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("shop", _cm("b", "shop"))
    assert exc.value.status == 403 and json.loads(exc.value.body)["reason"] == "Forbidden"
    assert core.read_namespace("shop").status.phase == "Terminating"
    core.patch_namespaced_config_map("held", "shop", {"metadata": {"finalizers": None}})
    wait_until(lambda: "shop" not in [n.metadata.name for n in core.list_namespace().items], what="namespace gone")
    assert core.list_namespaced_config_map("shop").items == []


def test_bearer_token_checked(tmp_path):
    with Emulator(listen=f"127.0.0.1:{free_port()}") as emu:
        code, body = _raw(emu, "/api/v1/namespaces", token="wrong")
        assert code == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
        assert _raw(emu, "/version", token=None)[0] == 200
    with Emulator(listen=f"127.0.0.1:{free_port()}", require_auth=True) as emu:
        assert _raw(emu, "/api/v1/namespaces", token=None)[0] == 401
        assert _raw(emu, "/api/v1/namespaces")[0] == 200


def test_tls_with_kubeconfig_ca(tmp_path):
    with Emulator(listen=f"127.0.0.1:{free_port()}", tls=True) as emu:
        kc = emu.write_kubeconfig(tmp_path / "kc")
        core = client.CoreV1Api(api_client(str(kc)))
        assert "default" in [n.metadata.name for n in core.list_namespace().items]


def test_status_and_spec_split_between_main_resource_and_status(emulator, core):
    emulator.controllers.stop()  # the deployment controller would rewrite the status we check here
    apps = client.AppsV1Api(api_client(str(emulator.kubeconfig)))
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c",
                                                                                          "image": "i:1"}]}}},
           "status": {"replicas": 42}}
    created = apps.create_namespaced_deployment("default", dep)
    assert created.status.replicas is None  # status dropped on create
    assert created.spec.template.spec.containers[0].termination_message_path == "/dev/termination-log"
    live = apps.patch_namespaced_deployment_status("d", "default", {"status": {"replicas": 7},
                                                                    "spec": {"replicas": 9}})
    assert live.status.replicas == 7 and live.spec.replicas == 0 and live.metadata.generation == 1
    live = apps.patch_namespaced_deployment("d", "default", {"status": {"replicas": 1}, "spec": {"replicas": 0,
                                                                                                "paused": True}})
    assert live.status.replicas == 7 and live.spec.paused and live.metadata.generation == 2
    scale = apps.read_namespaced_deployment_scale("d", "default")
    assert scale.spec.replicas == 0 and scale.status.selector == "a=b"


def test_custom_resources_via_dynamic_client(emulator):
    dyn = DynamicClient(api_client(str(emulator.kubeconfig)))
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crd = load_fixture("objects/cluster-customresourcedefinition.json")["items"][0]
    body = {"apiVersion": crd["apiVersion"], "kind": crd["kind"], "metadata": {"name": crd["metadata"]["name"]},
            "spec": crd["spec"]}
    crds.create(body=body)
    live = crds.get(name="widgets.example.com")
    want = {c["type"]: (c["status"], c["reason"]) for c in crd["status"]["conditions"]}
    assert {c.type: (c.status, c.reason) for c in live.status.conditions} == want
    assert live.status.acceptedNames.kind == "Widget"
    dyn = DynamicClient(api_client(str(emulator.kubeconfig)))  # fresh discovery
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    w = widgets.create(body={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue"},
                             "spec": {"size": 1}}, namespace="default")
    assert w.metadata.generation == 1
    widgets.patch(name="blue", namespace="default", body={"spec": {"size": 2}},
                  content_type="application/merge-patch+json")
    assert widgets.get(name="blue", namespace="default").metadata.generation == 2
    items = widgets.get(namespace="default").items
    assert [i.metadata.name for i in items] == ["blue"] and items[0].kind == "Widget"
    code, body = _raw(emulator, "/apis/example.com/v1", token="default")
    assert [r["name"] for r in body["resources"]] == ["widgets", "widgets/status"]
    crds.delete(name="widgets.example.com")
    assert _raw(emulator, "/apis/example.com/v1/namespaces/default/widgets")[0] == 404
    assert "example.com" not in [g["name"] for g in _raw(emulator, "/apis")[1]["groups"]]


def test_propagation_policies(emulator):
    api = emulator.api
    owner = api.create(_cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    for name in ("dep1", "dep2"):
        obj = _cm(name)
        obj["metadata"]["ownerReferences"] = [ref]
        api.create(obj)
    api.delete("v1", "ConfigMap", "owner", "default", propagation="Orphan")
    left = {c["metadata"]["name"]: c["metadata"].get("ownerReferences") for c in api.list("v1", "ConfigMap",
                                                                                            "default")}
    assert left["dep1"] is None and left["dep2"] is None and "owner" not in left
    owner = api.create(_cm("owner"))
    ref["uid"] = owner["metadata"]["uid"]
    obj = _cm("dep3")
    obj["metadata"]["ownerReferences"] = [ref]
    api.create(obj)
    w = api.watch("v1", "ConfigMap", "default", resource_version=str(emulator.store.rv))
    api.delete("v1", "ConfigMap", "owner", "default", propagation="Foreground")
    lines = [json.loads(x) for x in w.take(1)]
    w.close()
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in lines]
    assert seen[0] == ("MODIFIED", "owner") and ("DELETED", "dep3") in seen and seen[-1] == ("DELETED", "owner")
    assert lines[0]["object"]["metadata"]["finalizers"] == ["foregroundDeletion"]


def test_foreground_deletion_waits_for_a_blocking_dependent_with_a_finalizer(emulator):
    api = emulator.api
    owner = api.create(_cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
           "controller": True, "blockOwnerDeletion": True}
    dep = _cm("dep")
    dep["metadata"].update(ownerReferences=[ref], finalizers=["example.com/hold"])
    api.create(dep)
    api.delete("v1", "ConfigMap", "owner", "default", propagation="Foreground")
    held = api.get("v1", "ConfigMap", "owner", "default")   # still there: its dependent blocks it
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"] and held["metadata"]["deletionTimestamp"]
    assert api.get("v1", "ConfigMap", "dep", "default")["metadata"]["deletionTimestamp"]
    dep = api.get("v1", "ConfigMap", "dep", "default")
    dep["metadata"]["finalizers"] = []                      # the dependent's controller lets go
    api.update(dep)
    names = {c["metadata"]["name"] for c in api.list("v1", "ConfigMap", "default")}
    assert "dep" not in names and "owner" not in names


def test_controller_noise_matches_the_real_shapes(emulator, core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="fixtures")))
    wait_until(lambda: len(emulator.api.list("v1", "ConfigMap", "fixtures")) == 1, what="kube-root-ca.crt")
    real = {c["metadata"]["name"]: c for c in load_fixture("objects/namespaced-configmap.json")["items"]}
    ours = emulator.api.get("v1", "ConfigMap", "kube-root-ca.crt", "fixtures")
    assert ours["metadata"]["annotations"] == real["kube-root-ca.crt"]["metadata"]["annotations"]
    assert ours["metadata"]["managedFields"][0]["fieldsV1"] == real["kube-root-ca.crt"]["metadata"][
        "managedFields"][0]["fieldsV1"]
    assert ours["metadata"]["managedFields"][0]["manager"] == "kube-controller-manager"
    svc = load_fixture("objects/namespaced-service.json")["items"][0]
    created = emulator.api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                   "namespace": "fixtures"}, "spec": {"selector": {"app": "web"}, "ports": [
                                       {"name": "http", "port": 80, "targetPort": "http"}]}}, manager="kubectl")
    assert set(created["spec"]) == set(svc["spec"])
    assert created["spec"]["clusterIP"].startswith("10.")
    wait_until(lambda: emulator.api.list("discovery.k8s.io/v1", "EndpointSlice", "fixtures"), what="slice")
    eps = emulator.api.list("discovery.k8s.io/v1", "EndpointSlice", "fixtures")[0]
    real_eps = load_fixture("objects/namespaced-endpointslice.json")["items"][2]
    assert set(eps) == set(real_eps) and eps["metadata"]["labels"] == real_eps["metadata"]["labels"]
    assert eps["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    wait_until(lambda: emulator.api.list("v1", "Endpoints", "fixtures"), what="endpoints")
    # as kube-controller-manager's endpoints controller: the Endpoints go with their Service (the slices by owner)
    emulator.api.delete("v1", "Service", "web", "fixtures")
    wait_until(lambda: not emulator.api.list("v1", "Endpoints", "fixtures"), what="the endpoints gone with the service")


def test_list_at_exact_resource_version_and_error_statuses(emulator, core):
    core.create_namespaced_config_map("default", _cm("a"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", _cm("b"))
    core.delete_namespaced_config_map("a", "default")
    code, old = _raw(emulator, f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}"
                               "&resourceVersionMatch=Exact")
    assert code == 200 and [i["metadata"]["name"] for i in old["items"]] == ["a", "kube-root-ca.crt"]
    assert old["metadata"]["resourceVersion"] == rv and "kind" not in old["items"][0]
    code, body = _raw(emulator, "/api/v1/namespaces/default/configmaps/b", method="PATCH", body={"data": {}},
                      headers={"Content-Type": "text/plain"})
    assert code == 415 and body["reason"] == "UnsupportedMediaType"
    code, body = _raw(emulator, "/api/v1/namespaces/default/configmaps/b", method="POST", body={})
    assert code == 405 and body["reason"] == "MethodNotAllowed"
    code, body = _raw(emulator, "/apis/nope.example.com/v1")
    assert code == 404


def test_openapi_v2_content_negotiation(emulator):
    """JSON or gnostic protobuf as kube-openapi's handler serves them; anything else is a 406."""
    def get(accept: str) -> tuple[int, str, bytes]:
        req = urllib.request.Request(emulator.url + "/openapi/v2", headers={"Accept": accept,
                                                                            "Authorization": f"Bearer {emulator.token}"})
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, resp.headers["Content-Type"], resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    code, ctype, body = get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert (code, ctype) == (200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    assert body.startswith(b"\n\x032.0")  # field 1 (swagger) = "2.0"
    code, ctype, body = get("application/json")
    assert (code, ctype) == (200, "application/json")
    assert "io.k8s.api.policy.v1.PodDisruptionBudget" in json.loads(body)["definitions"]
    assert get("text/html")[0] == 406


def test_lease_micro_time_from_the_typed_client(emulator):
    """The client sends datetime.isoformat() (+00:00); the server answers RFC 3339 micro with Z, or 400."""
    from datetime import UTC, datetime

    coord = client.CoordinationV1Api(api_client(str(emulator.kubeconfig)))
    moment = datetime(2026, 11, 24, 19, 50, 21, 123456, tzinfo=UTC)
    body = client.V1Lease(metadata=client.V1ObjectMeta(name="lock"),
                          spec=client.V1LeaseSpec(holder_identity="a", acquire_time=moment, renew_time=moment))
    coord.create_namespaced_lease("default", body)
    raw = emulator.api.get("coordination.k8s.io/v1", "Lease", "lock", "default")
    assert raw["spec"]["renewTime"] == raw["spec"]["acquireTime"] == "2026-11-24T19:50:21.123456Z"
    assert coord.read_namespaced_lease("lock", "default").spec.renew_time == moment
    body.metadata.name = "whole-second"
    body.spec.renew_time = moment.replace(microsecond=0)  # isoformat() drops the fraction: Go cannot parse it
    with pytest.raises(ApiException) as exc:
        coord.create_namespaced_lease("default", body)
    assert exc.value.status == 400 and "cannot be handled as a Lease" in json.loads(exc.value.body)["message"]


def test_stop_drops_keep_alive_connections(tmp_path):
    """A stopped emulator is gone for clients that hold a pooled connection too, as a dead apiserver."""
    import http.client

    emu = Emulator(listen=f"127.0.0.1:{free_port()}", controllers=False).start()
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    headers = {"Authorization": f"Bearer {emu.token}"}
    conn.request("GET", "/api/v1/namespaces/default", headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200 and not resp.will_close
    resp.read()
    emu.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/api/v1/namespaces/default", headers=headers)
        conn.getresponse()
    conn.close()


APPLY = {"Content-Type": "application/apply-patch+yaml"}


def test_apply_conflicts_are_409_with_one_cause_per_field(emulator):
    """NewApplyConflict: reason Conflict, no name/kind in details, FieldManagerConflict causes, identity wording."""
    path = "/api/v1/namespaces/default/configmaps/shared"
    code, _ = _raw(emulator, path + "?fieldManager=one", "PATCH", _cm("shared") | {"data": {"a": "1", "b": "1"}},
                   headers=APPLY)
    assert code == 201
    code, body = _raw(emulator, path + "?fieldManager=two", "PATCH", _cm("shared") | {"data": {"a": "2", "b": "2"}},
                      headers=APPLY)
    assert code == 409
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'Apply failed with 2 conflicts: conflicts with "one":\n- .data.a\n- .data.b',
                    "reason": "Conflict", "details": {"causes": [
                        {"reason": "FieldManagerConflict", "message": 'conflict with "one"', "field": ".data.a"},
                        {"reason": "FieldManagerConflict", "message": 'conflict with "one"', "field": ".data.b"}]},
                    "code": 409}
    # an Update manager is named with its apiVersion (never the time: the identity has none)
    code, _ = _raw(emulator, path + "?fieldManager=editor", "PATCH", {"data": {"c": "1"}},
                   headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200
    code, body = _raw(emulator, path + "?fieldManager=two", "PATCH", _cm("shared") | {"data": {"c": "2"}},
                      headers=APPLY)
    assert (code, body["message"]) == (409, 'Apply failed with 1 conflict: conflict with "editor" using v1: .data.c')
    code, body = _raw(emulator, path + "?fieldManager=two&force=true", "PATCH",
                      _cm("shared") | {"data": {"c": "2"}}, headers=APPLY)
    assert code == 200 and body["data"]["c"] == "2"


def test_apply_the_schema_refuses_is_the_real_500(emulator):
    """structured-merge-diff's typing error reaches the client as a plain 500 (kubernetes#122480), any
    fieldValidation; a merge patch with fieldValidation=Strict is the 400 strict decoding error instead."""
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}]}}}}
    path = "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=me"
    for validation in ("", "&fieldValidation=Strict", "&fieldValidation=Ignore"):
        code, body = _raw(emulator, path + validation, "PATCH", dep, headers=APPLY)
        assert code == 500 and "reason" not in body, validation
        assert body["message"] == ("failed to create typed patch object (default/d; apps/v1, Kind=Deployment): "
                                   '.spec.template.spec.containers[name="c"].bogus: field not declared in schema')
    del dep["spec"]["template"]["spec"]["containers"][0]["name"]
    del dep["spec"]["template"]["spec"]["containers"][0]["bogus"]
    code, body = _raw(emulator, path, "PATCH", dep, headers=APPLY)
    assert code == 500 and "omits key field" in body["message"]
    assert _raw(emulator, "/api/v1/namespaces/default/configmaps", "POST", _cm("m"))[0] == 201
    code, body = _raw(emulator, "/api/v1/namespaces/default/configmaps/m?fieldValidation=Strict", "PATCH",
                      {"bogus": 1}, headers={"Content-Type": "application/merge-patch+json"})
    assert (code, body["reason"]) == (400, "BadRequest") and 'unknown field "bogus"' in body["message"]


def test_unknown_fields_of_built_ins_are_dropped_with_a_warning(emulator):
    """The decoder drops what the Go type lacks; fieldValidation defaults to Warn (a Warning header per field)."""
    req = urllib.request.Request(emulator.url + "/api/v1/namespaces/default/configmaps", method="POST",
                                 data=json.dumps(_cm("extra") | {"bogus": {"x": 1}}).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {emulator.token}"})
    with urllib.request.urlopen(req) as resp:
        body = json.loads(resp.read())
        assert resp.headers.get_all("Warning") == ['299 - "unknown field \\"bogus\\""']
    assert "bogus" not in body and "f:bogus" not in json.dumps(body["metadata"]["managedFields"])
    code, body = _raw(emulator, "/api/v1/namespaces/default/configmaps/extra?fieldValidation=Ignore", "PATCH",
                      {"metadata": {"labels": {"l": "v"}}, "data": {"k": "2"}, "more": 1},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200 and "more" not in body and body["data"] == {"k": "2"}
    assert "more" not in emulator.api.get("v1", "ConfigMap", "extra", "default")


def test_a_suspended_job_runs_no_pod_until_resumed(emulator):
    api = emulator.api
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "default"},
           "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "m", "image": "busybox"}]}}}}
    api.create(job)

    def pods() -> list[str]:
        return [p["metadata"]["name"] for p in api.list("v1", "Pod", "default")]

    def condition() -> str:
        conds = (api.get("batch/v1", "Job", "migrate", "default").get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conds if c["type"] == "Suspended"), "")

    wait_until(lambda: condition() == "True", what="Suspended condition")
    assert pods() == []
    api.patch("batch/v1", "Job", "migrate", {"spec": {"suspend": False}}, namespace="default")
    wait_until(lambda: len(pods()) == 1, what="the resumed Job's pod")
    api.patch("batch/v1", "Job", "migrate", {"spec": {"suspend": True}}, namespace="default")
    wait_until(lambda: pods() == [], what="the suspended Job's pod deleted")


def test_bindings_is_create_only_and_binds_the_pod_once(emulator):
    """As the real /api/v1 lists it (verbs: create) and as a scheduler uses it; nothing is stored."""
    _raw(emulator, "/api/v1/namespaces", "POST", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}})
    _raw(emulator, "/api/v1/namespaces/b/pods", "POST", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                                          "spec": {"containers": [{"name": "c", "image": "x"}]}})
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}}
    assert _raw(emulator, "/api/v1/namespaces/b/bindings", "POST", binding) == (201, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    assert emulator.api.get("v1", "Pod", "p", "b")["spec"]["nodeName"] == "n1"
    code, status = _raw(emulator, "/api/v1/namespaces/b/bindings", "POST", {**binding, "target": {"name": "n2"}})
    assert code == 409 and status["reason"] == "Conflict" and 'already assigned to node "n1"' in status["message"]
    assert _raw(emulator, "/api/v1/namespaces/b/bindings")[0] == 405


def test_a_crd_group_whose_versions_serve_different_kinds(emulator):
    """prometheus-operator's shape: the group prefers v1, some kinds exist only at v1alpha1."""
    def crd(plural: str, kind: str, version: str) -> dict:
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.monitoring.coreos.com"},
                "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced", "names": {"plural": plural,
                         "kind": kind}, "versions": [{"name": version, "served": True, "storage": True, "schema": {
                             "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}

    emulator.api.create(crd("prometheuses", "Prometheus", "v1"))
    emulator.api.create(crd("scrapeconfigs", "ScrapeConfig", "v1alpha1"))
    wait_until(lambda: _raw(emulator, "/apis/monitoring.coreos.com/v1alpha1")[0] == 200, what="v1alpha1 served")
    _, group = _raw(emulator, "/apis/monitoring.coreos.com")
    assert [v["version"] for v in group["versions"]] == ["v1", "v1alpha1"]
    assert group["preferredVersion"]["version"] == "v1"
    assert [r["name"] for r in _raw(emulator, "/apis/monitoring.coreos.com/v1")[1]["resources"]] == ["prometheuses"]
    assert [r["name"] for r in _raw(emulator, "/apis/monitoring.coreos.com/v1alpha1")[1]["resources"]] == \
        ["scrapeconfigs"]
    assert _raw(emulator, "/apis/monitoring.coreos.com/v1/scrapeconfigs")[0] == 404
