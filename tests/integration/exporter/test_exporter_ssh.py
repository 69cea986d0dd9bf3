"""An SSH remote behind a real sshd: the exporter pushes and the applier fetches with a pinned host key, as
the manifests configure them; a host presenting another key is refused; each process keeps one connection, made
again when it drops."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from exporter_harness import export_args, remote_files

from tests import gitssh
from tests.conftest import run_git, wait_until


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


def test_one_ssh_connection_per_process_survives_a_dropped_connection_without_losing_or_duplicating_a_commit(
        primary, ssh_host, tmp_path: Path) -> None:
    bare = tmp_path / "config.git"
    run_git("init", "--bare", "-q", "-b", "main", str(bare))
    url = ssh_host.url(bare)
    sockets = Path(tempfile.mkdtemp(prefix="kt", dir="/tmp"))  # short: a socket path must fit 104 bytes
    env = {**ssh_host.client_env(), "TMPDIR": str(sockets), "PYTHONPATH": os.pathsep.join(sys.path)}
    clone = tmp_path / "clone"
    with (tmp_path / "export.log").open("ab") as log:
        exporter = subprocess.Popen([sys.executable, "-m", "kubedr", *export_args(
            primary, url, clone, "--namespaces", "shop", "--push-backoff-max", "0.5s")], env=env,
            stdout=subprocess.DEVNULL, stderr=log)
    with (tmp_path / "apply.log").open("ab") as log:
        applier = subprocess.Popen([sys.executable, "-m", "kubedr", "apply", "--kubeconfig",
                                    str(primary.kubeconfig_path), "--repo", url, "--interval", "200ms", "--workdir",
                                    str(tmp_path / "applier"), "--namespace-map", "shop=shop-dr"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)

    def change(names: range) -> None:
        for i in names:
            primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"n": str(i)},
                                "metadata": {"name": f"cm-{i}", "namespace": "shop"}})

    def applied(names: range) -> bool:
        have = {c["metadata"]["name"] for c in primary.api.list("v1", "ConfigMap", "shop-dr")}
        return {f"cm-{i}" for i in names} <= have

    try:
        change(range(0, 5))
        wait_until(lambda: applied(range(0, 5)), timeout=60, what="the first changes applied over SSH")
        before = ssh_host.handshakes()
        assert before <= 3, "one connection per process (exporter, applier; a race of two first commands: one more)"
        assert len(gitssh.masters(sockets)) == before

        ssh_host.drop()  # every connection is gone; the exporter commits on and retries its pushes
        change(range(5, 10))
        wait_until(lambda: "push to" in (tmp_path / "export.log").read_text(), timeout=30,
                   what="a push failing while sshd is down")
        ssh_host.start()
        wait_until(lambda: applied(range(0, 10)), timeout=60, what="the changes made while sshd was down")
        again = ssh_host.handshakes()
        assert before < again <= before + 3, "each process reconnected once"

        change(range(10, 20))
        wait_until(lambda: applied(range(0, 20)), timeout=60, what="the changes after the reconnection")
        assert ssh_host.handshakes() == again  # the new connections carry everything from now on

        for i in range(20):
            added = run_git("log", "--format=%H", "--diff-filter=A", "main", "--", f"shop/ConfigMap/cm-{i}.yaml",
                            cwd=bare).split()
            assert len(added) == 1, f"cm-{i} added by {len(added)} commits"
        assert run_git("rev-parse", "main", cwd=bare) == run_git("--git-dir", str(clone / ".git"), "rev-parse", "main")
    finally:
        for proc in (exporter, applier):
            proc.terminate()
            proc.wait(20)
    wait_until(lambda: not gitssh.masters(sockets), timeout=10, what="the connections closed when the daemons stopped")
    assert not any(sockets.iterdir()), "each process removed its socket directory"
    sockets.rmdir()


def test_status_reads_an_ssh_remote_through_one_connection_and_closes_it(primary, ssh_host, tmp_path: Path) -> None:
    bare = tmp_path / "config.git"
    run_git("init", "--bare", "-q", "-b", "main", str(bare))
    sockets = Path(tempfile.mkdtemp(prefix="kt", dir="/tmp"))
    env = {**ssh_host.client_env(), "TMPDIR": str(sockets), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = _kubedr("init", "--repo", ssh_host.url(bare), "--writer", "prod", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    before = ssh_host.handshakes()
    shown = _kubedr("status", "--repo", ssh_host.url(bare), "-o", "json", env=env)
    assert shown.returncode in (0, 1) and '"writer"' in shown.stdout, shown.stderr[-2000:]
    assert ssh_host.handshakes() == before + 1  # its fetches shared one connection
    assert not gitssh.masters(sockets) and not any(sockets.iterdir())  # closed at exit
    sockets.rmdir()
