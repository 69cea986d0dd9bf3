"""After a switchover or promote: follow every workload until it is Available, say how long it took (the RTO)
and, for what is not Available, why.

One list and one watch per kind (kubedr's label), never a request per object: the built-in workload kinds
(applier.readiness.WORKLOADS) in the switched namespaces, and the custom resources the switchover brought up.
The verdicts are readiness.verdict's. The RTO (command start -> the last of them Available) is printed,
recorded in the source's `kubedr-status.SOURCE` record (key `switchover`, its own field manager) and read back by the
applier's /metrics and `kubedr status`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from kubedr import metrics
from kubedr.apierrors import ApiError, Gone
from kubedr.applier import readiness
from kubedr.applier.decode import MANAGED_LABEL
from kubedr.applier.owners import owner_of
from kubedr.applier.readiness import Verdict
from kubedr.applier.sources import Records
from kubedr.applier.status import STATUS_CONFIGMAP
from kubedr.applier.status import load as load_status
from kubedr.backoff import Backoff
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Cluster
from kubedr.listwatch import Handler, ListWatch, served

log = logging.getLogger("kubedr.applier.takeover")

RECORD_KEY = "switchover"
RECORD_MANAGER = "kubedr-switchover"
WATCH_SECONDS = 60  # a watch is renewed from its resourceVersion this often
MAX_LISTED = 20  # workloads named in the record when they are not Available


@dataclass
class Followed:
    """One workload followed: its last verdict, and when it became Available (monotonic)."""

    ref: ObjectRef
    verdict: Verdict = field(default_factory=lambda: Verdict(False, "not seen yet"))
    live: dict[str, Any] | None = None
    since: float | None = None


class Kind(Handler):
    """One workload kind's list and watch (kubedr's label), into its Follower."""

    def __init__(self, follower: Follower, group: str, kind: str) -> None:
        self.follower, self.group, self.kind = follower, group, kind
        self.seen: set[ObjectRef] = set()

    def listed(self, obj: dict[str, Any]) -> None:
        self.follower.saw(obj, self.group, self.kind)
        meta = obj.get("metadata") or {}
        self.seen.add(ObjectRef(self.group, self.kind, meta.get("namespace") or "", meta.get("name") or ""))

    def synced(self) -> None:
        seen, self.seen = self.seen, set()
        self.follower.listed_all(self.group, self.kind, seen)

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        self.follower.saw(obj, self.group, self.kind, gone=kind == "DELETED")

    def failed(self, exc: Exception, retry_in: float) -> None:
        self.seen = set()
        if not isinstance(exc, Gone):  # the API server is away or refuses: retried, and said if it lasts
            self.follower.cannot_follow(self.group, self.kind, exc)

    def absent(self) -> None:
        self.follower.listed_all(self.group, self.kind, set())  # not served here (no such CRD): nothing to follow


class Follower:
    """Watches the workloads in scope until each is Available, or the deadline."""

    def __init__(self, cluster: Cluster, namespaces: list[str] | None, extra: Iterable[ObjectRef] = (),
                 clock: Callable[[], float] = time.monotonic, source: str = "") -> None:
        self.cluster = cluster
        self.source = source  # only this source's workloads (and those applied before sources) when given
        self.namespaces = set(namespaces) if namespaces else None
        self.extra = set(extra)
        self.clock = clock
        self.followed: dict[ObjectRef, Followed] = {r: Followed(r) for r in self.extra}
        self.kinds = sorted({*readiness.WORKLOADS, *((r.group, r.kind) for r in self.extra)})
        self._cond = threading.Condition()
        self._listed: set[tuple[str, str]] = set()
        self._watches: list[ListWatch] = []
        self.errors: dict[tuple[str, str], str] = {}

    # ---- watching ----------------------------------------------------------------------------------------

    def _in_scope(self, obj: dict[str, Any], group: str, kind: str) -> ObjectRef | None:
        meta = obj.get("metadata") or {}
        ref = ObjectRef(group, kind, meta.get("namespace") or "", meta.get("name") or "")
        if ref in self.followed:
            return ref
        if (group, kind) not in readiness.WORKLOADS or (group, kind) in self._listed:
            return None  # a workload that appears after the first list is not part of this takeover
        if self.namespaces is not None and ref.namespace not in self.namespaces:
            return None
        if any(o.get("controller") for o in meta.get("ownerReferences") or []):
            return None  # a Deployment's ReplicaSets count through their Deployment
        if self.source and owner_of(obj) not in ("", self.source):
            return None  # another source's
        return ref

    def saw(self, obj: dict[str, Any], group: str, kind: str, gone: bool = False) -> None:
        with self._cond:
            ref = self._in_scope(obj, group, kind)
            if ref is None:
                return
            item = self.followed.setdefault(ref, Followed(ref))
            item.live = None if gone else obj
            item.verdict = Verdict(False, "deleted") if gone else readiness.verdict(obj)
            if item.verdict.available and item.since is None:
                item.since = self.clock()
            elif not item.verdict.available:
                item.since = None
            self._cond.notify_all()

    def listed_all(self, group: str, kind: str, seen: set[ObjectRef]) -> None:
        """A (re)list of one kind ended: what it did not hold is not found."""
        with self._cond:
            for ref, item in self.followed.items():
                if (ref.group, ref.kind) == (group, kind) and ref not in seen:
                    item.verdict, item.since, item.live = Verdict(False, "not found"), None, None
            self._listed.add((group, kind))
            self.errors.pop((group, kind), None)
            self._cond.notify_all()

    def cannot_follow(self, group: str, kind: str, exc: Exception) -> None:
        with self._cond:
            self.errors[(group, kind)] = " ".join(str(exc).split())

    # ---- waiting -----------------------------------------------------------------------------------------

    def start(self) -> Follower:
        for group, kind in self.kinds:
            self._watches.append(ListWatch(
                self.cluster, served(self.cluster, group, kind), Kind(self, group, kind),
                label_selector=f"{MANAGED_LABEL}=true", timeout=WATCH_SECONDS,
                backoff=Backoff(0.5, 5.0)).start(f"kubedr-follow-{kind}"))
        return self

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()

    def pending(self) -> list[Followed]:
        """The workloads not Available now (all of them until every kind was listed once)."""
        with self._cond:
            return [f for f in self.followed.values() if not f.verdict.available]

    def wait(self, deadline: float, progress: Callable[[Follower], None] | None = None) -> bool:
        """Until every followed workload is Available (True) or the deadline (False); progress on each change."""
        while True:
            with self._cond:
                done = len(self._listed) == len(self.kinds) and all(f.verdict.available
                                                                     for f in self.followed.values())
                left = deadline - self.clock()
                if not done and left > 0:
                    self._cond.wait(min(left, 1.0))
            if progress is not None:
                progress(self)
            if done:
                return True
            if left <= 0:
                return False

    def available_at(self) -> float | None:
        """When the last followed workload became Available (monotonic), None while one is not."""
        with self._cond:
            times = [f.since for f in self.followed.values()]
        done = [t for t in times if t is not None]
        return None if len(done) < len(times) else max(done, default=self.clock())


# ---- why not ---------------------------------------------------------------------------------------------

def diagnose(cluster: Cluster, pending: list[Followed]) -> list[tuple[str, str, str]]:
    """(workload, state, why) for each one not Available: the cause read from its Pods and Events."""
    by_ns: dict[str, dict[str, list[dict[str, Any]]]] = {}
    rows = []
    for item in sorted(pending, key=lambda f: f.ref.display):
        why = ""
        if item.live is not None:
            ns = item.ref.namespace
            if ns and ns not in by_ns:
                by_ns[ns] = _namespace_state(cluster, ns)
            why = readiness.why_not(_clues(item.live, by_ns.get(ns) or {}))
        rows.append((item.ref.display, item.verdict.message, why or "no cause found in its Pods and Events"))
    return rows


def _namespace_state(cluster: Cluster, ns: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key, path in (("pods", f"/api/v1/namespaces/{ns}/pods"),
                      ("replicasets", f"/apis/apps/v1/namespaces/{ns}/replicasets"),
                      ("events", f"/api/v1/namespaces/{ns}/events")):
        try:
            out[key] = list(cluster.get(path).get("items") or [])
        except (ApiError, OSError):
            out[key] = []
    return out


def _owned_by(items: list[dict[str, Any]], uids: set[str]) -> list[dict[str, Any]]:
    return [i for i in items if any(o.get("uid") in uids for o in (i.get("metadata") or {}).get("ownerReferences")
                                    or [])]


def _clues(live: dict[str, Any], ns: dict[str, list[dict[str, Any]]]) -> list[readiness.Clue]:
    uid = str((live.get("metadata") or {}).get("uid") or "")
    replicasets = _owned_by(ns.get("replicasets", []), {uid})
    owners = {uid} | {str(r["metadata"].get("uid")) for r in replicasets}
    pods = _owned_by(ns.get("pods", []), owners)
    uids = owners | {str(p["metadata"].get("uid")) for p in pods}
    events = [e for e in ns.get("events", []) if (e.get("involvedObject") or {}).get("uid") in uids]
    clues = [c for p in pods for c in readiness.clues_of_pod(p)]
    clues += [c for o in [live, *replicasets] for c in readiness.clues_of_workload(o)]
    return clues + readiness.clues_of_events(events)


# ---- progress and record ---------------------------------------------------------------------------------

class Progress:
    """The live line: rewritten in place on a terminal, else printed when the count changes (or every 10 s)."""

    def __init__(self, started: float, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.started = started
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tty = self.stream.isatty()
        self._last: tuple[int, int] | None = None
        self._printed = 0.0

    def __call__(self, follower: Follower) -> None:
        pending = follower.pending()
        total = len(follower.followed)
        counts = (total - len(pending), total)
        now = self.clock()
        if not self.tty and counts == self._last and now - self._printed < 10:
            return
        first = f" ({pending[0].ref.display}: {pending[0].verdict.message})" if pending else ""
        line = f"waiting for the standby to serve: {counts[0]}/{counts[1]} Available, {now - self.started:.1f} s{first}"
        self.stream.write(("\r\x1b[K" + line) if self.tty else line + "\n")
        self.stream.flush()
        self._last, self._printed = counts, now

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class Takeover:
    """One switchover's figures, as printed and recorded."""

    command: str
    namespaces: list[str]
    started_at: float  # unix time
    switch_seconds: float  # command start -> the held objects patched
    rto: float | None  # command start -> every workload Available; None when not reached
    workloads: int
    brought_up: int
    not_available: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {"command": self.command, "namespaces": self.namespaces, "startedAt": round(self.started_at, 3),
                "switchSeconds": round(self.switch_seconds, 3),
                "rtoSeconds": None if self.rto is None else round(self.rto, 3), "workloads": self.workloads,
                "broughtUp": self.brought_up, "notAvailable": self.not_available[:MAX_LISTED],
                "notAvailableCount": len(self.not_available)}


def recorded(cluster: Cluster, records: Records) -> dict[str, Any]:
    """The last switchover's record of a source ({} when none)."""
    status = load_status(cluster, records)
    return status.switchover if status is not None else {}


def publish(data: dict[str, Any]) -> None:
    """The recorded figures on /metrics (the applier reads its record every round)."""
    if not data:
        return
    rto, started = data.get("rtoSeconds"), data.get("startedAt")
    metrics.SWITCHOVER_RTO.set(rto if isinstance(rto, int | float) else float("nan"))  # NaN: it timed out
    if isinstance(started, int | float):
        metrics.SWITCHOVER_TIME.set(started)
    count = data.get("notAvailableCount")
    metrics.SWITCHOVER_UNAVAILABLE.set(count if isinstance(count, int) else 0)


def record(cluster: Cluster, takeover: Takeover, records: Records) -> None:
    """Keep the figures in the source's record (its own key and field manager: the applier keeps them)."""
    records.put(cluster, STATUS_CONFIGMAP, {RECORD_KEY: json.dumps(takeover.to_data(), sort_keys=True)},
                manager=RECORD_MANAGER)


# ---- the whole wait --------------------------------------------------------------------------------------

NOT_FOLLOWED = {("batch", "CronJob"), ("batch", "Job")}  # started by a switchover, not waited for


@dataclass
class Wait:
    """How to wait: until --timeout, printing to out (results) and err (the progress line)."""

    timeout: float
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


def serve(cluster: Cluster, command: str, namespaces: list[str] | None, brought_up: list[ObjectRef],
          started: float, wait: Wait, records: Records, clock: Callable[[], float] = time.monotonic) -> int:
    """Follow a source's workloads until Available; print the RTO or what is not Available and why; record it.
    0 when everything is Available, 1 after the timeout."""
    switched_at = clock()
    started_unix = time.time() - (switched_at - started)
    follower = Follower(cluster, namespaces, [r for r in brought_up if (r.group, r.kind) not in NOT_FOLLOWED],
                        clock, records.source).start()
    progress = Progress(started, wait.err, clock)
    try:
        ok = follower.wait(started + wait.timeout, progress)
    finally:
        follower.stop()
        progress.done()
    last = follower.available_at()
    pending = follower.pending()
    rto = (last - started) if ok and last is not None else None
    rows = diagnose(cluster, pending) if pending else []
    result = Takeover(command, sorted(namespaces or []), started_unix, switched_at - started, rto,
                      len(follower.followed), len(brought_up), [f"{w}: {state}; {why}" for w, state, why in rows])
    _report(result, rows, follower.errors, wait)
    previous = recorded(cluster, records)
    if brought_up or not previous or previous.get("rtoSeconds") is None:  # a re-run keeps the first figure
        try:
            record(cluster, result, records)
        except (ApiError, OSError) as exc:
            log.warning("cannot record the RTO in %s: %s", STATUS_CONFIGMAP, " ".join(str(exc).split()))
    return 0 if ok else 1


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def _report(t: Takeover, rows: list[tuple[str, str, str]], errors: dict[tuple[str, str], str], wait: Wait) -> None:
    out = wait.out
    for (group, kind), error in sorted(errors.items()):
        out.write(f"cannot follow {kind}{'.' + group if group else ''}: {error}\n")
    if t.rto is not None:
        out.write(f"standby serves: {_n(t.workloads, 'workload')} Available; RTO {t.rto:.1f} s (command start -> every "
                  f"workload Available: {t.switch_seconds:.1f} s to bring {t.brought_up} objects up, "
                  f"{t.rto - t.switch_seconds:.1f} s until Available)\n")
        return
    out.write(f"NOT serving after --timeout {wait.timeout:g} s: {len(rows)} of {_n(t.workloads, 'workload')} not "
              f"Available\n")
    width = max((len(r[0]) for r in rows), default=8)
    state_width = max((len(r[1]) for r in rows), default=5)
    out.write(f"  {'WORKLOAD':<{width}}  {'STATE':<{state_width}}  WHY\n")
    for workload, state, why in rows:
        out.write(f"  {workload:<{width}}  {state:<{state_width}}  {why}\n")
    out.flush()
