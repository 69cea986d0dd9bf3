"""Reads: get, paginated lists at a resourceVersion (rewound through the history), and watches."""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import TYPE_CHECKING

from kubedr.emulator import errors, resources
from kubedr.emulator.objects import HistoryEvent, StoredObject, dumps
from kubedr.emulator.registry import Registry
from kubedr.emulator.resources import ServedResource
from kubedr.selectors import SelectorError, field_matcher, label_matcher

if TYPE_CHECKING:
    pass

CONTINUE_TOO_OLD = ("The provided continue parameter is too old to display a consistent list result. You can start a "
                    "new list without the continue parameter, or use the continue token in this response to retrieve "
                    "the remainder of the results. Continuing with the provided token results in an inconsistent list "
                    "- objects that were created, modified, or deleted between the time the first chunk was returned "
                    "and now may show up in the list.")



class Watcher:
    """One watch: a filter and a queue of encoded event lines the HTTP thread drains in batches."""

    MAX_BACKLOG = 200_000

    def __init__(self, store: Reads, rt: ServedResource, namespace: str | None, lsel: Callable | None,
                 fsel: Callable | None):
        self.store, self.rt, self.namespace, self.lsel, self.fsel = store, rt, namespace, lsel, fsel
        self.pending: deque[bytes] = deque()
        self.wake = threading.Event()
        self.closed = False
        self.rv = store.rv

    def _match(self, entry: StoredObject | None) -> bool:
        if entry is None:
            return False
        obj = entry.obj
        return (self.lsel is None or self.lsel(obj)) and (self.fsel is None or self.fsel(obj))

    def offer(self, ev: HistoryEvent) -> None:
        """Queue an event if it passes the filter (label changes turn into ADDED/DELETED as on the real server)."""
        if self.namespace and ev.ns != self.namespace:
            return
        line: bytes | None
        if self.lsel is None and self.fsel is None:
            line = ev.line()
        else:
            new = ev.type != "DELETED" and self._match(ev.entry)
            old = self._match(ev.prev) if ev.type != "ADDED" else False
            if ev.type == "DELETED":
                line = ev.line() if self._match(ev.entry) else None
            elif new and old:
                line = ev.line()
            elif new:
                line = ev.line("ADDED")
            elif old:
                line = ev.line("DELETED", ev.prev)
            else:
                line = None
        self.rv = ev.rv
        if line is None:
            return
        self.pending.append(line)
        if len(self.pending) > self.MAX_BACKLOG:
            self.closed = True
        self.wake.set()

    def take(self, timeout: float) -> list[bytes]:
        """Wait up to timeout for events; return all that are queued."""
        if not self.pending:
            self.wake.wait(timeout)
        self.wake.clear()
        out = []
        pending = self.pending
        while pending:
            out.append(pending.popleft())
        return out

    def bookmark(self, initial_events_end: bool = False) -> bytes:
        meta: dict = {"resourceVersion": str(self.rv), "creationTimestamp": None}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return dumps({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version,
                                                     "metadata": meta}}) + b"\n"

    def close(self) -> None:
        self.closed = True
        self.store.unwatch(self)
        self.wake.set()


def _matchers(rt: ServedResource, label_selector: str | None, field_selector: str | None) -> tuple:
    """The list/watch selectors; one that does not parse is a 400, as the API server answers it."""
    try:
        return (label_matcher(label_selector),
                field_matcher(field_selector, resources.FIELD_SELECTORS.get(rt.kind, ())))
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from None


class Reads(Registry):
    """GET, LIST and WATCH by resource."""

    def get_rt(self, rt: ServedResource, name: str, namespace: str | None = None) -> StoredObject:
        return self._require(rt, namespace if rt.namespaced else "", name)

    def _snapshot(self, rt: ServedResource, rv: int | None) -> tuple[int, dict[tuple[str, str], StoredObject]]:
        """All objects of a resource, now or as they were at resourceVersion rv (rewound through the history)."""
        key = (rt.group, rt.plural)
        with self.lock:
            current = {(ns, name): e for ns, names in self.objs.get(key, {}).items() for name, e in names.items()}
            if rv is None or rv >= self.rv:
                return self.rv, current
            if rv < self.compacted:
                raise errors.expired("The resourceVersion for the provided list is too old.")
            for ev in reversed(self.history):
                if ev.rv <= rv:
                    break
                if ev.key != key:
                    continue
                k = (ev.ns, ev.entry.obj["metadata"]["name"])
                if ev.prev is None:
                    current.pop(k, None)
                else:
                    current[k] = ev.prev
            return rv, current

    _list_cache: tuple[tuple, list[tuple[str, StoredObject]]] | None = None

    def _sorted(self, rt: ServedResource, at: int | None, ns: str | None,
                allns: bool) -> tuple[int, list[tuple[str, StoredObject]]]:
        """The objects of one list in key order at a resourceVersion; the pages of one list share one sort."""
        with self.lock:
            now = self.rv if at is None or at >= self.rv else at
        cached = self._list_cache
        if cached is not None and cached[0] == (rt.group, rt.plural, ns, allns, now) and now >= self.compacted:
            return now, cached[1]
        rv, snap = self._snapshot(rt, at)
        keyed = sorted(((f"{ons}/{name}" if allns else name, e) for (ons, name), e in snap.items()
                        if not ns or ons == ns), key=itemgetter(0))
        self._list_cache = ((rt.group, rt.plural, ns, allns, rv), keyed)
        return rv, keyed

    def list_rt(self, rt: ServedResource, namespace: str | None = None, label_selector: str | None = None,
                field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
                resource_version: str | None = None, rv_match: str | None = None) -> tuple[int, list[StoredObject], dict]:
        """Returns (list rv, entries in key order, extra list metadata: continue, remainingItemCount)."""
        lsel, fsel = _matchers(rt, label_selector, field_selector)
        at: int | None = None
        start = ""
        if continue_:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_ + "=" * (-len(continue_) % 4)))
                at, start = int(token["rv"]), token["start"]
            except (ValueError, KeyError, TypeError) as exc:  # base64, JSON or the token's fields
                raise errors.bad_request(f"continue key is not valid: {exc}") from None
            if at < self.compacted:
                raise errors.api_error(410, "Expired", CONTINUE_TOO_OLD)
        elif resource_version and resource_version != "0":
            try:
                want = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {resource_version}") from None
            if rv_match == "Exact":
                at = want
            elif want > self.rv:
                self.wait_for(want, 3.0)
                if want > self.rv:
                    raise errors.too_large_resource_version(want, self.rv)
        ns = namespace if rt.namespaced else None
        allns = rt.namespaced and not ns
        rv, keyed = self._sorted(rt, at, ns, allns)
        pos = bisect.bisect_left(keyed, start, key=itemgetter(0)) if start else 0
        out: list[StoredObject] = []
        for _, e in itertools.islice(keyed, pos, None):
            if (lsel is None or lsel(e.obj)) and (fsel is None or fsel(e.obj)):
                out.append(e)
                if limit and limit > 0 and len(out) > limit:
                    break  # one more than the page tells that another page follows
        extra: dict = {}
        if limit and limit > 0 and len(out) > limit:
            last = out[limit - 1].obj["metadata"]
            lk = f"{last.get('namespace', '')}/{last['name']}" if allns else last["name"]
            tok = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": lk + "\x00"}, separators=(",", ":"))
            extra["continue"] = base64.urlsafe_b64encode(tok.encode()).decode().rstrip("=")
            if lsel is None and fsel is None:
                extra["remainingItemCount"] = len(keyed) - pos - limit
            out = out[:limit]
        return rv, out, extra

    def wait_for(self, rv: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.rv < rv and time.monotonic() < deadline:
            time.sleep(0.01)

    def watch_rt(self, rt: ServedResource, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None, resource_version: str | None = None,
                 send_initial_events: bool = False) -> tuple[Watcher, list[bytes]]:
        """Register a watcher; returns it with the lines to send first (synthetic ADDED or history replay).

        Raises ApiError 410 when the resourceVersion is older than the history keeps."""
        lsel, fsel = _matchers(rt, label_selector, field_selector)
        ns = namespace if rt.namespaced else None
        key = (rt.group, rt.plural)
        with self.lock:
            w = Watcher(self, rt, ns, lsel, fsel)
            first: list[bytes] = []
            entries: Iterable[tuple[tuple[str, str], StoredObject]]
            if not resource_version or resource_version == "0" or send_initial_events:
                if resource_version and resource_version != "0" and send_initial_events:
                    _, snap = self._snapshot(rt, int(resource_version))
                    entries = snap.items()
                else:
                    entries = ((k, e) for k, e in
                               ((((n, name), e) for n, names in self.objs.get(key, {}).items()
                                 for name, e in names.items())))
                for (ons, _), e in sorted(entries, key=lambda t: t[0]):
                    if ns and ons != ns:
                        continue
                    if (lsel is None or lsel(e.obj)) and (fsel is None or fsel(e.obj)):
                        first.append(b'{"type":"ADDED","object":' + e.data + b"}\n")
                w.rv = self.rv
                if send_initial_events:
                    first.append(w.bookmark(initial_events_end=True))
            else:
                try:
                    since = int(resource_version)
                except ValueError:
                    raise errors.bad_request(f"invalid resource version: {resource_version}") from None
                if since < self.compacted:
                    raise errors.expired(f"too old resource version: {since} ({self.compacted})")
                replay = []
                for ev in reversed(self.history):
                    if ev.rv <= since:
                        break
                    if ev.key == key:
                        replay.append(ev)
                for ev in reversed(replay):
                    w.offer(ev)
                w.rv = max(self.rv, since)
            self.watchers.setdefault(key, set()).add(w)
            return w, first

    def unwatch(self, w: Watcher) -> None:
        with self.lock:
            ws = self.watchers.get((w.rt.group, w.rt.plural))
            if ws:
                ws.discard(w)
