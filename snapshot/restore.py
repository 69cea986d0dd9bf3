"""verify and restore: every check passes in a staging directory before anything on the target is touched."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubedr.snapshot import bundle, etcd, kubeadm, manifest, preflight, progress
from kubedr.snapshot.manifest import BundleInfo, FileEntry, Manifest, NodePart
from kubedr.snapshot.save import SNAPSHOT_NAME
from kubedr.snapshot.store import Store, StoreError

log = logging.getLogger("kubedr.snapshot")


class VerifyError(Exception):
    """The stored snapshot does not match its manifest; nothing was restored."""


def fetch_and_verify(store: Store, m: Manifest, identities: list[Any], staging: Path) -> etcd.SnapshotStatus:
    """Download, decrypt and unpack into staging; check the object, every file and the etcd snapshot."""
    where = f"{store.url}/{m.bundle_key}"
    with progress.bar(f"fetch {m.id}", sum(f.size for f in m.files) or None) as advance:
        got = bundle.read(store, m.bundle_key, identities, staging, advance, (m.bundle.size, m.bundle.sha256))
    _check_files(where, got, m.bundle, m.files)
    db = staging / SNAPSHOT_NAME
    try:
        st, sha = etcd.check(db, got.files.get(SNAPSHOT_NAME, {}).get("sha256"))  # hashed while unpacked
    except etcd.EtcdError as exc:
        raise VerifyError(f"{where}: etcd snapshot check failed: {exc}") from exc
    if sha != m.snapshot.sha256 or st.hash != m.snapshot.hash or st.revision != m.snapshot.revision:
        raise VerifyError(f"{where}: etcd snapshot status (revision {st.revision}, hash {st.hash}) does not "
                          f"match the manifest (revision {m.snapshot.revision}, hash {m.snapshot.hash})")
    return st


def _check_files(where: str, got: bundle.Read, doc: BundleInfo, files: list[FileEntry]) -> None:
    """The object and every file are what the manifest recorded."""
    problems = []
    if got.size != doc.size:
        problems.append(f"size {got.size} != manifest {doc.size}")
    if got.sha256 != doc.sha256:
        problems.append("sha256 of the stored object does not match the manifest")
    for f in files:
        have = got.files.get(f.path)
        if have is None:
            problems.append(f"{f.path} missing from the bundle")
        elif have["sha256"] != f.sha256 or have["size"] != f.size:
            problems.append(f"{f.path} differs from the manifest")
    extra = sorted(set(got.files) - {f.path for f in files})
    if extra:
        problems.append(f"files not in the manifest: {', '.join(extra[:5])}")
    if problems:
        raise VerifyError(f"{where}: " + "; ".join(problems))


def fetch_part(store: Store, m: Manifest, node: str, identities: list[Any], staging: Path) -> NodePart:
    """Another node's files of the set, downloaded, decrypted and checked into staging."""
    part = manifest.load_part(store, m, node)
    key = f"{part.prefix}/{manifest.BUNDLE}"
    got = bundle.read(store, key, identities, staging, None, (part.bundle.size, part.bundle.sha256))
    _check_files(f"{store.url}/{key}", got, part.bundle, part.files)
    return part


@dataclass
class Placement:
    """One file to put back: from staging to its place, and whether something is there now."""

    name: str
    source: Path
    dest: Path
    mode: int
    exists: bool
    link: str | None = None


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
    initial_cluster: list[tuple[str, str]] = field(default_factory=list)
    node: str = ""
    checks: preflight.Result = field(default_factory=preflight.Result)
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))

    @property
    def staged_dir(self) -> Path:
        """Where the member is restored before it is moved into the data dir."""
        return self.data_dir.with_name(f".{self.data_dir.name}.kubedr-restore")

    def lines(self) -> list[str]:
        m = self.manifest
        members = ",".join(f"{n}={u}" for n, u in self.initial_cluster)
        out = [f"restore plan for snapshot {m.cluster}/{m.id} (node {m.node}, etcd {m.snapshot.etcd_version},"
               f" revision {m.snapshot.revision}, {m.snapshot.total_keys} keys)",
               f"  checks passed: object size and sha256, {len(m.files)} files, etcd snapshot hash and revision",
               *[f"  preflight ok: {line}" for line in self.checks.passed],
               *[f"  preflight FORCED past: {line}" for line in self.checks.problems],
               f"  1. new etcd data dir {self.data_dir} for member {self.name} at {','.join(self.peer_urls)}"
               f" of {members}:",
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
        if m.facts.api_sans:
            out.append(f"  API server certificate SANs of {m.node}: {', '.join(m.facts.api_sans)}")
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
    node: str = ""  # this node's name (its files of the set are placed)
    initial_cluster: list[tuple[str, str]] | None = None
    force: bool = False
    reuse_data_dir: bool = False  # --cutover: the live data dir is moved aside at the cut, not before
    recorded_member: str = ""  # the etcd member the snapshot recorded for this node (recorded_member())


def files_node(m: Manifest, node: str) -> str | None:
    """Whose files restore places on this node: its own, or the saving node's in a one-node snapshot."""
    if node in m.present:
        return node
    return m.node if not m.expected_nodes else None


def recorded_member(store: Store, m: Manifest, node: str) -> str:
    """The etcd member the snapshot recorded for a node: the saving node's own, or the one its part of the set
    names; "" when none was recorded (the node's name is the member's then)."""
    if node == m.node:
        return m.snapshot.member.name
    if node not in m.present:
        return ""
    try:
        return manifest.load_part(store, m, node).member
    except StoreError as exc:
        log.warning("the etcd member of node %s is not known (%s): give --name if it is not %s", node, exc, node)
        return ""


def initial_cluster(m: Manifest, req: RestoreRequest) -> tuple[str, list[tuple[str, str]]]:
    """This member's name (--name, else the member recorded for this node, else the node's name) and every
    member's peer URL: flags first, then the recorded member list."""
    name = req.name or req.recorded_member or req.node
    if req.initial_cluster:
        return name, list(req.initial_cluster)
    if req.peer_urls:
        return name, [(name, u) for u in req.peer_urls]
    recorded = [(mm.name, u) for mm in m.facts.members for u in mm.peer_urls]
    if not recorded:  # snapshots from before the member list was recorded
        member = m.snapshot.member
        recorded = [(member.name, u) for u in member.peer_urls]
        name = req.name or member.name or name
    return name, recorded


def check(m: Manifest, req: RestoreRequest, cluster_config: tuple[dict[str, Any] | None, str] = (None, "")) -> preflight.Result:
    """The alias preflight for this restore: refuses (unless forced) before anything is read or touched."""
    name, cluster = initial_cluster(m, req)
    t = preflight.Target(node=req.node, member=name, initial_cluster=cluster, target_root=req.target_root,
                         cluster_config=cluster_config[0], cluster_config_from=cluster_config[1])
    return preflight.run(m, t, req.force)


def make_plan(m: Manifest, staging: Path, req: RestoreRequest, files: list[FileEntry] | None = None,
              files_dir: Path | None = None, checks: preflight.Result | None = None) -> Plan:
    """Decide names, URLs, tool and file moves; refuses a data dir that is not new."""
    if not req.reuse_data_dir and req.data_dir.exists() and (
            not req.data_dir.is_dir() or any(req.data_dir.iterdir())):
        raise VerifyError(f"data dir {req.data_dir} exists and is not empty: restore needs a new one")
    name, cluster = initial_cluster(m, req)
    urls = [u for n, u in cluster if n == name]
    if not name or not urls:
        raise VerifyError(f"snapshot {m.id}: member {name or '?'} has no peer URL; give --name and --peer-urls "
                          "or --initial-cluster")
    tool = etcd.restore_tool()
    plan = Plan(m, req.data_dir, name, urls, tool, [], initial_cluster=cluster, node=req.node,
                checks=checks or preflight.Result())
    plan.command = etcd.restore_command(tool, staging / SNAPSHOT_NAME, plan.staged_dir, name, urls, req.token,
                                        req.bump_revision, cluster)
    if not tool.bump:
        plan.notes.append(f"{Path(tool.path).name} cannot bump the revision or mark it compacted (etcdutl 3.5+ "
                          "can): restart kube-apiserver and controllers after the restore so no watch resumes "
                          "from a newer revision")
    if len({n for n, _ in cluster}) > 1:
        plan.notes.append(f"run the same restore (snapshot {m.id}, token {req.token}) on every member: "
                          f"{', '.join(sorted({n for n, _ in cluster}))}")
    if not req.reuse_data_dir:
        plan.notes.append(f"point etcd at {req.data_dir} (--data-dir and the etcd-data hostPath in the etcd static"
                          " pod manifest) before starting it, or use --cutover")
    if req.target_root is None:
        return plan
    files = m.files if files is None else files
    files_dir = files_dir or staging
    tree_backups: set[Path] = set()
    for f in files:
        where = kubeadm.destination(f.path, req.target_root)
        if where is None:
            continue
        src, dest = where
        exists = dest.exists() or dest.is_symlink()
        plan.placements.append(Placement(f.path, files_dir / f.path, dest, int(f.mode, 8), exists, f.link))
        base = req.target_root / src.directory
        if src.backup == "tree" and base.is_dir() and base not in tree_backups:
            tree_backups.add(base)
            plan.backups.append((base, base.with_name(f"{base.name}.kubedr-backup-{plan.stamp}")))
        elif src.backup == "files" and exists:
            plan.backups.append((dest, dest.with_name(f"{dest.name}.kubedr-backup-{plan.stamp}")))
    return plan


def restore_member(plan: Plan) -> None:
    """Restore this member into the staged dir next to the data dir (nothing live is touched)."""
    shutil.rmtree(plan.staged_dir, ignore_errors=True)
    plan.data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        etcd.run_restore(plan.command)
    except BaseException:
        shutil.rmtree(plan.staged_dir, ignore_errors=True)
        raise
    os.chmod(plan.staged_dir, 0o700)


def keep_copies(plan: Plan) -> None:
    """Copy what the placements will replace (a whole tree, or single files) next to it."""
    for what, copy in plan.backups:
        if copy.exists():
            continue  # a re-run keeps the first copy: that one holds what was there before
        if what.is_dir():
            shutil.copytree(what, copy, symlinks=True)
        else:
            shutil.copy2(what, copy, follow_symlinks=False)
        log.info("kept a copy of %s at %s", what, copy)


def place(p: Placement) -> None:
    """Put one file (or symlink) in place atomically."""
    p.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.dest.with_name(f".{p.dest.name}.kubedr-tmp")
    tmp.unlink(missing_ok=True)
    if p.link is not None:
        os.symlink(p.link, tmp)
    else:
        shutil.copyfile(p.source, tmp)
        os.chmod(tmp, p.mode)
    os.replace(tmp, p.dest)


def execute(plan: Plan) -> None:
    """Carry out a plan whose checks have all passed: new data dir first, then backups, then files."""
    restore_member(plan)
    try:
        if plan.data_dir.exists():
            plan.data_dir.rmdir()  # empty (checked in the plan)
        os.replace(plan.staged_dir, plan.data_dir)
    finally:
        shutil.rmtree(plan.staged_dir, ignore_errors=True)
    keep_copies(plan)
    for p in plan.placements:
        place(p)
