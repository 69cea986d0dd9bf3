"""post-restore on the emulator: nodes compared with the recorded list, workloads restarted, orphan Pods deleted."""

from __future__ import annotations

import json
import subprocess

from snapshot_harness import kubedr

from kubedr.snapshot import manifest
from kubedr.snapshot.store import DirStore

RECORDED = ["cp-1", "cp-2", "w-1", "w-gone"]


def _apply(kubectl, kubeconfig, objs):
    out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "create", "--validate=false", "-f", "-"],
                         input="\n".join(json.dumps(o) for o in objs), text=True, capture_output=True)
    assert out.returncode == 0, out.stderr


def _workload(kind, ns, name):
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _pod(ns, name, node):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}


def _get(kubectl, kubeconfig, *args):
    out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", *args, "-o", "json"], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_post_restore_restarts_workloads_and_drops_pods_of_gone_nodes(emulator, kubectl, tmp_path):
    kubeconfig = str(tmp_path / "kubeconfig")
    store = tmp_path / "store"
    m = manifest.Manifest(id="20261130T060000.000Z", cluster="prod", node="cp-1", created="2026-11-30T06:00:00+00:00",
                          nodes=RECORDED)
    manifest.write(DirStore(store), m)
    _apply(kubectl, kubeconfig, [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ("shop", "tools")])
    _apply(kubectl, kubeconfig, [
        *[{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in ("cp-1", "cp-2", "w-1", "w-new")],
        _workload("Deployment", "shop", "web"), _workload("StatefulSet", "shop", "db"),
        _workload("DaemonSet", "kube-system", "agent"), _workload("Deployment", "tools", "cli"),
        _pod("shop", "on-gone-node", "w-gone"), _pod("shop", "on-live-node", "w-1"),
        _pod("tools", "tools-on-gone-node", "w-gone")])
    base = ["post-restore", "--store", str(store), "--cluster", "prod", "--kubeconfig", kubeconfig]

    only_shop = kubedr(*base, "--namespaces", "shop").stdout
    assert "nodes missing (recorded, not in the cluster): w-gone" in only_shop
    assert "nodes extra (in the cluster, not recorded): w-new" in only_shop
    assert "restarted Deployment shop/web" in only_shop and "restarted StatefulSet shop/db" in only_shop
    assert "tools/cli" not in only_shop and "kube-system/agent" not in only_shop
    assert "deleted pod shop/on-gone-node (node w-gone)" in only_shop and "tools-on-gone-node" not in only_shop
    pods = {p["metadata"]["name"] for p in _get(kubectl, kubeconfig, "pods", "-A")["items"]}
    assert {"on-live-node", "tools-on-gone-node"} <= pods and "on-gone-node" not in pods

    everything = kubedr(*base).stdout
    assert "restarted DaemonSet kube-system/agent" in everything and "restarted Deployment tools/cli" in everything
    assert "skipped Deployment shop/web (already restarted for 20261130T060000.000Z)" in everything
    assert "deleted pod tools/tools-on-gone-node (node w-gone)" in everything
    for kind, ns, name in (("deployment", "shop", "web"), ("daemonset", "kube-system", "agent"),
                           ("statefulset", "shop", "db")):
        obj = _get(kubectl, kubeconfig, kind, name, "-n", ns)
        assert obj["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].endswith("Z")
        assert obj["metadata"]["annotations"]["kubedr.io/post-restore"] == m.id

    again = kubedr(*base).stdout  # safe to run twice: nothing left to do
    assert "post-restore: 0 workloads restarted, 4 skipped, 0 pods of gone nodes deleted, 0 failed" in again
