"""A stand-in for the kubelet's static pods: real etcd from etcd.yaml, a listener for kube-apiserver.yaml.

It watches <root>/etc/kubernetes/manifests like the kubelet does: a manifest that appears (or changes) is started,
one that goes away is stopped. Host paths in etcd's flags are mapped through the pod's hostPath volumes, under
the node root. `crash_etcd_starts` makes chosen etcd starts fail as a crash-looping pod would.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from snapshot_harness import etcd_binary

from tests.conftest import stop_process, wait_until


@dataclass
class _Running:
    content: bytes
    proc: subprocess.Popen | None = None
    listener: socket.socket | None = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self.listener is not None:
            self.listener.close()


def _refuse_requests(s: socket.socket) -> None:
    """The port is open (what the cut-over waits on); a client gets its connection closed at once."""
    while True:
        try:
            conn, _ = s.accept()
        except OSError:
            return  # the pod was stopped
        conn.close()


@dataclass
class FakeKubelet:
    root: Path
    log_dir: Path
    crash_etcd_starts: set[int] = field(default_factory=set)
    etcd_starts: int = 0
    running: dict[str, _Running] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def manifests(self) -> Path:
        return self.root / "etc/kubernetes/manifests"

    def start(self) -> FakeKubelet:
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for r in self.running.values():
            r.stop()
        self.running.clear()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.sync()

    def sync(self) -> None:
        """One pass of the kubelet's file source: start new or changed pods, stop removed ones."""
        now = {}
        for f in self.manifests.glob("*.yaml"):
            try:
                now[f.name] = f.read_bytes()
            except FileNotFoundError:
                continue
        for name in [n for n, r in self.running.items() if now.get(n) != r.content]:
            self.running.pop(name).stop()
        for name, content in now.items():
            if name not in self.running:
                self.running[name] = self._run(name, content)

    def _run(self, name: str, content: bytes) -> _Running:
        pod = yaml.safe_load(content)
        if not (pod.get("spec") or {}).get("containers"):
            return _Running(content)  # a pod this stand-in does not run (controller-manager, scheduler)
        c = pod["spec"]["containers"][0]
        cmd = [*c.get("command", []), *c.get("args", [])]
        if Path(cmd[0]).name == "etcd":
            self.etcd_starts += 1
            if self.etcd_starts in self.crash_etcd_starts:
                return _Running(content)  # CrashLoopBackOff: nothing listens
            hostpaths = {v["name"]: v["hostPath"]["path"] for v in pod["spec"].get("volumes", []) if "hostPath" in v}
            mounts = {m["mountPath"]: hostpaths[m["name"]] for m in c.get("volumeMounts", [])}
            args = [self._map(a, mounts) for a in cmd[1:]]
            log = open(self.log_dir / f"kubelet-etcd-{self.etcd_starts}.log", "wb")
            return _Running(content, proc=subprocess.Popen([etcd_binary(), *args], stdout=log,
                                                           stderr=subprocess.STDOUT))
        if Path(cmd[0]).name == "kube-apiserver":
            flags = dict(a[2:].split("=", 1) for a in cmd[1:] if a.startswith("--") and "=" in a)
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((flags.get("advertise-address", "127.0.0.1"), int(flags["secure-port"])))
            s.listen(16)
            threading.Thread(target=_refuse_requests, args=(s,), daemon=True).start()
            return _Running(content, listener=s)
        return _Running(content)

    def _map(self, arg: str, mounts: dict[str, str]) -> str:
        """--flag=/container/path -> the host path under the node root, as the volume mounts map it."""
        if not arg.startswith("--") or "=" not in arg:
            return arg
        flag, value = arg.split("=", 1)
        for mount, host in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return f"{flag}={self.root / host.lstrip('/')}{value[len(mount):]}"
        return arg

    def wait_etcd(self, timeout: float = 30) -> None:
        """Until the etcd pod runs (its process is up)."""
        wait_until(lambda: "etcd.yaml" in self.running and self.running["etcd.yaml"].proc is not None
                   and self.running["etcd.yaml"].proc.poll() is None, timeout, what="etcd pod running")


def etcd_manifest(client_port: int, peer_port: int, name: str = "cp-1") -> str:
    """etcd.yaml as kubeadm writes it (http on loopback here), data in the etcd-data hostPath /var/lib/etcd."""
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "etcd", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.15-0", "command": [
            "etcd", f"--name={name}", "--data-dir=/var/lib/etcd", f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}", f"--initial-cluster={name}={peer}", "--log-level=error"],
            "volumeMounts": [{"name": "etcd-data", "mountPath": "/var/lib/etcd"}]}],
            "hostNetwork": True,
            "volumes": [{"name": "etcd-data", "hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}}]}},
        sort_keys=False)


def apiserver_manifest(port: int) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.30.0",
                                 "command": ["kube-apiserver", "--advertise-address=127.0.0.1",
                                             f"--secure-port={port}"]}]}}, sort_keys=False)
