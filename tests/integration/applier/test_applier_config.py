"""The same settings from the YAML config file and $KUBEDR_* variables as from flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubedr.commands.cli import main
from tests.integration.applier.conftest import Repo, configmap, deployment, live, namespace


def test_apply_settings_from_config_file_and_environment(secondary: Any, repo: Repo, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for o in (namespace("shop"), configmap("settings"), deployment(image="old.example.com/web:1")):
        repo.put(o)
    repo.commit("seed")
    cfg = tmp_path / "kubedr.yaml"
    cfg.write_text(f"""apply:
  repo: {repo.remote}
  kubeconfig: {secondary.kubeconfig_path}
  namespace-map: ["shop=shop-dr"]
  standby_replicas: 1
  workdir: {tmp_path / 'work'}
""")
    monkeypatch.setenv("KUBEDR_IMAGE_MAP", "old.example.com=new.example.com")
    assert main(["--config", str(cfg), "apply", "--once"]) == 0
    web = live(secondary, "apps/v1", "Deployment", "web", "shop-dr")
    assert web["spec"]["replicas"] == 1
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "new.example.com/web:1"


def test_missing_repo_is_a_one_line_usage_error(secondary: Any, capsys: Any) -> None:
    assert main(["apply", "--once", "--kubeconfig", secondary.kubeconfig_path]) == 2
