"""Which refusals count as an immutable-field change, and which kinds may be deleted to recreate them."""

from __future__ import annotations

from typing import Any

import pytest

from kubedr.apierrors import ApiError, api_error
from kubedr.applier.recreate import NEVER, RECREATE, immutable_change, refusal, refusal_for_live
from kubedr.contract import ObjectRef
from tests.conftest import load_fixture


def invalid(message: str, *causes: str) -> ApiError:
    details = {"causes": [{"reason": "FieldValueInvalid", "message": c, "field": "spec"} for c in causes]}
    return api_error(422, {"reason": "Invalid", "message": message, **({"details": details} if causes else {})})


# how real apiservers word it (kube-apiserver validation, CEL transition rules, a cloud webhook)
IMMUTABLE = [
    ('Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
     'map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable',
     ['Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, MatchExpressions:'
      '[]v1.LabelSelectorRequirement(nil)}: field is immutable']),
    ('Service "db" is invalid: spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set',
     ['Invalid value: []string{"None"}: may not change once set']),
    ('RoleBinding.rbac.authorization.k8s.io "r" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:'
     '"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef',
     ['Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: '
      'cannot change roleRef']),
    ('ConfigMap "c" is invalid: data: Forbidden: field is immutable when `immutable` is set',
     ["Forbidden: field is immutable when `immutable` is set"]),
    ("StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than "
     "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
     "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
     ["Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
      "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
      "are forbidden"]),
    ('StorageClass.storage.k8s.io "fast" is invalid: [parameters: Forbidden: updates to parameters are forbidden., '
     'reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.]',
     ["Forbidden: updates to parameters are forbidden.", "Forbidden: updates to reclaimPolicy are forbidden."]),
    ('PriorityClass.scheduling.k8s.io "high" is invalid: value: Forbidden: may not be changed in an update.',
     ["Forbidden: may not be changed in an update."]),
    ('PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after creation except '
     'resources.requests and volumeAttributesClassName for bound claims',
     ["Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for "
      "bound claims"]),
    ('Widget.example.com "w" is invalid: spec.size: Invalid value: "string": Value is immutable',
     ['Invalid value: "string": Value is immutable']),
]


@pytest.mark.parametrize(("message", "causes"), IMMUTABLE)
def test_real_immutable_wordings_are_recognised(message: str, causes: list[str]) -> None:
    assert immutable_change(invalid(message, *causes)) == message
    assert immutable_change(invalid(message)) == message  # no details: the message after "is invalid: "


def test_a_truly_invalid_object_is_never_taken_for_an_immutable_change(fixtures_dir: Any) -> None:
    doc = load_fixture("errors/422-invalid.json")  # a real apiserver's answer to a bad name
    exc = api_error(422, doc)
    assert immutable_change(exc) == ""
    mixed = invalid('Deployment.apps "web" is invalid: [spec.selector: ...: field is immutable, spec.replicas: '
                    'Invalid value: -1: must be greater than or equal to 0]',
                    "Invalid value: ...: field is immutable", "Invalid value: -1: must be greater than or equal to 0")
    assert immutable_change(mixed) == ""  # recreating would delete it and then fail to create it
    assert immutable_change(api_error(409, {"reason": "Conflict", "message": "field is immutable"})) == ""
    assert immutable_change(ValueError("field is immutable")) == ""


def test_data_holding_kinds_are_never_recreated_whatever_the_setting() -> None:
    for group, kind in (("", "PersistentVolumeClaim"), ("", "PersistentVolume"), ("", "Namespace")):
        assert (group, kind) in NEVER and (group, kind) not in RECREATE
        ref = ObjectRef(group, kind, "shop" if kind == "PersistentVolumeClaim" else "", "x")
        why = refusal(ref, enabled=True)
        assert f"never recreates a {kind}" in why and "by hand" in why


def test_recreate_table_and_switch() -> None:
    dep = ObjectRef("apps", "Deployment", "shop", "web")
    assert refusal(dep, enabled=True) == ""
    assert "--no-recreate" in refusal(dep, enabled=False)
    assert "not in its recreate table" in refusal(ObjectRef("example.com", "Widget", "shop", "w"), enabled=True)
    assert RECREATE[("apps", "Deployment")].propagation == "Background"
    assert RECREATE[("batch", "Job")].propagation == "Foreground"


def managed(obj: dict[str, Any]) -> dict[str, Any]:
    obj.setdefault("metadata", {})["labels"] = {"kubedr.io/managed": "true"}
    return obj


def test_live_checks_foreign_objects_and_statefulset_claims() -> None:
    sts = ObjectRef("apps", "StatefulSet", "shop", "db")
    assert "not created by kubedr" in refusal_for_live(sts, {"metadata": {"labels": {}}})
    assert refusal_for_live(sts, managed({"spec": {}})) == ""
    retain = {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}}
    assert refusal_for_live(sts, managed({"spec": retain})) == ""
    delete = {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}
    why = refusal_for_live(sts, managed({"spec": delete}))
    assert "claims would be deleted" in why and "by hand" in why
