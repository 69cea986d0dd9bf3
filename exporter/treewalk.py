"""What a branch's trees hold, read as data: regular files under names git accepts, and every entry that is not.

The repo is untrusted input. An entry that `kubedr.contract.entry_problem` refuses (a symbolic link, a submodule,
an odd mode, a name git itself refuses) is reported and never read nor descended into; the exporter drops it
with its next commit, as it writes back any hand edit. Given the tree it replaces, a walk descends only into
directories whose ids differ; it keeps a stack, not Python's call stack, so a deeply nested tree cannot end it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from kubedr.contract import FILE_MODES, TREE_MODE, entry_problem


def shown(path: str) -> str:
    """A path for one log line: bytes that are not UTF-8 and unprintable characters escaped."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Refused:
    """A tree entry kubedr does not read: the directory holding it, its name as libgit2 gives it, and why."""

    folder: str  # "" for the root; every name on the way there is one git accepts
    name: str  # libgit2's name: bytes that are not UTF-8 are surrogate-escaped
    why: str

    @property
    def path(self) -> str:
        """Where it is, for messages ("(root)": the commit's whole tree)."""
        if not self.folder and not self.name:
            return "(root)"
        return shown(f"{self.folder}/{self.name}" if self.folder else self.name)


@dataclass
class Walk:
    """The regular files that differ (raw blob id, None when gone) and the refused entries met on the way."""

    changes: list[tuple[str, bytes | None]] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        """The paths that differ."""
        return [path for path, _ in self.changes]


def tree_problem(repo: pygit2.Repository, oid: pygit2.Oid) -> str | None:
    """Why the object behind a directory entry cannot be walked: not a tree, or a tree libgit2 cannot parse."""
    try:
        tree = repo.get(oid)
    except pygit2.GitError as exc:  # an empty name, say: git refuses to read such a tree too
        return f"a tree that cannot be read ({str(exc).rpartition(': ')[2] or exc})"
    return None if isinstance(tree, pygit2.Tree) else "a directory entry whose object is not a tree"


def _entries(repo: pygit2.Repository, oid: pygit2.Oid | None) -> list[pygit2.Object]:
    if oid is None or tree_problem(repo, oid) is not None:
        return []
    return list(repo[oid].peel(pygit2.Tree))


def _problem(repo: pygit2.Repository, entry: pygit2.Object) -> str | None:
    """Why entry is not read: the contract's rule, or a directory entry whose tree cannot be walked."""
    why = entry_problem(entry.raw_name or b"", entry.filemode)
    if why is None and entry.filemode == TREE_MODE:
        return tree_problem(repo, entry.id)
    return why


def walk(repo: pygit2.Repository, new: pygit2.Oid | None, old: pygit2.Oid | None = None) -> Walk:
    """Compare the trees new and old (None: empty): the files that differ, and new's refused entries.

    A root tree that cannot be read at all is one refused entry with an empty name: nothing of it is kept.
    """
    out = Walk()
    why = tree_problem(repo, new) if new is not None else None
    if why is not None:
        out.refused.append(Refused("", "", why))
        new = None
    stack: list[tuple[str, pygit2.Oid | None, pygit2.Oid | None]] = [("", new, old)]
    while stack:
        folder, new_id, old_id = stack.pop()
        before = {e.name or "": e for e in _entries(repo, old_id)}
        prefix = f"{folder}/" if folder else ""
        for entry in _entries(repo, new_id):
            name = entry.name or ""
            was = before.pop(name, None)
            if was is not None and was.id == entry.id and was.filemode == entry.filemode:
                continue
            why = _problem(repo, entry)
            if why is not None:
                out.refused.append(Refused(folder, name, why))
                entry_id = None
            else:
                entry_id = entry.id
            path = prefix + name
            new_tree = entry_id if entry.filemode == TREE_MODE else None
            old_tree = was.id if was is not None and was.filemode == TREE_MODE and _accepted(repo, was) else None
            if new_tree is not None or old_tree is not None:
                stack.append((path, new_tree, old_tree))
            if entry_id is not None and entry.filemode in FILE_MODES:
                out.changes.append((path, entry_id.raw))
            elif was is not None and was.filemode in FILE_MODES and _accepted(repo, was):
                out.changes.append((path, None))
        for name, was in before.items():  # gone from new
            if not _accepted(repo, was):
                continue
            if was.filemode == TREE_MODE:
                stack.append((prefix + name, None, was.id))
            elif was.filemode in FILE_MODES:
                out.changes.append((prefix + name, None))
    return out


def _accepted(repo: pygit2.Repository, entry: pygit2.Object) -> bool:
    return _problem(repo, entry) is None


def files(repo: pygit2.Repository, tree: pygit2.Oid | None) -> Walk:
    """Every regular file of a tree under names git accepts, and its refused entries."""
    return walk(repo, tree, None)


def resolves(repo: pygit2.Repository, tree: pygit2.Oid, path: str, oid: pygit2.Oid, mode: int) -> bool:
    """True when path names, component by component, a regular file with this id and mode in tree.

    libgit2's diffs join names with '/', so an entry named `a/b` and the file b in directory a print alike;
    a change is replayed only when its path is what it says.
    """
    node = repo.get(tree) if tree_problem(repo, tree) is None else None
    parts = path.split("/")
    for i, part in enumerate(parts):
        if not isinstance(node, pygit2.Tree) or part not in node:
            return False
        entry = node[part]
        if entry_problem(part.encode("utf-8", "surrogateescape"), entry.filemode) is not None:
            return False
        if i == len(parts) - 1:
            return entry.filemode == mode and mode in FILE_MODES and entry.id == oid
        if entry.filemode != TREE_MODE or tree_problem(repo, entry.id) is not None:
            return False
        node = repo.get(entry.id)
    return False
