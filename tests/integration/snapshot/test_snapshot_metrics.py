"""The snapshot job's figures as node-exporter's textfile collector reads them (`save --metrics-file`)."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families
from snapshot_harness import fake_kubeadm_root, kubedr, listed

from kubedr import metrics

SNAPSHOT_FIGURES = {
    "kubedr_snapshot_last_success_timestamp_seconds", "kubedr_snapshot_last_size_bytes",
    "kubedr_snapshot_last_duration_seconds", "kubedr_snapshot_last_failure_timestamp_seconds",
}


def figures(path) -> dict[str, float]:
    """sample name -> value, through the official text parser (what node-exporter accepts)."""
    return {s.name: s.value for fam in text_string_to_metric_families(path.read_text()) for s in fam.samples}


def test_save_writes_the_textfile_and_a_failed_save_keeps_the_last_success(etcd_factory, etcd_server, age_keys,
                                                                           tmp_path):
    assert set(metrics.SNAPSHOT_GAUGES) == SNAPSHOT_FIGURES
    etcd_server.ctl("put", "/registry/configmaps/default/a", "b")
    root = tmp_path / "node"
    fake_kubeadm_root(root)
    textfiles = tmp_path / "textfile_collector"
    textfiles.mkdir()
    prom = textfiles / "kubedr_snapshot.prom"
    store = str(tmp_path / "store")

    def save(endpoint: str, check: bool = True):
        return kubedr("save", "--store", store, "--endpoints", endpoint, "--root", str(root),
                      "-r", age_keys.recipient, "--metrics-file", str(prom), check=check)

    save(etcd_server.client_url)
    [m] = listed(store)
    first = figures(prom)
    assert set(first) == SNAPSHOT_FIGURES, "only the job's own figures: no exporter or applier zeros"
    assert first["kubedr_snapshot_last_size_bytes"] == m["bundle"]["size"] > 0
    assert abs(first["kubedr_snapshot_last_success_timestamp_seconds"] - time.time()) < 120
    assert first["kubedr_snapshot_last_duration_seconds"] > 0
    assert first["kubedr_snapshot_last_failure_timestamp_seconds"] == 0
    assert [p.name for p in textfiles.iterdir()] == [prom.name], "written through a temporary file, renamed"

    empty = etcd_factory(name="cp-empty")   # a member that lost its data: save refuses its snapshot
    before = time.time()
    failed = save(empty.client_url, check=False)
    assert failed.returncode != 0 and "refusing it" in failed.stderr
    second = figures(prom)
    assert second["kubedr_snapshot_last_success_timestamp_seconds"] == first[
        "kubedr_snapshot_last_success_timestamp_seconds"]
    assert second["kubedr_snapshot_last_size_bytes"] == first["kubedr_snapshot_last_size_bytes"]
    assert before <= second["kubedr_snapshot_last_failure_timestamp_seconds"] <= time.time()
    assert [p.name for p in textfiles.iterdir()] == [prom.name]


def test_a_metrics_file_node_exporter_would_ignore_is_refused(age_keys, tmp_path):
    out = kubedr("save", "--store", str(tmp_path / "store"), "-r", age_keys.recipient,
                 "--metrics-file", str(tmp_path / "kubedr.txt"), check=False)
    assert out.returncode != 0
    assert "kubedr.txt: node-exporter reads only files ending in .prom" in out.stderr
    assert not (tmp_path / "kubedr.txt").exists()
