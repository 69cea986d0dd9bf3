"""The emulator's pretend node: Pods of a scheduled workload run and turn Ready, the controllers count them as
the real ones do (so `kubectl rollout status` finishes), and an image under `.invalid` cannot be pulled:
ImagePullBackOff in the Pod, the kubelet's Events, and a rollout that never completes."""

from __future__ import annotations

import subprocess
from typing import Any

from kubedr.emulator.server import Emulator


def deployment(name: str, image: str, replicas: int = 3) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}}}


def rollout(kubectl: str, emu: Any, what: str, timeout: str = "10s") -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl, "--kubeconfig", str(emu.kubeconfig), "-n", "shop", "rollout", "status", what,
                           f"--timeout={timeout}"], capture_output=True, text=True, timeout=60)


def test_pods_run_ready_and_workloads_roll_out(emulator: Any, kubectl: str) -> None:
    api = emulator.api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    api.create(deployment("web", "registry.example.com/shop/web:1"))
    api.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                         "template": {"metadata": {"labels": {"app": "db"}},
                                      "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}})
    assert rollout(kubectl, emulator, "deployment/web").returncode == 0
    assert rollout(kubectl, emulator, "statefulset/db").returncode == 0
    status = api.get("apps/v1", "Deployment", "web", "shop")["status"]
    assert {k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == \
        {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Available", "True", "MinimumReplicasAvailable"), ("Progressing", "True", "NewReplicaSetAvailable")]
    _, pods, _ = api.list_rt(api.kind("v1", "Pod"), "shop")
    assert {p.obj["status"]["phase"] for p in pods} == {"Running"}
    assert all("podIP" not in p.obj["status"] for p in pods)  # no pod_ip: no address, Services route nowhere


def test_an_image_under_invalid_cannot_be_pulled(emulator: Any, kubectl: str) -> None:
    api = emulator.api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    api.create(deployment("web", "registry.invalid/shop/web:1", replicas=1))
    assert rollout(kubectl, emulator, "deployment/web", "2s").returncode != 0
    _, pods, _ = api.list_rt(api.kind("v1", "Pod"), "shop")
    (pod,) = [p.obj for p in pods]
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"] == {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "registry.invalid/shop/web:1"'}
    _, events, _ = api.list_rt(api.kind("v1", "Event"), "shop")
    kubelet = [(e.obj["type"], e.obj["reason"], e.obj["message"]) for e in events
               if e.obj["source"]["component"] == "kubelet"]
    assert ("Warning", "Failed", "Error: ErrImagePull") in kubelet
    assert ("Normal", "BackOff", 'Back-off pulling image "registry.invalid/shop/web:1"') in kubelet
    status = api.get("apps/v1", "Deployment", "web", "shop")["status"]
    assert status.get("availableReplicas") is None and status["unavailableReplicas"] == 1


def test_without_the_kubelet_pods_stay_pending(tmp_path: Any) -> None:
    with Emulator(kubelet=False) as emu:
        emu.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        emu.api.create(deployment("web", "nginx:1.27", replicas=1))
        assert emu.controllers is not None and emu.controllers.idle()
        _, pods, _ = emu.api.list_rt(emu.api.kind("v1", "Pod"), "shop")
        assert [p.obj.get("status", {}).get("phase") for p in pods] in ([None], ["Pending"])
        assert emu.api.get("apps/v1", "Deployment", "web", "shop")["status"]["conditions"][0]["status"] == "False"
