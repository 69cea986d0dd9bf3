"""The local clone after a kill -9 or a move of the remote: stale git locks go, commits others pushed are taken in
and unpushed ones made again on top of them, and a clone an earlier kubedr made loses its work tree."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kubedr.exporter.gitstore import GitStore
from kubedr.exporter.pusher import Pusher
from kubedr.git import GitError

# Where a killed git leaves a lock in the clone: the commit's update-ref, the tracking-ref update at the end
# of a push (then every fetch fails), `git config` in repair itself, packed-refs, the index.
STALE = ("refs/heads/main.lock", "refs/remotes/origin/main.lock", "config.lock", "packed-refs.lock", "index.lock")


def _commit(store: GitStore, path: str, text: str) -> str:
    """As the recorder does: stage the bytes as a blob, then commit it."""
    with store.lock:
        blob = store.sink.add(text.encode())
        sha = store.commit_paths(lambda diff: f"update {path}\n", blobs={path: blob})
    assert sha is not None
    return sha


def _show(store: GitStore, path: str) -> str:
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=store.workdir, capture_output=True, text=True,
                          check=True).stdout


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_restart_removes_every_stale_git_lock_and_pushes_again(tmp_path: Path, git_remote: Path) -> None:
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    _commit(store, "shop/ConfigMap/a.yaml", "v: 1\n")
    assert Pusher(store).push_once()
    gitdir = store.workdir / ".git"
    for rel in STALE:
        (gitdir / rel).write_text("")

    store.close()  # the process ended
    restarted = GitStore(tmp_path / "clone", str(git_remote))
    restarted.open()  # fetches (the remote has the branch): fails while origin/main.lock is there
    assert [rel for rel in STALE if (gitdir / rel).exists()] == []
    sha = _commit(restarted, "shop/ConfigMap/a.yaml", "v: 2\n")
    assert Pusher(restarted).push_once()
    assert subprocess.run(["git", "rev-parse", "main"], cwd=git_remote, capture_output=True, text=True,
                          check=True).stdout.strip() == sha


def test_push_error_names_the_remote_lock_not_the_to_line(tmp_path: Path, git_remote: Path) -> None:
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    sha = _commit(store, "shop/ConfigMap/a.yaml", "v: 1\n")
    (git_remote / "refs" / "heads").mkdir(parents=True, exist_ok=True)
    (git_remote / "refs" / "heads" / "main.lock").write_text("")  # a receive-pack killed on the remote's host
    with pytest.raises(GitError) as err:
        store.push(sha)
    assert "cannot lock ref" in str(err.value).splitlines()[0]
    assert "remove that .lock file" in str(err.value)


def test_restart_adopts_a_remote_commit_that_changed_a_file_it_has(tmp_path: Path, git_remote: Path) -> None:
    """A reseal, a hand-made commit or the other replica's pushes moved the remote past this clone."""
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    _commit(store, "shop/Secret/db.yaml", "sealed: 1\n")
    assert Pusher(store).push_once()

    other = GitStore(tmp_path / "other", str(git_remote))
    other.open()
    theirs = _commit(other, "shop/Secret/db.yaml", "sealed: 2\n")
    assert Pusher(other).push_once()

    store.close()  # the process ended
    restarted = GitStore(tmp_path / "clone", str(git_remote))
    restarted.open()
    assert restarted.head() == theirs
    assert _show(restarted, "shop/Secret/db.yaml") == "sealed: 2\n"
    assert [p.name for p in restarted.workdir.iterdir()] == [".git"]  # no work tree: git objects only
    sha = _commit(restarted, "shop/Secret/db.yaml", "sealed: 3\n")
    assert Pusher(restarted).push_once()
    assert subprocess.run(["git", "rev-parse", "main"], cwd=git_remote, capture_output=True, text=True,
                          check=True).stdout.strip() == sha


def test_unpushed_commits_are_made_again_on_a_remote_that_changed_the_same_file(tmp_path: Path,
                                                                                 git_remote: Path) -> None:
    """A second writer changed the file a commit not pushed yet changed too: the local one (the cluster's newer
    state, as this exporter saw it) goes on top; what the other writer changed is handed out to be listed again."""
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    _commit(store, "shop/ConfigMap/a.yaml", "v: 1\n")
    assert Pusher(store).push_once()
    mine = _commit(store, "shop/ConfigMap/a.yaml", "v: 3\n")  # committed, never pushed
    _commit(store, "shop/ConfigMap/b.yaml", "v: 1\n")

    other = GitStore(tmp_path / "other", str(git_remote))
    other.open()
    _commit(other, "shop/ConfigMap/a.yaml", "v: 2\n")
    theirs = _commit(other, "shop/ConfigMap/c.yaml", "v: 1\n")
    assert Pusher(other).push_once()

    store.close()  # the process ended
    restarted = GitStore(tmp_path / "clone", str(git_remote))
    restarted.open()  # a git rebase stopped here on a conflict
    log = _git(restarted.workdir, "log", "--format=%H %P %s", "main").splitlines()
    assert [line.split()[2:] for line in log[:2]] == [["update", "shop/ConfigMap/b.yaml"],
                                                      ["update", "shop/ConfigMap/a.yaml"]]
    assert log[1].split()[1] == theirs and log[1].split()[0] != mine
    assert _show(restarted, "shop/ConfigMap/a.yaml") == "v: 3\n"
    assert _show(restarted, "shop/ConfigMap/c.yaml") == "v: 1\n"
    assert Pusher(restarted).push_once()
    assert _git(git_remote, "rev-parse", "main").strip() == restarted.head()

    other.sync_with_remote()  # the other writer takes that in (a fast-forward) and pushes again
    assert other.take_foreign() == {"shop/ConfigMap/a.yaml", "shop/ConfigMap/b.yaml"}  # what to list again
    _commit(other, "shop/ConfigMap/d.yaml", "v: 1\n")
    assert Pusher(other).push_once()
    restarted.sync_with_remote()
    assert restarted.take_foreign() == {"shop/ConfigMap/d.yaml"}


def test_a_clone_an_earlier_kubedr_made_loses_its_work_tree_and_its_half_done_rebase(tmp_path: Path,
                                                                                      git_remote: Path) -> None:
    """Its sparse work tree held top-level files and .kubedr/ (a symlink among them, as a hostile commit leaves);
    a kill mid-rebase left HEAD detached. The clone becomes bare; the link is removed, never followed."""
    old = tmp_path / "clone"
    _git(tmp_path, "init", "-q", "-b", "main", str(old))
    _git(old, "remote", "add", "origin", str(git_remote))
    (old / "README.md").write_text("hi\n")
    (old / ".kubedr").mkdir()
    (old / ".kubedr" / "policy.yaml").write_text("export: {}\n")
    (old / "shop" / "ConfigMap").mkdir(parents=True)  # object files, as a clone from before sparse held them
    (old / "shop" / "ConfigMap" / "a.yaml").write_text("v: 0\n")
    _git(old, "add", "-A")
    _git(old, "commit", "-q", "-m", "init")
    _git(old, "push", "-q", "origin", "main")
    _git(old, "config", "core.sparseCheckout", "true")
    secret = tmp_path / "secret.key"
    secret.write_text("private\n")
    (old / "README.md").unlink()
    (old / "README.md").symlink_to(secret)
    _git(old, "checkout", "-q", "--detach")
    (old / ".git" / "rebase-merge").mkdir()

    store = GitStore(old, str(git_remote))
    store.open()
    assert sorted(p.name for p in old.iterdir()) == [".git"]
    assert secret.read_text() == "private\n"
    assert _git(old, "config", "core.bare").strip() == "true"
    assert _git(old, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert not (old / ".git" / "index").exists() and not (old / ".git" / "rebase-merge").exists()
    sha = _commit(store, "shop/ConfigMap/a.yaml", "v: 1\n")
    assert Pusher(store).push_once()
    assert _git(git_remote, "rev-parse", "main").strip() == sha


def test_a_second_exporter_on_the_same_clone_is_refused(tmp_path: Path, git_remote: Path) -> None:
    first = GitStore(tmp_path / "clone", str(git_remote))
    first.open()
    _commit(first, "shop/ConfigMap/a.yaml", "v: 1\n")
    lock = first.workdir / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")  # as if the first one were mid-commit
    probe = ("from kubedr.exporter.gitstore import GitStore, CloneBusy\n"
             f"try:\n    GitStore({str(tmp_path / 'clone')!r}, {str(git_remote)!r}).open()\n"
             "except CloneBusy as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "another kubedr process (an exporter, kubedr demote) is using the clone" in out
    assert lock.exists()  # the live exporter's lock was left alone


def test_commits_go_on_after_a_repack_removed_the_loose_object_directories(tmp_path: Path,
                                                                              git_remote: Path) -> None:
    """maintain() runs `git repack -d`, whose prune-packed deletes the emptied objects/xx/ directories."""
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    _commit(store, "shop/ConfigMap/a.yaml", "v: 1\n")
    subprocess.run(["git", "repack", "-d", "-q"], cwd=store.workdir, check=True)
    assert not [d for d in (store.workdir / ".git" / "objects").glob("??") if any(d.iterdir())]
    sha = _commit(store, "shop/ConfigMap/b.yaml", "v: 1\n")  # the same blob again, loose, in a removed directory
    assert Pusher(store).push_once()
    assert subprocess.run(["git", "rev-parse", "main"], cwd=git_remote, capture_output=True, text=True,
                          check=True).stdout.strip() == sha
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=store.workdir, check=True, capture_output=True)


def test_a_fresh_clone_takes_the_tip_only_and_later_fetches_are_incremental(tmp_path: Path, git_remote: Path) -> None:
    """A branch's history is never fetched whole: a restart on a long branch costs what it does on a short one."""
    writer = GitStore(tmp_path / "writer", str(git_remote))
    writer.open()
    for i in range(5):
        _commit(writer, "shop/ConfigMap/a.yaml", f"v: {i}\n")
    assert Pusher(writer).push_once()

    fresh = GitStore(tmp_path / "clone", str(git_remote))
    fresh.open()
    assert fresh.head() == writer.head()
    assert fresh.git("rev-list", "--count", "HEAD").strip() == "1"  # the tip, not 5 commits
    assert (fresh.workdir / ".git" / "shallow").is_file()
    tip = _commit(writer, "shop/ConfigMap/b.yaml", "v: 1\n")
    assert Pusher(writer).push_once()
    fresh.sync_with_remote()
    assert fresh.head() == tip and fresh.git("rev-list", "--count", "HEAD").strip() == "2"
    mine = _commit(fresh, "shop/ConfigMap/c.yaml", "v: 1\n")  # a shallow clone pushes like any other
    assert Pusher(fresh).push_once()
    assert subprocess.run(["git", "rev-parse", "main"], cwd=git_remote, capture_output=True, text=True,
                          check=True).stdout.strip() == mine


def test_maintenance_runs_beside_pushes_not_before_them(tmp_path: Path, git_remote: Path) -> None:
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    started, release = threading.Event(), threading.Event()

    def slow_repack() -> None:  # as a repack of 100,000 objects: seconds
        started.set()
        release.wait(30)

    store.maintain = slow_repack  # type: ignore[method-assign]
    pusher = Pusher(store)
    pusher.maintain()
    assert started.wait(10)
    pusher.maintain()  # one at a time: no second repack while the first runs
    _commit(store, "shop/ConfigMap/a.yaml", "v: 1\n")
    assert pusher.push_once()  # not held up by the repack
    release.set()


def test_a_failed_write_is_put_down_to_the_disk_only_when_the_disk_is_the_cause(tmp_path: Path) -> None:
    import errno

    import pygit2

    from kubedr import git
    from kubedr.exporter.diskspace import storage_problem

    assert storage_problem(tmp_path, OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    assert storage_problem(tmp_path, OSError(errno.EDQUOT, "Disk quota exceeded")) == "no space left on device"
    assert storage_problem(tmp_path, OSError(errno.EROFS, "Read-only file system")) == "read-only file system"
    assert storage_problem(tmp_path, git.GitError("fetch", "fatal: write error: No space left on device")) \
        == "no space left on device"
    assert storage_problem(tmp_path, pygit2.GitError("no error")) is None  # a disk with room: not the cause
    assert storage_problem(tmp_path, OSError(errno.EACCES, "Permission denied")) is None
