"""kubeadm-config and the node list come from the API (the emulator over HTTP) when a kubeconfig is there."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

import zstandard
from snapshot_harness import kubedr, listed


def test_kubeadm_config_and_nodes_are_bundled(etcd_server, age_keys, tmp_path, emulator, kubectl):
    kubeconfig = str(tmp_path / "kubeconfig")
    objects = [  # kube-system exists already, as in a real cluster
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
         "data": {"ClusterConfiguration": "kind: ClusterConfiguration\nkubernetesVersion: v1.30.0\n"}},
    ]
    has_nodes = "nodes" in subprocess.run([kubectl, "--kubeconfig", kubeconfig, "api-resources", "-o", "name"],
                                          capture_output=True, text=True).stdout.split()
    if has_nodes:  # the emulator may not serve Nodes yet; then the node list is skipped with a log line
        objects += [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in ("cp-2", "cp-1", "w-1")]
    for obj in objects:
        out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "create", "--validate=false", "-f", "-"], input=json.dumps(obj),
                             text=True, capture_output=True)
        assert out.returncode == 0, out.stderr
    etcd_server.ctl("put", "a", "b")
    store = tmp_path / "store"
    out = kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(tmp_path / "r"),
           "--kubeconfig", kubeconfig, "-r", age_keys.recipient)
    [m] = listed(str(store))
    names = {f["path"] for f in m["files"]}
    assert "cluster/kubeadm-config.json" in names
    if has_nodes:
        assert m["nodes"] == ["cp-1", "cp-2", "w-1"] and "cluster/nodes.json" in names
    else:
        assert m["nodes"] == [] and "node list not read" in out.stderr
    [obj] = store.glob("kubernetes/*/bundle.tar.age")
    plain = subprocess.run(["age", "-d", "-i", str(age_keys.identity), str(obj)], capture_output=True,
                           check=True).stdout
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(plain)) as z, tarfile.open(fileobj=z, mode="r|") as t:
        docs = {m.name: json.load(t.extractfile(m)) for m in t if m.name.startswith("cluster/")}
    assert "kubernetesVersion: v1.30.0" in docs["cluster/kubeadm-config.json"]["data"]["ClusterConfiguration"]
