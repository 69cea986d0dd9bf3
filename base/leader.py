"""Leader election on a coordination.k8s.io/v1 Lease, so two replicas can run with one active.

The algorithm is client-go's (tools/leaderelection): a candidate writes holderIdentity,
leaseDurationSeconds, acquireTime, renewTime and leaseTransitions into the Lease with optimistic
concurrency (resourceVersion). Expiry is judged on the candidate's own monotonic clock from the moment
it last saw the record change, never by comparing renewTime with local wall time, so clock skew between
nodes does not matter. The leader renews every retry period; if it cannot renew within the renew
deadline (shorter than the lease duration) it steps down before anyone else may acquire. On a clean
exit it releases the Lease (empty holder, duration 1 s) so the spare takes over at once.

    with leader.elected(api, "kubedr-system", "kubedr-exporter", identity) as lead:
        run_until(lead.lost)          # lead.lost is set when leadership is lost
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from kubedr import metrics, shutdown
from kubedr.apierrors import ApiError, NotFound
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.leader")

LEASE_API = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class Timing:
    """client-go's defaults: a 15 s lease, renewed every 2 s, given up after 10 s without a renewal."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")


def micro_time(ts: float | None = None) -> str:
    """A metav1.MicroTime: RFC 3339 in UTC with microseconds, as the API server stores it."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: str | None) -> float | None:
    """Unix time of a MicroTime/Time string, or None."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def default_identity() -> str:
    """The pod name in a cluster (hostname), plus the pid so two local processes differ."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


class LeaderElector:
    """One candidate for one Lease; not thread-safe across callers, run it from one thread."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, identity: str,
                 timing: Timing | None = None) -> None:
        self.api = Cluster(_without_retries(api_client))
        self.namespace, self.name, self.identity = namespace, name, identity
        self._leases = f"/apis/{LEASE_API}/namespaces/{namespace}/leases"
        self.timing = timing or Timing()
        self._lease: dict[str, Any] | None = None      # the last Lease object read or written
        self._observed: dict[str, Any] = {}             # its spec (the election record)
        self._observed_at = 0.0                         # monotonic time the record last changed
        self._lock = threading.Lock()
        self._lease_label = f"{namespace}/{name}"
        self.last_contact = 0.0                         # monotonic time the API last answered us
        self._until: float | None = None                # while renewing: every call ends by the deadline
        self.refused: str = ""                          # why the Lease cannot be created at all (no namespace)
        self.once = False  # a one-shot run: an API server that does not answer ends the wait, not retried
        metrics.LEADER.labels(lease=self._lease_label).set(0)

    # -- what a caller may ask -------------------------------------------------------------
    @property
    def leader(self) -> str:
        """The last observed holder ('' when none)."""
        with self._lock:
            return self._observed.get("holderIdentity") or ""

    def is_leader(self) -> bool:
        """True if the last observed record names this candidate."""
        return self.leader == self.identity

    def healthy_spare(self) -> bool:
        """Waiting, not leading, and the API answered within one lease duration: ready to take over."""
        return not self.is_leader() and time.monotonic() - self.last_contact < self.timing.lease_duration

    def lease_valid(self, now: float | None = None) -> bool:
        """The observed record has not expired on our clock."""
        with self._lock:
            duration = int(self._observed.get("leaseDurationSeconds") or 0)
            return self._observed_at + duration > (time.monotonic() if now is None else now)

    # -- one attempt -----------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True when we hold the Lease afterwards."""
        wall = micro_time()
        record = {"holderIdentity": self.identity,
                  "leaseDurationSeconds": max(1, int(self.timing.lease_duration)),
                  "acquireTime": wall, "renewTime": wall}
        # 1. fast path: the leader updates the object it last saw, trusting its resourceVersion.
        if self.is_leader() and self.lease_valid() and self._lease is not None:
            record["acquireTime"] = self._observed.get("acquireTime") or wall
            record["leaseTransitions"] = int(self._observed.get("leaseTransitions") or 0)
            if self._update(record):
                return True
        # 2. read (or create) the Lease.
        try:
            current = self._read()
        except NotFound:
            record["leaseTransitions"] = 0
            return self._create(record)
        except ApiError as exc:
            log.warning("lease %s/%s: read failed: %s", self.namespace, self.name, _reason(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a network error is one failed round, not a crash
            if self.once:
                self.refused = f"lease {self.namespace}/{self.name} cannot be read: {exc}"
            else:
                log.warning("lease %s/%s: read failed: %s", self.namespace, self.name, exc)
            return False
        spec = dict(current.get("spec") or {})
        self._lease = current
        if spec != self._observed:
            self._set_observed(spec)
        # 3. held by someone else and not expired on our clock: wait.
        if spec.get("holderIdentity") and self.lease_valid() and not self.is_leader():
            return False
        # 4. take over (count a transition) or renew through the slow path.
        if self.is_leader():
            record["acquireTime"] = spec.get("acquireTime") or wall
            record["leaseTransitions"] = int(spec.get("leaseTransitions") or 0)
        else:
            record["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        return self._update(record)

    def release(self) -> bool:
        """Give the Lease up if we hold it: empty holder, 1 s duration, so a spare acquires at once."""
        if not self.is_leader() or self._lease is None:
            return True
        wall = micro_time()
        record = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": wall, "renewTime": wall,
                  "leaseTransitions": int(self._observed.get("leaseTransitions") or 0)}
        if not self._update(record):
            log.warning("lease %s/%s: release failed; it will expire instead", self.namespace, self.name)
            return False
        log.info("lease %s/%s: released by %s", self.namespace, self.name, self.identity)
        self._report("released")
        return True

    # -- loops -----------------------------------------------------------------------------
    def acquire(self, stop: threading.Event) -> bool:
        """Block until we hold the Lease (True) or stop is set (False)."""
        log.info("lease %s/%s: %s is waiting to lead", self.namespace, self.name, self.identity)
        last_leader = None
        while not stop.is_set():
            acquired = self.try_acquire_or_renew()
            if self.refused:
                raise LeaseUnavailable(self.refused)
            if acquired:
                log.info("lease %s/%s: %s became leader", self.namespace, self.name, self.identity)
                self._report("acquired")
                return True
            if self.leader != last_leader:
                last_leader = self.leader
                log.info("lease %s/%s: current leader is %s", self.namespace, self.name, last_leader or "nobody")
            stop.wait(self.timing.retry_period)
        return False

    def renew(self, stop: threading.Event) -> bool:
        """Renew every retry period until stop is set (True) or leadership is lost (False)."""
        try:
            return self._renew_loop(stop)
        finally:
            self._until = None

    def _renew_loop(self, stop: threading.Event) -> bool:
        while not stop.wait(self.timing.retry_period):
            deadline = self._until = time.monotonic() + self.timing.renew_deadline
            while not self.try_acquire_or_renew():
                if self.leader and not self.is_leader():
                    log.error("lease %s/%s: taken over by %s", self.namespace, self.name, self.leader)
                    self._report("lost")
                    return False
                if time.monotonic() + self.timing.retry_period >= deadline:
                    log.error("lease %s/%s: not renewed within %.1fs; stepping down",
                              self.namespace, self.name, self.timing.renew_deadline)
                    self._report("lost")
                    return False
                if stop.wait(self.timing.retry_period):
                    return True
        return True

    def _report(self, event: str) -> None:
        metrics.LEADER.labels(lease=self._lease_label).set(1 if event == "acquired" else 0)
        metrics.LEADER_TRANSITIONS.labels(lease=self._lease_label, event=event).inc()

    # -- API calls -------------------------------------------------------------------------
    def _timeout(self) -> float:
        """Per-request timeout; while renewing, never past the renew deadline (client-go's context timeout)."""
        timeout = max(self.timing.retry_period, self.timing.renew_deadline / 2)
        if self._until is not None:
            timeout = min(timeout, max(0.05, self._until - time.monotonic()))
        return timeout

    def _read(self) -> dict[str, Any]:
        try:
            lease: dict[str, Any] = self.api.request("GET", f"{self._leases}/{self.name}", timeout=self._timeout())
        except ApiError:
            self.last_contact = time.monotonic()
            raise
        self.last_contact = time.monotonic()
        return lease

    def _create(self, record: dict[str, Any]) -> bool:
        body = {"apiVersion": LEASE_API, "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": record}
        try:
            created = self.api.request("POST", self._leases, body, timeout=self._timeout())
        except NotFound as exc:  # no such namespace (or no coordination.k8s.io): waiting cannot help
            self.last_contact = time.monotonic()
            self.refused = (f"lease {self.namespace}/{self.name} cannot be created: {exc} (create the namespace, or "
                            "give --leader-election-namespace)")
            return False
        except Exception as exc:  # noqa: BLE001 - AlreadyExists when another candidate won the race
            self._answered(exc)
            log.info("lease %s/%s: create failed: %s", self.namespace, self.name, _reason(exc))
            return False
        self.last_contact = time.monotonic()
        self._lease = created
        self._set_observed(dict(created.get("spec") or record))
        return True

    def _update(self, record: dict[str, Any]) -> bool:
        assert self._lease is not None
        body = dict(self._lease)
        body["spec"] = {**(self._lease.get("spec") or {}), **record}
        try:
            replaced = self.api.request("PUT", f"{self._leases}/{self.name}", body, timeout=self._timeout())
        except Exception as exc:  # noqa: BLE001 - a 409 means someone else wrote first
            self._answered(exc)
            log.debug("lease %s/%s: update failed: %s", self.namespace, self.name, _reason(exc))
            return False
        self.last_contact = time.monotonic()
        self._lease = replaced
        self._set_observed(dict(replaced.get("spec") or body["spec"]))
        return True

    def _answered(self, exc: Exception) -> None:
        if isinstance(exc, ApiError):
            self.last_contact = time.monotonic()

    def _set_observed(self, spec: dict[str, Any]) -> None:
        with self._lock:
            self._observed = spec
            self._observed_at = time.monotonic()


def _without_retries(api_client: client.ApiClient) -> client.ApiClient:
    """The same cluster and credentials, but no urllib3 retries: a renewal attempt must fail fast, not hold
    the Lease past the renew deadline while it retries a dead connection."""
    conf = copy.copy(api_client.configuration)
    conf.retries = 0
    return client.ApiClient(conf)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status} {exc.reason or exc}"
    return str(exc)


class Leadership:
    """Handed to the elected block: `lost` is set when the Lease is lost, `stop()` ends the term."""

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stop(self) -> None:
        """End renewing (and release on exit from the block)."""
        self._stop.set()

    def _renew(self, on_lost: Callable[[], None] | None) -> None:
        if not self.elector.renew(self._stop):
            self.lost.set()
            if on_lost:
                on_lost()


@contextmanager
def elected(api_client: client.ApiClient, namespace: str, name: str, identity: str | None = None,
            timing: Timing | None = None, stop: threading.Event | None = None,
            on_lost: Callable[[], None] | None = None, release: bool = True, once: bool = False) -> Iterator[Leadership]:
    """Block until this process leads the Lease, renew it in the background while the block runs.

    If stop is set before we lead, raises NotElected. When the Lease is lost, `lead.lost` is set and
    on_lost is called (from the renew thread); the block should then wind down promptly.
    """
    global _current
    elector = LeaderElector(api_client, namespace, name, identity or default_identity(), timing)
    elector.once = once
    _current = elector
    try:
        if not elector.acquire(stop or threading.Event()):
            raise NotElected(f"lease {namespace}/{name}: stopped before {elector.identity} became leader")
        lead = Leadership(elector)
        lead._thread = threading.Thread(target=lead._renew, args=(on_lost,), name=f"lease-{name}", daemon=True)
        lead._thread.start()
        try:
            yield lead
        finally:
            lead.stop()
            lead._thread.join()
            if release and not lead.lost.is_set():
                elector.release()
    finally:
        _current = None


_current: LeaderElector | None = None   # the election this process takes part in (one per process)


def readiness(ready: Callable[[], bool | str]) -> Callable[[], bool | str]:
    """Wrap a /readyz check so a healthy spare is Ready too.

    A spare that waits for the Lease and can reach the API is exactly what a rollout or a node drain needs
    to see as Ready; if /readyz said "not ready" until it leads, the Deployment's rolling update (and a
    PodDisruptionBudget) would wait for it forever. The leader is Ready when `ready()` says so.
    """
    def check() -> bool | str:
        elector = _current
        if elector is not None and not elector.is_leader():
            return elector.healthy_spare()
        return ready()

    return check


class NotElected(Exception):
    """Stopped while waiting to lead."""


class LeaseUnavailable(Exception):
    """The Lease cannot be created where it should live (its namespace does not exist); str() is one line."""


@dataclass(frozen=True)
class Options:
    """Whether to run only while leading, which Lease, who this candidate is, and the Lease timing."""

    elect: bool = False
    namespace: str = "kubedr-system"
    name: str = ""
    identity: str | None = None
    timing: Timing = Timing()
    once: bool = False  # --once: an unreachable API server ends the wait for the Lease with one line


class OptionsError(ValueError):
    """The leader-election flags do not fit together; str() names them."""


# -- what the exporter and applier CLIs add ------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, default_name: str) -> None:
    """The leader-election flags (also $KUBEDR_LEADER_ELECT etc., as the manifests set them)."""
    group = parser.add_argument_group("leader election (two replicas, one active)")
    group.add_argument("--leader-elect", action="store_true",
                       help="run only while holding a coordination.k8s.io Lease")
    group.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", "kubedr-system"),
                       help="namespace of the Lease (default: $POD_NAMESPACE or kubedr-system)")
    group.add_argument("--leader-election-name", default=default_name, help="name of the Lease")
    group.add_argument("--leader-election-identity", default=None, help="this candidate (default: $POD_NAME)")
    group.add_argument("--leader-election-lease-duration", type=float, default=Timing.lease_duration,
                       help="seconds a spare waits before it takes over an unrenewed Lease")
    group.add_argument("--leader-election-renew-deadline", type=float, default=Timing.renew_deadline,
                       help="seconds the leader keeps trying to renew before it steps down")
    group.add_argument("--leader-election-retry-period", type=float, default=Timing.retry_period,
                       help="seconds between attempts")


def options_from(args: argparse.Namespace) -> Options:
    """The Options of the flags add_arguments defined; OptionsError when the timing cannot work."""
    if not getattr(args, "leader_elect", False):
        return Options()
    try:
        timing = Timing(args.leader_election_lease_duration, args.leader_election_renew_deadline,
                        args.leader_election_retry_period)
    except ValueError as exc:
        raise OptionsError("--leader-election-retry-period < --leader-election-renew-deadline < "
                           "--leader-election-lease-duration is needed, all above 0") from exc
    return Options(True, args.leader_election_namespace, args.leader_election_name, args.leader_election_identity,
                   timing, bool(getattr(args, "once", False)))


def run_elected(options: Options, api_client: Callable[[], client.ApiClient],
                work: Callable[[threading.Event], int]) -> int:
    """Run work(stop) directly, or, with options.elect, only while leading.

    stop is set on SIGTERM and when the Lease is lost; work must return soon after (kubedr.shutdown ends the
    process when it does not). Losing the Lease returns 1 so that the pod restarts and rejoins as a spare, as
    client-go users do; a clean return (or SIGTERM) releases the Lease so the spare takes over at once.
    """
    stop = threading.Event()
    with shutdown.on_sigterm(stop):
        if not options.elect:
            return work(stop)
        try:
            with elected(api_client(), options.namespace, options.name, options.identity, options.timing,
                         stop=stop, on_lost=stop.set, once=options.once) as lead:
                code = work(stop)
        except NotElected:
            return 0
        except LeaseUnavailable as exc:
            log.error("%s", exc)
            return 1
    if lead.lost.is_set():
        log.error("lost the lease %s/%s; exiting so that a spare takes over", options.namespace, options.name)
        return 1
    return code
