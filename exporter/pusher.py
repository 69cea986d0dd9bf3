"""Push in the background with retry and backoff; the local clone buffers while the remote is away."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pygit2

from kubedr import git, metrics
from kubedr.backoff import Backoff
from kubedr.exporter.gitstore import GitStore, PushRejected, StorageFull

log = logging.getLogger("kubedr.exporter.pusher")


class Pusher:
    """Pushes HEAD whenever it moves; when the remote moved, makes the unpushed commits again on its tip."""

    def __init__(self, store: GitStore, backoff_initial: float = 0.2, backoff_max: float = 30.0, *,
                 on_idle: Callable[[], None] | None = None, fence: Callable[[], str | None] | None = None) -> None:
        self.store = store
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_idle = on_idle or (lambda: None)  # wakes the committer after a push or a failure
        self.fence = fence or (lambda: None)  # why not to push onto the remote (exporter/fence.py); None: push
        self._cond = threading.Condition()
        self._received: list[float] = []
        self._dirty = True  # push whatever HEAD is at start (unpushed commits from a previous run)
        self.pushed: str | None = None
        self.pushes = 0
        self.failing = False  # the last push failed: commits go on locally without waiting for pushes
        self.stopping = threading.Event()
        self.failed: BaseException | None = None
        self.fenced: str | None = None  # set when a push was withheld: the exporter stops and waits for the role
        self._maintenance: threading.Thread | None = None  # the running `git repack`, if any

    def notify(self, sha: str, received: list[float]) -> None:
        """Called after each commit: remember when its changes arrived, wake the push loop."""
        with self._cond:
            self._received.extend(received)
            self._dirty = True
            self._cond.notify()

    def idle(self) -> bool:
        """True when the last commit is on the remote, or the remote is failing (commits then stay local)."""
        return self.failing or self.pushed == self.store.head()

    def stop(self) -> None:
        self.stopping.set()
        with self._cond:
            self._cond.notify()

    def push_once(self) -> bool:
        """Push HEAD now; True when the remote has it (replaying onto the remote first if it moved)."""
        with self._cond:
            received, self._received = self._received, []
            self._dirty = False
        head = self.store.head()
        if head is None or head == self.pushed:
            return True
        started = time.monotonic()
        try:
            for _ in range(3):
                if self._withheld(received):
                    return False
                try:
                    self.store.push(head)
                    break
                except PushRejected as exc:
                    log.warning("remote %s moved (%s); fetching and replaying", self.store.shown, exc)
                    self.store.fetch()
                    if self._withheld(received):  # the role moved: never replay onto the new writer's work
                        return False
                    self.store.rebase_onto_remote()
                    head = self.store.head() or head
                    if head == self.pushed or self._on_remote(head):
                        break  # the remote held all of it already
            else:
                raise PushRejected("remote keeps moving; will retry")
        except (git.GitError, PushRejected, StorageFull, OSError, pygit2.GitError) as exc:
            with self._cond:
                self._received = received + self._received
                self._dirty = True
            self._set_failing(True)
            metrics.EXPORT_PUSH_FAILURES.inc()
            log.warning("push to %s failed, commits stay in %s: %s", self.store.shown, self.store.workdir,
                        str(exc).splitlines()[0] if str(exc) else exc)
            return False
        log.debug("pushed %s (%d changes) in %.0f ms", head[:12], len(received), (time.monotonic() - started) * 1e3)
        self.pushed = head
        self._set_failing(False)
        self.pushes += 1
        if self.pushes % 50 == 0:
            self.maintain()
        now = time.monotonic()
        for r in received:
            metrics.EXPORT_PUSH_LATENCY.observe(max(0.0, now - r))
        metrics.EXPORT_UNPUSHED.set(0)
        return True

    def _on_remote(self, sha: str) -> bool:
        """True when the remote's branch, as last fetched, is sha."""
        tracking = self.store.git("rev-parse", "-q", "--verify", f"refs/remotes/origin/{self.store.branch}",
                                  check=False).strip()
        return tracking == sha

    def maintain(self) -> None:
        """Repack in the background: a repack of 100,000 objects takes seconds, a push must not wait for it."""
        if self._maintenance is not None and self._maintenance.is_alive():
            return
        self._maintenance = threading.Thread(target=self.store.maintain, name="git-maintenance", daemon=True)
        self._maintenance.start()

    def _withheld(self, received: list[float]) -> bool:
        """True (and the push not made) when the fence says this exporter is not the writer."""
        reason = self.fence()
        if reason is None:
            return False
        with self._cond:
            self._received = received + self._received
        self.fenced = reason
        self.stopping.set()
        self._set_failing(True)
        return True

    def _set_failing(self, failing: bool) -> None:
        self.failing = failing
        self.on_idle()

    def run(self) -> None:
        """Push loop: wait for a commit, push, back off exponentially while the remote is unreachable."""
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        try:
            while not self.stopping.is_set():
                with self._cond:
                    while not self._dirty and not self.stopping.is_set():
                        self._cond.wait(1.0)
                if self.stopping.is_set():
                    return
                if self.push_once():
                    backoff.reset()
                    continue
                self._count_unpushed()
                backoff.wait(self.stopping)
        except BaseException as exc:
            self.failed = exc
            log.error("pusher stopped: %s", exc)
            raise

    def _count_unpushed(self) -> None:
        try:
            out = self.store.git("rev-list", "--count", f"refs/remotes/origin/{self.store.branch}..HEAD", check=False)
            metrics.EXPORT_UNPUSHED.set(int(out.strip() or 0))
        except (ValueError, git.GitError, StorageFull):
            pass
