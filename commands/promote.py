"""`kubedr promote`: this cluster takes the writer role (epoch + 1) and brings its workloads up.

Run against the secondary when the primary is lost. In order, each step safe to repeat:
  1. read the role; refuse while the writer looks alive (its newest commit on the branch is younger than
     --alive-within) unless --force; print how old that commit is: the RPO the operator accepts;
  2. apply the branch head once (what the applier has not applied yet), in the recorded mode;
  3. switchover: record active mode, give every held object the primary's values back (replicas, suspend,
     the switches of kubedr.holds);
  4. commit `.kubedr/writer.yaml` (this cluster, epoch + 1) on exactly the head applied in 2, as a
     fast-forward: if the branch moved meanwhile, the push is rejected and everything is decided again;
  5. record the role on the cluster (`kubedr-role`): its applier stops applying, its exporter (waiting,
     fenced) finds itself the writer and starts exporting;
  6. with --wait (the default): follow every workload until it is Available, print the RTO, or after
     --timeout what is not Available and why (exit 1; the role is taken, a re-run waits again).
Killed at any point, running it again completes: a cluster that already holds the role only re-does 3, 5 and 6.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import TYPE_CHECKING

from kubedr import config, roles
from kubedr.commands.handover import Branch, Rejected, ago
from kubedr.config import UsageError
from kubedr.durations import DurationError, parse_duration

if TYPE_CHECKING:
    from kubedr.applier.round import Engine
    from kubedr.applier.sources import Records
    from kubedr.applier.standby import Switched
    from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.commands.promote")
ATTEMPTS = 5


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """Flags of `kubedr promote`: the cluster, the repo, the liveness rule, and the applier's options."""
    from kubedr.applier.cli import target_arguments, wait_arguments

    p.add_argument("--kubeconfig", help="kubeconfig of the cluster to promote (in-cluster when absent)")
    p.add_argument("--context")
    p.add_argument("--repo", help="the config repo (URL or path)")
    p.add_argument("--cluster-name", help="this cluster's name, as its exporter's --cluster-name")
    p.add_argument("--alive-within", default="10m", metavar="DURATION",
                   help="the writer counts as alive while its newest commit is younger than this (default 10m)")
    p.add_argument("--force", action="store_true", help="take the role even though the writer looks alive")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--signing-key", help="SSH private key that signs the role commit (as the exporter signs its own)")
    target_arguments(p)
    wait_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Take the role; 0 when this cluster is the writer with its workloads up, 1 when refused or failed."""
    if not args.repo or not args.cluster_name:
        raise UsageError("kubedr promote: --repo and --cluster-name are required")
    me = _name(args.cluster_name)
    try:
        alive_within = parse_duration(args.alive_within, "--alive-within")
    except DurationError as exc:
        raise UsageError(str(exc)) from exc
    from kubedr.applier.cli import wait_options

    started = getattr(args, "started", None) or time.monotonic()  # the command's start (kubedr.commands.cli)
    args.waiting = wait_options(args)
    signer = config.signer(args.signing_key)
    with Branch(args.repo, args.branch, signer) as branch:
        for _ in range(ATTEMPTS):
            try:
                code = _attempt(args, me, branch, started, alive_within)
            except Rejected as exc:
                log.warning("%s; deciding again", exc)
                continue
            except roles.RoleError as exc:
                log.error("promote %s: %s", me, exc)
                return 1
            return code
    log.error("promote %s: the branch kept moving (%d attempts); is the old writer still exporting?", me, ATTEMPTS)
    return 1


def _name(cluster: str) -> str:
    try:
        return roles.check_name(cluster)
    except roles.RoleError as exc:
        raise UsageError(f"--cluster-name: {exc}") from exc


def _attempt(args: argparse.Namespace, me: str, branch: Branch, started: float, alive_within: float) -> int:
    head = branch.fetch()
    writer = branch.writer()
    if writer is not None and writer.cluster == me:
        print(f"promote {me}: already the writer of {args.branch} (epoch {writer.epoch}); "
              + ("plan: bring workloads up, record the role" if args.dry_run else "bringing workloads up"))
        return 0 if args.dry_run else _finish(args, me, writer, started, _switchover(args))
    old = writer.cluster if writer else (roles.commit_facts(branch.gitdir, head)["source"] if head else "")
    last = roles.last_commit_of(branch.gitdir, head, old) if head and old else None
    new = roles.successor(writer, me, f"kubedr promote {me}" + (" --force" if args.force else ""))
    if last:
        age = time.time() - last[1]
        print(f"promote {me}: the last commit of {old} is {last[0][:12]}, {ago(age)} old: whatever {old} "
              f"changed after it is not in the repo (the RPO you accept)")
        if age < alive_within and not args.force:
            log.error("promote %s refused: %s committed %s ago (less than --alive-within %s): it looks alive; "
                      "stop it, or pass --force", me, old, ago(age), ago(alive_within))
            return 1
    else:
        print(f"promote {me}: no commit of a previous writer on {args.branch}")
    if args.dry_run:
        print(f"plan: apply {args.branch} at {(head or '-')[:12]} to {me}, switch it over (workloads to the "
              f"primary's replicas), commit {roles.WRITER_PATH} = {me} epoch {new.epoch}, record the role")
        return 0
    engine = _engine(args)
    try:
        report = engine.step() if head else None  # 2: catch up with what the old writer pushed
        from kubedr.applier.status import load as load_status

        applied = load_status(engine.cluster, engine.records)
        if head and (applied is None or applied.commit != head):
            raise Rejected(f"the applied commit is not the head {head[:12]} of {args.branch}"
                           + (f" ({engine.held.line()})" if engine.held else ""))
        if report is not None and report.failures:
            print(f"promote {me}: {len(report.failures)} objects failed to apply (see kubedr status); going on")
    finally:
        engine.close()
    switched = _switchover(args)  # 3
    message = (f"promote {me}: writer role, epoch {new.epoch}\n\n"
               f"The writer role moves from {writer.cluster + ' (epoch ' + str(writer.epoch) + ')' if writer else 'nobody'}"
               f" to {me}.\n"
               + (f"Last commit of {old}: {last[0]}, {ago(time.time() - last[1])} before this promote.\n" if last else "")
               + ("Forced: the previous writer looked alive.\n" if args.force else "")
               + f"\n{roles.SOURCE_TRAILER}: {me}\n" + "\n".join(roles.trailers(new)) + "\n")
    sha = branch.commit_file(roles.WRITER_PATH, roles.dump(new), message)
    branch.push(sha)  # 4: a fast-forward onto exactly what was applied, or Rejected
    print(f"promote {me}: {roles.WRITER_PATH} = {me} epoch {new.epoch} in {sha[:12]}")
    return _finish(args, me, new, started, switched)


def _finish(args: argparse.Namespace, me: str, writer: roles.Writer, started: float, switched: Switched) -> int:
    from kubedr.applier.role import record_role
    from kubedr.applier.takeover import serve

    cluster = _cluster(args)
    records = _records(cluster, args)
    record_role(cluster, me, "writer", writer.epoch, records=records)
    failures = len(switched.failures)
    print(f"promote {me}: writer at epoch {writer.epoch}, {len(switched.brought_up)} objects brought up, in "
          f"{time.monotonic() - started:.2f} s" + (f"; {failures} failed (see the log)" if failures else ""), flush=True)
    served = 0 if args.waiting is None else serve(cluster, "promote", None, switched.brought_up, started, args.waiting,
                                                  records)
    return 1 if failures or served else 0


def _cluster(args: argparse.Namespace) -> Cluster:
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    return Cluster(api_client(args.kubeconfig, args.context))


def _records(cluster: Cluster, args: argparse.Namespace) -> Records:
    """The records of the source promoted: --source, else the name its repo and branch derive."""
    from kubedr.applier.sources import check_name, derive, open_records

    name = check_name(args.source) if args.source else derive(args.repo, args.branch)
    return open_records(cluster, name, write=True)


def _switchover(args: argparse.Namespace) -> Switched:
    """Record active mode for the source and bring its held objects up (as `kubedr switchover --source`)."""
    from kubedr.applier.standby import read_mode, record_mode, switchover

    cluster = _cluster(args)
    records = _records(cluster, args)
    mode = read_mode(cluster, records)
    if not (mode.active and mode.recorded):
        mode.active = True
        record_mode(cluster, mode, "kubedr promote", records)
    done = switchover(cluster, records)
    for f in done.failures:
        log.error("switchover: %s", f)
    return done


def _engine(args: argparse.Namespace) -> Engine:
    from kubedr.applier.cli import apply_options, engine_for

    return engine_for(apply_options(argparse.Namespace(**{**vars(args), "dry_run": False}), args.repo))
