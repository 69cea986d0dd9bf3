"""Damaged or foreign bundles are refused before anything on the target is written."""

from __future__ import annotations

import hashlib
import json

import pytest
from snapshot_harness import fake_kubeadm_root, kubedr, listed, tree


@pytest.fixture
def saved(etcd_server, age_keys, tmp_path):
    """One good snapshot of a cluster with a kubeadm tree, and a restore target that already has one."""
    for i in range(20):
        etcd_server.ctl("put", f"/registry/k{i}", f"v{i}")
    root = tmp_path / "node"
    fake_kubeadm_root(root)
    store = tmp_path / "store"
    kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(root),
           "-r", age_keys.recipient)
    [m] = listed(str(store))
    target = tmp_path / "target"
    (target / "etc/kubernetes").mkdir(parents=True)
    (target / "etc/kubernetes/admin.conf").write_text("the live admin.conf\n")
    return store, store / "kubernetes" / m["id"] / "bundle.tar.age", target


def truncate(obj):
    obj.write_bytes(obj.read_bytes()[: obj.stat().st_size * 2 // 3])


def flip_bit(obj):
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x10
    obj.write_bytes(bytes(data))


def append_garbage(obj):
    obj.write_bytes(obj.read_bytes() + b"\0" * 16)


@pytest.mark.parametrize("damage,expect", [
    (truncate, "damaged or truncated"),
    (flip_bit, "damaged or truncated"),
    (append_garbage, "damaged or truncated"),
    (None, "wrong --identity"),
], ids=["truncated", "bit-flipped", "trailing-bytes", "wrong-identity"])
def test_restore_refuses_before_touching_anything(saved, damage, expect, age_keys, other_age_keys, tmp_path):
    store, obj, target = saved
    identity = age_keys.identity
    if damage is None:
        identity = other_age_keys.identity
    else:
        damage(obj)
    before = tree(target)
    data_dir = tmp_path / "new-etcd"
    for action in (["verify"], ["restore", "--name", "cp-1", "--data-dir", str(data_dir), "--target-root", str(target)]):
        out = kubedr(*action, "--store", str(store), "-i", str(identity), check=False)
        assert out.returncode == 1, out.stderr
        errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and expect in errors[0], out.stderr
        assert "restore plan" not in out.stdout
    assert not data_dir.exists() and not data_dir.with_name(".new-etcd.kubedr-restore").exists()
    assert tree(target) == before


def test_restore_refuses_a_data_dir_in_use(saved, age_keys, tmp_path):
    store, _, target = saved
    used = tmp_path / "etcd-in-use"
    used.mkdir()
    (used / "member").write_text("x")
    before = tree(target)
    out = kubedr("restore", "--name", "cp-1", "--store", str(store), "-i", str(age_keys.identity), "--data-dir", str(used),
                 "--target-root", str(target), check=False)
    assert out.returncode == 1 and "not empty" in out.stderr
    assert tree(target) == before and tree(used) == {"member": b"x"}


def test_dry_run_prints_the_plan_and_changes_nothing(saved, age_keys, tmp_path):
    store, _, target = saved
    before = tree(target)
    out = kubedr("restore", "--name", "cp-1", "--store", str(store), "-i", str(age_keys.identity), "--data-dir",
                 str(tmp_path / "new-etcd"), "--target-root", str(target), "--dry-run")
    assert "restore plan" in out.stdout and "dry run: nothing changed" in out.stdout
    assert f"{target}/etc/kubernetes/admin.conf (replace)" in out.stdout
    assert "cannot bump the revision" in out.stdout or "--bump-revision" in out.stdout
    assert not (tmp_path / "new-etcd").exists() and tree(target) == before


# A bundle that decrypts but is not what its manifest says: age cannot see these, only the manifest check can.
def _edit(m_path, change):
    doc = json.loads(m_path.read_text())
    change(doc)
    m_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _entry(doc, path="kubernetes/admin.conf"):
    return next(f for f in doc["files"] if f["path"] == path)


def _another_snapshots_bundle(doc, obj, other):
    """A valid bundle of another snapshot in its place, the manifest's object fields made to match it."""
    obj.write_bytes(other.read_bytes())
    doc["bundle"].update(size=other.stat().st_size, sha256=hashlib.sha256(other.read_bytes()).hexdigest())


@pytest.mark.parametrize("change,expect", [
    (lambda doc, *_: _entry(doc).update(sha256="0" * 64), "kubernetes/admin.conf differs from the manifest"),
    (lambda doc, *_: _entry(doc).update(size=_entry(doc)["size"] + 1),
     "kubernetes/admin.conf differs from the manifest"),
    (lambda doc, *_: doc["files"].append({**_entry(doc), "path": "kubernetes/extra.conf"}),
     "kubernetes/extra.conf missing from the bundle"),
    (lambda doc, *_: doc["files"].remove(_entry(doc)), "files not in the manifest: kubernetes/admin.conf"),
    (lambda doc, *_: doc["bundle"].update(sha256="0" * 64), "sha256 of the stored object does not match"),
    (lambda doc, *_: doc["bundle"].update(size=doc["bundle"]["size"] - 1), "!= manifest"),
    (_another_snapshots_bundle, "kubernetes/admin.conf differs from the manifest"),
    (lambda doc, *_: doc["snapshot"].update(revision=doc["snapshot"]["revision"] + 1),
     "etcd snapshot status (revision"),
    (lambda doc, *_: doc["snapshot"].update(hash=doc["snapshot"]["hash"] + 1), "etcd snapshot status (revision"),
    (lambda doc, *_: doc["snapshot"].update(sha256="0" * 64), "etcd snapshot status (revision"),
], ids=["file-sha256", "file-size", "file-missing", "file-extra", "object-sha256", "object-size",
        "another-snapshots-bundle", "etcd-revision", "etcd-hash", "etcd-sha256"])
def test_restore_and_verify_refuse_a_bundle_that_disagrees_with_its_manifest(saved, change, expect, etcd_server,
                                                                             age_keys, tmp_path):
    store, obj, target = saved
    other = None
    if change is _another_snapshots_bundle:
        root = tmp_path / "node"
        (root / "etc/kubernetes/admin.conf").write_text("another admin.conf, of a later snapshot\n")
        kubedr("save", "--store", str(tmp_path / "other-store"), "--endpoints", etcd_server.client_url, "--root",
               str(root), "-r", age_keys.recipient)
        [other] = (tmp_path / "other-store").rglob("bundle.tar.age")
    _edit(obj.with_name("manifest.json"), lambda doc: change(doc, obj, other))
    before = tree(target)
    data_dir = tmp_path / "new-etcd"
    for action in (["verify"], ["restore", "--name", "cp-1", "--data-dir", str(data_dir), "--target-root", str(target)]):
        out = kubedr(*action, "--store", str(store), "-i", str(age_keys.identity), check=False)
        assert out.returncode == 1, out.stderr
        errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and expect in errors[0], out.stderr
        assert "restore plan" not in out.stdout and "Traceback" not in out.stderr
    assert not data_dir.exists() and not data_dir.with_name(".new-etcd.kubedr-restore").exists()
    assert tree(target) == before
