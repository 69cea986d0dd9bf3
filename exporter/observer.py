"""What the exporter watches (from kubeapi's discovery), and one kubedr.listwatch loop per type: resumed from its
resourceVersion and bookmarks, re-listed on 410 Gone."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3

from kubedr import contract, metrics
from kubedr.apierrors import ApiError, Gone, NotFound
from kubedr.exporter.coverage import Unwatched
from kubedr.exporter.events import Event
from kubedr.exporter.selection import CRD_KEY, RBAC, Selection
from kubedr.kubeapi import Cluster, Resource
from kubedr.listwatch import Handler, ListWatch, list_into

log = logging.getLogger("kubedr.exporter.observer")

# Resource types never watched, with the reason (group, plural) -> why. Controllers recreate the rest.
SKIP_RESOURCES: dict[tuple[str, str], str] = {
    ("", "events"): "events are history, not configuration",
    ("events.k8s.io", "events"): "events are history, not configuration",
    ("coordination.k8s.io", "leases"): "leases are leader-election heartbeats",
    ("", "componentstatuses"): "deprecated health view",
    ("metrics.k8s.io", "pods"): "live resource usage from metrics-server, not configuration",
    ("metrics.k8s.io", "nodes"): "live resource usage from metrics-server, not configuration",
}

# Startup order: namespaced objects first, then the cluster-scoped objects whose membership depends on
# them, referrers before the referred, so the resync commit is computed without churn.
STARTUP_ORDER: dict[tuple[str, str], int] = {
    (RBAC, "ClusterRoleBinding"): 1, ("", "PersistentVolume"): 1, ("", "Namespace"): 1,
}

Sink = Callable[[Event], None]
NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError, ValueError)


def why(exc: Exception) -> str:
    """One line for a failed request; an API refusal names its status and path (`403 from /apis/...: ...`)."""
    return f"{exc.status} from {exc.path}: {exc}" if isinstance(exc, ApiError) else str(exc)


def startup_rank(rtype: Resource) -> tuple[int, str, str]:
    return (0 if rtype.namespaced else STARTUP_ORDER.get(rtype.key, 2), rtype.group, rtype.plural)


class Feed(Handler):
    """One type's list and watch, as the exporter's Events; failures logged and counted."""

    def __init__(self, observer: Observer, rtype: Resource, emit: Sink) -> None:
        self.observer = observer
        self.rtype = rtype
        self.emit = emit
        self.seen: set[str] = set()

    def listed(self, obj: dict[str, Any]) -> None:
        try:
            self.seen.add(sys.intern(contract.ref_of(obj).path))  # the recorder's index holds the same string
        except ValueError:
            return
        self.emit(Event("ADDED", self.rtype, obj, time.monotonic()))

    def synced(self) -> None:
        seen, self.seen = self.seen, set()
        self.emit(Event("SYNCED", self.rtype, None, time.monotonic(), seen))
        self.observer.list_failed.pop(self.rtype, None)

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        self.emit(Event(kind, self.rtype, obj, time.monotonic()))
        if self.rtype.key == CRD_KEY:
            self.observer.rediscover()

    def failed(self, exc: Exception, retry_in: float) -> None:
        self.seen = set()
        if isinstance(exc, Gone):
            log.info("watch of %s: resourceVersion too old (410 Gone); re-listing%s", self.rtype,
                     f" in {retry_in:.1f}s" if retry_in else "")
            metrics.EXPORT_WATCH_RESTARTS.labels(str(self.rtype), "gone").inc()
            return
        if isinstance(exc, NotFound):
            self.observer.rediscover()
        if isinstance(exc, ApiError):
            log.warning("watch of %s failed: %s", self.rtype, why(exc))
        else:
            log.warning("watch of %s interrupted (%s); resuming in %.1fs", self.rtype, exc, retry_in)
        metrics.EXPORT_WATCH_RESTARTS.labels(str(self.rtype), "error").inc()


class Observer:
    """Finds every listable+watchable type, lists it, then keeps one watch per type running."""

    def __init__(self, http: Cluster, selection: Selection, page_size: int = 500, watch_timeout: int = 300, *,
                 skip_keys: set[tuple[str, str]] | None = None, on_discovered: Callable[[], None] | None = None) -> None:
        self.http = http
        self.selection = selection
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.sink: Sink = lambda ev: None
        self.stopping = threading.Event()
        self.watchers: dict[Resource, ListWatch] = {}
        self.failed_groups: set[str] = set()
        self.skip_keys = set(skip_keys or ())  # (group, kind) not watched at all (Secrets nobody seals)
        self.preferred: dict[str, str] = {}  # group -> its preferred version, as discovery last saw it
        self.unwatched: list[Unwatched] = []  # what discovery found and does not watch, with the reason
        self.list_failed: dict[Resource, str] = {}  # types whose last list failed -> the error
        self.on_discovered = on_discovered or (lambda: None)  # after a refresh changed the watched types
        self._rediscover = threading.Event()
        self._lock = threading.Lock()

    # -- discovery
    def discover(self) -> list[Resource]:
        """Every served resource once (kubeapi's discovery); the ones not watched go to self.unwatched with the
        reason, and a group whose discovery failed keeps its objects as they are."""
        served = self.http.discover()
        unwatched: list[Unwatched] = []
        for (group, version), exc in served.failed.items():
            unwatched.append(Unwatched(group, version, "", "", "discovery-failed", why(exc)))
            log.warning("discovery of %s/%s failed, its objects are kept as they are: %s", group, version, why(exc))
        found: list[Resource] = []
        for rtype in served.resources:
            reason, detail = self._why_not_watched(rtype, set(rtype.verbs))
            if reason is None:
                found.append(rtype)
            else:
                unwatched.append(Unwatched(rtype.group, rtype.version, rtype.plural, rtype.kind, reason, detail))
        self.failed_groups = {group for group, _ in served.failed}
        self.preferred = served.preferred
        self.unwatched = unwatched
        return sorted(found, key=startup_rank)

    def _why_not_watched(self, rtype: Resource, verbs: set[str]) -> tuple[str | None, str]:
        """(REASONS key, detail) for a resource that gets no watch, (None, "") for one that does."""
        if (rtype.group, rtype.plural) in SKIP_RESOURCES:
            return "excluded-kind", SKIP_RESOURCES[(rtype.group, rtype.plural)]
        shown = f"verbs: {', '.join(sorted(verbs)) or 'none'}"
        if not verbs & {"get", "list", "watch"}:
            return "create-only", shown
        if not self.selection.watches(rtype):
            return "out-of-scope", ""
        if not {"list", "watch"} <= verbs:
            return "no-list-watch", shown
        if rtype.key in self.skip_keys:
            return "secrets-not-sealed", ""
        return None, ""

    # -- list
    def list(self, rtype: Resource, emit: Sink) -> str:
        """Emit every object (page by page) then SYNCED with the listed paths; returns the list's RV."""
        return list_into(self.http, rtype, Feed(self, rtype, emit), page_size=self.page_size)

    # -- watch
    def start(self, rvs: dict[Resource, str], sink: Sink) -> None:
        """Start one watch thread per type from its list RV, and the discovery refresher."""
        self.sink = sink
        for rtype, rv in rvs.items():
            self._start_watch(rtype, rv)
        threading.Thread(target=self._discovery_loop, name="discovery", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self._rediscover.set()
        with self._lock:
            for watch in self.watchers.values():
                watch.stop()

    def _start_watch(self, rtype: Resource, rv: str | None) -> None:
        watch = ListWatch(self.http, rtype, Feed(self, rtype, lambda ev: self.sink(ev)), page_size=self.page_size,
                          timeout=self.watch_timeout, rv=rv)
        with self._lock:
            self.watchers[rtype] = watch
        watch.start(f"watch-{rtype}")

    def relist(self, keys: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
        """Restart the watches of these types (None: every type) with a fresh list; returns their keys."""
        with self._lock:
            chosen = [t for t in self.watchers if keys is None or t.key in keys]
            for rtype in chosen:
                self.watchers[rtype].stop()
        for rtype in chosen:
            self._start_watch(rtype, None)
        return {t.key for t in chosen}

    # -- discovery refresh
    def rediscover(self) -> None:
        """Look at discovery again soon (a CRD changed, a watched type answered 404)."""
        self._rediscover.set()

    def _discovery_loop(self) -> None:
        """Re-discover when CRDs change (and every 30 s): start new watches, retire vanished types."""
        while not self.stopping.is_set():
            triggered = self._rediscover.wait(30)
            self._rediscover.clear()
            if self.stopping.is_set():
                return
            for pause in (0.1, 1.0) if triggered else (0,):
                self.stopping.wait(pause)
                try:
                    self.refresh()
                except (ApiError, *NETWORK_ERRORS) as exc:
                    log.warning("discovery refresh failed: %s", why(exc))

    def refresh(self) -> set[tuple[str, str]]:
        """Diff the served types with the watched ones; returns the keys of types started or retired."""
        before = set(self.unwatched)
        types = set(self.discover())
        touched: set[tuple[str, str]] = set()
        with self._lock:
            current = set(self.watchers)
        for rtype in sorted(types - current, key=startup_rank):
            log.info("now watching %s", rtype)
            self._start_watch(rtype, None)
            touched.add(rtype.key)
        keys = {t.key for t in types}
        for rtype in current - types:
            if rtype.group in self.failed_groups:
                continue
            with self._lock:
                self.watchers.pop(rtype).stop()
            log.info("%s is no longer served or in scope; its objects leave the repo", rtype)
            if rtype.key not in keys:
                self.sink(Event("SYNCED", rtype, None, time.monotonic(), set()))
                touched.add(rtype.key)
        if self.watched() != current or set(self.unwatched) != before:
            self.on_discovered()
        return touched

    def watched(self) -> set[Resource]:
        """The types with a running watch."""
        with self._lock:
            return set(self.watchers)
