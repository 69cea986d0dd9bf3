"""Benchmark: what one change costs the exporter and the applier, in CPU, at 10 and 100 changes/s (issue 33).

Both daemons run as they ship, each its own process: the exporter seals Secrets (age), signs every commit and
pushes over git:// (the git daemon's receive-pack is not counted as the exporter's); the applier reads the remote
over git:// (a mirror, polled every second), checks every commit against
--allowed-signers, unseals, validates, applies, prunes and watches for drift. The load is a mix of ConfigMap patches,
creates and deletes, Deployment scales and Secret rotations, paced for SECONDS at each rate. CPU is each daemon's
own (utime + stime from /proc, with the git and ssh-keygen processes it waited for), from the first change until
the secondary equals the primary; the emulators' CPU is not counted. P2 is primary change -> applied on the
secondary, for the ConfigMap patches and creates (each carries its sequence number).
Goal, asserted: the applier <= 5 ms CPU per change at 10 changes/s; every change converges."""

from __future__ import annotations

import base64
import math
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import pyrage
import pytest

from kubedr.applier.sources import Records
from kubedr.applier.status import load
from kubedr.holds import REPLICAS_ANNOTATION
from tests.bench.measure import Goals, cpu_split
from tests.bench.test_bench_applier import Emu, _Arrivals
from tests.conftest import stop_process, wait_until
from tests.sshkeys import allowed_signers, make_key

RATES = (10, 100)  # changes per second
SECONDS = float(os.environ.get("KUBEDR_BENCH_COST_SECONDS", "60"))  # each rate's measured window
NS = "cost"
CONFIGMAPS, DEPLOYMENTS, SECRETS, SPARE = 300, 20, 20, 60  # the objects the changes rotate over
CONVERGE_TIMEOUT = 120.0
APPLIER_GOAL_MS = 5.0  # CPU per change at 10 changes/s


def _daemon(log: Path, *args: str) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([sys.executable, "-m", "kubedr", *args], stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Load:
    """The primary's changes: change number i is one of a fixed mix, the same in every run."""

    def __init__(self, primary: Emu) -> None:
        self.p = primary.cluster
        self.spare: deque[str] = deque(f"spare-{i}" for i in range(SPARE))  # created objects, oldest first
        self.written: dict[int, tuple[str, float]] = {}  # seq -> (ConfigMap, when written): the P2 samples

    def seed(self) -> None:
        self.p.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": NS}})
        for name in [f"cm-{i}" for i in range(CONFIGMAPS)] + list(self.spare):
            self._create(name, -1)
        for i in range(DEPLOYMENTS):
            self.p.request("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"web-{i}"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"web-{i}"}},
                         "template": {"metadata": {"labels": {"app": f"web-{i}"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
        for i in range(SECRETS):
            self.p.request("POST", f"/api/v1/namespaces/{NS}/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"db-{i}"}, "type": "Opaque",
                "data": {"password": _b64("seed")}})

    def _create(self, name: str, seq: int) -> None:
        self.p.request("POST", f"/api/v1/namespaces/{NS}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"seq": str(seq), "other": "x" * 64}})

    def change(self, seq: int) -> None:
        """Half ConfigMap patches, a tenth each creates, deletes and Deployment scales, a fifth Secret rotations."""
        kind = seq % 10
        if kind < 5:
            name = f"cm-{(seq * 7) % CONFIGMAPS}"
            self.written[seq] = (name, time.time())
            self.p.request("PATCH", f"/api/v1/namespaces/{NS}/configmaps/{name}", {"data": {"seq": str(seq)}},
                           content_type="application/merge-patch+json")
        elif kind == 5:
            name = f"new-{seq}"
            self.written[seq] = (name, time.time())
            self._create(name, seq)
            self.spare.append(name)
        elif kind == 6:
            self.p.request("DELETE", f"/api/v1/namespaces/{NS}/configmaps/{self.spare.popleft()}")
        elif kind == 7:
            self.p.request("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/web-{seq % DEPLOYMENTS}",
                           {"spec": {"replicas": 1 + seq % 5}}, content_type="application/merge-patch+json")
        else:
            self.p.request("PATCH", f"/api/v1/namespaces/{NS}/secrets/db-{seq % SECRETS}",
                           {"data": {"password": _b64(f"rotated-{seq}")}}, content_type="application/merge-patch+json")


def _replicas(deployment: dict[str, Any]) -> str:
    """The primary's replicas: spec.replicas, or on a standby secondary the annotation that keeps them."""
    kept = (deployment["metadata"].get("annotations") or {}).get(REPLICAS_ANNOTATION)
    return kept if kept is not None else str(deployment["spec"]["replicas"])


def _state(emu: Emu) -> dict[str, Any]:
    """What the changes touch, as comparable data: ConfigMaps' data, Deployments' replicas, Secrets' data."""
    c = emu.cluster
    return {
        "cm": {o["metadata"]["name"]: o.get("data") for o in c.request("GET", f"/api/v1/namespaces/{NS}/configmaps")
               ["items"] if not o["metadata"]["name"].startswith("kube-")},
        "deploy": {o["metadata"]["name"]: _replicas(o) for o in
                   c.request("GET", f"/apis/apps/v1/namespaces/{NS}/deployments")["items"]},
        "secret": {o["metadata"]["name"]: o.get("data") for o in
                   c.request("GET", f"/api/v1/namespaces/{NS}/secrets")["items"] if o.get("type") == "Opaque"},
    }


def _parts(split: list[float]) -> str:
    return f"{sum(split):.1f} CPU-s: {split[0]:.1f} own, {split[1]:.1f} in git and ssh-keygen"


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else math.nan


@pytest.mark.bench
def test_bench_cost_per_change(tmp_path: Path, git_daemon: Any) -> None:
    _, url = git_daemon("cost.git")  # both daemons over git://: receive-pack is the git daemon's, not the exporter's
    key = make_key(tmp_path, "exporter-key")
    signers = allowed_signers(tmp_path / "allowed_signers", exporter=key)
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(f"{identity}\n")
    primary, secondary = Emu(tmp_path, "primary"), Emu(tmp_path, "secondary")
    procs = [primary.proc, secondary.proc]
    goals = Goals("cost per change")
    lines = []
    try:
        load_ = Load(primary)
        load_.seed()
        exporter = _daemon(tmp_path / "export.log", "export", "--kubeconfig", primary.kubeconfig, "--namespaces", NS,
                           "--repo", url, "--workdir", str(tmp_path / "export-work"), "--signing-key",
                           str(key), "--recipient", str(identity.to_public()), "--cluster-name", "primary")
        applier = _daemon(tmp_path / "apply.log", "apply", "--kubeconfig", secondary.kubeconfig, "--repo", url,
                          "--workdir", str(tmp_path / "apply-work"), "--source", NS, "--identity",
                          str(tmp_path / "age.key"), "--allowed-signers", str(signers), "--prune")
        procs += [exporter, applier]

        def converged() -> bool:
            try:
                return _state(primary) == _state(secondary)
            except Exception:  # noqa: BLE001 - the namespace is not on the secondary yet
                return False

        wait_until(converged, timeout=CONVERGE_TIMEOUT, interval=0.5, what="the first mirror")
        arrivals = _Arrivals(secondary, NS)
        seq = 0
        for rate in RATES:
            total = int(rate * SECONDS)
            first = seq
            cpu0 = {p.pid: cpu_split(p.pid) for p in (exporter, applier)}
            load0 = open("/proc/loadavg").read().split()[0]
            start = time.perf_counter()
            for n in range(total):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)  # pacing the load generator, not waiting on a condition
                load_.change(seq)
                seq += 1
            achieved = total / (time.perf_counter() - start)
            wait_until(converged, timeout=CONVERGE_TIMEOUT, interval=0.2, what=f"converged after {rate}/s")
            settle = time.perf_counter() - start
            split = {p.pid: [a - b for a, b in zip(cpu_split(p.pid), cpu0[p.pid], strict=True)]
                     for p in (exporter, applier)}
            cpu = {pid: sum(parts) for pid, parts in split.items()}
            load1 = open("/proc/loadavg").read().split()[0]
            lat = sorted((math.inf if (at := arrivals.applied_at(name, s)) is None else at - when)
                         for s, (name, when) in load_.written.items() if s >= first
                         and (not name.startswith("new-") or name in load_.spare))
            per_exp, per_app = (1000 * cpu[p.pid] / total for p in (exporter, applier))
            status = load(secondary.cluster, Records(NS))
            lines.append(
                f"  {rate:>3}/s ({achieved:.0f} achieved, {total} changes, converged {settle:.1f} s after the first; "
                f"load {load0} -> {load1}): exporter {per_exp:.2f} ms CPU/change ({_parts(split[exporter.pid])}), "
                f"applier {per_app:.2f} ms CPU/change ({_parts(split[applier.pid])})"
                f"{' ' + goals.at_most(f'applier at {rate}/s', per_app, APPLIER_GOAL_MS, 'ms') if rate == 10 else ''}"
                f"; P2 p50 {_pct(lat, 0.5) * 1000:.0f} ms, p99 {_pct(lat, 0.99) * 1000:.0f} ms, "
                f"max {lat[-1] * 1000:.0f} ms over {len(lat)} ConfigMap changes; applier status "
                f"{'fully applied' if status and not status.failures else 'FAILURES'}")
            assert status is not None and not status.failures, status
        arrivals.stop.set()
    finally:
        for p in reversed(procs):
            stop_process(p)
    print(f"\n[cost] CPU per change (process CPU from /proc incl. its git and ssh-keygen; emulators excluded), "
          f"{SECONDS:.0f} s per rate; exporter signs and seals, applier over git:// with --allowed-signers:")
    print("\n".join(lines))
    goals.check()
