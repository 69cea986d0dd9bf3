"""Sets, recorded facts and the node file table, without etcd."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubedr.snapshot import facts, kubeadm, manifest
from kubedr.snapshot.manifest import EtcdMember, Facts, Manifest
from kubedr.snapshot.store import DirStore


@pytest.mark.parametrize("given,expect", [
    ("https://api.prod.example:6443", "api.prod.example:6443"),
    ("api.prod.example", "api.prod.example:6443"),
    ("10.0.0.1:8443", "10.0.0.1:8443"),
    ("https://[fd00::1]:6443", "[fd00::1]:6443"),
    ("", ""),
])
def test_endpoint_as_host_port(given, expect):
    assert facts.host_port(given) == expect


def test_manifest_facts_round_trip_and_older_manifests(tmp_path):
    m = Manifest(id="20261130T060000.000Z", cluster="prod", node="cp-1", created="2026-11-30T06:00:00+00:00",
                 facts=Facts(cluster_name="prod", endpoint="api:6443", members=[EtcdMember("cp-1", ["http://a:2380"])]),
                 expected_nodes=["cp-1", "cp-2"], present=["cp-1"])
    back = Manifest.from_json(m.to_json(), "x")
    assert back.facts.members == [EtcdMember("cp-1", ["http://a:2380"])] and back.present == []
    assert b'"present"' not in m.to_json()
    old = Manifest.from_json(b'{"id": "i", "cluster": "c", "node": "n", "created": "2026-01-01T00:00:00+00:00"}', "x")
    assert old.facts == Facts() and old.set_nodes == ["n"]


def test_manifest_sections_are_typed_and_a_link_is_kept_only_for_links():
    m = Manifest(id="s1", cluster="prod", node="cp-1", created="2026-11-30T06:00:00+00:00",
                 bundle=manifest.BundleInfo(size=10, sha256="ab", compression="zstd", encryption="age"),
                 snapshot=manifest.EtcdSnapshot(revision=7, hash=99, member=manifest.SnapshotMember("cp-1", ["u"], "1")),
                 files=[manifest.FileEntry("a", 1, "0600", "s"), manifest.FileEntry("l", 0, "0777", "t", link="x")])
    doc = json.loads(m.to_json())
    assert doc["files"] == [{"path": "a", "size": 1, "mode": "0600", "sha256": "s"},
                            {"path": "l", "size": 0, "mode": "0777", "sha256": "t", "link": "x"}]
    assert doc["snapshot"]["member"] == {"name": "cp-1", "peer_urls": ["u"], "id": "1"}
    assert Manifest.from_json(m.to_json(), "x") == m


@pytest.mark.parametrize("doc,error", [
    ({"bundle": {"size": "big"}}, "prod/s1/manifest.json: bundle.size: expected int, got 'big'"),
    ({"files": [{"path": "a"}]}, "prod/s1/manifest.json: files[0]: missing size, mode, sha256"),
    ({"snapshot": {"member": []}}, "prod/s1/manifest.json: snapshot.member: expected an object, got list"),
    ({"node": None}, "prod/s1/manifest.json: node: expected str, got None"),
])
def test_a_bad_manifest_is_one_line_naming_the_file_and_field_and_the_others_are_listed(tmp_path, doc, error):
    store = DirStore(tmp_path)
    good = Manifest(id="s2", cluster="prod", node="cp-1", created="2026-11-30T06:00:00+00:00")
    manifest.write(store, good)
    base = {"id": "s1", "cluster": "prod", "node": "cp-1", "created": "2026-11-30T05:00:00+00:00"}
    store.put_bytes("prod/s1/manifest.json", json.dumps({**base, **doc}).encode())
    with pytest.raises(manifest.SnapshotManifestError) as exc:
        manifest.load(store, "prod", "s1")
    assert str(exc.value) == f"{store.url}/{error}" and "\n" not in str(exc.value)
    assert [m.id for m in manifest.list_all(store, "prod")] == ["s2"]


def test_present_and_missing_nodes_come_from_the_store(tmp_path):
    store = DirStore(tmp_path)
    m = Manifest(id="s1", cluster="prod", node="cp-2", created="2026-11-30T06:00:00+00:00",
                 expected_nodes=["cp-1", "cp-2", "cp-3"])
    manifest.write(store, m)
    store.put_bytes("prod/s1/nodes/cp-3/bundle.tar.age", b"x")  # a bundle without its manifest: not present yet
    manifest.write_part(store, manifest.NodePart(node="cp-1", cluster="prod", id="s1", created=m.created))
    [listed] = manifest.list_all(store, "prod")
    assert listed.present == ["cp-1", "cp-2"] and listed.missing == ["cp-3"]
    assert manifest.load(store, "prod", "s1").missing == ["cp-3"]
    assert manifest.incomplete(store, "prod") == {}


def test_kubelet_state_without_pods_and_with_its_symlinks(tmp_path):
    root = tmp_path
    kubelet = root / "var/lib/kubelet"
    for d in ("pods/uid/volumes", "plugins/kubernetes.io/csi", "pki"):
        (kubelet / d).mkdir(parents=True)
    (kubelet / "pods/uid/volumes/data").write_text("pod data")
    (kubelet / "plugins/kubernetes.io/csi/mount").write_text("a volume")
    (kubelet / "config.yaml").write_text("kind: KubeletConfiguration\n")
    (kubelet / "pki/kubelet-client-1.pem").write_text("cert")
    os.symlink("/var/lib/kubelet/pki/kubelet-client-1.pem", kubelet / "pki/kubelet-client-current.pem")
    (root / "var/lib/cni/networks").mkdir(parents=True)
    (root / "var/lib/cni/networks/last_reserved_ip.0").write_text("10.244.0.9")
    entries = {e.name: e for e in kubeadm.collect(root)}
    assert set(entries) == {"kubelet/config.yaml", "kubelet/pki/kubelet-client-1.pem",
                            "kubelet/pki/kubelet-client-current.pem", "cni/networks/last_reserved_ip.0"}
    assert entries["kubelet/pki/kubelet-client-current.pem"].link == "/var/lib/kubelet/pki/kubelet-client-1.pem"
    assert kubeadm.destination("cni/networks/last_reserved_ip.0", Path("/t"))[1] == Path(
        "/t/var/lib/cni/networks/last_reserved_ip.0")


def test_set_window_gives_every_node_of_one_schedule_the_same_id():
    import argparse

    from kubedr.snapshot.cli import _set_id

    ns = argparse.Namespace(set_id=None, set_window="30m")
    first = _set_id(ns)
    assert first.endswith(("0000.000Z", "3000.000Z")) and _set_id(ns) == first  # floored to :00 or :30
    assert manifest.id_time(first) is not None
    assert _set_id(argparse.Namespace(set_id="weekly-1", set_window=None)) == "weekly-1"
    assert _set_id(argparse.Namespace(set_id=None, set_window=None)) is None


def test_the_member_of_a_node_is_the_one_its_part_of_the_set_recorded(tmp_path):
    from kubedr.snapshot import restore

    store = DirStore(tmp_path)
    m = Manifest(id="s1", cluster="prod", node="vm-1", created="2026-11-30T06:00:00+00:00",
                 snapshot=manifest.EtcdSnapshot(member=manifest.SnapshotMember("etcd-a", ["http://10.0.0.1:2380"])),
                 facts=Facts(members=[EtcdMember("etcd-a", ["http://10.0.0.1:2380"]),
                                      EtcdMember("etcd-b", ["http://10.0.0.2:2380"])]),
                 expected_nodes=["vm-1", "vm-2", "vm-3"])
    manifest.write(store, m)
    manifest.write_part(store, manifest.NodePart(node="vm-2", cluster="prod", id="s1", created=m.created,
                                                 member="etcd-b"))
    manifest.write_part(store, manifest.NodePart(node="vm-3", cluster="prod", id="s1", created=m.created))
    m = manifest.load(store, "prod", "s1")
    recorded = {n: restore.recorded_member(store, m, n) for n in ("vm-1", "vm-2", "vm-3", "vm-9")}
    assert recorded == {"vm-1": "etcd-a", "vm-2": "etcd-b", "vm-3": "", "vm-9": ""}

    def name(node: str, given: str | None = None) -> str:
        req = restore.RestoreRequest(data_dir=tmp_path / "d", target_root=None, name=given, node=node,
                                     recorded_member=recorded[node])
        return restore.initial_cluster(m, req)[0]

    assert (name("vm-2"), name("vm-3"), name("vm-2", "etcd-x")) == ("etcd-b", "vm-3", "etcd-x")
