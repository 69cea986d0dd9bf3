"""Two emulated clusters A and B, one bare config repo, and the real `kubedr export | apply | promote | demote`
processes between them: each side can run its exporter and its applier, as the manifests deploy them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from kubedr import contract
from kubedr.apierrors import NotFound
from tests.conftest import free_port, wait_until

NS = "shop"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}


def deployment(name: str, replicas: int = 3) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}}}


def kubedr_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


class Side:
    """One cluster with its kubedr processes."""

    def __init__(self, name: str, emu: Any, tmp: Path, remote: Path) -> None:
        self.name, self.emu, self.tmp, self.remote = name, emu, tmp, remote
        self.kubeconfig = str(emu.write_kubeconfig(tmp / f"{name}.kubeconfig"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.metrics = f"127.0.0.1:{free_port()}"
        self.starts = 0

    # -- processes -----------------------------------------------------------------------------------
    def export_args(self) -> list[str]:
        return ["--kubeconfig", self.kubeconfig, "--namespaces", NS, "--repo", str(self.remote),
                "--workdir", str(self.tmp / f"export-{self.name}"), "--cluster-name", self.name,
                "--secrets", "plaintext"]

    def start_exporter(self) -> None:
        self.starts += 1
        self._spawn("exporter", ["export", *self.export_args(), "--batch-window", "50ms",
                                 "--role-check-interval", "0.2s", "--push-backoff-max", "0.5s",
                                 "--metrics-listen", self.metrics])

    def start_applier(self) -> None:
        self._spawn("applier", ["apply", "--kubeconfig", self.kubeconfig, "--repo", str(self.remote),
                                "--workdir", str(self.tmp / f"apply-{self.name}"), "--interval", "0.1s", "--prune",
                                "--cluster-name", self.name])

    def _spawn(self, what: str, argv: list[str]) -> None:
        log = open(self.tmp / f"{self.name}-{what}.log", "ab")  # noqa: SIM115 - the process owns it
        self.procs[what] = subprocess.Popen([sys.executable, "-m", "kubedr", *argv], stdout=log,
                                            stderr=subprocess.STDOUT, env=kubedr_env(), start_new_session=True)

    def log(self, what: str) -> str:
        return (self.tmp / f"{self.name}-{what}.log").read_text(errors="replace")

    def kill(self, what: str) -> None:
        """SIGKILL: the region is gone."""
        proc = self.procs.pop(what)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, what: str) -> None:
        """SIGTERM: a planned stop (what is queued is committed and pushed)."""
        proc = self.procs.pop(what)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, self.log(what)[-3000:]

    def close(self) -> None:
        for what in list(self.procs):
            proc = self.procs.pop(what)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def readyz(self) -> str:
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/readyz", timeout=2) as resp:
                return resp.read().decode()
        except OSError as exc:
            return f"unreachable: {exc}"

    def metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    # -- commands --------------------------------------------------------------------------------------
    def promote(self, *extra: str) -> subprocess.CompletedProcess:
        return run_kubedr("promote", "--kubeconfig", self.kubeconfig, "--repo", str(self.remote),
                          "--cluster-name", self.name, "--workdir", str(self.tmp / f"promote-{self.name}"), *extra)

    def demote(self, *extra: str) -> subprocess.CompletedProcess:
        return run_kubedr("demote", *self.export_args(), "--prune", *extra)

    # -- the cluster ---------------------------------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> None:
        """Server-side apply, as a person with kubectl would."""
        self.emu.api.apply(obj, manager="kubectl", force=True)

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        """The object, None when absent (any other error is raised: an absence check must not pass on one)."""
        try:
            return self.emu.api.get(api_version, kind, name, NS)
        except NotFound:
            return None

    def data(self, name: str) -> dict[str, str] | None:
        cm = self.get("v1", "ConfigMap", name)
        return None if cm is None else cm.get("data")

    def replicas(self, name: str) -> int | None:
        dep = self.get("apps/v1", "Deployment", name)
        return None if dep is None else dep["spec"].get("replicas")

    def delete(self, api_version: str, kind: str, name: str) -> None:
        self.emu.api.delete(api_version, kind, name, NS)


def run_kubedr(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubedr", *argv], capture_output=True, text=True,
                          env=kubedr_env(), timeout=timeout)


def git(remote: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(remote), *args], capture_output=True, text=True,
                          check=True).stdout


def branch_file(remote: Path, path: str, ref: str = "main") -> str | None:
    proc = subprocess.run(["git", "--git-dir", str(remote), "show", f"{ref}:{path}"], capture_output=True,
                          text=True)
    return proc.stdout if proc.returncode == 0 else None


def writer(remote: Path) -> str:
    """'cluster@epoch' of the branch's role file."""
    from kubedr import roles

    w = roles.read_writer(str(remote), "main")
    return f"{w.cluster}@{w.epoch}" if w else ""


def sources(remote: Path, ref: str = "main") -> list[str]:
    """Source-Cluster of each commit, newest first."""
    return git(remote, "log", "--format=%(trailers:key=Source-Cluster,valueonly,separator=%x2C)", ref).splitlines()


def side_branches(remote: Path, cluster: str) -> list[str]:
    out = git(remote, "for-each-ref", "--format=%(refname:short)", f"refs/heads/kubedr/unreplicated/{cluster}/")
    return out.split()


def cm_path(name: str) -> str:
    return contract.ref_of(configmap(name)).path


def wait_data(side: Side, name: str, data: dict[str, str] | None, what: str = "", timeout: float = 30) -> None:
    wait_until(lambda: side.data(name) == data, timeout=timeout, what=what or f"{name} = {data} on {side.name}")


def start_pair(pair: dict[str, Side], web_replicas: int) -> tuple[Side, Side]:
    """A writes and exports, B exports (fenced while A is the writer) and applies: the standby both tests start from."""
    a, b = pair["A"], pair["B"]
    a.put(configmap("settings", v="1"))
    a.put(deployment("web", web_replicas))
    a.start_exporter()
    b.start_exporter()
    b.start_applier()
    wait_data(b, "settings", {"v": "1"}, "the initial sync")
    wait_until(lambda: b.replicas("web") == 0, timeout=30, what="web held at 0 on the standby")
    return a, b
