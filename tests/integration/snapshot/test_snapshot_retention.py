"""Retention deletes the right snapshots, never the newest; saves that died are removed after a day."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

from snapshot_harness import kubedr, listed

from kubedr.snapshot.manifest import new_id


def _clone_at(store, src_id: str, when: datetime) -> str:
    """A copy of a real snapshot, dated `when` (as if saved then)."""
    sid = new_id(when)
    src, dst = store / "kubernetes" / src_id, store / "kubernetes" / sid
    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    doc.update(id=sid, created=when.isoformat(), finished=when.isoformat())
    (dst / "manifest.json").write_text(json.dumps(doc))
    return sid


def test_prune_by_count_and_age(etcd_server, age_keys, tmp_path):
    etcd_server.ctl("put", "a", "b")
    store = tmp_path / "store"
    kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(tmp_path),
           "-r", age_keys.recipient, "--no-cluster-info")
    [real] = listed(str(store))
    now = datetime.now(UTC)
    ids = {h: _clone_at(store, real["id"], now - timedelta(hours=h)) for h in (30, 50, 80, 200)}
    shutil.rmtree(store / "kubernetes" / real["id"])  # the newest is now 30h old
    # interrupted saves: a bundle and no manifest; never listed; removed by prune once a day old
    for sid in ("20000101T000000.000Z", new_id(now - timedelta(minutes=5))):
        (store / "kubernetes" / sid).mkdir()
        (store / "kubernetes" / sid / "bundle.tar.age.partial").write_bytes(b"x")
    assert [m["id"] for m in listed(str(store))] == [ids[30], ids[50], ids[80], ids[200]]

    out = kubedr("prune", "--store", str(store), "--keep-last", "2", "--dry-run")
    assert out.stdout.splitlines() == [f"would delete kubernetes/{ids[80]}", f"would delete kubernetes/{ids[200]}",
                                       "would delete incomplete kubernetes/20000101T000000.000Z"]
    assert len(listed(str(store))) == 4

    kubedr("prune", "--store", str(store), "--max-age", "3d")  # 80h and 200h go
    assert [m["id"] for m in listed(str(store))] == [ids[30], ids[50]]
    assert not (store / "kubernetes" / ids[80]).exists()
    assert not (store / "kubernetes" / "20000101T000000.000Z").exists()
    assert len(list(store.glob("kubernetes/*/bundle.tar.age.partial"))) == 1  # the recent one may be running

    kubedr("prune", "--store", str(store), "--keep-last", "1", "--max-age", "40h")  # 30h kept by both rules
    assert [m["id"] for m in listed(str(store))] == [ids[30]]

    kubedr("prune", "--store", str(store), "--max-age", "1h")  # all too old, but the newest always stays
    assert [m["id"] for m in listed(str(store))] == [ids[30]]

    bad = kubedr("prune", "--store", str(store), "--max-age", "7 days", check=False)
    assert bad.returncode == 2 and "duration" in bad.stderr


def test_save_after_retention_flags(etcd_server, age_keys, tmp_path):
    store = tmp_path / "store"
    for i in range(3):
        etcd_server.ctl("put", "k", str(i))
        kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(tmp_path),
               "-r", age_keys.recipient, "--keep-last", "2", "--no-cluster-info")
    found = listed(str(store))
    assert len(found) == 2 and found[0]["snapshot"]["revision"] > found[1]["snapshot"]["revision"]
