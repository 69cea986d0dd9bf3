"""Scope settings: flags win over the policy, each filter and each ignore-path form, bad input named."""

from __future__ import annotations

import pytest

from kubedr.contract import ref_of
from kubedr.exporter import scope
from kubedr.exporter.events import Event
from kubedr.exporter.selection import Selection
from kubedr.kubeapi import Resource

CM = Resource("", "v1", "configmaps", "ConfigMap", True)
ROLE = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
NODE = Resource("", "v1", "nodes", "Node", False)


def cm(name: str, labels: dict | None = None, ns: str = "shop", **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns,
                                                                  **({"labels": labels} if labels else {})},
            "data": data}


def selection(**values: object) -> Selection:
    sel = Selection(None)
    sel.configure(scope.effective({"namespaces": ["shop"], **values}, {}))
    return sel


def wanted(sel: Selection, obj: dict, rtype: Resource = CM) -> bool:
    return sel.process(Event("ADDED", rtype, obj))[0][1]


def test_flags_win_and_the_policy_fills_the_rest() -> None:
    policy = scope.parse_policy(b"export:\n  namespaces: [a]\n  exclude_kinds: ConfigMap\n  label_selector: x=y\n")
    eff = scope.effective({"namespaces": ["b"]}, policy)
    assert eff.namespaces == ["b"] and eff.origin["namespaces"] == "flag"
    assert eff.exclude_kinds == ["ConfigMap"] and eff.origin["exclude_kinds"] == "policy"
    assert eff.exclude_objects == [] and eff.origin["exclude_objects"] == "default"
    assert "label_selector=\"x=y\" (policy)" in eff.describe()
    assert scope.parse_policy(b"export:\n  extra_kinds: [Node]\n")["extra_kinds"] == ["Node"]


def test_label_selector_applies_to_namespaced_objects() -> None:
    sel = selection(label_selector="backup!=no,tier in (web,api)")
    assert wanted(sel, cm("a", {"tier": "web"}))
    assert not wanted(sel, cm("b", {"tier": "web", "backup": "no"}))
    assert not wanted(sel, cm("c"))
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    assert wanted(sel, ns, Resource("", "v1", "namespaces", "Namespace", False))


def test_excluded_kinds_are_not_watched_by_any_name() -> None:
    for name in ("Role", "roles", "Role.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io"):
        assert not selection(exclude_kinds=[name]).watches(ROLE), name
    assert selection(exclude_kinds=["Role"]).watches(CM)


def test_excluded_objects_match_namespace_kind_name_globs() -> None:
    sel = selection(exclude_objects=["shop/ConfigMap/tmp-*", "*/configmap/cache", "_cluster/Node/*"])
    assert not wanted(sel, cm("tmp-1"))
    assert not wanted(sel, cm("cache"))
    assert wanted(sel, cm("keep"))
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    sel.configure(scope.effective({"namespaces": ["shop"], "extra_kinds": ["Node"],
                                   "exclude_objects": ["_cluster/Node/n*"]}, {}))
    assert sel.watches(NODE) and not wanted(sel, node, NODE)


def test_extra_kinds_export_cluster_scoped_kinds() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    assert not selection().watches(NODE)
    sel = selection(extra_kinds=["Node"])
    assert sel.watches(NODE) and wanted(sel, node, NODE)


@pytest.mark.parametrize("path", ["/metadata/annotations/op.example.com~1stamp", 'metadata.annotations["op.example.com/stamp"]'])
def test_ignore_paths_as_json_pointer_or_dotted(path: str) -> None:
    obj = cm("stamped", v="1")
    obj["metadata"]["annotations"] = {"op.example.com/stamp": "7", "keep": "x"}
    rules = scope.ignore_rules([{"kind": "ConfigMap", "name": "stamp*", "paths": [path]}])
    out = scope.strip_ignored(obj, ref_of(obj), rules)
    assert out["metadata"]["annotations"] == {"keep": "x"}
    assert obj["metadata"]["annotations"]["op.example.com/stamp"] == "7"  # the input is not changed


def test_ignore_wildcards_list_indexes_and_emptied_maps() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop",
                                                                        "annotations": {"a": "1"}},
           "spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "T"}]},
                                                          {"name": "b", "env": [{"name": "T"}]}]}}}}
    rules = scope.ignore_rules([{"kind": "Deployment.apps", "paths": ["spec.template.spec.containers[*].env",
                                                                      "/metadata/annotations/a"]}])
    out = scope.strip_ignored(dep, ref_of(dep), rules)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "a"}, {"name": "b"}]
    assert "annotations" not in out["metadata"]
    other = scope.ignore_rules([{"kind": "Deployment", "name": "api", "paths": ["/spec"]}])
    assert scope.strip_ignored(dep, ref_of(dep), other) is dep  # the name glob does not match: untouched
    pointer = scope.ignore_rules([{"kind": "Deployment", "paths": ["/spec/template/spec/containers/1"]}])
    assert len(scope.strip_ignored(dep, ref_of(dep), pointer)["spec"]["template"]["spec"]["containers"]) == 1


@pytest.mark.parametrize("text, error", [
    (b"export:\n  label_selector: 'a in (b'\n", "label_selector"),
    (b"export:\n  ignore: [{kind: ConfigMap}]\n", "ignore[0]: needs kind and paths"),
    (b"export:\n  ignore: [{kind: ConfigMap, paths: ['a..[']}]\n", "ignore path"),
    (b"export: [1]\n", "expected a mapping"),
    (b"export: {a: [\n", "invalid YAML"),
])
def test_bad_policy_is_one_line_naming_the_key(text: bytes, error: str) -> None:
    with pytest.raises(scope.ScopeError, match=error.replace("[", r"\[").replace("(", r"\(")):
        scope.parse_policy(text)
