"""verify and restore: every check passes in a staging directory before anything on the target is touched."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubedr.snapshot import bundle, etcd, kubeadm, progress
from kubedr.snapshot.manifest import Manifest
from kubedr.snapshot.save import SNAPSHOT_NAME
from kubedr.snapshot.store import Store

log = logging.getLogger("kubedr.snapshot")


class VerifyError(Exception):
    """The stored snapshot does not match its manifest; nothing was restored."""


def fetch_and_verify(store: Store, m: Manifest, identities: list[Any], staging: Path) -> etcd.SnapshotStatus:
    """Download, decrypt and unpack into staging; check the object, every file and the etcd snapshot."""
    where = f"{store.url}/{m.bundle_key}"
    with progress.bar(f"fetch {m.id}", sum(f["size"] for f in m.files) or None) as advance:
        got = bundle.read(store, m.bundle_key, identities, staging, advance,
                          (m.bundle.get("size", -1), m.bundle.get("sha256", "")))
    problems = []
    if got.size != m.bundle.get("size"):
        problems.append(f"size {got.size} != manifest {m.bundle.get('size')}")
    if got.sha256 != m.bundle.get("sha256"):
        problems.append("sha256 of the stored object does not match the manifest")
    for f in m.files:
        have = got.files.get(f["path"])
        if have is None:
            problems.append(f"{f['path']} missing from the bundle")
        elif have["sha256"] != f["sha256"] or have["size"] != f["size"]:
            problems.append(f"{f['path']} differs from the manifest")
    extra = sorted(set(got.files) - {f["path"] for f in m.files})
    if extra:
        problems.append(f"files not in the manifest: {', '.join(extra[:5])}")
    if problems:
        raise VerifyError(f"{where}: " + "; ".join(problems))
    db = staging / SNAPSHOT_NAME
    try:
        st, sha = etcd.check(db, got.files.get(SNAPSHOT_NAME, {}).get("sha256"))  # hashed while unpacked
    except etcd.EtcdError as exc:
        raise VerifyError(f"{where}: etcd snapshot check failed: {exc}") from exc
    if sha != m.snapshot.get("sha256") or st.hash != m.snapshot.get("hash") \
            or st.revision != m.snapshot.get("revision"):
        raise VerifyError(f"{where}: etcd snapshot status (revision {st.revision}, hash {st.hash}) does not "
                          f"match the manifest (revision {m.snapshot.get('revision')}, hash {m.snapshot.get('hash')})")
    return st


@dataclass
class Placement:
    """One file to put back: from staging to its place, and whether something is there now."""

    name: str
    source: Path
    dest: Path
    mode: int
    exists: bool


@dataclass
class Plan:
    """What restore will do, printed before (and instead of, with --dry-run) doing it."""

    manifest: Manifest
    data_dir: Path
    name: str
    peer_urls: list[str]
    tool: etcd.RestoreTool
    command: list[str]
    placements: list[Placement] = field(default_factory=list)
    backups: list[tuple[Path, Path]] = field(default_factory=list)  # (what, copy)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        m = self.manifest
        out = [f"restore plan for snapshot {m.cluster}/{m.id} (node {m.node}, etcd {m.snapshot.get('etcd_version')},"
               f" revision {m.snapshot.get('revision')}, {m.snapshot.get('total_keys')} keys)",
               f"  checks passed: object size and sha256, {len(m.files)} files, etcd snapshot hash and revision",
               f"  1. new etcd data dir {self.data_dir} for member {self.name} at {','.join(self.peer_urls)}:",
               f"     {' '.join(self.command)}"]
        step = 2
        if self.backups:
            out.append(f"  {step}. keep a copy of what is there now:")
            out += [f"     {what} -> {copy}" for what, copy in self.backups]
            step += 1
        if self.placements:
            out.append(f"  {step}. place {len(self.placements)} files"
                       f" ({sum(p.exists for p in self.placements)} replace existing ones):")
            out += [f"     {p.dest}{' (replace)' if p.exists else ''}" for p in self.placements]
        else:
            out.append("  kubeadm files: not placed (no --target-root)")
        if m.nodes:
            out.append(f"  nodes at snapshot time: {', '.join(m.nodes)}")
        out += [f"  note: {n}" for n in self.notes]
        return out


@dataclass
class RestoreRequest:
    data_dir: Path
    target_root: Path | None
    name: str | None = None
    peer_urls: list[str] | None = None
    token: str = "etcd-cluster"
    bump_revision: int = 1_000_000_000


def make_plan(m: Manifest, staging: Path, req: RestoreRequest) -> Plan:
    """Decide names, URLs, tool and file moves; refuses a data dir that is not new."""
    if req.data_dir.exists() and (not req.data_dir.is_dir() or any(req.data_dir.iterdir())):
        raise VerifyError(f"data dir {req.data_dir} exists and is not empty: restore needs a new one")
    member = m.snapshot.get("member") or {}
    name = req.name or member.get("name")
    urls = req.peer_urls or member.get("peer_urls") or []
    if not name or not urls:
        raise VerifyError(f"snapshot {m.id}: member name or peer URLs unknown; give --name and --peer-urls")
    tool = etcd.restore_tool()
    tmp_dir = req.data_dir.with_name(f".{req.data_dir.name}.kubedr-restore")
    plan = Plan(m, req.data_dir, name, list(urls), tool,
                etcd.restore_command(tool, staging / SNAPSHOT_NAME, tmp_dir, name, list(urls), req.token,
                                     req.bump_revision))
    if not tool.bump:
        plan.notes.append(f"{Path(tool.path).name} cannot bump the revision or mark it compacted (etcdutl 3.5+ "
                          "can): restart kube-apiserver and controllers after the restore so no watch resumes "
                          "from a newer revision")
    plan.notes.append(f"point etcd at {req.data_dir} (--data-dir and the etcd-data hostPath in the etcd static pod"
                      " manifest) before starting it")
    if req.target_root is None:
        return plan
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    tree_backups: set[Path] = set()
    modes = {f["path"]: int(f["mode"], 8) for f in m.files}
    for f in m.files:
        where = kubeadm.destination(f["path"], req.target_root)
        if where is None:
            continue
        src, dest = where
        exists = dest.exists()
        plan.placements.append(Placement(f["path"], staging / f["path"], dest, modes[f["path"]], exists))
        base = req.target_root / src.directory
        if src.backup == "tree" and base.is_dir() and base not in tree_backups:
            tree_backups.add(base)
            plan.backups.append((base, base.with_name(f"{base.name}.kubedr-backup-{stamp}")))
        elif src.backup == "files" and exists:
            plan.backups.append((dest, dest.with_name(f"{dest.name}.kubedr-backup-{stamp}")))
    return plan


def execute(plan: Plan) -> None:
    """Carry out a plan whose checks have all passed: new data dir first, then backups, then files."""
    tmp_dir = plan.data_dir.with_name(f".{plan.data_dir.name}.kubedr-restore")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    plan.data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        etcd.run_restore(plan.command)
        if plan.data_dir.exists():
            plan.data_dir.rmdir()  # empty (checked in the plan)
        os.replace(tmp_dir, plan.data_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    os.chmod(plan.data_dir, 0o700)
    for what, copy in plan.backups:
        if what.is_dir():
            shutil.copytree(what, copy, symlinks=True)
        else:
            shutil.copy2(what, copy)
        log.info("kept a copy of %s at %s", what, copy)
    for p in plan.placements:
        p.dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.dest.with_name(f".{p.dest.name}.kubedr-tmp")
        shutil.copyfile(p.source, tmp)
        os.chmod(tmp, p.mode)
        os.replace(tmp, p.dest)
