"""Two `kubedr apply --leader-elect` replicas, as the secondary's Deployment runs them: one applies, the
other takes over after the leader is killed with SIGKILL, and a clean SIGTERM releases the Lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from kubedr import contract, kube, leader
from tests.conftest import free_port, run_git, wait_until

NS = "kubedr-system"
LEASE = "kubedr-applier"


def lease_spec(kc: str) -> dict[str, Any]:
    api = leader.client.CoordinationV1Api(kube.api_client(kc))
    try:
        return json.loads(api.read_namespaced_lease(LEASE, NS, _preload_content=False).data)["spec"]
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise


def configmap(kc: str, name: str) -> bool:
    try:
        kube.client.CoreV1Api(kube.api_client(kc)).read_namespaced_config_map(name, "shop")
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def push(work: Path, obj: dict[str, Any]) -> None:
    path = work / contract.ref_of(obj).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contract.dump(obj))
    run_git("add", "-A", cwd=work)
    run_git("commit", "-q", "-m", f"create {obj['kind']} {obj['metadata'].get('name')}", cwd=work)
    run_git("push", "-q", "origin", "main", cwd=work)


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}, "data": {}}


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_two_appliers_one_active_takeover_after_sigkill(emulator: Any, tmp_path: Path, git_remote: Path) -> None:
    kc = str(emulator.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    kube.client.CoreV1Api(kube.api_client(kc)).create_namespace({"metadata": {"name": NS}})
    work = tmp_path / "work"
    run_git("clone", "-q", str(git_remote), str(work))
    run_git("checkout", "-q", "-B", "main", cwd=work)
    push(work, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    push(work, cm("a"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    procs: dict[str, subprocess.Popen] = {}
    logs = {}
    ports = {"applier-0": free_port(), "applier-1": free_port()}
    for replica in ("applier-0", "applier-1"):
        logs[replica] = open(tmp_path / f"{replica}.log", "wb")  # noqa: SIM115 - closed below
        procs[replica] = subprocess.Popen(
            [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", kc, "--repo", str(git_remote),
             "--workdir", str(tmp_path / replica), "--interval", "200ms",
             "--leader-elect", "--leader-election-namespace", NS, "--leader-election-identity", replica,
             "--leader-election-lease-duration", "2", "--leader-election-renew-deadline", "1.5",
             "--leader-election-retry-period", "0.2", "--metrics-listen", f"127.0.0.1:{ports[replica]}"],
            stdout=logs[replica], stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: configmap(kc, "a"), timeout=30, what="the first commit applied")
        first = lease_spec(kc)["holderIdentity"]
        second = next(r for r in procs if r != first)
        assert procs[second].poll() is None          # the spare waits, it does not exit
        # both Ready: the leader once caught up, the waiting spare because it is healthy (rollouts never stall)
        wait_until(lambda: ready(ports[first]) and ready(ports[second]), timeout=15, what="both replicas Ready")

        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(10)
        killed = time.monotonic()
        push(work, cm("b"))
        wait_until(lambda: configmap(kc, "b"), timeout=30, what="the spare applying after the takeover")
        took = time.monotonic() - killed
        spec = lease_spec(kc)
        assert spec["holderIdentity"] == second and spec["leaseTransitions"] >= 1
        assert took < 15, f"takeover and apply took {took:.1f}s"

        procs[second].send_signal(signal.SIGTERM)   # the kubelet stopping the pod
        assert procs[second].wait(20) == 0
        assert lease_spec(kc)["holderIdentity"] == ""   # released: a new pod would not wait for expiry
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for fh in logs.values():
            fh.close()
