"""List, then watch, one resource until stopped: the one loop behind every watch kubedr opens.

A list is read in pages of `page_size` (one snapshot). The watch starts from the list's resourceVersion with
bookmarks, is renewed every `timeout` seconds from the last resourceVersion it saw (a bookmark's included), and
after a refusal or a broken stream resumes from there after a backoff. 410 Gone, as an answer or as an ERROR
event in the stream, lists again: at once, or after a growing pause when 410s come within GONE_WINDOW of each
other (a history too short for the write rate would have the loop list without pause). Any other ERROR event
is raised as its ApiError. stop() ends the loop within a second, even in the middle of an idle watch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubedr.apierrors import Gone, api_error
from kubedr.backoff import Backoff
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Cluster, Resource, WatchStream

GONE_WINDOW = 10.0  # seconds: a 410 this soon after the last one waits before listing again
GONE_BACKOFF = (0.5, 30.0)  # the first and the longest of those waits
CHANGES = frozenset({"ADDED", "MODIFIED", "DELETED"})


class Handler:
    """What the loop tells its caller; each method does nothing unless overridden."""

    def listed(self, obj: dict[str, Any]) -> None:
        """One object of a (re)list, in page order (apiVersion and kind set)."""

    def synced(self) -> None:
        """A (re)list ended: every object it holds was `listed`."""

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        """A watch event: ADDED, MODIFIED or DELETED (apiVersion and kind set)."""

    def failed(self, exc: Exception, retry_in: float) -> None:
        """A list or watch failed (Gone: the loop lists again); it tries again in retry_in seconds."""

    def absent(self) -> float | None:
        """The resource is not served: seconds until looking for it again, None to end the loop."""
        return None


def served(cluster: Cluster, group: str, kind: str) -> Callable[[], Resource | None]:
    """A ListWatch's resource given by (group, kind): looked up (discovery) at each (re)list."""
    ref = ObjectRef(group, kind, "", "")
    return lambda: cluster.resource_of(ref)


def _typed(obj: dict[str, Any], resource: Resource) -> dict[str, Any]:
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    return obj


def pages(cluster: Cluster, resource: Resource, *, label_selector: str | None = None,
          page_size: int = 500) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """A list, one page at a time: (its objects, apiVersion and kind set; the list's resourceVersion)."""
    token: str | None = None
    while True:
        doc = cluster.get(resource.path(), {"labelSelector": label_selector, "limit": page_size, "continue": token})
        meta = doc.get("metadata") or {}
        yield [_typed(obj, resource) for obj in doc.get("items") or []], str(meta.get("resourceVersion") or "")
        token = meta.get("continue")
        if not token:
            return


def list_into(cluster: Cluster, resource: Resource, handler: Handler, *, label_selector: str | None = None,
              page_size: int = 500) -> str:
    """List once into handler (`listed` each object, then `synced`); the list's resourceVersion."""
    rv = ""
    for items, page_rv in pages(cluster, resource, label_selector=label_selector, page_size=page_size):
        for obj in items:
            handler.listed(obj)
        rv = page_rv or rv
    handler.synced()
    return rv


class ListWatch:
    """One resource listed and watched in a thread of its own until stop()."""

    def __init__(self, cluster: Cluster, resource: Resource | Callable[[], Resource | None], handler: Handler, *,
                 label_selector: str | None = None, page_size: int = 500, timeout: int = 300,
                 backoff: Backoff | None = None, rv: str | None = None) -> None:
        self.cluster = cluster
        self.locate = resource if callable(resource) else lambda: resource
        self.handler = handler
        self.label_selector = label_selector
        self.page_size = page_size
        self.timeout = timeout  # seconds a watch stays open before it is renewed from its resourceVersion
        self.backoff = backoff or Backoff(0.2, 10.0)
        self.rv = rv or None  # where the watch resumes; None: list first
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> ListWatch:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the loop now: an open watch is cut, a pause ends."""
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.shutdown()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """List and watch until stopped (or the resource is absent and the handler says not to look again)."""
        gone, last_gone = Backoff(*GONE_BACKOFF), -GONE_WINDOW
        while not self.stopped:
            try:
                resource = self.locate()
                if resource is None:
                    pause = self.handler.absent()
                    if pause is None:
                        return
                    self._stopping.wait(pause)
                    continue
                if not self.rv:
                    self.rv = list_into(self.cluster, resource, self.handler, label_selector=self.label_selector,
                                        page_size=self.page_size)
                    self.backoff.reset()
                self._watch(resource)
            except Gone as exc:
                if self.stopped:
                    return
                now = time.monotonic()
                if now - last_gone >= GONE_WINDOW:
                    gone.reset()
                    pause = 0.0
                else:
                    pause = gone.failed()
                last_gone, self.rv = now, None
                self.handler.failed(exc, pause)
                self._stopping.wait(pause)
            except Exception as exc:  # noqa: BLE001 - refused, unreachable, a broken stream: resumed from self.rv
                if self.stopped:
                    return
                pause = self.backoff.failed()
                self.handler.failed(exc, pause)
                self._stopping.wait(pause)

    def _watch(self, resource: Resource) -> None:
        """One watch request from self.rv, until the server ends it (timeout) or stop()."""
        query = {"labelSelector": self.label_selector, "resourceVersion": self.rv, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(self.timeout)}
        stream = self.cluster.watch(resource.path(), query, read_timeout=self.timeout + 30)
        with self._lock:
            self._stream = stream
        try:
            if self.stopped:
                return
            for ev in stream:
                if self.stopped:
                    return
                kind, obj = ev.get("type"), ev.get("object") or {}
                if kind == "ERROR":
                    raise api_error(int(obj.get("code") or 500), {"message": "watch error", **obj}, resource.path())
                if kind in CHANGES:
                    self.handler.changed(str(kind), _typed(obj, resource))
                self.rv = (obj.get("metadata") or {}).get("resourceVersion") or self.rv
                self.backoff.reset()
        finally:
            with self._lock:
                self._stream = None
