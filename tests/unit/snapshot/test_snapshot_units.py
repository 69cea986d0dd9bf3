"""Retention rules, ids, stores, the kubeadm file table and the bundle stream, without etcd."""

from __future__ import annotations

import io
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrage import x25519

from kubedr.durations import DurationError
from kubedr.snapshot import bundle, keys, kubeadm, retention
from kubedr.snapshot.manifest import Manifest, id_time, new_id
from kubedr.snapshot.store import DirStore, S3Store, StoreError, open_store

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def snap(hours_ago: float) -> Manifest:
    when = NOW - timedelta(hours=hours_ago)
    return Manifest(id=new_id(when), cluster="c", node="n", created=when.isoformat())


@pytest.mark.parametrize("keep_last,max_age,kept", [
    (None, None, [1, 2, 5, 30, 100]),
    (2, None, [1, 2]),
    (None, timedelta(hours=24), [1, 2, 5]),
    (1, timedelta(hours=3), [1, 2]),  # kept if any rule keeps it
    (None, timedelta(minutes=1), [1]),  # the newest always stays
])
def test_retention(keep_last, max_age, kept):
    all_ = [snap(h) for h in (5, 1, 100, 2, 30)]
    doomed = {m.id for m in retention.select(all_, NOW, keep_last, max_age)}
    assert sorted(h for h in (1, 2, 5, 30, 100) if snap(h).id not in doomed) == kept


def test_durations():
    assert retention.parse_duration("1d12h") == timedelta(hours=36)
    assert retention.parse_duration("90m") == timedelta(minutes=90)
    for bad in ("", "7", "7 days", "d"):
        with pytest.raises(DurationError, match="--max-age"):
            retention.parse_duration(bad, "--max-age")


def test_ids_sort_by_time():
    a, b = new_id(NOW), new_id(NOW + timedelta(milliseconds=1))
    assert a == "20260601T120000.000Z" and a < b and id_time(b) == NOW


def test_dir_store(tmp_path):
    s = DirStore(tmp_path)
    assert s.put_stream("c/1/obj", io.BytesIO(b"x" * 3_000_000)) == 3_000_000
    s.put_bytes("c/1/m.json", b"{}")
    assert s.list("c") == ["c/1/m.json", "c/1/obj"] and s.get_bytes("c/1/m.json") == b"{}"
    s.delete(["c/1/m.json", "c/1/obj"])
    assert s.list("c") == [] and not (tmp_path / "c").exists()
    with pytest.raises(StoreError):
        s.get_bytes("c/../../etc/passwd")


def test_open_store():
    assert isinstance(open_store("/var/backups"), DirStore)
    assert open_store("file:///var/backups").root == Path("/var/backups")
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket" and s3._key("c/1/x") == "some/prefix/c/1/x"
    with pytest.raises(StoreError):
        open_store("ftp://x/y")


def test_kubeadm_table(tmp_path):
    k = tmp_path / "etc/kubernetes"
    (k / "pki/etcd").mkdir(parents=True)
    (k / "manifests").mkdir()
    for rel in ("pki/ca.crt", "pki/etcd/ca.key", "admin.conf", "manifests/etcd.yaml", "manifests/notes.txt",
                "tmp/other.conf"):
        (k / rel).parent.mkdir(parents=True, exist_ok=True)
        (k / rel).write_text(rel)
    names = sorted(e.name for e in kubeadm.collect(tmp_path))
    assert names == ["kubernetes/admin.conf", "kubernetes/manifests/etcd.yaml", "kubernetes/pki/ca.crt",
                     "kubernetes/pki/etcd/ca.key"]
    src, dest = kubeadm.destination("kubelet/kubeadm-flags.env", Path("/t"))
    assert dest == Path("/t/var/lib/kubelet/kubeadm-flags.env") and src.backup == "files"
    assert kubeadm.destination("etcd/snapshot.db", Path("/t")) is None


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_bundle_roundtrip(tmp_path, compression):
    ident = x25519.Identity.generate()
    (tmp_path / "id.txt").write_text(str(ident) + "\n")
    big = tmp_path / "db"
    big.write_bytes(bytes(range(256)) * 40_000)
    store = DirStore(tmp_path / "store")
    w = bundle.write(store, "c/1/b.age", [bundle.BundleFile("etcd/snapshot.db", path=big),
                                          bundle.BundleFile("cluster/x.json", data=b"{}", mode=0o644)],
                     keys.load_recipients([str(ident.to_public())], None), compression)
    assert [f["path"] for f in w.files] == ["etcd/snapshot.db", "cluster/x.json"]
    got = bundle.read(store, "c/1/b.age", keys.load_identities([str(tmp_path / "id.txt")]), tmp_path / "out")
    assert (got.size, got.sha256) == (w.size, w.sha256)
    assert (tmp_path / "out/etcd/snapshot.db").read_bytes() == big.read_bytes()
    assert got.files["cluster/x.json"]["mode"] == "0644"
    # the standard age CLI reads it too
    plain = subprocess.run(["age", "-d", "-i", str(tmp_path / "id.txt"), str(tmp_path / "store/c/1/b.age")],
                           capture_output=True, check=True).stdout
    if compression == "none":
        assert plain[257:262] == b"ustar"
    else:
        assert plain.startswith({"zstd": bundle.ZSTD_MAGIC, "gzip": bundle.GZIP_MAGIC}[compression])


def test_bundle_refuses_unsafe_paths(tmp_path):
    ident = x25519.Identity.generate()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    import pyrage

    store = DirStore(tmp_path / "store")
    store.put_bytes("evil.age", pyrage.encrypt(buf.getvalue(), [ident.to_public()]))
    with pytest.raises(bundle.BundleError, match="unsafe path"):
        bundle.read(store, "evil.age", [ident], tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_keys_are_checked():
    with pytest.raises(keys.KeyFileError, match="not an age recipient"):
        keys.parse_recipient("hello")
    with pytest.raises(keys.KeyFileError, match="at least one"):
        keys.load_recipients([], [])
    with pytest.raises(keys.KeyFileError, match="--identity"):
        keys.load_identities([])


def test_integrity_hash_follows_a_stream(tmp_path):
    import hashlib
    import os
    import random

    from kubedr.snapshot import etcd

    body = os.urandom(512 * 37)
    good = body + hashlib.sha256(body).digest()  # as etcd streams a snapshot: db + sha256(db)
    for data, has in ((good, True), (body, False)):
        h = etcd._TailHasher()
        rest = data
        while rest:
            n = random.choice((1, 7, 31, 32, 33, 4096))
            h.update(rest[:n])
            rest = rest[n:]
        assert h.result(tmp_path) == (hashlib.sha256(data).hexdigest(), has)
        (tmp_path / "db").write_bytes(data)
        assert etcd.digest(tmp_path / "db") == (hashlib.sha256(data).hexdigest(), has)
    (tmp_path / "db").write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    with pytest.raises(etcd.EtcdError, match="integrity"):
        etcd.digest(tmp_path / "db")


def test_restore_command_bumps_only_where_the_tool_can():
    from kubedr.snapshot import etcd

    found = etcd.restore_tool()
    assert Path(found.path).name in ("etcdutl", "etcdctl")
    if Path(found.path).name == "etcdctl":
        assert not found.bump  # etcdctl 3.4 has no --bump-revision; etcdutl has it from 3.5.x
    args = ("snap.db", Path("/var/lib/etcd-new"), "cp-1", ["https://10.0.0.1:2380"])
    old = etcd.restore_command(etcd.RestoreTool("/usr/bin/etcdctl", False), *args)
    new = etcd.restore_command(etcd.RestoreTool("/usr/bin/etcdutl", True), *args, bump=5000)
    assert "--initial-cluster=cp-1=https://10.0.0.1:2380" in old and not any("bump" in a for a in old)
    assert new[-2:] == ["--bump-revision=5000", "--mark-compacted"]


def test_a_failed_bundle_leaves_no_object(tmp_path):
    ident = x25519.Identity.generate()
    store = DirStore(tmp_path / "store")
    with pytest.raises(bundle.BundleError, match="packing failed"):
        bundle.write(store, "c/1/b.age", [bundle.BundleFile("a", data=b"x" * 100_000),
                                          bundle.BundleFile("gone", path=tmp_path / "missing")], [ident.to_public()])
    assert store.list("c") == []
