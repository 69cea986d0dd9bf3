"""The alert rules, checked and unit-tested by the real promtool; the PrometheusRule is generated from them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

MONITORING = ROOT / "manifests" / "components" / "monitoring"
RULES = MONITORING / "kubedr.rules.yaml"
PROMTOOL_TESTS = Path(__file__).with_name("kubedr-rules.promtool.yaml")


def alerts() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules_and_the_operator_form(promtool: str, tmp_path: Path) -> None:
    out = run(promtool, "check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout
    spec = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = run(promtool, "check", "rules", str(tmp_path / "spec.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    out = subprocess.run([promtool, "test", "rules", PROMTOOL_TESTS.name], cwd=PROMTOOL_TESTS.parent,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_promtool_fails_a_rule_that_does_not_fire(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same cases against rules whose thresholds never trip."""
    broken = re.sub(r"> (\d+)\b", lambda m: f"> {int(m.group(1)) * 1000 + 1}", RULES.read_text())
    (tmp_path / "kubedr.rules.yaml").write_text(broken)
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())
    cases["rule_files"] = [str(tmp_path / "kubedr.rules.yaml")]
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases))
    out = run(promtool, "test", "rules", str(tmp_path / "cases.yaml"))
    assert out.returncode != 0
    assert "alertname: KubedrReplicationLagHigh" in out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())
    assert cases["rule_files"] == ["../../../manifests/components/monitoring/kubedr.rules.yaml"]
    fired, silent = set(), set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test") or []:
            (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert len(names) >= 10
    assert names - fired == set(), "alerts with no firing case"
    assert names - silent == set(), "alerts with no silent case"


def test_prometheusrule_is_generated_from_the_rules_file() -> None:
    out = run(sys.executable, str(ROOT / "scripts" / "gen-prometheusrule"), "--check")
    assert out.returncode == 0, out.stderr
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["namespace"] == "kubedr-system"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_the_check_notices_a_hand_edit(tmp_path: Path) -> None:
    script = (ROOT / "scripts" / "gen-prometheusrule").read_text()
    copy = tmp_path / "scripts" / "gen-prometheusrule"
    copy.parent.mkdir()
    copy.write_text(script)
    target = tmp_path / "manifests" / "components" / "monitoring"
    target.mkdir(parents=True)
    (target / "kubedr.rules.yaml").write_text(RULES.read_text())
    (target / "prometheusrule.yaml").write_text(
        (MONITORING / "prometheusrule.yaml").read_text().replace("> 300", "> 301", 1))
    out = run(sys.executable, str(copy), "--check")
    assert out.returncode == 1 and "prometheusrule.yaml: not generated from kubedr.rules.yaml" in out.stderr


def documented() -> list[list[str]]:
    """The rows of the README's threshold table: index, alert, fires when, threshold, for, severity."""
    text = (MONITORING / "README.md").read_text()
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if re.match(r"\| \d+ \| Kubedr", line)]


def test_thresholds_are_documented_as_the_rules_have_them() -> None:
    rows = documented()
    assert [r[1] for r in rows] == [a["alert"] for a in alerts()], "one row per alert, in rule order"
    for (index, name, _, threshold, for_, severity), rule in zip(rows, alerts(), strict=True):
        assert alerts()[int(index)]["alert"] == name
        if threshold != "-":
            assert re.search(rf"(>|==) {threshold}\b", " ".join(rule["expr"].split())), (name, threshold)
        assert rule.get("for", "0s") == for_, name
        assert rule["labels"]["severity"] == severity, name


def test_the_component_renders_with_an_overlay(kubectl: str, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "manifests" / "overlays" / "secondary", overlay)],
        "components": [os.path.relpath(MONITORING, overlay)]}))   # kustomize refuses absolute paths
    out = run(kubectl, "kustomize", str(overlay))
    assert out.returncode == 0, out.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout) if d}
    rule = docs[("PrometheusRule", "kubedr")]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubedr"
    dashboard = docs[("ConfigMap", "kubedr-grafana-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["kubedr-dashboard.json"] == (MONITORING / "kubedr-dashboard.json").read_text()
    assert docs[("ConfigMap", "kubedr-prometheus-rules")]["data"]["kubedr.rules.yaml"] == RULES.read_text()
