"""History: how the branch head relates to what this secondary applied before, decided once per round, before
anything reads a recorded commit.

The status record remembers the newest commit applied per repo and branch. A head that contains it goes ahead.
Another repo or branch than the one last applied is the operator re-pointing the applier: the whole tree is
applied, prune stays within the guard, and whatever names a recorded commit (the diff base, the trust anchor,
the role scan, drift) starts fresh. The same repo and branch whose head is an ancestor of that commit (rollback)
or does not contain it (rewritten history) is held, nothing of it applied, until a person accepts the new head:
with the trust gate on, a signed `kubedr trust ack` made after the hold began that names a commit of the held
line; without it, `kubedr trust accept` against the secondary (its record, which pushing cannot change).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubedr.applier.fetch import Source, is_local
from kubedr.applier.sources import Records, key
from kubedr.applier.status import ACCEPTED_KEY, STATUS_CONFIGMAP, Status
from kubedr.applier.status import load as load_status
from kubedr.config import UsageError
from kubedr.kubeapi import Cluster
from kubedr.remote import redact

FRESH = "fresh"  # nothing applied to this secondary yet
FORWARD = "forward"  # the head contains the newest commit applied from this repo and branch
REPOINT = "re-point"  # another repo or branch than the one last applied
OWN = "own repo"  # `kubedr sync`'s throwaway repo: never held, never remembered
RESTORE = "restore"  # --revision / --at: a person chose the commit
ACCEPTED = "accepted"  # a rollback or rewrite a person acknowledged
ROLLBACK = "rollback"
REWRITE = "rewrite"
KEEP_NEWEST = 16  # repos and branches whose newest applied commit the record keeps
CLOCK_SLACK = 600.0  # seconds an acknowledgement's commit time may precede the hold (the signer's clock differs)
ACCEPT_MANAGER = "kubedr-accept"  # the field manager of `kubedr trust accept`'s key in the status record


def shown(repo: str) -> str:
    """The repo as the record names it: a URL without its password, a local path made absolute (a later run from
    another directory must find the same repo in it)."""
    return os.path.abspath(repo) if is_local(repo) and "://" not in repo else redact(repo)


@dataclass(frozen=True)
class Held:
    """A branch that moved back or to other history: what is held, since when, and how a person releases it."""

    commit: str  # the first head of the held line: what a person reviews and acknowledges
    head: str  # the branch head when last looked at
    newest: str  # the newest commit applied from this repo and branch
    reason: str  # ROLLBACK | REWRITE
    since: float  # Unix time the hold began
    gate: bool  # the trust gate is on: only a signed acknowledgement releases it
    repo: str = ""
    branch: str = ""

    def what(self) -> str:
        """What happened to the branch, in a few words."""
        if self.reason == ROLLBACK:
            return (f"branch {self.branch} of {self.repo} moved back from {self.newest[:12]} to {self.head[:12]} "
                    f"(rollback)")
        return (f"branch {self.branch} of {self.repo} no longer contains {self.newest[:12]}, the newest commit "
                f"applied from it; its head is {self.head[:12]} (rewritten history)")

    def how(self) -> str:
        """The command that releases the hold."""
        if self.gate:
            return f"kubedr trust ack {self.commit[:12]} --repo REPO --signing-key KEY"
        return f"kubedr trust accept {self.commit[:12]} --kubeconfig SECONDARY"

    def line(self) -> str:
        return (f"held: {self.what()}: nothing of it is applied until a person acknowledges {self.commit[:12]} "
                f"({self.how()})")

    def to_data(self) -> dict[str, str]:
        return {"commit": self.commit, "head": self.head, "newest": self.newest, "reason": self.reason,
                "since": f"{self.since:.0f}", "gate": "on" if self.gate else "off", "repo": self.repo,
                "branch": self.branch, "line": self.line()}

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> Held | None:
        if not data.get("commit") or not data.get("newest"):
            return None
        try:
            since = float(data.get("since") or 0)
        except ValueError:
            since = 0.0
        return cls(data["commit"], data.get("head") or data["commit"], data["newest"], data.get("reason") or REWRITE,
                   since, data.get("gate") == "on", data.get("repo", ""), data.get("branch", ""))


@dataclass(frozen=True)
class Decision:
    """What the round may do with the head: from which recorded commit, or nothing (held)."""

    kind: str
    base: str | None = None  # the recorded commit the round diffs from; None: the whole tree
    newest: str = ""  # the newest commit applied from this repo and branch before this round
    held: Held | None = None
    line: str = ""  # what to say about it once: a re-point, an acceptance

    @property
    def fresh(self) -> bool:
        """Another repo: the whole tree, prune only within the guard, no recorded commit read."""
        return self.kind in (REPOINT, OWN)

    def newest_after(self, source: Source, target: str) -> str:
        """The newest applied commit of this repo and branch once target is applied: target, unless it does not
        contain the one before (a restore of an older commit) and no person accepted that."""
        if self.kind == ACCEPTED or not self.newest or self.newest == target:
            return target
        return target if source.has(self.newest) and source.is_ancestor(self.newest, target) else self.newest


def remember(newest: Mapping[str, str], repo: str, branch: str, commit: str) -> dict[str, str]:
    """The record's newest-commit map with this repo and branch's set (the most recent KEEP_NEWEST kept)."""
    here = key(repo, branch)
    out = {k: v for k, v in newest.items() if k != here}
    out[here] = commit
    return dict(list(out.items())[-KEEP_NEWEST:])


def decide(source: Source, status: Status | None, repo: str, branch: str, head: str, *, pinned: bool = False,
           own: bool = False, gate_on: Callable[[], bool] = lambda: False,
           acks: Callable[[list[str]], Mapping[str, tuple[str, ...]]] | None = None,
           now: float | None = None) -> Decision:
    """How head relates to what this secondary applied: go ahead (from which base), re-point, or hold."""
    rec = status or Status()
    here = key(repo, branch)
    last = key(rec.repo, rec.branch or branch) if rec.repo else here
    newest = rec.newest.get(here) or (rec.commit if last == here else "")
    base = rec.commit if rec.commit and last == here and (rec.commit == head or source.has(rec.commit)) else None
    if pinned:
        return Decision(RESTORE, base=base, newest=newest)
    if own:
        said = f"the secondary was last applied from {redact(rec.repo)} at {rec.commit[:12]}; " if rec.commit else ""
        return Decision(OWN, line=f"kubedr sync: {said}applying the whole tree of this sync's own repo at {head[:12]}, "
                                  f"pruning only within the guard")
    if not rec.commit and not newest:
        return Decision(FRESH)
    if newest and (newest == head or source.reach(newest, head)):
        if last != here:
            return Decision(REPOINT, newest=newest, line=_repoint_line(rec, repo, branch, head))
        return Decision(FORWARD, base=base, newest=newest)
    if not newest:
        return Decision(REPOINT, line=_repoint_line(rec, repo, branch, head))
    reason = ROLLBACK if source.has(newest) and source.is_ancestor(head, newest) else REWRITE
    known = Held.from_data(rec.held)
    if known and known.newest == newest and _on_line(source, known.commit, head):
        first, since = known.commit, known.since
    else:
        first, since = head, time.time() if now is None else now
    held = Held(first, head, newest, reason, since, gate_on(), shown(repo), branch)
    how = _acknowledged(source, held, acks if held.gate else None, rec.accepted)
    if how:
        return Decision(ACCEPTED, base=base, newest=newest, line=f"{held.what()}: {how}; applying {head[:12]}")
    return Decision(reason, newest=newest, held=held)


def _repoint_line(rec: Status, repo: str, branch: str, head: str) -> str:
    return (f"re-pointed: the secondary was last applied from {redact(rec.repo)} ({rec.branch or '?'}) at "
            f"{rec.commit[:12]}; applying the whole tree of {redact(repo)} ({branch}) at {head[:12]}, pruning only "
            f"within the guard")


def _on_line(source: Source, first: str, commit: str) -> bool:
    """Whether commit is the first commit of a held line or comes after it."""
    return bool(commit) and source.has(commit) and source.is_ancestor(first, commit)


def _acknowledged(source: Source, held: Held, acks: Callable[[list[str]], Mapping[str, tuple[str, ...]]] | None,
                  accepted: Mapping[str, str]) -> str:
    """How a person released the hold ('' when nobody did): a signed acknowledgement newer than the hold and
    not applied before, naming a commit of the held line (gate on); else the secondary's record says so."""
    if held.gate:
        if acks is None:
            return ""
        revs = [held.head, *([f"^{held.newest}"] if source.has(held.newest) else [])]
        recent = [c.sha for c in source.commits([f"--since={int(held.since - CLOCK_SLACK)}", *revs])
                  if c.time >= held.since - CLOCK_SLACK]
        for sha, named in acks(recent).items():
            if any(_on_line(source, held.commit, s) and source.is_ancestor(s, sha) for s in named):
                return f"acknowledged by the signed commit {sha[:12]}"
        return ""
    commit = accepted.get("commit", "")
    if (accepted.get("held") == held.commit and accepted.get("newest") == held.newest
            and _on_line(source, held.commit, commit) and source.is_ancestor(commit, held.head)):
        return f"accepted on the secondary ({accepted.get('by') or 'kubedr trust accept'})"
    return ""


def accept(cluster: Cluster, commit: str, by: str, records: Records) -> Held:
    """Record on the secondary that a person accepts a source's held line up to commit (a prefix of the held commit
    or of the head the applier last saw); UsageError when nothing is held or the trust gate wants a signature."""
    status = load_status(cluster, records)
    held = Held.from_data(status.held) if status else None
    if held is None:
        raise UsageError("trust accept: the applier on this secondary holds nothing (kubedr status shows a hold)")
    if held.gate:
        raise UsageError(f"trust accept: the trust gate is on: acknowledge with a signed commit ({held.how()})")
    full = next((c for c in (held.commit, held.head) if len(commit) >= 7 and c.startswith(commit.lower())), "")
    if not full:
        raise UsageError(f"trust accept: {commit} is neither the held commit {held.commit[:12]} nor the head "
                         f"{held.head[:12]}")
    records.put(cluster, STATUS_CONFIGMAP, {ACCEPTED_KEY: _accepted_text(full, held, by)}, manager=ACCEPT_MANAGER)
    return held


def _accepted_text(commit: str, held: Held, by: str) -> str:
    return json.dumps({"commit": commit, "held": held.commit, "newest": held.newest, "by": by,
                       "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
