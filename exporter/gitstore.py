"""The local clone: the exporter's durable buffer between the cluster and the remote.

A bare repository in <workdir>/.git with no work tree: what the branch holds is read from git objects only, so
nothing in the repo (a symbolic link, a name git refuses) is ever a path on this machine. HEAD moves by
`git update-ref`; commits others pushed are taken in by a fast-forward, or the unpushed commits are made again
on top of them in-process (exporter/replay.py). Entries kubedr does not read are named once and dropped by the
next commit.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pygit2

from kubedr import git, smarthttp
from kubedr.exporter import treewalk
from kubedr.exporter.diskspace import out_of_space, storage_problem
from kubedr.exporter.gittree import (
    COMMIT,
    COMMITTED_AT,
    BlobSink,
    TreeCache,
    commit_object,
    committed_at,
    with_trailer,
)
from kubedr.exporter.replay import replay
from kubedr.git import NETWORK_TIMEOUT
from kubedr.git import Result as GitResult
from kubedr.remote import redact, scrub
from kubedr.signing import Signer

log = logging.getLogger("kubedr.exporter.git")

DEFAULT_IDENTITY = {"GIT_AUTHOR_NAME": "kubedr exporter", "GIT_AUTHOR_EMAIL": "exporter@kubedr.invalid",
                    "GIT_COMMITTER_NAME": "kubedr exporter", "GIT_COMMITTER_EMAIL": "exporter@kubedr.invalid"}
MAX_NAMED = 50  # refused entries named one per line; more are counted


class StorageFull(Exception):
    """The clone's file system took no more (no space, no inodes, read-only): nothing was committed."""


class WorkdirError(Exception):
    """--workdir cannot hold a clone: not a directory, or not writable."""


class CloneBusy(WorkdirError):
    """Another kubedr process holds the clone."""


class PushRejected(Exception):
    """The remote refused a fast-forward (it moved): fetch and replay, then push again."""


def default_workdir(repo: str, branch: str, cluster: str) -> Path:
    """A stable clone under ~/.cache per remote, branch and cluster, so a restart finds its unpushed commits and
    the exporters of two clusters on one machine (the runbook runs one per region) never share one."""
    digest = hashlib.sha256(f"{repo}#{branch}#{cluster}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "kubedr" / "export" / digest


class GitStore:
    """Plumbing-level access to the clone: commit, push, fetch, and take in what others pushed."""

    def __init__(self, workdir: Path, remote: str, branch: str = "main") -> None:
        self.workdir = Path(workdir)
        self.gitdir = self.workdir / ".git"
        self.remote = remote
        self.shown = redact(remote)  # for logs and errors: never the token of an https://user:token@ URL
        self.branch = branch
        self.lock = threading.RLock()  # held while HEAD moves
        self.env = {**DEFAULT_IDENTITY, **os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        self._head: str | None = None  # cached branch tip; only this process moves it
        self._repo: pygit2.Repository | None = None  # libgit2's view of the clone (opened on first use)
        self._sink: BlobSink | None = None  # blobs of the next commit (see gittree.BlobSink)
        self._trees: TreeCache | None = None  # HEAD's directories in libgit2, kept from one commit to the next
        self._flock: int | None = None  # fd holding the clone for this process (see _hold_clone)
        self._work_flock: int | None = None  # fd while this process changes the clone (see _hold_clone)
        self.foreign: set[str] = set()  # paths that commits others pushed changed, since last taken
        self.refused: list[treewalk.Refused] = []  # HEAD's entries kubedr does not read: the next commit drops them
        self._clean: pygit2.Oid | None = None  # the newest tree known to hold no refused entry
        self._inspected: str | None = None  # the head whose tree was last inspected
        self._files: tuple[pygit2.Oid, list[str]] | None = None  # the first walk's file paths, until asked once
        self.follow_remote = True  # False (kubedr demote): fetch only, never move HEAD onto another writer's work
        self.signer: Signer | None = None  # signs every commit (those made again on a moved remote too)
        self._http = smarthttp.Session(remote, self.gitdir, self.env) if smarthttp.Session.applies(remote) else None

    def use_signer(self, signer: Signer | None) -> None:
        """Sign every commit from now on (in-process; git's `commit-tree -S` of kubedr demote through ssh-keygen)."""
        self.signer = signer
        if signer is not None:
            self.env.update(signer.git_config())

    # -- process helpers
    def git(self, *args: str, stdin: bytes | None = None, check: bool = True, timeout: float | None = None) -> str:
        """Run git on the clone: git.GitError when it fails, StorageFull when the clone's disk is why."""
        try:
            return git.run(args, git_dir=self.gitdir, stdin=stdin, env=self.env, timeout=timeout, check=check,
                           remote=self.remote).text
        except git.GitError as exc:
            self.check_storage(exc, str(exc))
            raise

    def check_storage(self, cause: BaseException, message: str) -> None:
        """StorageFull, naming the cause first, when the clone's disk is why a step failed."""
        problem = storage_problem(self.gitdir, cause)
        if problem:
            raise StorageFull(f"{problem} in {self.workdir}: {message}") from cause

    # -- setup
    def open(self) -> None:
        """Make or reuse the clone, repair what a crash left, catch up with the remote, inspect HEAD's tree."""
        self.prepare()
        self._hold_clone(work=True)
        self.repair()
        self.sync_with_remote()
        self._inspect()

    def prepare(self) -> Path:
        """Make the local repository if it is new; its .git holds what must survive restarts but never be pushed."""
        try:
            if self.workdir.exists() and not self.workdir.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
            self.workdir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.workdir):
                pass  # writable: a read-only mount fails here, not in the middle of `git init`
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"{self.workdir}: no space left on device") from None
            raise WorkdirError(f"{self.workdir}: {(exc.strerror or str(exc)).lower()}") from None
        if not self.gitdir.exists():
            self._init()
        return self.gitdir

    def hold_clone(self) -> None:
        """The exporter's claim on its clone for its whole run, fenced or not: one exporter per clone."""
        self.prepare()
        self._hold_clone(work=False)

    def _hold_clone(self, work: bool) -> None:
        """Two locks: the exporter's (hold_clone) and the work lock of whoever changes the clone now (open(): the
        exporting exporter, or `kubedr demote` beside the exporter that waits fenced). repair() treats every git
        lock as stale, which is only true for the one holder of the work lock."""
        if (self._work_flock if work else self._flock) is not None:
            return
        name = "kubedr-work.flock" if work else "kubedr-exporter.flock"
        fd = os.open(self.workdir / ".git" / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CloneBusy(f"another kubedr {'process (an exporter, kubedr demote)' if work else 'exporter'} is "
                            f"using the clone {self.workdir}" + ("" if work else "; give each its own --workdir")) from None
        if work:
            self._work_flock = fd
        else:
            self._flock = fd  # released by the kernel when this process ends, however it ends

    def close(self) -> None:
        """Let another exporter (or a restart in this process) use the clone."""
        for fd in (self._work_flock, self._flock):
            if fd is not None:
                os.close(fd)
        self._work_flock = self._flock = None
        if self._http is not None:
            self._http.close()

    def _init(self) -> None:
        git.run(["init", "-q", "--bare", "-b", self.branch, str(self.gitdir)], env=self.env)
        self.git("remote", "add", "origin", self.remote)
        self.git("config", "gc.auto", "0")  # no surprise repacks mid-flight; `git gc` by policy
        log.info("initialised local clone %s for %s", self.workdir, self.shown)

    def _no_work_tree(self) -> None:
        """A clone made by an earlier kubedr kept a (sparse) work tree: drop it, and the index, for good."""
        if self.git("config", "--bool", "--get", "core.bare", check=False).strip() == "true":
            return
        head = self.head()
        for name in sorted({p.split("/")[0] for p in self.files(head)} if head else set()):
            path = self.workdir / name  # a name git accepts: never '..', never a path
            if path.is_symlink() or path.is_file():
                path.unlink()  # a link goes, what it points to stays
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        for leftover in (self.gitdir / "index", self.gitdir / "info" / "sparse-checkout"):
            leftover.unlink(missing_ok=True)
        self.git("config", "--unset", "core.sparseCheckout", check=False)
        self.git("config", "core.bare", "true")
        log.info("the clone %s keeps no work tree any more: the branch is read from git objects only", self.workdir)

    def stale_locks(self) -> list[Path]:
        """Git lock files in the clone: HEAD, config, packed-refs, any ref (incl. origin's tracking ref)."""
        gitdir = self.gitdir
        found = [*gitdir.glob("*.lock"), *(gitdir / "refs").rglob("*.lock"), *(gitdir / "objects" / "info").glob("*.lock")]
        return sorted(p for p in found if p.is_file())

    def repair(self) -> None:
        """Clean what a kill -9 can leave: stale git locks, half-written packs and objects.

        Only this exporter works in its clone, so at start every lock file is stale: a kill during the
        tracking-ref update of a push leaves refs/remotes/origin/<branch>.lock, which makes every later
        fetch fail; one during `git config` leaves config.lock. Git never removes either by itself.
        """
        gitdir = self.gitdir
        for lock in self.stale_locks():
            log.warning("removing stale %s left by a previous run", lock)
            lock.unlink(missing_ok=True)
        for tmp in (*(gitdir / "objects" / "pack").glob("tmp_*"), *(gitdir / "objects" / "pack").glob(".tmp-*"),
                    *(gitdir / "objects" / "pack").glob("pack-*.tmp*")):
            tmp.unlink(missing_ok=True)  # half-written packs (fetch, repack, write_pack)
        for tmp in (gitdir / "objects").glob("??/tmp_obj_*"):
            tmp.unlink(missing_ok=True)
        for rebase in (gitdir / "rebase-merge", gitdir / "rebase-apply"):
            if rebase.is_dir():  # an earlier kubedr killed mid-rebase: HEAD is detached, the branch never moved
                log.warning("dropping a rebase left by a previous run")
                shutil.rmtree(rebase, ignore_errors=True)
                self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
        if self.git("config", "--get", "remote.origin.url", check=False).strip() != self.remote:
            self.git("config", "remote.origin.url", self.remote)
        self._no_work_tree()
        self._moved()

    def _moved(self) -> None:
        """HEAD moved outside commit_paths: forget cached state."""
        self._head = None
        self._trees = None

    def _land(self, sha: str, old: str | None) -> None:
        """Point the branch (and HEAD) at sha, a commit made or fetched here; inspect what it brought."""
        self.git("update-ref", f"refs/heads/{self.branch}", sha, *([old] if old else []))
        self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
        self._moved()
        self._inspect()

    def move_to(self, sha: str) -> None:
        """Point the clone's branch at sha (kubedr demote: back onto the branch everyone follows)."""
        with self.lock:
            self._land(sha, None)

    def _inspect(self) -> None:
        """Walk what HEAD's tree changed since the last clean one: foreign paths, and entries never read."""
        head = self.head()
        if head is None or head == self._inspected:
            return
        tree = self.repo[head].peel(pygit2.Commit).tree_id
        found = treewalk.walk(self.repo, tree, self._clean)
        if self._clean is None:  # the first look in this process: the startup reconcile lists everything anyway
            self._files = (tree, found.paths)
        else:
            self.foreign.update(found.paths)
        told = {(r.folder, r.name) for r in self.refused}
        new = [r for r in found.refused if (r.folder, r.name) not in told]
        for r in new[:MAX_NAMED]:
            log.error("refused %s in %s at %s: %s; never read, the next commit drops it", r.path, self.branch,
                      head[:12], r.why)
        if len(new) > MAX_NAMED:
            log.error("refused %d more entries in %s at %s; the next commit drops them", len(new) - MAX_NAMED,
                      self.branch, head[:12])
        self.refused = found.refused
        if not found.refused:
            self._clean = tree
        self._inspected = head

    def full(self) -> bool:
        """True while the clone's file system has no space left (a stalled commit waits for it)."""
        return out_of_space(self.gitdir)

    def take_foreign(self) -> set[str]:
        """The paths commits others pushed changed since the last call (their types are listed again)."""
        out, self.foreign = self.foreign, set()
        return out

    def head(self) -> str | None:
        """The commit the branch points at, or None before the first commit."""
        if self._head is None:
            out = self.git("rev-parse", "-q", "--verify", f"refs/heads/{self.branch}^{{commit}}", check=False)
            self._head = out.strip() or None
        return self._head

    def remote_head(self) -> str | None:
        """What the remote's branch is (ls-remote); None when the branch does not exist yet."""
        sha = self._http.tip(f"refs/heads/{self.branch}", timeout=60) if self._http is not None else None
        if sha is None:
            out = self.git("ls-remote", "origin", f"refs/heads/{self.branch}", timeout=60)
            sha = out.split()[0] if out.strip() else ""
        return sha or None

    def sync_with_remote(self) -> None:
        """Adopt the remote branch if we have nothing, fast-forward onto it, or replay unpushed work onto it."""
        try:
            remote = self.remote_head()
        except git.GitError as exc:
            if self.head() is None:
                raise git.GitError(exc.command, f"remote {self.shown} unreachable and no local clone to buffer into: "
                                   f"{exc.reason}", exc.returncode, exc.stderr) from exc
            log.warning("remote %s unreachable at start (%s); commits stay local until it is back", self.shown, exc)
            return
        if remote is None:
            return
        self.fetch()
        if not self.follow_remote:
            return
        local = self.head()
        if local is None:
            self._land(remote, None)
            log.info("adopted %s of %s at %s", self.branch, self.shown, remote[:12])
        elif local != remote and self.is_ancestor(local, remote):
            self._land(remote, local)
        elif local != remote and not self.is_ancestor(remote, local):
            self.rebase_onto_remote()

    def fetch(self) -> None:
        """Fetch the branch into refs/remotes/origin."""
        proc = self.fetch_ref(f"refs/remotes/origin/{self.branch}", timeout=300)
        if not proc.ok:
            text = scrub(proc.stderr.decode(errors="replace"), self.remote)
            error = git.GitError("fetch", git.reason(text, proc.returncode), proc.returncode, text)
            self.check_storage(error, str(error))
            raise error

    def fetch_ref(self, into: str, timeout: float = NETWORK_TIMEOUT) -> GitResult:
        """Fetch the branch into one ref as `git fetch --no-tags` does (its result, whether it failed or not): over
        the kept HTTP(S) connection once the clone has commits (a new one takes the tip alone, through git)."""
        depth = self.fetch_depth()
        if not depth and self._http is not None:
            try:
                sha = self._http.fetch(self.branch, into=into, tags=False, timeout=timeout)
            except git.GitError as exc:
                return GitResult(-1 if exc.returncode is None else exc.returncode, b"", f"fatal: {exc.reason}".encode())
            if sha:
                return GitResult(0, b"", b"")
            if sha == "":
                return GitResult(128, b"", f"fatal: couldn't find remote ref refs/heads/{self.branch}".encode())
        return git.run(["fetch", "-q", "--no-tags", *depth, self.remote, f"+refs/heads/{self.branch}:{into}"],
                       git_dir=self.gitdir, env=self.env, timeout=timeout, check=False, remote=self.remote)

    def fetch_depth(self) -> list[str]:
        """["--depth=1"] while the clone has no commits: it takes the branch's tip, not its whole history.

        Later fetches are incremental (only what is new since), so a branch of a million commits costs a fresh
        clone what a branch of a thousand does; nothing the exporter does walks the history below its tip.
        """
        return [] if self.git("for-each-ref", "--count=1", check=False).strip() else ["--depth=1"]

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when commit a is reachable from b."""
        return git.run(["merge-base", "--is-ancestor", a, b], git_dir=self.gitdir, env=self.env, check=False).ok

    def rebase_onto_remote(self) -> None:
        """Make the unpushed local commits again on the remote's tip (never a force-push; nothing conflicts).

        History unrelated to the remote's (the branch was rewritten or re-created) is not replayed: the clone
        takes the remote's, and every path that differs is written back from the cluster (take_foreign).
        """
        with self.lock:
            upstream = self.git("rev-parse", f"refs/remotes/origin/{self.branch}").strip()
            local = self.head()
            if local is None or local == upstream:
                return
            base = self.git("merge-base", local, upstream, check=False).strip()
            if not base:
                log.warning("remote %s branch %s holds history unrelated to the clone's (rewritten or re-created); "
                            "taking it, and writing back the cluster's state where it differs", self.shown,
                            self.branch)
                self._land(upstream, local)
                return
            mine = self.git("rev-list", "--reverse", "--first-parent", f"{base}..{local}").split()
            try:
                tip, made = replay(self.repo, mine, upstream, self._write_commit)
            except (OSError, pygit2.GitError) as exc:
                self.check_storage(exc, f"making local commits again on {upstream[:12]}: {exc}")
                raise
            self._land(tip, local)
            log.warning("remote %s moved; made %d unpushed local commit(s) again on %s%s", self.shown, made,
                        upstream[:12], f" ({len(mine) - made} already there)" if made < len(mine) else "")

    # -- commits
    @property
    def repo(self) -> pygit2.Repository:
        """The clone through libgit2 (objects, trees, commits); refs still move through `git update-ref`."""
        if self._repo is None:
            self._repo = pygit2.Repository(str(self.gitdir))
        return self._repo

    @property
    def sink(self) -> BlobSink:
        """Where the recorder stages the blobs of the next commit."""
        if self._sink is None:
            self._sink = BlobSink(self.repo)
        return self._sink

    def _cache(self) -> TreeCache:
        if self._trees is None:
            head = self.head()
            self._trees = TreeCache(self.repo, self.repo[head].peel(pygit2.Commit).tree_id if head else None)
        return self._trees

    def blob_at(self, path: str) -> bytes | None:
        """The raw blob id of the regular file at path in HEAD; None when HEAD has none there."""
        return self._cache().get(path)

    def read_blob(self, oid: bytes) -> bytes | None:
        """A blob's bytes, staged or committed; None when unknown."""
        staged = self.sink.get(oid)
        if staged is not None:
            return staged
        try:
            return self.repo[pygit2.Oid(raw=oid)].read_raw()
        except KeyError:
            return None

    def read_file(self, path: str) -> bytes | None:
        """What HEAD holds at path, from git objects; None when it holds no regular file there."""
        oid = self.blob_at(path)
        return self.read_blob(oid) if oid is not None else None

    def files(self, rev: str | None = None) -> list[str]:
        """Every regular file path of a commit (HEAD by default) under names git accepts."""
        sha = rev or self.head()
        if sha is None:
            return []
        tree = self.repo.revparse_single(sha).peel(pygit2.Commit).tree_id
        if self._files is not None and self._files[0] == tree:
            paths, self._files = self._files[1], None  # once: the recorder keeps its own index
            return paths
        return treewalk.files(self.repo, tree).paths

    def commit_paths(self, message: Callable[[list[tuple[str, str]]], str],
                     blobs: dict[str, bytes | None] | None = None,
                     contents: dict[str, bytes | None] | None = None) -> str | None:
        """Commit these paths on top of HEAD, dropping its refused entries; None when nothing differs.

        message gets [(status A/M/D, path)] and returns the commit message; blobs holds the raw ids of blobs the
        caller staged in self.sink (None: deleted), contents the bytes of other paths. StorageFull when the
        clone's file system takes no more: nothing is committed.
        """
        try:
            return self._commit_paths(message, contents or {}, blobs or {})
        except BaseException as exc:
            self._trees = None  # its builders may hold changes no commit made
            if isinstance(exc, StorageFull):
                raise
            problem = storage_problem(self.gitdir, exc) if isinstance(exc, OSError | pygit2.GitError | git.GitError) \
                else None
            if problem:
                raise StorageFull(f"{problem} in {self.workdir}: nothing committed") from exc
            raise
        finally:
            self.sink.discard()

    def _commit_paths(self, message: Callable[[list[tuple[str, str]]], str], contents: dict[str, bytes | None],
                      blobs: dict[str, bytes | None]) -> str | None:
        diff: list[tuple[str, str]] = []
        changes: dict[str, bytes | None] = {}
        for path in sorted(blobs.keys() | contents.keys()):
            if path in blobs:
                new = blobs[path]
            else:
                data = contents[path]
                new = self.sink.add(data) if data is not None else None
            old = self.blob_at(path)
            if old == new:
                continue
            changes[path] = new
            diff.append(("D" if new is None else "M" if old else "A", path))
        if not diff and not self.refused:
            return None
        self.sink.flush()
        parent = self.head()
        top = self._cache().apply(changes, [(r.folder, r.name) for r in self.refused])
        del changes
        when = time.time()  # the header's whole seconds and the trailer's microseconds: one instant
        sha = self._write_commit(top, parent, with_trailer(message(diff), COMMITTED_AT, committed_at(when)), when)
        try:
            self.git("update-ref", "-m", "kubedr export", f"refs/heads/{self.branch}", sha, parent or "0" * 40)
        except git.GitError:
            self._moved()
            raise
        self._head = sha
        self.refused = []
        self._clean, self._inspected = top, sha
        return sha

    def _write_commit(self, tree: pygit2.Oid, parent: str | None, message: str, when: float) -> str:
        """Write one commit object (signed when there is a signer); returns its sha."""
        raw = commit_object(str(tree), parent, message, self.env, when)
        return str(self.repo.odb.write(COMMIT, self.signer.sign_commit(raw) if self.signer else raw))

    def maintain(self) -> None:
        """Keep the object store compact: pack loose objects, roll small packs up geometrically."""
        objects = self.gitdir / "objects"
        packs = len(list((objects / "pack").glob("pack-*.idx")))
        loose = sum(1 for _ in (objects / "17").glob("*")) if (objects / "17").is_dir() else 0
        for needed, args in ((loose > 27, ["repack", "-d", "-q"]),  # ~7,000 loose objects, as gc.auto estimates
                             (packs > 16, ["repack", "-d", "-q", "--geometric=2"])):
            if needed:
                try:
                    proc = git.run(args, git_dir=self.gitdir, env=self.env, check=False)
                except git.GitError as exc:
                    log.warning("%s", exc)
                    continue
                if not proc.ok:
                    log.warning("git %s: %s", " ".join(args), proc.stderr.decode(errors="replace").strip())

    def push(self, sha: str, timeout: float = 120) -> None:
        """Push sha to the remote branch; PushRejected when the remote moved, git.GitError for other failures."""
        ref = f"refs/heads/{self.branch}"
        proc = self._http.push(sha, ref, timeout) if self._http is not None else None
        if proc is None:
            proc = git.run(["push", "-q", "--porcelain", "origin", f"{sha}:{ref}"], git_dir=self.gitdir, env=self.env,
                           timeout=timeout, check=False, remote=self.remote)
        elif proc.ok:  # git push moves the remote-tracking branch itself
            self.repo.references.create(f"refs/remotes/origin/{self.branch}", pygit2.Oid(hex=sha), force=True)
        if proc.ok:
            return
        err = (proc.stdout + proc.stderr).decode(errors="replace")
        if "[rejected]" in err or "non-fast-forward" in err or "fetch first" in err:
            raise PushRejected(err.strip().splitlines()[-1] if err.strip() else "rejected")
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        telling = [ln for ln in lines if any(w in ln for w in ("rejected", "error:", "fatal:"))][:3]
        hint = ("; the remote holds a lock on the branch: if no push is running there, remove that .lock file"
                if "remote: error: cannot lock ref" in err else "")
        raise git.GitError("push", scrub(f"{' | '.join(telling or lines)}{hint}", self.remote), proc.returncode,
                           scrub(err, self.remote))
