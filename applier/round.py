"""One round: fetch -> decode -> plan (order, prune) -> server-side apply -> record; and the loop of rounds.

A round applies the newest commit there is when it starts; commits that land meanwhile go into the next
round (group commit, as on the exporter side). State lives on the secondary (inventory, status, mode) and
in Git, so killing the applier at any instant and starting it again converges.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3

from kubedr import git, metrics
from kubedr.apierrors import ApiError, NotFound
from kubedr.applier import history, order
from kubedr.applier.apply import STAGE_CHUNK, Action, Outcome, ServerSideApplier
from kubedr.applier.decode import Decoder, Validator, map_ref
from kubedr.applier.fetch import FetchError, Source
from kubedr.applier.holding import Holds
from kubedr.applier.images import Index
from kubedr.applier.inventory import Inventory, guard
from kubedr.applier.owners import Owners, Refusal
from kubedr.applier.policy import POLICY_PATH, PolicyError, Settings, merge, parse
from kubedr.applier.role import serving as writer_here
from kubedr.applier.serving import Serving
from kubedr.applier.sources import Records, open_records
from kubedr.applier.standby import Mode, hold, read_mode, record_mode, retire_jobs
from kubedr.applier.status import Failure, Status
from kubedr.applier.status import load as load_status
from kubedr.applier.status import save as save_status
from kubedr.applier.takeover import publish as publish_switchover
from kubedr.applier.trust import Gate, Untrusted
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Cluster
from kubedr.remote import redact
from kubedr.signing import SigningError

log = logging.getLogger("kubedr.applier")

GHOST_LINE = "inventory: %s is already gone from the cluster; forgetting it"
RETRY_AFTER = 10.0  # a daemon retries failed objects of an unchanged commit this often, not every poll


@dataclass
class Report:
    """What one round did."""

    commit: str
    applied: int = 0
    deleted: int = 0
    failures: list[Failure] = field(default_factory=list)
    would_apply: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)  # "recreated <kind ns/name> (...)" (dry run: "would ...")
    exempt: list[str] = field(default_factory=list)  # "<kind ns/name>: serves ..." (at primary replicas in standby)
    seconds: float = 0.0


class Engine:
    """Applies the repo to one secondary, round after round."""

    def __init__(self, cluster: Cluster, source: Source, settings: Settings, records: Records | None = None) -> None:
        self.cluster = cluster
        self.source = source
        self._records = records
        self.user = settings  # as the operator gave them
        self.settings = settings  # with the repo policy of the commit being applied merged in
        self._policy_failure: Failure | None = None
        self._policy_for = ""
        self.applier = ServerSideApplier(writer_of(cluster, settings.service_account), settings.concurrency,
                                         settings.dry_run, settings.source)
        self.owners = Owners(cluster, settings.source)
        self.refused: list[Refusal] = []  # objects of the last round another source owns
        self.validator: Validator | None = None
        self.retry_after = 0.0  # seconds before failed objects of an unchanged commit are tried again
        self._pinned: str | None = None
        self._mode_changed = False  # --active/--standby changed the recorded mode: apply everything again
        self._mode_recorded = False  # --active/--standby is recorded once; later rounds follow the record
        self.last_report: Report | None = None
        self.caught_up = False  # /readyz: the secondary holds the newest commit (or the pinned one)
        self.gate = Gate(source, settings.allowed_signers)
        self.untrusted: Untrusted | None = None  # the first commit refused by the gate, while it stands
        self.trust_anchor = ""  # policy mode: the commit whose policy's signers are in force (applier.trust)
        self.lock = threading.RLock()  # a round's applies, or a drift heal: never both at once
        self.drift: Any = None  # applier.drift.Drift, told of every apply and round
        self.serving = Serving()
        self.images = Index()  # the images the repo's workloads need, recorded with the status
        self.cluster_name: str | None = None  # --cluster-name: a writer applies nothing (applier/role.py)
        self.writes_branch = False  # the last round found this cluster the writer (or not yet demoted)
        self.decision = history.Decision(history.FRESH)  # how the head relates to what was applied (applier.history)
        self.held: history.Held | None = None  # a rollback or rewrite held until a person acknowledges it
        self.head_seen = ""  # the branch head (or pinned commit) the last poll saw
        self.fully_applied = ""  # the last commit applied with no failure
        self._unapplied: tuple[str, str, float] = ("", "", 0.0)  # (head, applied, since) of the last poll
        self.holds = Holds((), cluster)  # the standby rules; renewed when the policy's change

    def close(self) -> None:
        self.applier.close()
        self.source.close()

    @property
    def records(self) -> Records:
        """The source's records on the secondary (those of a kubedr before sources moved to them, unless dry run)."""
        if self._records is None:
            self._records = open_records(self.cluster, self.settings.source, write=not self.settings.dry_run)
        return self._records

    # ---- deciding ----------------------------------------------------------------------------------------

    def target(self) -> str | None:
        """The commit to apply: the pinned --revision/--at one, or the branch head."""
        s = self.settings
        if s.revision or s.at:
            if self._pinned is None:
                self._pinned = self.source.resolve(s.revision) if s.revision else self.source.at(str(s.at))
            return self._pinned
        return self.source.head()

    @property
    def _base_mode(self) -> Mode:
        if self.holds.policy_rules != self.settings.standby_rules:
            self.holds = Holds(self.settings.standby_rules, self.cluster)
        return Mode(replicas=self.settings.standby_replicas, namespace_replicas=dict(self.settings.namespace_replicas),
                    holds=self.holds)

    def _effective(self, target: str) -> Settings:
        """The operator's settings, with the policy file of the commit filling what they left open."""
        if self._policy_for == target:
            return self.settings
        self._policy_for = target
        self._policy_failure = None
        blob = self.source.file(target, POLICY_PATH)
        if blob is None:
            return self.user
        try:
            return merge(self.user, parse(next(iter(self.source.read_blobs([blob])))))
        except PolicyError as exc:
            log.error("%s: %s (ignored)", POLICY_PATH, exc)
            self._policy_failure = Failure(POLICY_PATH, f"{exc} (policy ignored)")
            return self.user

    def mode(self) -> Mode:
        """The mode for this round: the recorded one, after recording an explicit --active/--standby once."""
        override = None if self._mode_recorded else self.user.mode_override
        base = self._base_mode
        if override:
            wanted = Mode(active=override == "active", replicas=base.replicas,
                          namespace_replicas=dict(base.namespace_replicas), holds=base.holds)
            if not self.settings.dry_run:
                current = read_mode(self.cluster, self.records, base)
                if current.fingerprint() != wanted.fingerprint() or not current.recorded:
                    record_mode(self.cluster, wanted, f"kubedr apply --{override}", self.records)
                    self._mode_changed = True
                self._mode_recorded = True
            return wanted
        mode = read_mode(self.cluster, self.records, base)
        if not mode.recorded and not self.settings.default_standby:
            mode.active = True
        return mode

    def mode_for(self, target: str) -> Mode:
        """The mode, with the workloads serving webhooks and aggregated APIs of this commit exempt from standby."""
        self.settings = self._effective(target)  # the commit's policy: its standby replicas and rules
        mode = self.mode()
        if not mode.active:
            mode.exempt = self.serving.exempt(self.source, target, self.settings.maps)
        return mode

    def fingerprint(self, mode: Mode) -> str:
        """Settings that change what is applied for an unchanged file; a change means apply everything."""
        raw = self.settings.maps.fingerprint() + mode.fingerprint() + self.settings.source
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def step(self) -> Report | None:
        """Run a round when there is something to do (a new commit, failures to retry, new settings)."""
        head = self.target()
        if head is None:
            log.info("repo %s has no commits on %s yet", redact(self.settings.repo), self.settings.branch)
            return None
        status = load_status(self.cluster, self.records)
        self.head_seen, self.fully_applied = head, status.fully_applied if status else ""
        decision = self._history(head, status)
        self.note_poll()  # before the round: a round that hangs leaves the age counting from what is pending
        if decision.held is not None:
            return None
        if status is not None:
            publish_switchover(status.switchover)
        target = self._admit(head, status, decision)
        if target is None:
            return None
        self.settings = self._effective(target)
        if self.validator is None and self.settings.validate:
            self.validator = Validator(self.cluster.version())
        mode = self.mode_for(target)
        fp = self.fingerprint(mode)
        if self._mode_changed:
            # a switchover may have moved the workloads since the last round recorded this fingerprint; with
            # no status yet, this round applies everything anyway (and must not be followed by a second one)
            if status is not None:
                status.settings = ""
            self._mode_changed = False
        if (status is not None and status.commit == target and status.settings == fp and not self.settings.dry_run
                and decision.kind in (history.FORWARD, history.RESTORE)):
            self._follow(target, status, mode)
            if not mode.active and not self.holds.reported:  # a restart with nothing to apply still says it
                self._report_holds(mode, self._desired(target)[0])
            if not status.failures or time.time() - status.applied_at < self.retry_after:
                return None
        with self.lock:  # a drift heal waits for the round, never for the polling above
            return self.run_round(target, status, mode, fp)

    def _anchor(self, status: Status | None, decision: history.Decision) -> str | None:
        """The recorded trust anchor, when it belongs to this repo (a re-pointed source anchors afresh)."""
        anchor = status.trust_anchor if status else ""
        if not anchor or decision.fresh or decision.kind == history.FRESH:
            return None
        return anchor if decision.kind == history.FORWARD or self.source.has(anchor) else None

    def _decide(self, head: str, status: Status | None) -> history.Decision:
        """How head relates to what this secondary applied (nothing is written)."""
        s = self.settings
        anchor = status.trust_anchor or None if status else None
        return history.decide(self.source, status, s.repo, s.branch, head, pinned=bool(s.revision or s.at),
                              own=s.own_repo, gate_on=lambda: self.gate.is_on(anchor),
                              acks=lambda shas: self.gate.acknowledgements(shas, anchor))

    def _history(self, head: str, status: Status | None) -> history.Decision:
        """Decide, then say a re-point, a hold or its release once: log, /metrics, the status record."""
        decision = self._decide(head, status)
        if decision.line and decision.line != self.decision.line:
            log.warning("%s", decision.line)
        held = decision.held
        if held is not None and (self.held is None or self.held.commit != held.commit):
            log.error("%s", held.line())
            metrics.APPLY_HELD_TOTAL.inc()
        self.decision, self.held = decision, held
        metrics.APPLY_HELD.clear()
        if held is not None:
            metrics.APPLY_HELD.labels(held.commit, held.newest, held.reason).set(1)
        data = held.to_data() if held else {}
        # an acknowledged hold stays recorded until the round applying the head records it (_record)
        if (not self.settings.dry_run and decision.kind != history.ACCEPTED and (status.held if status else {}) != data
                and (status is not None or held is not None)):
            record = status or Status(repo=history.shown(self.settings.repo), branch=self.settings.branch)
            record.held = data
            save_status(self.cluster, record, self.records)
        return decision

    def _follow(self, target: str, status: Status, mode: Mode) -> None:
        """Nothing new to apply: drift follows the recorded commit, found to be the head in this run."""
        if self.drift is None or self.drift.commit == target:
            return
        with self.lock:
            desired, _, _ = self._desired(target)
            self.drift.round_done(target, desired, mode, {f.path for f in status.failures})

    def _desired(self, target: str) -> tuple[dict[ObjectRef, str], dict[str, ObjectRef], list[Failure]]:
        """(object -> path, path -> object, refused entries and paths that name no object) of a commit, after the
        maps; each problem logged once."""
        objects = self.source.objects(target)
        desired: dict[ObjectRef, str] = {}
        path_ref: dict[str, ObjectRef] = {}
        failures = [Failure(path, reason) for path, reason in objects.problems]
        for path, ref in objects.refs.items():
            mapped = map_ref(ref, self.settings.maps)
            desired[mapped] = path
            path_ref[path] = mapped
        return desired, path_ref, failures

    def preview(self, head: str) -> tuple[str | None, list[str]]:
        """The commit a round would apply now, and why it is not the head (a hold, an untrusted commit); for
        `kubedr diff`, which writes nothing."""
        status = load_status(self.cluster, self.records)
        decision = self._decide(head, status)
        if decision.held is not None:
            return None, [decision.held.line()]
        gated = self.gate.admit(decision.base, head, self._anchor(status, decision))
        return gated.target, [gated.untrusted.line()] if gated.untrusted else []

    def _admit(self, target: str, status: Status | None, decision: history.Decision) -> str | None:
        """The newest commit the trust gate lets through; a newly refused commit is logged, counted, recorded."""
        gated = self.gate.admit(decision.base, target, self._anchor(status, decision))
        self.trust_anchor = gated.anchor or ""
        if gated.untrusted != self.untrusted:
            if gated.untrusted is not None:
                log.error("%s", gated.untrusted.line())
                metrics.APPLY_UNTRUSTED_TOTAL.inc()
            elif self.untrusted is not None:
                log.info("untrusted commit %s acknowledged; applying again", self.untrusted.sha[:12])
            self.untrusted = gated.untrusted
        metrics.APPLY_UNTRUSTED.clear()
        if gated.untrusted is not None:
            metrics.APPLY_UNTRUSTED.labels(gated.untrusted.sha, gated.untrusted.signer).set(1)
        data = _untrusted_data(gated.untrusted)
        if not self.settings.dry_run and (status.untrusted if status else {}) != data:
            record = status or Status(repo=history.shown(self.settings.repo), branch=self.settings.branch)
            record.untrusted = data
            save_status(self.cluster, record, self.records)  # the anchor moves only with an applied round (_record)
        return gated.target

    # ---- one round -------------------------------------------------------------------------------------------

    def run_round(self, target: str, status: Status | None, mode: Mode, fp: str) -> Report:
        """Apply the tree of one commit (only what changed since the last round), prune, record."""
        started = time.monotonic()
        s = self.settings
        report = Report(commit=target, exempt=[f"{r.display}: {why}" for r, why in sorted(mode.exempt.items())
                                               if not mode.is_active(r.namespace)])
        tree = self.source.tree(target)
        mode.holds.forget()  # CRDs are read again: one may have gained a scale subresource
        desired, path_ref, unnamed = self._desired(target)
        for f in unnamed:
            log.error("%s", f)
        failures: list[Failure] = [self._policy_failure] if self._policy_failure else []
        failures += unnamed

        todo, self.refused = self.owners.claim(self._paths_to_apply(target, status, fp, path_ref), path_ref)
        failures += [Failure(r.path, r.reason()) for r in self.refused]
        _count_refused(self.refused)
        inventory = Inventory(self.cluster, self.records).load()
        before = set(inventory.refs)
        inventory.refs |= {path_ref[p] for p in todo}
        if not s.dry_run and inventory.refs != before:
            inventory.save()  # remember before applying: a crash never leaves an object nobody knows

        decoder = Decoder(s.maps, self.validator, s.identities, finish=lambda o: hold(o, mode), source=s.source)
        blobs: dict[str, bytes] = {}  # read a chunk at a time, just before it is applied

        new_namespaces = {path_ref[p].name for p in todo if path_ref[p].kind == "Namespace" and not
                          path_ref[p].group}

        def apply_path(path: str) -> None:  # the server's answer is not kept: 100k of them would fill memory
            obj = decoder.decode(path, blobs.pop(path))
            try:
                done = self.applier.apply_recreating(obj, s.recreate)
            except NotFound as exc:
                # a dry run cannot create the namespace its objects go into; the server answers 404 for them
                ns = path_ref[path].namespace
                if s.dry_run and ns in new_namespaces and f'"{ns}"' in str(exc):
                    return
                raise
            if self.drift is not None and done.live and not s.dry_run:
                self.drift.applied(path_ref[path], path, done.live)
            if done.action is not Action.APPLIED:
                line = f"{done.action} {path_ref[path]} (immutable field changed)"
                report.recreated.append(line)
                log.warning("%s", line)
                if not s.dry_run:
                    metrics.APPLY_OBJECTS.labels("recreate").inc()

        for stage, paths in order.plan((path_ref[p], p) for p in todo):
            outcomes = []
            for i in range(0, len(paths), STAGE_CHUNK):
                part = paths[i:i + STAGE_CHUNK]
                blobs.update(zip(part, self.source.read_blobs([tree[p] for p in part]), strict=True))
                outcomes += self.applier.run_stage(part, apply_path)
            self._count(outcomes, report, failures, "apply")
            if stage == "crds":
                names = [path_ref[o.item].name for o in outcomes if not o.error]
                for name in self.applier.wait_established(names):
                    failures.append(Failure(desired[ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition",
                                                              "", name)], "CRD not Established in time"))
        report.would_apply = sorted(todo) if s.dry_run else []

        if not s.dry_run:
            self._retire_jobs(sorted(inventory.refs - desired.keys()), mode, failures)
        if s.prune:
            self._prune(inventory, desired, report, failures)

        report.failures = failures
        report.seconds = time.monotonic() - started
        if not mode.active:
            self._report_holds(mode, desired)
        if not s.dry_run:
            self._record(target, status, fp, mode, failures)
            if self.drift is not None:
                self.drift.round_done(target, desired, mode, {f.path for f in failures})
        self.last_report = report
        log.info("%s %s: %d applied, %d deleted, %d failed in %.2fs (%s)%s",
                 "dry run of" if s.dry_run else "applied", target[:12], report.applied, report.deleted,
                 len(failures), report.seconds, mode.name,
                 f"; {len(report.recreated)} recreated" if report.recreated else "")
        return report

    def _paths_to_apply(self, target: str, status: Status | None, fp: str,
                        path_ref: dict[str, ObjectRef]) -> list[str]:
        """Everything on first start, after a restore or a settings change; otherwise the diff + retries."""
        s = self.settings
        base = self.decision.base
        if status is None or not base or status.settings != fp or s.revision or s.at:
            return sorted(path_ref)
        changes = self.source.changes(base, target)
        if changes is None:
            log.warning("last applied commit %s is not in the repo history; applying everything", base[:12])
            return sorted(path_ref)
        todo = {c.path for c in changes if c.status == "A" and c.path in path_ref}
        todo |= {f.path for f in status.failures if f.path in path_ref}
        return sorted(todo)

    def _report_holds(self, mode: Mode, desired: dict[ObjectRef, str]) -> None:
        try:
            mode.holds.log_report((r.group, r.kind) for r in desired)
        except (ApiError, urllib3.exceptions.HTTPError) as exc:
            log.warning("standby holds: cannot read the CRDs for the report: %s", " ".join(str(exc).split()))

    def _retire_jobs(self, gone: list[ObjectRef], mode: Mode, failures: list[Failure]) -> None:
        try:
            for name in retire_jobs(self.applier.cluster, gone, mode, self.settings.source):
                log.info("%s left the repo (finished or deleted on the primary): kept suspended at switchover", name)
        except ApiError as exc:
            failures.append(Failure("(jobs)", f"marking Jobs that left the repo: {exc}"))

    def _prune(self, inventory: Inventory, desired: dict[ObjectRef, str], report: Report,
               failures: list[Failure]) -> None:
        gone = self._not_owned_elsewhere(inventory, sorted(inventory.refs - desired.keys()))
        if not gone:
            return
        s = self.settings
        force = s.force_prune and not self.decision.fresh  # a re-pointed source prunes only within the guard
        verdict = guard(len(gone), len(inventory.refs), force, s.prune_max_fraction, s.prune_max_objects)
        if not verdict.allowed:  # objects deleted out of band must not count: only the ones that exist do
            gone = self._drop_ghosts(inventory, gone, failures)
            verdict = guard(len(gone), len(inventory.refs), force, s.prune_max_fraction, s.prune_max_objects)
        if not verdict.allowed:
            log.error("%s", verdict.reason)
            metrics.APPLY_PRUNE_REFUSED.inc()
            failures.append(Failure("(prune)", verdict.reason))
            return
        for _, refs in order.plan_deletes((r, r) for r in gone):
            outcomes = self.applier.run_stage(refs, self.applier.delete_one)
            for o in outcomes:
                if o.error:
                    failures.append(Failure(o.item.path, f"delete failed: {o.error}"))
                    metrics.APPLY_FAILURES.labels(o.reason).inc()
                    log.error("delete failed: %s: %s", o.item.path, o.error)
                    continue
                if o.result is Action.FOREIGN:
                    log.warning("not deleting %s: it does not carry kubedr's label", o.item.display)
                elif o.result is Action.OTHER_SOURCE:  # taken since _not_owned_elsewhere looked
                    log.warning("not deleting %s: another source owns it now; forgetting it", o.item.display)
                elif o.result is Action.CLUSTER_OWNED:
                    log.warning("not deleting %s: the cluster's control plane makes it for itself; forgetting it",
                                o.item.display)
                elif o.result is Action.GONE:
                    log.info(GHOST_LINE, o.item.display)
                elif o.result is Action.DELETED:
                    report.deleted += 1
                    report.would_delete.append(o.item.path)
                    metrics.APPLY_OBJECTS.labels("delete").inc()
                inventory.refs.discard(o.item)
            if any(r.kind == "CustomResourceDefinition" for r in refs):
                self.cluster.forget()
        if not self.settings.dry_run:
            inventory.save()

    def _not_owned_elsewhere(self, inventory: Inventory, gone: list[ObjectRef]) -> list[ObjectRef]:
        """The objects to prune that no other source owns; the others leave the inventory (one line each)."""
        taken = self.owners.others(gone) if gone else {}
        for ref, owner in sorted(taken.items()):
            log.warning("not pruning %s: source %s owns it now; forgetting it", ref.display, owner)
            metrics.APPLY_OWNERSHIP_REFUSALS.inc()
            inventory.refs.discard(ref)
        if taken and not self.settings.dry_run:
            inventory.save()
        return [r for r in gone if r not in taken]

    def _drop_ghosts(self, inventory: Inventory, gone: list[ObjectRef], failures: list[Failure]) -> list[ObjectRef]:
        """Inventory entries whose objects no longer exist leave it (one line each); the ones that exist remain."""
        outcomes = self.applier.run_stage(gone, self.applier.exists)
        ghosts = [o.item for o in outcomes if not o.error and not o.result]
        for o in outcomes:
            if o.error:  # unknown: counted as existing, so the guard errs on the safe side
                failures.append(Failure(o.item.path, f"checking whether it still exists: {o.error}"))
        for ref in ghosts:
            log.info(GHOST_LINE, ref.display)
            inventory.refs.discard(ref)
        if ghosts and not self.settings.dry_run:
            inventory.save()
        dropped = set(ghosts)
        return [r for r in gone if r not in dropped]

    def _count(self, outcomes: list[Outcome[str, None]], report: Report, failures: list[Failure], action: str) -> None:
        for o in outcomes:
            if o.error:
                failures.append(Failure(o.item, o.error))
                metrics.APPLY_FAILURES.labels(o.reason).inc()
                log.error("%s failed: %s: %s", action, o.item, o.error)
            else:
                report.applied += 1
                metrics.APPLY_OBJECTS.labels(action if not self.settings.dry_run else "dry-run").inc()

    def _record(self, target: str, status: Status | None, fp: str, mode: Mode, failures: list[Failure]) -> None:
        commit_time = self.source.commit_time(target)
        prev = status or Status()
        now = time.time()
        s = self.settings
        newest = prev.newest if s.own_repo else history.remember(
            prev.newest, s.repo, s.branch, self.decision.newest_after(self.source, target))
        new = Status(commit=target, commit_time=commit_time, applied_at=now, failures=failures, settings=fp,
                     repo=history.shown(s.repo), branch=s.branch, mode=mode.name, newest=newest,
                     exempt=[f"{r.display}: {why}" for r, why in sorted(mode.exempt.items())
                             if not mode.is_active(r.namespace)],
                     images=self.images.images(self.source, target, self.settings.maps),
                     fully_applied=prev.fully_applied, fully_applied_time=prev.fully_applied_time, lag=prev.lag,
                     untrusted=_untrusted_data(self.untrusted), trust_anchor=self.trust_anchor,
                     owned_elsewhere=[r.to_data() for r in self.refused])
        if self.decision.kind == history.ACCEPTED:
            log.info("%s applied; the hold is released", target[:12])
        self.fully_applied = new.fully_applied
        if not failures:
            new.fully_applied, new.fully_applied_time = target, commit_time
            self.fully_applied = target
            if target != prev.fully_applied:
                new.lag = max(0.0, now - commit_time)
            metrics.APPLY_LAST_TIME.set(now)
            metrics.APPLY_LAST_COMMIT.clear()
            metrics.APPLY_LAST_COMMIT.labels(target).set(1)
            metrics.APPLY_LAG.set(max(0.0, now - commit_time))
            metrics.APPLY_LAG_HIST.observe(max(0.0, now - commit_time))
        save_status(self.cluster, new, self.records)

    def note_poll(self) -> None:
        """A poll went through: the age gauge counts from the oldest commit it found not applied yet, or from now
        when none is (read when scraped, so it grows while polls fail or hang)."""
        metrics.unapplied_since(self._unapplied_since(time.time()))

    def _unapplied_since(self, now: float) -> float:
        head, applied = self.head_seen, self.fully_applied
        if not head or head == applied:
            return now
        if self._unapplied[:2] == (head, applied):
            return self._unapplied[2]
        since = self.held.since if self.held else now  # not after what was applied: counted from the hold
        if applied and self.source.has(applied) and self.source.is_ancestor(applied, head):
            oldest = self.source.oldest_between(head, applied)
            if oldest:
                since = self.source.commit_time(oldest)
        self._unapplied = (head, applied, since)
        return since


def writer_of(cluster: Cluster, service_account: str | None) -> Cluster:
    """The cluster as the source writes to it: through its ServiceAccount (NAMESPACE/NAME) when it has one."""
    if not service_account:
        return cluster
    namespace, _, name = service_account.partition("/")
    return cluster.as_user(f"system:serviceaccount:{namespace}:{name}")


def _count_refused(refused: list[Refusal]) -> None:
    metrics.APPLY_OWNED_ELSEWHERE.clear()
    for r in refused:
        metrics.APPLY_OWNED_ELSEWHERE.labels(r.owner).inc()
    metrics.APPLY_OWNERSHIP_REFUSALS.inc(len(refused))


def _untrusted_data(u: Untrusted | None) -> dict[str, str]:
    return {"commit": u.sha, "signer": u.signer, "reason": u.reason} if u else {}


def loop(engine: Engine, interval: float, once: bool, stop: threading.Event | None = None,
         on_round: Callable[[Report], None] | None = None) -> int:
    """Round after round until stopped; with once, one round. Exit code 1 when the last round had failures."""
    stop = stop or threading.Event()
    metrics.unapplied_since(time.time())  # nothing is known to be applied yet
    if not once:
        engine.source.watch()
        engine.retry_after = max(engine.retry_after, RETRY_AFTER)
    failed = False
    while not stop.is_set():
        try:
            engine.writes_branch = writer_here(engine.cluster, engine.cluster_name, engine.source,
                                               record=not engine.settings.dry_run, records=engine.records)
            if engine.writes_branch:
                report = None
                metrics.unapplied_since(time.time())  # the writer applies nothing: nothing is pending
            else:
                report = engine.step()
                engine.note_poll()
            engine.caught_up = engine.untrusted is None and engine.held is None  # held: behind the branch
            if report is not None:
                failed = bool(report.failures)
                if on_round:
                    on_round(report)
            failed = failed or engine.untrusted is not None or engine.held is not None
        except (FetchError, git.GitError, ApiError, OSError, urllib3.exceptions.HTTPError, SigningError) as exc:
            if stop.is_set():  # SIGTERM killed the round's git commands: a stop, not a failure
                log.info("round interrupted by the stop: %s", " ".join(str(exc).split()))
                break
            log.error("round failed: %s", " ".join(str(exc).split()))
            failed = True
        except Exception as exc:  # urllib3 connection errors and the like: retried next round
            if once:
                raise
            log.exception("round failed: %s", exc)
            failed = True
        if once:
            break
        try:
            engine.source.compact()
        except git.GitError as exc:  # the next fetch and the next check go on regardless
            log.warning("compacting the mirror: %s", exc)
        engine.source.wait(interval, stop)
    return 1 if failed else 0
