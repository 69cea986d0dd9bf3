"""Two `kubedr export --leader-elect` replicas: one commits; kill -9 it and the spare carries on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from exporter_harness import export_args, remote_files

from kubedr.apierrors import NotFound
from tests.conftest import wait_until


def _replica(primary, remote: Path, tmp_path: Path, name: str) -> subprocess.Popen:
    argv = export_args(primary, remote, tmp_path / name, "--namespaces", "shop", "--leader-elect",
                       "--leader-election-namespace", "shop", "--leader-election-identity", name,
                       "--leader-election-lease-duration", "2", "--leader-election-renew-deadline", "1.5",
                       "--leader-election-retry-period", "0.2", "--push-backoff-max", "0.5s")
    return subprocess.Popen([sys.executable, "-m", "kubedr", *argv], stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / f"{name}.log").open("wb"), start_new_session=True)


def _holder(api) -> str:
    try:
        return api.get("coordination.k8s.io/v1", "Lease", "kubedr-exporter", "shop")["spec"].get("holderIdentity", "")
    except NotFound:  # not created yet
        return ""


def test_spare_takes_over_after_the_leader_is_killed(primary, git_remote: Path, tmp_path: Path) -> None:
    api = primary.api
    replicas = {name: _replica(primary, git_remote, tmp_path, name) for name in ("one", "two")}
    try:
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}})
        wait_until(lambda: "shop/ConfigMap/a.yaml" in remote_files(git_remote), timeout=30, what="leader exports")
        leader = _holder(api)
        assert leader in replicas
        os.killpg(replicas[leader].pid, signal.SIGKILL)
        replicas[leader].wait(10)
        spare = next(n for n in replicas if n != leader)
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "shop"}})
        wait_until(lambda: "shop/ConfigMap/b.yaml" in remote_files(git_remote), timeout=30, what="spare exports")
        assert _holder(api) == spare
    finally:
        for proc in replicas.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(20) == 0
