"""Discovery and one watch per resource type, resumed from the last resourceVersion, re-listed on 410 Gone."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import urllib3
from kubedr.exporter.events import Event, ResourceType
from kubedr.exporter.kubeapi import ApiError, KubeHTTP
from kubedr.exporter.selection import CRD_KEY, RBAC, Selection

from kubedr import contract, observe

log = logging.getLogger("kubedr.exporter.observer")

# Resource types never watched, with the reason (group, plural) -> why. Controllers recreate the rest.
SKIP_RESOURCES: dict[tuple[str, str], str] = {
    ("", "events"): "events are history, not configuration",
    ("events.k8s.io", "events"): "events are history, not configuration",
    ("coordination.k8s.io", "leases"): "leases are leader-election heartbeats",
    ("", "componentstatuses"): "deprecated health view",
}

# Startup order: namespaced objects first, then the cluster-scoped objects whose membership depends on
# them, referrers before the referred, so the resync commit is computed without churn.
STARTUP_ORDER: dict[tuple[str, str], int] = {
    (RBAC, "ClusterRoleBinding"): 1, ("", "PersistentVolume"): 1, ("", "Namespace"): 1,
}

Sink = Callable[[Event], None]
NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError, ValueError)


def startup_rank(rtype: ResourceType) -> tuple[int, str, str]:
    return (0 if rtype.namespaced else STARTUP_ORDER.get(rtype.key, 2), rtype.group, rtype.plural)


class Observer:
    """Finds every listable+watchable type, lists it, then keeps one watch per type running."""

    def __init__(self, http: KubeHTTP, selection: Selection, page_size: int = 500,
                 watch_timeout: int = 300) -> None:
        self.http = http
        self.selection = selection
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.sink: Sink = lambda ev: None
        self.stopping = threading.Event()
        self.watchers: dict[ResourceType, threading.Event] = {}
        self.failed_groups: set[str] = set()
        self.skip_keys: set[tuple[str, str]] = set()  # (group, kind) not watched at all (Secrets nobody seals)
        self._rediscover = threading.Event()
        self._lock = threading.Lock()

    # -- discovery
    def discover(self) -> list[ResourceType]:
        """Every type at its group's preferred version that supports list+watch and the selection wants."""
        found: list[ResourceType] = []
        failed: set[str] = set()
        docs: list[tuple[str, str, dict]] = [("", "v1", self.http.get("/api/v1"))]
        for g in self.http.get("/apis").get("groups") or []:
            gv = (g.get("preferredVersion") or (g.get("versions") or [{}])[0]).get("groupVersion", "")
            try:
                docs.append((g["name"], gv.rpartition("/")[2], self.http.get(f"/apis/{gv}")))
            except (ApiError, *NETWORK_ERRORS) as exc:
                failed.add(g["name"])
                log.warning("discovery of %s failed, its objects are kept as they are: %s", gv, exc)
        for group, version, doc in docs:
            for r in doc.get("resources") or []:
                name = r.get("name", "")
                if "/" in name or not {"list", "watch"} <= set(r.get("verbs") or []):
                    continue
                if (group, name) in SKIP_RESOURCES:
                    continue
                rtype = ResourceType(group, version, name, r["kind"], bool(r.get("namespaced")))
                if rtype.key not in self.skip_keys and self.selection.watches(rtype):
                    found.append(rtype)
        self.failed_groups = failed
        return sorted(found, key=startup_rank)

    # -- list
    def list(self, rtype: ResourceType, emit: Sink) -> str:
        """Emit every object (page by page) then SYNCED with the listed paths; returns the list's RV."""
        seen: set[str] = set()
        cont: str | None = None
        rv = ""
        while True:
            doc = self.http.get(rtype.url, {"limit": self.page_size, "continue": cont})
            received = time.monotonic()
            for obj in doc.get("items") or []:
                obj.setdefault("apiVersion", rtype.api_version)
                obj.setdefault("kind", rtype.kind)
                try:
                    seen.add(contract.ref_of(obj).path)
                except ValueError:
                    continue
                emit(Event("ADDED", rtype, obj, received))
            meta = doc.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            cont = meta.get("continue")
            if not cont:
                break
        emit(Event("SYNCED", rtype, None, time.monotonic(), seen))
        return rv

    # -- watch
    def start(self, rvs: dict[ResourceType, str], sink: Sink) -> None:
        """Start one watch thread per type from its list RV, and the discovery refresher."""
        self.sink = sink
        for rtype, rv in rvs.items():
            self._start_watch(rtype, rv)
        threading.Thread(target=self._discovery_loop, name="discovery", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self._rediscover.set()
        with self._lock:
            for stop in self.watchers.values():
                stop.set()

    def _start_watch(self, rtype: ResourceType, rv: str | None) -> None:
        stop = threading.Event()
        with self._lock:
            self.watchers[rtype] = stop
        threading.Thread(target=self._watch_loop, args=(rtype, rv, stop), name=f"watch-{rtype}",
                         daemon=True).start()

    def _watch_loop(self, rtype: ResourceType, rv: str | None, stop: threading.Event) -> None:
        delay = 0.2
        gone_delay, last_gone = 0.0, 0.0  # 410s in quick succession back off instead of re-listing in a loop
        while not stop.is_set():
            try:
                if not rv:
                    rv = self.list(rtype, self.sink)
                rv = self._watch(rtype, rv, stop)
                delay = 0.2
            except ApiError as exc:
                if stop.is_set():
                    return
                if exc.status == 410:
                    now = time.monotonic()
                    gone_delay = min(max(gone_delay * 2, 0.5), 30.0) if now - last_gone < 10 else 0.0
                    last_gone = now
                    log.info("watch of %s: resourceVersion too old (410 Gone); re-listing%s", rtype,
                             f" in {gone_delay:.1f}s" if gone_delay else "")
                    observe.EXPORT_WATCH_RESTARTS.labels(str(rtype), "gone").inc()
                    rv = None
                    stop.wait(gone_delay)
                    continue
                if exc.status == 404:
                    self._rediscover.set()
                log.warning("watch of %s failed: %s", rtype, exc)
                observe.EXPORT_WATCH_RESTARTS.labels(str(rtype), "error").inc()
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except NETWORK_ERRORS as exc:
                if stop.is_set():
                    return
                log.warning("watch of %s interrupted (%s); resuming from %s", rtype, exc, rv)
                observe.EXPORT_WATCH_RESTARTS.labels(str(rtype), "error").inc()
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _watch(self, rtype: ResourceType, rv: str, stop: threading.Event) -> str:
        query = {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": self.watch_timeout}
        for ev in self.http.watch(rtype.url, query, read_timeout=self.watch_timeout + 30):
            if stop.is_set():
                break
            typ = ev.get("type")
            obj = ev.get("object") or {}
            if typ == "ERROR":
                raise ApiError(int(obj.get("code") or 500), rtype.url, obj.get("message") or "watch error")
            new_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if typ in ("ADDED", "MODIFIED", "DELETED"):
                obj.setdefault("apiVersion", rtype.api_version)
                obj.setdefault("kind", rtype.kind)
                self.sink(Event(typ, rtype, obj, time.monotonic()))
                if rtype.key == CRD_KEY:
                    self._rediscover.set()
            rv = new_rv or rv
        return rv

    def relist(self, keys: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
        """Restart the watches of these types (None: every type) with a fresh list; returns their keys."""
        with self._lock:
            chosen = [t for t in self.watchers if keys is None or t.key in keys]
            for rtype in chosen:
                self.watchers[rtype].set()
        for rtype in chosen:
            self._start_watch(rtype, None)
        return {t.key for t in chosen}

    # -- discovery refresh
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
                    log.warning("discovery refresh failed: %s", exc)

    def refresh(self) -> set[tuple[str, str]]:
        """Diff the served types with the watched ones; returns the keys of types started or retired."""
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
                self.watchers.pop(rtype).set()
            log.info("%s is no longer served or in scope; its objects leave the repo", rtype)
            if rtype.key not in keys:
                self.sink(Event("SYNCED", rtype, None, time.monotonic(), set()))
                touched.add(rtype.key)
        return touched
