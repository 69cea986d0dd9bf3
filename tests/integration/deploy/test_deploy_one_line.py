"""A broken environment is one line, never a traceback: exit 2 for a setting that cannot work (a missing or garbage
kubeconfig), 1 for a server that refuses (a closed API port, an SSH remote that refuses the connection)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, run_git, write_kubeconfig


def kubedr(*args: str | Path, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_") and k != "KUBECONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    level = ["--log-level", "WARNING"] if quiet else []
    return subprocess.run([sys.executable, "-m", "kubedr", *level, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def stage(command: str, kubeconfig: Path | str, repo: Path | str, tmp_path: Path) -> list[str | Path]:
    scope = ["--namespaces", "shop"] if command == "export" else []
    return [command, "--once", "--kubeconfig", kubeconfig, "--repo", repo, "--workdir", tmp_path / "work", *scope]


@pytest.mark.parametrize("command", ["export", "apply"])
@pytest.mark.parametrize("kind,content,says", [
    ("missing", None, "Invalid kube-config file. No configuration found."),
    ("garbage", "clusters: [\n", "while parsing a flow"),
    ("no context", "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", "context"),
])
def test_an_unusable_kubeconfig_is_one_line_and_exit_2(command: str, kind: str, content: str | None, says: str,
                                                       tmp_path: Path, git_remote: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    proc = kubedr(*stage(command, kubeconfig, git_remote, tmp_path))
    line = one_line(proc)
    assert proc.returncode == 2 and f"kubeconfig {kubeconfig}: " in line and says in line, line


@pytest.mark.parametrize("command", ["export", "apply"])
def test_a_closed_api_port_is_one_line_and_exit_1(command: str, tmp_path: Path, git_remote: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "closed.kubeconfig", f"http://127.0.0.1:{free_port()}")
    proc = kubedr(*stage(command, kubeconfig, git_remote, tmp_path), quiet=True)
    line = one_line(proc)
    assert proc.returncode == 1 and "API server http://127.0.0.1:" in line and "connection refused" in line, line


@pytest.fixture
def refusing_ssh_remote() -> tuple[str, str]:
    """An SSH URL whose port refuses connections, and the line ssh says about it."""
    port = free_port()
    return f"ssh://git@127.0.0.1:{port}/config.git", f"ssh: connect to host 127.0.0.1 port {port}: Connection refused"


@pytest.mark.parametrize("command", ["export", "apply"])
def test_an_ssh_remote_that_refuses_is_named_by_ssh_s_own_line(command: str, emulator: object, tmp_path: Path,
                                                               refusing_ssh_remote: tuple[str, str]) -> None:
    url, says = refusing_ssh_remote
    proc = kubedr(*stage(command, tmp_path / "kubeconfig", url, tmp_path), quiet=True)
    line = one_line(proc)
    assert proc.returncode == 1 and says in line and line.index(says) < 120, line


def test_status_names_an_ssh_remote_that_refuses(refusing_ssh_remote: tuple[str, str]) -> None:
    url, says = refusing_ssh_remote
    proc = kubedr("status", "--repo", url)
    assert proc.returncode == 1 and proc.stderr == ""
    row = next(line for line in proc.stdout.splitlines() if "unreachable" in line)
    assert row.split()[:3] == ["repo", "git", "unreachable"], proc.stdout
    details = " ".join(proc.stdout.split("repo git:", 1)[1].split())  # the details below the table wrap
    assert says in details, proc.stdout


def test_init_names_an_ssh_remote_that_refuses(refusing_ssh_remote: tuple[str, str]) -> None:
    url, says = refusing_ssh_remote
    proc = kubedr("init", "--repo", url)
    line = one_line(proc)
    assert proc.returncode == 1 and f"git clone: {says}" in line, line


@pytest.mark.parametrize("command", [["switchover"], ["promote", "--cluster-name", "dr"], ["diff"]])
def test_any_command_names_a_closed_api_port_in_one_line(command: list[str], tmp_path: Path, git_remote: Path) -> None:
    run_git("clone", "-q", str(git_remote), str(tmp_path / "clone"))
    run_git("-C", str(tmp_path / "clone"), "commit", "-q", "--allow-empty", "-m", "first")
    run_git("-C", str(tmp_path / "clone"), "push", "-q", "origin", "HEAD:main")
    kubeconfig = write_kubeconfig(tmp_path / "closed.kubeconfig", f"http://127.0.0.1:{free_port()}")
    repo = [] if command == ["switchover"] else ["--repo", git_remote, "--workdir", tmp_path / "work"]
    proc = kubedr(*command, "--kubeconfig", kubeconfig, *repo, quiet=True)
    line = one_line(proc)
    assert proc.returncode in (1, 2) and "API server http://127.0.0.1:" in line and "connection refused" in line


@pytest.mark.parametrize("command", ["export", "apply"])
def test_a_workdir_that_is_a_file_is_one_line_and_exit_2(command: str, emulator: object, tmp_path: Path) -> None:
    (tmp_path / "work").write_text("not a directory\n")
    url = f"git://127.0.0.1:{free_port()}/config.git"
    proc = kubedr(*stage(command, tmp_path / "kubeconfig", url, tmp_path), quiet=True)
    line = one_line(proc)
    assert proc.returncode == 2 and str(tmp_path / "work") in line, line
