"""save: take and check an etcd snapshot, bundle it with the kubeadm files, encrypt, store, then the manifest."""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubedr.snapshot import bundle, etcd, kubeadm, manifest, progress
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


@dataclass
class Saved:
    manifest: manifest.Manifest
    seconds: float
    bundle_seconds: float


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kubedr")
    except Exception:
        return ""


def save(req: SaveRequest) -> Saved:
    """One snapshot, end to end; on failure nothing is listed and the partial bundle is removed."""
    t0 = time.monotonic()
    started = datetime.now(UTC)
    sid = manifest.new_id(started)
    work = Path(tempfile.mkdtemp(prefix="kubedr-snapshot-", dir=req.work_dir))
    try:
        db = work / "snapshot.db"
        sha, _ = etcd.take(req.client, db)  # hashed, and etcd's integrity hash checked, as it streams in
        member = etcd.member(req.client)
        st, sha = etcd.check(db, sha)  # before anything leaves the node
        size = db.stat().st_size
        log.info("snapshot taken: revision %d, %d keys, %d bytes, etcd %s", st.revision, st.total_keys, size,
                 member.version)
        facts, nodes = kubeadm.cluster_facts(kubeadm.default_kubeconfig(req.root, req.kubeconfig)) \
            if req.cluster_info else ([], [])
        entries = [*kubeadm.collect(req.root), *facts, bundle.Entry(SNAPSHOT_NAME, path=db, sha256=sha)]
        m = manifest.Manifest(id=sid, cluster=req.cluster, node=req.node, created=started.isoformat(),
                              nodes=nodes, kubedr_version=_version())
        total = sum(e.path.stat().st_size if e.path else len(e.data or b"") for e in entries)
        t1 = time.monotonic()
        try:
            with progress.bar(f"store {m.id}", total) as advance:
                written = bundle.write(req.store, m.bundle_key, entries, req.recipients, req.compression, advance)
            if (stored := req.store.size(m.bundle_key)) != written.size:
                raise StoreError(f"{req.store.url}/{m.bundle_key}: store holds {stored} bytes, "
                                 f"{written.size} were sent")
        except BaseException:
            _remove_partial(req.store, m)
            raise
        bundle_seconds = time.monotonic() - t1
        m.bundle = {"key": manifest.BUNDLE, "size": written.size, "sha256": written.sha256,
                    "compression": req.compression, "encryption": "age", "recipients": req.recipient_texts}
        m.snapshot = {"path": SNAPSHOT_NAME, "size": size, "sha256": sha, "revision": st.revision,
                      "hash": st.hash, "total_keys": st.total_keys, "total_size": st.total_size,
                      "etcd_version": member.version, "member": {"name": member.name, "peer_urls": member.peer_urls,
                                                                 "id": member.member_id},
                      "cluster_id": member.cluster_id}
        m.files = written.files
        m.finished = datetime.now(UTC).isoformat()
        m.duration_seconds = round(time.monotonic() - t0, 3)
        manifest.write(req.store, m)  # last: from now on the snapshot is listed
        return Saved(m, time.monotonic() - t0, bundle_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_partial(store: Store, m: manifest.Manifest) -> None:
    try:
        store.delete([k for k in store.list(m.prefix)])
    except StoreError as exc:
        log.warning("could not remove the partial bundle %s: %s", m.bundle_key, exc)
