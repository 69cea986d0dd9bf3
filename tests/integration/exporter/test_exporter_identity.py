"""The product's own commit identity: the suite sets GIT_AUTHOR_* for every test (tests/conftest.py), so this
test takes them away, with an empty HOME (no ~/.gitconfig), as in the container image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exporter_harness import export_args, git


def test_the_exporter_commits_as_kubedr_exporter_without_any_git_identity(primary, git_remote: Path,
                                                                          tmp_path: Path) -> None:
    primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}})
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBEDR_", "EMAIL"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1")
    done = subprocess.run([sys.executable, "-m", "kubedr", *export_args(
        primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--once")], env=env, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    who = git(git_remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "main").strip()
    assert who == "kubedr exporter <exporter@kubedr.invalid>|kubedr exporter <exporter@kubedr.invalid>"
