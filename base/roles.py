"""The writer role: which cluster may export to the branch, and an epoch that only grows.

The role lives in the branch itself (`.kubedr/writer.yaml`), so every exporter finds it in the tree it pushes
onto, and a push is a compare-and-swap on the branch: a role change that lands first makes every older
exporter's push a rejected non-fast-forward, after which it reads the new role and stops. No file means no
role was ever taken: nobody is fenced (a repo from before roles, until the first `kubedr promote`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import yaml

from kubedr import contract, git
from kubedr.repotree import TreeReader

WRITER_PATH = ".kubedr/writer.yaml"
WRITER_TRAILER = "Writer"
EPOCH_TRAILER = "Writer-Epoch"
COMMITTED_AT = "Kubedr-Committed-At"  # the exporter's sub-second commit time (exporter/gittree.py)
SOURCE_TRAILER = "Source-Cluster"
UNREPLICATED_PREFIX = "kubedr/unreplicated"  # side branches: kubedr/unreplicated/<cluster>/<time>
ROLE_CONFIGMAP = "kubedr-role"  # each cluster's own record of its role (kubedr-system)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RoleError(Exception):
    """The role file or a role change is not usable; one line naming it."""


@dataclass(frozen=True)
class Writer:
    """Who may push to the branch, under which epoch."""

    cluster: str
    epoch: int
    since: str = ""
    reason: str = ""


def check_name(cluster: str) -> str:
    """A cluster name as it goes into the role file, trailers and side-branch names."""
    if not _NAME.match(cluster or ""):
        raise RoleError(f"cluster name {cluster!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    return cluster


def parse(data: bytes) -> Writer:
    """The role file's bytes -> Writer; RoleError names the file."""
    try:
        doc = contract.parse_yaml(data, WRITER_PATH)
        writer = Writer(check_name(str(doc["cluster"])), int(doc["epoch"]), str(doc.get("since") or ""),
                        str(doc.get("reason") or ""))
    except (contract.ManifestError, KeyError, TypeError, ValueError, RoleError) as exc:
        why = exc.reason if isinstance(exc, contract.ManifestError) else " ".join(str(exc).split())
        raise RoleError(f"{WRITER_PATH}: not a writer role ({why})") from exc
    if writer.epoch < 1:
        raise RoleError(f"{WRITER_PATH}: epoch must be 1 or more, not {writer.epoch}")
    return writer


def dump(writer: Writer) -> bytes:
    """The role file, with a comment for whoever opens it."""
    head = ("# The cluster that may export to this branch, and the epoch of that role (it only grows).\n"
            "# Changed by `kubedr promote`, never by hand: see docs/runbooks.md.\n")
    body = {"cluster": writer.cluster, "epoch": writer.epoch, "since": writer.since, "reason": writer.reason}
    return (head + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)).encode()


def successor(current: Writer | None, cluster: str, reason: str, now: float | None = None) -> Writer:
    """The role after `cluster` takes it: epoch + 1."""
    return Writer(check_name(cluster), (current.epoch if current else 0) + 1, iso(now), reason)


def fence_reason(writer: Writer | None, cluster: str, held_epoch: int) -> str | None:
    """Why an exporter of `cluster` holding `held_epoch` must not push onto a branch with this role; None: it may."""
    if writer is None:
        return None if held_epoch == 0 else f"the branch has no {WRITER_PATH} but this exporter held epoch {held_epoch}"
    if writer.cluster != cluster:
        return f"the writer is {writer.cluster} (epoch {writer.epoch}), not {cluster}"
    if held_epoch != writer.epoch:  # the role changed under a running exporter: it claims the role afresh
        return (f"the branch's role became {cluster} at epoch {writer.epoch} while this exporter exported under "
                f"{f'epoch {held_epoch}' if held_epoch else 'no role'}: waiting for the role to settle")
    return None


def settling(writer: Writer | None, cluster: str) -> bool:
    """A fence of cluster's own role (a newer epoch than held): not a conflict, the exporter re-claims it."""
    return writer is not None and writer.cluster == cluster


def trailers(writer: Writer | None) -> list[str]:
    """The role trailers of a commit made under this role."""
    if writer is None:
        return []
    return [f"{WRITER_TRAILER}: {writer.cluster}", f"{EPOCH_TRAILER}: {writer.epoch}"]


def iso(now: float | None = None) -> str:
    """UTC time as in the role file and side-branch names."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def side_branch(cluster: str, now: float | None = None) -> str:
    """The ref of a side branch holding what `cluster` never replicated."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{UNREPLICATED_PREFIX}/{check_name(cluster)}/{stamp}"


# -- reading the role and commit facts from a git directory -------------------------------------------------
def read_writer(gitdir: str, rev: str) -> Writer | None:
    """The role in the tree of rev; None when the file is absent (or rev does not exist).

    Read entry by entry (repotree), not as `rev:path`: git's lookup takes whichever entry comes first, and a root
    entry named `.kubedr/writer.yaml` placed before `.kubedr` would stand in for the real file."""
    reader = TreeReader(gitdir)
    blob = reader.file(rev, WRITER_PATH)
    return parse(next(reader.blobs([blob]))) if blob else None


def commit_facts(gitdir: str, rev: str) -> dict[str, str]:
    """Time (Unix seconds, sub-second from the exporter's trailer), source cluster and epoch of a commit."""
    [commit] = git.log([rev], git_dir=gitdir, no_walk=True)
    source, epoch = ((commit.trailer(key) or [""])[0] for key in (SOURCE_TRAILER, EPOCH_TRAILER))
    return {"time": str(commit_time(commit)), "source": source, "epoch": epoch, "subject": commit.subject}


def commit_time(commit: git.Commit) -> float:
    """When the primary committed, Unix seconds: the exporter's sub-second trailer, else the committer time."""
    for at in commit.trailer(COMMITTED_AT)[:1]:
        try:
            return datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    return float(commit.time)


def last_commit_of(gitdir: str, rev: str, cluster: str, depth: int = 200) -> tuple[str, float] | None:
    """(sha, time) of the newest commit on rev's first-parent line that `cluster`'s exporter made."""
    try:
        commits = git.log(["--first-parent", f"-n{depth}", rev], git_dir=gitdir)
    except git.GitError:
        return None
    for commit in commits:
        if commit.trailer(SOURCE_TRAILER)[:1] == [cluster]:
            return commit.sha, float(commit_facts(gitdir, commit.sha)["time"])
    return None
