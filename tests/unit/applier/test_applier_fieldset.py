"""Drift is judged on kubedr's field set only: the paths of its Apply entry, list items found by their keys,
and paths a cluster controller took over (CONTROLLERS) left alone. Objects from the emulator's real SSA."""

from __future__ import annotations

from typing import Any

import pytest

from kubedr.applier.drift import CONTROLLERS, Baseline, Drift
from kubedr.applier.fieldset import applied_set, differences, extract, owners
from kubedr.emulator.store import ClusterStore


@pytest.fixture
def store() -> ClusterStore:
    s = ClusterStore()
    s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    return s


def deployment(replicas: int = 0) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": "shop", "labels": {"kubedr.io/managed": "true"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}}


def baseline(answer: dict[str, Any]) -> Baseline:
    tree = applied_set(answer, "kubedr")
    return Baseline("shop/Deployment.apps/web.yaml", tree, extract(answer, tree))


def drifted(base: Baseline, live: dict[str, Any]) -> tuple[list[str], list[str]]:
    return Drift._differences(base, live)


def test_only_kubedrs_fields_are_compared(store: ClusterStore) -> None:
    base = baseline(store.apply(deployment(), "kubedr", force=True))
    assert "f:status" not in base.tree and "f:strategy" not in base.tree["f:spec"]  # defaults are not kubedr's
    live = store.patch("apps/v1", "Deployment", "web", {"spec": {"strategy": {"type": "Recreate"},
                                                                 "minReadySeconds": 5}}, namespace="shop",
                       manager="kubectl-edit")
    assert drifted(base, live) == ([], [])  # fields kubedr never applied
    live = store.patch("apps/v1", "Deployment", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:evil"}]}}}}, "strategic", namespace="shop", manager="kubectl-edit")
    assert drifted(base, live) == (["spec.template.spec.containers[name=web].image"], ["kubectl-edit"])


def test_list_items_are_found_by_their_keys_even_with_defaulted_keys(store: ClusterStore) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    answer = store.apply(svc, "kubedr", force=True)
    base = Baseline("p", applied_set(answer, "kubedr"), extract(answer, applied_set(answer, "kubedr")))
    assert differences(base.values, answer, base.tree) == []  # protocol (a key) was defaulted, still found
    live = store.patch("v1", "Service", "web", {"spec": {"ports": [{"port": 81, "protocol": "TCP"}]}},
                       namespace="shop", manager="hand")
    assert [d.path for d in differences(base.values, live, base.tree)] == ["spec.ports[port=80,protocol=TCP]"]


@pytest.mark.parametrize("manager", sorted(CONTROLLERS))
def test_fields_a_cluster_controller_took_over_are_not_drift(store: ClusterStore, manager: str) -> None:
    base = baseline(store.apply(deployment(0), "kubedr", force=True))
    live = store.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 4}}, namespace="shop",
                       manager=manager, subresource="scale")
    assert owners(live, ("f:spec", "f:replicas")) == {manager}
    assert drifted(base, live) == ([], [])
    other = store.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 5}}, namespace="shop",
                        manager="kubectl", subresource="scale")
    assert drifted(base, other) == (["spec.replicas"], ["kubectl"])  # a person scaling is drift


def test_owners_of_an_atomic_value(store: ClusterStore) -> None:
    live = store.apply(deployment(), "kubedr", force=True)
    # the selector is atomic: its leaves belong to whoever owns the map
    assert owners(live, ("f:spec", "f:selector", "f:matchLabels", "f:app")) == {"kubedr"}
    assert owners(live, ("f:spec", "f:paused")) == set()
