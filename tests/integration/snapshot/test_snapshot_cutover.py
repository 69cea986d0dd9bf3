"""--cutover on a kubeadm node, with real etcd run from its static pod manifest by a stand-in for the kubelet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_kubelet import FakeKubelet, apiserver_manifest, etcd_manifest
from snapshot_harness import kubedr, make_node_root

from tests.conftest import free_port, port_open, wait_until


def ctl(url: str, *args: str) -> str:
    return subprocess.run(["etcdctl", f"--endpoints={url}", "--dial-timeout=2s", "--command-timeout=5s", *args],
                          capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3")).stdout


def healthy(url: str) -> bool:
    out = ctl(url, "endpoint", "health", "-w", "json")
    return bool(out) and all(e.get("health") for e in json.loads(out))


@pytest.fixture
def node(tmp_path, age_keys):
    """A kubeadm control-plane node: etcd holds /k=snapshot when saved, then /k=after and /only-old."""
    root = tmp_path / "node"
    cport, pport, aport = free_port(), free_port(), free_port()
    make_node_root(root, "cp-1", "127.0.0.1", endpoint=f"127.0.0.1:{aport}")
    manifests = root / "etc/kubernetes/manifests"
    (manifests / "etcd.yaml").write_text(etcd_manifest(cport, pport))
    (manifests / "kube-apiserver.yaml").write_text(apiserver_manifest(aport))
    kubelet = FakeKubelet(root, tmp_path).start()
    url = f"http://127.0.0.1:{cport}"
    try:
        wait_until(lambda: healthy(url), 30, what="etcd started by the fake kubelet")
        ctl(url, "put", "/k", "snapshot")
        store = tmp_path / "store"
        kubedr("save", "--store", str(store), "--endpoints", url, "--root", str(root), "--node", "cp-1",
               "--no-cluster-info", "-r", age_keys.recipient)
        ctl(url, "put", "/k", "after")
        ctl(url, "put", "/only-old", "1")
        (root / "etc/kubernetes/pki/apiserver.crt").write_text("the node's newer certificate\n")
        yield {"root": root, "url": url, "store": store, "kubelet": kubelet, "api_port": aport,
               "manifests": {f.name: f.read_bytes() for f in manifests.glob("*.yaml")}}
    finally:
        kubelet.stop()


def cutover(node, identity, *extra, check=True):
    return kubedr("restore", "--store", str(node["store"]), "-i", str(identity), "--node", "cp-1", "--target-root",
                  str(node["root"]), "--cutover", *extra, check=check)


def test_cutover_serves_the_restored_data_and_keeps_the_old(node, age_keys):
    out = cutover(node, age_keys.identity, "--cutover-timeout", "60")
    assert "cut over to" in out.stdout and "etcd healthy" in out.stdout, out.stderr
    url, root = node["url"], node["root"]
    assert ctl(url, "get", "/k", "--print-value-only").strip() == "snapshot"
    assert ctl(url, "get", "/only-old", "--print-value-only").strip() == ""
    [old] = (root / "var/lib").glob("etcd.kubedr-*")
    assert holds_old_key(old) and not holds_old_key(root / "var/lib/etcd")
    assert (root / "etc/kubernetes/pki/apiserver.crt").read_text() != "the node's newer certificate\n"
    assert sorted(f.name for f in (root / "etc/kubernetes/manifests").glob("*.yaml")) == sorted(node["manifests"])
    assert not (root / "etc/kubernetes/manifests.kubedr-aside").exists()
    wait_until(lambda: port_open(node["api_port"]), 10, what="kube-apiserver back")
    again = cutover(node, age_keys.identity)
    assert "nothing to do" in again.stdout and len(list((root / "var/lib").glob("etcd.kubedr-*"))) == 1


def test_cutover_failing_half_way_leaves_the_old_data_served(node, age_keys):
    node["kubelet"].crash_etcd_starts = {2}  # the restored etcd's pod crash-loops
    out = cutover(node, age_keys.identity, "--cutover-timeout", "5", check=False)
    assert out.returncode == 1 and "failed at step 'starting'" in out.stderr, out.stderr
    assert "old etcd data and static pod manifests are back" in out.stderr
    url, root = node["url"], node["root"]
    wait_until(lambda: healthy(url), 30, what="the old etcd back")
    assert ctl(url, "get", "/k", "--print-value-only").strip() == "after"
    assert ctl(url, "get", "/only-old", "--print-value-only").strip() == "1"
    assert not list((root / "var/lib").glob("etcd.kubedr-*"))
    assert {f.name: f.read_bytes() for f in (root / "etc/kubernetes/manifests").glob("*.yaml")} == node["manifests"]
    assert (root / "etc/kubernetes/pki/apiserver.crt").read_text() == "the node's newer certificate\n"
    assert not (root / "etc/kubernetes/kubedr-cutover.json").exists()


def test_cutover_killed_mid_way_converges_when_run_again(node, age_keys):
    args = [sys.executable, "-m", "kubedr", "snapshot", "restore", "--store", str(node["store"]), "-i",
            str(age_keys.identity), "--node", "cp-1", "--target-root", str(node["root"]), "--cutover"]
    journal = node["root"] / "etc/kubernetes/kubedr-cutover.json"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        step = wait_until(lambda: journal.is_file() and json.loads(journal.read_text() or "{}").get("step"), 60,
                          interval=0.005, what="the cut-over under way")
    finally:
        proc.kill()
        proc.wait()
    assert step != "done"
    out = cutover(node, age_keys.identity, "--cutover-timeout", "60")
    assert "undoing it first" in out.stderr and "etcd healthy" in out.stdout, out.stderr
    assert ctl(node["url"], "get", "/k", "--print-value-only").strip() == "snapshot"
    [old] = (node["root"] / "var/lib").glob("etcd.kubedr-*")
    assert holds_old_key(old) and not holds_old_key(node["root"] / "var/lib/etcd")


def holds_old_key(data_dir) -> bool:
    """The data dir's bolt db has /only-old, written after the snapshot (keys are stored as plain bytes)."""
    return b"/only-old" in (data_dir / "member/snap/db").read_bytes()
