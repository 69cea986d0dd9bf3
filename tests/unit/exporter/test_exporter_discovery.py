"""Discovery covers every served resource once, at the right version, and says why it leaves any out."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from kubedr.apierrors import api_error
from kubedr.exporter import coverage
from kubedr.exporter.observer import Observer
from kubedr.exporter.selection import Selection
from kubedr.kube import version_priority
from kubedr.kubeapi import Cluster
from tests.conftest import load_fixture

MONITORING = "monitoring.coreos.com"


def _resource(plural: str, kind: str, verbs: tuple[str, ...] = ("delete", "deletecollection", "get", "list", "patch",
                                                                  "create", "update", "watch")) -> dict[str, Any]:
    return {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": list(verbs)}


# prometheus-operator's group as a real server serves it: v1 preferred, three kinds only at v1alpha1
MONITORING_DOCS = {
    "v1": [_resource("prometheuses", "Prometheus"), _resource("servicemonitors", "ServiceMonitor")],
    "v1alpha1": [_resource("alertmanagerconfigs", "AlertmanagerConfig"),
                 _resource("prometheusagents", "PrometheusAgent"), _resource("scrapeconfigs", "ScrapeConfig")],
}


class CapturedAPI(Cluster):
    """GETs answered from the real server's discovery captures, plus the monitoring group; one group fails."""

    def __init__(self) -> None:
        super().__init__(ApiClient(Configuration(host="https://captured.invalid")))
        groups = []
        self.docs: dict[str, dict[str, Any]] = {"/api/v1": load_fixture("discovery/api-v1.json")}
        for g in load_fixture("discovery/apis.json")["groups"]:
            kept = []
            for v in g["versions"]:
                try:
                    self.docs[f"/apis/{v['groupVersion']}"] = load_fixture(
                        f"discovery/apis-{g['name']}_{v['version']}.json")
                    kept.append(v)
                except FileNotFoundError:
                    continue
            if kept:
                groups.append({**g, "versions": kept, "preferredVersion": kept[0]})
        versions = [{"groupVersion": f"{MONITORING}/{v}", "version": v} for v in ("v1", "v1alpha1")]
        groups.append({"name": MONITORING, "versions": versions, "preferredVersion": versions[0]})
        for v, resources in MONITORING_DOCS.items():
            self.docs[f"/apis/{MONITORING}/{v}"] = {"kind": "APIResourceList", "groupVersion": f"{MONITORING}/{v}",
                                                   "resources": copy.deepcopy(resources)}
        # an aggregated API whose backend is down: listed in /apis, its version answers 503
        groups.append({"name": "metrics.example.io", "versions": [{"groupVersion": "metrics.example.io/v1beta1",
                                                                    "version": "v1beta1"}]})
        self.docs["/apis"] = {"kind": "APIGroupList", "groups": groups}

    def get(self, path: str, query: dict | None = None, timeout: float = 0) -> dict[str, Any]:
        if path not in self.docs:
            raise api_error(503, {"reason": "ServiceUnavailable", "message": "the server is currently unable to handle the request"}, path)
        return copy.deepcopy(self.docs[path])


@pytest.fixture
def observer() -> Observer:
    obs = Observer(CapturedAPI(), Selection(None), skip_keys={("", "Secret")})
    return obs


def test_version_priority_is_apimachinery_order() -> None:
    """The example of the Kubernetes CRD versioning docs, shuffled."""
    ordered = ["v10", "v2", "v1", "v11beta2", "v10beta3", "v3beta1", "v12alpha1", "v11alpha2", "foo1", "foo10"]
    assert sorted(reversed(ordered), key=version_priority) == ordered


def test_every_resource_once_at_the_preferred_version_else_the_newest(observer: Observer) -> None:
    types = observer.discover()
    names = [(t.group, t.plural) for t in types]
    assert len(names) == len(set(names)), "a resource is watched once"
    by_name = {(t.group, t.plural): t.version for t in types}
    assert by_name[(MONITORING, "prometheuses")] == "v1"
    assert {by_name[(MONITORING, p)] for p in ("alertmanagerconfigs", "prometheusagents", "scrapeconfigs")} == \
        {"v1alpha1"}
    assert by_name[("example.com", "widgets")] == "v1"
    assert by_name[("batch", "cronjobs")] == "v1"
    assert observer.preferred[MONITORING] == "v1"


def test_a_kind_served_at_two_versions_is_watched_at_the_newest() -> None:
    api = CapturedAPI()
    api.docs[f"/apis/{MONITORING}/v1beta1"] = {"resources": [_resource("scrapeconfigs", "ScrapeConfig")]}
    group = next(g for g in api.docs["/apis"]["groups"] if g["name"] == MONITORING)
    group["versions"].insert(1, {"groupVersion": f"{MONITORING}/v1beta1", "version": "v1beta1"})
    types = Observer(api, Selection(None)).discover()  # type: ignore[arg-type]
    assert [t.version for t in types if t.plural == "scrapeconfigs"] == ["v1beta1"]
    assert [t.version for t in types if t.plural == "prometheusagents"] == ["v1alpha1"]


def test_what_is_not_watched_is_reported_with_its_reason(observer: Observer) -> None:
    observer.discover()
    why = {(u.group, u.plural): u.reason for u in observer.unwatched}
    assert why[("", "bindings")] == "create-only"           # verbs: create (the real /api/v1)
    assert why[("", "componentstatuses")] == "excluded-kind"
    assert why[("", "events")] == "excluded-kind"
    assert why[("", "nodes")] == "out-of-scope"
    assert why[("", "secrets")] == "secrets-not-sealed"
    assert why[("metrics.example.io", "")] == "discovery-failed"
    assert {u.uncovered for u in observer.unwatched if u.reason != "discovery-failed"} == {False}
    failed = next(u for u in observer.unwatched if u.reason == "discovery-failed")
    assert failed.uncovered and "503" in str(failed)


def test_a_readable_but_unwatchable_type_in_scope_is_uncovered() -> None:
    api = CapturedAPI()
    api.docs[f"/apis/{MONITORING}/v1"]["resources"].append(_resource("thanosrulers", "ThanosRuler", ("get", "list")))
    obs = Observer(api, Selection(None))
    obs.discover()
    [row] = [u for u in obs.unwatched if u.plural == "thanosrulers"]
    assert row.reason == "no-list-watch" and row.uncovered and "verbs: get, list" in str(row)


def test_the_report_counts_and_warns(observer: Observer, caplog: pytest.LogCaptureFixture) -> None:
    types = observer.discover()
    agents = next(t for t in types if t.plural == "prometheusagents")
    cms = next(t for t in types if t.plural == "configmaps")
    report = coverage.build(types, observer.preferred, observer.unwatched, {agents.key: 2, cms.key: 5},
                            {cms.key: {"kube-root-ca": 3}})
    lines = report.lines()
    assert "prometheusagents.monitoring.coreos.com (v1alpha1, not served at the preferred v1): 2 exported" in \
        "\n".join(lines)
    assert any("configmaps (v1): 5 exported, 3 skipped by rule (kube-root-ca: 3)" in ln for ln in lines)
    assert any(ln.startswith("  NOT COVERED  metrics.example.io") for ln in lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kubedr.exporter.coverage"):
        report.log()
    [line] = [r for r in caplog.records if r.name == "kubedr.exporter.coverage"]  # one line, whatever the count
    assert line.levelno == logging.WARNING
    assert "1 NOT COVERED: metrics.example.io (discovery-failed)" in line.getMessage()
    assert "3 skipped by rule (kube-root-ca 3)" in line.getMessage()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="kubedr.exporter.coverage"):
        report.log()
    levels = {r.getMessage().split(":")[0]: r.levelno for r in caplog.records}
    assert levels["NOT COVERED"] == levels["not watched"] == logging.DEBUG  # the details: one line per type


def test_a_type_whose_list_fails_is_reported_uncovered(observer: Observer) -> None:
    from kubedr.exporter.pipeline import report_of

    types = observer.discover()
    scrape = next(t for t in types if t.plural == "scrapeconfigs")
    observer.list_failed[scrape] = "403 from /apis/monitoring.coreos.com/v1alpha1/scrapeconfigs: forbidden"
    report = report_of(observer, set(types), {}, {})
    assert scrape not in {w.rtype for w in report.watched}
    [row] = [u for u in report.uncovered if u.plural == "scrapeconfigs"]
    assert row.reason == "list-failed" and "403" in str(row)
    observer.http.docs[scrape.path()] = {"kind": "ScrapeConfigList", "items": [], "metadata": {"resourceVersion": "7"}}
    assert observer.list(scrape, lambda ev: None) == "7"  # the watch loop's re-list succeeds
    assert scrape in {w.rtype for w in report_of(observer, set(types), {}, {}).watched}
    assert [u.reason for u in report_of(observer, set(types), {}, {}).uncovered] == ["discovery-failed"]
