"""Turns decisions into blobs of the next commit: sanitize, seal Secrets, canonical YAML, staged in the store."""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kubedr import contract, sanitize
from kubedr.contract import ObjectRef
from kubedr.exporter.coverage import Tally
from kubedr.exporter.gitstore import GitStore
from kubedr.exporter.gittree import blob_id
from kubedr.exporter.scope import IgnoreRule, strip_ignored

log = logging.getLogger("kubedr.exporter.recorder")

SECRET_KEY = ("", "Secret")
MAX_OBJECT_TRAILERS = 500  # a commit of more objects names them without their Resource-Version and managers
SECRET_MODES = ("skip", "seal", "plaintext")


@dataclass(slots=True)
class Pending:
    """What the next commit message says about one path (latest state wins); ~300 bytes with its path."""

    ref: ObjectRef
    resource_version: str = ""
    managers: tuple[str, ...] = ()
    received: float = field(default_factory=time.monotonic)
    blob: bytes | None = None  # raw id of the blob staged in the store's sink (None: deleted)


def field_managers(obj: dict[str, Any]) -> tuple[str, ...]:
    """Managers that touched the object, most recent first (from managedFields, before sanitizing)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    ordered = sorted(entries, key=lambda e: e.get("time") or "", reverse=True)
    seen: dict[str, None] = {}
    for e in ordered:
        if e.get("manager"):
            seen.setdefault(e["manager"], None)
    return tuple(seen)


_MANAGERS: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per distinct manager list, not one per object


def _shared(managers: tuple[str, ...]) -> tuple[str, ...]:
    if len(_MANAGERS) > 4096:
        _MANAGERS.clear()
    return _MANAGERS.setdefault(managers, managers)


class Recorder:
    """Stages the selected, sanitized objects as blobs of the next commit; remembers what that commit holds.

    What HEAD holds is read from HEAD's trees (libgit2); per object in scope the recorder keeps only its path
    in the type index, and, until the next commit, a Pending record.
    """

    def __init__(self, store: GitStore, secrets: str = "skip", sealer: Any = None,
                 exports: sanitize.Exports | None = None) -> None:
        if secrets not in SECRET_MODES:
            raise ValueError(f"secrets mode must be one of {SECRET_MODES}")
        self.store = store
        self.secrets = secrets
        self.sealer = sealer
        self.index: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.pending: dict[str, Pending] = {}
        self.skipped_secrets = 0
        self.skipped = Tally()  # objects in scope that a sanitize rule keeps out of the repo
        self.orphans = Tally()  # exported objects whose controller is not exported -> the controller's kind
        self.exports = exports  # the kinds exported (a child of one is skipped)
        self.ignore: list[IgnoreRule] = []  # the policy's values never exported (exporter/scope.py)

    @property
    def frozen_types(self) -> set[tuple[str, str]]:
        """Types the exporter neither writes nor deletes (Secrets when nothing can seal them)."""
        return {SECRET_KEY} if self.secrets == "skip" else set()

    def load_index(self, paths: list[str]) -> None:
        """Learn which object files the work tree holds (from HEAD plus what a crash left)."""
        self.index.clear()
        for p in paths:
            try:
                ref = contract.ref_of_path(p)
            except contract.ManifestError as exc:
                log.warning("ignoring %s", exc)
                continue
            if ref is not None:
                self.index[(ref.group, ref.kind)].add(sys.intern(p))

    def decide(self, obj: dict[str, Any], wanted: bool, received: float) -> None:
        """Write the object's file when wanted (and it changed), remove it when not."""
        try:
            ref = contract.ref_of(obj)
        except ValueError as exc:
            log.warning("skipping an object without identity: %s", exc)
            return
        key = (ref.group, ref.kind)
        if key in self.frozen_types:
            return
        data = self._render(obj, ref, key) if wanted else None
        if data is not None or not wanted:
            self.skipped.note(key, ref.path, None)
        if data is None:
            self.orphans.note(key, ref.path, None)
        meta = obj.get("metadata") or {}
        if len(self.pending) < MAX_OBJECT_TRAILERS:
            pending = Pending(ref, str(meta.get("resourceVersion") or ""), _shared(field_managers(obj)), received)
        else:  # the commit's message names the objects only (committer.format_message): keep no more
            pending = Pending(ref, "", (), received)
        if data is None:
            self.remove(ref.path, key, pending)
        else:
            self.write(ref.path, key, data, pending)

    def _render(self, obj: dict[str, Any], ref: ObjectRef, key: tuple[str, str]) -> bytes | None:
        rule = sanitize.skip_rule(obj, self.exports)
        if rule is not None:
            log.debug("not exported: %s (%s: %s)", ref.display, rule.id, rule.why)
            self.skipped.note(key, ref.path, rule.id)
            return None
        self.orphans.note(key, ref.path, sanitize.controller_kind(obj))
        clean = sanitize.strip(obj)
        if self.ignore:
            clean = strip_ignored(clean, ref, self.ignore)
        if (ref.group, ref.kind) == SECRET_KEY and self.secrets == "seal":
            clean = self.sealer.seal(clean, self._previous(ref.path))
        return contract.dump(clean)

    def _previous(self, path: str) -> dict[str, Any] | None:
        oid = self.current(path)
        data = self.store.read_blob(oid) if oid is not None else None
        try:
            return contract.load(data, path) if data is not None else None
        except contract.ManifestError:
            return None

    def current(self, path: str) -> bytes | None:
        """Raw blob id the next commit gives path: staged if pending, else HEAD's (None: no file)."""
        p = self.pending.get(path)
        return p.blob if p is not None else self.store.blob_at(path)

    def write(self, path: str, key: tuple[str, str], data: bytes, pending: Pending) -> None:
        """Stage the object's bytes as a blob; nothing happens when the path already holds them."""
        path = sys.intern(path)
        self.index[key].add(path)
        oid = blob_id(data)
        if self.current(path) == oid:
            return
        pending.blob = self.store.sink.add(data)
        self.pending[path] = pending

    def remove(self, path: str, key: tuple[str, str], pending: Pending) -> None:
        """Stage the file's deletion, when the next commit would otherwise hold it."""
        self.index[key].discard(path)
        if self.current(path) is None:
            return
        pending.blob = None
        self.pending[path] = pending

    def synced(self, key: tuple[str, str], seen: set[str], received: float) -> None:
        """After a full list of one type: files of that type that were not listed are deletions."""
        if key in self.frozen_types:
            return
        self.skipped.synced(key, seen)
        self.orphans.synced(key, seen)
        for path in sorted(self.index.get(key, set()) - seen):
            ref = contract.ref_of_path(path)
            if ref is not None:
                self.remove(path, key, Pending(ref, "", (), received))

    def drop_types(self, keep: set[tuple[str, str]], received: float) -> None:
        """Remove files of types no longer served or selected (a CRD deleted while the exporter was down)."""
        for key in sorted(set(self.index) - keep - self.frozen_types):
            self.synced(key, set(), received)

    def exported(self) -> dict[tuple[str, str], int]:
        """Objects in the work tree per type."""
        return {key: len(paths) for key, paths in list(self.index.items())}

    def take_pending(self) -> dict[str, Pending]:
        """Hand the changed paths to the committer and start a new batch."""
        out, self.pending = self.pending, {}
        return out
