"""snapshot save never hangs: a silent API server costs one timeout, a silent etcd ends the save with one line
within 30 s, and SIGTERM stops a save (or the --every daemon) waiting on etcd within 5 s, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from snapshot_harness import fake_kubeadm_root, listed

from tests.conftest import SilentServer, wait_until, write_kubeconfig

BOUND = 30.0


def save(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "kubedr", "snapshot", "save", *map(str, args)]


def run(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=BOUND * 3, env=dict(os.environ))
    return proc, time.monotonic() - started


def problems(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if " WARNING " in line or " ERROR " in line]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    fake_kubeadm_root(root)
    return root


def test_a_silent_api_server_costs_one_timeout_and_the_snapshot_is_kept(etcd_server, age_keys, node: Path,
                                                                        silent_server: SilentServer,
                                                                        tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "silent.kubeconfig", silent_server.url)
    etcd_server.ctl("put", "/registry/configmaps/shop/a", "1")
    proc, took = run(save("--store", tmp_path / "store", "--endpoints", etcd_server.client_url, "--root", node,
                          "-r", age_keys.recipient, "--kubeconfig", kubeconfig))
    assert proc.returncode == 0 and took < BOUND, (took, proc.stderr)
    assert [line.split(" WARNING ")[1] for line in problems(proc.stderr) if "API" in line] == [
        f"kubedr.snapshot: the API did not answer (API server {silent_server.url}: no answer within 15 s (GET "
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config)): kubeadm-config and node list not included"]
    assert len(listed(str(tmp_path / "store"))) == 1


@pytest.mark.parametrize("extra,says", [((), "no data from http://127.0.0.1:"),
                                        (("--set-window", "30m"), "etcdctl endpoint status http://127.0.0.1:")])
def test_a_silent_etcd_ends_the_save_with_one_line(extra: tuple[str, ...], says: str, age_keys, node: Path,
                                                   silent_server: SilentServer, tmp_path: Path) -> None:
    proc, took = run(save("--store", tmp_path / "store", "--endpoints", silent_server.url, "--root", node, "-r",
                          age_keys.recipient, "--no-cluster-info", "--work-dir", tmp_path, *extra))
    [line] = problems(proc.stderr)
    assert proc.returncode == 1 and took < BOUND and says in line, (took, proc.stderr)
    assert not (tmp_path / "store").exists() or listed(str(tmp_path / "store")) == []
    assert not list(tmp_path.glob("kubedr-snapshot-*"))  # its scratch space is gone too


@pytest.mark.parametrize("every,code", [(False, 1), (True, 0)])
def test_sigterm_stops_a_save_waiting_on_etcd_within_5_s(every: bool, code: int, age_keys, node: Path,
                                                         silent_server: SilentServer, tmp_path: Path) -> None:
    argv = save("--store", tmp_path / "store", "--endpoints", silent_server.url, "--root", node, "-r",
                age_keys.recipient, "--no-cluster-info", "--work-dir", tmp_path, *(["--every", "30m"] if every else []))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: silent_server.accepted, timeout=BOUND, what="etcdctl connected, waiting for etcd")
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=5)
        assert time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    [line] = problems(err)
    assert proc.returncode == code and line.endswith(": stopped"), err
    assert not list(tmp_path.glob("kubedr-snapshot-*"))
