"""Nothing hangs: against servers that accept TCP and never answer, every command ends within 30 s with one line,
and every daemon stops within 5 s of SIGTERM, whatever it waits on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SilentServer, wait_until, write_kubeconfig

BOUND = 30.0  # seconds a command may take against a server that never answers
STOP = 5.0  # seconds a daemon may take after SIGTERM


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_") and k != "KUBECONFIG"}
    out["PYTHONPATH"] = os.pathsep.join(sys.path)
    return out


def kubedr(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kubedr", "--log-level", "WARNING", *map(str, args)],
                          capture_output=True, text=True, timeout=BOUND * 3, env=env())
    return proc, time.monotonic() - started


def daemon(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kubedr", "--log-level", "WARNING", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def silent_kubeconfig(silent_server: SilentServer, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "silent.kubeconfig", silent_server.url)


def test_export_once_gives_up_on_a_silent_api_server(silent_kubeconfig: Path, git_remote: Path,
                                                     tmp_path: Path) -> None:
    proc, took = kubedr("export", "--once", "--kubeconfig", silent_kubeconfig, "--namespaces", "shop", "--repo",
                        git_remote, "--workdir", tmp_path / "clone")
    assert proc.returncode == 1 and took < BOUND, (took, proc.stderr)
    assert "no answer within 15 s" in one_line(proc.stderr) and "GET /api/v1" in proc.stderr


def test_apply_once_gives_up_on_a_silent_api_server(silent_kubeconfig: Path, git_remote: Path,
                                                    tmp_path: Path) -> None:
    proc, took = kubedr("apply", "--once", "--kubeconfig", silent_kubeconfig, "--repo", git_remote, "--workdir",
                        tmp_path / "mirror")
    assert proc.returncode == 1 and took < BOUND, (took, proc.stderr)
    line = one_line(proc.stderr)
    assert "round failed: API server http://127.0.0.1:" in line and "no answer within 15 s" in line


def test_status_gives_up_on_two_silent_api_servers_at_once(silent_kubeconfig: Path, tmp_path: Path) -> None:
    other = SilentServer()
    try:
        second = write_kubeconfig(tmp_path / "second.kubeconfig", other.url)
        proc, took = kubedr("status", "--primary-kubeconfig", silent_kubeconfig, "--secondary-kubeconfig", second)
    finally:
        other.close()
    assert proc.returncode == 1 and took < BOUND, (took, proc.stderr)
    rows = [line.split() for line in proc.stdout.splitlines() if "unreachable" in line]
    assert [r[:3] for r in rows] == [["primary", "exporter", "unreachable"],
                                     ["secondary", "applier", "unreachable"]], proc.stdout
    assert proc.stdout.count("no answer within 10 s") == 2 and proc.stderr == ""


def test_leader_election_without_its_namespace_is_one_line(emulator: object, tmp_path: Path,
                                                           git_remote: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"  # the emulator fixture wrote it; there is no kubedr-system namespace
    proc, took = kubedr("export", "--once", "--leader-elect", "--kubeconfig", kubeconfig, "--namespaces", "shop",
                        "--repo", git_remote, "--workdir", tmp_path / "clone")
    assert proc.returncode == 1 and took < BOUND, (took, proc.stderr)
    line = one_line(proc.stderr)
    assert "lease kubedr-system/kubedr-exporter cannot be created" in line and "kubedr-system" in line


def test_leader_election_once_gives_up_on_a_silent_api_server(silent_kubeconfig: Path, git_remote: Path,
                                                              tmp_path: Path) -> None:
    proc, took = kubedr("apply", "--once", "--leader-elect", "--kubeconfig", silent_kubeconfig, "--repo", git_remote,
                        "--workdir", tmp_path / "work")
    assert proc.returncode == 1 and took < BOUND, (took, proc.stderr)
    line = one_line(proc.stderr)
    assert "lease kubedr-system/kubedr-applier cannot be read" in line and "no answer within" in line, line


def stops_within(proc: subprocess.Popen[str], bound: float = STOP) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running {bound} s after SIGTERM")
    assert time.monotonic() - sent < bound
    return proc.returncode, err


@pytest.mark.parametrize("command", ["export", "apply"])
def test_a_daemon_stops_within_5_s_of_sigterm_while_the_api_server_is_silent(
        command: str, silent_server: SilentServer, silent_kubeconfig: Path, git_remote: Path, tmp_path: Path) -> None:
    args = ["--namespaces", "shop"] if command == "export" else []
    proc = daemon(command, "--kubeconfig", silent_kubeconfig, "--repo", git_remote, "--workdir", tmp_path / "w",
                  *args)
    wait_until(lambda: silent_server.accepted, timeout=BOUND, what="a request in flight, unanswered")
    code, err = stops_within(proc)
    assert code == 143 and "still busy 4 s after SIGTERM" in one_line(err), err


def test_an_exporter_waiting_on_a_silent_git_remote_stops_within_5_s_of_sigterm(
        emulator: object, silent_server: SilentServer, tmp_path: Path) -> None:
    proc = daemon("export", "--kubeconfig", tmp_path / "kubeconfig", "--namespaces", "shop", "--repo",
                  f"git://127.0.0.1:{silent_server.port}/config.git", "--workdir", tmp_path / "w")
    wait_until(lambda: silent_server.accepted, timeout=BOUND, what="git connected, waiting for the remote")
    code, err = stops_within(proc)  # git is killed at once: the exporter stops cleanly, saying what it waited on
    assert code == 0 and "writer role from git://127.0.0.1:" in one_line(err) and "stopped by signal 9" in err
