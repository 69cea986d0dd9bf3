"""The exporter's pushes to an HTTPS remote: one kept connection with credentials sent at once (no TCP, TLS and
401 round trips per push), a new one when the host closed it, git push wherever git's own settings apply, and a
remote that moved is still taken in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exporter_harness import alive, export_args, git, remote_files

from tests.conftest import run_git, stop_process, wait_until
from tests.githttp import GitHTTPS

TOKEN = "s3cr3t-t0ken-0815"
PUSH, FETCH = "git-receive-pack", "git-upload-pack"


def _env(server: GitHTTPS, tmp: Path, **config: str) -> dict[str, str]:
    store = tmp / "git-credentials"
    store.write_text(f"https://kubedr:{TOKEN}@127.0.0.1:{server.port}\n")
    store.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBEDR_"))}
    settings = {"credential.helper": f"store --file={store}", **config}
    env.update({"GIT_SSL_CAINFO": str(server.ca_file), "GIT_CONFIG_COUNT": str(len(settings))})
    for i, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def _exporter(primary, server: GitHTTPS, tmp: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    argv = export_args(primary, server.url("config.git"), tmp / "clone", "--namespaces", "shop",
                       "--push-backoff-max", "0.5s")
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "kubedr", "--log-level", "DEBUG", *argv], stdout=subprocess.DEVNULL, stderr=err,
                                env=env, start_new_session=True)


def _change(primary, bare: Path, proc: subprocess.Popen, log: Path, value: str) -> None:
    """Set the ConfigMap to value and wait until the remote has it."""
    primary.api.apply({"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": value},
                       "metadata": {"name": "settings", "namespace": "shop"}}, "test")
    wait_until(alive(proc, log)(lambda: f"mode: {value}" in remote_files(bare).get(
        "shop/ConfigMap/settings.yaml", "")), timeout=30, what=f"mode {value} on the remote")


def _pushes(server: GitHTTPS) -> list[tuple[int, str, str, int]]:
    return [r for r in server.requests if PUSH in r[2]]


def _serve(tmp: Path, idle: float | None = None) -> tuple[GitHTTPS, Path]:
    root = tmp / "srv"
    run_git("init", "--bare", "-q", "-b", "main", str(root / "config.git"))
    return GitHTTPS(root, "kubedr", TOKEN, tmp, idle=idle).start(), root / "config.git"


def test_pushes_share_one_connection_and_send_their_credentials_at_once(primary, tmp_path: Path) -> None:
    server, bare = _serve(tmp_path)
    log = tmp_path / "export.log"
    proc = _exporter(primary, server, tmp_path, log, _env(server, tmp_path))
    try:
        for value in "abcde":
            _change(primary, bare, proc, log, value)
        pushes = _pushes(server)
        assert len({conn for conn, *_ in pushes}) == 1, pushes  # one TCP and TLS handshake for every push
        assert all(status == 200 for *_, status in pushes), pushes  # no 401 challenge first
        assert sum(m == "POST" for _, m, _, _ in pushes) >= 5  # a push per change at least (the first: the listing)
        assert TOKEN not in log.read_text()
    finally:
        stop_process(proc)
        server.stop()


def test_a_connection_the_host_closed_is_made_again_and_nothing_is_lost(primary, tmp_path: Path) -> None:
    server, bare = _serve(tmp_path, idle=0.3)
    log = tmp_path / "export.log"
    proc = _exporter(primary, server, tmp_path, log, _env(server, tmp_path))
    try:
        _change(primary, bare, proc, log, "a")
        first = _pushes(server)[-1][0]
        wait_until(lambda: first in server.closed, timeout=10, what="the host closing the idle connection")
        _change(primary, bare, proc, log, "b")
        assert _pushes(server)[-1][0] != first
        assert "push to" not in log.read_text()  # no failed push on the way ("push to ... failed")
        assert "mode: b" in git(bare, "show", "main:shop/ConfigMap/settings.yaml")
    finally:
        stop_process(proc)
        server.stop()


def test_git_push_makes_the_pushes_where_git_settings_apply_that_the_kept_connection_does_not(primary,
                                                                                              tmp_path: Path) -> None:
    server, bare = _serve(tmp_path)
    log = tmp_path / "export.log"
    proc = _exporter(primary, server, tmp_path, log, _env(server, tmp_path, **{"http.extraHeader": "X-Team: dr"}))
    try:
        for value in "ab":
            _change(primary, bare, proc, log, value)
        pushes = _pushes(server)
        assert any(status == 401 for *_, status in pushes)  # git's own challenge and answer: git push ran
        assert len({conn for conn, *_ in pushes}) >= 2  # a connection per push
        assert "goes through git: git settings http.extraheader" in log.read_text()
    finally:
        stop_process(proc)
        server.stop()


def test_a_remote_that_moved_under_a_push_is_taken_in(primary, tmp_path: Path) -> None:
    server, bare = _serve(tmp_path)
    log = tmp_path / "export.log"
    proc = _exporter(primary, server, tmp_path, log, _env(server, tmp_path))
    try:
        _change(primary, bare, proc, log, "a")
        since = len(server.requests)  # (an empty clone's first fetch of the role is git's own: --depth=1)
        other = tmp_path / "other"
        run_git("clone", "-q", str(bare), str(other))
        (other / "README.md").write_text("kept\n")
        run_git("-C", str(other), "add", "README.md")
        run_git("-C", str(other), "-c", "user.name=op", "-c", "user.email=op@example.com", "commit", "-qm", "readme")
        run_git("-C", str(other), "push", "-q", "origin", "HEAD:main")
        _change(primary, bare, proc, log, "b")
        assert remote_files(bare)["README.md"] == "kept\n"  # made again on the remote's tip, nothing forced
        assert "moved" in log.read_text()  # the push was rejected and replayed, through the kept connection
        later = server.requests[since:]
        assert any(FETCH in path for _, _, path, _ in later)  # the remote's new commit fetched
        assert len({conn for conn, *_ in later}) == 1, later  # fetch, role reads and pushes on one connection
        assert all(status == 200 for *_, status in later), later
    finally:
        stop_process(proc)
        server.stop()


def test_a_push_of_over_a_mebibyte_is_streamed_in_chunks_on_the_kept_connection(primary, tmp_path: Path) -> None:
    server, bare = _serve(tmp_path)
    for i in range(12):  # 12 x 128 KiB that do not compress: the first push's pack is over 1 MiB
        primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"blob": os.urandom(96 << 10).hex()},
                            "metadata": {"name": f"large-{i}", "namespace": "shop"}})
    log = tmp_path / "export.log"
    proc = _exporter(primary, server, tmp_path, log, _env(server, tmp_path))
    try:
        _change(primary, bare, proc, log, "a")
        files = remote_files(bare)
        assert all(f"shop/ConfigMap/large-{i}.yaml" in files for i in range(12))
        assert any(path.endswith(PUSH) for path in server.chunked)
        assert all(status == 200 for *_, status in _pushes(server))  # pushed by the kept connection, not git push
    finally:
        stop_process(proc)
        server.stop()
