"""Whose clone is whose: the default work dir per repo, branch and cluster, and one exporter per clone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubedr.commands import repo_init
from tests.conftest import wait_until


def _export(primary, remote: Path, cluster: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kubedr", "export", "--kubeconfig", str(primary.kubeconfig_path), "--namespaces",
            "shop", "--repo", str(remote), "--cluster-name", cluster, "--secrets", "plaintext", *extra]


def test_two_clusters_without_workdir_get_two_clones(primary, git_remote: Path, tmp_path: Path) -> None:
    """The runbook runs an exporter per region; on one machine, neither may take the other's clone."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for cluster in ("prod-eu-1", "prod-us-1", "prod-eu-1"):  # the third finds its own clone again
        done = subprocess.run(_export(primary, git_remote, cluster, "--once"), capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    clones = sorted((tmp_path / "cache" / "kubedr" / "export").iterdir())
    assert len(clones) == 2 and all((c / ".git").is_dir() for c in clones), clones


def test_a_fenced_exporter_still_holds_its_clone(primary, git_remote: Path, tmp_path: Path) -> None:
    """Fenced and waiting, it keeps the clone: a second exporter on it is refused in one line (exit 1)."""
    repo_init.init_repo(str(git_remote), writer="prod-us-1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "first.log"
    workdir = str(tmp_path / "clone")
    with open(log, "wb") as out:
        first = subprocess.Popen(_export(primary, git_remote, "prod-eu-1", "--workdir", workdir,
                                         "--role-check-interval", "0.2s"), stdout=out, stderr=subprocess.STDOUT,
                                 env=env)
    try:
        wait_until(lambda: "fenced: the writer is prod-us-1" in log.read_text(), timeout=60, what="fenced")
        second = subprocess.run(_export(primary, git_remote, "prod-us-1", "--workdir", workdir, "--once"),
                                capture_output=True, text=True, env=env, timeout=120)
        errors = [ln for ln in second.stderr.splitlines() if " INFO " not in ln and " WARNING " not in ln]
        assert second.returncode == 1, second.stderr
        assert len(errors) == 1 and f"another kubedr exporter is using the clone {workdir}" in errors[0], errors
    finally:
        first.terminate()
        first.wait(30)
    assert first.returncode == 0, log.read_text()[-2000:]
