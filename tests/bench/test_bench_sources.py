"""Benchmark: one secondary serving 10 sources of 1,000 objects each, one `kubedr apply` process per source.

The cost of that choice, measured: each applier's idle CPU (drift on, interval 1 s, over a window that holds one
stray scan of each) and memory, and P2, the time from a push to one source's repo to the change applied on the
secondary, while the other nine idle. Each against the same figures with that source alone on the secondary.
Goals, asserted: a source's idle CPU and its P2 p50 with ten sources unchanged from one source (within 1.5x, plus
50 ms of P2 for the noise of nine more processes on the machine)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract
from kubedr.applier.sources import Records
from kubedr.applier.status import load
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster
from tests.bench.measure import Goals, cpu_seconds, rss_mb
from tests.conftest import free_port, wait_until

SOURCES = int(os.environ.get("KUBEDR_BENCH_SOURCES", "10"))
OBJECTS = int(os.environ.get("KUBEDR_BENCH_SOURCE_OBJECTS", "1000"))
IDLE_SECONDS = float(os.environ.get("KUBEDR_BENCH_IDLE_SECONDS", "60"))  # one stray scan (60 s) of each applier
PUSHES = 20


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def objects(source: int) -> list[dict[str, Any]]:
    """One source's repo: its 5 namespaces, ConfigMaps, Services and a Deployment per 20 objects."""
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"s{source}-ns{n}"}}
                                 for n in range(5)]
    i = 0
    while len(out) < OBJECTS:
        ns = f"s{source}-ns{i % 5}"
        if i % 20 == 19:
            out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"web-{i}", "namespace": ns},
                        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": f"web-{i}"}},
                                 "template": {"metadata": {"labels": {"app": f"web-{i}"}},
                                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
        elif i % 10 == 9:
            out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": ns},
                        "spec": {"selector": {"app": f"web-{i}"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        else:
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": ns},
                        "data": {"key": f"value-{i}", "other": "x" * 64}})
        i += 1
    return out


class Source:
    """A bare repo with one source's objects, a clone to push from, and its applier once started."""

    def __init__(self, tmp: Path, number: int) -> None:
        self.name = f"src-{number}"
        self.number = number
        self.tmp = tmp
        self.remote = tmp / f"{self.name}.git"
        self.work = tmp / f"{self.name}-work"
        git(tmp, "init", "--bare", "-q", "-b", "main", str(self.remote))
        git(tmp, "clone", "-q", str(self.remote), str(self.work))
        for obj in objects(number):
            path = self.work / contract.ref_of(obj).path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(contract.dump(obj))
        git(self.work, "add", "-A")
        git(self.work, "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-q", "-m", "seed")
        git(self.work, "push", "-q", "origin", "HEAD:main")
        self.proc: subprocess.Popen | None = None

    def start(self, kubeconfig: str) -> subprocess.Popen:
        log = open(self.tmp / f"{self.name}.log", "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", kubeconfig, "--repo", str(self.remote),
             "--source", self.name, "--workdir", str(self.tmp / f"{self.name}-apply"), "--interval", "1s",
             "--no-validate"], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self.proc

    def head(self) -> str:
        return git(self.work, "rev-parse", "HEAD")

    def applied(self, cluster: Cluster) -> bool:
        status = load(cluster, Records(self.name))
        return status is not None and status.fully_applied == self.head()

    def push(self, i: int) -> None:
        cm = self.work / f"s{self.number}-ns0" / "ConfigMap" / "cm-0.yaml"
        cm.write_bytes(contract.dump({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "cm-0", "namespace": f"s{self.number}-ns0"},
                                      "data": {"key": f"push-{i}", "other": "x" * 64}}))
        git(self.work, "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"push {i}")
        git(self.work, "push", "-q", "origin", "HEAD:main")


def idle(procs: list[subprocess.Popen]) -> list[float]:
    """CPU seconds of each process over the idle window."""
    before = [cpu_seconds(p.pid) for p in procs]
    time.sleep(IDLE_SECONDS)  # the measured window: nothing changes anywhere
    return [cpu_seconds(p.pid) - b for p, b in zip(procs, before, strict=True)]


def p2(source: Source, cluster: Cluster, first: int) -> list[float]:
    """Seconds from a push to the source's repo to the change on the secondary, sorted."""
    out = []
    for i in range(first, first + PUSHES):
        source.push(i)
        pushed = time.monotonic()
        wait_until(lambda i=i: cluster.request("GET", f"/api/v1/namespaces/s{source.number}-ns0/configmaps/cm-0")
                   ["data"]["key"] == f"push-{i}", timeout=30, interval=0.005, what=f"push {i} applied")
        out.append(time.monotonic() - pushed)
    return sorted(out)


@pytest.mark.bench
def test_bench_sources_ten_on_one_secondary(tmp_path: Path) -> None:
    kubeconfig = str(tmp_path / "secondary.kubeconfig")
    log = open(tmp_path / "emulator.log", "ab")  # noqa: SIM115 - the process owns it
    emulator = subprocess.Popen([sys.executable, "-m", "kubedr", "emulate", "--listen", f"127.0.0.1:{free_port()}",
                                 "--kubeconfig", kubeconfig, "--no-controllers"], stdout=log, stderr=subprocess.STDOUT)
    sources = [Source(tmp_path, n) for n in range(SOURCES)]
    try:
        wait_until(lambda: Path(kubeconfig).exists() and Path(kubeconfig).stat().st_size > 0, timeout=30,
                   what="the emulator")
        cluster = Cluster(api_client(kubeconfig))
        first = sources[0]
        alone = first.start(kubeconfig)
        wait_until(lambda: first.applied(cluster), timeout=300, what=f"{first.name} applied")
        alone_cpu = idle([alone])[0]
        alone_p2 = p2(first, cluster, 0)
        alone_rss = rss_mb(alone.pid)

        started = time.monotonic()
        for s in sources[1:]:
            s.start(kubeconfig)
        wait_until(lambda: all(s.applied(cluster) for s in sources), timeout=900, interval=1.0,
                   what="every source applied")
        converge = time.monotonic() - started
        procs = [s.proc for s in sources if s.proc is not None]
        wait_until(lambda: first.applied(cluster), timeout=60, what="the first source still applied")
        many_cpu = idle(procs)
        many_p2 = p2(first, cluster, PUSHES)
        rss = [rss_mb(p.pid) for p in procs]
        emulator_rss = rss_mb(emulator.pid)
    finally:
        for s in sources:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.terminate()
                s.proc.wait(30)
        emulator.terminate()
        emulator.wait(30)

    goals = Goals("sources")
    own = many_cpu[0]
    mean = statistics.mean(many_cpu)
    median_alone, median_many = statistics.median(alone_p2), statistics.median(many_p2)
    print(f"\n[sources] {SOURCES} sources x {OBJECTS} objects on one secondary, one applier process each "
          f"(all converged {converge:.1f} s after the other {SOURCES - 1} started)")
    print(f"  idle CPU over {IDLE_SECONDS:.0f} s: alone {alone_cpu:.2f} CPU-s; with {SOURCES} sources: this source "
          f"{own:.2f}, mean {mean:.2f}, max {max(many_cpu):.2f}, all {sum(many_cpu):.2f} CPU-s "
          f"({100 * sum(many_cpu) / IDLE_SECONDS:.1f}% of a core) "
          f"{goals.at_most('idle CPU per source', mean, 1.5 * alone_cpu + 0.05, 'CPU-s')}")
    print(f"  P2 (push -> applied) of one source: alone p50 {median_alone * 1000:.0f} ms, max "
          f"{alone_p2[-1] * 1000:.0f} ms; while {SOURCES - 1} others idle p50 {median_many * 1000:.0f} ms, max "
          f"{many_p2[-1] * 1000:.0f} ms {goals.at_most('P2 p50', median_many, 1.5 * median_alone + 0.05, 's')}")
    print(f"  memory: one applier {alone_rss:.0f} MB alone; with {SOURCES}: {statistics.mean(rss):.0f} MB each, "
          f"{sum(rss):.0f} MB in all; the emulator {emulator_rss:.0f} MB")
    goals.check()
