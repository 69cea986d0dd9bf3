"""fieldValidation: the unknown fields a strict server reports, and how it words them."""

from __future__ import annotations

from kubedr.emulator.field_validation import strict_message, unknown_fields, warnings


def test_unknown_fields_are_found_at_any_depth():
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "labelz": {}},
           "spec": {"replicas": 1, "template": {"spec": {"containers": [
               {"name": "a", "image": "a"}, {"name": "b", "imagePullPolice": "Always"}]}}},
           "extra": 1}
    assert unknown_fields(obj, "apps/v1", "Deployment") == [
        "metadata.labelz", "spec.template.spec.containers[1].imagePullPolice", "extra"]


def test_maps_and_free_form_fields_accept_any_key():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"any": "x"}},
           "data": {"whatever": "1"}}
    assert unknown_fields(obj, "v1", "ConfigMap") == []
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"},
           "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "$ref": "y"}}}]}}
    assert unknown_fields(crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition") == []
    assert unknown_fields({"spec": {"anything": 1}}, "example.com/v1", "Unregistered") == []


def test_messages():
    paths = ["spec.foo", "spec.bar"]
    assert strict_message(paths) == 'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"'
    assert warnings(paths) == ['unknown field "spec.foo"', 'unknown field "spec.bar"']


def test_strategic_merge_patch_directives_are_not_fields():
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}],
        "containers": [{"name": "c", "$setElementOrder/ports": [], "$deleteFromPrimitiveList/args": ["x"]},
                       {"name": "b", "$patch": "delete"}],
        "$retainKeys": ["containers"]}}}}
    assert unknown_fields(patch, "apps/v1", "Deployment") == []
