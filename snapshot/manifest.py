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
NODES = "nodes"  # <cluster>/<id>/nodes/<node>/{bundle.tar.age,manifest.json}: another node's files of the set
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


class ClusterNameError(ValueError):
    """A cluster name that cannot be a store prefix; str() names the flag."""


def check_cluster(name: str) -> str:
    """The name, when it can be a store prefix (a path segment that sorts and reads well)."""
    if not CLUSTER_NAME.match(name or ""):
        raise ClusterNameError(f"--cluster {name!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    return name


@dataclass
class EtcdMember:
    """One etcd member as `member list` reports it."""

    name: str
    peer_urls: list[str] = field(default_factory=list)


@dataclass
class Facts:
    """What a restore checks on the target, recorded at save; empty when it could not be read."""

    cluster_name: str = ""  # ClusterConfiguration.clusterName
    endpoint: str = ""  # control-plane endpoint, host:port (ClusterConfiguration, else admin.conf's server)
    members: list[EtcdMember] = field(default_factory=list)
    api_sans: list[str] = field(default_factory=list)  # of the saving node's API server certificate
    control_plane_nodes: list[str] = field(default_factory=list)
    worker_nodes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Facts:
        doc = dict(doc or {})
        doc["members"] = [m if isinstance(m, EtcdMember) else EtcdMember(**m) for m in doc.get("members", [])]
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


@dataclass
class NodePart:
    """Another control-plane node's own files in a snapshot set: <cluster>/<id>/nodes/<node>/."""

    node: str
    cluster: str
    id: str
    created: str
    bundle: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    api_sans: list[str] = field(default_factory=list)
    format: int = FORMAT

    @property
    def prefix(self) -> str:
        return f"{self.cluster}/{self.id}/{NODES}/{self.node}"

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> NodePart:
        try:
            doc = json.loads(data)
            return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{where}: unreadable node manifest: {exc}") from exc


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
    facts: Facts = field(default_factory=Facts)
    expected_nodes: list[str] = field(default_factory=list)  # control-plane nodes whose files the set needs
    present: list[str] = field(default_factory=list)  # filled from the store when listed, never stored

    @property
    def set_nodes(self) -> list[str]:
        """The nodes the set should hold: recorded ones, or just the saving node (snapshots before sets)."""
        return sorted(set(self.expected_nodes or [self.node]))

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.set_nodes) - set(self.present))

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
        doc = asdict(self)
        doc.pop("present")
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(data)
            known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k != "present"}
            known["facts"] = Facts.from_dict(known.get("facts"))
            m = cls(**known)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{where}: unreadable manifest: {exc}") from exc
        if m.format > FORMAT:
            raise StoreError(f"{where}: manifest format {m.format} is newer than this kubedr ({FORMAT})")
        return m


def write(store: Store, m: Manifest) -> None:
    """Store the manifest; call it only after the bundle is complete."""
    store.put_bytes(f"{m.prefix}/{MANIFEST}", m.to_json())


def write_part(store: Store, part: NodePart) -> None:
    """Store a node's manifest after its bundle: from now on the set counts the node as present."""
    store.put_bytes(f"{part.prefix}/{MANIFEST}", part.to_json())


def load_part(store: Store, m: Manifest, node: str) -> NodePart:
    """Another node's manifest of the set."""
    key = f"{m.prefix}/{NODES}/{node}/{MANIFEST}"
    return NodePart.from_json(store.get_bytes(key), f"{store.url}/{key}")


def exists(store: Store, cluster: str, snapshot_id: str) -> bool:
    """The set's manifest is there (its etcd snapshot is complete)."""
    return f"{cluster}/{snapshot_id}/{MANIFEST}" in store.list(f"{cluster}/{snapshot_id}")


def _present(m: Manifest, keys: list[str]) -> list[str]:
    """The saving node plus every node whose manifest is stored under the set."""
    head = f"{m.prefix}/{NODES}/"
    parts = {k[len(head):].split("/")[0] for k in keys if k.startswith(head) and k.endswith("/" + MANIFEST)}
    return sorted(parts | {m.node})


def load(store: Store, cluster: str, snapshot_id: str) -> Manifest:
    """One snapshot's manifest, with the nodes present in its set."""
    key = f"{cluster}/{snapshot_id}/{MANIFEST}"
    m = Manifest.from_json(store.get_bytes(key), f"{store.url}/{key}")
    m.present = _present(m, store.list(f"{m.prefix}/{NODES}"))
    return m


def list_all(store: Store, cluster: str) -> list[Manifest]:
    """Complete snapshots of the cluster, newest first; an unreadable manifest is reported and skipped."""
    out: list[Manifest] = []
    keys = store.list(cluster)
    for key in keys:
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != MANIFEST:
            continue
        try:
            m = Manifest.from_json(store.get_bytes(key), f"{store.url}/{key}")
        except StoreError as exc:
            log.warning("%s", exc)
            continue
        m.present = _present(m, keys)
        out.append(m)
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
        if len(parts) >= 3:
            by_id.setdefault(parts[1], []).append(key)
    return {sid: keys for sid, keys in by_id.items() if f"{cluster}/{sid}/{MANIFEST}" not in keys}
