"""One snapshot set for a three-node control plane: real three-member etcd, three node roots, the API's facts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from snapshot_harness import kubedr, listed, make_age_keys, make_node_root, start_etcd_cluster, tree

from tests.conftest import free_port

NODES = ["cp-1", "cp-2", "cp-3"]
KEYS = {f"/registry/configmaps/prod/cm-{i}": f"value-{i}" for i in range(30)}
SET_ID = "20261130T060000.000Z"


def _create(kubectl: str, kubeconfig: Path, obj: dict) -> None:
    out = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "create", "--validate=false", "-f", "-"],
                         input=json.dumps(obj), text=True, capture_output=True)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def cp_set(tmp_path_factory, kubectl):
    """Save a set on each of three control-plane 'nodes' (the leader takes the etcd snapshot), then stop etcd."""
    from kubedr.emulator.server import Emulator

    tmp = tmp_path_factory.mktemp("cp-set")
    emu = Emulator(listen=f"127.0.0.1:{free_port()}")
    emu.start()
    kubeconfig = emu.write_kubeconfig(tmp / "kubeconfig")
    _create(kubectl, kubeconfig, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": "kind: ClusterConfiguration\nclusterName: prod\n"
                                         "controlPlaneEndpoint: localhost:6443\n"}})
    for n in [*NODES, "w-1"]:
        labels = {"node-role.kubernetes.io/control-plane": ""} if n.startswith("cp-") else {}
        _create(kubectl, kubeconfig, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": labels}})
    members = start_etcd_cluster(tmp, NODES)
    try:
        for k, v in KEYS.items():
            members[0].ctl("put", k, v)
        keys = make_age_keys(tmp / "age.txt")
        roots = {n: tmp / f"root-{n}" for n in NODES}
        for i, n in enumerate(NODES):
            make_node_root(roots[n], n, f"10.0.0.{i + 1}", endpoint="localhost:6443")
        store = tmp / "store"
        outs = {n: kubedr("save", "--store", str(store), "--cluster", "prod", "--endpoints", e.client_url,
                          "--root", str(roots[n]), "--node", n, "--set-id", SET_ID, "--kubeconfig", str(kubeconfig),
                          "-r", keys.recipient).stdout for n, e in zip(NODES, members, strict=True)}
    finally:
        for e in members:
            e.stop()
        emu.stop()
    leader = next(n for n, out in outs.items() if out.startswith("saved prod/"))
    return {"store": store, "keys": keys, "roots": roots, "outs": outs, "leader": leader, "tmp": tmp,
            "peers": {e.name: e.peer_url for e in members}}


def restore_args(s: dict, node: str, *extra: str) -> list[str]:
    return ["restore", "--store", str(s["store"]), "--cluster", "prod", "--id", SET_ID, "-i", str(s["keys"].identity),
            "--node", node, *extra]


def test_one_set_of_three_nodes_and_node_2_gets_its_own_files(cp_set, tmp_path):
    s = cp_set
    assert sum(out.startswith("saved prod/") for out in s["outs"].values()) == 1  # one etcd snapshot: the leader's
    assert all("the etcd snapshot is another node's" in out for n, out in s["outs"].items() if n != s["leader"])
    [m] = listed(str(s["store"]), "prod")
    assert m["id"] == SET_ID and m["node"] == s["leader"] and m["present"] == NODES and m["missing"] == []
    facts = m["facts"]
    assert [x["name"] for x in facts["members"]] == NODES and facts["cluster_name"] == "prod"
    assert facts["endpoint"] == "localhost:6443" and facts["control_plane_nodes"] == NODES
    assert facts["worker_nodes"] == ["w-1"] and m["expected_nodes"] == NODES
    assert "10.0.0." in " ".join(facts["api_sans"]) and s["leader"] in facts["api_sans"]
    table = kubedr("list", "--store", str(s["store"]), "--cluster", "prod").stdout
    assert SET_ID in table and " 3/3 " in table and "missing" not in table
    checked = kubedr("verify", "--store", str(s["store"]), "--cluster", "prod", "-i", str(s["keys"].identity)).stdout
    assert "files of " in checked and all(n in checked for n in NODES if n != s["leader"])

    target = tmp_path / "node-2"
    out = kubedr(*restore_args(s, "cp-2", "--data-dir", str(tmp_path / "etcd"), "--target-root", str(target)))
    assert "preflight ok: member cp-2 of cp-1, cp-2, cp-3" in out.stdout
    src = s["roots"]["cp-2"]
    for rel in ("etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/etcd/peer.key",
                "var/lib/kubelet/config.yaml", "var/lib/cni/networks/podnet/10.244.1.2"):
        assert (target / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert (target / "etc/kubernetes/pki/apiserver.crt").read_bytes() != (
        s["roots"]["cp-1"] / "etc/kubernetes/pki/apiserver.crt").read_bytes()
    link = target / "var/lib/kubelet/pki/kubelet-client-current.pem"
    assert link.is_symlink() and str(link.readlink()) == "/var/lib/kubelet/pki/kubelet-client-2026.pem"
    assert not (target / "var/lib/kubelet/pods").exists()  # the kubelet's pods are never bundled
    assert (tmp_path / "etcd/member/snap/db").is_file()


def test_three_members_restored_from_one_set_form_one_cluster(etcd_release, cp_set, tmp_path):
    """Once per etcd release: the members restored with etcdctl (3.4) or etcdutl (3.5) and served by that etcd."""
    s = cp_set
    dirs = [tmp_path / f"etcd-{n}" for n in NODES]
    for n, d in zip(NODES, dirs, strict=True):  # as on each node: same id, its own member
        kubedr(*restore_args(s, n, "--data-dir", str(d), "--initial-cluster-token", "restored"))
    ports = [int(s["peers"][n].rsplit(":", 1)[1]) for n in NODES]  # the recorded peer URLs (aliases)
    members = start_etcd_cluster(tmp_path, NODES, peer_ports=ports, data_dirs=dirs)
    try:
        for e in members:
            for k, v in KEYS.items():
                assert e.get(k) == v, (e.name, k)
            listed_members = json.loads(e.ctl("member", "list", "-w", "json"))["members"]
            assert sorted(x["name"] for x in listed_members) == NODES
        members[1].ctl("put", "/after/restore", "one cluster")
        assert members[2].ctl("get", "/after/restore", "--print-value-only", "--consistency=l").strip() == \
            "one cluster"
    finally:
        for e in members:
            e.stop()


def test_a_set_missing_a_node_is_listed_and_refused_unless_forced(cp_set, tmp_path):
    s = cp_set
    store = tmp_path / "store"
    shutil.copytree(s["store"], store)
    gone = next(n for n in NODES if n != s["leader"])
    shutil.rmtree(store / "prod" / SET_ID / "nodes" / gone)
    [m] = listed(str(store), "prod")
    assert m["missing"] == [gone]
    table = kubedr("list", "--store", str(store), "--cluster", "prod").stdout
    assert " 2/3 " in table and f"missing: {gone}" in table
    target, data = tmp_path / "target", tmp_path / "etcd"
    args = ["restore", "--store", str(store), "--cluster", "prod", "-i", str(s["keys"].identity), "--node",
            s["leader"], "--data-dir", str(data), "--target-root", str(target)]
    out = kubedr(*args, check=False)
    assert out.returncode == 1 and f"is missing node(s) {gone}" in out.stderr
    assert not target.exists() and not data.exists()
    out = kubedr(*args, "--force")
    assert f"preflight FORCED past: snapshot set prod/{SET_ID} is missing node(s) {gone}" in out.stdout
    assert (target / "etc/kubernetes/pki/apiserver.crt").read_bytes() == (
        s["roots"][s["leader"]] / "etc/kubernetes/pki/apiserver.crt").read_bytes()


def _refused(s: dict, node: str, target: Path, data: Path, *extra: str, dry_run_too: bool = False) -> str:
    before = tree(target)
    for dry in ([], ["--dry-run"]) if dry_run_too else ([],):
        out = kubedr(*restore_args(s, node, "--data-dir", str(data), "--target-root", str(target), *extra, *dry),
                     check=False)
        errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
        assert out.returncode == 1 and len(errors) == 1 and "restore plan" not in out.stdout, out.stderr
    assert tree(target) == before and not data.exists()
    return errors[0]


def test_alias_preflight_refusals_touch_nothing(cp_set, tmp_path):
    s = cp_set
    target, data = tmp_path / "target", tmp_path / "etcd"
    (target / "etc/kubernetes").mkdir(parents=True)
    err = _refused(s, "cp-9", target, data, dry_run_too=True)
    assert "alias cp-9: not an etcd member of snapshot" in err and "(members cp-1, cp-2, cp-3)" in err

    admin = (s["roots"]["cp-2"] / "etc/kubernetes/admin.conf").read_text()
    (target / "etc/kubernetes/admin.conf").write_text(admin.replace("localhost:6443", "127.0.0.2:6443"))
    err = _refused(s, "cp-2", target, data)
    assert "alias localhost:6443 (control-plane endpoint)" in err and "points at 127.0.0.2:6443" in err
    (target / "etc/kubernetes/admin.conf").unlink()

    other = tmp_path / "kubeadm.yaml"
    other.write_text("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nclusterName: staging\n"
                     "controlPlaneEndpoint: localhost:6443\n")
    err = _refused(s, "cp-2", target, data, "--kubeadm-config", str(other))
    assert "snapshot of cluster prod: this node's ClusterConfiguration" in err and "is cluster staging" in err

    err = _refused(s, "cp-2", target, data, "--initial-cluster",
                   "cp-1=http://127.0.0.1:2380,cp-2=http://192.0.2.7:2380,cp-3=http://127.0.0.1:2382")
    assert "alias 192.0.2.7 (peer URL of member cp-2, restored here)" in err and "not an address of this node" in err

    out = kubedr(*restore_args(s, "cp-9", "--data-dir", str(data), "--target-root", str(target), "--name", "cp-2",
                               "--force", "--dry-run"))
    assert "preflight FORCED past: snapshot set" in out.stdout and "has no files of node cp-9" in out.stdout
    assert "dry run: nothing changed" in out.stdout and not data.exists()


def test_an_unresolvable_endpoint_alias_is_refused(etcd_server, age_keys, tmp_path):
    root = tmp_path / "node"
    make_node_root(root, "cp-1", "127.0.0.1", endpoint="api.prod.kubedr.invalid:6443")
    store = tmp_path / "store"
    etcd_server.ctl("put", "k", "v")
    kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(root), "--node", "cp-1",
           "-r", age_keys.recipient)
    [m] = listed(str(store))
    assert m["facts"]["endpoint"] == "api.prod.kubedr.invalid:6443"
    target, data = tmp_path / "target", tmp_path / "etcd"
    out = kubedr("restore", "--store", str(store), "-i", str(age_keys.identity), "--node", "cp-1", "--data-dir",
                 str(data), "--target-root", str(target), "--dry-run", check=False)
    assert out.returncode == 1 and "alias api.prod.kubedr.invalid (control-plane endpoint" in out.stderr
    assert "does not resolve on this node" in out.stderr and not target.exists() and not data.exists()
