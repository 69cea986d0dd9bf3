"""Two emulated clusters (primary, secondary) and a Git repo the tests commit manifests to by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract
from tests.conftest import wait_until


def _emulator() -> Any:
    from kubedr.emulator.server import Emulator

    return Emulator().start()


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[Any]:
    emu = _emulator()
    emu.kubeconfig_path = str(emu.write_kubeconfig(tmp_path / "primary.kubeconfig"))
    yield emu
    emu.stop()


@pytest.fixture
def secondary(tmp_path: Path) -> Iterator[Any]:
    emu = _emulator()
    emu.kubeconfig_path = str(emu.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    yield emu
    emu.stop()


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    """A clone of the remote where a test writes manifests and commits them, as the exporter would."""

    def __init__(self, remote: Path, work: Path) -> None:
        self.remote = remote
        self.work = work
        git("clone", "-q", str(remote), str(work), cwd=work.parent)
        git("checkout", "-q", "-B", "main", cwd=work)

    def put(self, obj: dict[str, Any]) -> str:
        path = contract.ref_of(obj).path
        self.write(path, contract.dump(obj))
        return path

    def write(self, path: str, data: bytes) -> None:
        full = self.work / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)

    def remove(self, obj_or_path: dict[str, Any] | str) -> None:
        path = obj_or_path if isinstance(obj_or_path, str) else contract.ref_of(obj_or_path).path
        git("rm", "-q", path, cwd=self.work)

    def commit(self, message: str = "change", date: str | None = None, key: Path | None = None,
               force: bool = False) -> str:
        """Commit everything and push; date sets both dates, key signs it (SSH, as the exporter signs), force
        replaces the remote branch whatever it holds."""
        from kubedr.signing import Signer

        git("add", "-A", cwd=self.work)
        env_date = ["-c", "user.name=t"]
        cmd = [*env_date, "commit", "-q", "--allow-empty", "-m", message]
        if date:
            cmd += ["--date", date]
        subprocess.run(["git", *cmd], cwd=self.work, check=True, capture_output=True,
                       env={**os.environ, **({"GIT_COMMITTER_DATE": date} if date else {}),
                            **(Signer(key).git_config() if key else {})})
        git("push", "-q", *(["--force"] if force else []), "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def force(self, sha: str) -> None:
        """Move the remote branch (and this clone) to sha, whatever it was: a force-push."""
        git("reset", "-q", "--hard", sha, cwd=self.work)
        git("push", "-q", "--force", "origin", "HEAD:main", cwd=self.work)


@pytest.fixture
def repo(git_remote: Path, tmp_path: Path) -> Repo:
    return Repo(git_remote, tmp_path / "work")


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(name: str, ns: str = "shop", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": data or {"k": name}}


def deployment(name: str = "web", ns: str = "shop", replicas: int = 3, image: str = "nginx:1.27") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}}}


def apply(secondary: Any, repo: Repo | Path | str, *extra: str) -> int:
    """One `kubedr apply --once` round in process (as the CLI runs it)."""
    from kubedr.commands.cli import main

    path = str(getattr(repo, "remote", repo))
    return main(["apply", "--kubeconfig", secondary.kubeconfig_path, "--repo", path, "--once",
                 "--workdir", str(Path(secondary.kubeconfig_path).parent / "applier-work"), *extra])


def live(emu: Any, api_version: str, kind: str, name: str, ns: str | None = None) -> dict[str, Any] | None:
    """The object in an emulated cluster, None when absent (any other error is raised)."""
    from kubedr.apierrors import NotFound

    try:
        return emu.api.get(api_version, kind, name, ns)
    except NotFound:
        return None


def records_of(emu: Any) -> Any:
    """The records of the one source that applied to an emulated secondary (applier.sources)."""
    from kubedr.applier.sources import pick
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    return pick(Cluster(api_client(emu.kubeconfig_path)), None, write=False)


def inventory_of(emu: Any) -> Any:
    """The inventory of the one source that applied to an emulated secondary."""
    from kubedr.applier.inventory import Inventory
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    return Inventory(Cluster(api_client(emu.kubeconfig_path)), records_of(emu)).load()


def status_of(emu: Any) -> dict[str, Any]:
    from kubedr.applier.status import read_status
    from kubedr.kube import api_client

    return read_status(api_client(emu.kubeconfig_path))


def cli_env() -> dict[str, str]:
    """The environment of a kubedr child process: this interpreter's path, no KUBEDR_* settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


class Daemon:
    """`kubedr apply` running as it does in production, its log in a file."""

    def __init__(self, secondary: Any, repo: Repo, log: Path, *extra: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", secondary.kubeconfig_path,
             "--repo", str(repo.remote), "--interval", "200ms", "--drift-interval", "4s",
             "--workdir", str(log.parent / "applier-work"), *extra],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=cli_env())

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Any]:
    """Start `kubedr apply` daemons (secondary, repo, extra flags); all are stopped after the test."""
    started: list[Daemon] = []

    def start(secondary: Any, repo: Repo, *extra: str) -> Daemon:
        d = Daemon(secondary, repo, tmp_path / f"applier{len(started)}.log", *extra)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def status(secondary: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    """`kubedr status -o json` against the secondary: (exit code, the applier's row)."""
    proc = subprocess.run([sys.executable, "-m", "kubedr", "--log-level", "ERROR", "status", "-o", "json",
                           "--secondary-kubeconfig", secondary.kubeconfig_path, *extra],
                          capture_output=True, text=True, timeout=60, env=cli_env())
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, next(r for r in json.loads(proc.stdout) if r["component"] == "applier")


def repo_head(repo: Repo) -> str:
    return git("rev-parse", "HEAD", cwd=repo.work)


def applied(secondary: Any, repo: Repo, daemon_: Daemon, head: str | None = None) -> None:
    """Wait until the daemon recorded the repo's head (or head) as applied."""
    want = head or repo_head(repo)
    wait_until(lambda: (status_of(secondary) or {}).get("commit") == want, timeout=30,
               what=f"the applier to apply {want[:12]}; log:\n{daemon_.text()}")
