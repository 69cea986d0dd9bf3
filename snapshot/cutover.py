"""--cutover: switch a kubeadm node's etcd to the restored member while its control plane is stopped.

The kubelet runs etcd and kube-apiserver from static pod manifests: moving them aside stops them, putting them
back starts them. Every step is written to a journal first, so a failure (or a kill) before etcd is healthy
again is undone: the old data dir, files and manifests go back. A re-run undoes an interrupted run and then
cuts over afresh; after a finished cut-over to the same snapshot it does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kubedr.snapshot import etcd, restore

log = logging.getLogger("kubedr.snapshot")
MANIFESTS = "etc/kubernetes/manifests"
ASIDE = "etc/kubernetes/manifests.kubedr-aside"  # outside the kubelet's staticPodPath
NEW = "etc/kubernetes/manifests.kubedr-new"
JOURNAL = "etc/kubernetes/kubedr-cutover.json"
ETCD_VOLUME = "etcd-data"
STEPS = ("stopping", "stopped", "data-aside", "data-in", "files", "starting", "done")


class CutoverError(Exception):
    """The cut-over failed; the message says at which step and whether the node was put back."""


@dataclass
class Journal:
    """What has been done so far, enough to undo it."""

    snapshot: str
    step: str
    data_dir: str
    old_data_dir: str  # the data dir etcd.yaml pointed at before
    old_data_aside: str = ""  # where the old data dir was moved, when the restored member takes its place
    files: list[tuple[str, str]] = field(default_factory=list)  # (placed file, its backup copy or "")

    def at_least(self, step: str) -> bool:
        return STEPS.index(self.step) >= STEPS.index(step)


def _read_journal(root: Path) -> Journal | None:
    try:
        doc = json.loads((root / JOURNAL).read_text())
        doc["files"] = [tuple(f) for f in doc.get("files", [])]
        return Journal(**doc)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise CutoverError(f"{root / JOURNAL}: unreadable journal ({exc}); look at it and remove it") from exc


def _write_journal(root: Path, j: Journal) -> None:
    path = root / JOURNAL
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(j), indent=2) + "\n")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _pod(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CutoverError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise CutoverError(f"{path}: not a Pod manifest")
    return doc


def _flags(pod: dict[str, Any]) -> dict[str, str]:
    """--name=value flags of the first container's command."""
    out: dict[str, str] = {}
    for c in (pod.get("spec", {}).get("containers") or [{}])[:1]:
        for arg in [*(c.get("command") or []), *(c.get("args") or [])]:
            if isinstance(arg, str) and arg.startswith("--") and "=" in arg:
                k, v = arg[2:].split("=", 1)
                out[k] = v
    return out


def etcd_data_dir(pod: dict[str, Any], where: Path) -> Path:
    """The host path of etcd's data volume in etcd.yaml."""
    for v in pod.get("spec", {}).get("volumes") or []:
        if v.get("name") == ETCD_VOLUME and (v.get("hostPath") or {}).get("path"):
            return Path(v["hostPath"]["path"])
    raise CutoverError(f"{where}: no {ETCD_VOLUME} hostPath volume: not a kubeadm etcd manifest")


def point_at(pod: dict[str, Any], data_dir: Path, root: Path) -> dict[str, Any]:
    """etcd.yaml with its data volume's hostPath at data_dir (given under root, written as the node sees it)."""
    for v in pod["spec"]["volumes"]:
        if v.get("name") == ETCD_VOLUME:
            v["hostPath"]["path"] = "/" + data_dir.relative_to(root).as_posix() if root != Path("/") else str(data_dir)
    return pod


def host_path(path: str, root: Path) -> Path:
    """A path as written in a manifest (absolute on the node) under the target root."""
    return root / path.lstrip("/")


def _addresses(manifests: Path) -> list[tuple[str, int]]:
    """(host, port) etcd and kube-apiserver listen on, from their manifests."""
    out: list[tuple[str, int]] = []
    etcd_pod, api_pod = manifests / "etcd.yaml", manifests / "kube-apiserver.yaml"
    if etcd_pod.is_file():
        f = _flags(_pod(etcd_pod))
        for key in ("listen-client-urls", "listen-peer-urls"):
            for url in filter(None, f.get(key, "").split(",")):
                parts = urlsplit(url)
                out.append((parts.hostname or "127.0.0.1", parts.port or 2379))
    if api_pod.is_file():
        f = _flags(_pod(api_pod))
        out.append((f.get("advertise-address") or f.get("bind-address") or "127.0.0.1",
                    int(f.get("secure-port", "6443"))))
    return [("127.0.0.1" if h in ("0.0.0.0", "::", "") else h, p) for h, p in out]


def _listening(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


def _wait(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise CutoverError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _etcd_client(manifests: Path, root: Path) -> etcd.Client:
    f = _flags(_pod(manifests / "etcd.yaml"))
    urls = (f.get("advertise-client-urls") or f.get("listen-client-urls") or "https://127.0.0.1:2379").split(",")
    tls = etcd.kubeadm_tls(root / "etc/kubernetes/pki")
    https = urls[0].startswith("https://")
    cacert, cert, key = tls if https and tls else (None, None, None)
    return etcd.Client((urls[0],), cacert, cert, key, timeout="5s")


@dataclass
class Cutover:
    plan: restore.Plan
    root: Path
    timeout: float = 300.0

    @property
    def manifests(self) -> Path:
        return self.root / MANIFESTS

    def run(self) -> str:
        """Cut over, or say why not; any failure before etcd is healthy puts the node back."""
        if done := finished(self.root, self.plan.manifest.id):
            return done
        j = _read_journal(self.root)
        if j and j.step != "done":
            log.warning("an earlier cut-over to %s stopped at %r: undoing it first", j.snapshot, j.step)
            self.undo(j)
        restore.restore_member(self.plan)  # while the old control plane still serves
        j = Journal(self.plan.manifest.id, "stopping", str(self.plan.data_dir), "")
        try:
            self._forward(j)
        except BaseException as exc:
            if j.at_least("stopping"):
                log.error("cut-over failed at %r (%s): putting the old data dir and manifests back", j.step, exc)
                self.undo(j)
                raise CutoverError(f"cut-over to {j.snapshot} failed at step {j.step!r}: {exc}; the old etcd data "
                                   "and static pod manifests are back") from exc
            raise
        finally:
            shutil.rmtree(self.plan.staged_dir, ignore_errors=True)
        return f"cut over to {j.snapshot}: etcd healthy on {j.data_dir}" + (
            f", old data kept at {j.old_data_aside}" if j.old_data_aside else f", old data dir {j.old_data_dir} kept")

    def _forward(self, j: Journal) -> None:
        aside, new = self.root / ASIDE, self.root / NEW
        old_data = current_data_dir(self.root)
        j.old_data_dir = str(old_data)
        ports = _addresses(self.manifests)
        _write_journal(self.root, j)
        aside.mkdir(parents=True, exist_ok=True)
        for f in sorted(self.manifests.glob("*.yaml")):
            os.replace(f, aside / f.name)
        self._step(j, "stopped")
        _wait(f"etcd and kube-apiserver to stop ({', '.join(f'{h}:{p}' for h, p in ports)} closed)",
              lambda: not any(_listening(a) for a in ports), self.timeout)
        data = self.plan.data_dir
        if data == old_data and data.exists():
            j.old_data_aside = str(data.with_name(f"{data.name}.kubedr-{self.plan.stamp}"))
            self._step(j, "data-aside")
            os.replace(data, j.old_data_aside)
        else:
            self._step(j, "data-aside")
        self._step(j, "data-in")
        if data.exists():
            data.rmdir()  # empty: checked in the plan
        os.replace(self.plan.staged_dir, data)
        j.files = [(str(p.dest), str(self._backup_of(p.dest) or "")) for p in self.plan.placements
                   if not self._is_manifest(p.dest)]
        restore.keep_copies(self.plan)  # before the step: undo relies on the copies
        self._step(j, "files")
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        for p in self.plan.placements:
            if self._is_manifest(p.dest):
                restore.place(restore.Placement(p.name, p.source, new / p.dest.name, p.mode, False, p.link))
            else:
                restore.place(p)
        if not (new / "etcd.yaml").is_file():  # the snapshot had no manifests: the node's own go back
            for f in aside.glob("*.yaml"):
                shutil.copy2(f, new / f.name)
        pod = point_at(_pod(new / "etcd.yaml"), data, self.root)
        (new / "etcd.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))
        self._step(j, "starting")
        for f in sorted(new.glob("*.yaml"), key=lambda f: f.name != "etcd.yaml"):  # etcd first
            os.replace(f, self.manifests / f.name)
        client = _etcd_client(self.manifests, self.root)
        _wait(f"etcd healthy at {client.endpoints[0]}", lambda: etcd.healthy(client), self.timeout)
        self._step(j, "done")
        shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(new, ignore_errors=True)

    def _step(self, j: Journal, step: str) -> None:
        j.step = step
        _write_journal(self.root, j)
        log.info("cut-over: %s", step)

    def _is_manifest(self, dest: Path) -> bool:
        return dest.parent == self.manifests

    def _backup_of(self, dest: Path) -> Path | None:
        for what, copy in self.plan.backups:
            if dest == what:
                return copy
            if what.is_dir() and dest.is_relative_to(what):
                return copy / dest.relative_to(what) if (what / dest.relative_to(what)).exists() else None
        return None

    def undo(self, j: Journal) -> None:
        """Put the node back as it was before the cut-over began (idempotent, for any step reached)."""
        aside = self.root / ASIDE
        if j.at_least("starting"):  # the restored pods run: stop them before the old data goes back
            ports = _addresses(self.manifests)
            for f in self.manifests.glob("*.yaml"):
                f.unlink()  # the new ones: every original has waited aside since "stopping"
            _wait("the restored etcd and kube-apiserver to stop", lambda: not any(_listening(a) for a in ports),
                  self.timeout)
        returned = bool(j.old_data_aside) and not Path(j.old_data_aside).exists()  # undone before
        if j.at_least("data-in") and not returned:
            shutil.rmtree(j.data_dir, ignore_errors=True)  # the restored member: the snapshot still has it
        if j.old_data_aside and Path(j.old_data_aside).exists():
            os.replace(j.old_data_aside, j.old_data_dir)
        if j.at_least("files"):
            for dest, backup in j.files:
                copy = Path(backup) if backup else None
                if copy is not None and (copy.is_symlink() or copy.exists()):
                    link = os.readlink(copy) if copy.is_symlink() else None
                    mode = 0o777 if link else copy.stat().st_mode & 0o7777
                    restore.place(restore.Placement(dest, copy, Path(dest), mode, True, link))
                else:
                    Path(dest).unlink(missing_ok=True)
        for f in sorted(aside.glob("*.yaml"), key=lambda f: f.name != "etcd.yaml"):
            os.replace(f, self.manifests / f.name)
        shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(self.root / NEW, ignore_errors=True)
        (self.root / JOURNAL).unlink(missing_ok=True)
        log.info("cut-over to %s undone: old etcd data dir and manifests are back", j.snapshot)


def finished(root: Path, snapshot_id: str) -> str | None:
    """What to say when this node has already been cut over to the snapshot (a re-run does nothing)."""
    j = _read_journal(root)
    if j and j.step == "done" and j.snapshot == snapshot_id:
        return f"already cut over to {j.snapshot} ({j.data_dir}); nothing to do"
    return None


def current_data_dir(root: Path) -> Path:
    """etcd's data dir on this node under root (the one before an interrupted cut-over, if there was one)."""
    j = _read_journal(root)
    if j and j.step != "done":
        return Path(j.old_data_dir)
    path = root / MANIFESTS / "etcd.yaml"
    if not path.is_file():
        raise CutoverError(f"{path}: no etcd static pod manifest: --cutover needs a kubeadm node")
    return host_path(str(etcd_data_dir(_pod(path), path)), root)
