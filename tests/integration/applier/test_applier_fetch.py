"""Fetch: a git:// remote mirrored and polled with ls-remote; a local checkout followed with watchdog."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kubedr.applier.fetch import Change, Source
from tests.conftest import wait_until
from tests.integration.applier.conftest import Repo, apply, configmap, live, namespace, status_of


def test_remote_url_mirrored_diffed_tags_and_times(git_daemon: Any, tmp_path: Path) -> None:
    bare, url = git_daemon("config.git")
    repo = Repo(bare, tmp_path / "work")
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    first = repo.commit("one", date="2026-03-01T00:00:00Z")
    subprocess.run(["git", "tag", "v1"], cwd=repo.work, check=True)
    subprocess.run(["git", "push", "-q", "origin", "v1"], cwd=repo.work, check=True)
    repo.remove(configmap("a"))
    repo.put(configmap("b"))
    second = repo.commit("two", date="2026-03-02T00:00:00Z")

    src = Source(url, "main", str(tmp_path / "mirror"))
    assert src.head() == second
    assert src.head() == second  # unchanged: one ls-remote, no fetch
    assert set(src.tree(second)) == {"_cluster/Namespace/shop.yaml", "shop/ConfigMap/b.yaml"}
    assert sorted(src.changes(first, second), key=lambda c: c.path) == [
        Change("D", "shop/ConfigMap/a.yaml"), Change("A", "shop/ConfigMap/b.yaml")]
    assert src.resolve("v1") == first
    assert src.at("2026-03-01T12:00:00Z") == first
    assert src.changes("0" * 40, second) is None
    [blob] = src.read_blobs([src.tree(second)["shop/ConfigMap/b.yaml"]])
    assert b"name: b" in blob


def test_applier_follows_a_local_checkout_and_wakes_on_change(secondary: Any, git_remote: Path,
                                                              tmp_path: Path) -> None:
    """A git-sync style checkout: the applier reads it in place and watchdog wakes it on a new commit."""
    repo = Repo(git_remote, tmp_path / "checkout")
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    repo.commit("one")
    import argparse

    from kubedr.applier.cli import add_arguments, apply_options, engine_for
    from kubedr.applier.round import loop

    parser = argparse.ArgumentParser()
    add_arguments("apply", parser)
    args = parser.parse_args(["--repo", str(repo.work)])
    engine = engine_for(apply_options(args, str(repo.work), secondary.kubeconfig_path))
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(engine, 30.0, False, stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: live(secondary, "v1", "ConfigMap", "a", "shop"), what="first round")
        started = time.monotonic()
        repo.put(configmap("b"))
        repo.commit("two")
        wait_until(lambda: live(secondary, "v1", "ConfigMap", "b", "shop"), timeout=10, what="woken by watchdog")
        assert time.monotonic() - started < 10  # well before the 30 s poll interval
    finally:
        stop.set()
        engine.source._changed.set()
        thread.join(10)
        engine.close()


def test_server_rejection_is_reported_and_skipped(secondary: Any, repo: Repo) -> None:
    """What the schema cannot see (a name the API server refuses) is the server's 422, reported by path."""
    repo.put(namespace("shop"))
    repo.put(configmap("good"))
    path = repo.put(configmap("Not_A_Valid_Name"))
    repo.commit("bad name")
    assert apply(secondary, repo) == 1
    assert live(secondary, "v1", "ConfigMap", "good", "shop") is not None
    [failure] = status_of(secondary)["failures"]
    assert failure["path"] == path and "Not_A_Valid_Name" in failure["reason"] and "\n" not in failure["reason"]


def test_git_sync_style_symlinked_worktree(secondary: Any, repo: Repo, tmp_path: Path) -> None:
    """git-sync keeps worktrees of one root repo and swaps a `current` symlink to the newest one."""
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    first = repo.commit("one")
    root = tmp_path / "sync" / ".git-root"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.remote), str(root)], check=True)
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tmp_path / "sync" / "wt1"), first], cwd=root,
                   check=True)
    current = tmp_path / "sync" / "current"
    current.symlink_to(tmp_path / "sync" / "wt1")
    assert apply(secondary, current) == 0
    assert live(secondary, "v1", "ConfigMap", "a", "shop") is not None

    repo.put(configmap("b"))
    second = repo.commit("two")
    subprocess.run(["git", "fetch", "-q", str(repo.remote), "+main:main"], cwd=root, check=True)
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tmp_path / "sync" / "wt2"), second], cwd=root,
                   check=True)
    tmp_link = tmp_path / "sync" / "current.tmp"
    tmp_link.symlink_to(tmp_path / "sync" / "wt2")
    tmp_link.replace(current)
    assert apply(secondary, current) == 0
    assert live(secondary, "v1", "ConfigMap", "b", "shop") is not None
    assert status_of(secondary)["fullyAppliedCommit"] == second


def test_two_repos_followed_on_one_machine_never_share_a_mirror(git_daemon: Any, tmp_path: Path,
                                                                  monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    heads = {}
    for name in ("a.git", "b.git"):
        bare, url = git_daemon(name)
        repo = Repo(bare, tmp_path / f"work-{name}")
        repo.put(configmap(name.split(".")[0]))
        heads[url] = repo.commit(f"only {name}")
    sources = [Source(url, "main") for url in heads]  # the default mirror, as a second applier on the host has
    assert len({s.gitdir for s in sources}) == 2
    assert all(s.gitdir.startswith(str(tmp_path / "cache" / "kubedr" / "applier")) for s in sources)
    for _ in range(2):  # each poll reads its own repo's head, whichever fetched last
        assert [s.head() for s in sources] == list(heads.values())
    assert Source(next(iter(heads)), "main").gitdir == sources[0].gitdir  # a restart finds its mirror


def test_a_mirror_stays_compact_without_git_maintenance_after_each_fetch(git_daemon: Any, tmp_path: Path,
                                                                         monkeypatch: Any) -> None:
    """A round's fetch writes no FETCH_HEAD, runs no maintenance and keeps what arrives as one pack (no loose
    objects); compact() between rounds rolls the small packs up, so the packs a read searches stay few."""
    from kubedr.applier import fetch

    monkeypatch.setattr(fetch, "COMPACT_EVERY", 4)
    bare, url = git_daemon("compact.git")
    repo = Repo(bare, tmp_path / "work")
    repo.put(namespace("shop"))
    for i in range(20):
        repo.put(configmap(f"seed-{i}"))
    repo.commit("seed")
    src = Source(url, "main", str(tmp_path / "mirror"))
    mirror = Path(src.gitdir)

    def packs() -> int:
        return len(list((mirror / "objects" / "pack").glob("*.pack")))

    heads = []
    for i in range(4):
        repo.put(configmap(f"c{i}"))
        heads.append(repo.commit(f"change {i}"))
        assert src.head() == heads[-1]
        assert packs() == i + 1 and not list((mirror / "objects").glob("[0-9a-f][0-9a-f]/*"))  # no loose object
        src.compact()
    assert not (mirror / "FETCH_HEAD").exists()
    assert packs() < 4  # the fourth fetch's compact() rolled the three small packs up
    repo.put(configmap("c4"))
    heads.append(repo.commit("change 4"))
    assert src.head() == heads[-1]
    assert [c.path for c in src.changes(heads[0], heads[-1]) or []] == [f"shop/ConfigMap/c{i}.yaml" for i in (1, 2, 3, 4)]


def test_a_branch_that_moves_is_fetched_without_ls_remote_an_idle_one_polled_with_it(
        git_daemon: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """A poll after one that found a new commit is one fetch (a busy branch keeps moving: its ls-remote is a
    process spent for nothing); once a fetch brings nothing, polls are ls-remote again. A branch deleted meanwhile
    is one error, and the next poll says there is none."""
    import pytest

    from kubedr.git import GitError
    from tests.integration.applier.idle import counting_git

    bare, url = git_daemon("busy.git")
    repo = Repo(bare, tmp_path / "work")
    repo.put(configmap("a"))
    first = repo.commit("a")
    src = Source(url, "main", str(tmp_path / "mirror"))
    assert src.head() == first
    log = tmp_path / "git-calls.log"
    monkeypatch.setenv("PATH", counting_git(tmp_path / "bin", log))

    def calls() -> list[str]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [w for line in lines for w in line.split()[:3] if w in ("fetch", "ls-remote")]

    repo.put(configmap("b"))
    second = repo.commit("b")
    assert src.head() == second and calls() == ["fetch"]
    assert src.head() == second and calls() == ["fetch", "fetch"]  # nothing new: the next poll is idle again
    assert src.head() == second and calls() == ["fetch", "fetch", "ls-remote"]
    repo.put(configmap("c"))
    repo.commit("c")
    src.head()
    subprocess.run(["git", "--git-dir", str(bare), "update-ref", "-d", "refs/heads/main"], check=True)
    with pytest.raises(GitError, match="fetch"):
        src.head()
    assert src.head() is None
