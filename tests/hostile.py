"""Hostile repo content made with real git plumbing: trees git's own commands refuse to write (a slash in a
name, `..`, duplicates, odd modes), written with `git hash-object -t tree --literally`, as an attacker would."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

Entry = tuple[str, bytes, str]  # (octal mode as git writes it, name, object id hex)


def _git(where: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(where), *args], input=data, capture_output=True,
                          check=True).stdout.decode().strip()


def blob(repo: Path, data: bytes) -> str:
    """Write a blob; its id."""
    return _git(repo, "hash-object", "-w", "--stdin", data=data)


def tree(repo: Path, entries: Iterable[Entry]) -> str:
    """Write a tree holding exactly these entries, in this order, unchecked; its id."""
    raw = b"".join(mode.encode() + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries)
    return _git(repo, "hash-object", "-t", "tree", "-w", "--literally", "--stdin", data=raw)


def entries_of(repo: Path, tree_id: str) -> list[Entry]:
    """The entries of an existing tree (to add a hostile one beside them)."""
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-z", tree_id], capture_output=True,
                         check=True).stdout
    found = []
    for item in out.split(b"\0"):
        if item:
            meta, _, name = item.partition(b"\t")
            mode, _, oid = meta.split(b" ")
            found.append((mode.decode().lstrip("0") or "0", name, oid.decode()))
    return found


def commit(repo: Path, tree_id: str, message: str, parent: str | None = None, branch: str = "main") -> str:
    """Commit a tree on top of the branch (or of parent) and move the branch there; the commit's id."""
    parents = ["-p", parent] if parent else []
    sha = _git(repo, "commit-tree", tree_id, *parents, "-m", message)
    _git(repo, "update-ref", f"refs/heads/{branch}", sha)
    return sha


def add(repo: Path, branch: str, where: str, *extra: Entry) -> str:
    """Commit the branch's tree with these entries added to the directory `where` ("" for the root); the commit."""
    head = _git(repo, "rev-parse", f"refs/heads/{branch}")

    def rewrite(tree_id: str, parts: list[str]) -> str:
        found = entries_of(repo, tree_id)
        if not parts:
            return tree(repo, sorted(found + list(extra), key=lambda e: e[1]))
        sub = next(e for e in found if e[1] == parts[0].encode())
        rest = [e for e in found if e is not sub]
        return tree(repo, sorted([*rest, ("40000", sub[1], rewrite(sub[2], parts[1:]))], key=lambda e: e[1]))

    root = rewrite(f"{head}^{{tree}}", [p for p in where.split("/") if p])
    return commit(repo, root, f"hostile entries in {where or 'the root'}", head, branch)
