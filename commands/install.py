"""`kubedr install`: from two kubeconfigs to a protected pair in one command, safe to run again.

In order, each step safe to repeat (a re-run changes nothing that is right and rotates no key):
  1. the keys, each in the one cluster it belongs to (install_keys.KEYS): the age identity in the secondary,
     the exporter's signing key and the digest key in the primary. One that exists is kept; one that exists
     but is unusable is named and install stops; only an absent one is made. The public parts travel: the
     identity's recipient to the primary, the signing key's public half into the secondary's allowed signers.
  2. the config repo: `kubedr init --writer <primary>`, signed (--signing-key, else the exporter's key),
     unless the branch has the template and that writer already; a branch naming another writer stops install.
  3. the manifests: the project's overlays with the options and public keys filled in (install_tree),
     validated, server-side applied as `kubedr-install` in dependency order, labelled so that uninstall finds
     them; what an earlier run applied and this one does not is deleted. --output-dir writes them instead.
  4. waits until the exporter's first commit is on the branch and the applier applied it (--timeout), then
     prints `kubedr status`.
--dry-run prints the plan of 1-3 and changes nothing anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubedr import config, contract, git, roles, sealing
from kubedr.commands import install_keys, install_tree, installed, repo_init
from kubedr.commands.handover import local_repo
from kubedr.commands.install_tree import KEEP
from kubedr.commands.kustomize import RenderError
from kubedr.commands.shipped import NotShipped
from kubedr.config import UsageError
from kubedr.durations import DurationError, parse_duration
from kubedr.kubeapi import Cluster
from kubedr.remote import redact
from kubedr.signing import Signer

log = logging.getLogger("kubedr.install")

SIDES = ("primary", "secondary")
NAMESPACE = install_keys.NAMESPACE
GIT_SECRET = "kubedr-git"  # the git credentials both Deployments mount
GIT_FILES = {"git_ssh_key": "ssh-privatekey", "git_known_hosts": "known_hosts", "git_credentials": "git-credentials"}
EXPORTER_PRINCIPAL = "exporter@{}"  # the exporter's key in the allowed signers, by the primary's name
OPERATOR_PRINCIPAL = "operator@kubedr"  # --signing-key in the allowed signers
POLL = 1.0  # seconds between looks while waiting for the first commit to flow
_SSH_URL = re.compile(r"^(ssh://|[\w.-]+@[\w.-]+:)")


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """Flags of `kubedr install`."""
    for side in SIDES:
        p.add_argument(f"--{side}-kubeconfig", help=f"kubeconfig of the {side} cluster (an admin's)")
        p.add_argument(f"--{side}-context", help=f"context in the {side}'s kubeconfig")
        p.add_argument(f"--{side}-cluster-name", default=side,
                       help=f"the {side}'s name in commits, roles and status (default {side})")
    p.add_argument("--repo", help="the config repo: a URL, or a bare repository on this machine")
    p.add_argument("--branch", default="main", help="branch the exporter writes (default main)")
    p.add_argument("--namespaces", help="comma-separated namespaces to protect")
    p.add_argument("--all-namespaces", action="store_true", help="protect every namespace (see --exclude-namespaces)")
    p.add_argument("--exclude-namespaces", help="with --all-namespaces: namespaces left out (default: the "
                                                "manifests' kube-system,kube-public,kube-node-lease,kubedr-system)")
    p.add_argument("--image", help="the kubedr image (default: the manifests' ghcr.io/kubedr/kubedr:<version>)")
    p.add_argument("--snapshot-store", help="etcd snapshots of the primary to this store (dir, file:// or s3://); "
                                            "without it the snapshot DaemonSet is left out")
    p.add_argument("--recipient", action="append", help="another age recipient Secrets are sealed to (a break-glass "
                                                        "key); repeatable")
    p.add_argument("--signing-key", help="your SSH key: signs the repo's init commit, and the applier accepts it "
                                         "(for `kubedr trust ack`, promote); default: the exporter's key signs")
    p.add_argument("--git-ssh-key", help="deploy key for an SSH repo (Secret kubedr-git, both clusters)")
    p.add_argument("--git-known-hosts", help="known_hosts of the Git host, for an SSH repo")
    p.add_argument("--git-credentials", help="git-credentials file (https://user:token@host lines) for HTTPS")
    p.add_argument("--output-dir", metavar="DIR",
                   help="write the manifests (kustomize overlays) to DIR instead of applying them; the keys still "
                        "go into the clusters as Secrets, never into DIR")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing anywhere")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the first commit to flow")
    p.add_argument("--timeout", default="5m", help="how long to wait for the first commit to flow (default 5m)")


@dataclass
class Side:
    """One cluster of the pair."""

    role: str  # primary | secondary
    name: str  # its cluster name
    cluster: Cluster
    kubeconfig: str
    context: str | None


@dataclass
class Step:
    """One object to apply and what applying it does: create, update or unchanged."""

    obj: dict[str, Any]
    action: str


@dataclass
class RepoState:
    """The branch as install found it."""

    head: str = ""  # '' when the branch does not exist yet
    missing: list[str] = field(default_factory=list)  # template files and the role file it lacks
    writer: roles.Writer | None = None
    error: str = ""  # the role file cannot be read


@dataclass
class Plan:
    """Everything install would do, gathered without changing anything."""

    keys: list[install_keys.Found]
    repo: RepoState
    tree: dict[str, bytes]
    steps: dict[str, list[Step]] = field(default_factory=dict)
    stale: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    git_secrets: dict[str, bool] = field(default_factory=dict)  # side -> kubedr-git is to be made
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def say(self, where: str, verb: str, subject: str, action: str) -> None:
        """One line of the plan: where (a side or the repo), what is done to what, and the outcome last."""
        self.lines.append(f"{where:<9}  {verb:<6} {subject:<64} {action}")


def run(args: argparse.Namespace) -> int:
    """Plan, then (unless --dry-run) make the keys, init the repo, apply, wait; 0 once the first commit flowed."""
    timeout = _check(args)
    sides = {role: _side(args, role) for role in SIDES}
    try:
        plan = gather(args, sides)
    except (RenderError, NotShipped) as exc:
        log.error("install: the manifests: %s", exc)
        return 1
    print(f"kubedr install: primary {sides['primary'].name} ({sides['primary'].cluster.server}), secondary "
          f"{sides['secondary'].name} ({sides['secondary'].cluster.server}), repo {redact(args.repo)} ({args.branch})")
    for line in plan.lines:
        print(f"  {line}")
    for note in plan.notes:
        print(f"note: {note}")
    if plan.problems:
        for problem in plan.problems:
            log.error("%s", problem)
        return 1
    if args.dry_run:
        print("dry run: nothing was changed")
        return 0
    act(args, sides, plan)
    if args.output_dir:
        out = Path(args.output_dir)
        print(f"wrote the manifests to {out}: kubectl apply -k {out / 'overlays/primary'} (on the primary), "
              f"kubectl apply -k {out / 'overlays/secondary'} (on the secondary); the keys are Secrets in the "
              "clusters, never in these files")
        return 0
    if args.no_wait:
        return 0
    flowed = wait_first_commit(args, sides, timeout)
    print_status(args, sides)
    return 0 if flowed else 1


def _check(args: argparse.Namespace) -> float:
    """Usage errors (one line, exit 2) before anything is read; the --timeout in seconds."""
    missing = [f"--{n.replace('_', '-')}" for n in ("primary_kubeconfig", "secondary_kubeconfig", "repo")
               if not getattr(args, n)]
    if missing:
        raise UsageError(f"install: {', '.join(missing)} required")
    if bool(args.namespaces) == bool(args.all_namespaces):
        raise UsageError("install: one of --namespaces a,b or --all-namespaces")
    if args.exclude_namespaces and not args.all_namespaces:
        raise UsageError("install: --exclude-namespaces goes with --all-namespaces")
    try:
        for role in SIDES:
            roles.check_name(getattr(args, f"{role}_cluster_name"))
    except roles.RoleError as exc:
        raise UsageError(f"install: {exc}") from exc
    if args.primary_cluster_name == args.secondary_cluster_name:
        raise UsageError("install: the primary and the secondary need different cluster names")
    args.repo = local_repo(args.repo)
    if not repo_init.is_remote(args.repo):
        raise UsageError(f"install: --repo {args.repo}: a URL, or a bare repository (git init --bare -b main PATH)")
    for dest in [*GIT_FILES, "signing_key"]:
        path = getattr(args, dest)
        if path and not os.path.isfile(path):
            raise UsageError(f"install: --{dest.replace('_', '-')} {path}: no such file")
    for recipient in args.recipient or []:
        try:
            sealing.parse_recipient(recipient, "--recipient")
        except sealing.SealingError as exc:
            raise UsageError(f"install: {exc}") from exc
    if args.output_dir and Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise UsageError(f"install: --output-dir {args.output_dir}: not a directory")
    try:
        return parse_duration(args.timeout, "--timeout")
    except DurationError as exc:
        raise UsageError(str(exc)) from exc


def _side(args: argparse.Namespace, role: str) -> Side:
    from kubedr.kube import api_client

    kubeconfig, context = getattr(args, f"{role}_kubeconfig"), getattr(args, f"{role}_context")
    cluster = Cluster(api_client(kubeconfig, context))
    cluster.version()  # an unreachable cluster is one line now, before anything is planned
    return Side(role, getattr(args, f"{role}_cluster_name"), cluster, kubeconfig, context)


# ---- the plan ---------------------------------------------------------------------------------------------

def gather(args: argparse.Namespace, sides: dict[str, Side]) -> Plan:
    """Read both clusters and the repo; decide every step; change nothing."""
    keys = [install_keys.find(sides[k.side].cluster, k) for k in install_keys.KEYS]
    plan = Plan(keys, probe_repo(args.repo, args.branch), {})
    for found in keys:
        if found.problem:
            plan.problems.append(f"{found.problem}: left as it is; fix or delete it, then run install again")
        else:
            plan.say(found.key.side, "key", f"Secret {NAMESPACE}/{found.key.secret}: {found.key.what}",
                     "create" if found.new else "keep")
        other = sides["primary" if found.key.side == "secondary" else "secondary"]
        if found.key.exclusive and installed.get(other.cluster, _secret(found.key.secret)) is not None:
            plan.notes.append(f"the {other.role} holds Secret {NAMESPACE}/{found.key.secret}, which belongs only "
                              f"in the {found.key.side}: install leaves it; delete it")
    _plan_repo(args, plan)
    _plan_git_secrets(args, sides, plan)
    if plan.problems:
        return plan
    plan.tree = install_tree.fill(install_tree.manifests(), values(args, keys))
    for side in sides.values():
        _plan_objects(args, side, plan)
    for namespace in (args.namespaces or "").split(","):
        if namespace and installed.get(sides["primary"].cluster, _namespace(namespace)) is None:
            plan.notes.append(f"namespace {namespace} does not exist on the primary (yet): it is exported once it "
                              "does")
    return plan


def values(args: argparse.Namespace, keys: list[install_keys.Found]) -> install_tree.Values:
    """What goes into the overlays: the options of SETTINGS, and the keys' public parts."""
    public = {found.key.secret: found.public for found in keys}
    settings = {"repo": args.repo, "branch": args.branch, "primary_cluster_name": args.primary_cluster_name,
                "secondary_cluster_name": args.secondary_cluster_name, "snapshot_store": args.snapshot_store,
                "namespaces": args.namespaces or None, "all_namespaces": True if args.all_namespaces else None,
                "exclude_namespaces": (args.exclude_namespaces or KEEP) if args.all_namespaces else None}
    signers = [(EXPORTER_PRINCIPAL.format(args.primary_cluster_name), public["kubedr-signing-key"])]
    if args.signing_key:
        signers.append((OPERATOR_PRINCIPAL, _signer(args.signing_key).public))
    return install_tree.Values(settings, [public["kubedr-age-identity"], *(args.recipient or [])], signers,
                               args.image or "")


def probe_repo(repo: str, branch: str) -> RepoState:
    """The branch's tip (fetched alone into a scratch repository): which template files and role it has."""
    scratch = tempfile.mkdtemp(prefix="kubedr-install-")
    try:
        git.run(["init", "-q", "--bare"], git_dir=scratch)
        if not git.run(["ls-remote", repo, f"refs/heads/{branch}"], git_dir=scratch, remote=repo).text.split():
            return RepoState(missing=_wanted())
        git.run(["fetch", "-q", "--depth", "1", "--no-tags", repo, f"+refs/heads/{branch}:refs/heads/{branch}"],
                git_dir=scratch, remote=repo)
        head = git.run(["rev-parse", f"refs/heads/{branch}"], git_dir=scratch).text.strip()
        names = set(git.run(["ls-tree", "-r", "--name-only", head], git_dir=scratch).text.splitlines())
        missing = [p for p in _wanted() if p not in names]
        try:
            return RepoState(head, missing, roles.read_writer(scratch, head))
        except roles.RoleError as exc:
            return RepoState(head, missing, error=str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wanted() -> list[str]:
    return [p.as_posix() for p in repo_init.template_files()] + [roles.WRITER_PATH]


def _plan_repo(args: argparse.Namespace, plan: Plan) -> None:
    repo, writer = plan.repo, plan.repo.writer
    if repo.error:
        plan.problems.append(f"repo {redact(args.repo)} ({args.branch}): {repo.error}; install changes nothing")
        return
    if writer is not None and writer.cluster != args.primary_cluster_name:
        plan.problems.append(f"repo {redact(args.repo)} ({args.branch}) names the writer {writer.cluster} (epoch "
                             f"{writer.epoch}), not {args.primary_cluster_name}: it belongs to a pair that failed "
                             "over (docs/runbooks.md); install changes nothing")
        return
    if not repo.missing:
        plan.say("repo", "init", f"{args.branch} at {repo.head[:12]}: the template, writer "
                 f"{args.primary_cluster_name} (epoch {writer.epoch if writer else '?'})", "keep")
        return
    signer = "--signing-key" if args.signing_key else "the exporter's key"
    plan.say("repo", "init", f"{args.branch}: {', '.join(repo.missing)}, signed by {signer}", "commit")


def _plan_git_secrets(args: argparse.Namespace, sides: dict[str, Side], plan: Plan) -> None:
    given = [item for dest, item in GIT_FILES.items() if getattr(args, dest)]
    for role, side in sides.items():
        exists = installed.get(side.cluster, _secret(GIT_SECRET)) is not None
        plan.git_secrets[role] = not exists
        if not exists and _SSH_URL.match(args.repo) and "ssh-privatekey" not in given:
            plan.problems.append(f"{role}: no Secret {NAMESPACE}/{GIT_SECRET}: give --git-ssh-key and "
                                 f"--git-known-hosts for the SSH repo {redact(args.repo)}")
        what = "git credentials" + ("" if exists else f" ({', '.join(given) or 'none: a repo that needs none'})")
        plan.say(role, "key", f"Secret {NAMESPACE}/{GIT_SECRET}: {what}", "keep" if exists else "create")


def _plan_objects(args: argparse.Namespace, side: Side, plan: Plan) -> None:
    """Validate the overlay's objects, and find what applying each would do (a server-side dry run)."""
    from kubedr.applier.decode import DecodeError, Validator
    from kubedr.applier.order import plan as in_order

    objs = install_tree.render(plan.tree, side.role)
    validator = Validator(side.cluster.version())
    namespace = next(o for o in objs if o["kind"] == "Namespace")
    live_ns = installed.get(side.cluster, namespace)
    if live_ns is None or installed.CREATED in (live_ns["metadata"].get("annotations") or {}):
        namespace["metadata"].setdefault("annotations", {})[installed.CREATED] = "true"
    steps = []
    for obj in (o for _, batch in in_order((contract.ref_of(o), o) for o in objs) for o in batch):
        try:
            validator.check(obj)
        except DecodeError as exc:
            plan.problems.append(f"{side.role}: {installed.name(obj)}: {exc}")
            continue
        live = None if args.output_dir and obj is not namespace else installed.get(side.cluster, obj)
        action = "create" if live is None else ("unchanged" if _same(installed.apply(side.cluster, obj, True), live)
                                                 else "update")
        steps.append(Step(obj, "write" if args.output_dir and obj is not namespace else action))
    plan.steps[side.role] = steps
    for step in steps:
        plan.say(side.role, "object", installed.name(step.obj), step.action)
    if not args.output_dir:
        wanted = {installed.identity(o) for o in objs} | {(
            "", "Secret", NAMESPACE, name) for name in [GIT_SECRET, *(k.secret for k in install_keys.KEYS
                                                                    if k.side == side.role)]}
        plan.stale[side.role] = [o for o in installed.labelled(side.cluster) if installed.identity(o) not in wanted]
        for obj in plan.stale[side.role]:
            plan.say(side.role, "delete", f"{installed.name(obj)} (an earlier install made it)", "delete")


def _same(after: dict[str, Any], live: dict[str, Any]) -> bool:
    """The dry run's answer is the live object (server bookkeeping aside): applying changes nothing."""
    def plain(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
        return {**obj, "metadata": meta}

    return plain(after) == plain(live)


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE}}


# ---- doing it ---------------------------------------------------------------------------------------------

def act(args: argparse.Namespace, sides: dict[str, Side], plan: Plan) -> None:
    """Namespaces, keys, the repo, then the manifests (or the files of --output-dir)."""
    labels = {"app.kubernetes.io/part-of": "kubedr", install_tree.INSTALLED_BY[0]: install_tree.INSTALLED_BY[1]}
    for role, side in sides.items():
        if plan.steps[role][0].action != "unchanged":  # the Namespace: the Secrets go into it
            installed.apply(side.cluster, plan.steps[role][0].obj)
    for found in plan.keys:
        if found.new:
            side = sides[found.key.side]
            side.cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets",
                                 install_keys.secret(found.key.secret, {found.key.item: found.data}, labels),
                                 {"fieldManager": installed.FIELD_MANAGER})
            log.info("%s: made %s in Secret %s/%s", found.key.side, found.key.what, NAMESPACE, found.key.secret)
    files = {item: Path(getattr(args, dest)).read_bytes() for dest, item in GIT_FILES.items() if getattr(args, dest)}
    for role, side in sides.items():
        if plan.git_secrets[role]:
            side.cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets",
                                 install_keys.secret(GIT_SECRET, files, labels),
                                 {"fieldManager": installed.FIELD_MANAGER})
    if plan.repo.missing:
        with _init_signer(args, plan) as sign_env:
            print(repo_init.init_repo(args.repo, branch=args.branch, sign_env=sign_env,
                                      writer=args.primary_cluster_name))
    if args.output_dir:
        written = install_tree.write_tree(plan.tree, Path(args.output_dir))
        log.info("wrote %d files to %s", len(written), args.output_dir)
        return
    for role, side in sides.items():
        for step in plan.steps[role][1:]:
            if step.action != "unchanged":
                installed.apply(side.cluster, step.obj)
        for obj in plan.stale[role]:
            installed.delete(side.cluster, obj)
        done = [s.action for s in plan.steps[role]]
        log.info("%s: %d objects created, %d updated, %d unchanged; %d deleted", role, done.count("create"),
                 done.count("update"), done.count("unchanged"), len(plan.stale[role]))


@contextlib.contextmanager
def _init_signer(args: argparse.Namespace, plan: Plan) -> Iterator[dict[str, str]]:
    """git's signing settings for the init commit: --signing-key, else the exporter's key (in a 0600 file that
    lives only while git signs)."""
    if args.signing_key:
        yield _signer(args.signing_key).git_config()
        return
    found = next(f for f in plan.keys if f.key.secret == "kubedr-signing-key")
    scratch = tempfile.mkdtemp(prefix="kubedr-install-key-")
    try:
        path = os.path.join(scratch, "signing.key")
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
            fh.write(found.data)
        yield _signer(path).git_config()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _signer(path: str) -> Signer:
    signer = config.signer(path)
    assert signer is not None  # a path was given
    return signer


# ---- the first commit ---------------------------------------------------------------------------------

def wait_first_commit(args: argparse.Namespace, sides: dict[str, Side], timeout: float) -> bool:
    """Until a commit of the primary's exporter is on the branch and the applier applied it or a later one."""
    from kubedr.applier.status import read_record

    primary, secondary = sides["primary"].name, sides["secondary"]
    deadline = time.monotonic() + timeout
    scratch = tempfile.mkdtemp(prefix="kubedr-install-wait-")
    seen, exported, said = "", "", ""
    try:
        git.run(["init", "-q", "--bare"], git_dir=scratch)
        while True:
            head = (git.run(["ls-remote", args.repo, f"refs/heads/{args.branch}"], git_dir=scratch,
                            remote=args.repo).text.split() or [""])[0]
            if head and head != seen:
                git.run(["fetch", "-q", "--depth", "200", "--no-tags", args.repo,
                         f"+refs/heads/{args.branch}:refs/heads/{args.branch}"], git_dir=scratch, remote=args.repo)
                seen = head
            commits = git.log(["--max-count=200", head], git_dir=scratch) if head else []
            mine = [i for i, c in enumerate(commits) if primary in c.trailer(roles.SOURCE_TRAILER)]
            exported = commits[mine[-1]].sha if mine else ""
            record = read_record(secondary.cluster.api)
            applied = record.status.fully_applied if record else ""
            held = (record.status.held or record.status.untrusted) if record else {}
            if held:
                log.error("install: the applier holds: %s; see kubedr status below",
                          held.get("line") or f"{held.get('commit', '')[:12]}: {held.get('reason')}")
                return False
            at = next((i for i, c in enumerate(commits) if applied and c.sha.startswith(applied)), None)
            if exported and at is not None and at <= mine[-1]:
                print(f"the first commit flowed: {exported[:12]} of the exporter on {primary} is on {args.branch}, "
                      f"and the applier on {secondary.name} applied {applied[:12]}")
                return True
            now = ("the exporter's first commit" if not exported
                   else f"the applier to apply {exported[:12]}")
            if now != said:
                log.info("waiting for %s", now)
                said = now
            if time.monotonic() > deadline:
                where = ("kubedr-exporter in the primary" if not exported else "kubedr-applier in the secondary")
                log.error("install: waited %s for %s: look at %s (kubectl -n %s logs deployment/%s)", args.timeout,
                          now, where, NAMESPACE, where.split()[0])
                return False
            time.sleep(POLL)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def print_status(args: argparse.Namespace, sides: dict[str, Side]) -> None:
    """`kubedr status` of the pair."""
    from kubedr.commands import cli, status

    argv = ["status", "--repo", args.repo, "--branch", args.branch]
    for role, side in sides.items():
        argv += [f"--{role}-kubeconfig", side.kubeconfig, f"--{role}-cluster-name", side.name]
        argv += [f"--{role}-context", side.context] if side.context else []
    status.run(cli.build_parser("status").parse_args(argv))
