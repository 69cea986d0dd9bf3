"""manifest.json: what a stored snapshot holds; written last, so only complete snapshots are ever listed."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, get_type_hints

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


class SnapshotManifestError(StoreError):
    """A snapshot's manifest.json that does not say what this kubedr needs; one line naming the file and the
    field (contract.ManifestError is about a repo's object file)."""


D = TypeVar("D")


def _load(cls: type[D], doc: Any, where: str, path: str) -> D:
    """A dataclass from its JSON object, every field checked against its type (unknown keys are ignored)."""
    what = path.rstrip(".") or "manifest"
    if not isinstance(doc, dict):
        raise SnapshotManifestError(f"{where}: {what}: expected an object, got {type(doc).__name__}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # D is always a dataclass here
    missing = [f.name for f in fields if f.name not in doc and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SnapshotManifestError(f"{where}: {what}: missing {', '.join(missing)}")
    hints = get_type_hints(cls)
    return cls(**{f.name: _value(hints[f.name], doc[f.name], where, f"{path}{f.name}") for f in fields
                  if f.name in doc})


def _value(hint: Any, value: Any, where: str, path: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _load(hint, value, where, f"{path}.")
    origin = getattr(hint, "__origin__", None)
    args: tuple[Any, ...] = getattr(hint, "__args__", ())
    if origin is list:
        if not isinstance(value, list):
            raise SnapshotManifestError(f"{where}: {path}: expected a list, got {type(value).__name__}")
        return [_value(args[0], v, where, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is Any:
        return value
    allowed = tuple(a for a in args if a is not type(None)) if args else (hint,)
    if value is None and type(None) in args:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        want = " or ".join(a.__name__ for a in allowed)
        raise SnapshotManifestError(f"{where}: {path}: expected {want}, got {value!r:.40}")
    return value


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


@dataclass
class BundleInfo:
    """The stored object: its key, size and sha256, and how it was compressed and encrypted."""

    key: str = BUNDLE
    size: int = 0
    sha256: str = ""
    compression: str = ""  # zstd, gzip, none
    encryption: str = ""  # age
    recipients: list[str] = field(default_factory=list)


@dataclass
class FileEntry:
    """One file in the bundle: where it goes back, its size, mode (octal text) and sha256."""

    path: str
    size: int
    mode: str
    sha256: str
    link: str | None = None  # a symlink with this target (sha256 is that of the target text)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        if self.link is None:
            del doc["link"]
        return doc


@dataclass
class SnapshotMember:
    """The etcd member that took the snapshot."""

    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    id: str = ""


@dataclass
class EtcdSnapshot:
    """The etcd snapshot in the bundle, as `etcdctl snapshot status` and the member reported it."""

    path: str = ""
    size: int = 0
    sha256: str = ""
    revision: int = 0
    hash: int = 0
    total_keys: int = 0
    total_size: int = 0
    etcd_version: str = ""
    member: SnapshotMember = field(default_factory=SnapshotMember)
    cluster_id: str = ""


def _json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _decode(data: bytes, where: str, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise SnapshotManifestError(f"{where}: unreadable {what}: {exc}") from exc


@dataclass
class NodePart:
    """Another control-plane node's own files in a snapshot set: <cluster>/<id>/nodes/<node>/."""

    node: str
    cluster: str
    id: str
    created: str
    bundle: BundleInfo = field(default_factory=BundleInfo)
    files: list[FileEntry] = field(default_factory=list)
    api_sans: list[str] = field(default_factory=list)
    format: int = FORMAT
    member: str = ""  # the name of this node's etcd member ("" in parts saved before it was recorded)

    @property
    def prefix(self) -> str:
        return f"{self.cluster}/{self.id}/{NODES}/{self.node}"

    def to_json(self) -> bytes:
        return _json({**asdict(self), "files": [f.to_dict() for f in self.files]})

    @classmethod
    def from_json(cls, data: bytes, where: str) -> NodePart:
        return _load(cls, _decode(data, where, "node manifest"), where, "")


@dataclass
class Manifest:
    """Everything needed to find, check and restore one snapshot."""

    id: str
    cluster: str
    node: str
    created: str  # ISO 8601 UTC, when the etcd snapshot was taken
    finished: str = ""
    duration_seconds: float = 0.0
    bundle: BundleInfo = field(default_factory=BundleInfo)
    snapshot: EtcdSnapshot = field(default_factory=EtcdSnapshot)
    files: list[FileEntry] = field(default_factory=list)
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
        return _json({**doc, "files": [f.to_dict() for f in self.files]})

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        doc = _decode(data, where, "manifest")
        if isinstance(doc, dict):
            doc.pop("present", None)  # filled from the store, never read from the file
        m = _load(cls, doc, where, "")
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
