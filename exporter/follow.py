"""Commits others push to the branch: a policy change takes effect, a hand edit of an object file is undone.

The exporter is the only writer of object files: the truth is the primary cluster. When the branch gains a
commit the exporter did not make, it is brought into the clone (a fast-forward, or the unpushed commits made
again on top of it; never a force-push, history is never rewritten), a changed `.kubedr/policy.yaml` is read
again, and every type whose files the commit touched is listed again, so the next commit (`resync`) writes
back the cluster's state and drops any entry kubedr does not read (exporter/treewalk.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubedr import git
from kubedr.exporter.gitstore import GitStore, StorageFull

log = logging.getLogger("kubedr.exporter.follow")


class Follower:
    """Polls the remote head while the exporter is idle; the committer catches up under its lock."""

    def __init__(self, store: GitStore, idle: Callable[[], bool], wake: Callable[[], None],
                 on_foreign: Callable[[list[str]], None], interval: float = 10.0,
                 moved_head: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.idle = idle  # the last commit is on the remote
        self.wake = wake  # nudges the committer loop
        self.on_foreign = on_foreign  # paths that commits of others changed
        self.interval = interval
        self.moved_head = moved_head  # HEAD now is the remote's tip: the pusher must learn it is there
        self.moved = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        """Every interval, while idle: does the remote branch hold a commit we do not have?"""
        while not self.stopping.wait(self.interval):
            if self.moved.is_set() or not self.idle():
                continue
            try:
                remote = self.store.remote_head()
            except (git.GitError, StorageFull) as exc:
                log.debug("remote check failed: %s", exc)
                continue
            head = self.store.head()
            if remote and remote != head and not (head and self.store.is_ancestor(remote, head)):
                log.info("branch %s moved on %s (%s); bringing it in", self.store.branch, self.store.shown,
                         remote[:12])
                self.moved.set()
                self.wake()

    def stop(self) -> None:
        self.stopping.set()

    def catch_up(self) -> None:
        """In the committer, nothing pending: take the remote's commits, then react to what they changed."""
        if self.moved.is_set():
            self.moved.clear()
            try:
                self.store.sync_with_remote()
            except (git.GitError, StorageFull) as exc:
                log.error("cannot bring in the remote's commits: %s", exc)
            self.moved_head()
        paths = self.store.take_foreign()
        if paths:
            self.on_foreign(sorted(paths))
