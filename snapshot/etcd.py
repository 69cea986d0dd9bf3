"""Talk to etcd through its own tools: take a snapshot, check it, describe the member, restore a data dir."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# kubeadm's client certificate choices under pki/etcd, best first
KUBEADM_CLIENT_CERTS = (("healthcheck-client.crt", "healthcheck-client.key"), ("server.crt", "server.key"))
READ_CHUNK = 4 << 20
SAVE_TIMEOUT = "2h"  # etcdctl's bound on a whole snapshot stream (a large database on a slow disk)
STALL_TIMEOUT = 20.0  # seconds a snapshot stream may go without a byte before etcdctl is killed
QUERY_TIMEOUT = 30.0  # seconds for etcdctl to answer a query (member list, endpoint status)


class EtcdError(Exception):
    """etcd or one of its tools failed; the message says which step and why."""


@dataclass(frozen=True)
class Client:
    """How to reach etcd: endpoints and optional client TLS."""

    endpoints: tuple[str, ...]
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    timeout: str = "10s"

    def flags(self, single: bool = False, timeout: str | None = None) -> list[str]:
        eps = self.endpoints[:1] if single else self.endpoints
        out = [f"--endpoints={','.join(eps)}", "--dial-timeout=5s", f"--command-timeout={timeout or self.timeout}"]
        out += [f"--{name}={value}" for name, value in
                (("cacert", self.cacert), ("cert", self.cert), ("key", self.key)) if value]
        return out


@dataclass(frozen=True)
class SnapshotStatus:
    """What `etcdctl snapshot status` says about a snapshot file."""

    hash: int
    revision: int
    total_keys: int
    total_size: int


@dataclass(frozen=True)
class Member:
    """The member the snapshot came from: name, peer URLs, version and IDs."""

    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    version: str = ""
    member_id: str = ""
    cluster_id: str = ""
    leader: bool = False
    members: tuple[tuple[str, tuple[str, ...]], ...] = ()  # every member of the cluster: (name, peer URLs)


def kubeadm_tls(pki_dir: Path) -> tuple[str, str, str] | None:
    """(cacert, cert, key) as kubeadm lays them out under pki/etcd, or None if absent."""
    etcd = pki_dir / "etcd"
    if not (etcd / "ca.crt").is_file():
        return None
    for crt, key in KUBEADM_CLIENT_CERTS:
        if (etcd / crt).is_file() and (etcd / key).is_file():
            return str(etcd / "ca.crt"), str(etcd / crt), str(etcd / key)
    return None


def _run(args: list[str], step: str, timeout: float = 3600, stop: threading.Event | None = None) -> str:
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    except FileNotFoundError as exc:
        raise EtcdError(f"{step}: {args[0]} not found") from exc
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    raise EtcdError(f"{step}: stopped") from None
                if time.monotonic() > deadline:
                    raise EtcdError(f"{step}: timed out after {timeout:g}s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        lines = (err or out).strip().splitlines()
        raise EtcdError(f"{step}: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return out


def take(client: Client, dest: Path, stop: threading.Event | None = None,
         stall: float = STALL_TIMEOUT) -> tuple[str, bool]:
    """Stream a snapshot from the first endpoint into dest, hashing it while etcdctl writes it.

    Returns the file's sha256 and whether etcd's trailing integrity hash was present (it is checked: a
    mismatch raises). etcdctl writes dest.part, then renames it; the reader follows the growing file. A stream
    that goes `stall` seconds without a byte (an etcd that accepts and never answers), or stop being set, kills
    etcdctl and raises EtcdError.
    """
    part = dest.with_name(dest.name + ".part")
    env = dict(os.environ, ETCDCTL_API="3")
    # etcdctl bounds the whole transfer by --command-timeout: give a large database time to stream
    args = ["etcdctl", *client.flags(single=True, timeout=SAVE_TIMEOUT), "snapshot", "save", str(dest)]
    step = f"etcdctl snapshot save {dest}"
    try:
        errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty etcdctl cannot block on it
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors, env=env)
    except FileNotFoundError as exc:
        raise EtcdError(f"{step}: etcdctl not found") from exc
    hasher = _TailHasher()
    progress = [time.monotonic()]

    def idle() -> None:
        """Wait a little for the writer; give up when stopped or when etcd sent nothing for too long."""
        if stop is not None and stop.is_set():
            raise EtcdError(f"{step}: stopped")
        if time.monotonic() - progress[0] > stall:
            raise EtcdError(f"{step}: no data from {client.endpoints[0]} for {stall:g} s (etcd does not answer)")
        time.sleep(0.005)

    try:
        fh = None
        while fh is None and proc.poll() is None:
            try:
                fh = open(part, "rb")
            except FileNotFoundError:
                idle()
        if fh is None and dest.exists():
            fh = open(dest, "rb")  # finished before we looked
        if fh is not None:
            with fh:
                exited = False
                while True:
                    chunk = fh.read(READ_CHUNK)
                    if chunk:
                        hasher.update(chunk)
                        progress[0] = time.monotonic()
                    elif exited:
                        break  # etcdctl is done and everything it wrote has been read
                    elif proc.poll() is not None:
                        exited = True  # one more pass reads what it wrote last
                    else:
                        idle()  # caught up with the writer
        proc.wait()
        errors.seek(0)
        err = errors.read().decode(errors="replace")
        errors.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            part.unlink(missing_ok=True)
    if proc.returncode != 0:
        lines = err.strip().splitlines()
        raise EtcdError(f"{step}: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    if not dest.is_file() or dest.stat().st_size != hasher.size:
        raise EtcdError(f"{step}: snapshot file changed while it was read")
    return hasher.result(dest)


class _TailHasher:
    """sha256 of a stream, keeping the last 32 bytes apart to check etcd's appended sha256 at the end."""

    def __init__(self) -> None:
        self.body = hashlib.sha256()
        self.tail = b""
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if len(chunk) >= 32:
            self.body.update(self.tail)
            self.body.update(chunk[:-32])
            self.tail = chunk[-32:]
        else:
            joined = self.tail + chunk
            self.body.update(joined[:-32])
            self.tail = joined[-32:]

    def result(self, path: Path) -> tuple[str, bool]:
        whole = self.body.copy()
        whole.update(self.tail)
        has_hash = self.size % 512 == 32  # etcd appends sha256 of the db to snapshots streamed over the API
        if has_hash and self.body.digest() != self.tail:
            raise EtcdError(f"{path}: snapshot integrity hash mismatch (corrupt snapshot)")
        return whole.hexdigest(), has_hash


def status(path: Path) -> SnapshotStatus:
    """Open the snapshot's bolt database and report hash, revision, keys and size."""
    out = _run(["etcdctl", "snapshot", "status", str(path), "-w", "json"], f"etcdctl snapshot status {path}")
    try:
        doc = json.loads(out)
        return SnapshotStatus(int(doc["hash"]), int(doc["revision"]), int(doc["totalKey"]), int(doc["totalSize"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise EtcdError(f"etcdctl snapshot status {path}: unexpected output {out[:200]!r}") from exc


def digest(path: Path) -> tuple[str, bool]:
    """sha256 of the whole file, and whether etcd's trailing sha256 integrity hash is there (checked)."""
    hasher = _TailHasher()
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.result(path)


def check(path: Path, sha256: str | None = None) -> tuple[SnapshotStatus, str]:
    """Refuse a snapshot that is corrupt or empty; returns its status and sha256 (hashed unless given)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise EtcdError(f"{path}: snapshot missing or empty")
    with ThreadPoolExecutor(1) as pool:  # etcdctl reads the bolt db while we hash the file
        pending = pool.submit(status, path)
        sha = sha256 or digest(path)[0]
        st = pending.result()
    if st.revision < 1 or st.total_size <= 0:
        raise EtcdError(f"{path}: snapshot has revision {st.revision} and size {st.total_size}: refusing it")
    return st, sha


def member(client: Client, stop: threading.Event | None = None) -> Member:
    """Describe the member behind the first endpoint (name, peer URLs, version, IDs); EtcdError when stop is set."""
    single = client.flags(single=True)
    step = f"etcdctl endpoint status {client.endpoints[0]}"
    out = _run(["etcdctl", *single, "endpoint", "status", "-w", "json"], step, QUERY_TIMEOUT, stop)
    listing = _run(["etcdctl", *single, "member", "list", "-w", "json"], "etcdctl member list", QUERY_TIMEOUT,
                   stop) if out.strip() not in ("", "[]") else ""
    try:
        st = json.loads(out or "[]")
        if not st:  # etcdctl prints [] when the endpoint did not answer within --command-timeout
            raise EtcdError(f"{step}: no answer within {client.timeout}")
        status_doc = st[0]["Status"]
        header = status_doc.get("header", {})
        mid = int(header.get("member_id", 0))
        listed = json.loads(listing).get("members", [])
        me: dict[str, Any] = next((m for m in listed if int(m.get("ID", 0)) == mid), {})
        return Member(name=me.get("name", ""), peer_urls=list(me.get("peerURLs", [])),
                      version=status_doc.get("version", ""), member_id=f"{mid:x}",
                      cluster_id=f"{int(header.get('cluster_id', 0)):x}",
                      leader=mid != 0 and int(status_doc.get("leader", 0)) == mid,
                      members=tuple(sorted((m.get("name", ""), tuple(m.get("peerURLs", []))) for m in listed)))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise EtcdError(f"{step}: unexpected answer ({type(exc).__name__}: {exc})") from exc


def healthy(client: Client) -> bool:
    """The member behind the first endpoint answers `endpoint health` (it has a leader and serves reads)."""
    try:
        out = _run(["etcdctl", *client.flags(single=True, timeout="5s"), "endpoint", "health", "-w", "json"],
                   "etcdctl endpoint health", timeout=15)
        return all(e.get("health") for e in json.loads(out))
    except (EtcdError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class RestoreTool:
    """The tool that restores a data dir, and whether it can bump the revision and mark it compacted."""

    path: str
    bump: bool


def restore_tool() -> RestoreTool:
    """etcdutl (3.5+) when installed, else etcdctl (3.4), with its revision-bump support detected."""
    for name in ("etcdutl", "etcdctl"):
        path = shutil.which(name)
        if not path:
            continue
        help_text = subprocess.run([path, "snapshot", "restore", "--help"], capture_output=True, text=True,
                                   env=dict(os.environ, ETCDCTL_API="3"))
        text = help_text.stdout + help_text.stderr
        return RestoreTool(path, "--bump-revision" in text and "--mark-compacted" in text)
    raise EtcdError("neither etcdutl nor etcdctl found on PATH")


def restore_command(tool: RestoreTool, snapshot: Path, data_dir: Path, name: str, peer_urls: list[str],
                    token: str = "etcd-cluster", bump: int = 1_000_000_000,
                    initial_cluster: list[tuple[str, str]] | None = None) -> list[str]:
    """The restore command line for this member of the cluster; bumps the revision when the tool can.

    Every member restored from the same snapshot with the same initial cluster and token joins one cluster.
    """
    urls = ",".join(peer_urls)
    cluster = initial_cluster or [(name, u) for u in peer_urls]
    cmd = [tool.path, "snapshot", "restore", str(snapshot), f"--data-dir={data_dir}", f"--name={name}",
           f"--initial-cluster={','.join(f'{n}={u}' for n, u in cluster)}",
           f"--initial-advertise-peer-urls={urls}", f"--initial-cluster-token={token}"]
    if tool.bump and bump > 0:
        cmd += [f"--bump-revision={bump}", "--mark-compacted"]
    return cmd


def run_restore(cmd: list[str]) -> None:
    """Run a restore command built by restore_command."""
    _run(cmd, "snapshot restore")
