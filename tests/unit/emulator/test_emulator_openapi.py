"""/openapi/v3 documents: what kubectl reads to validate on the server and to build strategic merge patches."""

from __future__ import annotations

import time

import pytest

from kubedr.emulator import openapi
from kubedr.emulator.openapi import Resource


def patch_ops(doc: dict) -> list[dict]:
    return [item["patch"] for item in doc["paths"].values() if "patch" in item]


def test_index_points_at_each_group_version():
    index = openapi.v3_index(group_versions=["api/v1", "apis/apps/v1"])
    assert set(index["paths"]) == {"api/v1", "apis/apps/v1"}
    assert index["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
    full = openapi.v3_index()
    assert {"api/v1", "apis/apps/v1", "apis/batch/v1", "apis/rbac.authorization.k8s.io/v1"} <= set(full["paths"])


def test_group_document_has_patch_operations_with_field_validation():
    doc = openapi.v3_group("apis/apps/v1", resources=[Resource("deployments", "Deployment", True),
                                                      Resource("deployments/scale", "Scale", True)])
    assert doc["openapi"].startswith("3.")
    (op,) = patch_ops(doc)
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in op["parameters"] if p["name"] == "fieldValidation").items()
    assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]


def test_schemas_come_from_kubernetes_validate_with_patch_metadata():
    doc = openapi.v3_group("api/v1")
    schemas = doc["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    spec = pod["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    assert isinstance(schemas["io.k8s.api.core.v1.Container"]["properties"]["image"]["type"], str)
    for name in ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "io.k8s.api.core.v1.Container"):
        assert name in schemas


@pytest.mark.parametrize("gv", ["api/v1", "apis/apps/v1", "apis/apiextensions.k8s.io/v1"])
def test_every_reference_resolves_inside_the_document(gv):
    # apiextensions has a property literally named "$ref" (JSONSchemaProps): it is a field, not a reference.
    doc = openapi.v3_group(gv)
    schemas = doc["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for v in node.values():
                yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    missing = {r for r in refs(doc) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not missing


def test_unknown_group_version_is_a_key_error():
    with pytest.raises(KeyError):
        openapi.v3_group("apis/nope.example.com/v1")


def test_custom_resources_are_published_without_strategic_merge_patch():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}
    openapi.add_custom_resource("example.com", "v1", "Widget", "widgets", True, schema)
    try:
        assert "apis/example.com/v1" in openapi.v3_index(group_versions=["api/v1"])["paths"]
        doc = openapi.v3_group("apis/example.com/v1")
        widget = doc["components"]["schemas"]["com.example.v1.Widget"]
        assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "kind": "Widget", "version": "v1"}]
        assert widget["properties"]["spec"] == schema["properties"]["spec"]
        (op,) = patch_ops(doc)
        assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
        assert any(p["name"] == "fieldValidation" for p in op["parameters"])
    finally:
        openapi.remove_custom_resource("example.com", "v1", "Widget")
    assert "apis/example.com/v1" not in openapi.v3_index(group_versions=["api/v1"])["paths"]


def test_documents_are_cached():
    openapi.v3_group("apis/batch/v1")
    start = time.perf_counter()
    for _ in range(20):
        openapi.v3_group("apis/batch/v1")
        openapi.v3_index()
    assert time.perf_counter() - start < 1.0
