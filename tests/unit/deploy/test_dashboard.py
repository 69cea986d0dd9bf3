"""The Grafana dashboard: well-formed panels, and every query valid PromQL for the real promtool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT

DASHBOARD = ROOT / "manifests" / "components" / "monitoring" / "kubedr-dashboard.json"
# Grafana's variables, as Grafana substitutes them before the query reaches Prometheus
VARIABLES = {"$__rate_interval": "1m", "$job": ".*"}


def panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_panels_are_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    assert dash["uid"] == "kubedr" and dash["templating"]["list"][0]["type"] == "datasource"
    for p in panels():
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
    titles = " ".join(p["title"].lower() for p in panels())
    for topic in ("lag", "change -> commit", "commit -> apply", "failures", "queue", "snapshot age", "size"):
        assert topic in titles, topic


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = []
    for i, p in enumerate(panels()):
        for t in p["targets"]:
            expr = t["expr"]
            for var, value in VARIABLES.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"{p['title']}: unknown variable in {expr}"
            rules.append({"record": f"dashboard:panel{i}:{t['refId']}", "expr": expr})
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(tmp_path / "queries.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout
