"""The endpoints controller's addresses: a Service's Endpoints list its selected Pods that have an IP,
ready ones under `addresses`, the others under `notReadyAddresses`, with the target ports resolved per Pod."""

from __future__ import annotations

from kubedr.emulator.errors import ApiError
from kubedr.emulator.store import ClusterStore
from kubedr.selectors import selector_matches

KCM = "kube-controller-manager"


def pod_changed(store: ClusterStore, pod: dict, before: dict | None) -> None:
    """Resync the Endpoints of every Service that selects the Pod (now or before the change)."""
    ns = pod["metadata"].get("namespace") or ""
    labels = [(o.get("metadata") or {}).get("labels") or {} for o in (pod, before) if o]
    for entry in list(store.objs.get(("", "services"), {}).get(ns, {}).values()):
        selector = (entry.obj.get("spec") or {}).get("selector")
        if selector and any(selector_matches({"matchLabels": selector}, lab) for lab in labels):
            sync(store, entry.obj)


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _target(port: dict, pod: dict) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


def sync(store: ClusterStore, svc: dict) -> None:
    """Write the Service's Endpoints subsets from the Pods it selects (subsets grouped by resolved ports)."""
    spec = svc.get("spec") or {}
    selector = spec.get("selector")
    meta = svc["metadata"]
    if not selector or meta.get("deletionTimestamp"):
        return
    ns, name = meta["namespace"], meta["name"]
    groups: dict[tuple, dict] = {}
    with store.lock:
        for entry in store.objs.get(("", "pods"), {}).get(ns, {}).values():
            pod = entry.obj
            pmeta = pod["metadata"]
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or pmeta.get("deletionTimestamp") or not selector_matches({"matchLabels": selector},
                                                                                   pmeta.get("labels") or {}):
                continue
            ports = []
            for p in spec.get("ports") or []:
                target = _target(p, pod)
                if target is not None:
                    port = {"port": target, "protocol": p.get("protocol", "TCP")}
                    if p.get("name"):
                        port = {"name": p["name"], **port}
                    ports.append(port)
            key = tuple(sorted((p.get("name", ""), p["port"]) for p in ports))
            subset = groups.setdefault(key, {"ports": ports})
            address = {"ip": ip, "targetRef": {"kind": "Pod", "namespace": ns, "name": pmeta["name"],
                                               "uid": pmeta.get("uid")}}
            subset.setdefault("addresses" if _ready(pod) else "notReadyAddresses", []).append(address)
        subsets = [{k: g[k] for k in ("addresses", "notReadyAddresses", "ports") if g.get(k)}
                   for _, g in sorted(groups.items())]
        rt = store.kind("v1", "Endpoints")
        live = store._entry(rt, ns, name)
        if live is None or (live.obj.get("subsets") or []) == subsets:
            return
        new = {k: v for k, v in live.obj.items() if k != "subsets"}
        if subsets:
            new["subsets"] = subsets
        try:
            store.update_rt(rt, new, name, ns, KCM)
        except ApiError:
            pass
