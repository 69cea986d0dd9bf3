"""The repo contract: object <-> path both ways, and canonical YAML that is stable and loads back."""

from __future__ import annotations

import copy
import json
import random

import pytest
import yaml

from kubedr import contract
from kubedr.contract import ManifestError, ObjectRef, ref_of, ref_of_path
from tests.conftest import FIXTURES, load_fixture, shuffled


def _all_fixture_objects() -> list[dict]:
    out = []
    for path in sorted((FIXTURES / "objects").glob("*.json")):
        doc = json.loads(path.read_text())
        out.extend(doc["items"] if "items" in doc else [doc])
    return [o for o in out if "apiVersion" in o]


@pytest.mark.parametrize("ref,path", [
    (ObjectRef("apps", "Deployment", "shop", "web"), "shop/Deployment.apps/web.yaml"),
    (ObjectRef("", "ConfigMap", "shop", "settings"), "shop/ConfigMap/settings.yaml"),
    (ObjectRef("", "Namespace", "", "shop"), "_cluster/Namespace/shop.yaml"),
    (ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com"),
     "_cluster/CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com.yaml"),
    (ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "system:controller:x"),
     "_cluster/ClusterRole.rbac.authorization.k8s.io/system%3Acontroller%3Ax.yaml"),
])
def test_contract_path_both_ways(ref: ObjectRef, path: str) -> None:
    assert ref.path == path
    assert ref_of_path(path) == ref


@pytest.mark.parametrize("name", [
    "system:controller:x", "system:kube-scheduler", "weird name", "a%b", ".hidden", "UPPER.case_ok",
    "ünïcode", "x@y+z", "trailing.", "a\\b", "e:",
])
def test_contract_names_encode_reversibly_and_safely(name: str) -> None:
    ref = ObjectRef("rbac.authorization.k8s.io", "Role", "ns", name)
    stem = ref.path.split("/")[2]
    assert all(c.isalnum() and c.isascii() or c in "._-%" for c in stem)
    assert not stem.startswith(".")
    assert ref_of_path(ref.path) == ref


@pytest.mark.parametrize("path", [
    "README.md", ".kubedr/policy.yaml", ".gitattributes", "shop/.keep", "shop/Deployment.apps/.x.yaml",
    "docs/examples/x.yaml", "shop/Deployment.apps/web.yml", "shop/web.yaml", "a/b/c/d.yaml",
    ".kubedr/state/x.yaml",
])
def test_contract_non_object_paths(path: str) -> None:
    assert ref_of_path(path) is None


def test_contract_bad_escape_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="shop/ConfigMap/a%zz.yaml"):
        ref_of_path("shop/ConfigMap/a%zz.yaml")
    with pytest.raises(ManifestError, match="canonical"):
        ref_of_path("shop/ConfigMap/a%61.yaml")  # 'a' must not be escaped: one name, one path


def test_contract_display() -> None:
    assert ObjectRef("apps", "Deployment", "shop", "web").display == "apps/Deployment shop/web"
    assert ObjectRef("", "ConfigMap", "shop", "x").display == "ConfigMap shop/x"
    assert ObjectRef("", "Namespace", "", "shop").display == "Namespace shop"
    assert str(ObjectRef("example.com", "Widget", "n", "w")) == "example.com/Widget n/w"


def test_contract_ref_of_real_objects() -> None:
    dep = load_fixture("objects/namespaced-deployment.json")["items"][0]
    assert ref_of(dep) == ObjectRef("apps", "Deployment", "fixtures", "web")
    crd = load_fixture("objects/cluster-customresourcedefinition.json")["items"][0]
    assert ref_of(crd).path == "_cluster/CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com.yaml"
    with pytest.raises(ValueError):
        ref_of({"kind": "ConfigMap", "metadata": {"name": "x"}})


def test_contract_dump_round_trips_every_fixture() -> None:
    objects = _all_fixture_objects()
    assert len(objects) > 30
    for obj in objects:
        data = contract.dump(obj)
        assert contract.load(data, ref_of(obj).path) == obj


def test_contract_dump_is_independent_of_key_order() -> None:
    dep = load_fixture("objects/namespaced-deployment.json")["items"][0]

    expected = contract.dump(dep)
    for seed in range(5):
        assert contract.dump(shuffled(copy.deepcopy(dep), random.Random(seed))) == expected


def test_contract_dump_layout() -> None:
    cm = load_fixture("objects/namespaced-configmap.json")["items"][0]
    cm["metadata"]["labels"] = {"b": "2", "a": "1"}
    text = contract.dump(cm).decode()
    lines = text.splitlines()
    assert lines[:5] == ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: app-config",
                         "  namespace: fixtures"]
    assert lines[5:8] == ["  labels:", "    a: '1'", "    b: '2'"]
    assert "  feature.yaml: |\n    flags:\n      beta: true\n" in text  # multi-line string as a literal block
    assert text.index("\ndata:") > text.index("\nmetadata:")
    assert "&" not in text and "*" not in text


def test_contract_no_aliases_for_shared_values() -> None:
    shared = {"a": "b"}
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": shared,
                                                                  "annotations": shared}}
    assert b"&" not in contract.dump(obj)


TRICKY = [
    "a\nb", " lead\nx", "tr \nx", "x\n\n", "x", "1", "yes", "y", "N", "off", "\x85a", "tab\tx", "é\n",
    "a\u2028b\n", "\x07bell\n", "foo:", "a: b", "- x", "#c", "", " ", "null", "~", "1e3", "0x1F", "2026-01-01",
    'k:{"a":1}', "@x", "`x", "a\r\nb\n", "\n", "\n\nx", "x\n\n\n", "{}", "[]", "*a", "&a", "!x", "%x", "|",
    ">", "'q'", '"d"', "😀\nx\n", "\ufeffbom\n", "a\n b\n  c", "x\u2029", "a #b", "a:b", "http://x/y", "=",
    "<<", ".inf", "-1", "+1", "0o7", "1_000", "12:30", "---", "...", "\t", "x" * 3000,
]


@pytest.mark.parametrize("value", TRICKY)
def test_contract_tricky_strings_round_trip(value: str) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": {"k": value}},
           "data": {"k": value, "list": [value, {"a": value}], **({value: "key"} if value else {})},
           "other": [[value], {"nested": [value]}, 1.5, -3, True, None, [], {}]}
    data = contract.dump(obj)
    assert yaml.load(data, Loader=yaml.CSafeLoader) == obj, data.decode()
    assert contract.dump(contract.load(data, "-")) == data


def test_contract_go_yaml_booleans_and_numbers_are_quoted() -> None:
    """kubectl reads YAML with Go rules: `y` is a boolean and `1e3` a number there; both must stay strings."""
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
           "data": {"a": "y", "b": "On", "c": "1e3", "d": "1E+3", "e": "100m", "f": "64Mi"}}
    text = contract.dump(obj)
    for line in (b"a: 'y'\n", b"b: 'On'\n", b"c: '1e3'\n", b"d: '1E+3'\n", b"e: 100m\n", b"f: 64Mi\n"):
        assert line in text


@pytest.mark.parametrize("value", ["0o17", "0O17", "0X1F", "0B101", "+_1", "1_e3", "0_x1F", "7E2_", "-_953"])
def test_contract_go_only_numbers_are_quoted(value: str) -> None:
    """Go's YAML strips underscores and parses ints with base prefixes: these are numbers for kubectl (found
    by the property tests, test_contract_properties.py), strings for PyYAML."""
    text = contract.dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                          "data": {value: value}}).decode()
    assert f"'{value}': '{value}'\n" in text


@pytest.mark.parametrize("data,reason", [
    (b"kind: [unclosed", "invalid YAML"),
    (b"- a\n- b\n", "expected a mapping"),
    (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name"),
])
def test_contract_load_errors_name_the_file(data: bytes, reason: str) -> None:
    with pytest.raises(ManifestError) as info:
        contract.load(data, "shop/ConfigMap/x.yaml")
    message = str(info.value)
    assert message.startswith("shop/ConfigMap/x.yaml: ") and reason in message and "\n" not in message


def test_contract_load_refuses_a_misplaced_object() -> None:
    data = contract.dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}})
    assert contract.load(data, "n/ConfigMap/a.yaml")["metadata"]["name"] == "a"
    with pytest.raises(ManifestError, match="path says ConfigMap n/b"):
        contract.load(data, "n/ConfigMap/b.yaml")


@pytest.mark.parametrize(("name", "mode", "problem"), [
    (b"settings.yaml", 0o100644, None),
    (b"run.yaml", 0o100755, None),
    (b"shop", 0o040000, None),
    (b"README.md", 0o120000, "a symbolic link"),
    (b"vendor", 0o160000, "a submodule (gitlink)"),
    (b"x.yaml", 0o100664, "mode 100664, not a regular file"),
    (b"", 0o100644, "an empty name"),
    (b"shop/ConfigMap/settings.yaml", 0o100644, "a name with a slash or NUL, which git refuses"),
    (b"a\0b", 0o100644, "a name with a slash or NUL, which git refuses"),
    (b"..", 0o040000, "the name '..', which git refuses"),
    (b".", 0o040000, "the name '.', which git refuses"),
    (b".GIT", 0o040000, "a name git reserves for its own directory"),
    (b".git. . ", 0o040000, "a name git reserves for its own directory"),
    (b"GIT~1", 0o040000, "a name git reserves for its own directory"),
    (".g\u200cit".encode(), 0o040000, "a name git reserves for its own directory"),
    (b"\xff.yaml", 0o100644, "a name that is not UTF-8"),
    (b".gitattributes", 0o100644, None),
])
def test_tree_entries_git_would_refuse_are_refused(name: bytes, mode: int, problem: str | None) -> None:
    assert contract.entry_problem(name, mode) == problem


@pytest.mark.parametrize(("path", "expected"), [
    ("shop/ConfigMap./settings.yaml", "shop/ConfigMap/settings.yaml"),  # an empty group after the dot
    ("shop/ConfigMap/" + "a" * 180 + "~" + "0" * 64 + ".yaml", None),  # a prefix too short for a long name
])
def test_contract_a_path_that_is_not_its_objects_path_is_refused(path: str, expected: str | None) -> None:
    with pytest.raises(ManifestError) as info:
        ref_of_path(path)
    assert info.value.path == path and (expected is None or expected in info.value.reason)


def test_contract_a_backslash_is_never_a_separator() -> None:
    assert ref_of_path("shop\\ConfigMap\\settings.yaml") is None  # one root file, not shop/ConfigMap/settings


@pytest.mark.parametrize(("length", "hashed"), [(249, False), (250, False), (251, True), (253, True)])
def test_contract_names_up_to_250_bytes_keep_their_paths_longer_ones_are_hashed(length: int, hashed: bool) -> None:
    ref = ObjectRef("", "ConfigMap", "shop", "a" * length)
    assert contract.hashed(ref.path) is hashed
    assert (ref.path == f"shop/ConfigMap/{'a' * length}.yaml") is not hashed
    assert len(ref.path.rpartition("/")[2]) == (length + 5 if not hashed else 255)


def test_contract_a_long_name_is_never_cut_inside_an_escape() -> None:
    for pad in range(3):
        name = "a" * (183 + pad) + ":" * 30  # ':' is %3A: the 185-byte cut falls on each of its three bytes
        prefix = ObjectRef("", "ConfigMap", "shop", name).path.rpartition("/")[2].partition("~")[0]
        assert not prefix.endswith(("%", "%3")) and contract.encode_name(name).startswith(prefix)


BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    b"%s: &%s [%s]\n" % (chr(98 + i).encode(), chr(98 + i).encode(), b", ".join([b"*" + chr(97 + i).encode()] * 9))
    for i in range(8))


@pytest.mark.parametrize(("data", "reason"), [
    (BOMB, "YAML anchor or alias on line 1: the repo contract has none"),
    (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: &d {k: v}\nmore: *d\n", "line 5"),
    (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\nk: !!str &s v\n", "anchor or alias"),
    (b"k: '" + b"x" * contract.MAX_FILE_BYTES + b"'\n", f"over the {contract.MAX_FILE_BYTES} byte limit"),
])
def test_contract_yaml_is_bounded_anchors_aliases_and_size_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ManifestError) as info:
        contract.load(data, "shop/ConfigMap/x.yaml")
    assert reason in info.value.reason and "\n" not in str(info.value)


def test_contract_stars_and_ampersands_in_strings_are_not_aliases() -> None:
    obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "all"},
           "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], "note": "a & b, *c, &d"}
    assert contract.load(contract.dump(obj), "_cluster/ClusterRole.rbac.authorization.k8s.io/all.yaml") == obj


def test_every_reader_of_repo_yaml_is_bounded() -> None:
    from kubedr import policyfile, roles

    with pytest.raises(policyfile.PolicyFileError, match="anchor or alias"):
        policyfile.section(BOMB, "apply")
    with pytest.raises(roles.RoleError, match="anchor or alias"):
        roles.parse(BOMB)
