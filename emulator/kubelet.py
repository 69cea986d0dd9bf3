"""A node for tests that need running Pods: every Pod starts at once, Ready, on one address.

Off unless the Emulator is given pod_ip (no container runs; the test serves the Pods' ports itself on that
address, e.g. a webhook server on 127.0.0.1), so a Service's Endpoints list the Pods as ready addresses.
"""

from __future__ import annotations

from kubedr.emulator.errors import ApiError
from kubedr.emulator.objects import now_iso
from kubedr.emulator.store import ClusterStore

KUBELET = "kubelet"


def run_pod(store: ClusterStore, pod: dict, ip: str) -> None:
    """Write the status a kubelet reports once the Pod's containers run and pass readiness."""
    meta = pod["metadata"]
    if (pod.get("status") or {}).get("podIP") or meta.get("deletionTimestamp"):
        return
    now = now_iso()
    conditions = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                  for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
    containers = [{"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": True, "restartCount": 0,
                   "started": True, "state": {"running": {"startedAt": now}}}
                  for c in (pod.get("spec") or {}).get("containers") or []]
    status = {"phase": "Running", "conditions": conditions, "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": ip,
              "podIPs": [{"ip": ip}], "startTime": now, "containerStatuses": containers, "qosClass": "BestEffort"}
    rt = store.kind("v1", "Pod")
    with store.lock:
        live = store._entry(rt, meta["namespace"], meta["name"])
        if live is None or live.obj["metadata"].get("uid") != meta.get("uid"):
            return
        try:
            store.update_rt(rt, {**live.obj, "status": status}, meta["name"], meta["namespace"], KUBELET,
                            subresource="status")
        except ApiError:
            pass
