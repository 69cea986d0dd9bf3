"""A CRD group whose kinds live at different versions (prometheus-operator's): every kind is exported, applied on
the secondary, pruned there, and shows in the coverage report (log, /metrics, --explain) with what is not watched."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr.commands.cli import main
from tests.conftest import free_port, wait_until
from tests.integration.applier.conftest import apply, live, namespace
from tests.integration.exporter.exporter_harness import remote_files

GROUP = "monitoring.coreos.com"
KINDS = {"prometheuses": ("Prometheus", ["v1"]), "alertmanagerconfigs": ("AlertmanagerConfig", ["v1alpha1"]),
         "scrapeconfigs": ("ScrapeConfig", ["v1alpha1"])}


def crd(plural: str, kind: str, versions: list[str]) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": v, "served": True, "storage": i == 0, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
                                  for i, v in enumerate(versions)]}}


def custom(plural: str, name: str) -> dict[str, Any]:
    kind, versions = KINDS[plural]
    return {"apiVersion": f"{GROUP}/{versions[0]}", "kind": kind, "metadata": {"name": name, "namespace": "shop"},
            "spec": {"owner": name}}


@pytest.fixture
def exporter(primary: Any, git_remote: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    port = free_port()
    log = tmp_path / "export.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "kubedr", "export", "--kubeconfig", primary.kubeconfig_path,
                                 "--namespaces", "shop", "--repo", str(git_remote), "--workdir",
                                 str(tmp_path / "export-work"), "--metrics-listen", f"127.0.0.1:{port}"],
                                stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    yield proc, port, log
    proc.terminate()
    proc.wait(15)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_kinds_served_only_at_a_non_preferred_version_are_exported_applied_and_reported(
        primary: Any, secondary: Any, git_remote: Path, exporter: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    api = primary.api
    api.create(namespace("shop"))
    for plural, (kind, versions) in KINDS.items():
        api.create(crd(plural, kind, versions))
    objects = [custom(p, f"{p}-{n}") for p in KINDS for n in ("one", "two")]

    def create_all() -> bool:
        try:
            for obj in objects:
                if live(primary, obj["apiVersion"], obj["kind"], obj["metadata"]["name"], "shop") is None:
                    api.create(obj)
            return True
        except Exception:  # noqa: BLE001 - the emulator serves a kind once its CRD is Established
            return False

    wait_until(create_all, what="custom resources created")
    _, port, log = exporter
    paths = {f"shop/{KINDS[p][0]}.{GROUP}/{p}-one.yaml" for p in KINDS}
    paths |= {f"_cluster/CustomResourceDefinition.apiextensions.k8s.io/{p}.{GROUP}.yaml" for p in KINDS}
    wait_until(lambda: paths <= set(remote_files(git_remote)), timeout=30, what="every kind and its CRD exported")
    assert "apiVersion: monitoring.coreos.com/v1alpha1" in remote_files(git_remote)[
        f"shop/ScrapeConfig.{GROUP}/scrapeconfigs-one.yaml"]

    # applied on the secondary, at the version each kind is served at
    assert apply(secondary, git_remote, "--prune") == 0
    for obj in objects:
        got = live(secondary, obj["apiVersion"], obj["kind"], obj["metadata"]["name"], "shop")
        held = {"replicas": 0} if obj["kind"] == "Prometheus" else {}  # a standby holds it (kubedr.holds)
        assert got is not None and got["spec"] == {**obj["spec"], **held}, obj["kind"]

    # the coverage report: watched at the non-preferred version with its count; what is not watched and why
    # at INFO one line each time it is logged (per type: at DEBUG and in --explain, below)
    coverage_lines = [ln for ln in log.read_text().splitlines() if "kubedr.exporter.coverage" in ln]
    assert coverage_lines and all(" INFO " in ln and "coverage: " in ln for ln in coverage_lines), coverage_lines
    assert "kube-root-ca 1)" in coverage_lines[-1] and "(1 create-only, 2 excluded-kind" in coverage_lines[-1], \
        coverage_lines[-1]
    metrics = _metrics(port)
    assert (f'kubedr_exporter_resource_watched{{preferred_version="v1",resource="scrapeconfigs.{GROUP}",'
            f'version="v1alpha1"}} 1.0') in metrics
    assert (f'kubedr_exporter_objects{{outcome="exported",resource="scrapeconfigs.{GROUP}",rule="",'
            f'version="v1alpha1"}} 2.0') in metrics
    assert ('kubedr_exporter_resource_unwatched{reason="create-only",resource="bindings",uncovered="false",'
            'version="v1"} 1.0') in metrics
    assert "kubedr_exporter_uncovered_resources 0.0" in metrics
    # the namespace controller's kube-root-ca.crt: counted as skipped, with its rule
    assert ('kubedr_exporter_objects{outcome="skipped",resource="configmaps",rule="kube-root-ca",version="v1"} 1.0'
            in metrics)

    capsys.readouterr()
    assert main(["export", "--explain", "--kubeconfig", primary.kubeconfig_path, "--namespaces", "shop"]) == 0
    out = capsys.readouterr().out
    assert f"watched      scrapeconfigs.{GROUP} (v1alpha1, not served at the preferred v1): 2 exported" in out
    assert "not watched  bindings (v1): no list/watch verb: not stored, a request/response API: verbs: create" in out
    assert "NOT COVERED" not in out
    # which of the kinds exported a standby holds, and by which rule (the CRD on the primary says what scales)
    assert "standby holds: " in out
    assert ("  held      Prometheus.monitoring.coreos.com: spec.replicas at standby replicas (built-in: "
            "prometheus-operator: its scale subresource moves spec.shards") in out

    # a delete on the primary is pruned on the secondary (the kind is found at its non-preferred version)
    api.delete(f"{GROUP}/v1alpha1", "ScrapeConfig", "scrapeconfigs-one", "shop")
    wait_until(lambda: f"shop/ScrapeConfig.{GROUP}/scrapeconfigs-one.yaml" not in remote_files(git_remote),
               what="delete exported")
    assert apply(secondary, git_remote, "--prune") == 0
    assert live(secondary, f"{GROUP}/v1alpha1", "ScrapeConfig", "scrapeconfigs-one", "shop") is None
    assert live(secondary, f"{GROUP}/v1alpha1", "ScrapeConfig", "scrapeconfigs-two", "shop") is not None
