"""The one git runner: errors name git's telling line, timeouts kill everything git started, secrets stay hidden."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from kubedr import git
from tests.conftest import run_git, wait_until


def _hang(tmp_path: Path) -> tuple[list[str], Path]:
    """A git command that starts a child and hangs; the child's pid lands in a file."""
    pidfile = tmp_path / "child.pid"
    return ["-c", f"alias.hang=!echo $$ > {pidfile}; exec sleep 60", "hang"], pidfile


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_output_and_the_telling_error_line(tmp_path: Path) -> None:
    run_git("init", "-q", "-b", "main", str(tmp_path / "r"))
    assert git.run(["rev-parse", "--is-inside-work-tree"], cwd=tmp_path / "r").text.strip() == "true"
    with pytest.raises(git.GitError) as err:
        git.run(["rev-parse", "--verify", "nosuchref^{commit}"], cwd=tmp_path / "r")
    assert str(err.value) == "git rev-parse: fatal: Needed a single revision"
    assert err.value.returncode == 128 and not err.value.timed_out
    assert git.run(["rev-parse", "--verify", "nosuchref"], cwd=tmp_path / "r", check=False).returncode == 128


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    args, pidfile = _hang(tmp_path)
    started = time.monotonic()
    with pytest.raises(git.GitError) as err:
        git.run(args, cwd=tmp_path, timeout=1)
    assert err.value.timed_out and "no answer within 1 s" in str(err.value)
    assert time.monotonic() - started < 10
    wait_until(lambda: _gone(int(pidfile.read_text())), timeout=10, what="git's child killed")


def test_a_conversation_past_its_timeout_is_killed_with_its_children_and_its_other_side_woken(tmp_path: Path) -> None:
    args, pidfile = _hang(tmp_path)
    woken: list[bool] = []
    started = time.monotonic()
    with pytest.raises(git.GitError) as err:
        with git.talk(args, timeout=1, on_timeout=lambda: woken.append(True)) as proc:
            assert proc.stdout is not None
            proc.stdout.read()  # nothing comes until it is killed
    assert "no answer within 1 s" in str(err.value) and woken == [True]
    assert time.monotonic() - started < 10
    wait_until(lambda: _gone(int(pidfile.read_text())), timeout=10, what="git's child killed")


def test_stop_all_ends_running_commands_at_once(tmp_path: Path) -> None:
    args, pidfile = _hang(tmp_path)
    failed: list[BaseException] = []

    def call() -> None:
        try:
            git.run(args, cwd=tmp_path, timeout=60)
        except git.GitError as exc:
            failed.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(pidfile.exists, timeout=10, what="the command running")
    git.stop_all()
    thread.join(10)
    assert not thread.is_alive() and failed and "signal 9" in str(failed[0])


def test_a_token_in_the_remote_url_never_reaches_the_message() -> None:
    url = "https://kubedr:s3cr3t-t0ken@127.0.0.1:1/config.git"
    with pytest.raises(git.GitError) as err:
        git.run(["ls-remote", url], remote=url, timeout=30)
    assert "s3cr3t-t0ken" not in str(err.value) and "s3cr3t-t0ken" not in err.value.stderr
    assert str(err.value).startswith("git ls-remote: fatal: unable to access")


def test_ssh_gets_time_bounds_after_the_operators_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    env = git.environment({"GIT_SSH_COMMAND": "ssh -i /k -o ConnectTimeout=3"})
    assert env["GIT_SSH_COMMAND"].startswith("ssh -i /k -o ConnectTimeout=3 ")  # ssh takes the first value
    assert "ServerAliveInterval" in env["GIT_SSH_COMMAND"] and env["GIT_TERMINAL_PROMPT"] == "0"
    assert "GIT_SSH_COMMAND" not in git.environment({"GIT_SSH": "/bin/myssh"})  # a program takes no options
    assert "ConnectTimeout=10" in git.environment()["GIT_SSH_COMMAND"]


def test_log_reads_trailers_of_each_commit(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    run_git("init", "-q", "-b", "main", str(repo))
    run_git("commit", "-q", "--allow-empty", "-m", "first\n\nWriter: prod\nWriter-Epoch: 1", cwd=repo)
    run_git("commit", "-q", "--allow-empty", "-m", "second\n\nbody line\n\nResource-Version: a=1\n"
            "Resource-Version: b=2", cwd=repo)
    second, first = git.log(["main"], cwd=repo)
    assert (first.subject, first.trailer("writer"), first.trailer("Writer-Epoch")) == ("first", ["prod"], ["1"])
    assert second.trailer("Resource-Version") == ["a=1", "b=2"] and second.trailer("Writer") == []
    assert len(second.sha) == 40 and second.time > 0
    [only] = git.log([first.sha], cwd=repo, no_walk=True)
    assert only == first


def test_a_bare_repos_own_mailmap_never_steers_git(tmp_path: Path) -> None:
    work, bare = tmp_path / "work", tmp_path / "bare.git"
    run_git("init", "-q", "-b", "main", str(work))
    (work / ".mailmap").write_text("Someone Else <tests@kubedr.invalid>\n")
    run_git("-C", str(work), "add", ".mailmap")
    run_git("-C", str(work), "-c", "user.name=kubedr-tests", "-c", "user.email=tests@kubedr.invalid", "commit", "-qm",
            "a mailmap in the tree")
    run_git("clone", "-q", "--bare", str(work), str(bare))
    assert run_git("-C", str(bare), "log", "-1", "--format=%aN").strip() == "Someone Else"  # git's own default
    assert git.run(["log", "-1", "--format=%aN"], git_dir=bare).text.strip() == "kubedr-tests"
