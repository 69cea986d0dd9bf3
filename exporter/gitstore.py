"""The local clone: the exporter's durable buffer between the cluster and the remote."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pygit2

from kubedr import git
from kubedr.exporter.gittree import (
    COMMIT,
    COMMITTED_AT,
    BlobSink,
    TreeCache,
    commit_object,
    committed_at,
    with_trailer,
)
from kubedr.remote import redact, scrub
from kubedr.signing import Signer

log = logging.getLogger("kubedr.exporter.git")

TMP_PREFIX = ".kubedr-tmp-"
SPARSE_PATTERNS = "/*\n!/*/\n/.kubedr/\n"  # top-level files and .kubedr/ (policy, scope); no object files
DEFAULT_IDENTITY = {"GIT_AUTHOR_NAME": "kubedr exporter", "GIT_AUTHOR_EMAIL": "exporter@kubedr.invalid",
                    "GIT_COMMITTER_NAME": "kubedr exporter", "GIT_COMMITTER_EMAIL": "exporter@kubedr.invalid"}


class GitError(RuntimeError):
    """The clone cannot do what was asked: a git command failed (git's telling line) or the clone is busy."""


class RemoteMoved(GitError):
    """The remote has commits we do not have and they cannot be rebased onto without a conflict."""


class PushRejected(GitError):
    """The remote refused a fast-forward: fetch and rebase, then push again."""


def checked_out(path: str) -> bool:
    """True for the paths SPARSE_PATTERNS puts in the work tree."""
    return "/" not in path or path.startswith(".kubedr/")


def default_workdir(repo: str, branch: str, cluster: str) -> Path:
    """A stable clone under ~/.cache per remote, branch and cluster, so a restart finds its unpushed commits and
    the exporters of two clusters on one machine (the runbook runs one per region) never share one."""
    digest = hashlib.sha256(f"{repo}#{branch}#{cluster}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "kubedr" / "export" / digest


class GitStore:
    """Plumbing-level access to the clone: stage paths, commit, push, fetch and rebase."""

    def __init__(self, workdir: Path, remote: str, branch: str = "main") -> None:
        self.workdir = Path(workdir)
        self.remote = remote
        self.shown = redact(remote)  # for logs and errors: never the token of an https://user:token@ URL
        self.branch = branch
        self.lock = threading.RLock()  # held while the work tree or HEAD moves
        self.env = {**DEFAULT_IDENTITY, **os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        self._head: str | None = None  # cached branch tip; only this process moves it
        self._repo: pygit2.Repository | None = None  # libgit2's view of the clone (opened on first use)
        self._sink: BlobSink | None = None  # blobs of the next commit (see gittree.BlobSink)
        self._trees: TreeCache | None = None  # HEAD's directories in libgit2, kept from one commit to the next
        self._index_stale = False  # commits bypass the index; porcelain commands need it refreshed
        self.on_moved: Callable[[], None] = lambda: None  # the work tree changed under the recorder
        self._flock: int | None = None  # fd holding the clone for this process (see _hold_clone)
        self._work_flock: int | None = None  # fd while this process changes the clone (see _hold_clone)
        self.brought_in: list[tuple[str, str]] = []  # (base, tip) of commits others pushed that we took in
        self.follow_remote = True  # False (kubedr demote): fetch only, never move HEAD onto another writer's work
        self.signer: Signer | None = None  # signs every commit (and makes git sign what a rebase rewrites)

    def use_signer(self, signer: Signer | None) -> None:
        """Sign every commit from now on: in-process here, through git's ssh-keygen for rebased commits."""
        self.signer = signer
        if signer is not None:
            self.env.update(signer.git_config())

    # -- process helpers
    def git(self, *args: str, stdin: bytes | None = None, check: bool = True, timeout: float | None = None) -> str:
        """Run git in the clone; stderr goes into the error."""
        try:
            return git.run(args, cwd=self.workdir, stdin=stdin, env=self.env, timeout=timeout, check=check,
                           remote=self.remote).text
        except git.GitError as exc:
            raise GitError(str(exc)) from exc

    # -- setup
    def open(self) -> None:
        """Clone or reuse the work tree, repair what a crash left, and catch up with the remote."""
        self.prepare()
        self._hold_clone(work=True)
        self.repair()
        self.sync_with_remote()

    def prepare(self) -> Path:
        """Make the local repository if it is new; its .git holds what must survive restarts but never be pushed."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.workdir / ".git").exists():
            self._init()
        return self.workdir / ".git"

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
            raise GitError(f"another kubedr {'process (an exporter, kubedr demote)' if work else 'exporter'} is "
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

    def _init(self) -> None:
        self.git("init", "-q", "-b", self.branch)
        self.git("remote", "add", "origin", self.remote)
        self.git("config", "core.autocrlf", "false")
        self.git("config", "gc.auto", "0")  # no surprise repacks mid-flight; `git gc` by policy
        self._sparse()
        log.info("initialised local clone %s for %s", self.workdir, self.shown)

    def _sparse(self) -> None:
        """Check out only top-level files and .kubedr/: object files live in git objects, never as files.

        The exporter commits blobs and trees directly; 100,000 files in a work tree would cost a file write each
        (0.1-0.3 ms) for nothing. Git's porcelain (rebase, read-tree -u) honours the sparse checkout.
        """
        info = self.workdir / ".git" / "info"
        info.mkdir(parents=True, exist_ok=True)
        patterns = SPARSE_PATTERNS.encode()
        target = info / "sparse-checkout"
        if not target.exists() or target.read_bytes() != patterns:
            tmp = info / f"{TMP_PREFIX}sparse-checkout"
            tmp.write_bytes(patterns)
            os.replace(tmp, target)
        if self.git("config", "--get", "core.sparseCheckout", check=False).strip() != "true":
            self.git("config", "core.sparseCheckout", "true")

    def stale_locks(self) -> list[Path]:
        """Git lock files in the clone: index, HEAD, config, packed-refs, any ref (incl. origin's tracking ref)."""
        gitdir = self.workdir / ".git"
        found = [*gitdir.glob("*.lock"), *(gitdir / "refs").rglob("*.lock"), *(gitdir / "objects" / "info").glob("*.lock")]
        return sorted(p for p in found if p.is_file())

    def repair(self) -> None:
        """Clean what a kill -9 can leave: stale git locks, temp files, an index out of step with HEAD.

        Only this exporter works in its clone, so at start every lock file is stale: a kill during the
        tracking-ref update of a push leaves refs/remotes/origin/<branch>.lock, which makes every later
        fetch fail; one during `git config` leaves config.lock. Git never removes either by itself.
        """
        gitdir = self.workdir / ".git"
        for lock in self.stale_locks():
            log.warning("removing stale %s left by a previous run", lock)
            lock.unlink(missing_ok=True)
        for tmp in (*(gitdir / "objects" / "pack").glob("tmp_*"), *(gitdir / "objects" / "pack").glob(".tmp-*"),
                    *(gitdir / "objects" / "pack").glob("pack-*.tmp*")):
            tmp.unlink(missing_ok=True)  # half-written packs (fetch, repack, write_pack)
        if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply").exists():
            log.warning("aborting a rebase left by a previous run")
            self.git("rebase", "--abort", check=False)
        for tmp in self.workdir.rglob(TMP_PREFIX + "*"):
            if ".git" not in tmp.relative_to(self.workdir).parts:
                tmp.unlink(missing_ok=True)
        for tmp in (gitdir / "objects").glob("??/tmp_obj_*"):
            tmp.unlink(missing_ok=True)
        self.git("config", "remote.origin.url", self.remote)
        self._sparse()  # a clone made before the exporter went sparse drops its object files below
        self._moved()
        if self.head():
            # index and work tree back to the last commit: a file written but not committed before the kill
            # is rewritten by the startup reconcile, and a clean tree lets fast-forwards and rebases run
            self.git("read-tree", "HEAD")
            self.git("update-index", "-q", "--refresh", check=False)
            self.git("read-tree", "-u", "--reset", "HEAD")
        else:
            self.git("read-tree", "--empty")

    def _moved(self) -> None:
        """HEAD moved outside commit_paths (adopt, fast-forward, rebase): forget cached state."""
        self._head = None
        self._trees = None
        self.on_moved()

    def sync_index(self) -> None:
        """Make the index equal HEAD again before a porcelain command (rebase) looks at it."""
        if self._index_stale and self.head():
            self.git("read-tree", "HEAD")
            self.git("sparse-checkout", "reapply")  # object files are skip-worktree, not deleted
            self.git("update-index", "-q", "--refresh", check=False)
        self._index_stale = False

    def head(self) -> str | None:
        """The commit the branch points at, or None before the first commit."""
        if self._head is None:
            out = self.git("rev-parse", "-q", "--verify", f"refs/heads/{self.branch}^{{commit}}", check=False)
            self._head = out.strip() or None
        return self._head

    def remote_head(self) -> str | None:
        """What the remote's branch is (ls-remote); None when the branch does not exist yet."""
        out = self.git("ls-remote", "origin", f"refs/heads/{self.branch}", timeout=60)
        return out.split()[0] if out.strip() else None

    def sync_with_remote(self) -> None:
        """At start: adopt the remote branch if we have nothing, rebase unpushed work if both moved."""
        try:
            remote = self.remote_head()
        except GitError as exc:
            if self.head() is None and not any(self._tracked_or_present()):
                raise GitError(f"remote {self.shown} unreachable and no local clone to buffer into: {exc}") from exc
            log.warning("remote %s unreachable at start (%s); commits stay local until it is back", self.shown, exc)
            return
        if remote is None:
            return
        self.fetch()
        if not self.follow_remote:
            return
        local = self.head()
        if local is None:
            self.git("update-ref", f"refs/heads/{self.branch}", f"refs/remotes/origin/{self.branch}")
            self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
            self._moved()
            self.git("read-tree", "-u", "--reset", "HEAD")
            log.info("adopted %s of %s at %s", self.branch, self.shown, remote[:12])
        elif self.is_ancestor(local, remote):
            # --reset: the work tree follows the remote even where a killed run left files unlike HEAD
            # (the startup reconcile rewrites them from the cluster anyway)
            self.git("read-tree", "-u", "--reset", remote)
            self.git("update-ref", f"refs/heads/{self.branch}", remote, local)
            self._moved()
            self.brought_in.append((local, remote))
        elif not self.is_ancestor(remote, local):
            self.rebase_onto_remote()

    def _tracked_or_present(self) -> Iterator[Path]:
        for p in self.workdir.iterdir():
            if p.name != ".git":
                yield p

    def fetch(self) -> None:
        """Fetch the branch into refs/remotes/origin."""
        self.git("fetch", "-q", *self.fetch_depth(), "origin",
                 f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}", timeout=300)

    def fetch_depth(self) -> list[str]:
        """["--depth=1"] while the clone has no commits: it takes the branch's tip, not its whole history.

        Later fetches are incremental (only what is new since), so a branch of a million commits costs a fresh
        clone what a branch of a thousand does; nothing the exporter does walks the history below its tip.
        """
        return [] if self.git("for-each-ref", "--count=1", check=False).strip() else ["--depth=1"]

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when commit a is reachable from b."""
        return git.run(["merge-base", "--is-ancestor", a, b], cwd=self.workdir, env=self.env, check=False).ok

    def rebase_onto_remote(self) -> None:
        """Replay local commits on the remote's; a conflict aborts and raises (never force-push)."""
        with self.lock:
            upstream = f"refs/remotes/origin/{self.branch}"
            base = self.git("merge-base", "HEAD", upstream, check=False).strip()
            self.sync_index()
            proc = git.run(["rebase", "-q", upstream], cwd=self.workdir, env=self.env, check=False)
            self._moved()
            if not proc.ok:
                git.run(["rebase", "--abort"], cwd=self.workdir, env=self.env, check=False)
                raise RemoteMoved(f"remote {self.shown} branch {self.branch} has commits that conflict with "
                                  f"unpushed local commits; resolve by hand in {self.workdir} (never force-pushed)")
            if base:
                self.brought_in.append((base, self.git("rev-parse", upstream).strip()))
            log.warning("remote %s moved; rebased local commits onto %s", self.shown,
                        self.git("rev-parse", "--short", upstream).strip())

    # -- commits
    @property
    def repo(self) -> pygit2.Repository:
        """The clone through libgit2 (objects, trees, commits); refs still move through `git update-ref`."""
        if self._repo is None:
            self._repo = pygit2.Repository(str(self.workdir / ".git"))
            self._repo.TreeBuilder().write()  # the empty tree an empty index refers to
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
            self._trees = TreeCache(self.repo, self.repo[head].peel(pygit2.Tree).id if head else None)
        return self._trees

    def blob_at(self, path: str) -> bytes | None:
        """The raw blob id at path in HEAD, None when HEAD has no file there."""
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

    def commit_paths(self, paths: Iterable[str], message: Callable[[list[tuple[str, str]]], str],
                     contents: dict[str, bytes | None] | None = None,
                     blobs: dict[str, bytes | None] | None = None) -> str | None:
        """Commit these paths on top of HEAD; None when nothing differs.

        message gets [(status A/M/D, path)] and returns the commit message; blobs holds the raw ids of blobs the
        caller staged in self.sink (None: deleted), contents bytes to commit, other paths are read from the work tree.
        """
        try:
            return self._commit_paths(paths, message, contents or {}, blobs or {})
        except BaseException:
            self._trees = None  # its builders may hold changes no commit made
            raise
        finally:
            self.sink.discard()

    def _commit_paths(self, paths: Iterable[str], message: Callable[[list[tuple[str, str]]], str],
                      contents: dict[str, bytes | None], blobs: dict[str, bytes | None]) -> str | None:
        diff: list[tuple[str, str]] = []
        changes: dict[str, bytes | None] = {}
        root = str(self.workdir)
        for path in paths:
            if path in blobs:
                new = blobs[path]
            else:
                if path in contents:
                    data = contents[path]
                elif not checked_out(path):
                    continue  # an object file: only the blobs given change it, the work tree never holds it
                else:
                    try:
                        with open(os.path.join(root, path), "rb") as fh:
                            data = fh.read()
                    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                        data = None
                new = self.sink.add(data) if data is not None else None
            old = self.blob_at(path)
            if old == new:
                continue
            changes[path] = new
            diff.append(("D" if new is None else "M" if old else "A", path))
        if not diff:
            return None
        self.sink.flush()
        parent = self.head()
        top = self._cache().apply(changes)
        del changes
        when = time.time()  # the header's whole seconds and the trailer's microseconds: one instant
        text = with_trailer(message(diff), COMMITTED_AT, committed_at(when))
        raw = commit_object(str(top), parent, text, self.env, when)
        sha = str(self.repo.odb.write(COMMIT, self.signer.sign_commit(raw) if self.signer else raw))
        self._index_stale = True
        try:
            self.git("update-ref", "-m", "kubedr export", f"refs/heads/{self.branch}", sha, parent or "0" * 40)
        except GitError:
            self._moved()
            raise
        self._head = sha
        return sha

    def maintain(self) -> None:
        """Keep the object store compact: pack loose objects, roll small packs up geometrically."""
        objects = self.workdir / ".git" / "objects"
        packs = len(list((objects / "pack").glob("pack-*.idx")))
        loose = sum(1 for _ in (objects / "17").glob("*")) if (objects / "17").is_dir() else 0
        for needed, args in ((loose > 27, ["repack", "-d", "-q"]),  # ~7,000 loose objects, as gc.auto estimates
                             (packs > 16, ["repack", "-d", "-q", "--geometric=2"])):
            if needed:
                try:
                    proc = git.run(args, cwd=self.workdir, env=self.env, check=False)
                except git.GitError as exc:
                    log.warning("%s", exc)
                    continue
                if not proc.ok:
                    log.warning("git %s: %s", " ".join(args), proc.stderr.decode(errors="replace").strip())

    def ls_files(self) -> list[str]:
        """Every path in the last commit."""
        if not self.head():
            return []
        out = self.git("ls-tree", "-r", "-z", "--name-only", "HEAD")
        return [p for p in out.split("\0") if p]

    def push(self, sha: str, timeout: float = 120) -> None:
        """Push sha to the remote branch; a rejection because the remote moved raises RemoteMoved."""
        try:
            proc = git.run(["push", "-q", "--porcelain", "origin", f"{sha}:refs/heads/{self.branch}"], cwd=self.workdir,
                           env=self.env, timeout=timeout, check=False, remote=self.remote)
        except git.GitError as exc:
            raise GitError(f"push to {self.shown}: {exc.reason}") from exc
        if proc.ok:
            return
        err = (proc.stdout + proc.stderr).decode(errors="replace")
        if "[rejected]" in err or "non-fast-forward" in err or "fetch first" in err:
            raise PushRejected(err.strip().splitlines()[-1] if err.strip() else "rejected")
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        telling = [ln for ln in lines if any(w in ln for w in ("rejected", "error:", "fatal:"))][:3]
        hint = ("; the remote holds a lock on the branch: if no push is running there, remove that .lock file"
                if "remote: error: cannot lock ref" in err else "")
        raise GitError(scrub(f"push to {self.shown}: {' | '.join(telling or lines)}{hint}", self.remote))
