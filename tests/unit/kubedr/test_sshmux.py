"""One SSH connection per remote: where the control sockets live and the options every ssh git starts gets."""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator

import pytest

from kubedr import git, sshmux


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    """Each test makes its own socket directory, and removes it."""
    sshmux.close()
    yield
    sshmux.close()


def _control_path(options: str) -> str:
    found = re.search(r"-o ControlPath=(\S+)", options)
    assert found, options
    return found.group(1)


def test_commands_share_a_master_through_a_private_directory() -> None:
    options = sshmux.options("ssh -i /keys/deploy")
    assert "-o ControlMaster=auto" in options and f"-o ControlPersist={sshmux.PERSIST_SECONDS}" in options
    path = _control_path(options)
    where = os.path.dirname(path)
    info = os.lstat(where)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert os.path.basename(where).startswith(sshmux.PREFIX)
    # %C is ssh's 40-hex hash; ssh binds "<path>.<16 characters>" first: it all fits a BSD socket path
    assert len(path.replace("%C", "c" * 40)) + 17 < sshmux.SOCKET_LIMIT
    assert sshmux.options("ssh -i /keys/deploy") == options  # one directory per process, one socket per remote


def test_two_identities_for_one_host_never_share_a_connection() -> None:
    a, b = sshmux.options("ssh -i /keys/repo-a"), sshmux.options("ssh -i /keys/repo-b")
    assert os.path.dirname(_control_path(a)) == os.path.dirname(_control_path(b))
    assert _control_path(a) != _control_path(b)


def test_a_temporary_directory_too_long_for_a_socket_path_falls_back_to_tmp(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path_factory) -> None:
    long = tmp_path_factory.mktemp("t" * 60)
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    assert os.path.dirname(_control_path(sshmux.options("ssh"))).startswith(f"/tmp/{sshmux.PREFIX}")


def test_without_a_private_directory_every_command_connects_by_itself(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    def refuse(**_: object) -> str:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with caplog.at_level(logging.WARNING, "kubedr.git"):
        assert sshmux.options("ssh") == ""
    assert "ssh connections are not reused" in caplog.text and "Read-only file system" in caplog.text


def test_close_removes_the_directory() -> None:
    where = os.path.dirname(_control_path(sshmux.options("ssh")))
    sshmux.close()
    assert not os.path.exists(where)
    assert os.path.dirname(_control_path(sshmux.options("ssh"))) != where  # a later command makes a new one


def test_network_commands_get_the_shared_connection_after_the_operators_options(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    operator = "ssh -i /k -o ControlPath=none"
    shared = git.environment({"GIT_SSH_COMMAND": operator}, multiplex=True)["GIT_SSH_COMMAND"]
    assert shared.startswith(f"{operator} {git.SSH_OPTIONS} -o ControlMaster=auto")  # ssh takes the first value
    assert "ControlMaster" not in git.environment({"GIT_SSH_COMMAND": operator})["GIT_SSH_COMMAND"]
