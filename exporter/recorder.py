"""Turns decisions into files in the clone's work tree: sanitize, seal Secrets, canonical YAML, atomic write."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubedr.exporter.coverage import Tally
from kubedr.exporter.gitstore import TMP_PREFIX
from kubedr.exporter.scope import IgnoreRule, strip_ignored

from kubedr import contract, sanitize
from kubedr.contract import ObjectRef

log = logging.getLogger("kubedr.exporter.recorder")

SECRET_KEY = ("", "Secret")
SECRET_MODES = ("skip", "seal", "plaintext")


@dataclass
class Pending:
    """What the next commit message says about one path (latest state wins)."""

    ref: ObjectRef
    resource_version: str = ""
    managers: tuple[str, ...] = ()
    received: float = field(default_factory=time.monotonic)
    data: bytes | None = None  # the bytes written (so the commit need not read the file back)
    deleted: bool = False


def field_managers(obj: dict[str, Any]) -> tuple[str, ...]:
    """Managers that touched the object, most recent first (from managedFields, before sanitizing)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    ordered = sorted(entries, key=lambda e: e.get("time") or "", reverse=True)
    seen: dict[str, None] = {}
    for e in ordered:
        if e.get("manager"):
            seen.setdefault(e["manager"], None)
    return tuple(seen)


class Recorder:
    """Keeps the work tree equal to the selected, sanitized objects; remembers what the next commit holds."""

    def __init__(self, root: Path, secrets: str = "skip", sealer: Any = None) -> None:
        if secrets not in SECRET_MODES:
            raise ValueError(f"secrets mode must be one of {SECRET_MODES}")
        self.root = Path(root)
        self.secrets = secrets
        self.sealer = sealer
        self.index: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.pending: dict[str, Pending] = {}
        self.skipped_secrets = 0
        self.digests: dict[str, bytes] = {}  # path -> digest of the bytes in the work tree (saves a read)
        self.skipped = Tally()  # objects in scope that a sanitize rule keeps out of the repo
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
                self.index[(ref.group, ref.kind)].add(p)

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
        meta = obj.get("metadata") or {}
        pending = Pending(ref, str(meta.get("resourceVersion") or ""), field_managers(obj), received)
        if data is None:
            self.remove(ref.path, key, pending)
        else:
            self.write(ref.path, key, data, pending)

    def _render(self, obj: dict[str, Any], ref: ObjectRef, key: tuple[str, str]) -> bytes | None:
        rule = sanitize.skip_rule(obj)
        if rule is not None:
            log.debug("not exported: %s (%s: %s)", ref.display, rule.id, rule.why)
            self.skipped.note(key, ref.path, rule.id)
            return None
        clean = sanitize.strip(obj)
        if self.ignore:
            clean = strip_ignored(clean, ref, self.ignore)
        if (ref.group, ref.kind) == SECRET_KEY and self.secrets == "seal":
            clean = self.sealer.seal(clean, self._previous(ref.path))
        return contract.dump(clean)

    def _previous(self, path: str) -> dict[str, Any] | None:
        try:
            return contract.load((self.root / path).read_bytes(), path)
        except (OSError, contract.ManifestError):
            return None

    def write(self, path: str, key: tuple[str, str], data: bytes, pending: Pending) -> None:
        """Atomic write (temp file + rename); nothing happens when the bytes are already there."""
        self.index[key].add(path)
        target = os.path.join(self.root, path)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        known = self.digests.get(path)
        if known is None:
            try:
                with open(target, "rb") as fh:
                    known = hashlib.blake2b(fh.read(), digest_size=16).digest()
            except FileNotFoundError:
                os.makedirs(os.path.dirname(target), exist_ok=True)
        if known == digest:
            self.digests[path] = digest
            return
        tmp = os.path.join(os.path.dirname(target), f"{TMP_PREFIX}{os.getpid()}-{os.path.basename(target)}")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        self.digests[path] = digest
        pending.data = data
        self.pending[path] = pending

    def remove(self, path: str, key: tuple[str, str], pending: Pending) -> None:
        """Delete the file if it exists (its directory too once empty)."""
        self.index[key].discard(path)
        self.digests.pop(path, None)
        target = self.root / path
        try:
            target.unlink()
        except FileNotFoundError:
            return
        pending.deleted = True
        self.pending[path] = pending
        try:
            target.parent.rmdir()
        except OSError:
            pass

    def synced(self, key: tuple[str, str], seen: set[str], received: float) -> None:
        """After a full list of one type: files of that type that were not listed are deletions."""
        if key in self.frozen_types:
            return
        self.skipped.synced(key, seen)
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
