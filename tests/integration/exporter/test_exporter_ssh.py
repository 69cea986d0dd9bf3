"""An SSH remote behind a real sshd: the exporter pushes and the applier fetches with a pinned host key, as
the manifests configure them; a host presenting another key is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from exporter_harness import export_args, remote_files

from tests import gitssh
from tests.conftest import run_git


@pytest.fixture
def ssh_host(tmp_path: Path):
    why = gitssh.available()
    if why:
        pytest.fail(why)
    host = gitssh.GitSSH(tmp_path).start()
    yield host
    host.stop()


def _kubedr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubedr", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_export_and_apply_over_ssh_with_a_pinned_host_key(primary, ssh_host, tmp_path: Path) -> None:
    bare = tmp_path / "config.git"
    run_git("init", "--bare", "-q", "-b", "main", str(bare))
    primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": "a"},
                        "metadata": {"name": "settings", "namespace": "shop"}})
    env = ssh_host.client_env()
    done = _kubedr(*export_args(primary, ssh_host.url(bare), tmp_path / "clone", "--namespaces", "shop", "--once"),
                   env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "shop/ConfigMap/settings.yaml" in remote_files(bare)

    applied = _kubedr("apply", "--once", "--kubeconfig", str(primary.kubeconfig_path), "--repo", ssh_host.url(bare),
                      "--workdir", str(tmp_path / "applier"), "--namespace-map", "shop=shop-dr", env=env)
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert primary.api.get("v1", "ConfigMap", "settings", "shop-dr")["data"] == {"mode": "a"}

    impostor = ssh_host.client_env(known_hosts=ssh_host.impostor_known_hosts())
    refused = _kubedr(*export_args(primary, ssh_host.url(bare), tmp_path / "clone2", "--namespaces", "shop",
                                   "--once"), env=impostor)
    assert refused.returncode == 1
    assert "Host key verification failed" in refused.stderr
