"""Standalone Jobs on a standby secondary: applied suspended, started only by a switchover."""

from __future__ import annotations

from typing import Any

from kubedr.commands.cli import main
from tests.integration.applier.conftest import Repo, apply, live, namespace, status_of


def job(name: str, ns: str = "shop", suspend: bool | None = None, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "m", "image": "migrate:1"}]}}}
    if suspend is not None:
        spec["suspend"] = suspend
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def suspended(emu: Any, name: str, ns: str = "shop") -> bool | None:
    obj = live(emu, "batch/v1", "Job", name, ns)
    assert obj is not None, f"Job {ns}/{name} missing"
    return obj["spec"].get("suspend")


def test_standalone_jobs_suspended_in_standby_and_restored_by_switchover(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), namespace("other"), job("migrate"), job("paused", suspend=True),
              job("report", ns="other", suspend=False)):
        repo.put(o)
    repo.commit("jobs")
    assert apply(secondary, repo) == 0
    assert suspended(secondary, "migrate") is True
    assert suspended(secondary, "paused") is True
    assert suspended(secondary, "report", "other") is True
    ann = live(secondary, "batch/v1", "Job", "migrate", "shop")["metadata"]["annotations"]
    assert ann["kubedr.io/primary-suspend"] == "false"

    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path, "--namespaces", "shop"]) == 0
    assert suspended(secondary, "migrate") is False  # it was running on the primary: it starts now
    assert suspended(secondary, "paused") is True  # the primary had it suspended
    assert suspended(secondary, "report", "other") is True  # not switched over yet

    repo.put(job("migrate", team="db"))
    repo.put(job("report", ns="other", suspend=False, team="ops"))
    repo.commit("labels")
    assert apply(secondary, repo) == 0  # later commits respect the active namespace
    assert suspended(secondary, "migrate") is False
    assert suspended(secondary, "report", "other") is True
    assert status_of(secondary)["failures"] == []

    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path]) == 0
    assert suspended(secondary, "report", "other") is False


def test_job_that_left_the_repo_is_never_started_by_a_switchover(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), job("migrate"), job("other-migration")):
        repo.put(o)
    repo.commit("jobs")
    assert apply(secondary, repo) == 0
    repo.remove(job("migrate"))  # the exporter drops a Job's file when it finished on the primary
    repo.commit("migrate finished on the primary")
    assert apply(secondary, repo) == 0  # no prune: the Job stays on the secondary
    assert live(secondary, "batch/v1", "Job", "migrate", "shop")["metadata"]["annotations"][
        "kubedr.io/primary-suspend"] == "true"
    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path]) == 0
    assert suspended(secondary, "migrate") is True  # it ran on the primary already: never again here
    assert suspended(secondary, "other-migration") is False
