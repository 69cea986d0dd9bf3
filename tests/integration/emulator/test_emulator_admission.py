"""The emulator calls admission webhooks as a kube-apiserver does: url and service references (through ready
Endpoints), rules, namespaceSelector, failurePolicy, denial messages, JSONPatch mutations, dry run."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr.apierrors import NotFound
from kubedr.emulator.errors import ApiError
from kubedr.emulator.server import Emulator
from tests.conftest import free_port, wait_until
from tests.webhook import WebhookServer


def deny_red(request: dict[str, Any]) -> dict[str, Any]:
    if ((request.get("object") or {}).get("data") or {}).get("color") == "red":
        return {"allowed": False, "status": {"code": 403, "message": "red is not allowed"}}
    if request["kind"]["kind"] == "Secret":
        patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}
    return {"allowed": True}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    e = Emulator(pod_ip="127.0.0.1").start()
    for ns, labels in (("shop", {"webhook": "on"}), ("other", {})):
        e.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
    yield e
    e.stop()


def hook(name: str, client: dict[str, Any], resources: list[str], policy: str = "Fail", **extra: Any) -> dict:
    return {"name": name, "clientConfig": client, "failurePolicy": policy, "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "namespaceSelector": {"matchLabels": {"webhook": "on"}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": resources}], **extra}


def config(kind: str, name: str, *hooks: dict) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": list(hooks)}


def cm(name: str, ns: str = "shop", color: str = "blue") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"color": color}}


def test_url_webhook_rules_namespace_selector_denial_and_mutation(emu: Emulator, tmp_path: Path) -> None:
    server = WebhookServer(tmp_path, decide=deny_red)
    url = {"url": f"https://127.0.0.1:{server.port}/validate", "caBundle": server.ca_bundle}
    emu.api.create(config("ValidatingWebhookConfiguration", "colors", hook("colors.test", url, ["configmaps"])))
    emu.api.create(config("MutatingWebhookConfiguration", "labels", hook("labels.test", url, ["secrets"])))
    try:
        emu.api.create(cm("blue"))
        assert [r["operation"] for r in server.seen("ConfigMap", "blue")] == ["CREATE"]
        with pytest.raises(ApiError) as denied:
            emu.api.create(cm("red", color="red"))
        assert denied.value.status == 403
        assert denied.value.message == 'admission webhook "colors.test" denied the request: red is not allowed'
        with pytest.raises(ApiError):  # an update is admitted too, with the old object
            emu.api.patch("v1", "ConfigMap", "blue", {"data": {"color": "red"}}, namespace="shop")
        assert server.seen("ConfigMap", "blue")[-1]["oldObject"]["data"] == {"color": "blue"}
        emu.api.create(cm("red", ns="other", color="red"))  # namespaceSelector: not sent
        assert not server.seen("ConfigMap", "red", "other")
        emu.api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x", "namespace": "shop"}})
        assert not server.seen("ServiceAccount", "x")  # rules: not sent
        secret = emu.api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}})
        assert secret["metadata"]["labels"] == {"mutated": "yes"}
        emu.api.apply(cm("dry", color="green"), "t", dry_run=True)
        assert server.seen("ConfigMap", "dry")[-1]["dryRun"] is True
    finally:
        server.stop()


def test_failure_policy_fail_and_ignore(emu: Emulator) -> None:
    gone = {"url": f"https://127.0.0.1:{free_port()}/x"}
    emu.api.create(config("ValidatingWebhookConfiguration", "lenient", hook("lenient.test", gone, ["configmaps"],
                                                                             "Ignore")))
    emu.api.create(cm("a"))  # Ignore: the unreachable webhook lets it through
    emu.api.create(config("ValidatingWebhookConfiguration", "strict", hook("strict.test", gone, ["configmaps"])))
    with pytest.raises(ApiError) as failed:
        emu.api.create(cm("b"))
    assert failed.value.status == 500 and failed.value.reason == "InternalError"
    assert failed.value.message.startswith('Internal error occurred: failed calling webhook "strict.test": '
                                           'failed to call webhook: Post "https://127.0.0.1:')


def test_service_reference_needs_ready_endpoints(emu: Emulator, tmp_path: Path) -> None:
    server = WebhookServer(tmp_path, host="hook.shop.svc", decide=deny_red)
    labels = {"app": "hook"}
    emu.api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook", "namespace": "shop"},
                    "spec": {"selector": labels, "ports": [{"name": "https", "port": 443,
                                                            "targetPort": "webhook"}]}})
    emu.api.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hook", "namespace": "shop"},
                    "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                        "metadata": {"labels": labels}, "spec": {"containers": [{
                            "name": "hook", "image": "hook:1",
                            "ports": [{"name": "webhook", "containerPort": server.port}]}]}}}})
    svc = {"service": {"namespace": "shop", "name": "hook", "path": "/validate"}, "caBundle": server.ca_bundle}
    emu.api.create(config("ValidatingWebhookConfiguration", "colors", hook("colors.test", svc, ["configmaps"])))
    try:
        with pytest.raises(ApiError) as failed:  # no Pods: no endpoints
            emu.api.create(cm("a"))
        assert 'no endpoints available for service "hook"' in failed.value.message
        emu.api.scale("apps/v1", "Deployment", "hook", 1, "shop")

        def served() -> bool:
            try:  # the endpoints controller makes the object a moment after the Service
                eps = emu.api.get("v1", "Endpoints", "hook", "shop")
            except NotFound:
                return False
            return bool((eps.get("subsets") or [{}])[0].get("addresses"))
        wait_until(served, what="the Pod to be ready behind the Service")
        subset = emu.api.get("v1", "Endpoints", "hook", "shop")["subsets"][0]
        assert subset["ports"] == [{"name": "https", "port": server.port, "protocol": "TCP"}]
        emu.api.create(cm("a"))
        assert [r["operation"] for r in server.seen("ConfigMap", "a")] == ["CREATE"]
        with pytest.raises(ApiError) as denied:
            emu.api.create(cm("r", color="red"))
        assert denied.value.status == 403
    finally:
        server.stop()
