"""Unpushed commits made again on a remote tip that moved, in-process: the cluster's version wins, nothing conflicts.

The exporter's commits hold what it saw in the cluster. When the branch moved under them (a hand edit, a
reseal, a second exporter without leader election), each unpushed commit is made again on the remote's tip with
the files it changed, whole: where both sides changed a file, the exporter's version wins, and what the
remote's commits changed is listed again and written back from the cluster (exporter/follow.py). A commit whose
files the tip already holds is dropped, as a rebase drops one already upstream. No work tree, no index: trees
are built through libgit2 from the tip's, so an entry git refuses on the remote cannot stop it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pygit2

from kubedr.exporter.gittree import TreeCache
from kubedr.exporter.treewalk import resolves, walk

# (tree, parent, message, time) -> the new commit's sha
MakeCommit = Callable[[pygit2.Oid, str, str, float], str]


def changes_of(repo: pygit2.Repository, commit: pygit2.Commit) -> dict[str, bytes | None]:
    """path -> raw blob id (None: removed) of the regular files a commit changed against its first parent.

    libgit2's diff, checked path by path; where it cannot read a tree (one kubedr dropped), the slower walk.
    """
    before_id = commit.parents[0].tree_id if commit.parents else repo.TreeBuilder().write()
    out: dict[str, bytes | None] = {}
    try:
        deltas = repo[before_id].peel(pygit2.Tree).diff_to_tree(commit.tree).deltas
        for delta in deltas:
            gone = delta.status == pygit2.enums.DeltaStatus.DELETED
            side, tree = (delta.old_file, before_id) if gone else (delta.new_file, commit.tree_id)
            path = side.raw_path.decode("utf-8", "surrogateescape")
            if resolves(repo, tree, path, side.id, side.mode):  # never an entry named like a path
                out[path] = None if gone else side.id.raw
    except pygit2.GitError:
        return dict(walk(repo, commit.tree_id, before_id).changes)
    return out


def replay(repo: pygit2.Repository, commits: Sequence[str], onto: str, make_commit: MakeCommit) -> tuple[str, int]:
    """Make commits (oldest first) again on onto; (the new tip, how many were made, the rest being upstream)."""
    tip = onto
    cache = TreeCache(repo, repo[onto].peel(pygit2.Commit).tree_id)
    made = 0
    for sha in commits:
        commit = repo[sha].peel(pygit2.Commit)
        before = cache.root
        tree = cache.apply(changes_of(repo, commit))
        if tree == before:
            continue  # the tip holds it already
        tip = make_commit(tree, tip, commit.message, float(commit.commit_time))
        made += 1
    return tip, made
