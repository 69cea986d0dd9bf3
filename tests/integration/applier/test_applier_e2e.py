"""Exporter on the primary + applier on the secondary, as real processes, through a bare Git remote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_until
from tests.integration.applier.conftest import configmap, deployment, live, namespace, status_of


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def kubedr(procs: list[subprocess.Popen], log: Path, *args: str) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - the process owns it
    p = subprocess.Popen([sys.executable, "-m", "kubedr", *args], stdout=fh, stderr=subprocess.STDOUT,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    procs.append(p)
    return p


def test_exporter_and_applier_converge_mirror_deletes_and_survive_sigkill(
        primary: Any, secondary: Any, git_remote: Path, tmp_path: Path, procs: list[subprocess.Popen]) -> None:
    api = primary.api
    api.create(namespace("shop"))
    for i in range(10):
        api.create(configmap(f"cm-{i}"))
    api.create(deployment())
    kubedr(procs, tmp_path / "export.log", "export", "--kubeconfig", primary.kubeconfig_path,
           "--namespaces", "shop", "--repo", str(git_remote), "--workdir", str(tmp_path / "export-work"))
    port = free_port()
    apply_args = ("apply", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(git_remote),
                  "--interval", "200ms", "--prune", "--metrics-listen", f"127.0.0.1:{port}")
    applier = kubedr(procs, tmp_path / "apply.log", *apply_args)

    def log_tail() -> str:
        return (tmp_path / "apply.log").read_text()[-2000:] + (tmp_path / "export.log").read_text()[-2000:]

    wait_until(lambda: live(secondary, "v1", "ConfigMap", "cm-9", "shop"), timeout=30, what="initial mirror")
    wait_until(lambda: live(secondary, "apps/v1", "Deployment", "web", "shop"), timeout=10, what="deployment")
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 0

    api.update({**configmap("cm-1", k="updated"),
                "metadata": {**api.get("v1", "ConfigMap", "cm-1", "shop")["metadata"]}})
    api.delete("v1", "ConfigMap", "cm-2", "shop")
    wait_until(lambda: (live(secondary, "v1", "ConfigMap", "cm-1", "shop") or {}).get("data") == {"k": "updated"},
               timeout=15, what=f"update mirrored\n{log_tail()}")
    wait_until(lambda: live(secondary, "v1", "ConfigMap", "cm-2", "shop") is None, timeout=15,
               what=f"delete mirrored\n{log_tail()}")

    applier.send_signal(signal.SIGKILL)
    applier.wait(10)
    api.create(configmap("while-down"))
    api.delete("v1", "ConfigMap", "cm-3", "shop")
    kubedr(procs, tmp_path / "apply.log", *apply_args)
    wait_until(lambda: live(secondary, "v1", "ConfigMap", "while-down", "shop"), timeout=30,
               what=f"converged after SIGKILL\n{log_tail()}")
    wait_until(lambda: live(secondary, "v1", "ConfigMap", "cm-3", "shop") is None, timeout=15,
               what="delete while down mirrored")
    wait_until(lambda: status_of(secondary).get("failures") == [] and status_of(secondary)["fullyAppliedCommit"],
               timeout=10, what="status recorded")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "kubedr_applier_objects_total" in metrics and 'action="apply"' in metrics
    assert "kubedr_applier_replication_lag_seconds" in metrics


def test_killed_mid_round_restart_converges(secondary: Any, git_remote: Path, tmp_path: Path,
                                            procs: list[subprocess.Popen]) -> None:
    from tests.integration.applier.conftest import Repo, inventory_of

    repo = Repo(git_remote, tmp_path / "work")
    repo.put(namespace("shop"))
    for i in range(400):
        repo.put(configmap(f"cm-{i}"))
    head = repo.commit("400 objects")
    args = ("apply", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(git_remote), "--concurrency", "2")
    first = kubedr(procs, tmp_path / "apply.log", *args, "--once")

    def applied() -> int:
        return len(secondary.api.list("v1", "ConfigMap", "shop", label_selector="kubedr.io/managed=true"))

    wait_until(lambda: applied() >= 20, timeout=30, what="round under way")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert applied() < 400, "the round finished before the kill; the test proves nothing"
    assert status_of(secondary).get("fullyAppliedCommit", "") != head

    assert kubedr(procs, tmp_path / "apply.log", *args, "--once").wait(60) == 0
    assert applied() == 400
    assert status_of(secondary)["fullyAppliedCommit"] == head
    inventory = inventory_of(secondary)
    assert len(inventory.refs) == 401
