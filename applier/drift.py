"""Drift: objects kubedr manages that changed on the secondary behind its back; healed, or reported.

Watched, not polled: one watch per kind the repo holds, narrowed to the source's label, so an edit is seen within
milliseconds, and an idle secondary costs one open connection per kind plus a bookmark now and then, not
work proportional to the number of objects (a poll would list every managed object each interval and see an
edit only at the next tick). Strays are not urgent: one list per kind each interval finds them.

Only kubedr's own fields are compared: the set its last apply owned (managedFields of manager `kubedr`),
with the values the server answered then (defaults and normalisation included), against the live object.
A path another writer now owns is drift unless that writer is a controller of the cluster (CONTROLLERS).
A suspected drift is confirmed under the engine's lock, so a round applying the same object never races it.
An object another source owns now (applier.owners) is never drift: it is not compared, and never healed back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubedr import metrics
from kubedr.apierrors import Gone
from kubedr.applier.apply import FIELD_MANAGER
from kubedr.applier.decode import MANAGED_LABEL, Decoder
from kubedr.applier.fieldset import applied_set, differences, extract, owners
from kubedr.applier.owners import foreign
from kubedr.applier.sources import SOURCE_LABEL
from kubedr.applier.standby import Mode, hold, read_mode
from kubedr.applier.status import STATUS_CONFIGMAP, DriftEntry
from kubedr.backoff import Backoff
from kubedr.contract import ObjectRef, ref_of
from kubedr.listwatch import Handler, ListWatch, pages, served

if TYPE_CHECKING:
    from kubedr.applier.round import Engine

log = logging.getLogger("kubedr.applier.drift")

DRIFT_MANAGER = "kubedr-drift"  # owns the drift keys of the kubedr-status record
INTERVAL = 60.0  # report a lasting drift, rescan for strays, and at most this long between heals of one object
FIRST_BACKOFF = 1.0  # a second heal of the same object waits this long, doubling up to the interval
MAX_HEALS_PER_MINUTE = 60  # over all objects: a storm of edits never turns into a storm of applies
WATCH_TIMEOUT = 300  # seconds a watch stays open before it is renewed from its resourceVersion
LIST_PAGE = 500  # objects per list request: 100,000 are never held at once

# Writers whose fields are theirs to change: a path they took from kubedr is not drift.
CONTROLLERS: dict[str, str] = {
    "kube-controller-manager": "the cluster's controllers (the HorizontalPodAutoscaler scales through it)",
    "kubedr-switchover": "`kubedr switchover` brought workloads up; the next round applies the new mode",
    "kubedr-standby": "the applier marks Jobs that left the repo",
}


class Baseline:
    """kubedr's field set after its last apply of an object, and the values the server answered for it, kept as
    compact JSON: 100,000 objects of nested dicts took more than a gigabyte."""

    __slots__ = ("packed", "path")

    def __init__(self, path: str, tree: dict[str, Any], values: Any) -> None:
        self.path = path
        self.packed = json.dumps([tree, values], separators=(",", ":")).encode()

    @property
    def tree(self) -> dict[str, Any]:
        return dict(json.loads(self.packed)[0])

    @property
    def values(self) -> Any:
        return json.loads(self.packed)[1]

    def unpack(self) -> tuple[dict[str, Any], Any]:
        """(field set, values), decoded once."""
        tree, values = json.loads(self.packed)
        return tree, values


@dataclass
class Drifted:
    """One object out of line with the repo: which fields, since when, how often healed."""

    ref: ObjectRef
    path: str
    fields: list[str]
    since: float
    heals: int = 0  # heals since it last stayed clean for an interval
    next_heal: float = 0.0
    reported: float = 0.0
    healed: float = 0.0  # monotonic time of the last heal
    writers: list[str] = field(default_factory=list)

    def as_data(self) -> DriftEntry:
        return {"object": self.ref.display, "path": self.path, "fields": self.fields, "since": round(self.since),
                "heals": self.heals, "writers": self.writers}


@dataclass
class DriftSettings:
    """The report interval (also the longest wait between heals of one object) and the global heal budget."""

    interval: float = INTERVAL
    max_heals_per_minute: int = MAX_HEALS_PER_MINUTE
    first_backoff: float = FIRST_BACKOFF


class Watched(Handler):
    """One kind's list and watch (kubedr's label only): every change is checked against its baseline."""

    def __init__(self, drift: Drift, kind: str) -> None:
        self.drift = drift
        self.kind = kind

    def listed(self, obj: dict[str, Any]) -> None:
        self.drift.observe(obj, listed=True)

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.drift.suspect(ref_of(obj))  # deleted, or its label removed: the worker looks
        else:
            self.drift.observe(obj)

    def failed(self, exc: Exception, retry_in: float) -> None:
        if not isinstance(exc, Gone):  # the secondary is away: said once, then retried quietly
            (log.warning if retry_in <= 1.0 else log.debug)("drift watch of %s: %s (retrying)", self.kind,
                                                            " ".join(str(exc).split()))

    def absent(self) -> float:
        return self.drift.settings.interval  # not served (a CRD not there yet): look again later


class Drift:
    """Watches what kubedr applied, confirms drift under the engine's lock, heals with backoff, reports."""

    def __init__(self, engine: Engine, settings: DriftSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.baselines: dict[ObjectRef, Baseline] = {}
        self.desired: dict[ObjectRef, str] = {}
        self.failed: set[str] = set()
        self.commit = ""
        self.mode = Mode()
        self.drifted: dict[ObjectRef, Drifted] = {}
        self._recent: dict[ObjectRef, Drifted] = {}  # healed and clean for now: a fight resumes its backoff
        self.strays: dict[ObjectRef, str] = {}
        self.heal_times: list[float] = []
        self._suspects: set[ObjectRef] = set()
        self._seen: dict[ObjectRef, dict[str, Any]] = {}  # a suspect's object as its last watch event showed it
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._watched: dict[tuple[str, str], ListWatch] = {}
        self._next_scan = 0.0
        self._dirty = True
        self._published: str = ""
        self._worker: threading.Thread | None = None
        self.started = time.time()
        self.writer = False  # the cluster writes the branch: its edits are the primary's own, never drift

    # ---- the engine's hooks ------------------------------------------------------------------------------

    def applied(self, ref: ObjectRef, path: str, answer: dict[str, Any]) -> None:
        """An apply (a round's or a heal's) succeeded: its answer is the new baseline."""
        tree = applied_set(answer, FIELD_MANAGER)
        if tree:
            self.baselines[ref] = Baseline(path, tree, extract(answer, tree))

    def round_done(self, target: str, desired: dict[ObjectRef, str], mode: Mode, failed: set[str]) -> None:
        """A round recorded target: follow its objects (new kinds get a watch), forget what left the repo."""
        if not self.engine.settings.drift:  # the repo's policy turned drift detection off
            desired = {}
        with self._cond:
            self.commit, self.desired, self.mode, self.failed = target, dict(desired), mode, set(failed)
            for ref in [r for r in self.baselines if r not in desired]:
                del self.baselines[ref]
            for ref in [r for r in self.drifted if r not in desired]:
                del self.drifted[ref]
            self._suspects |= {r for r in desired if r not in self.baselines}
            self._dirty = True
            self._cond.notify()
        self._ensure_watches()

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker; it follows nothing until a round of this run names the objects (round_done): the
        recorded commit may be older than the head, and healing towards it would resurrect deleted objects."""
        self._worker = threading.Thread(target=self._work, name="kubedr-drift", daemon=True)
        self._worker.start()
        threading.Thread(target=self._stray_loop, name="kubedr-strays", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for watch in list(self._watched.values()):
            watch.stop()
        with self._cond:
            self._cond.notify()
        if self._worker is not None:
            self._worker.join(10)

    def heal_on(self, ref: ObjectRef) -> bool:
        """Heal this object? --heal/--no-heal or the policy's `heal`, else yes where its namespace is on standby."""
        heal = self.engine.settings.heal
        return heal if heal is not None else not self.mode.is_active(ref.namespace)

    # ---- watching -------------------------------------------------------------------------------------------

    def _ensure_watches(self) -> None:
        for group, kind in sorted({(r.group, r.kind) for r in self.desired}):
            if (group, kind) not in self._watched and not self._stop.is_set():
                self._watched[(group, kind)] = ListWatch(
                    self.engine.cluster, served(self.engine.cluster, group, kind), Watched(self, kind),
                    label_selector=self._selector(), page_size=LIST_PAGE, timeout=WATCH_TIMEOUT,
                    backoff=Backoff(1.0, 30.0)).start(f"kubedr-drift-{kind}")

    def _selector(self) -> str:
        """The objects this source applied (labelled by its last rounds): never another source's, whose events
        would cost every applier on a shared secondary work for objects that are not its own."""
        return f"{MANAGED_LABEL}=true,{SOURCE_LABEL}={self.engine.settings.source}"

    def observe(self, live: dict[str, Any], listed: bool = False) -> None:
        ref = ref_of(live)
        if foreign(live, self.engine.settings.source):  # another source's: never compared, never healed
            if ref in self.drifted or ref in self.baselines:
                self.suspect(ref)  # the locked look forgets it
            return
        base = self.baselines.get(ref)
        if ref not in self.desired or (base is None and listed):
            return  # not kubedr's now; or listed before its baseline, which round_done queued to be read live
        if base is None or ref in self.drifted or self._differences(base, live):
            self.suspect(ref, live)

    def suspect(self, ref: ObjectRef, live: dict[str, Any] | None = None) -> None:
        """Look at ref soon; live: the object as the watch showed it last (the first look needs no GET)."""
        if ref in self.desired:
            with self._cond:
                self._suspects.add(ref)
                if live is not None:
                    self._seen[ref] = live
                else:
                    self._seen.pop(ref, None)
                self._cond.notify()

    @staticmethod
    def _differences(base: Baseline, live: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(drifted paths, their writers); paths a controller owns now are not drift."""
        paths, writers = [], set()
        tree, values = base.unpack()
        for d in differences(values, live, tree):
            who = owners(live, d.elements)
            if who & CONTROLLERS.keys():
                continue
            paths.append(d.path)
            writers |= who - {FIELD_MANAGER}
        return paths, sorted(writers)

    # ---- the worker: confirm, heal, scan, publish ------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                wait = self._next_wake() - time.monotonic()
                if not self._suspects and wait > 0:
                    self._cond.wait(min(wait, self.settings.interval))
                suspects, self._suspects = self._suspects, set()
                seen = {ref: self._seen.pop(ref) for ref in suspects if ref in self._seen}
            if self._stop.is_set():
                return
            try:
                if self._writes_the_branch():
                    self._next_scan = time.monotonic() + self.settings.interval  # a round's end wakes it sooner
                    self._publish()
                    continue
                self._confirm(suspects, seen)
                self._heal_due()
                if time.monotonic() >= self._next_scan:
                    self._next_scan = time.monotonic() + self.settings.interval
                    self._report_lasting()
                self._publish()
            except Exception as exc:  # the secondary is away: the next pass tries again
                log.warning("drift check failed: %s", " ".join(str(exc).split()))
                with self._cond:
                    self._suspects |= suspects
                self._stop.wait(1.0)

    def _writes_the_branch(self) -> bool:
        """While the cluster is the writer (as its applier's rounds judge it) nothing is compared or healed."""
        writer = self.engine.writes_branch
        if writer != self.writer:
            self.writer, self._dirty = writer, True
            if writer:
                self.drifted.clear()
                self.strays = {}
        return writer

    def _next_wake(self) -> float:
        due = [d.next_heal for d in self.drifted.values() if self.heal_on(d.ref)]
        return min([self._next_scan, *due])

    def _confirm(self, suspects: set[ObjectRef], seen: dict[ObjectRef, dict[str, Any]] | None = None) -> None:
        """Look at each suspect under the engine's lock: baseline it, clear it, or record it as drifted."""
        items = sorted((ref, self.desired[ref]) for ref in suspects
                       if ref in self.desired and self.desired[ref] not in self.failed)
        # A first look without the lock: most suspects are kubedr's own applies echoed by the watch, and holding
        # the lock for their GETs would delay the next round (p99 replication latency 250 -> 650-900 ms).
        items = [item for item in items if self._needs_a_locked_look(item[0], (seen or {}).get(item[0]))]
        if not items:
            return
        with self.engine.lock:
            decode = self._decoder()
            data = self._read([path for ref, path in items if ref not in self.baselines])

            def one(item: tuple[ObjectRef, str]) -> tuple[ObjectRef, str, list[str], list[str]] | None:
                ref, path = item
                live = self.engine.applier.get_live(ref)
                if live is not None and foreign(live, self.engine.settings.source):
                    self._owned_elsewhere(ref, live)
                    return None
                if ref not in self.baselines:
                    answer = self._apply(decode, path, data.get(path), dry_run=True)
                    if answer is None:
                        return None
                    self.applied(ref, path, answer)
                base = self.baselines.get(ref)
                if base is None:
                    return None
                if live is None:
                    return ref, path, ["(deleted on the secondary)"], []
                return (ref, path, *self._differences(base, live))

            for outcome in self.engine.applier.run_stage(items, one):
                if outcome.error:
                    log.warning("drift check of %s failed: %s", outcome.item[1], outcome.error)
                elif outcome.result is not None:
                    self._record(*outcome.result)
        self._dirty = True

    def _owned_elsewhere(self, ref: ObjectRef, live: dict[str, Any]) -> None:
        """Another source owns the object now: forget its drift, say so once."""
        if self.drifted.pop(ref, None) is not None or self.baselines.pop(ref, None) is not None:
            log.warning("drift: %s is owned by source %s now: not compared, not healed", ref.display,
                        foreign(live, self.engine.settings.source))
            self._dirty = True

    def _needs_a_locked_look(self, ref: ObjectRef, seen: dict[str, Any] | None = None) -> bool:
        """No baseline, drifted before, gone, or differing now: only then confirm (or clear) under the lock.
        The watch's last event is the object now (a later one suspects it again), so a suspect it showed is
        compared without a GET: most are the round's own applies, seen before their baseline was kept."""
        base = self.baselines.get(ref)
        if base is None or ref in self.drifted:
            return True
        if seen is not None and not self._differences(base, seen)[0]:
            return False
        try:
            live = self.engine.applier.get_live(ref)
        except Exception:  # noqa: BLE001 - the locked look reports what is wrong
            return True
        return live is None or bool(self._differences(base, live)[0])

    def _record(self, ref: ObjectRef, path: str, found: list[str], writers: list[str]) -> None:
        now = time.time()
        known = self.drifted.get(ref)
        if not found:
            if known is not None:
                del self.drifted[ref]
                self._dirty = True
                if known.heals:
                    self._recent[ref] = known
                else:
                    log.info("drift of %s gone", ref.display)
            return
        metrics.APPLY_DRIFT_DETECTED.inc()
        if known is None:
            known = self._recent.pop(ref, None)
            if known is None or time.monotonic() - known.healed > self.settings.interval:
                known = Drifted(ref, path, found, now)
            self.drifted[ref] = known
        known.fields, known.writers = found, writers
        self._dirty = True
        if not self.heal_on(ref) or known.heals < 2:
            if time.monotonic() - known.reported >= self.settings.interval or not known.reported:
                known.reported = time.monotonic()
                log.warning("drift %s (%s): %s%s%s", ref.display, path, ", ".join(found),
                            f" (written by {', '.join(writers)})" if writers else "",
                            "" if self.heal_on(ref) else "; heal off: reported only")

    def _heal_due(self) -> None:
        now = time.monotonic()
        due = [d for d in self.drifted.values() if self.heal_on(d.ref) and d.next_heal <= now]
        if not due or self._mode_moved():
            return
        with self.engine.lock:
            decode = self._decoder()
            data = self._read([d.path for d in due])
            for d in sorted(due, key=lambda d: d.since):
                if not self._budget():
                    d.next_heal = time.monotonic() + 60.0 / max(1, self.settings.max_heals_per_minute)
                    continue
                live = self.engine.applier.get_live(d.ref)
                if live is not None and foreign(live, self.engine.settings.source):
                    self._owned_elsewhere(d.ref, live)  # taken meanwhile: a heal would fight the other source
                    continue
                answer = self._apply(decode, d.path, data.get(d.path), dry_run=False)
                if answer is None:
                    d.next_heal = time.monotonic() + self.settings.interval
                    continue
                self.applied(d.ref, d.path, answer)
                metrics.APPLY_HEALS.inc()
                d.heals += 1
                d.healed = time.monotonic()
                d.next_heal = time.monotonic() + Backoff(self.settings.first_backoff, self.settings.interval).after(d.heals)
                log.info("healed %s", d.ref.display)
                if d.heals == 3:  # a fight: say so now, then once per interval (_report_lasting)
                    self._report(d)
                self.suspect(d.ref)  # cleared once seen clean; a fight brings it back with its backoff

    def _mode_moved(self) -> bool:
        """A switchover recorded another mode since the last round: its changes (a removed pause annotation has
        no owner to tell it from drift) are not healed back into the old mode; the next round applies the new."""
        now = read_mode(self.engine.cluster, self.engine.records)
        return now.recorded and (now.active, now.active_namespaces) != (self.mode.active, self.mode.active_namespaces)

    def _budget(self) -> bool:
        now = time.monotonic()
        self.heal_times = [t for t in self.heal_times if now - t < 60.0]
        if len(self.heal_times) >= self.settings.max_heals_per_minute:
            return False
        self.heal_times.append(now)
        return True

    def _decoder(self) -> Decoder:
        s, mode = self.engine.settings, self.mode
        return Decoder(s.maps, self.engine.validator, s.identities, finish=lambda o: hold(o, mode), source=s.source)

    def _read(self, paths: list[str]) -> dict[str, bytes]:
        """The repo's bytes of these paths at the followed commit (read here: the git reader is not shared)."""
        tree = self.engine.source.tree(self.commit)
        present = [p for p in paths if p in tree]
        return dict(zip(present, self.engine.source.read_blobs([tree[p] for p in present]), strict=True))

    def _apply(self, decode: Decoder, path: str, data: bytes | None, dry_run: bool) -> dict[str, Any] | None:
        """Apply (or dry-run) the repo's version of one object; None when that fails (logged, one line)."""
        if data is None:
            return None
        try:
            return self.engine.applier.apply_one(decode.decode(path, data), dry_run=dry_run)
        except Exception as exc:  # ApiError, a bad manifest: one line, the next pass tries again
            log.warning("drift: %s %s failed: %s", "checking" if dry_run else "healing", path,
                        " ".join(str(exc).split()))
            return None

    def _report_lasting(self) -> None:
        now = time.monotonic()
        self._recent = {r: d for r, d in self._recent.items() if now - d.healed <= self.settings.interval}
        for d in self.drifted.values():
            if now - d.reported >= self.settings.interval:
                self._report(d)

    def _report(self, d: Drifted) -> None:
        d.reported = time.monotonic()
        if d.heals >= 3:
            log.warning("drift %s (%s) keeps coming back: %d heals, fields %s, written by %s; healed at most once "
                        "per %.0fs", d.ref.display, d.path, d.heals, ", ".join(d.fields),
                        ", ".join(d.writers) or "unknown", self.settings.interval)
        else:
            log.warning("drift %s (%s) still: %s", d.ref.display, d.path, ", ".join(d.fields))

    # ---- strays ---------------------------------------------------------------------------------------------

    def _stray_loop(self) -> None:
        """A scan each interval, in its own thread: listing every kind never delays a heal."""
        while not self._stop.wait(self.settings.interval):
            if self.writer:
                continue
            try:
                self._scan_strays()
            except Exception as exc:  # the secondary is away: next interval
                log.warning("stray scan failed: %s", " ".join(str(exc).split()))
            with self._cond:
                self._cond.notify()

    def _scan_strays(self) -> None:
        """Objects of the repo's kinds, in its namespaces, that neither the repo nor the cluster made."""
        from kubedr.sanitize import skip_reason

        namespaces = {r.namespace for r in self.desired if r.namespace}
        found: dict[ObjectRef, str] = {}
        for group, kind in sorted({(r.group, r.kind) for r in self.desired if r.namespace}):
            resource = self.engine.cluster.resource_of(ObjectRef(group, kind, "", ""))
            if resource is None:
                continue
            # only what no source applied: the others' objects are neither listed nor parsed
            for item in (i for items, _ in pages(self.engine.cluster, resource, label_selector=f"!{MANAGED_LABEL}",
                                                 page_size=LIST_PAGE) for i in items):
                meta = item.get("metadata") or {}
                if meta.get("namespace") not in namespaces or (meta.get("labels") or {}).get(MANAGED_LABEL):
                    continue
                ref = ref_of(item)
                if ref in self.desired or skip_reason(item) is not None:
                    continue
                found[ref] = ", ".join(sorted({e.get("manager", "?") for e in meta.get("managedFields") or []}))
        for ref in found.keys() - self.strays.keys():
            log.warning("stray %s: in a namespace kubedr manages, not in the repo (made by %s); left in place",
                        ref.display, found[ref] or "unknown")
        if found != self.strays:
            self.strays = found
            self._dirty = True

    # ---- reporting ------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        """The drift keys of the kubedr-status record."""
        drifted = sorted(self.drifted.values(), key=lambda d: d.path)
        return {
            "driftCount": str(len(drifted)),
            "drift": json.dumps([d.as_data() for d in drifted[:200]], indent=1),
            "strayCount": str(len(self.strays)),
            "strays": json.dumps([{"object": r.display, "madeBy": m} for r, m in sorted(self.strays.items())][:200],
                                 indent=1),
            "heal": "off (this cluster is or was the writer)" if self.writer else _heal_text(self.engine.settings.heal,
                                                                                           self.mode),
            "driftWatched": str(len(self.baselines)),  # objects with a baseline: being compared
            "driftStarted": str(round(self.started)),  # when this applier's watch started (unix time)
        }

    def _publish(self) -> None:
        if not self._dirty or not self.commit:  # nothing followed yet: the record keeps what it says
            return
        self._dirty = False
        metrics.APPLY_DRIFTED.set(len(self.drifted))
        metrics.APPLY_STRAYS.set(len(self.strays))
        data = self.snapshot()
        text = json.dumps(data, sort_keys=True)
        if text != self._published:
            self.engine.records.put(self.engine.cluster, STATUS_CONFIGMAP, data, manager=DRIFT_MANAGER)
            self._published = text


def _heal_text(heal: bool | None, mode: Mode) -> str:
    if heal is not None:
        return "on" if heal else "off"
    if mode.active:
        return "off (active)"
    return "on" + (f" (off in active {' '.join(sorted(mode.active_namespaces))})" if mode.active_namespaces else "")

