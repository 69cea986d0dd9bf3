"""What the emulator's store holds: committed objects as shared bytes, and the history events watchers replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime

DEFAULT_MANAGER = "kubedr-emulator"
META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "ownerReferences", "finalizers", "managedFields")
SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
               "deletionGracePeriodSeconds", "selfLink")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class StoredObject:
    """A committed object and its JSON bytes (kind and apiVersion first, so list items can drop them)."""

    __slots__ = ("obj", "data", "prefix")

    def __init__(self, obj: dict, data: bytes, prefix: int):
        self.obj, self.data, self.prefix = obj, data, prefix

    def item(self, builtin: bool) -> bytes:
        """The object as a list item: built-in lists carry no kind/apiVersion, as the real server encodes them."""
        return b"{" + self.data[self.prefix:] if builtin and self.prefix else self.data


class HistoryEvent:
    """One committed change (ADDED/MODIFIED/DELETED) with the object before it; watch lines are encoded once."""

    __slots__ = ("rv", "type", "key", "ns", "entry", "prev", "_line")

    def __init__(self, rv: int, type_: str, key: tuple, ns: str, entry: StoredObject, prev: StoredObject | None):
        self.rv, self.type, self.key, self.ns, self.entry, self.prev = rv, type_, key, ns, entry, prev
        self._line: bytes | None = None

    def line(self, type_: str | None = None, entry: StoredObject | None = None) -> bytes:
        if type_ is None and entry is None:
            if self._line is None:
                self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.entry.data + b"}\n"
            return self._line
        return b'{"type":"' + (type_ or self.type).encode() + b'","object":' + (entry or self.entry).data + b"}\n"
