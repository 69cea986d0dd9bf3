"""Every kubedr metric lives here, so dashboards have one list; plus the /metrics, /healthz, /readyz server
and the node-exporter textfile the snapshot job writes."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from kubedr.config import UsageError

log = logging.getLogger("kubedr.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# exporter
EXPORT_LAST_COMMIT = Gauge("kubedr_exporter_last_commit_timestamp_seconds", "Unix time of the last commit")
EXPORT_LATENCY = Histogram("kubedr_exporter_change_to_commit_seconds",
                           "Watch event received -> committed", buckets=LATENCY_BUCKETS)
EXPORT_PUSH_LATENCY = Histogram("kubedr_exporter_change_to_push_seconds",
                                "Watch event received -> pushed to the remote", buckets=LATENCY_BUCKETS)
EXPORT_QUEUE = Gauge("kubedr_exporter_queue_depth", "Changes waiting for the next commit")
EXPORT_COMMITS = Counter("kubedr_exporter_commits_total", "Commits made", ["reason"])
EXPORT_OBJECTS = Counter("kubedr_exporter_object_changes_total", "Object changes committed", ["verb"])
EXPORT_WATCH_RESTARTS = Counter("kubedr_exporter_watch_restarts_total", "Watches restarted", ["resource", "cause"])
EXPORT_PUSH_FAILURES = Counter("kubedr_exporter_push_failures_total", "Failed pushes (retried with backoff)")
EXPORT_UNPUSHED = Gauge("kubedr_exporter_unpushed_commits", "Local commits not yet on the remote")
EXPORT_FENCED = Gauge("kubedr_exporter_fenced", "1 while the branch names another writer (or epoch): nothing is pushed")
EXPORT_EPOCH = Gauge("kubedr_exporter_writer_epoch", "Epoch of the writer role this exporter pushes under (0: none)")


class _Coverage(Collector):
    """The exporter's coverage report, read when scraped: `report` is set by the exporter (a callable)."""

    def __init__(self) -> None:
        self.report: Callable[[], Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.report is None:
            return
        rep = self.report()
        objects = GaugeMetricFamily("kubedr_exporter_objects", "Objects of a watched type in scope: exported, or "
                                    "skipped by a sanitize rule", labels=["resource", "version", "outcome", "rule"])
        watched = GaugeMetricFamily("kubedr_exporter_resource_watched", "1 for each watched resource type",
                                    labels=["resource", "version", "preferred_version"])
        unwatched = GaugeMetricFamily("kubedr_exporter_resource_unwatched", "1 for each served resource type "
                                      "without a watch", labels=["resource", "version", "reason", "uncovered"])
        for w in rep.watched:
            res, ver = str(w.rtype), w.rtype.version
            watched.add_metric([res, ver, w.preferred], 1)
            objects.add_metric([res, ver, "exported", ""], w.exported)
            for rule, n in sorted(w.skipped.items()):
                objects.add_metric([res, ver, "skipped", rule], n)
        for u in rep.unwatched:
            unwatched.add_metric([u.name, u.version, u.reason, "true" if u.uncovered else "false"], 1)
        uncovered = GaugeMetricFamily("kubedr_exporter_uncovered_resources",
                                      "Resource types in scope that are not exported (see the exporter's log)",
                                      value=len(rep.uncovered))
        yield from (objects, watched, unwatched, uncovered)


EXPORT_COVERAGE = _Coverage()
REGISTRY.register(EXPORT_COVERAGE)

# applier
APPLY_LAST_TIME = Gauge("kubedr_applier_last_applied_timestamp_seconds", "Unix time of the last applied commit")
APPLY_LAST_COMMIT = Gauge("kubedr_applier_last_applied_commit_info", "Last fully applied commit", ["commit"])
APPLY_LAG = Gauge("kubedr_applier_replication_lag_seconds", "Primary commit time -> applied on the secondary")
APPLY_LAG_HIST = Histogram("kubedr_applier_replication_lag_distribution_seconds",
                           "Primary commit time -> applied on the secondary", buckets=LATENCY_BUCKETS)
APPLY_FAILURES = Counter("kubedr_applier_apply_failures_total", "Objects that failed to apply", ["reason"])
APPLY_OBJECTS = Counter("kubedr_applier_objects_total", "Objects applied or deleted", ["action"])
APPLY_PRUNE_REFUSED = Counter("kubedr_applier_prune_refused_total", "Prunes refused by the safety guard")
APPLY_UNTRUSTED = Gauge("kubedr_applier_untrusted_commit_info",
                        "1 for the first commit whose signature does not verify (nothing past it is applied)",
                        ["commit", "signer"])
APPLY_UNTRUSTED_TOTAL = Counter("kubedr_applier_untrusted_commits_total",
                                "Commits refused because their signature does not verify")
APPLY_HELD = Gauge("kubedr_applier_history_held_info",
                   "1 while the branch moved back (rollback) or to other history (rewrite) from the newest commit "
                   "applied: nothing is applied until a person acknowledges the held commit",
                   ["commit", "newest", "reason"])
APPLY_HELD_TOTAL = Counter("kubedr_applier_history_holds_total", "Rollbacks and rewrites held back")
APPLY_UNAPPLIED_AGE = Gauge("kubedr_applier_oldest_unapplied_commit_age_seconds",
                            "Age of the oldest commit of the branch not yet fully applied; with none, the time "
                            "since a poll last found none (so an applier that is stuck, failing or held raises it)")


class _Since:
    """The Unix time the unapplied-age gauge counts from; the age itself is computed when scraped."""

    at = 0.0


def unapplied_since(ts: float) -> None:
    """Count the unapplied-age gauge from ts: the oldest unapplied commit's time, or the poll that found none."""
    _Since.at = ts


APPLY_UNAPPLIED_AGE.set_function(lambda: max(0.0, time.time() - _Since.at) if _Since.at else 0.0)
APPLY_WEBHOOK_CALLS = Counter("kubedr_applier_webhook_requests_total",
                              "Push webhook calls by sender and outcome: fetch (the followed branch moved: fetched at "
                              "once), ignored (another branch or event), refused (not verified: 401), invalid",
                              ["sender", "outcome"])
APPLY_SOURCE = Gauge("kubedr_applier_source_info", "1 for the source (repo and branch) this applier applies",
                     ["source", "repo", "branch"])
APPLY_OWNED_ELSEWHERE = Gauge("kubedr_applier_owned_elsewhere_objects",
                              "Objects of this source's repo that another source owns: refused", ["owner"])
APPLY_OWNERSHIP_REFUSALS = Counter("kubedr_applier_ownership_refusals_total",
                                   "Applies and prunes refused because another source owns the object")
APPLY_DRIFTED = Gauge("kubedr_applier_drifted_objects", "Managed objects whose kubedr-owned fields differ from the repo")
APPLY_STRAYS = Gauge("kubedr_applier_stray_objects", "Objects in managed namespaces that are not in the repo")
APPLY_DRIFT_DETECTED = Counter("kubedr_applier_drift_detected_total", "Times a managed object was found drifted")
APPLY_HEALS = Counter("kubedr_applier_heals_total", "Drifted objects reapplied (forced) to the repo's version")
# the last `kubedr switchover` / `kubedr promote` that waited, as recorded on the secondary (kubedr-status)
SWITCHOVER_RTO = Gauge("kubedr_applier_switchover_rto_seconds",
                       "RTO of the last switchover or promote: command start -> every workload Available")
SWITCHOVER_TIME = Gauge("kubedr_applier_switchover_timestamp_seconds", "Unix time the last switchover or promote started")
SWITCHOVER_UNAVAILABLE = Gauge("kubedr_applier_switchover_unavailable_workloads",
                               "Workloads not Available when the last switchover or promote stopped waiting")

# snapshot: a CronJob has no /metrics to scrape, so these live in their own registry, written as a
# node-exporter textfile (`kubedr snapshot save --metrics-file`), and never on the daemons' /metrics,
# where they would read 0 ("no snapshot since 1970").
SNAPSHOT_REGISTRY = CollectorRegistry()
SNAPSHOT_GAUGES: dict[str, Gauge] = {}


def _snapshot_gauge(name: str, documentation: str) -> Gauge:
    SNAPSHOT_GAUGES[name] = Gauge(name, documentation, registry=SNAPSHOT_REGISTRY)
    return SNAPSHOT_GAUGES[name]


SNAPSHOT_LAST = _snapshot_gauge("kubedr_snapshot_last_success_timestamp_seconds",
                                "Unix time of the last stored snapshot")
SNAPSHOT_BYTES = _snapshot_gauge("kubedr_snapshot_last_size_bytes", "Size of the last stored bundle")
SNAPSHOT_SECONDS = _snapshot_gauge("kubedr_snapshot_last_duration_seconds", "How long the last stored snapshot took")
SNAPSHOT_FAILED = _snapshot_gauge("kubedr_snapshot_last_failure_timestamp_seconds",
                                  "Unix time of the last failed save")

# leader election (kubedr.leader)
LEADER = Gauge("kubedr_leader_is_leader", "1 while this process holds the Lease, else 0", ["lease"])
LEADER_TRANSITIONS = Counter("kubedr_leader_transitions_total", "Times this process gained or lost the Lease",
                             ["lease", "event"])


class _Handler(BaseHTTPRequestHandler):
    live: Callable[[], bool] = staticmethod(lambda: True)
    ready: Callable[[], bool | str] = staticmethod(lambda: True)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/livez"):
            ok = self.live()
            self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
        elif path == "/readyz":
            ready = self.ready()  # a string is a ready state worth saying, e.g. "fenced: the writer is ..."
            body = f"{ready}\n".encode() if isinstance(ready, str) else b"ok\n" if ready else b"not ready\n"
            self._send(200 if ready else 503, body)
        else:
            self._send(404, b"not found\n")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def serve(listen: str, live: Callable[[], bool] | None = None,
          ready: Callable[[], bool | str] | None = None) -> ThreadingHTTPServer:
    """Serve metrics and probes on host:port in a daemon thread; port 0 picks a free one.

    A bad address or a port another process holds is a UsageError (one line, exit 2), never a traceback."""
    handler = type("Handler", (_Handler,), {
        "live": staticmethod(live or (lambda: True)), "ready": staticmethod(ready or (lambda: True))})
    return listen_http("--metrics-listen", listen, handler, example=":9090")


def listen_http(flag: str, listen: str, handler: type[BaseHTTPRequestHandler],
                example: str = ":9090") -> ThreadingHTTPServer:
    """Serve handler on host:port (the value of flag) in a daemon thread; UsageError naming flag when it cannot."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{flag} {listen}: expected [HOST]:PORT, e.g. {example}")
    try:
        server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        raise UsageError(f"{flag} {listen}: " + (
            "the port is taken by another process (give each kubedr process its own port)" if taken
            else exc.strerror or str(exc))) from exc
    server.daemon_threads = True
    name = f"kubedr-{flag.strip('-').removesuffix('-listen')}"
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def resume_textfile(path: str) -> None:
    """Start from the figures of the last run's textfile, so a failed run keeps the last success's."""
    try:
        with open(path, encoding="utf-8") as fh:
            families = list(text_string_to_metric_families(fh.read()))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        log.warning("metrics file %s unreadable, starting from zero: %s", path, exc)
        return
    for fam in families:
        for sample in fam.samples:
            if sample.name in SNAPSHOT_GAUGES and not sample.labels:
                SNAPSHOT_GAUGES[sample.name].set(sample.value)
