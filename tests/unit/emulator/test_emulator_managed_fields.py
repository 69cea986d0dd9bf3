"""Server-side apply and managedFields, checked against managedFields a real apiserver wrote (fixtures)."""

from __future__ import annotations

import json

import pytest

from kubedr.emulator import k8s_schema
from kubedr.emulator.managed_fields import (
    ApplyConflict,
    FieldsError,
    extract,
    field_set,
    from_fields_v1,
    path_string,
    server_side_apply,
    to_fields_v1,
    track_update,
)
from tests.conftest import FIXTURES, load_fixture

T0, T1, T2 = "2026-11-24T16:41:19Z", "2026-11-24T16:41:20Z", "2026-11-24T16:41:21Z"


def fixture_objects() -> list[dict]:
    out = []
    for path in sorted((FIXTURES / "objects").glob("*.json")):
        doc = json.loads(path.read_text())
        out.extend(o for o in doc.get("items", [doc]) if o.get("kind"))
    return out


def fixture_entries(operation: str) -> list:
    if not (FIXTURES / "objects").is_dir():
        return []
    cases = []
    for obj in fixture_objects():
        for entry in obj["metadata"].get("managedFields", []):
            if entry["operation"] == operation and not entry.get("subresource"):
                cases.append(pytest.param(obj, entry, id=f"{obj['kind']}/{obj['metadata']['name']}/{entry['manager']}"))
    return cases


def body(obj: dict) -> dict:
    out = json.loads(json.dumps(obj))
    out["metadata"].pop("managedFields", None)
    return out


def entries(obj: dict) -> dict:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}


# What the server wrote with v1.24 schemas and v1.37 (kubernetes-validate) types differently, or cannot be rebuilt.
DIFFERENT = {
    "Secret/db-credentials/kubectl": "stringData is write-only: the live object no longer holds it",
    "PersistentVolume/fixtures-pv/kube-controller-manager": "claimRef became a granular map after v1.24",
}


def same_as_the_server(obj: dict, entry: dict) -> bool:
    """Whether the emulator rebuilds exactly the FieldsV1 the real server wrote for this entry."""
    shape = k8s_schema.kind_shape(obj["apiVersion"], obj["kind"])
    want = from_fields_v1(entry["fieldsV1"])
    config = extract(body(obj), want, shape)
    if entry["operation"] == "Apply":
        return field_set(config, shape) == want and to_fields_v1(field_set(config, shape)) == entry["fieldsV1"]
    managed = track_update(None, config, entry["manager"], obj["apiVersion"], obj["kind"], T0)
    return [m["fieldsV1"] for m in managed] == [entry["fieldsV1"]]


def _alike(operation: str) -> list:
    return [p for p in fixture_entries(operation) if p.id not in DIFFERENT]


@pytest.mark.parametrize("obj, entry", _alike("Apply"))
def test_apply_field_set_matches_the_real_server(obj, entry):
    """Every Apply entry of the fixtures: the config it describes yields exactly its FieldsV1."""
    assert same_as_the_server(obj, entry)


@pytest.mark.parametrize("obj, entry", _alike("Update"))
def test_create_entries_match_the_real_server(obj, entry):
    """Objects the controllers created: creating what the entry describes yields exactly its FieldsV1."""
    assert same_as_the_server(obj, entry)


@pytest.mark.parametrize("obj, entry", [p for op in ("Apply", "Update") for p in fixture_entries(op)
                                        if p.id in DIFFERENT])
def test_the_known_differences_still_differ(obj, entry):
    """DIFFERENT names entries the emulator cannot rebuild, each with the reason: a fixed one leaves the list."""
    assert not same_as_the_server(obj, entry)


def test_every_known_difference_is_a_fixture_entry():
    ids = {p.id for op in ("Apply", "Update") for p in fixture_entries(op)}
    assert set(DIFFERENT) <= ids


def test_fields_v1_round_trips_byte_for_byte():
    for obj in fixture_objects():
        for entry in obj["metadata"].get("managedFields", []):
            encoded = to_fields_v1(from_fields_v1(entry["fieldsV1"]))
            assert json.dumps(encoded) == json.dumps(entry["fieldsV1"])


WEB_CONFIG = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "fixtures", "labels": {"app": "web"}, "annotations": {"team": "shop"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                 "name": "web", "image": "registry.example.com/shop/web:1.4.2",
                 "env": [{"name": "MODE", "value": "prod"}],
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}


def web_story() -> dict:
    """The fixture Deployment's history: applied server-side, scaled, status written by the controller."""
    applied = server_side_apply(None, WEB_CONFIG, "kubectl", False, "apps/v1", "Deployment", T0)
    applied["status"] = {}
    scaled = json.loads(json.dumps(applied))
    scaled["spec"]["replicas"] = 3
    scaled["metadata"]["managedFields"] = track_update(applied, scaled, "kubectl", "apps/v1", "Deployment", T0,
                                                       subresource="scale")
    real = load_fixture("objects/namespaced-deployment.json")["items"][0]
    statused = json.loads(json.dumps(scaled))
    statused["status"] = real["status"]
    statused["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    statused["metadata"]["managedFields"] = track_update(scaled, statused, "kube-controller-manager", "apps/v1",
                                                         "Deployment", T0, subresource="status")
    return statused


def test_deployment_applied_scaled_and_statused_has_the_real_managed_fields():
    real = load_fixture("objects/namespaced-deployment.json")["items"][0]
    assert web_story()["metadata"]["managedFields"] == real["metadata"]["managedFields"]


def test_apply_conflict_is_the_real_409():
    with pytest.raises(ApplyConflict) as caught:
        server_side_apply(web_story(), WEB_CONFIG, "kubectl", False, "apps/v1", "Deployment", T1)
    assert caught.value.conflicts == [("kubectl", ".spec.replicas")]
    assert caught.value.status() == load_fixture("errors/409-apply-conflict.json")


def test_force_moves_ownership_to_the_applier():
    obj = server_side_apply(web_story(), WEB_CONFIG, "kubectl", True, "apps/v1", "Deployment", T1)
    assert obj["spec"]["replicas"] == 2
    managed = entries(obj)
    assert ("kubectl", "Update", "scale") not in managed
    assert "f:replicas" in managed[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]
    assert managed[("kubectl", "Apply", "")]["time"] == T1


def test_ssa_response_for_a_configmap():
    real = load_fixture("objects/ssa-response-configmap.json")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "fixtures"},
              "data": {"a": "1"}}
    obj = server_side_apply(None, config, "kubedr", False, "v1", "ConfigMap", "2026-11-24T16:41:30Z")
    assert obj["data"] == {"a": "1"}
    assert obj["metadata"]["managedFields"] == real["metadata"]["managedFields"]


def cm(**data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": data}


def test_conflicts_list_every_field_with_the_real_wording():
    live = server_side_apply(None, cm(a="1", b="1"), "one", False, "v1", "ConfigMap", T0)
    with pytest.raises(ApplyConflict) as caught:
        server_side_apply(live, cm(a="2", b="2"), "two", False, "v1", "ConfigMap", T1)
    assert caught.value.conflicts == [("one", ".data.a"), ("one", ".data.b")]
    assert str(caught.value) == 'Apply failed with 2 conflicts: conflicts with "one":\n- .data.a\n- .data.b'


def test_update_managers_print_with_version_never_the_time():
    """The conflict names the manager identity, which the apiserver builds without the entry's time."""
    live = track_update(None, cm(a="1"), "editor", "v1", "ConfigMap", T0)
    obj = {**cm(a="1"), "metadata": {"name": "c", "namespace": "n", "managedFields": live}}
    with pytest.raises(ApplyConflict, match=r'conflict with "editor" using v1: \.data\.a$'):
        server_side_apply(obj, cm(a="2"), "applier", False, "v1", "ConfigMap", T1)


def test_same_value_is_shared_not_a_conflict():
    live = server_side_apply(None, cm(a="1", b="1"), "one", False, "v1", "ConfigMap", T0)
    obj = server_side_apply(live, cm(a="1"), "two", False, "v1", "ConfigMap", T1)
    managed = entries(obj)
    assert managed[("one", "Apply", "")]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    assert managed[("two", "Apply", "")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    # "one" stops applying a: "two" still owns it, so it stays; b is owned by nobody else and goes.
    empty = {k: v for k, v in cm().items() if k != "data"}
    obj = server_side_apply(obj, empty, "one", False, "v1", "ConfigMap", T2)
    assert obj["data"] == {"a": "1"}
    assert ("one", "Apply", "") not in entries(obj)
    # Applying an empty map owns the map itself, as structured-merge-diff does.
    obj = server_side_apply(obj, cm(), "one", False, "v1", "ConfigMap", T2)
    assert entries(obj)[("one", "Apply", "")]["fieldsV1"] == {"f:data": {}}


def test_fields_no_longer_applied_are_removed():
    first = server_side_apply(None, WEB_CONFIG, "kubectl", False, "apps/v1", "Deployment", T0)
    first["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    config = json.loads(json.dumps(WEB_CONFIG))
    config["metadata"].pop("annotations")
    spec = config["spec"]["template"]["spec"]
    spec["containers"][0].pop("env")
    spec["containers"].insert(0, {"name": "sidecar", "image": "side:1"})
    second = server_side_apply(first, config, "kubectl", False, "apps/v1", "Deployment", T1)
    assert "annotations" not in second["metadata"] or not second["metadata"]["annotations"]
    names = [c["name"] for c in second["spec"]["template"]["spec"]["containers"]]
    assert names == ["sidecar", "web"]
    web = second["spec"]["template"]["spec"]["containers"][1]
    assert "env" not in web and web["terminationMessagePath"] == "/dev/termination-log"
    config["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "side:2"}]
    third = server_side_apply(second, config, "kubectl", False, "apps/v1", "Deployment", T2)
    assert third["spec"]["template"]["spec"]["containers"] == [{"name": "sidecar", "image": "side:2"}]


def test_apply_keeps_server_metadata_and_ignores_status():
    live = server_side_apply(None, cm(a="1"), "one", False, "v1", "ConfigMap", T0)
    live["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp=T0)
    config = cm(a="2")
    config["metadata"].update(uid="other", resourceVersion="1")
    obj = server_side_apply(live, config, "one", False, "v1", "ConfigMap", T1)
    assert (obj["metadata"]["uid"], obj["metadata"]["resourceVersion"]) == ("u-1", "7")
    deploy = json.loads(json.dumps(WEB_CONFIG))
    deploy["status"] = {"replicas": 9}
    obj = server_side_apply(None, deploy, "kubectl", False, "apps/v1", "Deployment", T0)
    assert "status" not in obj
    assert "f:status" not in obj["metadata"]["managedFields"][0]["fieldsV1"]


def test_update_takes_ownership_and_drops_emptied_entries():
    live = server_side_apply(None, cm(a="1"), "applier", False, "v1", "ConfigMap", T0)
    edited = json.loads(json.dumps(live))
    edited["data"] = {"a": "2", "b": "3"}
    managed = track_update(live, edited, "editor", "v1", "ConfigMap", T1)
    assert [(m["manager"], m["operation"], m["fieldsV1"]) for m in managed] == [
        ("editor", "Update", {"f:data": {"f:a": {}, "f:b": {}}})]
    assert managed[0]["time"] == T1
    unchanged = json.loads(json.dumps(live))
    assert track_update(live, unchanged, "noop", "v1", "ConfigMap", T1) == live["metadata"]["managedFields"]


def test_custom_resources_use_their_crd_schema_and_lists_are_atomic():
    from kubedr.emulator import openapi

    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "color": {"type": "string"}, "sizes": {"type": "array", "items": {"type": "integer"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                  "items": {"type": "object", "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}}}}}}}
    openapi.add_custom_resource("example.com", "v1", "Widget", "widgets", True, schema)
    try:
        config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue", "labels": {"a": "b"}},
                  "spec": {"color": "blue", "sizes": [1, 2], "ports": [{"port": 80, "name": "http"}]}}
        obj = server_side_apply(None, config, "kubectl", False, "example.com/v1", "Widget", T0)
        assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {
            "f:metadata": {"f:labels": {"f:a": {}}},
            "f:spec": {"f:color": {}, "f:ports": {'k:{"port":80}': {".": {}, "f:name": {}, "f:port": {}}}, "f:sizes": {}}}
    finally:
        openapi.remove_custom_resource("example.com", "v1", "Widget")


def test_path_strings_print_like_structured_merge_diff():
    assert path_string(("f:spec", "f:containers", 'k:{"name":"web"}', "f:image")) == '.spec.containers[name="web"].image'
    assert path_string(("f:ports", 'k:{"containerPort":8080,"protocol":"TCP"}')) == '.ports[containerPort=8080,protocol="TCP"]'
    assert path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_managed_fields_sent_with_an_update_replace_the_stored_ones():
    live = server_side_apply(None, cm(a="1"), "applier", False, "v1", "ConfigMap", T0)
    cleared = json.loads(json.dumps(live))
    cleared["metadata"]["managedFields"] = [{}]
    assert track_update(live, cleared, "editor", "v1", "ConfigMap", T1) == []
    absent = json.loads(json.dumps(live))
    del absent["metadata"]["managedFields"]
    absent["data"]["b"] = "2"
    managed = track_update(live, absent, "editor", "v1", "ConfigMap", T1)
    assert [m["manager"] for m in managed] == ["applier", "editor"]


def test_an_item_without_its_key_is_a_clear_error():
    config = json.loads(json.dumps(WEB_CONFIG))
    del config["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(FieldsError, match=r'^\.spec\.template\.spec\.containers: element 0: associative list with keys '
                                          r'has an element that omits key field "name"'):
        server_side_apply(None, config, "kubectl", False, "apps/v1", "Deployment", T0)


def test_status_is_an_ordinary_field_of_kinds_without_a_status_schema():
    widget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "status": {"x": "1"}}
    obj = server_side_apply(None, widget, "kubectl", False, "example.com/v1", "Gadget", T0)
    assert obj["status"] == {"x": "1"}


def test_apply_refuses_fields_the_schema_does_not_declare():
    config = json.loads(json.dumps(WEB_CONFIG))
    config["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(FieldsError, match=r'^\.spec\.template\.spec\.containers\[name="web"\]\.imagePullPolice: '
                                          r"field not declared in schema$"):
        server_side_apply(None, config, "kubectl", False, "apps/v1", "Deployment", T0)


def test_a_list_path_owned_from_an_update_does_not_prune_applied_items():
    # kubectl apply --server-side after client-side apply moves the Update entry's fields (including the
    # list path ".spec.ports" itself) to the Apply entry; the next apply must keep the ports it applies.
    config = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
              "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    created = json.loads(json.dumps(config))
    created["spec"].update(ports=[{"port": 80, "protocol": "TCP", "targetPort": 8080}], type="ClusterIP")
    update = track_update(None, created, "kubectl-client-side-apply", "v1", "Service", T0)
    upgraded = {**created, "metadata": {**created["metadata"], "managedFields": [
        {**update[0], "manager": "kubectl", "operation": "Apply"}]}}
    obj = server_side_apply(upgraded, config, "kubectl", False, "v1", "Service", T1)
    # protocol and type were owned before, are applied no more and owned by nobody: pruned (the server's
    # defaulting puts them back, as csaupgrade expects).
    assert obj["spec"]["ports"] == [{"port": 80, "targetPort": 8080}]
    assert "type" not in obj["spec"]


def test_fields_v1_of_an_object():
    from kubedr.emulator.managed_fields import fields_v1

    real = load_fixture("objects/ssa-response-configmap.json")
    assert fields_v1(real, "v1", "ConfigMap") == {"f:data": {"f:a": {}}}
    deploy = json.loads(json.dumps(WEB_CONFIG))
    deploy["status"] = {"replicas": 1}
    assert "f:status" not in fields_v1(deploy, "apps/v1", "Deployment")


def test_create_does_not_own_the_null_creation_timestamp_of_a_template():
    real = load_fixture("objects/namespaced-replicaset.json")["items"][0]
    created = body(real)
    assert created["spec"]["template"]["metadata"]["creationTimestamp"] is None
    managed = track_update(None, created, "kube-controller-manager", "apps/v1", "ReplicaSet", T0)
    template_meta = managed[0]["fieldsV1"]["f:spec"]["f:template"]["f:metadata"]
    assert "f:creationTimestamp" not in template_meta and "f:labels" in template_meta


WHOLE_CREATES = {"ReplicaSet", "EndpointSlice", "Endpoints", "ControllerRevision"}
SERVER_ADDED_LATER = "Pods, Events, PVCs, Namespaces get fields from admission/strategy after the field manager ran"


def created_by_controllers() -> list:
    if not (FIXTURES / "objects").is_dir():
        return []
    cases = []
    for obj in fixture_objects():
        managed = obj["metadata"].get("managedFields", [])
        main = [m for m in managed if m["operation"] == "Update" and not m.get("subresource")]
        wanted = obj["kind"] in WHOLE_CREATES or obj["metadata"]["name"] == "kube-root-ca.crt" or (
            obj.get("type") == "kubernetes.io/service-account-token")
        if wanted and len(main) == 1:
            cases.append(pytest.param(obj, main[0], id=f"{obj['kind']}/{obj['metadata']['name']}"))
    return cases


@pytest.mark.parametrize("obj, entry", created_by_controllers())
def test_whole_objects_created_by_controllers_get_the_real_entry(obj, entry):
    """The stored object, created as a whole, yields the real create entry (null fields, value structs)."""
    managed = track_update(None, body(obj), entry["manager"], obj["apiVersion"], obj["kind"], T0)
    assert [m["fieldsV1"] for m in managed] == [entry["fieldsV1"]], SERVER_ADDED_LATER
