"""The real kubectl patching through the emulator: client-side apply (SMP from /openapi/v3), patch types, SSA."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def run(kubectl: str, emu, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl, "--kubeconfig", str(emu.kubeconfig), *args], input=stdin, capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def get(kubectl: str, emu, *what: str) -> dict:
    return json.loads(run(kubectl, emu, "get", *what, "-o", "json", "--show-managed-fields").stdout)


def deployment(*containers: dict, replicas: int = 1) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": list(containers)}}}})


@pytest.fixture
def manifest(tmp_path: Path):
    def write(text: str) -> str:
        path = tmp_path / "m.json"
        path.write_text(text)
        return str(path)
    return write


def test_client_side_apply_twice_changes_the_container_list(kubectl, emulator, manifest):
    first = deployment({"name": "a", "image": "a:1", "ports": [{"containerPort": 80}], "env": [{"name": "X", "value": "1"}]},
                       {"name": "b", "image": "b:1"})
    run(kubectl, emulator, "apply", "-f", manifest(first))
    second = deployment({"name": "c", "image": "c:1"},
                        {"name": "a", "image": "a:2", "ports": [{"containerPort": 80}, {"containerPort": 81}]})
    proc = run(kubectl, emulator, "apply", "-f", manifest(second))
    assert "warning" not in proc.stderr.lower(), proc.stderr
    live = get(kubectl, emulator, "deployment", "web")
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["c", "a"]
    assert containers[1]["image"] == "a:2" and "env" not in containers[1]
    assert [p["containerPort"] for p in containers[1]["ports"]] == [80, 81]
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert ("kubectl-client-side-apply", "Update") in managers


def test_kubectl_patch_strategic_merge_and_json(kubectl, emulator, manifest):
    run(kubectl, emulator, "create", "-f", manifest(deployment({"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"})))
    run(kubectl, emulator, "patch", "deployment", "web", "--type", "strategic",
        "-p", json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}))
    containers = get(kubectl, emulator, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("a", "a:1"), ("b", "b:2")]
    run(kubectl, emulator, "patch", "deployment", "web", "--type", "merge",
        "-p", json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "o:1"}]}}}}))
    containers = get(kubectl, emulator, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["only"]
    run(kubectl, emulator, "patch", "deployment", "web", "--type", "json",
        "-p", json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "o:2"},
                          {"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}}]))
    live = get(kubectl, emulator, "deployment", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "o:2"
    assert live["metadata"]["labels"] == {"patched": "yes"}
    failed = run(kubectl, emulator, "patch", "deployment", "web", "--type", "json",
                 "-p", json.dumps([{"op": "test", "path": "/metadata/labels/patched", "value": "no"}]), check=False)
    assert failed.returncode != 0


def test_strategic_patch_on_a_custom_resource_is_415(kubectl, emulator, manifest):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}}}]}}
    run(kubectl, emulator, "apply", "--server-side", "-f", manifest(json.dumps(crd)))
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"},
              "spec": {"size": 1, "tags": ["a"]}}
    run(kubectl, emulator, "apply", "-f", manifest(json.dumps(widget)))
    widget["spec"]["tags"] = ["b"]
    run(kubectl, emulator, "apply", "-f", manifest(json.dumps(widget)))
    assert get(kubectl, emulator, "widget", "w")["spec"]["tags"] == ["b"]
    proc = run(kubectl, emulator, "patch", "widget", "w", "--type", "strategic", "-p", '{"spec":{"size":2}}', check=False)
    assert proc.returncode != 0
    assert "the body of the request was in an unknown format" in proc.stderr, proc.stderr
    run(kubectl, emulator, "patch", "widget", "w", "--type", "merge", "-p", '{"spec":{"size":3}}')
    assert get(kubectl, emulator, "widget", "w")["spec"]["size"] == 3


def test_server_side_apply_conflict_then_force(kubectl, emulator, manifest):
    path = manifest(deployment({"name": "a", "image": "a:1"}, replicas=2))
    run(kubectl, emulator, "apply", "--server-side", "-f", path)
    run(kubectl, emulator, "scale", "deployment", "web", "--replicas=3")
    proc = run(kubectl, emulator, "apply", "--server-side", "-f", path, check=False)
    assert proc.returncode != 0
    assert 'conflict with "kubectl" with subresource "scale"' in proc.stderr, proc.stderr
    assert ".spec.replicas" in proc.stderr
    assert get(kubectl, emulator, "deployment", "web")["spec"]["replicas"] == 3
    run(kubectl, emulator, "apply", "--server-side", "--force-conflicts", "-f", path)
    live = get(kubectl, emulator, "deployment", "web")
    assert live["spec"]["replicas"] == 2
    applied = next(m for m in live["metadata"]["managedFields"] if m["operation"] == "Apply")
    assert applied["manager"] == "kubectl" and "f:replicas" in applied["fieldsV1"]["f:spec"]
    assert not any(m.get("subresource") == "scale" for m in live["metadata"]["managedFields"])


def test_server_side_apply_prunes_what_the_manager_stopped_applying(kubectl, emulator, manifest):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
          "data": {"a": "1", "b": "2"}}
    run(kubectl, emulator, "apply", "--server-side", "--field-manager", "kubedr", "-f", manifest(json.dumps(cm)))
    del cm["data"]["b"]
    run(kubectl, emulator, "apply", "--server-side", "--field-manager", "kubedr", "-f", manifest(json.dumps(cm)))
    live = get(kubectl, emulator, "configmap", "c")
    assert live["data"] == {"a": "1"}
    assert [m["fieldsV1"] for m in live["metadata"]["managedFields"]] == [{"f:data": {"f:a": {}}}]


def test_server_side_apply_after_client_side_apply_keeps_the_object(kubectl, emulator, manifest):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}, {"port": 81}]}}
    path = manifest(json.dumps(svc))
    run(kubectl, emulator, "apply", "-f", path)
    run(kubectl, emulator, "apply", "--server-side", "-f", path)
    live = get(kubectl, emulator, "service", "s")
    assert [(p["port"], p["protocol"]) for p in live["spec"]["ports"]] == [(80, "TCP"), (81, "TCP")]
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers and ("kubectl-client-side-apply", "Update") not in managers
