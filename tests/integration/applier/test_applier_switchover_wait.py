"""`kubedr switchover --wait`: the standby serves when every workload is Available. Each Pod of the emulated node
starts half a second after it is created (pod_start_delay), so a switchover that did not wait for readiness
would return before any Deployment is Available; with an image the node cannot pull, it names the Deployment
and the reason, and exits 1 after --timeout."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr.commands.cli import main
from tests.integration.applier.conftest import Repo, apply, deployment, live, namespace, status_of
from tests.integration.applier.test_applier_standby_holds import crd

START_DELAY = 0.5


@pytest.fixture
def slow_secondary(tmp_path: Path) -> Iterator[Any]:
    from kubedr.emulator.server import Emulator

    emu = Emulator(pod_start_delay=START_DELAY).start()
    emu.kubeconfig_path = str(emu.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    yield emu
    emu.stop()


def statefulset(name: str, replicas: int = 2) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": "postgres:16"}]}}}}


def standby(repo: Repo, secondary: Any, broken: bool = False) -> None:
    repo.put(namespace("shop"))
    for i in range(30):
        repo.put(deployment(f"web-{i}", replicas=2))
    if broken:
        repo.put(deployment("broken", replicas=1, image="registry.invalid/shop/web:1.0"))
    repo.put(statefulset("db"))
    repo.put(crd("example.com", "Widget", scale=True))
    repo.put({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"},
              "spec": {"replicas": 3}})
    repo.commit("a standby of 30 Deployments, a StatefulSet and a held custom resource")
    assert apply(secondary, repo) == 0
    assert live(secondary, "example.com/v1", "Widget", "w", "shop")["spec"]["replicas"] == 0


def test_switchover_waits_until_every_workload_is_available(slow_secondary: Any, repo: Repo,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    standby(repo, slow_secondary)
    capsys.readouterr()
    started = time.monotonic()
    assert main(["switchover", "--kubeconfig", slow_secondary.kubeconfig_path, "--timeout", "60s"]) == 0
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert "switchover: 32 objects brought up (active); 0 failed" in out
    assert "standby serves: 32 workloads Available; RTO " in out
    rto = status_of(slow_secondary)["switchover"]["rtoSeconds"]
    assert START_DELAY <= rto <= took
    assert f"RTO {rto:.1f} s" in out
    assert "waiting for the standby to serve: " in err
    for i in range(30):  # Available when it returned: not merely requested
        assert live(slow_secondary, "apps/v1", "Deployment", f"web-{i}", "shop")["status"]["availableReplicas"] == 2
    assert live(slow_secondary, "apps/v1", "StatefulSet", "db", "shop")["status"]["readyReplicas"] == 2
    assert live(slow_secondary, "example.com/v1", "Widget", "w", "shop")["spec"]["replicas"] == 3
    main(["status", "--secondary-kubeconfig", slow_secondary.kubeconfig_path])
    shown = " ".join(capsys.readouterr().out.split())
    assert re.search(rf"last switchover \d+s ago: RTO {rto:.1f} s \(32 workloads Available\)", shown)


def test_switchover_names_what_is_not_available_and_why(slow_secondary: Any, repo: Repo,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    standby(repo, slow_secondary, broken=True)
    capsys.readouterr()
    started = time.monotonic()
    assert main(["switchover", "--kubeconfig", slow_secondary.kubeconfig_path, "--timeout", "3s"]) == 1
    assert time.monotonic() - started >= 3
    out = capsys.readouterr().out
    assert "NOT serving after --timeout 3 s: 1 of 33 workloads not Available" in out
    (row,) = [line for line in out.splitlines() if "shop/broken" in line]
    assert "apps/Deployment shop/broken" in row and "Available: 0/1" in row
    assert 'image pull failure: Back-off pulling image "registry.invalid/shop/web:1.0"' in row
    record = status_of(slow_secondary)["switchover"]
    assert record["rtoSeconds"] is None and record["notAvailableCount"] == 1
    assert record["notAvailable"][0].startswith("apps/Deployment shop/broken: Available: 0/1; image pull failure")
    main(["status", "--secondary-kubeconfig", slow_secondary.kubeconfig_path])
    shown = " ".join(capsys.readouterr().out.split())
    assert "1 of 33 workloads not Available at its timeout (first: apps/Deployment shop/broken: " in shown


def test_no_wait_returns_once_the_workloads_are_requested(slow_secondary: Any, repo: Repo,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    standby(repo, slow_secondary)
    assert main(["switchover", "--kubeconfig", slow_secondary.kubeconfig_path, "--no-wait"]) == 0
    assert "RTO" not in capsys.readouterr().out
    assert live(slow_secondary, "apps/v1", "Deployment", "web-0", "shop")["spec"]["replicas"] == 2
    assert "switchover" not in status_of(slow_secondary) or not status_of(slow_secondary)["switchover"]
