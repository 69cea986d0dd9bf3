"""Two emulated clusters (primary, secondary) and a Git repo the tests commit manifests to by hand."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract


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

    def commit(self, message: str = "change", date: str | None = None) -> str:
        git("add", "-A", cwd=self.work)
        env_date = ["-c", "user.name=t"]
        cmd = [*env_date, "commit", "-q", "--allow-empty", "-m", message]
        if date:
            cmd += ["--date", date]
        subprocess.run(["git", *cmd], cwd=self.work, check=True, capture_output=True,
                       env={**__import__("os").environ, **({"GIT_COMMITTER_DATE": date} if date else {})})
        git("push", "-q", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


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


def status_of(emu: Any) -> dict[str, Any]:
    from kubedr.applier.status import read_status
    from kubedr.kube import api_client

    return read_status(api_client(emu.kubeconfig_path))
