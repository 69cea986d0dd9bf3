"""Another repo than the one a source was last applied from: the operator re-pointing it (the same source name, the
default one its first repo derived or one given with --source). One line says so, the new tree is applied whole,
what only the old repo had is pruned within the guard, and it never loops on the old commit; `kubedr sync`, whose
repo is new on every run, works every time. Real `kubedr` processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubedr.applier.sources import derive
from tests.conftest import ROOT, run_git
from tests.integration.applier.conftest import Repo, cli_env, configmap, live, namespace, status_of


def kubedr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubedr", *args], capture_output=True, text=True, timeout=120,
                          env=cli_env(), cwd=cwd)


def apply_once(secondary: Any, repo: Repo | str, *extra: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return kubedr("apply", "--once", "--no-validate", "--kubeconfig", secondary.kubeconfig_path, "--repo",
                  str(getattr(repo, "remote", repo)), "--workdir", str(Path(secondary.kubeconfig_path).parent / "work"),
                  *extra, cwd=cwd)


def new_repo(tmp_path: Path, name: str) -> Repo:
    remote = tmp_path / f"{name}.git"
    run_git("init", "--bare", "-q", "-b", "main", str(remote))
    return Repo(remote, tmp_path / f"{name}-work")


def cm(secondary: Any, name: str) -> Any:
    found = live(secondary, "v1", "ConfigMap", name, "shop")
    return found and found["data"]


def source_of(x: Repo, named: str | None) -> tuple[str, ...]:
    """--source for the re-pointed runs: the name given, or the default one the first repo derived."""
    return ("--source", named or derive(str(x.remote), "main"))


@pytest.mark.parametrize("named", [None, "shop"], ids=["default-source", "named-source"])
def test_a_re_pointed_applier_applies_the_new_tree_whole_and_says_so(secondary: Any, tmp_path: Path,
                                                                      named: str | None) -> None:
    x, y = new_repo(tmp_path, "x"), new_repo(tmp_path, "y")
    for repo, color in ((x, "x"), (y, "y")):
        for obj in (namespace("shop"), configmap("settings", color=color), *(configmap(f"keep-{i}") for i in range(4))):
            repo.put(obj)
        repo.put(configmap(f"only-{color}"))
    old = x.commit("x")
    new = y.commit("y: unrelated history")
    assert apply_once(secondary, x, "--prune", *(("--source", named) if named else ())).returncode == 0

    run = apply_once(secondary, y, "--prune", *source_of(x, named))
    assert run.returncode == 0, run.stderr
    said = (f"re-pointed: the secondary was last applied from {x.remote} (main) at {old[:12]}; applying the whole "
            f"tree of {y.remote} (main) at {new[:12]}, pruning only within the guard")
    assert run.stderr.count(said) == 1, run.stderr
    assert "not a tree object" not in run.stderr
    assert cm(secondary, "settings") == {"color": "y"} and cm(secondary, "only-y")
    assert cm(secondary, "only-x") is None  # the old repo's own object left: 1 of 7, within the guard
    assert status_of(secondary)["commit"] == new

    again = apply_once(secondary, y, "--prune", *source_of(x, named))  # converged: no re-point, nothing to do
    assert again.returncode == 0 and "re-pointed" not in again.stderr and "round failed" not in again.stderr


def test_a_relative_repo_path_names_the_same_repo_from_anywhere(secondary: Any, tmp_path: Path) -> None:
    x = new_repo(tmp_path, "x")
    x.put(namespace("shop"))
    x.put(configmap("a"))
    x.commit("a")
    assert apply_once(secondary, "x.git", cwd=tmp_path).returncode == 0
    assert status_of(secondary)["repo"] == str(x.remote)
    x.put(configmap("b"))
    x.commit("b")
    run = apply_once(secondary, x, cwd=ROOT)
    assert run.returncode == 0 and "re-pointed" not in run.stderr, run.stderr
    assert cm(secondary, "b")


@pytest.mark.parametrize("named", [None, "shop"], ids=["default-source", "named-source"])
def test_a_re_point_prunes_only_within_the_guard_even_when_forced(secondary: Any, tmp_path: Path,
                                                                  named: str | None) -> None:
    x, y = new_repo(tmp_path, "x"), new_repo(tmp_path, "y")
    for obj in (namespace("shop"), *(configmap(f"x-{i}") for i in range(6))):
        x.put(obj)
    x.commit("x")
    for obj in (namespace("shop"), configmap("y-0")):
        y.put(obj)
    y.commit("y")
    assert apply_once(secondary, x, "--prune", *(("--source", named) if named else ())).returncode == 0

    run = apply_once(secondary, y, "--prune", "--force-prune", *source_of(x, named))
    assert run.returncode == 1
    assert "prune refused: would delete 6 of 8 objects" in run.stderr
    assert all(cm(secondary, f"x-{i}") for i in range(6)) and cm(secondary, "y-0")
    # the operator has seen it: forcing works from the next run on, which is no re-point
    forced = apply_once(secondary, y, "--prune", "--force-prune", *source_of(x, named))
    assert forced.returncode == 0, forced.stderr
    assert not any(cm(secondary, f"x-{i}") for i in range(6)) and cm(secondary, "y-0")


def test_sync_again_and_again_to_one_secondary(primary: Any, secondary: Any) -> None:
    primary.api.create(namespace("shop"))
    sync = ["sync", "--from-kubeconfig", primary.kubeconfig_path, "--to-kubeconfig", secondary.kubeconfig_path,
            "--namespaces", "shop", "--no-validate"]
    for i in range(3):
        primary.api.create(configmap(f"cm-{i}"))
        run = kubedr(*sync, cwd=ROOT if i == 2 else None)  # the last one where a new user is: the checkout
        assert run.returncode == 0, run.stderr
        assert all(cm(secondary, f"cm-{j}") for j in range(i + 1))
        assert "held: branch" not in run.stderr and "round failed" not in run.stderr
        if i:
            assert "kubedr sync: the secondary was last applied from " in run.stderr
    assert not status_of(secondary)["held"]
