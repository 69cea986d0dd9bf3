"""Each cluster's own record of its role per source (`kubedr-role.SOURCE` in kubedr-system), written by promote
and demote.

The branch says who may export; this record says what the cluster itself was told last. An applier on a
cluster recorded as the writer of a source applies nothing of it (it would apply the cluster's own exports back
onto it), until `kubedr demote` records it a standby again; the cluster can be the writer of one source and a
standby of another.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubedr import roles
from kubedr.applier.sources import SCAN, Records, key
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.applier.role")
_said: dict[tuple[int, str], str] = {}
# (id, source) -> (cluster, when, serving): read every RECHECK s, not every poll
_checked: dict[tuple[int, str], tuple[Any, float, bool]] = {}
RECHECK = 2.0


def read_role(cluster: Cluster, records: Records) -> dict[str, str]:
    """The recorded role for a source ({} when promote or demote never ran for it against this cluster)."""
    return records.get(cluster, roles.ROLE_CONFIGMAP) or {}


def record_role(cluster: Cluster, name: str, role: str, epoch: int, *, records: Records, **extra: str) -> None:
    """Record `role` (writer | standby) of cluster `name` for a source at `epoch`, with when and any detail."""
    records.put(cluster, roles.ROLE_CONFIGMAP, {"cluster": name, "role": role, "epoch": str(epoch),
                                               "changedAt": roles.iso(), **extra})


def serving(cluster: Cluster, name: str | None = None, source: Any = None, record: bool = True, *,
            records: Records) -> bool:
    """True when this cluster must not be applied to (logged once): it is the writer, by its own record or by
    the branch's role file, or it held the role before and was not demoted yet (applying now would overwrite
    what it never replicated, before `kubedr demote` set it aside). A cluster recorded as standby applies.
    record=False (a dry run) keeps the history scan's progress in memory only: nothing is written."""
    now = time.monotonic()
    here = (id(cluster), records.source)
    cached = _checked.get(here)
    if cached is not None and cached[0] is cluster and now - cached[1] < RECHECK:
        return cached[2]
    rec = read_role(cluster, records)
    state = f"it is the writer ({rec.get('cluster')} at epoch {rec.get('epoch')})" if rec.get("role") == "writer" else ""
    if not state and name and rec.get("role") != "standby" and source is not None:
        writer = _branch_writer(source)
        if writer is not None and writer.cluster == name:
            state = f"it is the writer ({name} at epoch {writer.epoch})"
        elif writer is not None and _held_before(cluster, source, name, record, records):
            state = f"{name} held the writer role before; run `kubedr demote` for it first"
    if _said.get(here) != state:
        _said[here] = state
        if state:
            log.warning("nothing is applied to this cluster: %s (source %s)", state, records.source)
    _checked[here] = (cluster, now, bool(state))
    return bool(state)


_history: dict[tuple[int, str], tuple[Any, str, bool]] = {}  # (id, name) -> (source, head scanned, held the role)
SCAN_CONFIGMAP = SCAN  # how far the branch was scanned for `name`'s commits: a restart goes on from there


def _held_before(cluster: Cluster, source: Any, name: str, record: bool, records: Records) -> bool:
    """Whether a commit on the branch was made under `name`'s role (scanned once, then only new commits; the
    scan's progress is recorded on the cluster, so a restart does not walk the whole history again)."""
    head = source.head()
    key = (id(source), name)
    owner, last, held = _history.get(key, (None, "", False))
    if owner is not source:
        last, held = _resume(cluster, source, name, head, records)
    if held or not head or head == last:
        _history[key] = (source, last, held)
        return held
    if last and not source.reach(last, head):
        last = ""  # the recorded commit left the branch (history rewritten): walk all of it again
    if not last:
        source.reach(None, head)
    span = f"{last}..{head}" if last else head
    found = next((c.sha for c in source.commits([span]) if name in c.trailer(roles.WRITER_TRAILER)), "")
    held = bool(found)
    _history[key] = (source, head, held)
    if record:
        records.put(cluster, SCAN_CONFIGMAP, {"cluster": name, "scanned": head, "held": found, "repo": _repo(source)})
    return held


def _resume(cluster: Cluster, source: Any, name: str, head: str | None, records: Records) -> tuple[str, bool]:
    """(commit scanned up to, held) from the record, when it is about this name and repo (a re-pointed applier
    scans afresh) and still holds for this head."""
    rec = records.get(cluster, SCAN_CONFIGMAP) or {}
    if rec.get("cluster") != name or not head or rec.get("repo", _repo(source)) != _repo(source):
        return "", False
    held, scanned = rec.get("held") or "", rec.get("scanned") or ""
    if held:  # the commit made under the role: still on the branch (not rewritten away)?
        return (head, True) if source.reach(held, head) else ("", False)
    return scanned, False


def _repo(source: Any) -> str:
    return key(source.repo, source.branch)


def _branch_writer(source: Any) -> roles.Writer | None:
    """The role file at the head of the applier's source, None when absent or unreadable."""
    head = source.head()
    blob = source.file(head, roles.WRITER_PATH) if head else None
    if blob is None:
        return None
    try:
        return roles.parse(next(iter(source.read_blobs([blob]))))
    except roles.RoleError as exc:
        log.error("%s", exc)
        return None
