"""Snapshot save/restore throughput, time and peak memory on a real etcd of 256 MiB and 1 GiB of values.

Prints, per size: etcd's own snapshot stream (etcdctl snapshot save), bundle+encrypt+store throughput (the
kubedr part), end-to-end save time, restore time, and the peak RSS of the save and restore process trees
(os.wait4 on the subprocess: kubedr plus the etcdctl it runs).
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

from tests.conftest import free_port  # noqa: E402

MiB = 1 << 20
SIZES = [int(s) * MiB for s in os.environ.get("KUBEDR_BENCH_SNAPSHOT_MIB", "256,1024").split(",")]


def run_rss(args: list[str]) -> tuple[float, float, str]:
    """Wall time, peak RSS (MiB) of the process tree via wait4, and stdout."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kubedr-bench-{os.getpid()}.out"
    with open(out_path, "wb") as out, open(str(out_path) + ".err", "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text()
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args[:6])} -> {proc.returncode}: {Path(str(out_path) + '.err').read_text()[-800:]}")
    return seconds, usage.ru_maxrss / 1024, text


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
        cli = [sys.executable, "-m", "kubedr.cli", "snapshot"]
        save_s, save_rss, out = run_rss([*cli, "save", "--store", str(store), "--endpoints", e.client_url,
                                         "--root", str(tmp_path / "root"), "-r", keys.recipient,
                                         "--no-cluster-info", "--work-dir", str(tmp_path)])
    finally:
        e.stop()
    [manifest_path] = store.rglob("manifest.json")
    m = json.loads(manifest_path.read_text())
    bundle_mbps = float(out.rsplit("(bundle ", 1)[1].split(" MB/s")[0])
    peer = free_port()
    restore_s, restore_rss, _ = run_rss([*cli, "restore", "--store", str(store), "-i", str(keys.identity),
                                         "--data-dir", str(tmp_path / "restored"), "--peer-urls",
                                         f"http://127.0.0.1:{peer}", "--work-dir", str(tmp_path)])
    restored = start_etcd(tmp_path, name="bench", data_dir=tmp_path / "restored", peer_port=peer)
    try:
        assert json.loads(restored.ctl("get", "/registry/bulk/00000000", "-w", "json", "--keys-only"))["count"] == 1
    finally:
        restored.stop()
    mb = db_bytes / 1e6
    gib = db_bytes / (1 << 30)
    print(f"\nsnapshot bench, values {size // MiB} MiB -> etcd db {db_bytes / MiB:.0f} MiB "
          f"(fill {fill:.1f}s, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f})\n"
          f"  etcd stream only (etcdctl snapshot save): {raw_s:.2f}s = {mb / raw_s:.0f} MB/s, peak RSS {raw_rss:.0f} MiB\n"
          f"  kubedr bundle+encrypt+store:              {bundle_mbps:.0f} MB/s "
          f"(stored {m['bundle']['size'] / MiB:.0f} MiB, {m['bundle']['compression']})\n"
          f"  kubedr save end to end:                   {save_s:.2f}s = {mb / save_s:.0f} MB/s, "
          f"peak RSS {save_rss:.0f} MiB (1 GiB extrapolated: {save_s / gib:.1f}s)\n"
          f"  kubedr restore (fetch, verify, etcdctl):  {restore_s:.2f}s, peak RSS {restore_rss:.0f} MiB")
    assert bundle_mbps > 0
