"""A commit's tree as data: read entry by entry from git objects (libgit2), never through a work tree.

Every entry is judged before anything is read: contract.entry_problem (git's own name rules, regular files and
directories only), the object's type against its mode, a name that occurs twice in one tree, and a file's size
against contract.MAX_FILE_BYTES. A refused entry is named in one line and never read; a refused directory is not
entered. Trees are parsed from their raw bytes, because libgit2's parser turns odd modes (100664) into 100644.
Each directory's result is kept (by tree id, until the next read), so a new commit costs only the directories it
changed, and a file whose blob was judged before is not judged again.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pygit2

from kubedr import contract

OID_BYTES = 20  # sha1 object ids
_KINDS = {contract.TREE_MODE: pygit2.GIT_OBJECT_TREE}  # what an entry's mode says its object is; files: a blob
_TYPE_NAMES = {pygit2.GIT_OBJECT_BLOB: "blob", pygit2.GIT_OBJECT_TREE: "tree", pygit2.GIT_OBJECT_COMMIT: "commit",
               pygit2.GIT_OBJECT_TAG: "tag"}


# a changed directory is judged again entry by entry: the verdict on a name and mode is the same every time
_entry_problem = functools.lru_cache(maxsize=1 << 16)(contract.entry_problem)


class TreeError(Exception):
    """The commit or its root tree cannot be read; one line."""


@dataclass(frozen=True)
class Refused:
    """One tree entry that is not read: where it is (its name quoted) and why."""

    path: str
    reason: str


@dataclass
class Listing:
    """What a commit holds that may be read: path -> blob id (hex), and the entries refused."""

    files: dict[str, str] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)


@dataclass
class _Dir:
    """One tree's own entries, judged; the same for every path the tree appears at."""

    files: dict[str, str] = field(default_factory=dict)  # name -> blob id
    dirs: dict[str, bytes] = field(default_factory=dict)  # name -> tree id
    refused: list[tuple[bytes | None, str]] = field(default_factory=list)  # (name, why); None: the tree itself


def where(parent: str, name: bytes) -> str:
    """An entry's place for messages: the parent's path and the name quoted (a slash in a name shows)."""
    quoted = repr(name.decode("utf-8", "backslashreplace"))
    return f"{parent}/{quoted}" if parent else quoted


def entries(raw: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(mode, name, object id) of each entry of a raw tree object, in order."""
    pos, end = 0, len(raw)
    while pos < end:
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        oid = raw[nul + 1:nul + 1 + OID_BYTES]
        if len(oid) != OID_BYTES:
            raise ValueError("truncated tree entry")
        yield int(raw[pos:space], 8), raw[space + 1:nul], oid
        pos = nul + 1 + OID_BYTES


class TreeReader:
    """Reads commits' trees and blobs of one repository; safe to share between threads."""

    def __init__(self, gitdir: str) -> None:
        self.gitdir = gitdir
        self._local = threading.local()  # one libgit2 handle per thread
        self._lock = threading.Lock()
        self._trees: dict[bytes, _Dir] = {}  # tree id -> its entries, judged (those of the last read)
        self._paths: dict[str, bytes] = {}  # directory path -> tree id, as the last read found them

    @property
    def _repo(self) -> pygit2.Repository:
        repo: pygit2.Repository | None = getattr(self._local, "repo", None)
        if repo is None:
            repo = self._local.repo = pygit2.Repository(self.gitdir)
        return repo

    def _root(self, commit: str) -> bytes:
        """The commit's tree id; the tree itself is left to _parse (libgit2 refuses to parse a hostile one)."""
        return self._repo.revparse_single(commit).peel(pygit2.Commit).tree_id.raw

    def read(self, commit: str) -> Listing:
        """The files of a commit that may be read, and the entries refused (anywhere in the tree)."""
        try:
            root = self._root(commit)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise TreeError(f"commit {commit[:12]}: no tree ({exc})") from exc
        out = Listing()
        with self._lock:
            seen: dict[str, bytes] = {}
            self._walk(root, out, seen)
            keep = set(seen.values())  # (the one before is found while this read walks; then it goes)
            self._trees = {tree: d for tree, d in self._trees.items() if tree in keep}
            self._paths = seen
        return out

    def file(self, commit: str, path: str) -> str | None:
        """One file's blob id, judged as read() judges every entry on the way; None when absent or refused."""
        try:
            tree = self._root(commit)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        *dirs, name = path.split("/")
        for part in dirs:
            found = self._judged(tree).dirs.get(part)
            if found is None:
                return None
            tree = found
        return self._judged(tree).files.get(name)

    def _judged(self, tree: bytes) -> _Dir:
        """One tree's entries, judged: kept from a read, or parsed now and not kept (file() walks many commits)."""
        with self._lock:
            here = self._trees.get(tree)
        return here if here is not None else self._parse(tree, {})

    def _walk(self, root: bytes, out: Listing, seen: dict[str, bytes]) -> None:
        todo = [("", root)]  # a stack, not recursion: a tree may be nested deeper than Python recurses
        while todo:
            path, tree = todo.pop()
            here = self._trees.get(tree)
            if here is None:
                before = self._trees.get(self._paths.get(path, b""))
                here = self._trees[tree] = self._parse(tree, before.files if before is not None else {})
            seen[path] = tree
            prefix = f"{path}/" if path else ""
            for name, blob in here.files.items():
                out.files[prefix + name] = blob
            out.refused.extend(Refused(path or "(root)" if name is None else where(path, name), why)
                               for name, why in here.refused)
            todo.extend((prefix + name, sub) for name, sub in reversed(here.dirs.items()))

    def _parse(self, tree: bytes, judged: dict[str, str]) -> _Dir:
        """Judge one tree's entries; files whose blob is in judged (name -> blob) passed before."""
        odb = self._repo.odb
        here = _Dir()
        try:
            listed = list(entries(odb.read(pygit2.Oid(raw=tree))[1]))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            here.refused.append((None, f"unreadable tree ({exc})"))
            return here
        count: dict[bytes, int] = {}
        for _, name, _ in listed:
            count[name] = count.get(name, 0) + 1
        for mode, name, oid in listed:
            problem = "a name that occurs twice in one tree" if count[name] > 1 else \
                _entry_problem(name, mode)
            text = name.decode("utf-8", "backslashreplace")
            if problem is None and judged.get(text) != oid.hex():
                problem = self._object_problem(odb, mode, oid)
            if problem is not None:
                here.refused.append((name, problem))
            elif mode == contract.TREE_MODE:
                here.dirs[text] = oid
            else:
                here.files[text] = oid.hex()
        return here

    @staticmethod
    def _object_problem(odb: pygit2.Odb, mode: int, oid: bytes) -> str | None:
        """Why the entry's object may not be read: missing, not what the mode says, or too big."""
        try:
            kind, size = odb.read_header(pygit2.Oid(raw=oid))
        except (KeyError, ValueError, pygit2.GitError):
            return f"object {oid.hex()[:12]} is missing from the repository"
        want = _KINDS.get(mode, pygit2.GIT_OBJECT_BLOB)
        if kind != want:
            return f"mode {mode:o} but the object is a {_TYPE_NAMES.get(kind, kind)}"
        if want == pygit2.GIT_OBJECT_BLOB and size > contract.MAX_FILE_BYTES:
            return f"{size} bytes, over the {contract.MAX_FILE_BYTES} byte limit"
        return None

    def blobs(self, ids: list[str]) -> Iterator[bytes]:
        """The contents of blobs (ids from read), in order."""
        odb = self._repo.odb
        for hexid in ids:
            try:
                yield odb.read(pygit2.Oid(hex=hexid))[1]
            except KeyError:  # gone since the tree was read (a repack of a broken repo): nothing to parse
                yield b""
