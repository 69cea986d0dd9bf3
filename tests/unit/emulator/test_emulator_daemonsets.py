"""Where the emulator's DaemonSet controller places Pods: node selector, required affinity, taints."""

from __future__ import annotations

from typing import Any

import pytest

from kubedr.emulator import daemonsets

CP = {"node-role.kubernetes.io/control-plane": ""}
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
TOLERATE_CP = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize("n,spec,expect", [
    (node("cp-1", CP, [CP_TAINT]), {"nodeSelector": CP, "tolerations": TOLERATE_CP}, True),
    (node("cp-1", CP, [CP_TAINT]), {"nodeSelector": CP}, False),  # the taint is not tolerated
    (node("w-1"), {"nodeSelector": CP, "tolerations": TOLERATE_CP}, False),  # not selected
    (node("w-1"), {}, True),
    (node("w-1", taints=[{"key": "x", "effect": "PreferNoSchedule"}]), {}, True),  # only a preference
    (node("w-1", taints=[{"key": "x", "value": "a", "effect": "NoExecute"}]),
     {"tolerations": [{"key": "x", "value": "a"}]}, True),  # no effect given: every effect
    (node("w-1", taints=[{"key": "x", "value": "a", "effect": "NoExecute"}]),
     {"tolerations": [{"key": "x", "value": "b"}]}, False),
    (node("w-1", taints=[{"key": "x", "effect": "NoSchedule"}]), {"tolerations": [{"operator": "Exists"}]}, True),
    (node("w-1", {"zone": "a"}), {"affinity": affinity({"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a", "b"]}]})}, True),
    (node("w-1", {"zone": "c"}), {"affinity": affinity({"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a"]}]}, {"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["w-1"]}]})}, True),  # terms are ORed
    (node("w-1", {"cpus": "8"}), {"affinity": affinity({"matchExpressions": [
        {"key": "cpus", "operator": "Gt", "values": ["16"]}]})}, False),
    (node("w-1"), {"affinity": affinity({})}, False),  # an empty term matches nothing
])
def test_placement(n: dict, spec: dict, expect: bool) -> None:
    assert daemonsets.eligible(n, spec) is expect


def test_the_pod_is_pinned_to_its_node_and_owned() -> None:
    ds = {"metadata": {"name": "agent", "namespace": "ops"}, "spec": {"template": {
        "metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    owner = {"kind": "DaemonSet", "name": "agent", "uid": "u", "controller": True}
    pod = daemonsets.pod_for(ds, "cp-2", owner)
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert pod["spec"]["nodeName"] == "cp-2" and terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["cp-2"]
    assert pod["metadata"]["ownerReferences"] == [owner] and pod["metadata"]["labels"] == {"app": "agent"}
    assert "affinity" not in ds["spec"]["template"]["spec"]  # the template is not changed
