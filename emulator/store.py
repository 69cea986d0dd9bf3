"""The object store: one global resourceVersion, server-owned metadata, a bounded event history, watchers.

Objects are immutable once committed: each write builds a new dict and serializes it once, so reads, lists and
watch fan-out share the same bytes. The public methods (create/get/list/update/patch/apply/delete) are the
in-process API; the HTTP server calls the `*_rt` variants with the ResourceType resolved from the URL.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from kubedr.emulator import errors, immutable, resources, times
from kubedr.emulator import field_validation as _fv
from kubedr.emulator import managed_fields as _mf
from kubedr.emulator import openapi as _openapi
from kubedr.emulator import patch as _patch
from kubedr.emulator.errors import ApiError
from kubedr.emulator.resources import ResourceType

from kubedr.selectors import SelectorError, field_matcher, label_matcher

DEFAULT_MANAGER = "kubedr-emulator"
META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "ownerReferences", "finalizers", "managedFields")
SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
               "deletionGracePeriodSeconds", "selfLink")
GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
RX_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RX_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RX_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                 "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
            "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
            "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
CONTINUE_TOO_OLD = ("The provided continue parameter is too old to display a consistent list result. You can start a "
                    "new list without the continue parameter, or use the continue token in this response to retrieve "
                    "the remainder of the results. Continuing with the provided token results in an inconsistent list "
                    "- objects that were created, modified, or deleted between the time the first chunk was returned "
                    "and now may show up in the list.")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Entry:
    """A committed object and its JSON bytes (kind and apiVersion first, so list items can drop them)."""

    __slots__ = ("obj", "data", "prefix")

    def __init__(self, obj: dict, data: bytes, prefix: int):
        self.obj, self.data, self.prefix = obj, data, prefix

    def item(self, builtin: bool) -> bytes:
        """The object as a list item: built-in lists carry no kind/apiVersion, as the real server encodes them."""
        return b"{" + self.data[self.prefix:] if builtin and self.prefix else self.data


class Event:
    __slots__ = ("rv", "type", "key", "ns", "entry", "prev", "_line")

    def __init__(self, rv: int, type_: str, key: tuple, ns: str, entry: Entry, prev: Entry | None):
        self.rv, self.type, self.key, self.ns, self.entry, self.prev = rv, type_, key, ns, entry, prev
        self._line: bytes | None = None

    def line(self, type_: str | None = None, entry: Entry | None = None) -> bytes:
        if type_ is None and entry is None:
            if self._line is None:
                self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.entry.data + b"}\n"
            return self._line
        return b'{"type":"' + (type_ or self.type).encode() + b'","object":' + (entry or self.entry).data + b"}\n"


class Watcher:
    """One watch: a filter and a queue of encoded event lines the HTTP thread drains in batches."""

    MAX_BACKLOG = 200_000

    def __init__(self, store: Store, rt: ResourceType, namespace: str | None, lsel: Callable | None,
                 fsel: Callable | None):
        self.store, self.rt, self.namespace, self.lsel, self.fsel = store, rt, namespace, lsel, fsel
        self.pending: deque[bytes] = deque()
        self.wake = threading.Event()
        self.closed = False
        self.rv = store.rv

    def _match(self, entry: Entry | None) -> bool:
        if entry is None:
            return False
        obj = entry.obj
        return (self.lsel is None or self.lsel(obj)) and (self.fsel is None or self.fsel(obj))

    def offer(self, ev: Event) -> None:
        """Queue an event if it passes the filter (label changes turn into ADDED/DELETED as on the real server)."""
        if self.namespace and ev.ns != self.namespace:
            return
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
            if line is None:
                self.rv = ev.rv
                return
        self.rv = ev.rv
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


def _matchers(rt: ResourceType, label_selector: str | None, field_selector: str | None) -> tuple:
    """The list/watch selectors; one that does not parse is a 400, as the API server answers it."""
    try:
        return (label_matcher(label_selector),
                field_matcher(field_selector, resources.FIELD_SELECTORS.get(rt.kind, ())))
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from None


class Store:
    """Thread-safe objects by resource, with the server's write semantics and watch history."""

    def __init__(self, history: int = 10_000):
        self.lock = threading.RLock()
        self.rv = 0
        self.compacted = 0  # resourceVersion of the newest event dropped from the history
        self.history: deque[Event] = deque()
        self.history_size = history
        self.types: dict[tuple[str, str, str], ResourceType] = {}  # (group, version, plural)
        self.kinds: dict[tuple[str, str], ResourceType] = {}  # (apiVersion, kind)
        self.objs: dict[tuple[str, str], dict[str, dict[str, Entry]]] = {}  # (group, plural) -> ns -> name
        self.watchers: dict[tuple[str, str], set[Watcher]] = {}
        self.owners: dict[str, set[tuple]] = {}  # owner uid -> {(group, plural, ns, name)}
        self.hooks: list[Callable[[Event], None]] = []
        self.uids: dict[str, tuple] = {}
        self.terminating: set[str] = set()  # namespaces waiting for objects with finalizers to go
        # admission.Admission (set by the Emulator): (rt, operation, obj, old, user, dry_run, subresource) -> obj
        self.admission: Callable[..., dict] | None = None
        for rt in resources.BUILTINS:
            self.register(rt)

    # ------------------------------------------------------------------ types

    def register(self, rt: ResourceType) -> None:
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

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def kind(self, api_version: str, kind: str) -> ResourceType:
        rt = self.kinds.get((api_version, kind))
        if rt is None:
            raise errors.ApiError(404, "NotFound", f"no matches for kind \"{kind}\" in version \"{api_version}\"", {})
        return rt

    def groups(self) -> dict[str, list[str]]:
        """Served group -> versions (core group under "")."""
        out: dict[str, list[str]] = {}
        for rt in self.types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    # ------------------------------------------------------------------ commit

    def _commit(self, rt: ResourceType, obj: dict, prev: Entry | None, type_: str) -> Entry:
        """Give obj the next resourceVersion, store it (or drop it for DELETED), record and fan out the event."""
        self.rv += 1
        rv = self.rv
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        data = dumps(obj)
        head = f'{{"kind":"{obj["kind"]}","apiVersion":"{obj["apiVersion"]}",'.encode()
        entry = Entry(obj, data, len(head) if data.startswith(head) else 0)
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
        ev = Event(rv, type_, key, ns, entry, prev)
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

    def _entry(self, rt: ResourceType, ns: str | None, name: str) -> Entry | None:
        names = self.objs.get((rt.group, rt.plural), {}).get(ns or "")
        return names.get(name) if names else None

    def _require(self, rt: ResourceType, ns: str | None, name: str) -> Entry:
        entry = self._entry(rt, ns, name)
        if entry is None:
            raise errors.not_found(rt, name)
        return entry

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _shape(rt: ResourceType, obj: dict) -> dict:
        """kind, apiVersion and metadata first, metadata keys in the server's order."""
        meta = obj.get("metadata") or {}
        ordered = {k: meta[k] for k in META_ORDER if k in meta}
        if len(ordered) != len(meta):
            ordered.update((k, v) for k, v in meta.items() if k not in ordered)
        out = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": ordered}
        for k, v in obj.items():
            if k not in out:
                out[k] = v
        return out

    def _validate(self, rt: ResourceType, obj: dict) -> None:
        name = obj["metadata"].get("name") or ""
        if not name:
            raise errors.invalid(rt, "", [("metadata.name", "FieldValueRequired",
                                           "Required value: name or generateName is required")])
        rule = resources.NAME_RULE.get(rt.kind, "subdomain")
        msg = None
        if rule == "subdomain" and (len(name) > 253 or not RX_SUBDOMAIN.match(name)):
            msg = MSG_SUBDOMAIN if len(name) <= 253 else "must be no more than 253 characters"
        elif rule == "label" and rt.kind == "Service" and (len(name) > 63 or not RX_1035.match(name)):
            msg = MSG_1035 if len(name) <= 63 else "must be no more than 63 characters"
        elif rule == "label" and rt.kind != "Service" and (len(name) > 63 or not RX_LABEL.match(name)):
            msg = MSG_LABEL if len(name) <= 63 else "must be no more than 63 characters"
        elif rule == "path":
            if name in (".", ".."):
                msg = f"may not be '{name}'"
            elif "/" in name or "%" in name:
                msg = "may not contain '/'" if "/" in name else "may not contain '%'"
        if msg:
            raise errors.invalid(rt, name, [("metadata.name", "FieldValueInvalid",
                                             f"Invalid value: {json.dumps(name)}: {msg}")])
        if rt.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            want = f"{names.get('plural')}.{spec.get('group')}"
            if name != want:
                raise errors.invalid(rt, name, [("metadata.name", "FieldValueInvalid",
                                                 f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')])

    def _check_namespace(self, rt: ResourceType, ns: str | None, name: str) -> str:
        if not rt.namespaced:
            return ""
        if not ns:
            raise errors.bad_request("the server could not find the requested resource")
        nsrt = self.kinds[("v1", "Namespace")]
        entry = self._entry(nsrt, "", ns)
        if entry is None:
            raise errors.namespace_not_found(ns)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise errors.forbidden_terminating(rt, name, ns)
        return ns

    @staticmethod
    def _manager_fields(old: dict | None, new: dict, manager: str, rt: ResourceType, subresource: str | None) -> None:
        """Record a non-apply write in metadata.managedFields."""
        meta = new["metadata"]
        incoming = meta.get("managedFields")
        if not incoming and old is not None:
            meta["managedFields"] = old["metadata"].get("managedFields") or []
        elif incoming and incoming == [{}]:
            meta["managedFields"] = []
        meta["managedFields"] = _mf.track_update(old, new, manager, rt.api_version, rt.kind, now_iso(),
                                                 subresource=subresource)
        if not meta["managedFields"]:
            del meta["managedFields"]

    @staticmethod
    def _spec_changed(old: dict, new: dict) -> bool:
        skip = ("metadata", "status", "kind", "apiVersion")
        return {k: v for k, v in old.items() if k not in skip} != {k: v for k, v in new.items() if k not in skip}

    @staticmethod
    def _same(old: dict, new: dict) -> bool:
        """A no-op write: equal but for resourceVersion and managedFields timestamps (no rv bump, no event)."""
        def norm(o: dict) -> dict:
            m = dict(o["metadata"])
            m.pop("resourceVersion", None)
            m["managedFields"] = [{k: v for k, v in f.items() if k != "time"} for f in m.get("managedFields") or ()]
            return {**o, "metadata": m}
        return norm(old) == norm(new)

    def copy_out(self, entry: Entry) -> dict:
        return json.loads(entry.data)

    # ------------------------------------------------------------------ writes (by ResourceType)

    def create_rt(self, rt: ResourceType, obj: dict, namespace: str | None = None, manager: str = DEFAULT_MANAGER,
                  dry_run: bool = False, fields_done: bool = False) -> Entry:
        """POST: server metadata, namespace checks, validation, AlreadyExists."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        ns = namespace if namespace is not None else meta.get("namespace")
        if rt.namespaced and namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(random.choices(GENERATE_CHARS, k=5))
            name = meta.get("name") or ""
            ns = self._check_namespace(rt, ns, name)
            if rt.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            for k in SERVER_META:
                meta.pop(k, None)
            obj = self._shape(rt, obj)
            if rt.builtin:
                _prune(obj, rt)
                times.normalise_object(obj, rt.api_version, rt.kind)
            self._validate(rt, obj)
            if self._entry(rt, ns, name) is not None:
                raise errors.already_exists(rt, name)
            meta = obj["metadata"]
            meta["uid"] = str(uuid.uuid4())
            meta["resourceVersion"] = ""
            if rt.generation:
                meta["generation"] = 1
            meta["creationTimestamp"] = now_iso()
            obj = self._shape(rt, obj)
            if "status" in rt.subresources and rt.kind not in ("CustomResourceDefinition",):
                obj.pop("status", None)
            from kubedr.emulator import defaults
            defaults.apply(rt, obj, None)
            if rt.builtin and "status" in rt.subresources:
                obj.setdefault("status", {})  # a Go struct, never omitted
            if not fields_done:
                self._manager_fields(None, obj, manager, rt, None)
            if rt.builtin and rt.kind in defaults.STRATEGIES:
                defaults.prepare_for_create(rt, obj)
                obj = self._shape(rt, obj)  # metadata keys back in the server's order
            if self.admission is not None:
                obj = self.admission(rt, "CREATE", obj, None, manager, dry_run)
            if dry_run:
                del obj["metadata"]["resourceVersion"]
                return Entry(obj, dumps(obj), 0)
            entry = self._commit(rt, obj, None, "ADDED")
            if rt.kind == "CustomResourceDefinition":
                entry = self._crd_established(entry)
            return entry

    def update_rt(self, rt: ResourceType, obj: dict, name: str, namespace: str | None = None,
                  manager: str = DEFAULT_MANAGER, dry_run: bool = False, subresource: str | None = None,
                  fields_done: bool = False, check_rv: bool = True) -> Entry:
        """PUT: optimistic concurrency on resourceVersion, immutable server fields, status/spec split."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({name})")
        if rt.namespaced and namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        with self.lock:
            cur = self._require(rt, namespace if rt.namespaced else "", name)
            old = cur.obj
            rv = meta.get("resourceVersion")
            if check_rv and rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            new = self._merge_server_fields(rt, old, obj, subresource)
            if not fields_done:
                self._manager_fields(old, new, manager, rt, subresource)
            return self._finish_update(rt, cur, new, dry_run, manager, subresource)

    def _merge_server_fields(self, rt: ResourceType, old: dict, obj: dict, subresource: str | None) -> dict:
        """The object a write produces: server-owned metadata from the live object, status or spec kept aside."""
        ometa = old["metadata"]
        if subresource == "status":
            new = {k: v for k, v in old.items()}
            new["metadata"] = dict(ometa)
            if obj.get("metadata", {}).get("managedFields") is not None:
                new["metadata"]["managedFields"] = obj["metadata"]["managedFields"]
            if "annotations" in obj.get("metadata", {}):  # as the workload status strategies: labels are kept
                new["metadata"]["annotations"] = obj["metadata"]["annotations"]
                if not new["metadata"]["annotations"]:
                    del new["metadata"]["annotations"]
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return self._shape(rt, new)
        meta = dict(obj.get("metadata") or {})
        for k in SERVER_META:
            if k in ometa:
                meta[k] = ometa[k]
            else:
                meta.pop(k, None)
        meta["name"] = ometa["name"]
        if "namespace" in ometa:
            meta["namespace"] = ometa["namespace"]
        new = dict(obj)
        new["metadata"] = meta
        if "status" in rt.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        new = self._shape(rt, new)
        from kubedr.emulator import defaults
        defaults.apply(rt, new, old)
        if rt.builtin:
            _prune(new, rt)
        return new

    def _finish_update(self, rt: ResourceType, cur: Entry, new: dict, dry_run: bool, manager: str = "",
                       subresource: str | None = None) -> Entry:
        old = cur.obj
        from kubedr.emulator import defaults
        defaults.prepare_for_update(rt, new, old)
        if self.admission is not None:
            new = self.admission(rt, "UPDATE", new, old, manager, dry_run, subresource)
        if rt.builtin:
            times.normalise_object(new, rt.api_version, rt.kind)
            immutable.check_update(rt, old, new)
        if rt.generation and self._spec_changed(old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if self._same(old, new):
            return cur
        if dry_run:
            return Entry(new, dumps(new), 0)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind != "Namespace":
            entry = self._commit(rt, new, cur, "MODIFIED")
            self._delete_now(rt, entry)
            return entry
        entry = self._commit(rt, new, cur, "MODIFIED")
        if rt.kind == "CustomResourceDefinition":
            self._serve_crd(entry.obj)
        return entry

    def patch_rt(self, rt: ResourceType, name: str, namespace: str | None, patch: object, patch_type: str,
                 manager: str = DEFAULT_MANAGER, force: bool = False, dry_run: bool = False,
                 subresource: str | None = None) -> Entry:
        """PATCH: merge, json, strategic, or apply (server-side apply creates the object if absent)."""
        ns = namespace if rt.namespaced else ""
        with self.lock:
            cur = self._entry(rt, ns, name)
            if patch_type == "apply":
                return self._apply(rt, cur, patch, name, ns, manager, force, dry_run, subresource)
            if cur is None:
                raise errors.not_found(rt, name)
            base = copy.deepcopy(cur.obj)
            if subresource == "scale":
                return self._scale_write(rt, cur, _do_patch(self.scale_of(rt, cur), patch, patch_type, rt, "Scale"),
                                         manager, dry_run)
            patched = _do_patch(base, patch, patch_type, rt, rt.kind)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            pmeta = patched.setdefault("metadata", {})
            if pmeta.get("resourceVersion") and pmeta["resourceVersion"] != cur.obj["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            if patched.get("metadata", {}).get("managedFields") == cur.obj["metadata"].get("managedFields"):
                patched["metadata"].pop("managedFields", None)
            new = self._merge_server_fields(rt, cur.obj, patched, subresource)
            self._manager_fields(cur.obj, new, manager, rt, subresource)
            return self._finish_update(rt, cur, new, dry_run, manager, subresource)

    def _apply(self, rt: ResourceType, cur: Entry | None, config: object, name: str, ns: str, manager: str,
               force: bool, dry_run: bool, subresource: str | None) -> Entry:
        if not isinstance(config, dict):
            raise errors.bad_request("the apply configuration must be an object")
        cmeta = config.get("metadata") or {}
        if cmeta.get("name") and cmeta["name"] != name:
            raise errors.bad_request(f"the name of the object ({cmeta['name']}) does not match the name on the URL "
                                     f"({name})")
        if config.get("kind") and config["kind"] != rt.kind or config.get("apiVersion") and \
                config["apiVersion"] != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({config.get('apiVersion')}) does not match the "
                                     f"expected API version ({rt.api_version})")
        if not config.get("kind") or not config.get("apiVersion"):
            raise errors.bad_request("apiVersion and kind must be set in an apply configuration")
        live = cur.obj if cur else None
        if cur is None and subresource:
            raise errors.not_found(rt, name)
        merged = _server_side_apply(live, config, manager, force, rt)
        merged.setdefault("metadata", {})["name"] = name
        if cur is None:
            if rt.namespaced:
                merged["metadata"]["namespace"] = ns
            return self.create_rt(rt, merged, ns or None, manager, dry_run, fields_done=True)
        new = self._merge_server_fields(rt, cur.obj, merged, subresource)
        new["metadata"]["managedFields"] = merged["metadata"].get("managedFields") or []
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]
        return self._finish_update(rt, cur, new, dry_run, manager, subresource)

    # ------------------------------------------------------------------ scale subresource

    def scale_of(self, rt: ResourceType, entry: Entry) -> dict:
        obj = entry.obj
        meta = obj["metadata"]
        sel = (obj.get("spec") or {}).get("selector")
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": _path_get(obj, rt.scale_path) or 0},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": selector_string(sel) if isinstance(sel, dict) else (sel or "")}}

    def scale_update_rt(self, rt: ResourceType, name: str, namespace: str | None, scale: dict,
                        manager: str = DEFAULT_MANAGER, dry_run: bool = False) -> Entry:
        with self.lock:
            cur = self._require(rt, namespace if rt.namespaced else "", name)
            return self._scale_write(rt, cur, scale, manager, dry_run)

    def _scale_write(self, rt: ResourceType, cur: Entry, scale: dict, manager: str, dry_run: bool) -> Entry:
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != cur.obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, cur.obj["metadata"]["name"])
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(rt, cur.obj["metadata"]["name"], [("spec.replicas", "FieldValueInvalid",
                                 f"Invalid value: {replicas}: must be greater than or equal to 0")])
        new = copy.deepcopy(cur.obj)
        _path_set(new, rt.scale_path, replicas)
        self._manager_fields(cur.obj, new, manager, rt, "scale")
        return self._finish_update(rt, cur, new, dry_run, manager, "scale")

    # ------------------------------------------------------------------ delete, garbage collection

    def delete_rt(self, rt: ResourceType, name: str, namespace: str | None = None, propagation: str | None = None,
                  dry_run: bool = False, preconditions: dict | None = None) -> tuple[Entry, bool]:
        """DELETE; returns (entry, deleted_now). Finalizers, Foreground and namespaces delay the removal."""
        ns = namespace if rt.namespaced else ""
        with self.lock:
            cur = self._require(rt, ns, name)
            meta = cur.obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise errors.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                      f"object meta: {meta['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{meta['resourceVersion']}")
            if dry_run:
                return cur, not meta.get("finalizers") and rt.kind != "Namespace"
            policy = propagation or "Background"
            if rt.kind == "Namespace":
                if name in ("default", "kube-system", "kube-public"):
                    raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be '
                                   "deleted", {"name": name, "kind": "namespaces"})
                return self._terminate_namespace(rt, cur), False
            if rt.kind == "CustomResourceDefinition":
                self._drop_crd(cur.obj)
            if meta.get("deletionTimestamp"):
                return cur, False
            if meta.get("finalizers") or policy == "Foreground":
                new = copy.deepcopy(cur.obj)
                nm = new["metadata"]
                nm["deletionTimestamp"] = now_iso()
                nm["deletionGracePeriodSeconds"] = 0
                if policy == "Foreground":
                    nm["finalizers"] = [*(nm.get("finalizers") or []), "foregroundDeletion"]
                elif policy == "Orphan":
                    nm["finalizers"] = [*(nm.get("finalizers") or []), "orphan"]
                cur = self._commit(rt, new, cur, "MODIFIED")
                if policy == "Foreground":
                    self._collect(meta["uid"], "Foreground")
                    if self._blocking_dependents(meta["uid"]):
                        return cur, False  # removed when the last blocking dependent is gone (_delete_now)
                    return self._remove_finalizer(rt, cur, "foregroundDeletion"), False
                if policy == "Orphan":
                    self._orphan(meta["uid"])
                    return self._remove_finalizer(rt, cur, "orphan"), False
                return cur, False
            if policy == "Orphan":
                self._orphan(meta["uid"])
            entry = self._delete_now(rt, cur)
            return entry, True

    def _remove_finalizer(self, rt: ResourceType, cur: Entry, finalizer: str) -> Entry:
        new = copy.deepcopy(cur.obj)
        fins = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if fins:
            new["metadata"]["finalizers"] = fins
            return self._commit(rt, new, cur, "MODIFIED")
        new["metadata"].pop("finalizers", None)
        entry = self._commit(rt, new, cur, "MODIFIED")
        return self._delete_now(rt, entry)

    def _delete_now(self, rt: ResourceType, cur: Entry) -> Entry:
        obj = dict(cur.obj)
        obj["metadata"] = dict(obj["metadata"])
        entry = self._commit(rt, obj, cur, "DELETED")
        self._collect(obj["metadata"]["uid"], "Background")
        for ref in obj["metadata"].get("ownerReferences") or ():
            if ref.get("blockOwnerDeletion"):
                self._finish_foreground(ref.get("uid"))
        return entry

    def _blocking_dependents(self, uid: str) -> bool:
        """Dependents still holding a foreground deletion of their owner (blockOwnerDeletion, as the GC reads it)."""
        for group, plural, ns, name in self.owners.get(uid, ()):
            rt = self._any_rt(group, plural)
            cur = self._entry(rt, ns, name) if rt else None
            refs = cur.obj["metadata"].get("ownerReferences") or () if cur else ()
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                return True
        return False

    def _finish_foreground(self, uid: str | None) -> None:
        """The owner in foreground deletion goes once no blocking dependent is left."""
        where = self.uids.get(uid or "")
        rt = self._any_rt(where[0], where[1]) if where else None
        owner = self._entry(rt, where[2], where[3]) if rt and where else None
        if owner is None or "foregroundDeletion" not in (owner.obj["metadata"].get("finalizers") or ()):
            return
        if not self._blocking_dependents(uid or ""):
            self._remove_finalizer(rt, owner, "foregroundDeletion")

    def _collect(self, uid: str, policy: str) -> None:
        """Garbage-collect the dependents of a deleted owner (dependents with other live owners just lose the ref)."""
        for group, plural, ns, name in sorted(self.owners.get(uid, ())):
            rt = self._any_rt(group, plural)
            cur = self._entry(rt, ns, name) if rt else None
            if cur is None:
                continue
            refs = cur.obj["metadata"].get("ownerReferences") or []
            others = [r for r in refs if r.get("uid") != uid and r.get("uid") in self.uids]
            if others:
                new = copy.deepcopy(cur.obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._commit(rt, new, cur, "MODIFIED")
                continue
            if cur.obj["metadata"].get("deletionTimestamp"):
                continue
            if cur.obj["metadata"].get("finalizers"):
                self.delete_rt(rt, name, ns, "Background")
            else:
                self._delete_now(rt, cur)

    def _orphan(self, uid: str) -> None:
        for group, plural, ns, name in sorted(self.owners.get(uid, ())):
            rt = self._any_rt(group, plural)
            cur = self._entry(rt, ns, name) if rt else None
            if cur is None:
                continue
            new = copy.deepcopy(cur.obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit(rt, new, cur, "MODIFIED")

    def _any_rt(self, group: str, plural: str) -> ResourceType | None:
        for rt in self.types.values():
            if rt.group == group and rt.plural == plural:
                return rt
        return None

    def _namespace_progress(self, ns: str) -> None:
        names = [n for n in self.hooks if isinstance(n, NamespaceFinalizer)]
        if names:
            names[0].request(ns)
        elif not any(ns in b for k, b in self.objs.items() if k != ("", "namespaces")):
            self.finalize_namespace(ns)

    def _terminate_namespace(self, rt: ResourceType, cur: Entry) -> Entry:
        """Namespace deletion: Terminating first; the namespace controller empties it and then removes it."""
        if not cur.obj["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(cur.obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new.setdefault("status", {})["phase"] = "Terminating"
            cur = self._commit(rt, new, cur, "MODIFIED")
        if not any(isinstance(h, NamespaceFinalizer) for h in self.hooks):
            self.finalize_namespace(cur.obj["metadata"]["name"])
            return self._entry(rt, "", cur.obj["metadata"]["name"]) or cur
        for h in self.hooks:
            if isinstance(h, NamespaceFinalizer):
                h.request(cur.obj["metadata"]["name"])
        return cur

    def finalize_namespace(self, name: str) -> None:
        """The namespace controller: delete everything in a terminating namespace; once nothing is left (objects
        with finalizers keep it Terminating), drop the `kubernetes` finalizer and remove the namespace."""
        with self.lock:
            nsrt = self.kinds[("v1", "Namespace")]
            cur = self._entry(nsrt, "", name)
            if cur is None or not cur.obj["metadata"].get("deletionTimestamp"):
                self.terminating.discard(name)
                return
            self.terminating.add(name)
            left = 0
            for key, bucket in list(self.objs.items()):
                rt = self._any_rt(*key)
                if rt is None or not rt.namespaced:
                    continue
                for obj_name in sorted(bucket.get(name, {})):
                    entry = self._entry(rt, name, obj_name)
                    if entry is None:
                        continue
                    if entry.obj["metadata"].get("finalizers"):
                        left += 1
                        if not entry.obj["metadata"].get("deletionTimestamp"):
                            self.delete_rt(rt, obj_name, name)
                    else:
                        self._delete_now(rt, entry)
            if left:
                return
            self.terminating.discard(name)
            cur = self._entry(nsrt, "", name)
            if cur is not None:
                new = copy.deepcopy(cur.obj)
                new.setdefault("spec", {})["finalizers"] = []
                cur = self._commit(nsrt, new, cur, "MODIFIED")
                self._delete_now(nsrt, cur)

    # ------------------------------------------------------------------ CRDs

    def _crd_established(self, entry: Entry) -> Entry:
        """The apiextensions controllers: accept the names, mark Established, start serving the kind."""
        crd = entry.obj
        now = now_iso()
        new = copy.deepcopy(crd)
        names = dict(new["spec"]["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        new["status"] = {
            "acceptedNames": names,
            "conditions": [
                {"lastTransitionTime": now, "message": "no conflicts found", "reason": "NoConflicts",
                 "status": "True", "type": "NamesAccepted"},
                {"lastTransitionTime": now, "message": "the initial names have been accepted",
                 "reason": "InitialNamesAccepted", "status": "True", "type": "Established"}],
            "storedVersions": [v["name"] for v in new["spec"].get("versions", []) if v.get("storage")]}
        rt = self.kinds[("apiextensions.k8s.io/v1", "CustomResourceDefinition")]
        self._manager_fields(crd, new, "Go-http-client", rt, "status")
        entry = self._commit(rt, new, entry, "MODIFIED")
        self._serve_crd(entry.obj)
        return entry

    def _serve_crd(self, crd: dict) -> None:
        spec = crd["spec"]
        served = [v for v in spec.get("versions", []) if v.get("served", True)]
        for rt in [rt for rt in self.types.values() if rt.extra.get("crd") == crd["metadata"]["name"]]:
            if rt.version not in {v["name"] for v in served}:
                del self.types[(rt.group, rt.version, rt.plural)]
                self.kinds.pop((rt.api_version, rt.kind), None)
        for v in served:
            rt = resources.crd_resource(crd, v)
            self.register(rt)
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            _openapi.add_custom_resource(rt.group, rt.version, rt.kind, rt.plural, rt.namespaced, schema)

    def _drop_crd(self, crd: dict) -> None:
        spec = crd["spec"]
        group, plural = spec["group"], spec["names"]["plural"]
        rt = self._any_rt(group, plural)
        if rt is not None:
            for ns, names in list(self.objs.get((group, plural), {}).items()):
                for name in sorted(names):
                    entry = self._entry(rt, ns, name)
                    if entry is not None:
                        self._delete_now(rt, entry)
        for v in spec.get("versions") or ():
            _openapi.remove_custom_resource(group, v["name"], spec["names"]["kind"])
        self.unregister(group, plural)

    # ------------------------------------------------------------------ reads

    def get_rt(self, rt: ResourceType, name: str, namespace: str | None = None) -> Entry:
        return self._require(rt, namespace if rt.namespaced else "", name)

    def _snapshot(self, rt: ResourceType, rv: int | None) -> tuple[int, dict[tuple[str, str], Entry]]:
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

    def list_rt(self, rt: ResourceType, namespace: str | None = None, label_selector: str | None = None,
                field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
                resource_version: str | None = None, rv_match: str | None = None) -> tuple[int, list[Entry], dict]:
        """Returns (list rv, entries in key order, extra list metadata: continue, remainingItemCount)."""
        lsel, fsel = _matchers(rt, label_selector, field_selector)
        at: int | None = None
        start = ""
        if continue_:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_ + "=" * (-len(continue_) % 4)))
                at, start = int(token["rv"]), token["start"]
            except Exception as exc:
                raise errors.bad_request(f"continue key is not valid: {exc}") from None
            if at < self.compacted:
                raise errors.ApiError(410, "Expired", CONTINUE_TOO_OLD)
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
        rv, snap = self._snapshot(rt, at)
        ns = namespace if rt.namespaced else None
        allns = rt.namespaced and not ns
        keyed = []
        for (ons, name), entry in snap.items():
            if ns and ons != ns:
                continue
            k = f"{ons}/{name}" if allns else name
            if start and k < start:
                continue
            keyed.append((k, entry))
        keyed.sort(key=lambda t: t[0])
        out = [e for _, e in keyed if (lsel is None or lsel(e.obj)) and (fsel is None or fsel(e.obj))]
        extra: dict = {}
        if limit and limit > 0 and len(out) > limit:
            last = out[limit - 1].obj["metadata"]
            lk = f"{last.get('namespace', '')}/{last['name']}" if allns else last["name"]
            tok = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": lk + "\x00"}, separators=(",", ":"))
            extra["continue"] = base64.urlsafe_b64encode(tok.encode()).decode().rstrip("=")
            if lsel is None and fsel is None:
                extra["remainingItemCount"] = len(out) - limit
            out = out[:limit]
        return rv, out, extra

    def wait_for(self, rv: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.rv < rv and time.monotonic() < deadline:
            time.sleep(0.01)

    def watch_rt(self, rt: ResourceType, namespace: str | None = None, label_selector: str | None = None,
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

    # ------------------------------------------------------------------ the in-process API

    def _rt_of(self, obj: dict) -> ResourceType:
        try:
            return self.kind(obj["apiVersion"], obj["kind"])
        except KeyError:
            raise errors.bad_request("apiVersion and kind are required") from None

    def create(self, obj: dict, manager: str = DEFAULT_MANAGER, namespace: str | None = None,
               dry_run: bool = False) -> dict:
        """Create an object (a deep copy of obj is stored); returns the stored object."""
        rt = self._rt_of(obj)
        obj = copy.deepcopy(obj)
        return self.copy_out(self.create_rt(rt, obj, namespace or obj.get("metadata", {}).get("namespace"), manager,
                                            dry_run))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        return self.copy_out(self.get_rt(self.kind(api_version, kind), name, namespace))

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        """Objects of a kind (each with kind and apiVersion), in key order."""
        _, entries, _ = self.list_rt(self.kind(api_version, kind), namespace, label_selector, field_selector)
        return [self.copy_out(e) for e in entries]

    def update(self, obj: dict, manager: str = DEFAULT_MANAGER, dry_run: bool = False,
               subresource: str | None = None) -> dict:
        rt = self._rt_of(obj)
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata") or {}
        if subresource == "scale":
            raise errors.bad_request("use scale()")
        return self.copy_out(self.update_rt(rt, obj, meta.get("name", ""), meta.get("namespace"), manager, dry_run,
                                            subresource))

    def patch(self, api_version: str, kind: str, name: str, patch: object, patch_type: str = "merge",
              namespace: str | None = None, manager: str = DEFAULT_MANAGER, force: bool = False,
              dry_run: bool = False, subresource: str | None = None) -> dict:
        """patch_type: merge, json, strategic or apply."""
        return self.copy_out(self.patch_rt(self.kind(api_version, kind), name, namespace, copy.deepcopy(patch),
                                           patch_type, manager, force, dry_run, subresource))

    def apply(self, obj: dict, manager: str, force: bool = False, dry_run: bool = False) -> dict:
        """Server-side apply of a full or partial object."""
        meta = obj.get("metadata") or {}
        return self.patch(obj["apiVersion"], obj["kind"], meta.get("name", ""), obj, "apply", meta.get("namespace"),
                          manager, force, dry_run)

    def scale(self, api_version: str, kind: str, name: str, replicas: int, namespace: str | None = None,
              manager: str = DEFAULT_MANAGER) -> dict:
        rt = self.kind(api_version, kind)
        entry = self.scale_update_rt(rt, name, namespace, {"spec": {"replicas": replicas}}, manager)
        return self.copy_out(entry)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               propagation: str = "Background", dry_run: bool = False) -> dict:
        """Delete; returns the object as last seen (with deletionTimestamp when removal is pending)."""
        entry, _ = self.delete_rt(self.kind(api_version, kind), name, namespace, propagation, dry_run)
        return self.copy_out(entry)

    def watch(self, api_version: str, kind: str, namespace: str | None = None, resource_version: str | None = None,
              label_selector: str | None = None) -> Watcher:
        """A Watcher whose take(timeout) returns encoded event lines (initial lines are queued first)."""
        w, first = self.watch_rt(self.kind(api_version, kind), namespace, label_selector, None, resource_version)
        for line in reversed(first):
            w.pending.appendleft(line)
        return w


class NamespaceFinalizer:
    """Marker base for a hook that empties terminating namespaces asynchronously (the controllers provide one)."""

    def __call__(self, ev: Event) -> None:  # pragma: no cover - interface
        pass

    def request(self, name: str) -> None:  # pragma: no cover - interface
        pass


def selector_string(sel: dict) -> str:
    """A LabelSelector as the string form Scale.status.selector carries."""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {op.lower()} ({','.join(sorted(e.get('values') or []))})")
        elif op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
    return ",".join(sorted(parts))


def _path_get(obj: dict, path: str) -> object:
    cur: object = obj
    for part in path.strip(".").split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _path_set(obj: dict, path: str, value: object) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


# ---------------------------------------------------------------------- patch and apply glue


def _do_patch(base: dict, patch: object, patch_type: str, rt: ResourceType, kind: str) -> dict:
    try:
        if patch_type == "merge":
            return _merge(base, patch)
        if patch_type == "json":
            if not isinstance(patch, list):
                raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            return _patch.json_patch(base, patch)
        if patch_type == "strategic":
            if not rt.builtin:
                raise errors.unsupported_media_type("application/strategic-merge-patch+json", PATCH_TYPES_CR)
            api_version = "autoscaling/v1" if kind == "Scale" else rt.api_version
            return _patch.strategic_merge_patch(base, patch, api_version, kind)
    except ApiError:
        raise
    except _patch.UnsupportedPatch:
        raise errors.unsupported_media_type("application/strategic-merge-patch+json", PATCH_TYPES_CR) from None
    except _patch.PatchError as exc:
        text = str(exc)
        if "test" in text.lower() and "fail" in text.lower():
            raise errors.ApiError(409, "Conflict", text) from None
        raise errors.ApiError(422, "Invalid", text) from None
    except Exception as exc:  # noqa: BLE001 - any other malformed patch: the apiserver answers 400
        raise errors.bad_request(str(exc)) from None
    raise errors.unsupported_media_type(patch_type, PATCH_TYPES)


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml",
               "application/strategic-merge-patch+json")
PATCH_TYPES_CR = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _merge(target: object, patch: object) -> object:
    return _patch.merge_patch(target, patch)


def _server_side_apply(live: dict | None, config: dict, manager: str, force: bool, rt: ResourceType) -> dict:
    try:
        return _mf.server_side_apply(live, config, manager, force, rt.api_version, rt.kind, now_iso())
    except Exception as exc:
        conflicts = getattr(exc, "conflicts", None)
        if conflicts is None:
            if isinstance(exc, _patch.PatchError):
                raise errors.ApiError(422, "Invalid", str(exc)) from None
            if isinstance(exc, ApiError):
                raise
            if isinstance(exc, _mf.FieldsError):
                raise typed_patch_error(config, rt, str(exc)) from None
            raise errors.bad_request(str(exc)) from None
        status = getattr(exc, "status", None)
        if callable(status):  # managed_fields.ApplyConflict: the apiserver's own wording and causes
            body = status()
            raise ApiError(409, "Conflict", body["message"], body["details"]) from None
        raise apply_conflict(conflicts, rt, live) from None


def typed_patch_error(config: dict, rt: ResourceType, why: str) -> ApiError:
    """An apply the schema refuses (undeclared field, list item without its key): the apiserver returns the
    plain error of structured-merge-diff's conversion, which its status writer turns into a 500 without reason
    (kubernetes/kubernetes#122480, #139253)."""
    meta = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    gvk = f"{rt.group}/{rt.version}, Kind={rt.kind}"
    where = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}; {gvk}"
    return ApiError(500, "", f"failed to create typed patch object ({where}): {why}")


def _prune(obj: dict, rt: ResourceType) -> None:
    """A built-in object holds only what its Go type has: unknown fields go, as the apiserver's decoder drops them."""
    _fv.prune_unknown(obj, rt.api_version, rt.kind)


def apply_conflict(conflicts: Iterable, rt: ResourceType, live: dict | None) -> ApiError:
    """409 shaped like a real SSA conflict: one cause per (manager, field)."""
    fields = {(f.get("manager"), f.get("subresource") or "") : f.get("apiVersion")
              for f in (live or {}).get("metadata", {}).get("managedFields") or ()}
    causes = []
    for manager, path in conflicts:
        sub = next((s for (m, s) in fields if m == manager and s), "")
        api_version = next((v for (m, s), v in fields.items() if m == manager), rt.api_version)
        who = f'conflict with "{manager}"' + (f' with subresource "{sub}"' if sub else "") + f" using {api_version}"
        causes.append({"reason": "FieldManagerConflict", "message": who, "field": path})
    n = len(causes)
    if n == 1:
        message = f"Apply failed with 1 conflict: {causes[0]['message']}: {causes[0]['field']}"
    else:
        message = f"Apply failed with {n} conflicts: " + "\n".join(f"{c['message']}: {c['field']}" for c in causes)
    return ApiError(409, "Conflict", message, {"causes": causes})

