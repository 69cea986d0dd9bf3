"""A push over a kept HTTP connection: reading git's pkt-lines and a host's advertisement, leaving to git push what
git's own settings govern, and never waiting past the push's time on a silent host."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedr import git, smarthttp
from tests.conftest import run_git


def pkt(payload: bytes) -> bytes:
    return b"%04x" % (len(payload) + 4) + payload


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=20), st.binary(max_size=50))
def test_pkt_lines_gives_each_payload_up_to_the_flush(payloads: list[bytes], after: bytes) -> None:
    stream = io.BytesIO(b"".join(pkt(p) for p in payloads) + b"0000" + after)
    assert list(smarthttp.pkt_lines(stream)) == payloads
    assert stream.read() == after  # what follows the flush (send-pack's status lines) is left to read


def test_the_advertisement_is_what_follows_the_service_header_and_its_metadata() -> None:
    refs = pkt(b"1" * 40 + b" refs/heads/main\x00report-status\n") + b"0000"
    body = pkt(b"# service=git-receive-pack\n") + pkt(b"some metadata\n") + b"0000" + refs
    assert smarthttp.advertised(body) == refs


@pytest.mark.parametrize("body", [b"", b"001e# service=git-upload-pack\n0000",
                                  b"1" * 40 + b"\trefs/heads/main\n",  # a dumb host's info/refs
                                  pkt(b"# service=git-receive-pack\n") + b"00",
                                  b"<html>sign in</html>"])
def test_anything_but_a_smart_receive_pack_answer_is_left_to_git_push(body: bytes) -> None:
    with pytest.raises(smarthttp.Declined):
        smarthttp.advertised(body)


@pytest.fixture
def gitdir(tmp_path: Path) -> Path:
    run_git("init", "-q", "--bare", str(tmp_path / "clone.git"))
    return tmp_path / "clone.git"


@pytest.mark.parametrize("env, config", [
    ({"https_proxy": "http://proxy:3128"}, {}),
    ({"GIT_SSL_NO_VERIFY": "1"}, {}),
    ({}, {"http.sslVerify": "false"}),
    ({}, {"http.https://git.example.com/.proxy": "http://proxy:3128"}),
    ({}, {"url.https://mirror.example.com/.insteadOf": "https://git.example.com/"}),
])
def test_git_settings_this_does_not_apply_leave_every_push_to_git(gitdir: Path, env: dict[str, str],
                                                                  config: dict[str, str]) -> None:
    for key, value in config.items():
        run_git("--git-dir", str(gitdir), "config", key, value)
    push = smarthttp.Session("https://git.example.com/config.git", gitdir, {"PATH": "/usr/bin:/bin", **env})
    assert push.push("1" * 40, "refs/heads/main") is None  # nothing was reached: git.example.com does not resolve
    assert push.push("1" * 40, "refs/heads/main") is None  # and the next push too


def test_a_silent_host_fails_the_push_at_its_time_not_at_the_read_timeout(gitdir: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    push = smarthttp.Session(f"http://kubedr:t0ken@127.0.0.1:{listener.getsockname()[1]}/config.git", gitdir,
                          {"PATH": "/usr/bin:/bin"})
    started = time.monotonic()
    with pytest.raises(git.GitError) as err:
        push.push("1" * 40, "refs/heads/main", timeout=1.0)
    assert time.monotonic() - started < 5 < smarthttp.READ_TIMEOUT
    assert "t0ken" not in str(err.value) and "127.0.0.1" in str(err.value)
    listener.close()
    for conn in accepted:
        conn.close()


def test_a_line_that_is_no_pkt_line_ends_the_requests_and_is_kept() -> None:
    stream = io.BytesIO(b"ok refs/heads/main\n")  # send-pack's status when the host had the commit already
    with pytest.raises(smarthttp.Unframed) as said:
        list(smarthttp.pkt_lines(stream))
    assert said.value.args[0] + stream.read() == b"ok refs/heads/main\n"


def test_git_settings_for_a_url_with_a_token_are_matched_without_showing_it(gitdir: Path) -> None:
    run_git("--git-dir", str(gitdir), "config", "http.https://git.example.com/.sslVerify", "false")
    push = smarthttp.Session("https://kubedr:t0ken@git.example.com/config.git", gitdir, {"PATH": "/usr/bin:/bin"})
    assert push._without_password() == "https://kubedr@git.example.com/config.git"  # what git config is given
    assert push.push("1" * 40, "refs/heads/main") is None  # the setting matched: git's to apply
