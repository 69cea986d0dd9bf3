"""The rendered snapshot DaemonSet on the emulator with three control-plane Nodes: one Pod on each of them (none on
the workers), and the commands those Pods run, with their args, env and config, write one complete set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from snapshot_harness import listed, make_age_keys, make_node_root, start_etcd_cluster

from tests.conftest import stop_process, wait_until
from tests.manifests import by_kind, render

CONTROL_PLANE = ["cp-1", "cp-2", "cp-3"]
TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
NODES: list[dict[str, Any]] = [
    *[{"metadata": {"name": n, "labels": {"node-role.kubernetes.io/control-plane": ""}}, "spec": {"taints": [TAINT]}}
      for n in CONTROL_PLANE],
    {"metadata": {"name": "w-1"}},
]


def kubectl_apply(kubectl: str, kubeconfig: Path, docs: list[dict[str, Any]]) -> None:
    out = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "apply", "--validate=false", "-f", "-"],
                         input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), text=True,
                         capture_output=True)
    assert out.returncode == 0, out.stderr


def snapshot_pods(emu: Any) -> list[dict[str, Any]]:
    return [p for p in emu.store.list("v1", "Pod", "kubedr-system")
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "kubedr-snapshot"]


def node_config(settings: dict[str, Any], tmp: Path, kubeconfig: Path, recipients: Path, node: str,
                endpoint: str) -> Path:
    """The Pod's config.yaml with what its mounts and host would give it here: the node's root and its etcd
    (loopback on the node), the ServiceAccount's API (the emulator), the store and the metrics directory."""
    local = {**settings, "store": str(tmp / "store"), "recipients_file": [str(recipients)], "kubeconfig": str(kubeconfig),
             "metrics_file": str(tmp / f"metrics-{node}" / "kubedr_snapshot.prom"), "work_dir": str(tmp),
             "root": str(tmp / f"root-{node}"), "endpoints": endpoint}
    (tmp / f"metrics-{node}").mkdir()
    path = tmp / f"config-{node}.yaml"
    path.write_text(yaml.safe_dump({"snapshot": local}))
    return path


def clear_of_a_period_boundary(period: float, margin: float = 20.0) -> None:
    """Start the three saves well inside one period, so they name the same set whatever the wall clock says."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.5)


def test_one_pod_per_control_plane_node_and_their_runs_write_one_complete_set(emulator: Any, kubectl: str,
                                                                              tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubectl_apply(kubectl, kubeconfig, [{"apiVersion": "v1", "kind": "Node", **n} for n in NODES] + [{
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": "kind: ClusterConfiguration\nclusterName: primary\n"}}])
    docs = render(kubectl, "primary")
    kubectl_apply(kubectl, kubeconfig, docs)

    pods = wait_until(lambda: len(snapshot_pods(emulator)) == 3 and snapshot_pods(emulator), timeout=30,
                      what="the DaemonSet's Pods")
    assert sorted(p["spec"]["nodeName"] for p in pods) == CONTROL_PLANE  # type: ignore[union-attr]
    ds = wait_until(lambda: (d := emulator.store.get("apps/v1", "DaemonSet", "kubedr-snapshot", "kubedr-system"))
                    .get("status", {}).get("currentNumberScheduled") == 3 and d, timeout=10, what="the DaemonSet's status")
    assert ds["status"]["desiredNumberScheduled"] == 3  # type: ignore[index]

    config_map = by_kind(docs, "ConfigMap")
    settings = yaml.safe_load(next(c["data"]["config.yaml"] for c in config_map.values() if "config.yaml" in c.get(
        "data", {})))["snapshot"]
    keys = make_age_keys(tmp_path / "age.txt")
    (tmp_path / "recipients.txt").write_text(keys.recipient + "\n")
    members = start_etcd_cluster(tmp_path, CONTROL_PLANE)
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        members[0].ctl("put", "/registry/configmaps/shop/a", "1")
        by_node = dict(zip(CONTROL_PLANE, members, strict=True))
        (container,) = pods[0]["spec"]["containers"]  # type: ignore[index]
        args = container["args"]
        assert args[1:3] == ["snapshot", "save"] and args[args.index("--every") + 1] == "30m"
        clear_of_a_period_boundary(30 * 60)
        for pod in pods:  # type: ignore[union-attr]
            node = pod["spec"]["nodeName"]
            make_node_root(tmp_path / f"root-{node}", node, "127.0.0.1")
            env = {**os.environ, "NODE_NAME": node, "KUBEDR_CONFIG": str(node_config(
                settings, tmp_path, kubeconfig, tmp_path / "recipients.txt", node, by_node[node].client_url))}
            procs[node] = subprocess.Popen([sys.executable, "-m", "kubedr", *args], env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def complete() -> bool:
            found = listed(str(tmp_path / "store"), "primary")
            return len(found) == 1 and found[0]["present"] == CONTROL_PLANE

        wait_until(complete, timeout=90, interval=0.5, what="one complete set")
        for node, proc in procs.items():  # daemons: waiting for the next period, they stop at once
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=5)
            assert proc.returncode == 0, (node, err)
    finally:
        for proc in procs.values():
            stop_process(proc)
        for e in members:
            e.stop()
    [m] = listed(str(tmp_path / "store"), "primary")
    assert m["expected_nodes"] == CONTROL_PLANE and m["missing"] == [] and m["node"] in CONTROL_PLANE
    assert m["facts"]["control_plane_nodes"] == CONTROL_PLANE and m["facts"]["worker_nodes"] == ["w-1"]
    started = datetime.strptime(m["id"], "%Y%m%dT%H%M%S.000Z").replace(tzinfo=UTC).timestamp()
    assert started % 1800 == 0 and time.time() - started < 1800  # the period's start, shared by all three
    for node in CONTROL_PLANE:
        assert (tmp_path / f"metrics-{node}" / "kubedr_snapshot.prom").is_file()
