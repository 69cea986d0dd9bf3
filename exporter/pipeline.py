"""The exporter's pipeline: observer -> committer (selection, recorder) -> pusher around one local clone, with the
fence (the writer role), the follower (commits others push) and the scoper (the policy's scope). Each part gets
its collaborators when it is made; `kubedr export` (exporter/cli.py) only turns flags into ExportOptions.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from kubedr import leader, metrics
from kubedr.apierrors import ApiError
from kubedr.backoff import Backoff
from kubedr.exporter import coverage
from kubedr.exporter.committer import Committer, NextCommit
from kubedr.exporter.events import Event
from kubedr.exporter.fence import Fence
from kubedr.exporter.follow import Follower
from kubedr.exporter.gitstore import GitStore
from kubedr.exporter.observer import NETWORK_ERRORS, Observer, why
from kubedr.exporter.pusher import Pusher
from kubedr.exporter.recorder import Recorder
from kubedr.exporter.scoping import Scoper
from kubedr.exporter.selection import Selection
from kubedr.kubeapi import Cluster, Resource

log = logging.getLogger("kubedr.exporter")

FENCED = 3  # exit code of `kubedr export --once` when another cluster holds the writer role


@dataclass(frozen=True)
class ExportOptions:
    """What `kubedr export` was told, checked once: the Exporter reads nothing else."""

    repo: str
    branch: str = "main"
    workdir: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    cluster_name: str | None = None
    scope: dict[str, Any] = field(default_factory=dict)  # the scope settings given; they win over the policy
    batch_window: float = 0.1
    push_backoff_max: float = 30.0
    remote_check_interval: float = 10.0
    role_check_interval: float = 5.0
    page_size: int = 500
    secrets: str | None = None  # seal | skip | plaintext; None: seal when there are recipients, else skip
    recipients: tuple[str, ...] = ()
    digest_key_file: str | None = None
    signing_key: str | None = None
    metrics_listen: str | None = None
    once: bool = False
    election: leader.Options = leader.Options()

    @property
    def secret_mode(self) -> str:
        """seal, skip or plaintext: what happens to Secret values."""
        return self.secrets or ("seal" if self.recipients else "skip")


def report_of(observer: Observer, watched: set[Resource], exported: dict[coverage.Key, int],
              skipped: dict[coverage.Key, Counter[str]],
              orphans: dict[coverage.Key, Counter[str]] | None = None) -> coverage.Report:
    """The coverage report from discovery's choices and object counts; a type whose list fails is uncovered."""
    failing = dict(observer.list_failed)
    unwatched = observer.unwatched + [coverage.Unwatched(t.group, t.version, t.plural, t.kind, "list-failed", err)
                                      for t, err in failing.items()]
    return coverage.build([t for t in watched if t not in failing], observer.preferred, unwatched, exported, skipped,
                          orphans)


def cluster_name(options: ExportOptions, api: Cluster) -> str:
    """The Source-Cluster of this exporter's commits: --cluster-name, else the API server's host."""
    return options.cluster_name or urlparse(api.api.configuration.host).hostname or "cluster"


class Exporter:
    """Wires observer -> committer (selection, recorder) -> pusher around one local clone."""

    def __init__(self, options: ExportOptions, store: GitStore, api: Cluster, secrets: str, sealer: Any) -> None:
        o = options
        self.batch_window = o.batch_window
        self.store = store
        self.cluster = cluster_name(o, api)
        self.selection = Selection(None, ())
        self.fence = Fence(self.store, self.cluster)
        self._kinds: frozenset[tuple[str, str]] = frozenset()  # the kinds watched, so exported
        self.recorder = Recorder(self.store, secrets, sealer, exports=self._exports)
        self.observer = Observer(api, self.selection, page_size=o.page_size,
                                 skip_keys=self.recorder.frozen_types, on_discovered=self._discovered)
        inbox: queue.Queue[Event | None] = queue.Queue()  # the committer's: events, and None to wake it

        def wake() -> None:
            inbox.put(None)

        self.pusher = Pusher(self.store, backoff_max=o.push_backoff_max, on_idle=wake, fence=self.fence.check)
        next_commit = NextCommit()
        self.scoper = Scoper(dict(o.scope), self.store, self.selection, self.recorder, next_commit, self.observer)
        self.follower = Follower(self.store, self.pusher.idle, wake, self.scoper.on_foreign, o.remote_check_interval,
                                 moved_head=lambda: self.pusher.notify(self.store.head() or "", []))
        self.committer = Committer(self.store, self.recorder, self.selection, self.cluster, self.batch_window,
                                   inbox=inbox, next_commit=next_commit, on_commit=self.pusher.notify,
                                   push_idle=self.pusher.idle, annotate=self.scoper.annotate,
                                   on_idle=self.follower.catch_up, trailers=self.fence.trailers,
                                   relist=self.observer.relist)
        metrics.EXPORT_COVERAGE.report = self.coverage
        self.role_check_interval = o.role_check_interval
        self.ready = False
        self.threads: list[threading.Thread] = []
        self._types: list[Resource] = []

    def reconcile(self) -> dict[Resource, str]:
        """List everything, rebuild the tree, and commit what changed while we were down as one resync."""
        started = time.monotonic()
        with self.store.lock:
            self.store.open()
            self.scoper.apply_policy(initial=True)
            self.recorder.load_index(self.store.files())
            types = self.observer.discover()
            self._kinds = frozenset(t.key for t in types)
            rvs: dict[Resource, str] = {}
            unlisted: set[tuple[str, str]] = set()
            for rtype in types:
                try:
                    rvs[rtype] = self.observer.list(rtype, self.committer.handle)
                except (ApiError, *NETWORK_ERRORS) as exc:  # e.g. 403: its files stay, its watch retries
                    log.warning("cannot list %s, its files are kept as they are: %s", rtype, why(exc))
                    self.observer.list_failed[rtype] = why(exc)
                    rvs[rtype] = ""
                    unlisted.add(rtype.key)
            keep = {t.key for t in types} | {k for k in self.recorder.index if k[0] in self.observer.failed_groups}
            keep |= unlisted
            self.recorder.drop_types(keep, time.monotonic())
            sha = self.committer.commit(reason="resync")
            self.store.take_foreign()  # the full list above already wrote the cluster's state back
        outcome = ("nothing committed (no space)" if self.committer.stall else f"resync commit {sha[:12]}" if sha
                   else "repo already up to date")
        log.info("startup reconcile: %d types, %s in %.1fs", len(types), outcome, time.monotonic() - started)
        self._types = types
        self.coverage().log()
        return rvs

    def coverage(self) -> coverage.Report:
        """What is exported and what is not, and why (logged, on /metrics, and by --explain)."""
        return report_of(self.observer, self.observer.watched() or set(self._types), self.recorder.exported(),
                         self.recorder.skipped.counts(), self.recorder.orphans.counts())

    def _exports(self, group: str, kind: str) -> bool:
        """Whether objects of a kind are exported (so their controlled children are not)."""
        return (group, kind) in self._kinds or (group, kind) in {t.key for t in self.observer.watched()}

    def _discovered(self) -> None:
        """After re-discovery changed the watched types: the kinds exported follow, and the report is logged."""
        self._kinds = frozenset(t.key for t in self.observer.watched())
        self.coverage().log()

    def start(self) -> None:
        """Reconcile, then run committer, pusher and one watch per type in background threads."""
        rvs = self.reconcile()
        self.threads = [threading.Thread(target=self.committer.run, name="committer", daemon=True),
                        threading.Thread(target=self.pusher.run, name="pusher", daemon=True),
                        threading.Thread(target=self.follower.run, name="follower", daemon=True)]
        for t in self.threads:
            t.start()
        self.observer.start(rvs, self.committer.queue.put)
        self.ready = True
        log.info("exporting to %s (branch %s) from %s", self.store.shown, self.store.branch, self.cluster)

    def stop(self, drain: float = 10.0) -> None:
        """Stop watching, commit what is queued, push once more."""
        self.ready = False
        self.observer.stop()
        self.follower.stop()
        deadline = time.monotonic() + drain
        while self.committer.queue.qsize() and time.monotonic() < deadline and self.healthy():
            time.sleep(0.05)
        self.committer.stopping.set()
        self.threads[0].join(10)
        if self.healthy():
            with self.store.lock:
                self.committer.commit()  # what waited for the last push
        self.pusher.stop()
        self.threads[1].join(10)
        if self.healthy():
            self._push_with_retries(1)

    def work(self, stop: threading.Event, once: bool) -> int:
        """Until stop is set (SIGTERM, lost Lease) or fenced; with once, just the reconcile and a push."""
        try:
            self.store.hold_clone()  # fenced or not: no other exporter may use this clone meanwhile
            if once:
                if self.fence.claim() is not None:
                    return FENCED
            elif not self.fence.wait(stop, self.role_check_interval):
                return 0
            return self._work(stop, once)
        finally:
            self.store.close()

    def readiness(self) -> bool | str:
        """/readyz: ready, or the fenced state in words (still 200: a fenced exporter does its job)."""
        return f"fenced: {self.fence.reason}" if self.fence.reason else self.ready

    def _fenced_stop(self) -> int:
        """The role moved: stop watching, commit what is queued locally (kept), push nothing."""
        self.ready = False
        self.observer.stop()
        self.committer.stopping.set()
        self.threads[0].join(10)
        if self.committer.failed is None:
            with self.store.lock:
                self.committer.commit()
        return FENCED

    def _work(self, stop: threading.Event, once: bool) -> int:
        if once:
            self.reconcile()
            if self.committer.stall:
                return 1
            return 0 if self._push_with_retries(5) else FENCED if self.pusher.fenced else 1
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.start()
        next_check = time.monotonic() + self.role_check_interval
        while not stop.wait(0.5):
            if not self.pusher.fenced and time.monotonic() >= next_check and self.pusher.idle():
                next_check = time.monotonic() + self.role_check_interval  # an idle writer learns of a promote too
                self.pusher.fenced = self.fence.recheck()
            if self.pusher.fenced:
                return self._fenced_stop()
            if not self.healthy():
                log.error("stopping: %s", self.committer.failed or self.pusher.failed)
                self.observer.stop()
                return 1
        log.info("stopping: draining %d queued changes", self.committer.queue.qsize())
        self.stop()
        return 0

    def healthy(self) -> bool:
        return self.committer.failed is None and self.pusher.failed is None

    def _push_with_retries(self, attempts: int) -> bool:
        backoff = Backoff(0.5)
        for i in range(attempts):
            if self.pusher.push_once():
                return True
            if self.pusher.fenced:
                return False
            if i + 1 < attempts:
                backoff.wait()
        log.error("could not push to %s; the commits wait in %s", self.store.shown, self.store.workdir)
        return False


