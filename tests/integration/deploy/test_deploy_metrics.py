"""/metrics, /healthz and /readyz as Prometheus and the kubelet see them: over HTTP, through the text parser."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from kubedr import metrics


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bool]]]:
    state = {"live": True, "ready": False}
    srv = metrics.serve("127.0.0.1:0", live=lambda: state["live"], ready=lambda: state["ready"])
    yield f"http://127.0.0.1:{srv.server_address[1]}", state
    srv.shutdown()
    srv.server_close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def scrape(base: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """family name -> {(sample name, sorted labels): value}, via the official text parser."""
    code, ctype, body = get(base + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    out: dict[str, dict] = {}
    for fam in text_string_to_metric_families(body):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
    return out


def test_probes_follow_the_callbacks(server) -> None:
    base, state = server
    assert get(base + "/healthz")[0] == 200
    assert get(base + "/readyz")[0] == 503
    state["ready"] = True
    assert get(base + "/readyz")[:1] == (200,)
    state["live"] = False
    assert get(base + "/healthz")[0] == 503
    assert get(base + "/nope")[0] == 404


def test_the_issue_metrics_are_exposed_and_parse(server) -> None:
    base, _ = server
    metrics.EXPORT_LAST_COMMIT.set(1700000000.5)
    before = scrape(base)
    lat_count = before.get("kubedr_exporter_change_to_commit_seconds", {}).get(
        ("kubedr_exporter_change_to_commit_seconds_count", ()), 0.0)
    restarts = before.get("kubedr_exporter_watch_restarts", {}).get(
        ("kubedr_exporter_watch_restarts_total", (("cause", "gone"), ("resource", "configmaps"))), 0.0)

    metrics.EXPORT_LATENCY.observe(0.03)
    metrics.EXPORT_LATENCY.observe(0.4)
    metrics.EXPORT_QUEUE.set(7)
    metrics.EXPORT_WATCH_RESTARTS.labels(resource="configmaps", cause="gone").inc()
    metrics.EXPORT_PUSH_FAILURES.inc()
    metrics.APPLY_LAST_COMMIT.labels(commit="abc123").set(1)
    metrics.APPLY_LAST_TIME.set(1700000001.0)
    metrics.APPLY_LAG.set(0.75)
    metrics.APPLY_FAILURES.labels(reason="invalid").inc()

    after = scrape(base)
    assert after["kubedr_exporter_last_commit_timestamp_seconds"][
        ("kubedr_exporter_last_commit_timestamp_seconds", ())] == 1700000000.5
    hist = after["kubedr_exporter_change_to_commit_seconds"]
    assert hist[("kubedr_exporter_change_to_commit_seconds_count", ())] == lat_count + 2
    assert hist[("kubedr_exporter_change_to_commit_seconds_bucket", (("le", "0.05"),))] >= 1
    assert hist[("kubedr_exporter_change_to_commit_seconds_bucket", (("le", "+Inf"),))] == lat_count + 2
    assert after["kubedr_exporter_queue_depth"][("kubedr_exporter_queue_depth", ())] == 7
    assert after["kubedr_exporter_watch_restarts"][
        ("kubedr_exporter_watch_restarts_total", (("cause", "gone"), ("resource", "configmaps")))] == restarts + 1
    assert after["kubedr_applier_last_applied_commit_info"][
        ("kubedr_applier_last_applied_commit_info", (("commit", "abc123"),))] == 1
    assert after["kubedr_applier_replication_lag_seconds"][("kubedr_applier_replication_lag_seconds", ())] == 0.75
    assert after["kubedr_exporter_push_failures"]
    assert after["kubedr_applier_apply_failures"]


def test_every_metric_in_observe_is_named_kubedr_and_served(server) -> None:
    base, _ = server
    every = [v for v in vars(metrics).values() if isinstance(v, Counter | Gauge | Histogram)]
    assert len(every) >= 15
    families = scrape(base)
    snapshot = {fam.name for fam in metrics.SNAPSHOT_REGISTRY.collect()}
    for metric in every:
        name = metric._name
        assert name.startswith("kubedr_"), name
        if name in snapshot:              # the snapshot job's textfile only: a daemon would serve 0s
            assert name not in families, f"{name} served by a daemon"
        elif not metric._labelnames:      # labelled ones appear once a label set is used
            assert name in families, f"{name} not served"
    assert snapshot == set(metrics.SNAPSHOT_GAUGES)


@pytest.mark.parametrize("command", ["export", "apply"])
def test_a_taken_metrics_port_is_one_line_and_exit_2(command: str, emulator, git_remote, tmp_path) -> None:
    """The quick start once gave the exporter and the applier the same port: the second says so in one line."""
    import socket
    import subprocess
    import sys

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    extra = (["--namespaces", "shop", "--workdir", str(tmp_path / "clone")] if command == "export"
             else ["--workdir", str(tmp_path / "mirror")])
    try:
        proc = subprocess.run([sys.executable, "-m", "kubedr", command, "--kubeconfig", str(tmp_path / "kubeconfig"),
                               "--repo", str(git_remote), *extra, "--metrics-listen", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    errors = [ln for ln in proc.stderr.splitlines() if " INFO " not in ln]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and f"--metrics-listen 127.0.0.1:{port}: the port is taken" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_metrics_address_is_a_usage_error() -> None:
    from kubedr.config import UsageError

    with pytest.raises(UsageError, match="expected \\[HOST\\]:PORT"):
        metrics.serve("localhost")
