"""What the transport benchmark runs on: one config repo reached as a local path, over SSH (a real sshd) or over
HTTPS (git-http-backend with basic auth), optionally through a DelayProxy; and the percentiles it prints."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.latency_proxy import DelayProxy
from tests.conftest import free_port, run_git
from tests.gitssh import GitSSH

TOKEN = "bench-t0ken"
TRANSPORTS = ("local path", "SSH", "HTTPS")


class Hosts:
    """One sshd and one HTTPS server for the whole benchmark, serving every repo under root."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "srv"
        self.root.mkdir()
        self.ssh = GitSSH(tmp).start()
        self.https = HTTPSProcess(self.root, tmp)
        self.credentials = tmp / "git-credentials"
        self.sockets = Path(tempfile.mkdtemp(prefix="kb", dir="/tmp"))  # short: ssh socket paths fit 104 bytes
        self.proxies: list[DelayProxy] = []

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        self.https.stop()
        self.ssh.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)

    def proxy(self, port: int, delay: float) -> int:
        """A port that reaches port with delay seconds each way (port itself without delay)."""
        if not delay:
            return port
        proxy = DelayProxy(free_port(), port, delay).start()
        self.proxies.append(proxy)
        return proxy.listen


class HTTPSProcess:
    """tests.githttp in a process of its own: the Git host's work does not share the benchmark's interpreter."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.ca_file = tmp / "git-ca.crt"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.githttp", str(root), "kubedr", TOKEN, str(tmp)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class Remote:
    """A fresh bare repo, and the URL and environment with which a process reaches it over one transport."""

    def __init__(self, hosts: Hosts, transport: str, name: str) -> None:
        self.hosts, self.transport = hosts, transport
        self.bare = hosts.root / f"{name}.git"
        run_git("init", "--bare", "-q", "-b", "main", str(self.bare))

    def url(self, delay: float = 0.0) -> str:
        """The URL over this transport, through a proxy adding delay seconds each way."""
        if self.transport == "local path":
            return str(self.bare)
        if self.transport == "SSH":
            port = self.hosts.proxy(self.hosts.ssh.port, delay)
            if port != self.hosts.ssh.port:
                self.hosts.ssh.reached_at(port)
            return self.hosts.ssh.url(self.bare, port)
        port = self.hosts.proxy(self.hosts.https.port, delay)
        with self.hosts.credentials.open("a") as fh:
            fh.write(f"https://kubedr:{TOKEN}@127.0.0.1:{port}\n")
        self.hosts.credentials.chmod(0o600)
        return f"https://127.0.0.1:{port}/{self.bare.name}"

    def env(self) -> dict[str, str]:
        """A kubedr process's environment: the SSH key and pinned host key, or the credential store and CA."""
        env = {**self.hosts.ssh.client_env(), "TMPDIR": str(self.hosts.sockets), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(sys.path)}
        env.update({"GIT_SSL_CAINFO": str(self.hosts.https.ca_file), "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "credential.helper",
                    "GIT_CONFIG_VALUE_0": f"store --file={self.hosts.credentials}"})
        return env


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank); inf when a value is missing."""
    if not sorted_values:
        return math.inf
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value * 1000:.0f}"


def changed_paths(bare: Path, old: str, new: str) -> list[str]:
    """Paths a push changed."""
    args = ["diff-tree", "-r", "--name-only", "--no-commit-id"]
    args += ["--root", new] if set(old) == {"0"} else [old, new]
    return subprocess.run(["git", *args], cwd=bare, capture_output=True, text=True, check=True).stdout.split()


def load() -> str:
    """The machine's load over the last minute, on its cores."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
