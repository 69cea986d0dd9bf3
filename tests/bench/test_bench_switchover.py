"""Benchmark: the RTO of `kubedr switchover` on a standby of 300 workloads, and how much of it is kubedr's.

The secondary is its own `kubedr emulate` process, with its controllers and pretend kubelet (every Pod Ready as
soon as it is created). Two standbys, applied alike by `kubedr apply --once`:
  - kubedr: `kubedr switchover` (a process), its RTO as it prints it (the process's start -> every workload
    Available: its own start-up counts);
  - the floor: the same JSON patches sent by a bare client over one pool, then one watch of the Deployments until
    every one is Available: what the API server and its kubelet need, nothing of kubedr's.
Alternately, best of ROUNDS each (the machine is shared: its load moves both alike).
kubedr's own share is the difference (interpreter start and imports, discovery, inventory, lists, its watches).
Goal: kubedr's share under 2 s at 300 workloads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract, git
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster
from tests.conftest import free_port, wait_until

N_WORKLOADS = int(os.environ.get("KUBEDR_BENCH_SWITCHOVER_WORKLOADS", "300"))
NAMESPACES = 6
REPLICAS = 2
KUBEDR_SHARE_GOAL = 2.0
ROUNDS = int(os.environ.get("KUBEDR_BENCH_SWITCHOVER_ROUNDS", "3"))


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}, "PYTHONUNBUFFERED": "1"}


class Secondary:
    """`kubedr emulate` with controllers and kubelet, in its own process."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.kubeconfig = str(tmp / f"{name}.kubeconfig")
        with open(tmp / f"{name}.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "kubedr", "emulate", "--listen",
                                          f"127.0.0.1:{free_port()}", "--kubeconfig", self.kubeconfig],
                                         stdout=log, stderr=subprocess.STDOUT, env=_env())
        wait_until(lambda: Path(self.kubeconfig).exists() and Path(self.kubeconfig).stat().st_size > 0, timeout=30,
                   what=f"{name} emulator")
        self.cluster = Cluster(api_client(self.kubeconfig, pool=32))

    def deployments(self) -> list[dict[str, Any]]:
        return list(self.cluster.get("/apis/apps/v1/deployments").get("items") or [])


@pytest.fixture
def secondaries(tmp_path: Path) -> Iterator[list[Secondary]]:
    made: list[Secondary] = []
    yield made
    for s in made:
        s.proc.terminate()
        s.proc.wait(15)


def _repo(tmp: Path) -> Path:
    remote = tmp / "config.git"
    git.run(["init", "--bare", "-q", "-b", "main", str(remote)])
    work = tmp / "work"
    git.run(["clone", "-q", str(remote), str(work)])
    objs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{n}"}}
                                  for n in range(NAMESPACES)]
    for i in range(N_WORKLOADS):
        name = f"app-{i}"
        objs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": name, "namespace": f"ns-{i % NAMESPACES}"},
                     "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                              "template": {"metadata": {"labels": {"app": name}},
                                           "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
    for obj in objs:
        path = work / contract.ref_of(obj).path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contract.dump(obj))
    git.run(["add", "-A"], cwd=work)
    git.run(["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "standby"], cwd=work)
    git.run(["push", "-q", "origin", "HEAD:main"], cwd=work)
    return remote


def _standby(tmp: Path, name: str, remote: Path, made: list[Secondary]) -> Secondary:
    s = Secondary(tmp, name)
    made.append(s)
    done = subprocess.run([sys.executable, "-m", "kubedr", "apply", "--once", "--kubeconfig", s.kubeconfig,
                           "--repo", str(remote), "--workdir", str(tmp / f"apply-{name}"), "--no-drift"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    wait_until(lambda: all(d["spec"]["replicas"] == 0 for d in s.deployments()), timeout=60, what="held")
    return s


def _available(d: dict[str, Any]) -> bool:
    return bool((d.get("status") or {}).get("availableReplicas") == d["spec"]["replicas"] == REPLICAS)


def _floor(side: Secondary) -> tuple[float, float]:
    """(patching, everything Available) seconds for a bare client: the patches, then one watch until Available."""
    page = side.cluster.get("/apis/apps/v1/deployments")
    available = {d["metadata"]["name"] for d in page.get("items") or [] if _available(d)}
    started = time.perf_counter()

    def patch(d: dict[str, Any]) -> None:
        meta = d["metadata"]
        side.cluster.request("PATCH", f"/apis/apps/v1/namespaces/{meta['namespace']}/deployments/{meta['name']}",
                             [{"op": "add", "path": "/spec/replicas", "value": REPLICAS}], None,
                             "application/json-patch+json")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(patch, page.get("items") or []))
    patched = time.perf_counter() - started
    query = {"resourceVersion": page["metadata"]["resourceVersion"], "timeoutSeconds": "600"}
    for ev in side.cluster.watch("/apis/apps/v1/deployments", query, 630):
        obj = ev.get("object") or {}
        if ev.get("type") == "MODIFIED" and _available(obj):
            available.add(obj["metadata"]["name"])
            if len(available) == N_WORKLOADS:
                break
    return patched, time.perf_counter() - started


def _kubedr(side: Secondary) -> tuple[float, float, float]:
    """(RTO, time to bring up, wall) of `kubedr switchover` as a process."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kubedr", "switchover", "--kubeconfig", side.kubeconfig,
                           "--timeout", "10m"], capture_output=True, text=True, env=_env(), timeout=900)
    wall = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = re.search(r"RTO ([0-9.]+) s \(command start -> every workload Available: ([0-9.]+) s to bring", proc.stdout)
    assert found, proc.stdout
    assert all(_available(d) for d in side.deployments())
    return float(found.group(1)), float(found.group(2)), wall


@pytest.mark.bench
def test_bench_switchover_rto_of_300_workloads(tmp_path: Path, secondaries: list[Secondary]) -> None:
    remote = _repo(tmp_path)
    floors, runs = [], []
    for i in range(ROUNDS):  # alternately, so a change of the machine's load touches both alike
        floors.append(_floor(_standby(tmp_path, f"floor-{i}", remote, secondaries)))
        runs.append(_kubedr(_standby(tmp_path, f"kubedr-{i}", remote, secondaries)))
    patched, floor = min(floors, key=lambda f: f[1])
    rto, switch, wall = min(runs)
    share = rto - floor
    print(f"\nswitchover of {N_WORKLOADS} Deployments x {REPLICAS} Pods ({N_WORKLOADS * REPLICAS} Pods) on the emulator,"
          f" best of {ROUNDS}:"
          f"\n  kubedr switchover: RTO {rto:.2f} s as printed ({switch:.2f} s to bring them up, {rto - switch:.2f} s "
          f"until Available); {wall:.2f} s wall, process start and exit included; all: "
          f"{', '.join(f'{r[0]:.2f}' for r in runs)} s"
          f"\n  floor (bare client: the same patches, then one watch until Available): {floor:.2f} s "
          f"({patched:.2f} s patching); all: {', '.join(f'{f[1]:.2f}' for f in floors)} s"
          f"\n  kubedr's own share: {share:.2f} s ({share / rto * 100 if rto else 0:.0f}% of the RTO: the "
          f"interpreter's start and imports, then its lists and patches); outside the RTO (exec, exit): "
          f"{wall - rto:.2f} s")
    assert share < KUBEDR_SHARE_GOAL, f"kubedr adds {share:.2f} s to the API server's and kubelets' {floor:.2f} s"
