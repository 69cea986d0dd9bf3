"""`kubedr demote`: a returning primary becomes a standby of the branch; what it never replicated is kept aside.

Run against the old primary once it is reachable, where its exporter's clone is (--workdir, the default of
`kubedr export`), with the exporter's options. In order, each step safe to repeat:
  1. read the role: refuse when this cluster is the writer (promote another cluster first);
  2. in the clone, without moving it onto the writer's work: the base is the last commit this cluster pushed;
     the startup reconcile of the exporter adds the live objects that differ from the clone's tree;
  3. everything between the base and that tree (commits never pushed + live differences) becomes one commit
     on `kubedr/unreplicated/<cluster>/<time>`, parent = base, so `git diff` shows exactly what never
     reached the branch. Never applied by kubedr; a re-run with the same tree reuses the branch;
  4. objects in scope that the branch lacks get kubedr's label and an inventory entry (the prune below may
     delete them: they are on the side branch);
  5. the clone is reset to the branch (no stale commits: the exporter can be the writer again after a failback)
     and the cluster records itself a standby (`kubedr-role`);
  6. one apply round in standby mode: the branch's objects, workloads at standby replicas, prune under the guard.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kubedr import contract, roles
from kubedr.commands.handover import Branch
from kubedr.config import UsageError

if TYPE_CHECKING:
    from kubedr.applier.sources import Records
    from kubedr.exporter.gitstore import GitStore
    from kubedr.exporter.pipeline import Exporter
    from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.commands.demote")
VERBS = {"A": "create", "M": "update", "D": "delete"}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """The exporter's options (scope, sealing, --workdir: its clone) and the applier's (identity, standby, prune)."""
    from kubedr.applier.cli import apply_arguments
    from kubedr.exporter.cli import add_arguments as export_arguments

    export_arguments("export", p)  # --branch, and --workdir: the exporter's clone
    apply_arguments(p)
    p.add_argument("--apply-workdir", help="where the applier mirrors a remote repo (default ~/.cache/kubedr/applier/<digest of repo and branch>)")
    p.add_argument("--no-apply", action="store_true", help="stop after the side branch and the role record")
    p.add_argument("--dry-run", action="store_true", help="show what would go to the side branch; change nothing")


def run(args: argparse.Namespace) -> int:
    """Demote; 0 when the cluster is a standby of the branch with nothing lost, 1 on a refusal or failure."""
    from kubedr.applier.role import read_role, record_role

    if not args.repo or not args.cluster_name:
        raise UsageError("kubedr demote: --repo and --cluster-name are required")
    try:
        me = roles.check_name(args.cluster_name)
    except roles.RoleError as exc:
        raise UsageError(f"--cluster-name: {exc}") from exc
    started = time.monotonic()
    cluster = _cluster(args)
    records = _records(cluster, args, write=not args.dry_run)
    try:
        with Branch(args.repo, args.branch) as branch:
            branch.fetch()
            writer = branch.writer()
        if writer is None or writer.cluster == me:
            log.error("demote %s refused: %s; demote is for a cluster that lost the role (promote another first)",
                      me, f"it is the writer (epoch {writer.epoch})" if writer else f"{roles.WRITER_PATH} names nobody")
            return 1
        rec = read_role(cluster, records)
        if rec.get("role") == "standby" and rec.get("cluster") == me and rec.get("epoch") == str(writer.epoch):
            side = rec.get("sideBranch", "")
            print(f"demote {me}: already a standby at epoch {writer.epoch}" + (f" (side branch {side})" if side else ""))
        else:
            side = set_aside(args, me, writer)
            if args.dry_run:
                return 0
            record_role(cluster, me, "standby", writer.epoch, records=records, sideBranch=side, writer=writer.cluster)
    except roles.RoleError as exc:
        log.error("demote %s: %s", me, exc)
        return 1
    if args.dry_run:
        print(f"plan: apply {args.branch} to {me} in standby mode" + (" (skipped: --no-apply)" if args.no_apply else ""))
        return 0
    failed = 0 if args.no_apply else _apply_standby(args)
    print(f"demote {me}: standby of {writer.cluster} (epoch {writer.epoch}) in {time.monotonic() - started:.2f} s"
          + (f"; {failed} objects failed to apply (see kubedr status)" if failed else ""))
    return 1 if failed else 0


def set_aside(args: argparse.Namespace, me: str, writer: roles.Writer) -> str:
    """Steps 2-5: the side branch ('' when nothing was unreplicated); the clone ends on the branch.

    A dry run works in a scratch copy of the clone: its reconcile commit and fetches never touch the real one."""
    from kubedr.exporter.cli import export_options, exporter_for
    from kubedr.exporter.gitstore import default_workdir

    options = export_options(args)
    if not args.dry_run:
        return _set_aside(args, me, writer, exporter_for(options))
    clone = Path(options.workdir or default_workdir(options.repo, options.branch, me))
    with tempfile.TemporaryDirectory(prefix="kubedr-demote-plan-") as tmp:
        scratch = Path(tmp) / "clone"
        if clone.is_dir():
            shutil.copytree(clone, scratch, symlinks=True, copy_function=_link_objects)
        return _set_aside(args, me, writer, exporter_for(dataclasses.replace(options, workdir=str(scratch))))


def _link_objects(src: str, dst: str) -> None:
    """Git never rewrites an object file in place: link those (a copy costs no space); copy the rest."""
    if f"{os.sep}.git{os.sep}objects{os.sep}" in src:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def _set_aside(args: argparse.Namespace, me: str, writer: roles.Writer, exporter: Exporter) -> str:
    store = exporter.store
    store.follow_remote = False
    gitdir = str(store.workdir / ".git")
    tracking = f"refs/remotes/origin/{store.branch}"
    try:
        with store.lock:
            store.open()  # init, lock, repair, fetch: HEAD stays on this cluster's own line
            head = store.head()
            if head:
                base = store.git("merge-base", head, tracking, check=False).strip() or store.git(
                    "rev-parse", tracking).strip()
            else:  # no clone: start from the last commit this cluster pushed (else the branch)
                last = roles.last_commit_of(gitdir, tracking, me, depth=100000)
                base = last[0] if last else store.git("rev-parse", tracking).strip()
                store.move_to(base)
        exporter.reconcile()  # a local resync commit of the live differences; nothing is pushed
        with store.lock:
            tip = store.head() or base
            local = store.git("log", "--format=%h %s", f"{base}..{tip}").strip()
            changes = _name_status(store, base, tip)
            side = ""
            if not changes:
                print(f"demote {me}: nothing unreplicated (the clone and the live objects match {base[:12]})")
            else:
                print(f"demote {me}: {len(changes)} objects never reached {store.branch} "
                      f"(from {len(local.splitlines())} local commits and the live state):")
                for status, path in changes:
                    print(f"  {VERBS.get(status, status)} {path}")
                if args.dry_run:
                    print(f"plan: push them as one commit on {roles.UNREPLICATED_PREFIX}/{me}/<time>, reset the "
                          f"clone to {store.branch}, record {me} as a standby")
                    return ""
                side = _push_side(store, me, writer, base, tip, local, changes)
            adopted = [] if args.dry_run or args.no_apply else _adopt(args, store, tip, tracking)
            if args.dry_run:
                return ""
            store.move_to(store.git("rev-parse", tracking).strip())
            if adopted:
                print(f"demote {me}: {len(adopted)} objects the branch lacks are marked for the prune of the "
                      f"standby round (they are on the side branch)")
            return side
    finally:
        store.close()


def _name_status(store: GitStore, base: str, tip: str) -> list[tuple[str, str]]:
    out = store.git("diff", "--name-status", "-z", "--no-renames", base, tip)
    parts = [p for p in out.split("\0") if p]
    return [(s[0], p) for s, p in zip(parts[::2], parts[1::2], strict=True) if not p.startswith(".")]


def _push_side(store: GitStore, me: str, writer: roles.Writer, base: str, tip: str, local: str,
               changes: list[tuple[str, str]]) -> str:
    """One commit (parent base, tree of tip) on a new side branch; an existing one with that tree is reused."""
    tree = store.git("rev-parse", f"{tip}^{{tree}}").strip()
    prefix = f"refs/heads/{roles.UNREPLICATED_PREFIX}/{me}/"
    for line in store.git("ls-remote", "origin", prefix + "*", timeout=60).splitlines():
        sha, ref = line.split()
        store.git("fetch", "-q", "--no-tags", "origin", f"+{ref}:refs/kubedr/side", timeout=300)
        if store.git("rev-parse", "refs/kubedr/side^{tree}").strip() == tree:
            name = ref[len("refs/heads/"):]
            print(f"demote {me}: already on side branch {name} ({sha[:12]})")
            return name
    name = roles.side_branch(me)
    counts = {v: sum(1 for s, _ in changes if VERBS.get(s) == v) for v in VERBS.values()}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    body = [f"unreplicated {me}: {len(changes)} objects: {summary}", "",
            f"What {me} held that {store.branch} never received, set aside by `kubedr demote` when "
            f"{writer.cluster} was the writer (epoch {writer.epoch}). kubedr never applies it: review it with",
            f"git diff {base[:12]} {name}", "", f"Base: {base} (the last commit {me} pushed)"]
    if local:
        body += ["Local commits never pushed:", *[f"  {ln}" for ln in local.splitlines()]]
    body += ["Objects:", *[f"  {VERBS.get(s, s)} {_display(p)}" for s, p in changes], ""]
    body += [f"{roles.SOURCE_TRAILER}: {me}", *roles.trailers(writer)]
    sign = ["-S"] if store.signer is not None else []  # commit-tree ignores commit.gpgSign
    sha = store.git("commit-tree", *sign, tree, "-p", base, stdin=("\n".join(body) + "\n").encode()).strip()
    store.git("push", "-q", "origin", f"{sha}:refs/heads/{name}", timeout=300)
    print(f"demote {me}: side branch {name} ({sha[:12]}): git diff {base[:12]} {name}")
    return name


def _display(path: str) -> str:
    ref = contract.ref_of_path(path)
    return ref.display if ref else path


def _adopt(args: argparse.Namespace, store: GitStore, tip: str, tracking: str) -> list[contract.ObjectRef]:
    """Mark live objects in scope that the branch lacks as kubedr's, so the standby round's prune may delete them."""
    from kubedr.apierrors import NotFound
    from kubedr.applier.decode import MANAGED_LABEL
    from kubedr.applier.inventory import Inventory
    from kubedr.applier.sources import SOURCE_LABEL

    ours, theirs = set(store.files(tip)), set(store.files(tracking))
    refs = [r for r in (contract.ref_of_path(p) for p in sorted(ours - theirs) if not p.startswith(".")) if r]
    if not refs:
        return []
    cluster = _cluster(args)
    records = _records(cluster, args, write=True)
    inventory = Inventory(cluster, records).load()
    inventory.refs |= set(refs)
    inventory.save()  # first: a crash never leaves a labelled object the inventory does not know
    for ref in refs:
        resource = cluster.resource_of(ref)
        if resource is None:
            continue
        try:
            cluster.request("PATCH", resource.path(ref.namespace, ref.name),
                            {"metadata": {"labels": {MANAGED_LABEL: "true", SOURCE_LABEL: records.source}}},
                            {"fieldManager": "kubedr"},
                            "application/merge-patch+json")
        except NotFound:
            pass
    return refs


def _cluster(args: argparse.Namespace) -> Cluster:
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    return Cluster(api_client(args.kubeconfig, args.context))


def _records(cluster: Cluster, args: argparse.Namespace, write: bool) -> Records:
    """The records of the source demoted: --source, else the name its repo and branch derive."""
    from kubedr.applier.sources import check_name, derive, open_records

    name = check_name(args.source) if args.source else derive(args.repo, args.branch)
    return open_records(cluster, name, write)


def _apply_standby(args: argparse.Namespace) -> int:
    """One applier round in standby mode (prune as configured, under the guard); the number of failures."""
    from kubedr.applier.cli import apply_options, engine_for

    ns = argparse.Namespace(**{**vars(args), "workdir": args.apply_workdir, "mode": "standby", "dry_run": False})
    engine = engine_for(apply_options(ns, args.repo))
    try:
        report = engine.step()
    finally:
        engine.close()
    for f in (report.failures if report else []):
        log.error("apply: %s", f)
    return len(report.failures) if report else 0
