"""`kubedr status`: one table for both regions — repo head, exporter leader, applied commit and lag, last snapshot.

Each source is optional and read independently, so one unreachable side never hides the others:
  --repo                   the config repo's head (sha, time, subject), and how far the secondary is behind
  --primary-kubeconfig     the exporter's Lease on the primary (who leads, when it last renewed), its role, and
                           its applier's record when kubedr applied there (an old primary, demoted)
  --secondary-kubeconfig   each source's applier record (kubedr-status.SOURCE): applied commit, failures, mode,
                           objects refused because another source owns them; its role
The writer's applier applies nothing: it is shown idle, without lag or drift against its own exports. A secondary
serving several sources has a row per source; the lag against the repo head is the one of --repo's source
(--source, else the source its records name as applied from --repo), the others show the lag they recorded.
  --snapshot-store         the newest etcd snapshot (id, age, size, revision) from the snapshot store

Replication lag, when the repo is known: 0 when the secondary applied the head (and the figure measured for it:
head commit -> applied), else the age of the oldest commit still waiting. Exit code 1 when something could
not be read, an object failed to apply, or the lag exceeds --max-lag.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kubedr import git
from kubedr.config import UsageError
from kubedr.exporter.scope import SCOPE_TRAILER
from kubedr.remote import redact, scrub
from kubedr.roles import SOURCE_TRAILER

if TYPE_CHECKING:
    from kubedr.applier.sources import Records
    from kubedr.applier.status import Record, Status
    from kubedr.kubeapi import Cluster

EXPORTER_LEASE = ("kubedr-system", "kubedr-exporter")
APPLIER_LEASE = ("kubedr-system", "kubedr-applier")


@dataclass
class Row:
    """One line of the table."""

    side: str
    component: str
    state: str = ""
    commit: str = ""
    lag: str = ""
    failures: str = ""
    drift: str = ""
    detail: str = ""
    problem: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the source an applier or role row is of (several on one secondary)


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Flags of `kubedr status` (also $KUBEDR_* and the config file's `status:` section)."""
    parser.add_argument("--primary-kubeconfig", help="kubeconfig of the primary (exporter Lease)")
    parser.add_argument("--primary-context", help="context in the primary's kubeconfig")
    parser.add_argument("--secondary-kubeconfig", help="kubeconfig of the secondary (applier record)")
    parser.add_argument("--secondary-context", help="context in the secondary's kubeconfig")
    parser.add_argument("--repo", help="the config repo (path or URL): head commit and commits not yet applied")
    parser.add_argument("--branch", default="main", help="branch the exporter writes (default main)")
    parser.add_argument("--source", help="the source --repo is on the secondary (default: the one whose records "
                                         "name --repo and --branch, or the name they derive)")
    parser.add_argument("--snapshot-store", help="snapshot store: directory, file:// or s3://bucket/prefix")
    parser.add_argument("--snapshot-cluster", default="kubernetes", help="cluster name in the snapshot store")
    parser.add_argument("--endpoint-url", help="S3 endpoint of the snapshot store")
    parser.add_argument("--region", help="S3 region of the snapshot store")
    parser.add_argument("--path-style", action="store_true", help="S3 path-style addressing")
    parser.add_argument("--primary-cluster-name", help="the primary's --cluster-name: its role when it has no record")
    parser.add_argument("--secondary-cluster-name", help="the secondary's --cluster-name, likewise")
    parser.add_argument("--max-lag", type=float, help="exit 1 when the replication lag exceeds this many seconds")
    parser.add_argument("--max-drift", type=int, metavar="N",
                        help="exit 1 when more than N objects on the secondary drifted from the repo")
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table", help="table or json")


def run(args: argparse.Namespace) -> int:
    """Gather every side that was named, print one table (or JSON); 1 when something is wrong."""
    if not (args.primary_kubeconfig or args.secondary_kubeconfig or args.repo or args.snapshot_store):
        raise UsageError("status: name at least one of --repo, --primary-kubeconfig, --secondary-kubeconfig, "
                         "--snapshot-store")
    rows = gather(args)
    for r in (r for r in rows if r.component == "applier" and not r.data.get("writes_branch")):
        lag, drift = r.data.get("lag_seconds"), len(r.data.get("drift") or [])
        if args.max_lag is not None and lag is not None and lag > args.max_lag:
            r.problem = True
            r.detail = (r.detail + f"; lag above --max-lag {args.max_lag:g}s").lstrip("; ")
        if args.max_drift is not None and drift > args.max_drift:
            r.problem = True
            r.detail = (r.detail + f"; drift above --max-drift {args.max_drift}").lstrip("; ")
    if args.output == "json":
        json.dump([asdict(r) for r in rows], sys.stdout, indent=2, default=str)
        print()
    else:
        render(rows)
    return 1 if any(r.problem for r in rows) else 0


def gather(args: argparse.Namespace) -> list[Row]:
    """Every row, in a fixed order: repo, primary, secondary, snapshot; each side's applier read with its role."""
    head = repo_head(args.repo, args.branch) if args.repo else None
    rows: list[Row] = []
    if head is not None:
        rows.append(head_row(args.repo, args.branch, head))
        if head.scope:
            scope = json.loads(head.scope)
            rows.append(Row("repo", "export scope", "", detail=scope_text(scope), data={"scope": scope}))
    down = unreachable_sides({side: (getattr(args, f"{side}_kubeconfig"), getattr(args, f"{side}_context"))
                              for side in ("primary", "secondary")})
    for side in ("primary", "secondary"):
        kubeconfig, context = getattr(args, f"{side}_kubeconfig"), getattr(args, f"{side}_context")
        if not kubeconfig:
            continue
        if side in down:
            rows.append(Row(side, "exporter" if side == "primary" else "applier", "unreachable", detail=down[side],
                            problem=True))
            continue
        rows += side_rows(args, side, kubeconfig, context, head)
    if args.snapshot_store:
        rows.append(snapshot_row(args))
    return rows


def scope_text(scope: dict[str, Any]) -> str:
    """The exporter's scope as `key: a,b; key: value` (the JSON stays in -o json)."""
    def value(key: str, v: Any) -> str:
        if key == "namespaces" and v == []:
            return "all"
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)

    return "; ".join(f"{k}: {value(k, v)}" for k, v in scope.items()
                     if v not in (None, "", []) or k == "namespaces") or "(defaults)"


PROBE_TIMEOUT = 10.0  # seconds a side's API server has to answer /version before its rows say unreachable


def unreachable_sides(sides: dict[str, tuple[str | None, str | None]]) -> dict[str, str]:
    """side -> why its API server cannot be used, for the sides given a kubeconfig; asked at once, so two servers
    that never answer cost one timeout, and a side that does not answer costs no more requests."""
    from concurrent.futures import ThreadPoolExecutor

    from kubedr.kube import api_client
    from kubedr.kubeapi import CONNECT_TIMEOUT, Cluster

    def probe(kubeconfig: str, context: str | None) -> str:
        try:
            Cluster(api_client(kubeconfig, context)).request("GET", "/version", timeout=(CONNECT_TIMEOUT,
                                                                                         PROBE_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - a kubeconfig, TLS or network problem: one line in the table
            return _one_line(exc)
        return ""

    named = {side: conf for side, conf in sides.items() if conf[0]}
    with ThreadPoolExecutor(max(1, len(named))) as pool:
        found = {side: pool.submit(probe, str(kubeconfig), context) for side, (kubeconfig, context) in named.items()}
    return {side: why for side, future in found.items() if (why := future.result())}


# -- the repo -------------------------------------------------------------------------------------------
@dataclass
class RepoHead:
    """The head of the branch and a way to ask about older commits."""

    sha: str = ""
    time: float = 0.0
    subject: str = ""
    error: str = ""
    gitdir: str = ""
    log: list[tuple[str, float]] = field(default_factory=list)   # (sha, commit time), newest first
    sources: list[str] = field(default_factory=list)  # the Source-Cluster trailer of each commit in log
    scope: str = ""  # the exporter's effective scope (trailer of its last scope commit), JSON
    writer: Any = None  # the branch's writer role (kubedr.roles.Writer), None when it names nobody
    writer_error: str = ""

    def waiting_since(self, applied: str) -> tuple[int, float | None] | None:
        """(commits after `applied`, commit time of the oldest of them); None when applied is unknown here."""
        shas = [s for s, _ in self.log]
        if not applied:
            return len(shas), (self.log[-1][1] if self.log else None)
        for i, sha in enumerate(shas):
            if sha.startswith(applied) or applied.startswith(sha):
                return i, (self.log[i - 1][1] if i else None)
        return None


def repo_head(repo: str, branch: str, max_commits: int = 5000) -> RepoHead:
    """Fetch the branch (blobless) into a scratch repo and read its recent history."""
    scratch = tempfile.mkdtemp(prefix="kubedr-status-")
    try:
        git.run(["init", "--quiet", "--bare", scratch])
        # --git-dir, not -C: a relative repo path stays relative to where the operator ran the command
        git.run(["fetch", "--quiet", "--filter=blob:none", "--depth", str(max_commits), repo,
                 f"refs/heads/{branch}:refs/heads/{branch}"], git_dir=scratch, remote=repo)
        commits = git.log([branch], git_dir=scratch)
        scoped = git.log(["-1", f"--grep=^{SCOPE_TRAILER}: ", branch], git_dir=scratch)
        writer, writer_error = _writer(scratch, repo, branch)
    except git.GitError as exc:
        return RepoHead(error=str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not commits:
        return RepoHead(error=f"branch {branch} has no commits")
    return RepoHead(sha=commits[0].sha, time=float(commits[0].time), subject=commits[0].subject,
                    log=[(c.sha, float(c.time)) for c in commits],
                    sources=[",".join(c.trailer(SOURCE_TRAILER)) for c in commits],
                    scope="\n".join(v for c in scoped for v in c.trailer(SCOPE_TRAILER)), writer=writer,
                    writer_error=writer_error)


def _writer(scratch: str, repo: str, branch: str) -> tuple[Any, str]:
    """The role file of the fetched head (its blob fetched by id when the fetch left blobs out), read entry by
    entry as roles.read_writer does: a root entry named like the path must not stand in for it."""
    from kubedr import roles
    from kubedr.repotree import TreeError, TreeReader

    found = git.run(["rev-parse", "-q", "--verify", f"{branch}:{roles.WRITER_PATH}"], git_dir=scratch, check=False)
    if not found.ok:
        return None, ""
    try:
        candidate = found.text.strip()
        if not git.run(["cat-file", "-e", candidate], git_dir=scratch, env={"GIT_NO_LAZY_FETCH": "1"},
                       check=False).ok:
            git.run(["fetch", "--quiet", "--no-filter", repo, candidate], git_dir=scratch, remote=repo)
        reader = TreeReader(scratch)
        blob = reader.file(branch, roles.WRITER_PATH)
        return (roles.parse(next(reader.blobs([blob]))), "") if blob else (None, "")
    except (git.GitError, roles.RoleError, TreeError) as exc:
        return None, f"writer role unreadable: {_one_line(exc)}"

def head_row(repo: str, branch: str, head: RepoHead) -> Row:
    if head.error:
        return Row("repo", "git", "unreachable", detail=scrub(f"{redact(repo)}: {head.error}", repo), problem=True)
    role = (f"writer {head.writer.cluster} (epoch {head.writer.epoch})" if head.writer
            else head.writer_error or "no writer role")
    source = head.sources[0] if head.sources else ""
    return Row("repo", "git", branch, commit=head.sha[:12], lag="",
               detail=f"{role}; last commit {ago(head.time)}" + (f" by {source}" if source else "")
                      + f": {head.subject}",
               data={"sha": head.sha, "time": head.time, "subject": head.subject, "repo": redact(repo),
                     "source": source or None, "writer": head.writer.cluster if head.writer else None,
                     "epoch": head.writer.epoch if head.writer else None})


# -- the primary ----------------------------------------------------------------------------------------
def exporter_row(kubeconfig: str, context: str | None, head: RepoHead | None, cluster: str | None = None) -> Row:
    """Who holds the exporter Lease and when it was last renewed; the newest commit this cluster made."""
    try:
        lease = read_lease(kubeconfig, context, *EXPORTER_LEASE)
    except Exception as exc:  # noqa: BLE001 - one line for the table, whatever broke
        return Row("primary", "exporter", "unreachable", detail=_one_line(exc), problem=True)
    commit, last = "", ""
    if head and head.sha and cluster:
        mine = next((i for i, source in enumerate(head.sources) if source == cluster), None)
        if mine is None:
            last = f"no commit of {cluster} in the last {len(head.log)}"
        else:
            commit, last = head.log[mine][0][:12], f"last commit of {cluster} {ago(head.log[mine][1])}"
    elif head and head.sha:
        by = head.sources[0] if head.sources else ""
        commit, last = head.sha[:12], f"last commit on the branch {ago(head.time)}" + (f" by {by}" if by else "")
    if lease is None:
        return Row("primary", "exporter", "no lease", commit=commit,
                   detail="; ".join(filter(None, ["no kubedr-exporter Lease (not deployed or single replica)", last])))
    state, detail, problem = lease_state(lease)
    return Row("primary", "exporter", state, commit=commit, detail="; ".join(filter(None, [detail, last])),
               problem=problem, data={"lease": lease})


def read_lease(kubeconfig: str, context: str | None, namespace: str, name: str) -> dict[str, Any] | None:
    """The Lease's spec, None when it does not exist."""
    from kubedr.apierrors import NotFound
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    try:
        lease = Cluster(api_client(kubeconfig, context)).request("GET", path, timeout=10)
    except NotFound:
        return None
    return lease.get("spec") or {}


def lease_state(spec: dict[str, Any]) -> tuple[str, str, bool]:
    """('leading'|'no leader'|'expired', detail, problem) from a Lease spec (wall clock, for display only)."""
    from kubedr.leader import parse_micro_time

    holder = spec.get("holderIdentity") or ""
    renewed = parse_micro_time(spec.get("renewTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    if not holder:
        return "no leader", "Lease released", True
    if renewed is None or time.time() - renewed > duration * 2:
        return "expired", f"{holder} last renewed {ago(renewed) if renewed else 'never'}", True
    return "leading", f"{holder} renewed {ago(renewed)}, {spec.get('leaseTransitions', 0)} transitions", False


# -- the secondary --------------------------------------------------------------------------------------
def side_rows(args: argparse.Namespace, side: str, kubeconfig: str, context: str | None,
              head: RepoHead | None) -> list[Row]:
    """For each source recorded on one side: its applier (none on the primary where kubedr never applied) and its
    role; the primary's exporter first. --repo's source is compared with the head, the others with their records."""
    given = getattr(args, f"{side}_cluster_name", None)
    try:
        from kubedr.applier.sources import Records, derive, open_records, sources_on
        from kubedr.applier.status import record_of
        from kubedr.kube import api_client
        from kubedr.kubeapi import Cluster

        cluster = Cluster(api_client(kubeconfig, context))
        main = getattr(args, "source", None) or (derive(args.repo, args.branch) if args.repo else None)
        names = sources_on(cluster)
        listed = [(n, open_records(cluster, n, write=False)) for n in names or ([main] if main else [])]
        found = [(records, record_of(cluster, records)) for _, records in listed] or [(Records("", True), None)]
    except ImportError:
        return [Row(side, "applier", "unknown", detail="the applier is not installed", problem=True)]
    except Exception as exc:  # noqa: BLE001
        return [Row(side, "applier" if side == "secondary" else "exporter", "unreachable", detail=_one_line(exc),
                    problem=True)]
    rows: list[Row] = []
    exporter_named = False
    for records, record in found:
        ours = head if _is_repo_source(args, main, records, record, len(found)) else None
        role = role_row(side, cluster, records, ours, given, known=head is None or ours is not None)
        if side == "primary" and not exporter_named:
            rows.append(exporter_row(kubeconfig, context, head, role.data.get("cluster") or given))
            exporter_named = True
        applier = applier_row(kubeconfig, context, ours, side, role.state, record=record, optional=side == "primary")
        for row in (applier, role) if applier else (role,):
            row.source = records.source
            rows.append(row)
    return rows


def _is_repo_source(args: argparse.Namespace, main: str | None, records: Records, record: Record | None,
                    count: int) -> bool:
    """Whether a source is the one --repo names (its lag is measured against the head read from there)."""
    from kubedr.applier.sources import key

    if not args.repo:
        return False
    if records.source == main or (count == 1 and not records.source):
        return True
    if getattr(args, "source", None) or record is None or not record.status.repo:
        return False
    return key(record.status.repo, record.status.branch or "main") == key(args.repo, args.branch)


def applier_row(kubeconfig: str, context: str | None, head: RepoHead | None, side: str = "secondary",
                role: str = "", record: Record | None = None, optional: bool = False) -> Row | None:
    """One source's applier record: applied commit, failures, mode; lag against the repo head when known.

    On the writer's cluster (role `writer`, or `fenced` until demoted) it applies nothing: no lag, no drift.
    optional: no row when kubedr never applied there (the primary's side)."""
    if record is None:
        return None if optional else Row(side, "applier", "never applied",
                                         detail="no kubedr-status ConfigMap in kubedr-system", problem=True)
    st = record.status
    applied = st.fully_applied or st.commit
    if role in ("writer", "fenced"):
        what = ("this cluster writes the branch" if role == "writer"
                else "this cluster held the writer role and was not demoted")
        return Row(side, "applier", f"idle ({role})", commit=applied[:12],
                   detail=f"{what}: its applier applies nothing; it last applied {applied[:12] or '-'} "
                          f"{ago(st.applied_at)}" + (f"; {takeover_text(st.switchover)}" if st.switchover else ""),
                   data={**record.to_data(), "drift": [], "lag_seconds": None, "writes_branch": True})
    failures = st.failures
    mode = record.mode
    if record.active_namespaces:
        mode += f" (active: {' '.join(record.active_namespaces)})"
    lag, lag_text, detail = replication_lag(st, head)
    drift, strays = record.drift, record.strays
    if drift:
        first = drift[0]
        detail = detail.replace("in sync with the repo head", "the repo head applied")
        mode = f"DRIFT ({mode})"
        detail = (f"{len(drift)} drifted (heal {record.heal or '?'}): {first['object']}: "
                  f"{', '.join(first['fields'])}; {detail}")
    parts = [detail]
    untrusted = st.untrusted
    if untrusted:
        signer = f", signer {untrusted['signer']}" if untrusted.get("signer") else ""
        parts.insert(0, f"HELD at untrusted commit {untrusted.get('commit', '')[:12]} ({untrusted.get('reason', '')}"
                        f"{signer}): review it, then kubedr trust ack")
    if st.held:  # a rollback or rewrite of the branch (applier.history)
        parts.insert(0, "HELD " + (st.held.get("line") or "").removeprefix("held: "))
    if st.owned_elsewhere:
        taken = st.owned_elsewhere[0]
        parts.insert(0, f"{len(st.owned_elsewhere)} owned by other sources (refused): {taken.get('object')} "
                        f"(source {taken.get('owner')})" + (" ..." if len(st.owned_elsewhere) > 1 else ""))
    if st.exempt:
        parts.append(f"{len(st.exempt)} exempt from standby (serve webhooks/APIs): "
                     f"{', '.join(e.split(':')[0] for e in st.exempt[:3])}{' ...' if len(st.exempt) > 3 else ''}")
    if record.image_count:
        parts.append(f"{record.image_count} images needed at switchover (kubedr images --check)")
    if strays:
        parts.append(f"{len(strays)} stray (not in the repo, left in place): "
                     f"{', '.join(s['object'] for s in strays[:3])}{' ...' if len(strays) > 3 else ''}")
    if failures:
        parts.append(f"first failure: {failures[0].path}: {failures[0].reason}")
    if st.switchover:
        parts.append(takeover_text(st.switchover))
    if st.applied_at:
        parts.append(f"applied {ago(st.applied_at)}")
    parts.append(_applier_leader(kubeconfig, context, record.source))
    return Row(side, "applier", mode, commit=applied[:12], lag=lag_text, failures=str(len(failures)),
               drift=str(len(drift)), detail="; ".join(p for p in parts if p), problem=bool(failures or untrusted or st.held),
               data={**record.to_data(), "lag_seconds": lag})


def takeover_text(sw: dict[str, Any]) -> str:
    """The last switchover or promote that waited: its RTO, or what was not Available when it gave up."""
    when = f"last {sw.get('command') or 'switchover'} {ago(sw.get('startedAt'))}"
    if sw.get("rtoSeconds") is not None:
        n = sw.get("workloads", "?")
        return f"{when}: RTO {float(sw['rtoSeconds']):.1f} s ({n} workload{'' if n == 1 else 's'} Available)"
    missing = sw.get("notAvailable") or []
    return (f"{when}: {sw.get('notAvailableCount', len(missing))} of {sw.get('workloads', '?')} workloads not "
            f"Available at its timeout" + (f" (first: {missing[0]})" if missing else ""))


def _applier_leader(kubeconfig: str, context: str | None, source: str = "") -> str:
    """'leader <pod>' from the source's applier Lease (`kubedr-applier-SOURCE`, else `kubedr-applier`); '' when there
    is none (a single replica) or it is unreadable."""
    namespace, name = APPLIER_LEASE
    try:
        lease = (read_lease(kubeconfig, context, namespace, f"{name}-{source}") if source else None) or read_lease(
            kubeconfig, context, namespace, name)
    except Exception:  # noqa: BLE001 - the record above already says whether the secondary answers
        return ""
    if not lease:
        return ""
    state, detail, _ = lease_state(lease)
    return f"Lease {state}: {detail}"


def replication_lag(st: Status, head: RepoHead | None) -> tuple[float | None, str, str]:
    """(seconds, text, detail): 0-behind uses the lag measured when the head was applied."""
    applied = st.fully_applied
    if head is None or not head.sha:
        lag = st.lag
        return lag, (f"{lag:.1f}s" if lag is not None else ""), "since the last applied commit (no --repo)"
    waiting = head.waiting_since(applied)
    if waiting is None:
        return None, "?", f"applied commit {applied[:12]} is not on the repo's branch"
    behind, oldest = waiting
    if behind == 0:
        commit_time, applied_at = st.fully_applied_time, st.applied_at
        measured = max(0.0, applied_at - commit_time) if commit_time and applied_at else 0.0
        # both times are whole seconds (git, and the applier's record), so one second is the resolution
        return measured, ("<=1s" if measured <= 1 else f"{measured:.0f}s"), "in sync with the repo head"
    lag = time.time() - oldest if oldest else None
    return lag, (f"{lag:.1f}s" if lag is not None else "?"), f"{behind} commit{'s' if behind > 1 else ''} behind"


# -- roles ----------------------------------------------------------------------------------------------
def role_row(side: str, cluster: Cluster, records: Records, head: RepoHead | None, name: str | None,
             known: bool = True) -> Row:
    """The side's role for a source: its own record (promote/demote) set against the branch's writer; as recorded
    when the source's branch was not read (known False: --repo names another source)."""
    try:
        from kubedr.applier.role import read_role

        rec = read_role(cluster, records)
    except Exception as exc:  # noqa: BLE001
        return Row(side, "role", "unreachable", detail=_one_line(exc), problem=True)
    if not known:
        cluster_name = rec.get("cluster") or name or "?"
        return Row(side, "role", rec.get("role") or "standby", detail=f"{cluster_name}, as recorded by promote/demote "
                   f"(epoch {rec.get('epoch') or '-'}); its branch was not read (--repo is another source's)",
                   data={**rec, "cluster": rec.get("cluster") or name})
    writer = head.writer if head else None
    state, detail, problem = role_state(rec, writer, name, serves=side == "primary")
    return Row(side, "role", state, detail=detail, problem=problem, data={**rec, "cluster": rec.get("cluster") or name})


def role_state(rec: dict[str, str], writer: Any, name: str | None, serves: bool) -> tuple[str, str, bool]:
    """(writer | fenced | standby | unknown, detail, problem) from a cluster's record and the branch's writer.

    serves: the side is meant to be the writer (the primary) when nothing is recorded on it."""
    cluster = rec.get("cluster") or name or ""
    on_branch = f"the branch's writer is {writer.cluster} (epoch {writer.epoch})" if writer else "no writer role"
    if not cluster:
        return "unknown", f"no kubedr-role record (give --{{primary,secondary}}-cluster-name); {on_branch}", False
    if writer is not None and writer.cluster == cluster:
        return "writer", f"{cluster}, epoch {writer.epoch}", False
    if rec.get("role") == "standby":
        side = f"; unreplicated changes on {rec['sideBranch']}" if rec.get("sideBranch") else ""
        return "standby", f"{cluster}, standby since epoch {rec.get('epoch')}; {on_branch}{side}", False
    if rec.get("role") == "writer" or (writer is not None and not rec and serves):
        return "fenced", f"{cluster} is not the writer: {on_branch}; run `kubedr demote` for {cluster}", True
    return "standby", f"{cluster}; {on_branch}", False


# -- snapshots ------------------------------------------------------------------------------------------
def snapshot_row(args: argparse.Namespace) -> Row:
    """The newest complete snapshot in the store (manifest written last, so listed means complete)."""
    try:
        from kubedr.snapshot import manifest
        from kubedr.snapshot.store import S3Options, open_store

        store = open_store(args.snapshot_store, S3Options(endpoint_url=args.endpoint_url, region=args.region,
                                                          path_style=bool(args.path_style)))
        found = manifest.list_all(store, args.snapshot_cluster)
    except ImportError:
        return Row("primary", "snapshot", "unknown", detail="the snapshot job is not installed", problem=True)
    except Exception as exc:  # noqa: BLE001
        return Row("primary", "snapshot", "unreachable", detail=_one_line(exc), problem=True)
    if not found:
        return Row("primary", "snapshot", "none", detail=f"no snapshot of {args.snapshot_cluster} in "
                   f"{args.snapshot_store}", problem=True)
    m = found[0]
    created = m.created_at.timestamp()
    size = m.bundle.size
    return Row("primary", "snapshot", f"{len(found)} stored", commit=m.id, lag=ago(created, suffix=""),
               detail=f"rev {m.snapshot.revision or '?'}, {human_bytes(size)}, node {m.node}",
               data={"id": m.id, "created": m.created, "size": size, "revision": m.snapshot.revision or None,
                     "count": len(found)})


# -- output ---------------------------------------------------------------------------------------------
WIDTH = 120  # the table and the details below it fit a 120-column terminal or CI log


def render(rows: list[Row]) -> None:
    """One rich table of short columns, then each row's details, wrapped to WIDTH."""
    import textwrap

    from rich import box
    from rich.console import Console
    from rich.table import Table

    width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns) if sys.stdout.isatty() else WIDTH
    console = Console(width=width)
    table = Table(box=box.SIMPLE_HEAD, title="kubedr status", title_justify="left")
    sources = len({r.source for r in rows if r.source}) > 1  # a secondary of several sources: which row is whose
    for col in ("SIDE", "COMPONENT", *(("SOURCE",) if sources else ()), "STATE", "COMMIT", "LAG", "FAILURES", "DRIFT"):
        table.add_column(col, no_wrap=col not in ("STATE", "SOURCE"), overflow="fold")
    for r in rows:
        table.add_row(r.side, r.component, *((r.source,) if sources else ()), r.state, r.commit, r.lag, r.failures,
                      r.drift, style="red" if r.problem else None)
    console.print(table)
    for r in (r for r in rows if r.detail):
        who = f"{r.side} {r.component}" + (f" {r.source}" if sources and r.source else "")
        text = textwrap.fill(f"{who}: {r.detail}", width=width - 2, initial_indent="  ",
                             subsequent_indent="      ", break_on_hyphens=False)
        console.print(text, style="red" if r.problem else None, markup=False, highlight=False, soft_wrap=True)


def ago(ts: float | None, suffix: str = " ago") -> str:
    """'3s ago', '5m ago', '2h ago', '4d ago'."""
    if not ts:
        return "never"
    secs = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}{suffix}"
    return f"{secs}s{suffix}"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
