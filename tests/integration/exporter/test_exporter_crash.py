"""kill -9 of `kubedr export` at a random moment under load, then a restart: the remote equals the primary."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from exporter_harness import export_args, remote_files, subjects

from exporter.sanitize import sanitize
from kubedr import contract
from tests.conftest import wait_until


def _spawn(primary, remote: Path, workdir: Path, log: Path) -> subprocess.Popen:
    argv = export_args(primary, remote, workdir, "--namespaces", "shop", "--push-backoff-max", "0.5s")
    return subprocess.Popen([sys.executable, "-m", "kubedr.cli", *argv], stdout=subprocess.DEVNULL,
                            stderr=log.open("ab"), start_new_session=True)


class Churn(threading.Thread):
    """Creates, updates and deletes ConfigMaps as fast as the primary takes them."""

    def __init__(self, api, seed: int) -> None:
        super().__init__(daemon=True)
        self.api, self.rng, self.ops, self.stop = api, random.Random(seed), 0, threading.Event()

    def run(self) -> None:
        live: set[str] = set()
        while not self.stop.is_set():
            name = f"cm-{self.rng.randrange(60)}"
            if name not in live:
                self.api.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": str(self.ops)},
                                 "metadata": {"name": name, "namespace": "shop"}})
                live.add(name)
            elif self.rng.random() < 0.25:
                self.api.delete("v1", "ConfigMap", name, "shop")
                live.discard(name)
            else:
                obj = self.api.get("v1", "ConfigMap", name, "shop")
                obj["data"] = {"v": str(self.ops)}
                self.api.update(obj)
            self.ops += 1


def _expected(api) -> dict[str, str]:
    out = {}
    for obj in api.list("v1", "ConfigMap", "shop"):
        clean = sanitize(obj)
        if clean is not None:
            out[contract.ref_of(obj).path] = contract.dump(clean).decode()
    return out


def test_sigkill_under_load_then_restart_converges(primary, git_remote: Path, tmp_path: Path) -> None:
    workdir, log = tmp_path / "clone", tmp_path / "exporter.log"
    proc = _spawn(primary, git_remote, workdir, log)
    wait_until(lambda: remote_files(git_remote), timeout=30, what="startup resync pushed")
    churn = Churn(primary.api, seed=int.from_bytes(os.urandom(2), "big"))
    churn.start()
    try:
        for round_ in range(2):
            commits = len(subjects(git_remote)) + 3
            wait_until(lambda commits=commits: len(subjects(git_remote)) >= commits, timeout=30,
                       what="the exporter committing under load")
            target = churn.ops + random.randrange(0, 500)
            wait_until(lambda target=target: churn.ops >= target, timeout=30, what="load before the kill")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            after = churn.ops + 100
            wait_until(lambda after=after: churn.ops >= after, timeout=30, what="changes while the exporter is down")
            proc = _spawn(primary, git_remote, workdir, log)
            wait_until(lambda after=after: churn.ops >= after + 100, timeout=30, what=f"load after restart {round_}")
    finally:
        churn.stop.set()
        churn.join(10)

    def converged() -> bool:
        files = remote_files(git_remote)
        return {p: t for p, t in files.items() if p.startswith("shop/ConfigMap/")} == _expected(primary.api)

    try:
        wait_until(converged, timeout=30, what="remote equal to the primary (nothing lost, nothing phantom)")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()[-3000:]
    assert _expected(primary.api), "the churn should leave some ConfigMaps"
