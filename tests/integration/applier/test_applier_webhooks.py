"""A replicated namespace that runs an admission webhook (failurePolicy Fail): in standby its Deployment stays at
the primary's replicas, so later changes still apply on the secondary. Two emulators that call the webhook
(a real HTTPS server on loopback) through the Service's ready Endpoints, the exporter and the applier."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr.commands.cli import main
from kubedr.emulator.server import Emulator
from tests.conftest import wait_until
from tests.integration.applier.conftest import Repo, apply, live, status_of
from tests.webhook import WebhookServer


@pytest.fixture
def hook_server(tmp_path: Path) -> Iterator[WebhookServer]:
    server = WebhookServer(tmp_path, host="hook.shop.svc")
    yield server
    server.stop()


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[tuple[Emulator, Emulator]]:
    """Primary and secondary whose Pods run at once on 127.0.0.1, where the test serves the webhook."""
    pair = []
    for name in ("primary", "secondary"):
        emu = Emulator(pod_ip="127.0.0.1").start()
        emu.kubeconfig_path = str(emu.write_kubeconfig(tmp_path / f"{name}.kubeconfig"))
        pair.append(emu)
    yield pair[0], pair[1]
    for emu in pair:
        emu.stop()


def webhook_objects(server: WebhookServer) -> list[dict[str, Any]]:
    labels = {"app": "hook"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"webhooks": "on"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hook", "namespace": "shop"},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels}, "spec": {"containers": [{
                 "name": "hook", "image": "hook:1", "ports": [{"name": "webhook", "containerPort": server.port}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook", "namespace": "shop"},
         "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": "webhook"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {
             "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "configmaps.shop"}, "webhooks": [{
             "name": "configmaps.shop.example.com", "failurePolicy": "Fail", "sideEffects": "None",
             "admissionReviewVersions": ["v1"], "namespaceSelector": {"matchLabels": {"webhooks": "on"}},
             "clientConfig": {"service": {"namespace": "shop", "name": "hook", "path": "/validate"},
                              "caBundle": server.ca_bundle},
             "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["configmaps"]}]}]},
    ]


def served(emu: Emulator) -> bool:
    eps = live(emu, "v1", "Endpoints", "hook", "shop") or {}
    return any(s.get("addresses") for s in eps.get("subsets") or [])


def test_webhook_stays_served_in_standby(clusters: tuple[Emulator, Emulator], repo: Repo, tmp_path: Path,
                                         hook_server: WebhookServer, kubectl: str) -> None:
    primary, secondary = clusters

    def export() -> None:
        assert main(["export", "--once", "--kubeconfig", primary.kubeconfig_path, "--namespaces", "shop",
                     "--repo", str(repo.remote), "--workdir", str(tmp_path / "export-work")]) == 0

    for obj in webhook_objects(hook_server):
        primary.api.create(obj)
    wait_until(lambda: served(primary), what="the primary's webhook Pods to be ready")
    primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
                        "data": {"color": "blue"}})
    assert hook_server.seen("ConfigMap", "settings", "shop")  # the primary called the webhook
    export()
    assert "_cluster/ValidatingWebhookConfiguration.admissionregistration.k8s.io/configmaps.shop.yaml" in \
        subprocess.run(["git", "ls-tree", "-r", "--name-only", "main"], cwd=repo.remote, capture_output=True,
                       text=True, check=True).stdout  # replicated with the namespace whose Service serves it

    assert apply(secondary, repo) == 0, status_of(secondary)["failures"]
    assert live(secondary, "apps/v1", "Deployment", "hook", "shop")["spec"]["replicas"] == 2  # exempt
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 0  # held
    assert "kubedr.io/primary-replicas" not in (live(secondary, "apps/v1", "Deployment", "hook", "shop")
                                                ["metadata"].get("annotations") or {})
    exempt = status_of(secondary)["exempt"]
    assert exempt == ["apps/Deployment shop/hook: serves ValidatingWebhookConfiguration configmaps.shop through "
                      "Service shop/hook"]
    wait_until(lambda: served(secondary), what="the secondary's webhook Pods to be ready")

    primary.api.patch("v1", "ConfigMap", "settings", {"data": {"color": "green"}}, namespace="shop")
    export()
    before = len(hook_server.seen("ConfigMap", "settings", "shop"))
    assert apply(secondary, repo) == 0, status_of(secondary)["failures"]
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"color": "green"}
    assert len(hook_server.seen("ConfigMap", "settings", "shop")) > before  # the secondary asked the webhook

    # the control: with the webhook's Pods held down (by hand), the same kind of change cannot apply
    subprocess.run([kubectl, "--kubeconfig", secondary.kubeconfig_path, "-n", "shop", "scale", "deployment", "hook",
                    "--replicas=0"], check=True, capture_output=True)
    wait_until(lambda: not served(secondary), what="the webhook to lose its endpoints")
    primary.api.patch("v1", "ConfigMap", "settings", {"data": {"color": "red"}}, namespace="shop")
    export()
    assert apply(secondary, repo) == 1
    [failure] = status_of(secondary)["failures"]
    assert failure["path"] == "shop/ConfigMap/settings.yaml"
    assert 'no endpoints available for service "hook"' in failure["reason"]


def test_dry_run_plan_names_the_exempt_workloads(secondary: Any, repo: Repo, tmp_path: Path,
                                                 hook_server: WebhookServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for obj in webhook_objects(hook_server):
        repo.put(obj)
    repo.commit("webhook")
    assert apply(secondary, repo, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "exempt from standby: apps/Deployment shop/hook: serves ValidatingWebhookConfiguration" in out
    assert "web" not in out.split("exempt from standby")[1]
