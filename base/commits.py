"""Commits read in this process (libgit2): presence, ancestry, the commits between two, one commit's raw bytes.

A round asks these of commits already fetched many times over; a git process for each (cat-file, merge-base,
log) cost more CPU than the round's own work. Network and writes stay git processes (kubedr.git). libgit2 finds
objects a git process fetched meanwhile (it re-reads the pack list when an object is missing).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import pygit2

from kubedr import git

_ERRORS = (KeyError, ValueError, TypeError, pygit2.GitError)
HEX, HEX_LENGTH = frozenset("0123456789abcdef"), 40
ANCESTORS_KEPT = 4096


class CommitReader:
    """Reads the commits of one repository; safe to share between threads (one libgit2 handle per thread)."""

    def __init__(self, gitdir: str) -> None:
        self.gitdir = gitdir
        self._local = threading.local()
        self._shallow = [os.path.join(gitdir, "shallow"), os.path.join(gitdir, ".git", "shallow")]
        self._ancestors: set[tuple[pygit2.Oid, pygit2.Oid]] = set()  # (old, new) pairs found related

    def _stamp(self) -> tuple[int, ...]:
        """The shallow file as it is now: a deepened mirror has commits whose parents a handle opened before
        still sees cut off."""
        out: tuple[int, ...] = ()
        for path in self._shallow:
            try:
                st = os.stat(path)
                out += (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                out += (0,)
        return out

    @property
    def _repo(self) -> pygit2.Repository:
        repo: pygit2.Repository | None = getattr(self._local, "repo", None)
        stamp = self._stamp()
        if repo is None or self._local.stamp != stamp:
            repo = self._local.repo = pygit2.Repository(self.gitdir)
            self._local.stamp = stamp
        return repo

    def _id(self, rev: str) -> pygit2.Oid | None:
        repo = self._repo
        try:
            if len(rev) == HEX_LENGTH and all(c in HEX for c in rev):  # a sha: no revision parsing
                found = repo.get(rev)
                if isinstance(found, pygit2.Commit):
                    return found.id
            return repo.revparse_single(f"{rev}^{{commit}}").id
        except _ERRORS:
            return None

    def resolve(self, rev: str) -> str | None:
        """The commit a revision names (sha, ref), None when there is none here."""
        found = self._id(rev)
        return str(found) if found is not None else None

    def has(self, rev: str) -> bool:
        """Whether the commit is present (as `git cat-file -e REV^{commit}`)."""
        return self._id(rev) is not None

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether old is new or one of its ancestors (as `git merge-base --is-ancestor`; False when either is
        missing or the history between them is not here)."""
        a, b = self._id(old), self._id(new)
        if a is None or b is None:
            return False
        if a == b or (a, b) in self._ancestors:
            return True
        try:
            found = bool(self._repo.descendant_of(b, a))
        except _ERRORS:
            return False
        if found:  # for good: commits never change (a no can turn yes once a shallow mirror deepens)
            if len(self._ancestors) >= ANCESTORS_KEPT:
                self._ancestors.clear()
            self._ancestors.add((a, b))
        return found

    def _walk(self, new: str, old: Sequence[str], order: pygit2.enums.SortMode) -> pygit2.Walker:
        start = self._id(new)
        if start is None:
            raise KeyError(f"commit {new[:12]} not found")
        walker = self._repo.walk(start, order)
        for hidden in filter(None, map(self._id, old)):
            walker.hide(hidden)
        return walker

    def between(self, new: str, old: Sequence[str] = ()) -> list[tuple[str, int]]:
        """(sha, committer time) of the commits of new that are not in old (`git log NEW ^OLD...`), newest first."""
        return [(str(c.id), int(c.commit_time)) for c in self._walk(new, old, pygit2.enums.SortMode.TIME)]

    def ancestry(self, new: str, old: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
        """(sha, parents) of the commits of new not in old, ancestors first (`git rev-list --topo-order --reverse
        --parents NEW ^OLD...`; where merges allow more than one such order, libgit2's)."""
        order = pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE
        return [(str(c.id), [str(p) for p in c.parent_ids]) for c in self._walk(new, old, order)]

    def raw(self, sha: str) -> bytes | None:
        """The commit object's bytes as stored (headers, signature, message), None when absent."""
        found = self._id(sha)
        if found is None:
            return None
        try:
            kind, data = self._repo.odb.read(found)
        except _ERRORS:
            return None
        return bytes(data) if kind == pygit2.GIT_OBJECT_COMMIT else None

    def commit(self, sha: str) -> git.Commit | None:
        """One commit as kubedr.git.log tells it (sha, committer time, subject, trailers), None when absent. The
        trailers are libgit2's reading (git's rules; a key given twice keeps one value): for times, not trust."""
        found = self._id(sha)
        if found is None:
            return None
        try:
            c = self._repo[found]
            if not isinstance(c, pygit2.Commit):
                return None
            message = c.message
            try:
                trailers = {k: [v] for k, v in c.message_trailers.items()}
            except _ERRORS:
                trailers = {}
            subject = " ".join(message.strip().split("\n\n", 1)[0].split())
            return git.Commit(str(found), int(c.commit_time), subject, trailers)
        except _ERRORS:
            return None
