"""Benchmark: `kubedr promote` and `kubedr demote` with 1,000 workloads, each cluster its own emulator process.

promote: command start -> it returns, when every Deployment on the secondary is requested at the primary's
replicas (checked right after). demote: command start -> it returns, the old primary a standby of the branch
(its state set aside on a side branch, one standby apply round of every object).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_bench_applier import Emu, procs  # noqa: F401 - the fixture

from kubedr.commands import repo_init
from tests.conftest import wait_until

N_WORKLOADS = int(os.environ.get("KUBEDR_BENCH_FAILBACK_WORKLOADS", "1000"))
NAMESPACES = 10


def _deployment(i: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"dep-{i}", "namespace": f"ns-{i % NAMESPACES}"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": f"app-{i}"}},
                     "template": {"metadata": {"labels": {"app": f"app-{i}"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}


def _kubedr(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kubedr", *args], capture_output=True, text=True, env=env,
                          timeout=1200)
    return proc, time.perf_counter() - start


def _replicas(emu: Emu) -> list[int]:
    items = emu.cluster.request("GET", "/apis/apps/v1/deployments").get("items") or []
    return [d["spec"]["replicas"] for d in items]


@pytest.mark.bench
def test_bench_promote_and_demote_1000_workloads(tmp_path: Path, procs: list) -> None:  # noqa: F811
    remote = tmp_path / "config.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    repo_init.init_repo(str(remote), writer="A")
    a, b = Emu(tmp_path, "A"), Emu(tmp_path, "B")
    procs += [a.proc, b.proc]
    namespaces = ",".join(f"ns-{i}" for i in range(NAMESPACES))
    for i in range(NAMESPACES):
        a.cluster.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": f"ns-{i}"}})
    for i in range(N_WORKLOADS):
        d = _deployment(i)
        a.cluster.request("POST", f"/apis/apps/v1/namespaces/{d['metadata']['namespace']}/deployments", d)
    export = ["--kubeconfig", a.kubeconfig, "--namespaces", namespaces, "--repo", str(remote),
              "--workdir", str(tmp_path / "export-A"), "--cluster-name", "A"]
    done, _ = _kubedr("export", "--once", *export)
    assert done.returncode == 0, done.stderr[-2000:]
    done, _ = _kubedr("apply", "--once", "--kubeconfig", b.kubeconfig, "--repo", str(remote), "--prune")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _replicas(b) == [0] * N_WORKLOADS

    promoted, promote_s = _kubedr("promote", "--kubeconfig", b.kubeconfig, "--repo", str(remote),
                                  "--cluster-name", "B", "--force", "--no-wait")  # no kubelet here: Pods never run
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    wait_until(lambda: _replicas(b) == [3] * N_WORKLOADS, timeout=5, what="every workload at full replicas")

    for i in range(0, N_WORKLOADS, 100):  # the old primary took a few changes the branch never saw
        a.cluster.request("PATCH", f"/apis/apps/v1/namespaces/ns-{i % NAMESPACES}/deployments/dep-{i}",
                          {"spec": {"replicas": 5}}, content_type="application/merge-patch+json")
    demoted, demote_s = _kubedr("demote", *export, "--prune")
    assert demoted.returncode == 0, demoted.stderr[-2000:]
    assert f"{N_WORKLOADS // 100} objects never reached main" in demoted.stdout
    assert _replicas(a) == [0] * N_WORKLOADS
    print(f"\n[failback] promote with {N_WORKLOADS} workloads: {promote_s:.2f}s (command -> every workload "
          f"requested at full replicas); demote: {demote_s:.2f}s (side branch of {N_WORKLOADS // 100} changes + "
          f"one standby apply round of {N_WORKLOADS} workloads)")
