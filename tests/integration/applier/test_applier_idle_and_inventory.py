"""An idle applier sleeps between polls; gone objects never count against the prune guard; a fresh secondary
with --standby/--active gets its first commit applied once."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from idle import counting_git, seed_repo

from kubedr.applier.cli import add_arguments, apply_options, engine_for
from kubedr.applier.inventory import Inventory
from kubedr.applier.round import loop
from kubedr.applier.sources import Records, derive
from kubedr.contract import ObjectRef
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster
from tests.conftest import wait_until
from tests.integration.applier.conftest import Repo, apply, configmap, live, namespace

INTERVAL = 2.0
WINDOW = 5.0


def _engine_for(secondary: Any, repo: Path, *flags: str) -> Any:
    parser = argparse.ArgumentParser()
    add_arguments("apply", parser)
    args = parser.parse_args(["--repo", str(repo), *flags])
    return engine_for(apply_options(args, str(repo), secondary.kubeconfig_path))


def _bursts(times: list[float], gap: float = 0.5) -> list[list[float]]:
    """Group instants into bursts separated by more than `gap` seconds."""
    out: list[list[float]] = []
    for t in sorted(times):
        if out and t - out[-1][-1] <= gap:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def test_an_idle_applier_on_a_local_repo_sleeps_between_polls(secondary: Any, git_remote: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seed_repo(git_remote, tmp_path / "seed")
    log = tmp_path / "git-calls.log"
    monkeypatch.setenv("PATH", counting_git(tmp_path / "bin", log, timestamps=True))
    engine = _engine_for(secondary, git_remote)
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(engine, INTERVAL, False, stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: live(secondary, "v1", "ConfigMap", "c", "idle"), timeout=20, what="first round")
        wait_until(lambda: engine.caught_up and engine.last_report is not None, what="first round recorded")
        start = time.time()
        mono_start = time.monotonic()
        stop.wait(WINDOW)  # the window in which an idle applier may only poll
        gits = [float(line.split()[0]) - start for line in log.read_text().splitlines()
                if float(line.split()[0]) >= start]
        requests = [t - mono_start for t, _, _ in secondary.requests if t >= mono_start]
    finally:
        stop.set()
        thread.join(10)
        engine.close()
    polls = int(WINDOW / INTERVAL) + 1
    for what, times in (("git processes", gits), ("API requests", requests)):
        bursts = _bursts(times)
        assert times, f"no {what} at all: the applier did not poll"
        assert len(bursts) <= polls, f"{what} in {len(bursts)} bursts over {WINDOW}s, polls every {INTERVAL}s"
        assert all(b[-1] - b[0] < INTERVAL / 2 for b in bursts), f"{what} keep coming between polls"
        assert all(len(b) <= 6 for b in bursts), f"{what}: {[len(b) for b in bursts]} per poll"
        gaps = [b[0] - a[-1] for a, b in zip(bursts, bursts[1:], strict=False)]
        assert all(g > INTERVAL * 0.7 for g in gaps), f"{what}: gaps {gaps} shorter than the interval"


def test_a_commit_wakes_the_idle_applier_at_once(secondary: Any, git_remote: Path, repo: Repo) -> None:
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    repo.commit("one")
    engine = _engine_for(secondary, git_remote)
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(engine, 30.0, False, stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: live(secondary, "v1", "ConfigMap", "a", "shop"), timeout=20, what="first round")
        repo.put(configmap("b"))
        repo.commit("two")
        wait_until(lambda: live(secondary, "v1", "ConfigMap", "b", "shop"), timeout=10,
                   what="woken by the pushed ref, well before the 30 s poll")
    finally:
        stop.set()
        thread.join(10)
        engine.close()


GHOSTS = 3000


def test_objects_gone_out_of_band_leave_the_inventory_and_never_trip_the_guard(
        secondary: Any, repo: Repo, capfd: pytest.CaptureFixture[str]) -> None:
    repo.put(namespace("shop"))
    for name in ("a", "b", *(f"keep-{i}" for i in range(8))):
        repo.put(configmap(name))
    repo.commit("shop")
    assert apply(secondary, repo, "--prune") == 0
    # what a `kubedr sync` into this secondary left, then a namespace deleted by hand: entries, no objects
    cluster = Cluster(api_client(secondary.kubeconfig_path))
    inventory = Inventory(cluster, Records(derive(str(repo.remote), "main"))).load()
    ghosts = {ObjectRef("", "ConfigMap", "removed", f"cm-{i}") for i in range(GHOSTS)}
    inventory.refs |= ghosts | {ObjectRef("", "Namespace", "", "removed")}
    inventory.save()

    repo.remove(configmap("b"))
    repo.commit("b goes")
    capfd.readouterr()
    assert apply(secondary, repo, "--prune") == 0
    log = capfd.readouterr().err.splitlines()  # the CLI logs to stderr
    assert live(secondary, "v1", "ConfigMap", "b", "shop") is None, "the real delete still happens"
    assert live(secondary, "v1", "ConfigMap", "a", "shop") is not None
    assert len([ln for ln in log if "already gone from the cluster; forgetting it" in ln]) == GHOSTS + 1
    assert not [ln for ln in log if "prune refused" in ln]
    assert Inventory(cluster, Records(derive(str(repo.remote), "main"))).load().refs == {ObjectRef("", "Namespace", "", "shop"),
                                              ObjectRef("", "ConfigMap", "shop", "a")} | {
        ObjectRef("", "ConfigMap", "shop", f"keep-{i}") for i in range(8)}


def test_the_guard_still_counts_objects_that_exist(secondary: Any, repo: Repo) -> None:
    repo.put(namespace("shop"))
    for i in range(60):
        repo.put(configmap(f"c{i}"))
    repo.commit("many")
    assert apply(secondary, repo, "--prune") == 0
    for i in range(60):
        repo.remove(configmap(f"c{i}"))
    repo.commit("all go")
    assert apply(secondary, repo, "--prune") == 1
    assert live(secondary, "v1", "ConfigMap", "c0", "shop") is not None


@pytest.mark.parametrize("mode", ["--standby", "--active"])
def test_first_commit_on_a_fresh_secondary_is_applied_once(mode: str, secondary: Any, repo: Repo,
                                                           git_remote: Path) -> None:
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    repo.commit("one")
    engine = _engine_for(secondary, git_remote, mode)
    try:
        first = engine.step()
        assert first is not None and first.applied == 2
        assert engine.step() is None, "the same commit was applied a second time"
    finally:
        engine.close()


def test_prune_never_deletes_what_the_control_plane_makes_for_itself(secondary: Any, repo: Repo,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """A bootstrap ClusterRole an older exporter put in the repo leaves it: the secondary keeps its own."""
    view = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "view", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}
    repo.put(namespace("shop"))
    for i in range(8):
        repo.put(configmap(f"c{i}"))
    repo.put(view)
    repo.commit("with view")
    assert apply(secondary, repo, "--prune") == 0
    repo.remove(view)
    repo.commit("view leaves the repo")
    capfd.readouterr()
    assert apply(secondary, repo, "--prune") == 0
    err = capfd.readouterr().err
    assert "not deleting rbac.authorization.k8s.io/ClusterRole view: the cluster's control plane makes it" in err
    assert live(secondary, "rbac.authorization.k8s.io/v1", "ClusterRole", "view") is not None
    cluster = Cluster(api_client(secondary.kubeconfig_path))
    assert ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "view") not in Inventory(cluster, Records(derive(str(repo.remote), "main"))).load().refs


def test_gone_entries_leave_the_inventory_even_when_the_guard_refuses_but_not_in_a_dry_run(
        secondary: Any, repo: Repo) -> None:
    repo.put(namespace("shop"))
    for i in range(4):
        repo.put(configmap(f"c{i}"))
    repo.commit("shop")
    assert apply(secondary, repo, "--prune") == 0
    cluster = Cluster(api_client(secondary.kubeconfig_path))
    inventory = Inventory(cluster, Records(derive(str(repo.remote), "main"))).load()
    ghosts = {ObjectRef("", "ConfigMap", "removed", f"cm-{i}") for i in range(20)}
    inventory.refs |= ghosts
    inventory.save()
    for i in range(4):
        repo.remove(configmap(f"c{i}"))
    repo.commit("all four go: more than a quarter of what exists")

    assert apply(secondary, repo, "--prune", "--dry-run") == 1
    assert ghosts <= Inventory(cluster, Records(derive(str(repo.remote), "main"))).load().refs, "a dry run writes nothing, not even the inventory"
    assert apply(secondary, repo, "--prune") == 1
    left = Inventory(cluster, Records(derive(str(repo.remote), "main"))).load().refs
    assert not ghosts & left and ObjectRef("", "ConfigMap", "shop", "c0") in left
    assert live(secondary, "v1", "ConfigMap", "c0", "shop") is not None
