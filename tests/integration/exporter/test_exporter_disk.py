"""The clone's disk on a bad day: full, it says so in one line and goes on once space returns; a --workdir that
cannot hold a clone (not a directory, read-only) is one line and exit 2. The small disk is a tmpfs the test mounts."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from exporter_harness import alive, expected_configmaps, export_args, remote_files, spawn

from tests.conftest import push_note, wait_until

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs for --workdir needs root "
                                                         "(CI runs the tests as root)")
FULL = "no space left on device"


def cm(name: str, size: int = 0) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
            "data": {"v": os.urandom(size).hex() if size else "1"}}


def _mount(path: Path, options: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from _mount(tmp_path / "disk", "size=16m")


def _fill(disk: Path) -> Path:
    """Write until the file system refuses: a full disk."""
    filler = disk / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _once(primary, remote: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    argv = export_args(primary, remote, workdir, "--namespaces", "shop", "--once")
    return subprocess.run([sys.executable, "-m", "kubedr", "--log-level", "WARNING", *argv], capture_output=True,
                          text=True, timeout=120)


@ROOT_ONLY
def test_a_full_disk_is_one_line_and_the_exporter_converges_once_space_returns(primary, git_remote: Path,
                                                                              small_disk: Path, tmp_path: Path) -> None:
    api = primary.api
    api.create(cm("a"))
    log = tmp_path / "exporter.log"
    proc = spawn(primary, git_remote, small_disk / "clone", log)
    running = alive(proc, log)

    def converged() -> bool:
        files = remote_files(git_remote)
        return {p: t for p, t in files.items() if p.startswith("shop/ConfigMap/")} == expected_configmaps(api)

    try:
        wait_until(running(converged), timeout=30, what="first export")
        filler = _fill(small_disk)
        for i in range(8):
            api.create(cm(f"big-{i}", 40_000))
        wait_until(running(lambda: FULL in log.read_text()), timeout=30, what="the exporter saying the disk is full")
        api.create(cm("while-full"))
        filler.unlink()
        wait_until(running(converged), timeout=60, what="every change on the remote once space returned")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert len([ln for ln in text.splitlines() if FULL in ln and " ERROR " in ln]) == 1, text[-3000:]
    assert "Traceback" not in text and "no error" not in text

    # run it twice: `--once` on the full disk says so in one line (exit 1), and converges after
    filler = _fill(small_disk)
    api.create(cm("later", 40_000))
    full = _once(primary, git_remote, small_disk / "clone")
    assert full.returncode == 1 and FULL in full.stderr and "Traceback" not in full.stderr, full.stderr
    filler.unlink()
    assert _once(primary, git_remote, small_disk / "clone").returncode == 0
    assert converged()

    # the branch moved while the disk is full: reading the writer role is the step that says so, in one line
    push_note(git_remote, tmp_path / "other", "an operator's note\n")
    filler = _fill(small_disk)
    full = _once(primary, git_remote, small_disk / "clone")
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 1 and len(lines) == 1 and FULL in lines[0] and "writer role" in lines[0], full.stderr
    filler.unlink()
    assert _once(primary, git_remote, small_disk / "clone").returncode == 0


def test_a_workdir_that_cannot_hold_a_clone_is_one_line_and_exit_2(primary, git_remote: Path,
                                                                  tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    cases = [(a_file, "not a directory"), (a_file / "below", "not a directory")]
    if os.geteuid() == 0:  # root writes anywhere on a writable mount: a read-only mount is the real case
        readonly = tmp_path / "ro"
        mounted = _mount(readonly, "ro,size=1m")
        next(mounted)
        cases.append((readonly, "read-only file system"))
    else:
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o555)
        cases.append((readonly, "permission denied"))
    try:
        for workdir, why in cases:
            proc = _once(primary, git_remote, workdir)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1, proc.stderr
            assert f"--workdir {workdir}: {why}" in lines[0]
    finally:
        if os.geteuid() == 0:
            next(mounted, None)
