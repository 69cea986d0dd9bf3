"""core/v1 Events as the control plane's event recorders write them (controllers, the pretend kubelet)."""

from __future__ import annotations

import time

from kubedr.emulator.errors import ApiError
from kubedr.emulator.objects import now_iso
from kubedr.emulator.store import ClusterStore

KCM = "kube-controller-manager"


def record(store: ClusterStore, obj: dict, reason: str, message: str, component: str, type_: str = "Normal",
           field_path: str = "") -> None:
    """An Event about obj (a refused write is dropped, as a recorder drops it)."""
    now = now_iso()
    meta = obj["metadata"]
    involved = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                "namespace": meta["namespace"], "resourceVersion": meta.get("resourceVersion", ""),
                "uid": meta["uid"]}
    if field_path:
        involved["fieldPath"] = field_path
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {
        "name": f"{meta['name']}.{time.time_ns():x}", "namespace": meta["namespace"]},
        "involvedObject": involved, "reason": reason, "message": message, "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": type_, "eventTime": None,
        "reportingComponent": "", "reportingInstance": ""}
    try:
        store.create_rt(store.kind("v1", "Event"), ev, meta["namespace"], KCM)
    except ApiError:
        pass
