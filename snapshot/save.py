"""save: take and check an etcd snapshot, bundle it with the kubeadm files, encrypt, store, then the manifest."""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubedr.snapshot import bundle, etcd, facts, kubeadm, manifest, progress
from kubedr.snapshot.manifest import Manifest, NodePart
from kubedr.snapshot.store import Store, StoreError

log = logging.getLogger("kubedr.snapshot")
SNAPSHOT_NAME = "etcd/snapshot.db"


@dataclass
class SaveRequest:
    """Everything save needs, already validated."""

    store: Store
    cluster: str
    client: etcd.Client
    recipients: list[Any]
    recipient_texts: list[str]
    root: Path = Path("/")
    node: str = field(default_factory=socket.gethostname)
    compression: str = "zstd"
    work_dir: str | None = None
    kubeconfig: str | None = None
    cluster_info: bool = True
    set_id: str | None = None  # every control-plane node's job saves under this id (one set)
    etcd_from: str = "this"  # who takes the etcd snapshot: "this", "leader" or a node name
    expect_nodes: list[str] = field(default_factory=list)
    stop: threading.Event | None = None  # set on SIGTERM: the etcd stream is abandoned


@dataclass
class Saved:
    manifest: Manifest | None  # the set's manifest, when this node took the etcd snapshot
    seconds: float
    bundle_seconds: float
    part: NodePart | None = None  # this node's files, when another node took it


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kubedr")
    except Exception:
        return ""


def _takes_etcd(req: SaveRequest) -> tuple[bool, etcd.Member | None]:
    """Whether this node takes the set's etcd snapshot (and the member, when it had to ask etcd)."""
    if req.etcd_from in ("this", req.node):
        return True, None
    if req.etcd_from != "leader":
        return False, None
    member = etcd.member(req.client, req.stop)
    return member.leader, member


def save(req: SaveRequest) -> Saved:
    """This node's part of a snapshot; on failure nothing is listed and the partial bundle is removed.

    The node that takes the etcd snapshot writes the set's manifest (with its own files); every other
    control-plane node stores its files under nodes/<node>/ of the same id. Re-running converges.
    """
    t0 = time.monotonic()
    started = datetime.now(UTC)
    sid = req.set_id or manifest.new_id(started)
    if req.set_id and manifest.exists(req.store, req.cluster, sid):
        m = manifest.load(req.store, req.cluster, sid)
        if m.node == req.node:
            log.info("%s/%s already holds this node's etcd snapshot and files", req.cluster, sid)
            return Saved(m, time.monotonic() - t0, 0.0)
        if req.node in m.present:
            log.info("%s/%s already holds the files of node %s", req.cluster, sid, req.node)
            return Saved(None, time.monotonic() - t0, 0.0, manifest.load_part(req.store, m, req.node))
        return _save_part(req, sid, started, t0, None)
    takes, member = _takes_etcd(req)
    if not takes:
        return _save_part(req, sid, started, t0, member)
    work = Path(tempfile.mkdtemp(prefix="kubedr-snapshot-", dir=req.work_dir))
    try:
        db = work / "snapshot.db"
        sha, _ = etcd.take(req.client, db, req.stop)  # hashed, and etcd's integrity hash checked, as it streams in
        member = member or etcd.member(req.client, req.stop)
        st, sha = etcd.check(db, sha)  # before anything leaves the node
        size = db.stat().st_size
        log.info("snapshot taken: revision %d, %d keys, %d bytes, etcd %s", st.revision, st.total_keys, size,
                 member.version)
        api = kubeadm.cluster_facts(kubeadm.default_kubeconfig(req.root, req.kubeconfig)) \
            if req.cluster_info else kubeadm.ApiFacts()
        recorded = facts.record(req.root, api, member)
        entries = [*kubeadm.collect(req.root), *api.entries, bundle.BundleFile(SNAPSHOT_NAME, path=db, sha256=sha)]
        members = [req.node if n.name == member.name else n.name for n in recorded.members]  # this one by node
        expected = req.expect_nodes or ((recorded.control_plane_nodes or members) if req.set_id else [])
        m = manifest.Manifest(id=sid, cluster=req.cluster, node=req.node, created=started.isoformat(),
                              nodes=api.nodes, kubedr_version=_version(), facts=recorded,
                              expected_nodes=sorted(set(expected) | {req.node}) if expected else [])
        total = sum(e.path.stat().st_size if e.path else len(e.data or b"") for e in entries)
        t1 = time.monotonic()
        written = _store_bundle(req, m.bundle_key, m.prefix, entries, total, exclude_prefix=f"{m.prefix}/nodes/")
        bundle_seconds = time.monotonic() - t1
        m.bundle = _bundle_doc(written, req)
        m.snapshot = manifest.EtcdSnapshot(
            path=SNAPSHOT_NAME, size=size, sha256=sha, revision=st.revision, hash=st.hash, total_keys=st.total_keys,
            total_size=st.total_size, etcd_version=member.version,
            member=manifest.SnapshotMember(member.name, list(member.peer_urls), member.member_id),
            cluster_id=member.cluster_id)
        m.files = _file_entries(written)
        m.finished = datetime.now(UTC).isoformat()
        m.duration_seconds = round(time.monotonic() - t0, 3)
        manifest.write(req.store, m)  # last: from now on the snapshot is listed
        m.present = manifest.load(req.store, req.cluster, sid).present
        return Saved(m, time.monotonic() - t0, bundle_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _save_part(req: SaveRequest, sid: str, started: datetime, t0: float, member: etcd.Member | None) -> Saved:
    """This node's own files under nodes/<node>/ of the set, with its etcd member's name; its manifest last."""
    part = manifest.NodePart(node=req.node, cluster=req.cluster, id=sid, created=started.isoformat(),
                             api_sans=facts.api_sans(req.root), member=_member_name(req, member))
    entries = kubeadm.collect(req.root)
    total = sum(e.path.stat().st_size if e.path else 0 for e in entries)
    t1 = time.monotonic()
    written = _store_bundle(req, f"{part.prefix}/{manifest.BUNDLE}", part.prefix, entries, total)
    part.bundle, part.files = _bundle_doc(written, req), _file_entries(written)
    manifest.write_part(req.store, part)
    log.info("stored the files of node %s in set %s/%s", req.node, req.cluster, sid)
    return Saved(None, time.monotonic() - t0, time.monotonic() - t1, part)


def _member_name(req: SaveRequest, member: etcd.Member | None) -> str:
    """The name of this node's etcd member, for restore's default --name; "" when etcd does not say."""
    if member is None:
        try:
            member = etcd.member(req.client, req.stop)
        except etcd.EtcdError as exc:
            log.warning("this node's etcd member not recorded (restore will need --name): %s", exc)
            return ""
    return member.name


def _bundle_doc(written: bundle.Written, req: SaveRequest) -> manifest.BundleInfo:
    return manifest.BundleInfo(manifest.BUNDLE, written.size, written.sha256, req.compression, "age",
                               list(req.recipient_texts))


def _file_entries(written: bundle.Written) -> list[manifest.FileEntry]:
    return [manifest.FileEntry(f["path"], f["size"], f["mode"], f["sha256"], f.get("link")) for f in written.files]


def _store_bundle(req: SaveRequest, key: str, prefix: str, entries: list[bundle.BundleFile], total: int,
                  exclude_prefix: str | None = None) -> bundle.Written:
    """Write one bundle and check the store's size; on failure remove what was written under prefix."""
    try:
        with progress.bar(f"store {key}", total) as advance:
            written = bundle.write(req.store, key, entries, req.recipients, req.compression, advance)
        if (stored := req.store.size(key)) != written.size:
            raise StoreError(f"{req.store.url}/{key}: store holds {stored} bytes, {written.size} were sent")
        return written
    except BaseException:
        _remove_partial(req.store, prefix, exclude_prefix)
        raise


def _remove_partial(store: Store, prefix: str, keep: str | None = None) -> None:
    """Remove a failed bundle; other nodes' parts of the set (under keep) stay."""
    try:
        store.delete([k for k in store.list(prefix) if not (keep and k.startswith(keep))])
    except StoreError as exc:
        log.warning("could not remove the partial bundle under %s: %s", prefix, exc)
