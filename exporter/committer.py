"""Group commit: commit as soon as the previous commit is done; what arrives meanwhile goes into the next."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kubedr import contract, metrics
from kubedr.backoff import Backoff
from kubedr.exporter.events import Event
from kubedr.exporter.gitstore import GitStore, StorageFull
from kubedr.exporter.gittree import with_trailer
from kubedr.exporter.recorder import MAX_OBJECT_TRAILERS, Pending, Recorder
from kubedr.exporter.selection import Selection

log = logging.getLogger("kubedr.exporter.committer")

VERB_OF_STATUS = {"A": "create", "M": "update", "T": "update", "D": "delete"}
VERB_ORDER = ("create", "update", "delete")
STALL_FIRST, STALL_MAX = 1.0, 60.0  # seconds between commit attempts while the clone's disk is full


def format_message(changes: list[tuple[str, Pending]], cluster: str, reason: str = "",
                   dropped: Sequence[str] = ()) -> str:
    """Subject names the object and verb; several objects get a summary and one line each; then trailers.

    dropped names the entries kubedr does not read that the commit removes, one line each.
    """
    changes = sorted(changes, key=lambda c: (c[1].ref.namespace, c[1].ref.group, c[1].ref.kind, c[1].ref.name))
    trailers = [f"Source-Cluster: {cluster}"]
    drops = [f"drop {entry}" for entry in dropped]
    if not changes and drops:
        noun = "entry" if len(drops) == 1 else "entries"
        return "\n".join([f"drop {len(drops)} {noun} kubedr does not read", "", *drops, "", *trailers]) + "\n"
    if len(changes) == 1 and not reason and not drops:
        verb, p = changes[0]
        lines = [f"{verb} {p.ref.display}", ""]
        if p.resource_version:
            trailers.append(f"Resource-Version: {p.resource_version}")
        if p.managers:
            trailers.append(f"Field-Managers: {', '.join(p.managers)}")
        return "\n".join(lines + trailers) + "\n"
    counts = Counter(v for v, _ in changes)
    summary = ", ".join(f"{counts[v]} {v}" for v in VERB_ORDER if counts[v])
    noun = "object" if len(changes) == 1 else "objects"
    lines = [f"{reason or 'export'} {len(changes)} {noun}: {summary}", ""]
    lines += [f"{verb} {p.ref.display}" for verb, p in changes]
    lines += drops
    lines.append("")
    if len(changes) > MAX_OBJECT_TRAILERS:
        lines += [f"Per-object Resource-Version and Field-Managers trailers omitted for {len(changes)} objects.", ""]
        changes = []
    for _, p in changes:
        if p.resource_version:
            trailers.append(f"Resource-Version: {p.ref.display}={p.resource_version}")
    for _, p in changes:
        if p.managers:
            trailers.append(f"Field-Managers: {p.ref.display}={', '.join(p.managers)}")
    return "\n".join(lines + trailers) + "\n"


@dataclass
class Stall:
    """Commits the clone's file system refused: the types to list again (their blobs are lost), and when."""

    keys: set[tuple[str, str]]
    backoff: Backoff
    until: float


@dataclass
class NextCommit:
    """What the next commit holds besides the recorder's objects (files made elsewhere, such as the scope file),
    and the re-listed types it waits for: nothing is committed until each is done (or the timeout), then one
    commit says why."""

    extra: dict[str, bytes] = field(default_factory=dict)
    waiting: set[tuple[str, str]] = field(default_factory=set)
    reason: str = ""
    until: float = 0.0

    def hold(self, keys: set[tuple[str, str]], reason: str, timeout: float = 60.0) -> None:
        """Commit nothing until these types finished their re-list, then all of it in one `reason` commit."""
        self.waiting |= set(keys)
        self.reason = self.reason or reason
        self.until = time.monotonic() + timeout

    def holding(self) -> bool:
        """True while a hold waits for re-lists (at most its timeout)."""
        if self.waiting and time.monotonic() > self.until:
            log.warning("re-list of %s did not finish in time; committing what there is", sorted(self.waiting))
            self.waiting.clear()
        return bool(self.waiting)


Annotate = Callable[[list[tuple[str, str]], str], str]
Relist = Callable[[set[tuple[str, str]]], set[tuple[str, str]]]


class Committer:
    """Owns the next commit: applies events through selection and recorder, then commits what changed."""

    def __init__(self, store: GitStore, recorder: Recorder, selection: Selection, cluster: str,
                 batch_window: float = 0.1, *, inbox: queue.Queue[Event | None] | None = None,
                 next_commit: NextCommit | None = None, on_commit: Callable[[str, list[float]], None] | None = None,
                 push_idle: Callable[[], bool] | None = None, annotate: Annotate | None = None,
                 on_idle: Callable[[], None] | None = None, trailers: Callable[[], list[str]] | None = None,
                 relist: Relist | None = None) -> None:
        self.store = store
        self.recorder = recorder
        self.selection = selection
        self.cluster = cluster
        self.batch_window = batch_window
        self.queue: queue.Queue[Event | None] = inbox or queue.Queue()  # None only wakes the loop (a push finished)
        self.next = next_commit or NextCommit()
        self.on_commit = on_commit or (lambda sha, received: None)
        self.push_idle = push_idle or (lambda: True)  # the previous commit reached the remote (or it is down)
        self.annotate: Annotate = annotate or (lambda diff, text: text)  # the last word on messages (scope)
        self.on_idle = on_idle or (lambda: None)  # under the lock, nothing pending, last commit pushed
        self.trailers = trailers or (lambda: [])  # "Key: value" lines for every commit (writer role)
        self.relist: Relist = relist or (lambda keys: set())  # list these types again
        self.stopping = threading.Event()
        self.failed: BaseException | None = None
        self.stall: Stall | None = None  # set while the clone's file system takes no commit

    def handle(self, event: Event) -> None:
        """One event into the work tree; a bad object is logged and skipped, never fatal."""
        try:
            for obj, wanted in self.selection.process(event):
                self.recorder.decide(obj, wanted, event.received)
            if event.type == "SYNCED":
                self.recorder.synced(event.rtype.key, event.seen, event.received)
                self.next.waiting.discard(event.rtype.key)
        except Exception as exc:  # noqa: BLE001 - one bad object must not stop the others
            name = ((event.obj or {}).get("metadata") or {}).get("name", "?")
            log.error("cannot export %s %s %s: %s", event.type, event.rtype, name, exc)

    def commit(self, reason: str = "") -> str | None:
        """Commit what the recorder changed, the extra files and the drops, the message built from the real diff."""
        pending = self.recorder.take_pending()
        contents, self.next.extra = self.next.extra, {}
        if not pending and not contents and not self.store.refused:
            return None
        changes: list[tuple[str, Pending]] = []

        def message(diff: list[tuple[str, str]]) -> str:
            for status, path in diff:
                p = pending.get(path)
                if p is None:
                    ref = contract.ref_of_path(path)
                    p = Pending(ref) if ref is not None else None
                if p is not None:
                    changes.append((VERB_OF_STATUS.get(status, "update"), p))
            text = format_message(changes, self.cluster, reason, [f"{r.path} ({r.why})" for r in self.store.refused])
            for line in self.trailers():
                text = with_trailer(text, *line.split(": ", 1))
            return self.annotate(diff, text)

        try:
            sha = self.store.commit_paths(message, blobs={p: pd.blob for p, pd in pending.items()},
                                          contents=dict(contents))
        except StorageFull as exc:
            self._stalled(exc, pending, contents)
            return None
        if self.stall is not None:
            log.info("committing again: the clone's file system took this commit")
            self.stall = None
        if sha is None:
            return None
        now = time.monotonic()
        received = [p.received for _, p in changes]
        for r in received:
            metrics.EXPORT_LATENCY.observe(max(0.0, now - r))
        for verb, _ in changes:
            metrics.EXPORT_OBJECTS.labels(verb).inc()
        metrics.EXPORT_COMMITS.labels(reason or "change").inc()
        metrics.EXPORT_LAST_COMMIT.set(time.time())
        log.debug("committed %s: %d changes", sha[:12], len(changes))
        self.on_commit(sha, received)
        return sha

    def _stalled(self, exc: StorageFull, pending: dict[str, Pending], contents: dict[str, bytes]) -> None:
        """Nothing was committed: keep what can be kept, list the pending types again once there is space."""
        for path, p in pending.items():
            if p.blob is None:  # a deletion: the type's next full list must find the file again
                self.recorder.index[(p.ref.group, p.ref.kind)].add(path)
        for path, data in contents.items():
            self.next.extra.setdefault(path, data)
        keys = {(p.ref.group, p.ref.kind) for p in pending.values()}
        if self.stall is None:
            log.error("%s; %d change(s) wait, committed once it takes them again", exc, len(pending))
            self.stall = Stall(set(), Backoff(STALL_FIRST, STALL_MAX), 0.0)
        self.stall.keys |= keys
        self.stall.until = time.monotonic() + self.stall.backoff.failed()

    def _waiting(self) -> bool:
        """True while a stall holds commits back; at its end, the lost types are listed again first."""
        stall = self.stall
        if stall is None:
            return False
        if time.monotonic() < stall.until:
            return True
        if self.store.full():
            stall.until = time.monotonic() + stall.backoff.after(stall.backoff.failures)  # the disk is still full
            return True
        keys, stall.keys = stall.keys, set()
        if keys:
            self.next.hold(self.relist(keys), "resync")
        return bool(keys)

    def run(self) -> None:
        """The group-commit loop: keep writing what arrives; commit whenever the previous push is done.

        Files are written while a push is in flight, so the next commit holds everything that arrived
        meanwhile; the batch window only caps how long one pass drains the queue without committing.
        """
        try:
            while not self.stopping.is_set():
                try:
                    item = self.queue.get(timeout=0.2)
                except queue.Empty:
                    item = None
                with self.store.lock:
                    if item is not None:
                        self.handle(item)
                        start = time.monotonic()
                        while time.monotonic() - start < self.batch_window:
                            try:
                                nxt = self.queue.get_nowait()
                            except queue.Empty:
                                break
                            if nxt is not None:
                                self.handle(nxt)
                    metrics.EXPORT_QUEUE.set(self.queue.qsize())
                    if self.next.holding() or self._waiting():
                        continue
                    if (self.recorder.pending or self.next.extra or self.store.refused) and self.push_idle():
                        reason, self.next.reason = self.next.reason, ""
                        self.commit(reason=reason)
                    elif not self.recorder.pending and self.push_idle():
                        self.on_idle()
        except BaseException as exc:
            self.failed = exc
            log.exception("committer stopped")
            raise
