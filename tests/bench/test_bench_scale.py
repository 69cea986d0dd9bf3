"""Benchmark: the exporter at scale (issue 17), against `kubedr emulate` seeded in its own process.

Prints, per count of ConfigMaps in scope (KUBEDR_BENCH_SCALE, default 10000,40000,100000): the initial export
time and peak RSS with --once and as a running exporter's first sync, then change -> remote latency (P1) of
that running exporter at 100 changes/s and its peak RSS. Then, per length of the branch's history
(KUBEDR_BENCH_SCALE_COMMITS, default 1000,1000000), how long an exporter restart takes: with its clone kept,
and with a fresh clone (an emptyDir after a pod restart).
Goals, asserted (tests/bench/measure.Goals): initial export and first sync <= 20 s and peak RSS <= 200 MB at every
size up to 100,000 objects; a restart on the longest history within 1.5x of the shortest (about equal).
Quick run: KUBEDR_BENCH_SCALE=2000 KUBEDR_BENCH_SCALE_COMMITS=1000,20000 bash scripts/bench -k scale
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.measure import Goals, rss_hwm_mb, run_sampled
from tests.bench.test_bench_exporter import RemoteWatcher, Writer, _kubedr, _path, _stop
from tests.conftest import run_git, wait_until
from tests.history import synthesize

SIZES = [int(n) for n in os.environ.get("KUBEDR_BENCH_SCALE", "10000,40000,100000").split(",") if n]
HISTORIES = [int(n) for n in os.environ.get("KUBEDR_BENCH_SCALE_COMMITS", "1000,1000000").split(",") if n]
NS = "bench"
LOADED = Path(__file__).with_name("loaded_emulator.py")
P1_CHANGES, P1_RATE = 300, 100.0


def _emulator(kubeconfig: Path, objects: int, history: int) -> subprocess.Popen:
    """The emulator with `objects` ConfigMaps in namespace bench (created in its own process: fast)."""
    emu = subprocess.Popen([sys.executable, str(LOADED), str(kubeconfig), str(history)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    assert emu.stdin and emu.stdout
    emu.stdin.write(f"seed {objects}\n")
    emu.stdin.flush()
    assert emu.stdout.readline().strip() == "seeded"
    return emu


def _export_args(kubeconfig: Path, remote: Path, workdir: Path) -> list[str]:
    return ["export", "--kubeconfig", str(kubeconfig), "--namespaces", NS, "--repo", str(remote),
            "--workdir", str(workdir), "--cluster-name", "bench"]


def _once(args: list[str]) -> tuple[float, float, float]:
    """Run `kubedr export --once`; (seconds, its own peak RSS MB without git children, CPU s with them)."""
    proc = _kubedr("--log-level", "WARNING", *args, "--once")
    figures = run_sampled(proc)
    assert proc.returncode == 0
    return figures


def _count_files(remote: Path) -> int:
    out = run_git("ls-tree", "-r", "--name-only", "main", cwd=remote)
    return sum(1 for p in out.split() if p.startswith(f"{NS}/ConfigMap/"))


@pytest.mark.bench
@pytest.mark.parametrize("objects", SIZES, ids=[f"{n}" for n in SIZES])
def test_bench_scale_exporter(tmp_path: Path, objects: int) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    start = time.perf_counter()
    emu = _emulator(kubeconfig, objects, 4 * P1_CHANGES)  # P1's changes come over HTTP, each one timed
    print(f"\nscale {objects}: seeded {objects} ConfigMaps in the emulator in {time.perf_counter() - start:.1f} s")
    exporter = None
    goals = Goals(f"exporter at scale ({objects})")
    try:
        remote = tmp_path / "once.git"
        run_git("init", "--bare", "-q", "-b", "main", str(remote))
        once_s, once_rss, once_cpu = _once(_export_args(kubeconfig, remote, tmp_path / "once-clone"))
        assert _count_files(remote) == objects

        remote = tmp_path / "running.git"
        run_git("init", "--bare", "-q", "-b", "main", str(remote))
        probe = RemoteWatcher(remote)
        probe.start()
        start = time.monotonic()
        exporter = _kubedr("--log-level", "WARNING", *_export_args(kubeconfig, remote, tmp_path / "clone"),
                           stderr=(tmp_path / "exporter.log").open("wb"))
        wait_until(lambda: len(probe.arrived) >= objects, timeout=600, what="first sync in the remote")
        sync_s = max(probe.arrived.values()) - start
        sync_rss = rss_hwm_mb(exporter.pid)

        probe.arrived = {}
        writer = Writer(kubeconfig)
        sent: dict[str, float] = {}
        t0 = time.monotonic()
        for i in range(P1_CHANGES):
            if (ahead := t0 + i / P1_RATE - time.monotonic()) > 0:
                time.sleep(ahead)  # pacing the load generator
            sent[_path(f"cm-{i}")] = time.monotonic()
            writer.put_cm(f"cm-{i}", "p1")
        wait_until(lambda: all(p in probe.arrived for p in sent), timeout=120, what="P1 changes in the remote")
        lag = sorted((probe.arrived[p] - t) * 1e3 for p, t in sent.items())
        running_rss = rss_hwm_mb(exporter.pid)
        probe.stop.set()
        print(f"scale {objects}: initial export --once {once_s:.1f} s {goals.at_most('--once', once_s, 20, 's')} "
              f"(CPU {once_cpu:.1f} s with git's), peak RSS {once_rss:.0f} MB "
              f"{goals.at_most('--once peak RSS', once_rss, 200, 'MB')} | running exporter's first sync {sync_s:.1f} s "
              f"{goals.at_most('first sync', sync_s, 20, 's')}, peak RSS {sync_rss:.0f} MB "
              f"{goals.at_most('first sync peak RSS', sync_rss, 200, 'MB')}")
        print(f"scale {objects}: P1 change -> remote at {P1_RATE:.0f} changes/s after the sync: p50 "
              f"{statistics.median(lag):.0f} ms, p99 {lag[int(len(lag) * 0.99) - 1]:.0f} ms; running peak RSS "
              f"{running_rss:.0f} MB {goals.at_most('running peak RSS', running_rss, 200, 'MB')}")
    finally:
        _stop(exporter, emu)
    goals.check()


_restarts: dict[int, tuple[float, float]] = {}  # commits -> (fresh clone s, clone kept s)


@pytest.mark.bench
@pytest.mark.parametrize("commits", HISTORIES, ids=[f"{n}-commits" for n in HISTORIES])
def test_bench_scale_exporter_restart(tmp_path: Path, commits: int) -> None:
    remote = tmp_path / "remote.git"
    start = time.perf_counter()
    synthesize(remote, commits, writer="bench")  # the exporter below is cluster "bench": the writer
    print(f"\nscale restart: {commits} commits synthesized in {time.perf_counter() - start:.1f} s")
    kubeconfig = tmp_path / "kubeconfig"
    emu = _emulator(kubeconfig, 100, 1000)
    try:
        fresh_s, fresh_rss, fresh_cpu = _once(_export_args(kubeconfig, remote, tmp_path / "clone"))
        kept_s, kept_rss, kept_cpu = _once(_export_args(kubeconfig, remote, tmp_path / "clone"))
        assert int(run_git("rev-list", "--count", "--first-parent", "-n", str(commits + 10), "main",
                           cwd=remote).strip()) == commits + 1  # + the exporter's resync commit
        print(f"scale restart with {commits} commits on the branch: fresh clone {fresh_s:.1f} s "
              f"(CPU {fresh_cpu:.1f} s, peak RSS {fresh_rss:.0f} MB), clone kept {kept_s:.1f} s (CPU {kept_cpu:.1f} s, "
              f"peak RSS {kept_rss:.0f} MB)")
    finally:
        _stop(emu)
    _restarts[commits] = (fresh_s, kept_s)
    if commits == max(HISTORIES) and min(HISTORIES) in _restarts and len(HISTORIES) > 1:
        goals = Goals("exporter restart on a long history")
        (short_fresh, short_kept), shortest = _restarts[min(HISTORIES)], min(HISTORIES)
        print(f"scale restart, {commits} vs {shortest} commits: fresh clone {fresh_s / short_fresh:.2f}x "
              f"{goals.at_most('fresh clone ratio', fresh_s / short_fresh, 1.5, 'x')}, clone kept "
              f"{kept_s / short_kept:.2f}x {goals.at_most('clone kept ratio', kept_s / short_kept, 1.5, 'x')}")
        goals.check()
