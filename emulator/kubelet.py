"""The node every Pod runs on: a pretend kubelet that starts a Pod's containers at once and reports it Ready.

On by default (`Emulator(kubelet=False)`, `kubedr emulate --no-kubelet`: Pods stay Pending, as on a cluster
without nodes). No container runs. A Pod gets an address only with `pod_ip` (the test serves the Pods' ports
itself on it, e.g. a webhook server on 127.0.0.1); without one, Services route nowhere.

Test-only, documented in emulator/README.md: an image whose registry host ends in `.invalid` (RFC 2606: a name
that never resolves) cannot be pulled. Its container waits in ImagePullBackOff, the Pod stays Pending and not
Ready, and the kubelet's Events say why (Failed: `Failed to pull image ...`, `Error: ErrImagePull`; BackOff).
`delay` (seconds) holds every Pod back before it starts: tests make a race deterministic with it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time

from kubedr.emulator import events
from kubedr.emulator.errors import ApiError
from kubedr.emulator.objects import now_iso
from kubedr.emulator.store import ClusterStore

KUBELET = "kubelet"
UNPULLABLE_SUFFIX = ".invalid"


def registry_of(image: str) -> str:
    """The registry host of an image reference ('' for Docker Hub's short names)."""
    first, sep, _ = image.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        return ""
    return first.rpartition(":")[0] or first  # without the port


def unpullable(image: str) -> bool:
    return registry_of(image).endswith(UNPULLABLE_SUFFIX)


def _conditions(now: str, ready: bool, waiting: list[str]) -> list[dict]:
    out = []
    for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        cond: dict = {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        if not ready and t in ("Ready", "ContainersReady"):
            cond.update(status="False", reason="ContainersNotReady",
                        message=f"containers with unready status: [{' '.join(waiting)}]")
        out.append(cond)
    return out


def pod_status(pod: dict, ip: str | None) -> dict:
    """The status a kubelet reports once the Pod's containers run (or wait for an image it cannot pull)."""
    now = now_iso()
    containers, waiting = [], []
    for c in (pod.get("spec") or {}).get("containers") or []:
        image = str(c.get("image") or "")
        status = {"name": c.get("name"), "image": image, "imageID": "", "restartCount": 0}
        if unpullable(image):
            waiting.append(str(c.get("name")))
            status.update(ready=False, started=False, state={"waiting": {
                "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}})
        else:
            status.update(ready=True, started=True, state={"running": {"startedAt": now}})
        containers.append(status)
    out = {"phase": "Pending" if waiting else "Running", "conditions": _conditions(now, not waiting, waiting),
           "startTime": now, "containerStatuses": containers, "qosClass": "BestEffort"}
    if ip:
        out.update(hostIP=ip, hostIPs=[{"ip": ip}], podIP=ip, podIPs=[{"ip": ip}])
    return out


class Kubelet:
    """Starts every Pod it is told about, after `delay` seconds (one timer thread, started on first need)."""

    def __init__(self, store: ClusterStore, ip: str | None = None, delay: float = 0.0) -> None:
        self.store = store
        self.ip = ip
        self.delay = delay
        self._due: list[tuple[float, int, dict]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def pod_added(self, pod: dict) -> None:
        """A Pod was created: run it now, or after the delay."""
        if self.delay <= 0:
            self.run(pod)
            return
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + self.delay, next(self._seq), pod))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="emulator-kubelet", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopped:
                    return
                _, _, pod = heapq.heappop(self._due)
            self.run(pod)

    def run(self, pod: dict) -> None:
        """Write the Pod's status as its node reports it, and the Events of an image that cannot be pulled."""
        meta = pod["metadata"]
        if (pod.get("status") or {}).get("startTime") or meta.get("deletionTimestamp"):
            return
        status = pod_status(pod, self.ip)
        rt = self.store.kind("v1", "Pod")
        with self.store.lock:
            live = self.store._entry(rt, meta["namespace"], meta["name"])
            if live is None or live.obj["metadata"].get("uid") != meta.get("uid"):
                return
            try:
                written = self.store.update_rt(rt, {**live.obj, "status": status}, meta["name"], meta["namespace"],
                                               KUBELET, subresource="status").obj
            except ApiError:
                return
        for c in (pod.get("spec") or {}).get("containers") or []:
            image = str(c.get("image") or "")
            if unpullable(image):
                where = f"spec.containers{{{c.get('name')}}}"
                host = registry_of(image)
                for type_, reason, message in (
                        ("Warning", "Failed", f'Failed to pull image "{image}": rpc error: code = Unknown desc = '
                                              f'failed to resolve reference "{image}": dial tcp: lookup {host}: '
                                              "no such host"),
                        ("Warning", "Failed", "Error: ErrImagePull"),
                        ("Normal", "BackOff", f'Back-off pulling image "{image}"'),
                        ("Warning", "Failed", "Error: ImagePullBackOff")):
                    events.record(self.store, written, reason, message, KUBELET, type_, where)
