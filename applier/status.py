"""A source's record on the secondary (`kubedr-status.SOURCE` in kubedr-system): what is applied, what failed.

`commit` is the last commit whose tree was worked through (the base for the next diff); `fullyApplied` is
the last commit applied with no failure at all, and `fullyAppliedCommitTime` the primary's commit time of
it, which is what replication lag is measured from.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

from kubedr.applier.sources import MODE, STATUS, Records, open_records, sources_on
from kubedr.kubeapi import Cluster

STATUS_CONFIGMAP = STATUS  # one per source: Records.name(STATUS_CONFIGMAP)
ACCEPTED_KEY = "accepted"  # written by `kubedr trust accept` (its own field manager), never by the applier
MAX_FAILURES_KEPT = 200
MAX_IMAGES_KEPT = 1000


def images_of(data: dict[str, str]) -> dict[str, list[str]]:
    """The images of a kubedr-status record: image -> (some of) the objects using it."""
    try:
        return dict(json.loads(data.get("images") or "{}"))
    except ValueError:
        return {}


class DriftEntry(TypedDict):
    """One drifted object as the drift watch records it (applier.drift)."""

    object: str
    path: str
    fields: list[str]
    since: int
    heals: int
    writers: list[str]


class StrayEntry(TypedDict):
    """An object kubedr did not apply but its kinds are watched for (left in place), and who made it."""

    object: str
    madeBy: str


@dataclass
class Failure:
    """One object that did not apply: its repo path and the reason, in one line."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Status:
    """What the last round did."""

    commit: str = ""
    commit_time: float = 0.0
    fully_applied: str = ""
    fully_applied_time: float = 0.0
    applied_at: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    settings: str = ""
    repo: str = ""
    branch: str = ""
    mode: str = ""
    lag: float | None = None  # primary commit -> fully applied, measured when it was applied
    untrusted: dict[str, str] = field(default_factory=dict)  # the commit the trust gate refused: commit, signer, reason
    trust_anchor: str = ""  # the commit whose policy's allowed signers are in force (policy mode of applier.trust)
    newest: dict[str, str] = field(default_factory=dict)  # repo identity + branch -> newest commit applied (history)
    held: dict[str, str] = field(default_factory=dict)  # a rollback or rewrite held back (applier.history.Held)
    accepted: dict[str, str] = field(default_factory=dict)  # `kubedr trust accept`'s key: read here, never written
    exempt: list[str] = field(default_factory=list)  # workloads kept at primary replicas in standby, and why
    images: dict[str, list[str]] = field(default_factory=dict)  # image -> objects using it (applier.images)
    switchover: dict[str, Any] = field(default_factory=dict)  # the last switchover's RTO (applier.takeover; not ours)
    source: str = ""  # the source this record is of (applier.sources)
    owned_elsewhere: list[dict[str, str]] = field(default_factory=list)  # refused: {object, path, owner} (owners)

    def to_data(self) -> dict[str, str]:
        def iso(t: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else ""
        return {
            "commit": self.commit, "commitTime": iso(self.commit_time),
            "fullyApplied": self.fully_applied, "fullyAppliedCommitTime": iso(self.fully_applied_time),
            "appliedAt": iso(self.applied_at), "mode": self.mode,
            "repo": self.repo, "branch": self.branch, "settings": self.settings,
            "failureCount": str(len(self.failures)),
            "lagSeconds": "" if self.lag is None else f"{self.lag:.3f}",
            "failures": json.dumps([{"path": f.path, "reason": f.reason}
                                    for f in self.failures[:MAX_FAILURES_KEPT]], indent=1),
            # every failed path (reasons only for the first MAX_FAILURES_KEPT): all are retried next round
            "retryPaths": "\n".join(f.path for f in self.failures[MAX_FAILURES_KEPT:]),
            "untrusted": json.dumps(self.untrusted) if self.untrusted else "",
            "trustAnchor": self.trust_anchor,
            "newest": json.dumps(self.newest, indent=0) if self.newest else "",
            "held": json.dumps(self.held) if self.held else "",
            "exempt": "\n".join(self.exempt),
            # what a switchover pulls: every image, with up to 5 of the objects using it
            "images": json.dumps({i: u[:5] + ([f"... {len(u) - 5} more"] if len(u) > 5 else [])
                                  for i, u in list(self.images.items())[:MAX_IMAGES_KEPT]}, indent=0),
            "imageCount": str(len(self.images)),
            "source": self.source,
            "ownedElsewhere": json.dumps(self.owned_elsewhere[:MAX_FAILURES_KEPT], indent=0)
            if self.owned_elsewhere else "",
        }

    @classmethod
    def from_data(cls, data: dict[str, str]) -> Status:
        failures = [Failure(f["path"], f["reason"]) for f in json.loads(data.get("failures") or "[]")]
        failures += [Failure(p, "failed (reason not kept)") for p in (data.get("retryPaths") or "").splitlines()]
        return cls(commit=data.get("commit", ""), commit_time=_parse(data.get("commitTime", "")),
                   fully_applied=data.get("fullyApplied", ""),
                   fully_applied_time=_parse(data.get("fullyAppliedCommitTime", "")),
                   applied_at=_parse(data.get("appliedAt", "")), failures=failures,
                   settings=data.get("settings", ""), repo=data.get("repo", ""), branch=data.get("branch", ""),
                   mode=data.get("mode", ""), lag=float(data["lagSeconds"]) if data.get("lagSeconds") else None,
                   untrusted=json.loads(data["untrusted"]) if data.get("untrusted") else {},
                   trust_anchor=data.get("trustAnchor", ""), newest=_json_map(data.get("newest")),
                   held=_json_map(data.get("held")), accepted=_json_map(data.get(ACCEPTED_KEY)),
                   exempt=(data.get("exempt") or "").splitlines(), images=images_of(data),
                   switchover=_json_object(data.get("switchover")), source=data.get("source", ""),
                   owned_elsewhere=_json_list(data.get("ownedElsewhere")))


def _json_object(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_list(text: str | None) -> list[dict[str, str]]:
    """A JSON list of flat objects of strings from the record ([] when absent or not one)."""
    try:
        doc = json.loads(text or "[]")
    except ValueError:
        return []
    return [{str(k): str(v) for k, v in d.items()} for d in doc if isinstance(d, dict)] if isinstance(doc, list) else []


def _json_map(text: str | None) -> dict[str, str]:
    """A flat JSON object of strings from the record ({} when absent or not one)."""
    try:
        doc = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def _parse(iso: str) -> float:
    if not iso:
        return 0.0
    import calendar
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))


def load(cluster: Cluster, records: Records) -> Status | None:
    """The recorded status of a source, None when it never applied to this secondary."""
    data = records.get(cluster, STATUS_CONFIGMAP)
    return Status.from_data(data) if data is not None else None


def save(cluster: Cluster, status: Status, records: Records) -> None:
    """Record the round of a source on the secondary."""
    status.source = records.source
    records.put(cluster, STATUS_CONFIGMAP, status.to_data())


@dataclass
class Record:
    """What `kubedr status` shows of the secondary: the last round, the mode, and what the drift watch found."""

    status: Status
    mode: str = "standby"
    active_namespaces: list[str] = field(default_factory=list)
    mode_changed_at: str | None = None
    # written by the daemon's drift watch (applier.drift), empty when it never ran
    drift: list[DriftEntry] = field(default_factory=list)
    strays: list[StrayEntry] = field(default_factory=list)
    heal: str = ""
    drift_watched: int = 0  # objects with a baseline
    drift_started: float = 0.0  # when the watch started (unix time)
    image_count: int = 0
    source: str = ""

    def to_data(self) -> dict[str, Any]:
        """Plain data, as `kubedr status --json` prints it."""
        st = self.status
        return {
            "commit": st.commit, "commitTime": st.commit_time or None,
            "fullyAppliedCommit": st.fully_applied, "fullyAppliedCommitTime": st.fully_applied_time or None,
            "appliedAt": st.applied_at or None, "lagSeconds": st.lag,
            "failures": [{"path": f.path, "reason": f.reason} for f in st.failures],
            "mode": self.mode, "activeNamespaces": self.active_namespaces, "modeChangedAt": self.mode_changed_at,
            "repo": st.repo, "branch": st.branch, "untrusted": st.untrusted, "held": st.held,
            "drift": self.drift, "strays": self.strays, "heal": self.heal,
            "driftWatched": self.drift_watched, "driftStarted": self.drift_started,
            "exempt": st.exempt, "images": st.images, "imageCount": self.image_count, "switchover": st.switchover,
            "source": self.source, "ownedElsewhere": st.owned_elsewhere,
        }


def record_of(cluster: Cluster, records: Records) -> Record | None:
    """For `kubedr status`: a source's record and mode (None when it never applied)."""
    data = records.get(cluster, STATUS_CONFIGMAP)
    mode = records.get(cluster, MODE) or {}
    if data is None and not mode:
        return None
    data = data or {}
    st = Status.from_data(data)
    return Record(st, mode=mode.get("mode", "standby"), active_namespaces=(mode.get("activeNamespaces") or "").split(),
                  mode_changed_at=mode.get("changedAt"), drift=json.loads(data.get("drift") or "[]"),
                  strays=json.loads(data.get("strays") or "[]"), heal=data.get("heal", ""),
                  drift_watched=int(data.get("driftWatched") or 0),
                  drift_started=float(data.get("driftStarted") or 0),
                  image_count=int(data.get("imageCount") or len(st.images)), source=records.source)


def read_records(api_client: Any) -> list[Record]:
    """Every source's record on the secondary (read where it is: nothing is moved or written)."""
    cluster = Cluster(api_client)
    found = (record_of(cluster, open_records(cluster, name, write=False)) for name in sources_on(cluster))
    return [r for r in found if r is not None]


def read_record(api_client: Any, source: str | None = None) -> Record | None:
    """A source's record (the only one when source is None; None when none applied); ValueError when source is None
    and the secondary serves several."""
    found = [r for r in read_records(api_client) if source in (None, r.source)]
    if source is None and len(found) > 1:
        raise ValueError(f"{len(found)} sources on this secondary ({', '.join(r.source for r in found)}): name one")
    return found[0] if found else None


def read_status(api_client: Any, source: str | None = None) -> dict[str, Any]:
    """A source's record as plain data (the only one when source is None; {} when none applied)."""
    record = read_record(api_client, source)
    return record.to_data() if record else {}
