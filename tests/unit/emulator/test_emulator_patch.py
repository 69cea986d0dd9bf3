"""JSON merge patch, JSON patch and strategic merge patch against the semantics the apiserver implements."""

from __future__ import annotations

import pytest

from kubedr.emulator.patch import PatchError, UnsupportedPatch, json_patch, merge_patch, strategic_merge_patch


def deployment(*containers: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": list(containers)}}}}


def containers(obj: dict) -> list:
    return obj["spec"]["template"]["spec"]["containers"]


# ---------------------------------------------------------------- RFC 7386

@pytest.mark.parametrize("target, patch, want", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386_examples(target, patch, want):
    assert merge_patch(target, patch) == want


def test_merge_patch_does_not_mutate_its_input():
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


# ---------------------------------------------------------------- RFC 6902

def test_json_patch_all_operations():
    doc = {"metadata": {"labels": {"a": "1"}}, "items": [1, 2, 3]}
    ops = [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
        {"op": "remove", "path": "/items/0"},
        {"op": "add", "path": "/items/-", "value": 4},
        {"op": "add", "path": "/items/0", "value": 0},
        {"op": "copy", "from": "/metadata/labels", "path": "/copied"},
        {"op": "move", "from": "/copied/b", "path": "/moved"},
        {"op": "test", "path": "/moved", "value": "2"},
    ]
    assert json_patch(doc, ops) == {"metadata": {"labels": {"a": "x", "b": "2"}}, "items": [0, 2, 3, 4],
                                    "copied": {"a": "x"}, "moved": "2"}
    assert doc["items"] == [1, 2, 3]


def test_json_patch_escaped_pointer():
    doc = {"metadata": {"annotations": {"kubedr.io/x": "1", "a~b": "2"}}}
    out = json_patch(doc, [{"op": "remove", "path": "/metadata/annotations/kubedr.io~1x"},
                           {"op": "replace", "path": "/metadata/annotations/a~0b", "value": "3"}])
    assert out == {"metadata": {"annotations": {"a~b": "3"}}}


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/a", "value": 2}],
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/missing", "value": 1}],
    [{"op": "add", "path": "/list/5", "value": 1}],
    [{"op": "add", "path": "/nope/deeper", "value": 1}],
    [{"op": "frobnicate", "path": "/a"}],
    [{"op": "add", "path": "/a"}],
    [{"op": "move", "from": "/list", "path": "/list/0"}],
    {"op": "add"},
])
def test_json_patch_failures_raise_patch_error(ops):
    with pytest.raises(PatchError):
        json_patch({"a": 1, "list": [1]}, ops)


# ---------------------------------------------------------------- strategic merge patch

def test_smp_merges_containers_by_name_and_ports_by_container_port():
    live = deployment({"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                      {"name": "b", "image": "b:1"})
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "a:2", "ports": [{"containerPort": 81}]}]}}}}
    out = strategic_merge_patch(live, patch, "apps/v1", "Deployment")
    assert containers(out) == [
        {"name": "a", "image": "a:2", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81}]},
        {"name": "b", "image": "b:1"}]
    assert containers(live)[0]["image"] == "a:1"


def test_smp_the_patch_kubectl_apply_sends():
    # Captured from kubectl v1.37 `apply -f` (client-side) after changing the container list.
    live = deployment({"name": "a", "image": "a:1", "ports": [{"containerPort": 80}], "env": [{"name": "X", "value": "1"}]},
                      {"name": "b", "image": "b:1"})
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
        "containers": [{"image": "c:1", "name": "c"},
                       {"$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 81}], "env": None,
                        "image": "a:2", "name": "a", "ports": [{"containerPort": 81}]},
                       {"$patch": "delete", "name": "b"}]}}}}
    out = strategic_merge_patch(live, patch, "apps/v1", "Deployment")
    assert containers(out) == [{"image": "c:1", "name": "c"},
                               {"name": "a", "image": "a:2", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]


def test_smp_set_element_order_keeps_server_only_items_in_place():
    live = deployment({"name": "a"}, {"name": "server"}, {"name": "b"})
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}
    out = strategic_merge_patch(live, patch, "apps/v1", "Deployment")
    # As the apiserver merges them: patch-ordered items, and a server-only item goes first unless a patch
    # item stood before it in the live list.
    assert [c["name"] for c in containers(out)] == ["server", "b", "a"]
    live = deployment({"name": "a"}, {"name": "b"}, {"name": "server"})
    out = strategic_merge_patch(live, patch, "apps/v1", "Deployment")
    assert [c["name"] for c in containers(out)] == ["b", "a", "server"]


def test_smp_replaces_lists_without_strategy_and_merges_primitive_sets():
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["a", "b"]},
            "spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}}
    patch = {"metadata": {"finalizers": ["c", "a"]}, "spec": {"containers": [{"name": "c", "args": ["3"]}]}}
    out = strategic_merge_patch(live, patch, "v1", "Pod")
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    assert out["spec"]["containers"] == [{"name": "c", "args": ["3"]}]


def test_smp_delete_from_primitive_list_and_null_deletes():
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "data": {"k": "v", "gone": "v"}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"x": None}}, "data": {"gone": None}}
    out = strategic_merge_patch(live, patch, "v1", "ConfigMap")
    assert out["metadata"] == {"finalizers": ["b"], "labels": {"y": "2"}}
    assert out["data"] == {"k": "v"}


def test_smp_patch_replace_and_delete_directives():
    live = deployment({"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"})
    replace_list = {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "z"}]}}}}
    assert containers(strategic_merge_patch(live, replace_list, "apps/v1", "Deployment")) == [{"name": "z", "image": "z"}]
    replace_map = {"spec": {"selector": {"$patch": "replace", "matchLabels": {"new": "1"}}}}
    assert strategic_merge_patch(live, replace_map, "apps/v1", "Deployment")["spec"]["selector"] == {"matchLabels": {"new": "1"}}
    delete_map = {"spec": {"template": {"metadata": {"$patch": "delete"}}}}
    assert "metadata" not in strategic_merge_patch(live, delete_map, "apps/v1", "Deployment")["spec"]["template"]


def test_smp_retain_keys_clears_the_other_union_member():
    live = deployment({"name": "a"})
    live["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = strategic_merge_patch(live, patch, "apps/v1", "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_volumes_env_tolerations_and_image_pull_secrets():
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}],
                                     "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                     "volumes": [{"name": "v", "emptyDir": {}}], "imagePullSecrets": [{"name": "s1"}],
                     "tolerations": [{"key": "k", "operator": "Exists"}]}}
    patch = {"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}],
                                      "volumeMounts": [{"name": "w", "mountPath": "/w"}]}],
                      "volumes": [{"name": "w", "configMap": {"name": "cm"}}], "imagePullSecrets": [{"name": "s2"}],
                      "tolerations": [{"key": "t", "operator": "Exists"}]}}
    spec = strategic_merge_patch(live, patch, "v1", "Pod")["spec"]
    assert [e["name"] for e in spec["containers"][0]["env"]] == ["A", "B"]
    assert [m["mountPath"] for m in spec["containers"][0]["volumeMounts"]] == ["/v", "/w"]
    assert [v["name"] for v in spec["volumes"]] == ["v", "w"]
    assert [s["name"] for s in spec["imagePullSecrets"]] == ["s1", "s2"]
    assert spec["tolerations"] == [{"key": "t", "operator": "Exists"}]  # no merge key: replaced


def test_smp_service_ports_merge_by_port():
    live = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = strategic_merge_patch(live, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "v1", "Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_smp_merge_key_missing_is_an_error():
    with pytest.raises(PatchError):
        strategic_merge_patch(deployment({"name": "a"}), {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
                              "apps/v1", "Deployment")


def test_smp_on_custom_resources_is_unsupported():
    with pytest.raises(UnsupportedPatch, match="unknown format"):
        strategic_merge_patch({"spec": {}}, {"spec": {"size": 1}}, "example.com/v1", "Widget")


def test_smp_set_element_order_of_a_primitive_set():
    # The example of the strategic merge patch design document (finalizers: a, b, c -> b, c, a).
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["a", "b", "c"]}}
    out = strategic_merge_patch(live, {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}, "v1", "ConfigMap")
    assert out["metadata"]["finalizers"] == ["b", "c", "a"]


def test_smp_replace_directive_is_recursive():
    live = deployment({"name": "a", "image": "a:1"})
    patch = {"spec": {"template": {"$patch": "replace", "spec": {"containers": [{"name": "x", "$patch": "delete"}]}}}}
    out = strategic_merge_patch(live, patch, "apps/v1", "Deployment")
    assert out["spec"]["template"] == {"spec": {"containers": [{"name": "x"}]}}
