"""The store's base: served types (built-ins and CRD kinds), the one resourceVersion and the commit every write goes
through (history, watch fan-out, hooks, owner and uid indexes)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubedr.emulator import errors, resources
from kubedr.emulator.objects import HistoryEvent, StoredObject, dumps
from kubedr.emulator.resources import ServedResource

if TYPE_CHECKING:
    from kubedr.emulator.reads import Watcher


class Registry:
    """Thread-safe objects by resource and the state every section of the store shares."""

    def __init__(self, history: int = 10_000):
        self.lock = threading.RLock()
        self.rv = 0
        self.compacted = 0  # resourceVersion of the newest event dropped from the history
        self.history: deque[HistoryEvent] = deque()
        self.history_size = history
        self.types: dict[tuple[str, str, str], ServedResource] = {}  # (group, version, plural)
        self.kinds: dict[tuple[str, str], ServedResource] = {}  # (apiVersion, kind)
        self.objs: dict[tuple[str, str], dict[str, dict[str, StoredObject]]] = {}  # (group, plural) -> ns -> name
        self.watchers: dict[tuple[str, str], set[Watcher]] = {}
        self.owners: dict[str, set[tuple]] = {}  # owner uid -> {(group, plural, ns, name)}
        self.hooks: list[Callable[[HistoryEvent], None]] = []
        self.uids: dict[str, tuple] = {}
        self.terminating: set[str] = set()  # namespaces waiting for objects with finalizers to go
        # admission.Admission (set by the Emulator): (rt, operation, obj, old, user, dry_run, subresource) -> obj
        self.admission: Callable[..., dict] | None = None
        for rt in resources.BUILTINS:
            self.register(rt)

    def register(self, rt: ServedResource) -> None:
        with self.lock:
            self.types[(rt.group, rt.version, rt.plural)] = rt
            self.kinds[(rt.api_version, rt.kind)] = rt
            self.objs.setdefault((rt.group, rt.plural), {})

    def unregister(self, group: str, plural: str) -> None:
        with self.lock:
            for key, rt in list(self.types.items()):
                if rt.group == group and rt.plural == plural:
                    del self.types[key]
                    self.kinds.pop((rt.api_version, rt.kind), None)
            self.objs.pop((group, plural), None)
            for w in list(self.watchers.pop((group, plural), ())):
                w.closed = True
                w.wake.set()

    def resource(self, group: str, version: str, plural: str) -> ServedResource | None:
        return self.types.get((group, version, plural))

    def kind(self, api_version: str, kind: str) -> ServedResource:
        rt = self.kinds.get((api_version, kind))
        if rt is None:
            raise errors.api_error(404, "NotFound", f"no matches for kind \"{kind}\" in version \"{api_version}\"", {})
        return rt

    def groups(self) -> dict[str, list[str]]:
        """Served group -> versions (core group under "")."""
        out: dict[str, list[str]] = {}
        for rt in self.types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def _any_rt(self, group: str, plural: str) -> ServedResource | None:
        for rt in self.types.values():
            if rt.group == group and rt.plural == plural:
                return rt
        return None

    def _commit(self, rt: ServedResource, obj: dict, prev: StoredObject | None, type_: str) -> StoredObject:
        """Give obj the next resourceVersion, store it (or drop it for DELETED), record and fan out the event."""
        self.rv += 1
        rv = self.rv
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        data = dumps(obj)
        head = f'{{"kind":"{obj["kind"]}","apiVersion":"{obj["apiVersion"]}",'.encode()
        entry = StoredObject(obj, data, len(head) if data.startswith(head) else 0)
        key = (rt.group, rt.plural)
        ns = meta.get("namespace", "")
        name = meta["name"]
        bucket = self.objs[key]
        if type_ == "DELETED":
            names = bucket.get(ns)
            if names is not None:
                names.pop(name, None)
                if not names:
                    del bucket[ns]
            self.uids.pop(meta.get("uid"), None)
        else:
            bucket.setdefault(ns, {})[name] = entry
            self.uids[meta["uid"]] = (rt.group, rt.plural, ns, name)
        self._index_owners(key, ns, name, prev.obj if prev else None, None if type_ == "DELETED" else obj)
        ev = HistoryEvent(rv, type_, key, ns, entry, prev)
        hist = self.history
        hist.append(ev)
        if len(hist) > self.history_size:
            self.compacted = hist.popleft().rv
        for w in self.watchers.get(key, ()):
            w.offer(ev)
        for hook in self.hooks:
            hook(ev)
        if type_ == "DELETED" and ns in self.terminating and key != ("", "namespaces"):
            self._namespace_progress(ns)
        return entry

    def _index_owners(self, key: tuple, ns: str, name: str, old: dict | None, new: dict | None) -> None:
        ref = (key[0], key[1], ns, name)
        old_uids = {o.get("uid") for o in (old or {}).get("metadata", {}).get("ownerReferences") or ()}
        new_uids = {o.get("uid") for o in (new or {}).get("metadata", {}).get("ownerReferences") or ()}
        for uid in old_uids - new_uids:
            deps = self.owners.get(uid)
            if deps:
                deps.discard(ref)
                if not deps:
                    del self.owners[uid]
        for uid in new_uids:
            self.owners.setdefault(uid, set()).add(ref)

    def _entry(self, rt: ServedResource, ns: str | None, name: str) -> StoredObject | None:
        names = self.objs.get((rt.group, rt.plural), {}).get(ns or "")
        return names.get(name) if names else None

    def _require(self, rt: ServedResource, ns: str | None, name: str) -> StoredObject:
        entry = self._entry(rt, ns, name)
        if entry is None:
            raise errors.not_found(rt, name)
        return entry

    def copy_out(self, entry: StoredObject) -> dict:
        return json.loads(entry.data)

    if TYPE_CHECKING:  # the seams between the sections (writes, deletion, crds) that ClusterStore joins
        def _namespace_progress(self, ns: str) -> None: ...
        def _delete_now(self, rt: ServedResource, cur: StoredObject) -> StoredObject: ...
        def _crd_established(self, entry: StoredObject) -> StoredObject: ...
        def _serve_crd(self, crd: dict) -> None: ...
        def _drop_crd(self, crd: dict) -> None: ...
        @staticmethod
        def _manager_fields(old: dict | None, new: dict, manager: str, rt: ServedResource,
                            subresource: str | None) -> None: ...
