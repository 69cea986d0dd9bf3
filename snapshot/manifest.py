"""manifest.json: what a stored snapshot holds; written last, so only complete snapshots are ever listed."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubedr.snapshot.store import Store, StoreError

FORMAT = 1
BUNDLE = "bundle.tar.age"
MANIFEST = "manifest.json"
ID_FORMAT = "%Y%m%dT%H%M%S"
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

log = logging.getLogger("kubedr.snapshot")


def new_id(now: datetime) -> str:
    """A sortable id from the UTC time, to the millisecond: 20260101T120000.123Z."""
    now = now.astimezone(UTC)
    return f"{now.strftime(ID_FORMAT)}.{now.microsecond // 1000:03d}Z"


def id_time(snapshot_id: str) -> datetime | None:
    """The time encoded in an id, or None for a name that is not one."""
    try:
        return datetime.strptime(snapshot_id[:15], ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def check_cluster(name: str) -> str:
    if not CLUSTER_NAME.match(name or ""):
        from kubedr.config import UsageError

        raise UsageError(f"--cluster {name!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    return name


@dataclass
class Manifest:
    """Everything needed to find, check and restore one snapshot."""

    id: str
    cluster: str
    node: str
    created: str  # ISO 8601 UTC, when the etcd snapshot was taken
    finished: str = ""
    duration_seconds: float = 0.0
    bundle: dict[str, Any] = field(default_factory=dict)  # key, size, sha256, compression, encryption
    snapshot: dict[str, Any] = field(default_factory=dict)  # path, size, sha256, revision, hash, keys, etcd
    files: list[dict[str, Any]] = field(default_factory=list)  # path, size, mode, sha256
    nodes: list[str] = field(default_factory=list)
    kubedr_version: str = ""
    format: int = FORMAT

    @property
    def prefix(self) -> str:
        return f"{self.cluster}/{self.id}"

    @property
    def bundle_key(self) -> str:
        return f"{self.prefix}/{BUNDLE}"

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created)

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(data)
            known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
            m = cls(**known)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{where}: unreadable manifest: {exc}") from exc
        if m.format > FORMAT:
            raise StoreError(f"{where}: manifest format {m.format} is newer than this kubedr ({FORMAT})")
        return m


def write(store: Store, m: Manifest) -> None:
    """Store the manifest; call it only after the bundle is complete."""
    store.put_bytes(f"{m.prefix}/{MANIFEST}", m.to_json())


def load(store: Store, cluster: str, snapshot_id: str) -> Manifest:
    key = f"{cluster}/{snapshot_id}/{MANIFEST}"
    return Manifest.from_json(store.get_bytes(key), f"{store.url}/{key}")


def list_all(store: Store, cluster: str) -> list[Manifest]:
    """Complete snapshots of the cluster, newest first; an unreadable manifest is reported and skipped."""
    out: list[Manifest] = []
    for key in store.list(cluster):
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != MANIFEST:
            continue
        try:
            out.append(Manifest.from_json(store.get_bytes(key), f"{store.url}/{key}"))
        except StoreError as exc:
            log.warning("%s", exc)
    return sorted(out, key=lambda m: m.id, reverse=True)


def find(store: Store, cluster: str, snapshot_id: str | None) -> Manifest:
    """The snapshot with that id, or the newest one when id is None or 'latest'."""
    if snapshot_id and snapshot_id != "latest":
        return load(store, cluster, snapshot_id)
    found = list_all(store, cluster)
    if not found:
        raise StoreError(f"{store.url}: no snapshot of cluster {cluster}")
    return found[0]


def incomplete(store: Store, cluster: str) -> dict[str, list[str]]:
    """Snapshot directories without a manifest (interrupted saves or ones in progress): id -> keys."""
    by_id: dict[str, list[str]] = {}
    for key in store.list(cluster):
        parts = key.split("/")
        if len(parts) == 3:
            by_id.setdefault(parts[1], []).append(key)
    return {sid: keys for sid, keys in by_id.items() if f"{cluster}/{sid}/{MANIFEST}" not in keys}
