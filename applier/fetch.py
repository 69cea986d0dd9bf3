"""Fetch: know which commit to apply and which paths changed, at the cost of one `git ls-remote` when idle.

A remote URL is mirrored into a bare clone under the work directory and polled with `git ls-remote`; a new
mirror holds only the tip and fetches older history only as far back as a diff or the trust gate needs it. A push
the Git host announces (kubedr.webhook, announce()) wakes wait() and is fetched at once, without the ls-remote. A local
path (a bare repo or a checkout kept current by a git-sync sidecar) is read in place and watched with
watchdog, so a new commit wakes the applier at once; polling stays as the fallback. An HTTP(S) remote is polled
and fetched over one kept connection (kubedr.smarthttp), unless git's own settings say otherwise.

What a commit holds is read from git objects entry by entry (kubedr.repotree): entries the contract refuses are
named and never read, and a long name's file is read to learn the name (kubedr.contract).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubedr import contract, git, smarthttp
from kubedr.commits import CommitReader
from kubedr.contract import ManifestError, ObjectRef
from kubedr.remote import redact
from kubedr.repotree import Listing, TreeError, TreeReader
from kubedr.roles import commit_time

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

log = logging.getLogger("kubedr.applier.fetch")
# What a new commit changes in a git directory besides refs/ (objects are written before any of these),
# and the watchdog events that are writes (not the opens and reads of the applier's own git commands).
REF_FILES = ("HEAD", "packed-refs")
WRITE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})
SHALLOW_STEP = 64  # commits a shallow mirror first deepens by to reach an older commit (then 4x as many, and so on)
LISTINGS_KEPT = 2  # the commit a round applies and the one before it (its changes)
# A round's fetch: no FETCH_HEAD to write, no `git maintenance` process after it (compact() does its part in
# between), and what arrives is kept as the one pack it came in: unpacked into loose objects (git's default for a
# small fetch) a round's ten commits cost 3x the CPU, mostly the kernel's, one file per object.
QUIET_FETCH = ("-q", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance")
KEEP_PACK = ("fetch.unpackLimit", "1")  # set in the mirror's config at start
COMPACT_EVERY = 10  # fetches between two geometric repacks
TIMES_KEPT = 64  # commit times remembered (the applied commit and those the age gauge looks at)


class FetchError(Exception):
    """The repo or the revision cannot be read; one line naming it (a failing git command raises git.GitError)."""


@dataclass
class Objects:
    """A commit's object files: path -> identity, and (path, one-line reason) for what cannot be read as one."""

    refs: dict[str, ObjectRef]
    problems: list[tuple[str, str]]


@dataclass(frozen=True)
class Change:
    """One changed path between two commits: status A (added/modified) or D (deleted)."""

    status: str
    path: str


def default_workdir(repo: str, branch: str) -> Path:
    """A mirror under ~/.cache per repo and branch: two appliers on one machine never read each other's commits."""
    digest = hashlib.sha256(f"{repo}#{branch}".encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubedr" / "applier" / digest


@functools.lru_cache(maxsize=1 << 18)
def _named_by_path(path: str) -> tuple[ObjectRef | None, str, bool]:
    """(the object a path names, why it names none, whether its file must be read to learn the name): the same
    for a path in every commit, so a round judges only the paths it has not seen."""
    try:
        ref = contract.ref_of_path(path)
    except ManifestError as exc:
        return None, exc.reason, False
    return ref, "", ref is not None and contract.hashed(path)


def is_local(repo: str) -> bool:
    """A path on this machine (read in place) rather than a URL (mirrored)."""
    if repo.startswith("file://"):
        return True
    return "://" not in repo and not (":" in repo.split("/", 1)[0] and not os.path.exists(repo))


class Source:
    """The config repo as the applier sees it: resolve a branch, revision or time to a commit; read trees."""

    def __init__(self, repo: str, branch: str = "main", workdir: str | None = None) -> None:
        self.repo = repo
        self.branch = branch
        self.local = is_local(repo)
        self._changed = threading.Event()
        self._announced = threading.Event()  # a verified webhook said the branch moved: fetch, skip ls-remote
        self._observer: BaseObserver | None = None
        if self.local:
            self.gitdir = repo[len("file://"):] if repo.startswith("file://") else repo
            if not Path(self.gitdir).exists():
                raise FetchError(f"repo {repo}: no such directory")
        else:
            base = Path(workdir) if workdir else default_workdir(repo, branch)
            self.gitdir = str(base / "mirror.git")
            try:
                if base.exists() and not base.is_dir():
                    raise FetchError(f"workdir {base}: not a directory")
                base.mkdir(parents=True, exist_ok=True)
                if not Path(self.gitdir, "HEAD").exists():
                    git.run(["init", "--bare", "-q", self.gitdir])
                git.run(["--git-dir", self.gitdir, "config", *KEEP_PACK])
            except (OSError, git.GitError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise FetchError(f"workdir {base}: {reason}") from None
        self._http = smarthttp.Session(repo, Path(self.gitdir), {}) if smarthttp.Session.applies(repo) else None
        self._last_remote: str | None = None
        self._fetches = 0  # since the last compact()
        self._moving = False  # the last poll found a new commit: the next one fetches at once (busy, not idle)
        self._reader = TreeReader(self.gitdir)
        self._commits = CommitReader(self.gitdir)
        self._times: dict[str, float] = {}  # sha -> the primary's commit time (a commit never changes)
        self._listings: dict[str, Listing] = {}  # the last commits read (oldest first)
        self._listing_lock = threading.Lock()
        self._objects: tuple[str, Objects] | None = None
        self._read_names: dict[tuple[str, str], tuple[ObjectRef | None, str]] = {}  # the last commit's long-name files

    # ---- resolving -------------------------------------------------------------------------------------

    def _g(self, *args: str, input_bytes: bytes | None = None, check: bool = True) -> bytes:
        return self._run(list(args), input_bytes, check).stdout

    def _run(self, args: list[str], input_bytes: bytes | None = None, check: bool = True) -> git.Result:
        where = ["-C", self.gitdir] if self.local else ["--git-dir", self.gitdir]
        return git.run([*where, *args], stdin=input_bytes, check=check, remote=self.repo)

    @property
    def checkout(self) -> bool:
        """A local working tree (e.g. git-sync's): what is checked out (HEAD) is what gets applied."""
        return self.local and Path(self.gitdir, ".git").exists()

    def _git_dirs(self) -> list[str]:
        """The git directories whose refs a new commit moves: the worktree's own (its HEAD) and the common one."""
        out = self._g("rev-parse", "--git-dir", "--git-common-dir").decode().split("\n")
        dirs = [d if os.path.isabs(d) else str(Path(self.gitdir, d).resolve()) for d in out if d]
        return list(dict.fromkeys(dirs))

    def head(self) -> str | None:
        """The newest commit of the branch (fetching it when the remote moved); None for an empty repo."""
        if self.local:
            refs = [f"refs/heads/{self.branch}", f"refs/remotes/origin/{self.branch}"]
            for ref in (["HEAD"] if self.checkout else []) + refs:
                found = self._run(["rev-parse", "-q", "--verify", ref + "^{commit}"], check=False)
                if found.ok:
                    return found.text.strip()
            return None
        if self._announced.is_set() or self._moving:  # one git command (a fetch) instead of two: no ls-remote
            self._announced.clear()
            before, self._moving = self._last_remote, False  # a failing fetch leaves the next poll to ls-remote
            self._fetch_tip()
            self._last_remote = self._commits.resolve(f"refs/heads/{self.branch}")
            self._moving = self._last_remote != before  # a branch that moved is likely to move again
            return self._last_remote
        sha = self._http.tip(f"refs/heads/{self.branch}") if self._http is not None else None
        if sha is None:
            out = git.run(["ls-remote", self.repo, f"refs/heads/{self.branch}"], remote=self.repo).text.split()
            sha = out[0] if out else ""
        if not sha:
            return None
        if sha != self._last_remote:  # fetched once, the commit stays: the mirror only ever gains objects
            self._fetch_tip()
            self._last_remote = sha
            self._moving = True
        return sha

    def _fetch_tip(self) -> None:
        """Fetch the branch; a new mirror starts from the tip alone (older history is fetched as needed: reach)."""
        fresh = self._last_remote is None and self._g("for-each-ref", "--count=1", "refs/heads/").strip() == b""
        self._fetches += 1
        if not fresh and self._http is not None and self._http.fetch(self.branch):
            return  # over the kept HTTP(S) connection (kubedr.smarthttp)
        self._g("fetch", *QUIET_FETCH, *(["--depth=1"] if fresh else []), self.repo, *self._refspecs)

    def compact(self) -> None:
        """Every COMPACT_EVERY fetches, roll the small packs they kept into bigger ones (`git repack --geometric`:
        the pack count stays logarithmic, the cost in proportion to what arrived), so reading objects stays
        fast; called between rounds, off a change's path."""
        if self._fetches >= COMPACT_EVERY:
            self._fetches = 0
            self._g("repack", "-d", "-l", "-q", "--geometric=2")

    @property
    def _refspecs(self) -> list[str]:
        return [f"+refs/heads/{self.branch}:refs/heads/{self.branch}", "+refs/tags/*:refs/tags/*"]

    @property
    def shallow(self) -> bool:
        """Whether the mirror holds only the recent part of the history."""
        return not self.local and Path(self.gitdir, "shallow").exists()

    def reach(self, old: str | None, new: str) -> bool:
        """Fetch a shallow mirror's history back to old (all of it when old is None), deepening a little more each
        time; whether old is new or an ancestor of it."""
        depth = SHALLOW_STEP
        while True:
            if old and self.has(old) and self.is_ancestor(old, new):
                return True
            if not self.shallow:
                return False
            self._g("fetch", *QUIET_FETCH, "--unshallow" if old is None else f"--deepen={depth}", self.repo,
                    *self._refspecs)
            depth *= 4

    def fetch_all(self) -> None:
        """Bring tags and the branch's full history (for --revision and --at on a mirrored remote)."""
        if not self.local:
            self._g("fetch", "-q", *(["--unshallow"] if self.shallow else []), self.repo, *self._refspecs)

    @property
    def commit_reader(self) -> CommitReader:
        """The in-process reader of this repo's commits (kubedr.commits), kept open."""
        return self._commits

    def has(self, sha: str) -> bool:
        """Whether the commit is present locally."""
        return self._commits.has(sha)

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether old is new or one of its ancestors."""
        return self._commits.is_ancestor(old, new)

    def resolve(self, revision: str) -> str:
        """A sha, tag or branch name to a commit sha."""
        self.fetch_all()
        found = self._run(["rev-parse", "-q", "--verify", revision + "^{commit}"], check=False)
        if not found.ok:
            raise FetchError(f"revision {revision!r} not found in {redact(self.repo)}")
        return found.text.strip()

    def at(self, timestamp: str) -> str:
        """The last commit of the branch at or before a time (anything `git log --before` accepts)."""
        self.fetch_all()
        tip = self.head()
        if tip is None:
            raise FetchError(f"repo {redact(self.repo)} has no commits on {self.branch}")
        out = self._g("rev-list", "-n1", "--first-parent", f"--before={timestamp}", tip).decode().strip()
        if not out:
            raise FetchError(f"no commit on {self.branch} at or before {timestamp}")
        return out

    def commit_time(self, sha: str) -> float:
        """The primary's commit time, Unix seconds (roles.commit_time), read in this process and kept."""
        found = self._times.get(sha)
        if found is None:
            commit = self._commits.commit(sha)
            if commit is None:
                raise FetchError(f"commit {sha[:12]} not found in {redact(self.repo)}")
            while len(self._times) >= TIMES_KEPT:
                self._times.pop(next(iter(self._times)))
            found = self._times[sha] = commit_time(commit)
        return found

    def ancestry(self, new: str, old: str | None = None) -> list[tuple[str, list[str]]]:
        """(sha, parents) of the commits after old up to new, ancestors first (all of new's when old is None)."""
        try:
            return self._commits.ancestry(new, [old] if old else [])
        except KeyError as exc:
            raise FetchError(f"{exc.args[0]} in {redact(self.repo)}") from None

    def oldest_between(self, new: str, old: str) -> str | None:
        """The commit with the oldest committer time among those of new not in old; None when there is none."""
        pending = self._commits.between(new, [old])
        return min(pending, key=lambda c: c[1])[0] if pending else None

    def commits(self, revs: list[str], no_walk: bool = False) -> list[git.Commit]:
        """The commits of revs (options such as --since allowed), newest first, with times and trailers."""
        if self.local:
            return git.log(revs, cwd=self.gitdir, no_walk=no_walk)
        return git.log(revs, git_dir=self.gitdir, no_walk=no_walk)

    # ---- reading -----------------------------------------------------------------------------------------

    def listing(self, sha: str) -> Listing:
        """What a commit holds that may be read, and the entries refused (kept for the last two commits)."""
        with self._listing_lock:  # the round and the drift watch read from their own threads
            found = self._listings.get(sha)
            if found is None:
                try:
                    found = self._reader.read(sha)
                except TreeError as exc:
                    raise FetchError(str(exc)) from exc
                while len(self._listings) >= LISTINGS_KEPT:
                    self._listings.pop(next(iter(self._listings)))
                self._listings[sha] = found
            return found

    def tree(self, sha: str) -> dict[str, str]:
        """Every file of a commit that may be read: path -> blob sha."""
        return dict(self.listing(sha).files)

    def file(self, sha: str, path: str) -> str | None:
        """The blob of one file of a commit (None when absent or refused), without reading the whole tree."""
        return self._reader.file(sha, path)

    def objects(self, sha: str) -> Objects:
        """The commit's object files with their identities (a long name's read from its file) and the problems:
        refused tree entries, misnamed paths, long-name files that do not hold their name."""
        if self._objects is not None and self._objects[0] == sha:
            return self._objects[1]
        listing = self.listing(sha)
        found = Objects({}, [(r.path, f"tree entry refused: {r.reason}; not read") for r in listing.refused])
        hashed: list[str] = []
        read: dict[tuple[str, str], tuple[ObjectRef | None, str]] = {}  # (path, blob) of a long-name file -> what it held
        for path, blob in listing.files.items():
            ref, problem, from_file = _named_by_path(path)
            if from_file:
                before = self._read_names.get((path, blob))
                if before is None:
                    hashed.append(path)
                    continue
                ref, problem = read[path, blob] = before
            if ref is not None:
                found.refs[path] = ref
            elif problem:
                found.problems.append((path, problem))
        for path, data in zip(hashed, self.read_blobs([listing.files[p] for p in hashed]), strict=True):
            try:
                found.refs[path] = contract.ref_of(contract.load(data, path))
                read[path, listing.files[path]] = (found.refs[path], "")
            except ManifestError as exc:
                found.problems.append((path, exc.reason))
                read[path, listing.files[path]] = (None, exc.reason)
        self._objects, self._read_names = (sha, found), read
        return found

    def changes(self, old: str, new: str) -> list[Change] | None:
        """Paths changed from old to new; None when old is unknown here (history rewritten): apply all."""
        self.reach(old, new)
        if not self.has(old):
            return None
        before, after = self.listing(old).files, self.listing(new).files  # not `git diff`: it dies on hostile trees
        return [*(Change("A", p) for p, blob in after.items() if before.get(p) != blob),
                *(Change("D", p) for p in before.keys() - after.keys())]

    def read_blobs(self, blobs: list[str]) -> Iterator[bytes]:
        """Contents of blobs of a listing, in order (read in this process, one at a time)."""
        return self._reader.blobs(blobs)

    # ---- waiting -----------------------------------------------------------------------------------------

    def watch(self) -> None:
        """Wake wait() when a new commit lands in a local repo; a no-op for mirrored remotes.

        Only what a new commit changes is watched (HEAD, packed-refs, refs/, the git-sync link), and only
        writes count: the applier's own reads (git rev-parse, cat-file) must not wake it, or it never sleeps.
        """
        if not self.local or self._observer is not None:
            return
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return
        changed = self._changed
        dirs = self._git_dirs()
        exact = {os.path.join(d, name) for d in dirs for name in REF_FILES}
        prefixes = tuple(os.path.join(d, "refs") + os.sep for d in dirs)
        link = os.path.abspath(self.gitdir.rstrip("/"))
        if os.path.islink(link):  # git-sync swaps a symlink to the new worktree
            exact.add(link)

        def moves_a_ref(path: str) -> bool:
            return not path.endswith(".lock") and (path in exact or path.startswith(prefixes))

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in WRITE_EVENTS and any(
                        moves_a_ref(os.fsdecode(p)) for p in (event.src_path, getattr(event, "dest_path", ""))):
                    changed.set()

        observer = Observer()
        handler = _Wake()
        for d in dirs:
            observer.schedule(handler, d, recursive=False)
            if os.path.isdir(os.path.join(d, "refs")):
                observer.schedule(handler, os.path.join(d, "refs"), recursive=True)
        if link in exact:
            observer.schedule(handler, os.path.dirname(link), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def announce(self, sha: str = "") -> None:
        """A verified webhook says the branch moved (to sha): wake wait(); the next head() fetches at once.

        Nothing runs here (it is the webhook's thread): the fetch itself says where the branch is, not sha."""
        log.debug("push to %s announced (%s)", self.branch, sha[:12] or "no commit named")
        self._announced.set()
        self._changed.set()

    def wait(self, interval: float, stop: threading.Event | None = None) -> None:
        """Sleep until the interval passes, the local repo changes, a push is announced, or stop is set."""
        deadline = time.monotonic() + interval
        while not (stop is not None and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0 or self._changed.wait(min(left, 0.25)):
                break
        self._changed.clear()

    def close(self) -> None:
        """Stop the watcher; close the kept connection."""
        if self._http is not None:
            self._http.close()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(2)
            self._observer = None
