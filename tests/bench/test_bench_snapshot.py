"""Snapshot save/restore throughput, time and peak memory on a real etcd of 256 MiB and 1 GiB of values.

Prints, per size: etcd's own snapshot stream (etcdctl snapshot save), bundle+encrypt+store throughput (the
kubedr part), end-to-end save time, restore time, and the peak RSS (VmHWM) of kubedr and of the etcdctl it runs.
Goals, asserted (tests/bench/measure.Goals): bundle+encrypt+store >= 200 MB/s; a save of a 1 GiB etcd db <= 10 s
(smaller sizes are dominated by start-up: not held to it);
kubedr's own peak RSS flat, <= 100 MiB at every size. The three-member restore only prints its figures.
Sizes: KUBEDR_BENCH_SNAPSHOT_MIB=256,1024 (the default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "snapshot"))
from snapshot_harness import fill_etcd, make_age_keys, start_etcd  # noqa: E402

from tests.bench.measure import Goals  # noqa: E402
from tests.conftest import free_port, wait_until  # noqa: E402

MiB = 1 << 20
SIZES = [int(s) * MiB for s in os.environ.get("KUBEDR_BENCH_SNAPSHOT_MIB", "256,1024").split(",")]


def _hwm_kib(pid: int) -> tuple[str, int, int]:
    """Program name, VmHWM and current RssAnon (heap and stacks, without mapped files) in KiB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        return (fields["Name"].strip(), int(fields.get("VmHWM", "0 kB").split()[0]),
                int(fields.get("RssAnon", "0 kB").split()[0]))
    except (OSError, ValueError, KeyError):
        return "", 0, 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def run_rss(args: list[str]) -> tuple[float, dict[str, float], str]:
    """Wall time, peak RSS (MiB, VmHWM sampled every 5 ms) per program of the process tree, and stdout.

    ru_maxrss from wait4 would not do: Linux carries the parent's (pytest's) high-water mark over fork+exec.
    """
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kubedr-bench-{os.getpid()}.out"
    peaks: dict[str, int] = {}
    with open(out_path, "wb") as out, open(str(out_path) + ".err", "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err)
        while proc.poll() is None:
            for pid in [proc.pid, *_children(proc.pid)]:
                name, kib, anon = _hwm_kib(pid)
                if name:
                    peaks[name] = max(peaks.get(name, 0), kib)
                    peaks[name + " anon"] = max(peaks.get(name + " anon", 0), anon)
            time.sleep(0.005)  # sampling a running process, not waiting for a condition
        seconds = time.perf_counter() - t0
    text = out_path.read_text()
    own = [line for line in Path(str(out_path) + ".err").read_text().splitlines() if "peak RSS of kubedr" in line]
    if own:  # the exact figure kubedr reports for itself at exit
        peaks["kubedr"] = int(own[-1].rsplit(": ", 1)[1].split()[0]) * 1024
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args[:6])} -> {proc.returncode}: "
                             f"{Path(str(out_path) + '.err').read_text()[-800:]}")
    return seconds, {k: v / 1024 for k, v in peaks.items()}, text


def _fmt(peaks: dict[str, float]) -> str:
    """kubedr's own peak, and etcdctl's: its RSS counts the bolt db it mmaps, so its anonymous part is shown too."""
    out = [f"kubedr {peaks['kubedr']:.0f} MiB"] if "kubedr" in peaks else []
    out += [f"{tool} {peaks[tool]:.0f} MiB (anon {peaks.get(tool + ' anon', 0):.0f})"
            for tool in ("etcdctl", "etcdutl") if tool in peaks]
    return ", ".join(out)


@pytest.mark.bench
@pytest.mark.parametrize("size", SIZES, ids=[f"{s // MiB}MiB" for s in SIZES])
def test_bench_snapshot_save_restore(tmp_path, size):
    e = start_etcd(tmp_path, name="bench", quota=8 << 30)
    try:
        t0 = time.perf_counter()
        fill_etcd(e, size)
        fill = time.perf_counter() - t0
        keys = make_age_keys(tmp_path / "id.txt")
        raw_s, raw_rss, _ = run_rss(["etcdctl", f"--endpoints={e.client_url}", "snapshot", "save",
                                     str(tmp_path / "raw.db")])
        db_bytes = (tmp_path / "raw.db").stat().st_size
        (tmp_path / "raw.db").unlink()
        store = tmp_path / "store"
        cli = [sys.executable, "-m", "kubedr", "--log-level", "DEBUG", "snapshot"]
        save_s, save_rss, out = run_rss([*cli, "save", "--store", str(store), "--endpoints", e.client_url,
                                         "--root", str(tmp_path / "root"), "-r", keys.recipient,
                                         "--no-cluster-info", "--work-dir", str(tmp_path)])
    finally:
        e.stop()
    [manifest_path] = store.rglob("manifest.json")
    m = json.loads(manifest_path.read_text())
    bundle_mbps = float(out.rsplit("(bundle ", 1)[1].split(" MB/s")[0])
    peer = free_port()
    restore_s, restore_rss, rout = run_rss([*cli, "restore", "--store", str(store), "-i", str(keys.identity),
                                         "--data-dir", str(tmp_path / "restored"), "--peer-urls",
                                         f"http://127.0.0.1:{peer}", "--work-dir", str(tmp_path)])
    restored = start_etcd(tmp_path, name="bench", data_dir=tmp_path / "restored", peer_port=peer)
    try:
        assert json.loads(restored.ctl("get", "/registry/bulk/00000000", "-w", "json", "--keys-only"))["count"] == 1
    finally:
        restored.stop()
    mb = db_bytes / 1e6
    gib = db_bytes / (1 << 30)
    goals = Goals(f"snapshot ({size // MiB} MiB)")
    print(f"\nsnapshot bench, values {size // MiB} MiB -> etcd db {db_bytes / MiB:.0f} MiB "
          f"(fill {fill:.1f}s, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f})\n"
          f"  etcd stream only (etcdctl snapshot save): {raw_s:.2f}s = {mb / raw_s:.0f} MB/s, peak RSS {_fmt(raw_rss)}\n"
          f"  kubedr bundle+encrypt+store:              {bundle_mbps:.0f} MB/s "
          f"(stored {m['bundle']['size'] / MiB:.0f} MiB, {m['bundle']['compression']})\n"
          f"  kubedr save end to end:                   {save_s:.2f}s = {mb / save_s:.0f} MB/s, "
          f"(1 GiB: {save_s / gib:.1f}s)\n"
          f"    peak RSS {_fmt(save_rss)}\n"
          f"  kubedr restore (fetch, verify, etcdctl):  {restore_s:.2f}s, peak RSS {_fmt(restore_rss)}\n"
          f"  goals: bundle {goals.at_least('bundle+encrypt+store', bundle_mbps, 200, 'MB/s')}, save "
          f"{goals.at_most('save per GiB', save_s / gib, 10, 's') if gib >= 1 else '(goal held at 1 GiB)'}, "
          f"kubedr's peak RSS "
          f"{goals.at_most('save peak RSS', save_rss.get('kubedr', 0), 100, 'MiB')} "
          f"{goals.at_most('restore peak RSS', restore_rss.get('kubedr', 0), 100, 'MiB')}")
    assert "kubedr" in save_rss and "kubedr" in restore_rss, "kubedr did not report its own peak RSS"
    goals.check()


SET_SIZE = int(os.environ.get("KUBEDR_BENCH_SET_MIB", "1024")) * MiB


@pytest.mark.bench
def test_bench_restore_three_members(tmp_path):
    """A >= 1 GiB snapshot restored as the three members of one cluster (as on three control-plane nodes)."""
    from snapshot_harness import start_etcd_cluster

    e = start_etcd(tmp_path, name="cp-1", quota=8 << 30)
    try:
        fill_etcd(e, SET_SIZE)
        keys = make_age_keys(tmp_path / "id.txt")
        store = tmp_path / "store"
        cli = [sys.executable, "-m", "kubedr", "--log-level", "DEBUG", "snapshot"]
        run_rss([*cli, "save", "--store", str(store), "--endpoints", e.client_url, "--root", str(tmp_path / "root"),
                 "-r", keys.recipient, "--no-cluster-info", "--work-dir", str(tmp_path)])
    finally:
        e.stop()
    [manifest_path] = store.rglob("manifest.json")
    db_bytes = json.loads(manifest_path.read_text())["snapshot"]["size"]
    names = ["cp-1", "cp-2", "cp-3"]
    ports = [free_port() for _ in names]
    cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, ports, strict=True))
    dirs = [tmp_path / f"restored-{n}" for n in names]
    rows = []
    for n, d in zip(names, dirs, strict=True):
        seconds, rss, _ = run_rss([*cli, "restore", "--store", str(store), "-i", str(keys.identity), "--node", n,
                                   "--initial-cluster", cluster, "--data-dir", str(d), "--work-dir", str(tmp_path)])
        rows.append(f"  member {n}: restore {seconds:.2f}s, peak RSS {_fmt(rss)}")
    print(f"\nthree-member restore, etcd db {db_bytes / MiB:.0f} MiB ({db_bytes / (1 << 30):.2f} GiB), "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}\n" + "\n".join(rows), flush=True)
    members = start_etcd_cluster(tmp_path, names, peer_ports=ports, data_dirs=dirs)

    def count() -> int:
        out = members[2].ctl("get", "/registry/bulk/", "--prefix", "--keys-only", "--limit=1", "-w", "json",
                             check=False)  # etcdctl 3.4 has no --count-only; "count" is the total anyway
        return json.loads(out)["count"] if out.strip() else 0

    try:
        for m in members:
            assert len(json.loads(m.ctl("member", "list", "-w", "json"))["members"]) == 3
        assert wait_until(count, timeout=120, interval=1, what="the restored cluster serving reads") == \
            -(-SET_SIZE // MiB)
    finally:
        for m in members:
            m.stop()
