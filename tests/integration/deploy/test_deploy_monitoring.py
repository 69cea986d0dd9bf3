"""The dashboard and the alert rules query only metrics a real exporter and applier serve on /metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubedr import metrics
from kubedr.apierrors import NotFound
from kubedr.emulator.server import Emulator
from tests.conftest import ROOT, free_port, stop_process, wait_until

MONITORING = ROOT / "manifests" / "components" / "monitoring"
# metrics other stages are adding (fencing, signed commits): only the promtool cases exercise them so far
NOT_YET_EXPORTED: set[str] = set()
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}


def served_names(text: str) -> set[str]:
    """Every series name a scrape declares, labelled families with no sample yet included (# TYPE)."""
    return {fam.name + suffix for fam in text_string_to_metric_families(text)
            for suffix in SUFFIXES.get(fam.type, ("",))}


def queried(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\bkubedr_[a-z0-9_]+", e)}


def dashboard_exprs() -> list[str]:
    dash = json.loads((MONITORING / "kubedr-dashboard.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v.get("definition")]
    return exprs


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load((MONITORING / "kubedr.rules.yaml").read_text())["groups"]
            for r in g["rules"]]


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    emus = []
    for name in ("primary", "secondary"):
        emu = Emulator(listen=f"127.0.0.1:{free_port()}")
        emu.start()
        emu.kubeconfig_path = str(emu.write_kubeconfig(tmp_path / f"{name}.kubeconfig"))
        emus.append(emu)
    yield emus[0], emus[1]
    for emu in emus:
        emu.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def sample(text: str, name: str) -> float:
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name)


def test_every_metric_the_dashboard_and_the_rules_query_is_served(clusters, git_remote: Path,
                                                                   tmp_path: Path) -> None:
    primary, secondary = clusters
    primary.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    ports = {"export": free_port(), "apply": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    procs = []
    args = {
        "export": ["--kubeconfig", primary.kubeconfig_path, "--namespaces", "shop", "--repo", str(git_remote),
                   "--workdir", str(tmp_path / "export")],
        "apply": ["--kubeconfig", secondary.kubeconfig_path, "--repo", str(git_remote), "--workdir",
                  str(tmp_path / "apply"), "--interval", "200ms"],
    }
    try:
        for command, extra in args.items():
            log = open(tmp_path / f"{command}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "kubedr", command, *extra, "--metrics-listen",
                 f"127.0.0.1:{ports[command]}"], stdout=log, stderr=subprocess.STDOUT, env=env), log))
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
              "data": {"k": "v"}}
        primary.api.create(cm)

        def mirrored() -> bool:
            try:
                return bool(secondary.api.get("v1", "ConfigMap", "settings", "shop"))
            except NotFound:
                return False

        wait_until(mirrored, timeout=60, what="the ConfigMap on the secondary\n" + "".join(
            (tmp_path / f"{c}.log").read_text()[-1500:] for c in args))
        wait_until(lambda: sample(scrape(ports["apply"]), "kubedr_applier_replication_lag_distribution_seconds_count"),
                   timeout=10, what="a lag observation")
        exporter, applier = scrape(ports["export"]), scrape(ports["apply"])
    finally:
        for proc, log in procs:
            stop_process(proc)
            log.close()

    assert sample(exporter, "kubedr_exporter_change_to_commit_seconds_count") >= 1   # the panels have data
    assert sample(exporter, "kubedr_exporter_commits_total") >= 1
    assert sample(applier, "kubedr_applier_objects_total") >= 1
    snapshot_file = generate_latest(metrics.SNAPSHOT_REGISTRY).decode()  # what `save --metrics-file` writes
    served = served_names(exporter) | served_names(applier) | served_names(snapshot_file)

    used = queried(dashboard_exprs())
    assert len(used) >= 18
    assert used - served == set(), "the dashboard queries metrics nobody serves"
    assert used & NOT_YET_EXPORTED == set()
    in_rules = queried(rule_exprs())
    assert in_rules - served - NOT_YET_EXPORTED == set(), "the alert rules query metrics nobody serves"
    assert NOT_YET_EXPORTED <= in_rules
    assert not served_names(exporter) & set(metrics.SNAPSHOT_GAUGES), "a daemon would serve snapshot zeros"


def test_the_name_check_can_fail() -> None:
    text = "# HELP kubedr_x_total x\n# TYPE kubedr_x_total counter\nkubedr_x_total 1.0\n"
    assert served_names(text) == {"kubedr_x_total"}
    assert queried(["rate(kubedr_x_total[5m]) + kubedr_y_seconds_bucket"]) - served_names(text) == {
        "kubedr_y_seconds_bucket"}
