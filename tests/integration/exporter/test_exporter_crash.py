"""kill -9 of `kubedr export` at a random moment under load, then a restart: the remote equals the primary."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from pathlib import Path

import urllib3
from exporter_harness import expected_configmaps, remote_files, spawn, subjects

from tests.conftest import wait_until

CONFIGMAPS = "/api/v1/namespaces/shop/configmaps"


class Churn(threading.Thread):
    """Creates, updates and deletes ConfigMaps over HTTP as fast as the primary answers (closed loop).

    Over HTTP, as a cluster's clients write: an in-process writer never waits on I/O, holds the emulator's
    GIL and starved the exporter's own requests (seconds per GET) at 13,000 writes/s, six times the
    exporter's throughput goal; over HTTP the load (~2,000 writes/s here) slows down with the machine.
    """

    def __init__(self, primary, seed: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rng, self.ops, self.stop = primary.url, random.Random(seed), 0, threading.Event()
        self.http = urllib3.PoolManager(headers={"Authorization": f"Bearer {primary.token}",
                                                 "Content-Type": "application/json"})
        self.error: str | None = None

    def _call(self, method: str, path: str, body: dict | None = None) -> None:
        r = self.http.request(method, self.url + path, body=json.dumps(body) if body else None,
                              timeout=urllib3.Timeout(connect=10, read=30))
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {r.data[:200]!r}")

    def run(self) -> None:
        live: set[str] = set()
        try:
            while not self.stop.is_set():
                name = f"cm-{self.rng.randrange(60)}"
                obj = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": str(self.ops)},
                       "metadata": {"name": name, "namespace": "shop"}}
                if name not in live:
                    self._call("POST", CONFIGMAPS, obj)
                    live.add(name)
                elif self.rng.random() < 0.25:
                    self._call("DELETE", f"{CONFIGMAPS}/{name}")
                    live.discard(name)
                else:
                    self._call("PUT", f"{CONFIGMAPS}/{name}", obj)
                self.ops += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.error = f"churn stopped: {exc}"


def test_sigkill_under_load_then_restart_converges(primary, git_daemon, tmp_path: Path) -> None:
    # The remote is served by `git daemon`, as a Git host is: the kill takes the exporter and its own git
    # children down, not the remote's receive-pack (a receive-pack killed mid ref update leaves a lock on the
    # remote that git never clears; the exporter then names it in its push error).
    bare, url = git_daemon("repo.git")
    workdir, log = tmp_path / "clone", tmp_path / "exporter.log"
    procs = [spawn(primary, url, workdir, log)]
    churn = Churn(primary, seed=int.from_bytes(os.urandom(2), "big"))

    def alive(cond):
        """A condition that fails at once, with the reason, when the exporter or the churn died."""
        def check() -> bool:
            if procs[-1].poll() is not None:
                raise AssertionError(f"the exporter exited with {procs[-1].returncode}")
            if churn.error:
                raise AssertionError(churn.error)
            return cond()
        return check

    try:
        wait_until(alive(lambda: remote_files(bare)), timeout=30, what="startup resync pushed")
        churn.start()
        for round_ in range(2):
            commits = len(subjects(bare)) + 3
            wait_until(alive(lambda commits=commits: len(subjects(bare)) >= commits), timeout=30,
                       what=f"the exporter committing under load (round {round_})")
            target = churn.ops + random.randrange(0, 500)
            wait_until(alive(lambda target=target: churn.ops >= target), timeout=30, what="load before the kill")
            os.killpg(procs[-1].pid, signal.SIGKILL)
            procs[-1].wait(10)
            after = churn.ops + 100
            wait_until(lambda after=after: churn.ops >= after, timeout=30, what="changes while the exporter is down")
            procs.append(spawn(primary, url, workdir, log))
            wait_until(alive(lambda after=after: churn.ops >= after + 100), timeout=30,
                       what=f"load after restart {round_}")
        churn.stop.set()
        churn.join(30)
        assert churn.error is None, churn.error

        def converged() -> bool:
            files = remote_files(bare)
            return {p: t for p, t in files.items() if p.startswith("shop/ConfigMap/")} == expected_configmaps(primary.api)

        wait_until(alive(converged), timeout=30, what="remote equal to the primary (nothing lost, nothing phantom)")
        assert expected_configmaps(primary.api), "the churn should leave some ConfigMaps"
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(20) == 0, "SIGTERM should stop the exporter cleanly"
    except BaseException:
        print(f"--- exporter log tail ({log}) ---\n{log.read_text(errors='replace')[-6000:]}")
        raise
    finally:
        churn.stop.set()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
