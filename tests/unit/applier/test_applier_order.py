"""The apply order table: each stage holds what the next one needs."""

from __future__ import annotations

import pytest

from kubedr.applier.order import ORDER, STAGES, plan, plan_deletes, stage_of
from kubedr.contract import ObjectRef


def ref(group: str, kind: str, ns: str = "shop", name: str = "x") -> ObjectRef:
    return ObjectRef(group, kind, ns, name)


@pytest.mark.parametrize(("first", "then"), [
    (("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")),
    (("apiextensions.k8s.io", "CustomResourceDefinition"), ("example.com", "Widget")),
    (("", "ServiceAccount"), ("apps", "Deployment")),
    (("", "ServiceAccount"), ("", "Secret")),  # a token Secret's ServiceAccount exists first
    (("", "ConfigMap"), ("apps", "Deployment")),
    (("", "Secret"), ("apps", "StatefulSet")),
    (("rbac.authorization.k8s.io", "Role"), ("apps", "Deployment")),
    (("scheduling.k8s.io", "PriorityClass"), ("apps", "Deployment")),
    (("storage.k8s.io", "StorageClass"), ("", "PersistentVolumeClaim")),
    (("", "PersistentVolume"), ("apps", "StatefulSet")),
    (("", "PersistentVolumeClaim"), ("apps", "Deployment")),
    (("", "Service"), ("apps", "StatefulSet")),
    (("", "LimitRange"), ("batch", "CronJob")),
    (("", "ResourceQuota"), ("", "Pod")),
    (("apps", "Deployment"), ("networking.k8s.io", "Ingress")),
    # a webhook after the workload serving it, and after everything it would otherwise have to admit
    (("apps", "Deployment"), ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")),
    (("example.com", "Widget"), ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")),
    (("apps", "StatefulSet"), ("apiregistration.k8s.io", "APIService")),
])
def test_stage_before(first: tuple[str, str], then: tuple[str, str]) -> None:
    assert stage_of(*first) < stage_of(*then)


def test_every_kind_once_and_rest_last() -> None:
    seen = [gk for _, kinds in ORDER for gk in kinds]
    assert len(seen) == len(set(seen))
    assert STAGES[0] == "namespaces" and STAGES[-2:] == ("rest", "admission")
    assert STAGES[stage_of("example.com", "Widget")] == "rest"


def test_plan_groups_in_order_and_keeps_order_within_stage() -> None:
    items = [(ref("apps", "Deployment", name="b"), "dep-b"), (ref("", "Namespace", "", "shop"), "ns"),
             (ref("apps", "Deployment", name="a"), "dep-a"), (ref("", "ConfigMap"), "cm")]
    assert plan(items) == [("namespaces", ["ns"]), ("config", ["cm"]), ("workloads", ["dep-b", "dep-a"])]


def test_deletes_run_in_reverse() -> None:
    items = [(ref("", "Namespace", "", "shop"), "ns"), (ref("apps", "Deployment"), "dep"),
             (ref("example.com", "Widget"), "w"), (ref("apiextensions.k8s.io", "CustomResourceDefinition", ""), "crd")]
    assert [s for s, _ in plan_deletes(items)] == ["rest", "workloads", "crds", "namespaces"]
