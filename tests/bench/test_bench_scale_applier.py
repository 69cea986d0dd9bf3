"""Benchmarks of the applier at scale: full apply of 10k/40k/100k objects, and restart/round at 1k vs 1M commits.

Every kubedr component is its own process (`kubedr emulate`, `kubedr apply`), as in production; the repo is served
by `git daemon` where a fetch is part of what is measured. Goals (issue 17): a full apply to an empty secondary
>= 1,000 objects/s with the applier's peak RSS reported; with 1,000,000 commits on the branch an applier restart and
one round take about as long as with 1,000 (within 1.5x). Asserted (tests/bench/measure.Goals).

Counts by environment for a quick run: KUBEDR_BENCH_SCALE_APPLY=2000,5000 KUBEDR_BENCH_SCALE_COMMITS=100,10000.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bench.measure import Goals
from tests.bench.test_bench_applier import _objects
from tests.conftest import free_port, wait_until
from tests.history import NAMESPACE, one_commit, push_change, synthesize
from tests.sshkeys import allowed_signers, make_key

APPLY_COUNTS = [int(n) for n in os.environ.get("KUBEDR_BENCH_SCALE_APPLY", "10000,40000,100000").split(",")]
COMMIT_COUNTS = [int(n) for n in os.environ.get("KUBEDR_BENCH_SCALE_COMMITS", "1000,1000000").split(",")]
APPLIED = re.compile(r"applied \w+: (\d+) applied, 0 deleted, 0 failed in ([\d.]+)s")
_restart_figures: dict[int, tuple[float, float, float]] = {}  # commits -> (restart s, round s, restart RSS MB)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(v) for v in fields[11:13]) / os.sysconf("SC_CLK_TCK")


class Watched:
    """A process whose peak RSS (VmHWM) and CPU seconds are read from /proc while it runs."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        fh = open(log, "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.peak_kb, self.cpu = 0, 0.0
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.proc.poll() is None:
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                self.peak_kb = max(self.peak_kb, int(status.split("VmHWM:")[1].split()[0]))
                self.cpu = _cpu_seconds(self.proc.pid)
            except (OSError, IndexError, ValueError):  # the process just ended
                return
            time.sleep(0.05)

    def wait(self, timeout: float = 1800) -> int:
        rc = self.proc.wait(timeout)
        self.thread.join()
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def started() -> Iterator[list[Watched]]:
    out: list[Watched] = []
    yield out
    for w in reversed(out):
        w.stop()


def _emulator(tmp: Path, started: list[Watched]) -> tuple[str, Watched]:
    kubeconfig = tmp / "secondary.kubeconfig"
    emu = Watched([sys.executable, "-m", "kubedr", "emulate", "--listen", f"127.0.0.1:{free_port()}",
                   "--kubeconfig", str(kubeconfig), "--no-controllers"], tmp / "emulator.log")
    started.append(emu)
    wait_until(lambda: kubeconfig.exists() and kubeconfig.stat().st_size > 0, timeout=60, what="emulator")
    return str(kubeconfig), emu


def _apply(tmp: Path, kubeconfig: str, repo: str, name: str, *extra: str) -> tuple[Watched, float]:
    """One `kubedr apply --once`, as its own process; (the process, wall seconds)."""
    start = time.perf_counter()
    w = Watched([sys.executable, "-m", "kubedr", "apply", "--once", "--kubeconfig", kubeconfig, "--repo", repo,
                 "--workdir", str(tmp / "work"), *extra], tmp / f"{name}.log")
    rc = w.wait()
    wall = time.perf_counter() - start
    assert rc == 0, w.log.read_text()[-3000:]
    return w, wall


@pytest.mark.bench
@pytest.mark.parametrize("n", APPLY_COUNTS)
def test_bench_scale_applier_full_apply(n: int, tmp_path: Path, started: list[Watched]) -> None:
    objs = _objects(n)
    bare = tmp_path / "repo.git"
    one_commit(bare, objs)
    kubeconfig, emu = _emulator(tmp_path, started)
    cpu0 = _cpu_seconds(emu.proc.pid)
    w, wall = _apply(tmp_path, kubeconfig, str(bare), "apply")
    emu_cpu = _cpu_seconds(emu.proc.pid) - cpu0
    m = APPLIED.search(w.log.read_text())
    assert m and int(m.group(1)) == n, w.log.read_text()[-3000:]
    round_s = float(m.group(2))
    goals = Goals(f"applier full apply at scale ({n})")
    print(f"\n[applier scale] full apply of {n} objects to an empty secondary: round {round_s:.1f}s = "
          f"{n / round_s:.0f} objects/s {goals.at_least('round', n / round_s, 1000, 'objects/s')}, whole command "
          f"{wall:.1f}s = {n / wall:.0f} objects/s; applier peak RSS {w.peak_kb / 1024:.0f} MB; CPU per object: "
          f"applier {w.cpu / n * 1e6:.0f} us, emulator {emu_cpu / n * 1e6:.0f} us")
    goals.check()


@pytest.mark.bench
@pytest.mark.parametrize("commits", COMMIT_COUNTS)
def test_bench_scale_applier_long_history(commits: int, tmp_path: Path, started: list[Watched],
                                          git_daemon: Callable[[str], tuple[Path, str]]) -> None:
    bare, url = git_daemon("history.git")
    shutil.rmtree(bare)
    t0 = time.perf_counter()
    synthesize(bare, commits)
    made = time.perf_counter() - t0
    key = make_key(tmp_path, "exporter")
    signers = str(allowed_signers(tmp_path / "allowed_signers", exporter=key))
    kubeconfig, _ = _emulator(tmp_path, started)
    first, first_s = _apply(tmp_path, kubeconfig, url, "first")
    # restart: the applier was down while a signed commit landed; it starts, fetches, verifies, applies, exits
    push_change(bare, "restart", key)
    restart, restart_s = _apply(tmp_path, kubeconfig, url, "restart", "--allowed-signers", signers)
    assert "1 applied" in restart.log.read_text()
    # one round of a running applier: a signed commit pushed -> applied on the secondary
    metrics = free_port()
    daemon = Watched([sys.executable, "-m", "kubedr", "apply", "--kubeconfig", kubeconfig, "--repo", url,
                      "--workdir", str(tmp_path / "work"), "--interval", "0.1s", "--allowed-signers", signers,
                      "--metrics-listen", f"127.0.0.1:{metrics}"], tmp_path / "daemon.log")
    started.append(daemon)
    wait_until(lambda: _ready(metrics), timeout=120, what="running applier caught up")
    push_change(bare, "round", key)
    pushed = time.perf_counter()
    wait_until(lambda: _value(kubeconfig) == "round", timeout=120, interval=0.02, what="the round's commit applied")
    round_s = time.perf_counter() - pushed
    _restart_figures[commits] = (restart_s, round_s, restart.peak_kb / 1024)
    print(f"\n[applier scale] {commits} commits on the branch (synthesized in {made:.0f}s): first start on an empty "
          f"work dir {first_s:.1f}s (peak RSS {first.peak_kb / 1024:.0f} MB); restart with one new signed commit "
          f"{restart_s:.2f}s (peak RSS {restart.peak_kb / 1024:.0f} MB); a running applier's round, push -> applied "
          f"{round_s * 1000:.0f} ms (poll interval 100 ms)")
    if len(_restart_figures) > 1:
        lo, hi = min(_restart_figures), max(_restart_figures)
        (r0, d0, _), (r1, d1, _) = _restart_figures[lo], _restart_figures[hi]
        goals = Goals("applier on a long history")
        print(f"[applier scale] {hi} vs {lo} commits: restart {r1:.2f}s vs {r0:.2f}s ({r1 / r0:.1f}x) "
              f"{goals.at_most('restart ratio', r1 / r0, 1.5, 'x')}, round {d1 * 1000:.0f} vs {d0 * 1000:.0f} ms "
              f"({d1 / d0:.1f}x) {goals.at_most('round ratio', d1 / d0, 1.5, 'x')}")
        goals.check()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _value(kubeconfig: str) -> Any:
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    try:
        obj = Cluster(api_client(kubeconfig)).request("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/cm-1")
    except Exception:
        return None
    return (obj.get("data") or {}).get("value")
