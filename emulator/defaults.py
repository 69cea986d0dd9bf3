"""Defaulting as the real API server does it on every write, so stored objects look like a cluster's."""

from __future__ import annotations

import base64
import ipaddress
import random
from collections.abc import Callable

from kubedr.emulator.resources import ResourceType

_rng = random.Random()
_CIDR = ipaddress.ip_network("10.96.0.0/12")


def _set(d: dict, key: str, value: object) -> None:
    if d.get(key) is None:
        d[key] = value


def container(c: dict) -> None:
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
    _set(c, "imagePullPolicy", "Always" if latest else "IfNotPresent")
    for p in c.get("ports") or ():
        _set(p, "protocol", "TCP")
    _set(c, "resources", {})
    _set(c, "terminationMessagePath", "/dev/termination-log")
    _set(c, "terminationMessagePolicy", "File")


def pod_spec(spec: dict) -> None:
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            container(c)
    _set(spec, "restartPolicy", "Always")
    _set(spec, "terminationGracePeriodSeconds", 30)
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "securityContext", {})
    _set(spec, "schedulerName", "default-scheduler")


def template(spec: dict) -> None:
    tpl = spec.get("template")
    if isinstance(tpl, dict):
        meta = tpl.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta.setdefault("creationTimestamp", None)
        if isinstance(tpl.get("spec"), dict):
            pod_spec(tpl["spec"])


def deployment(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "replicas", 1)
    _set(spec, "revisionHistoryLimit", 10)
    _set(spec, "progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        _set(ru, "maxSurge", "25%")
        _set(ru, "maxUnavailable", "25%")
    template(spec)


def replicaset(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "replicas", 1)
    template(spec)


def statefulset(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "replicas", 1)
    _set(spec, "podManagementPolicy", "OrderedReady")
    _set(spec, "revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _set(strategy.setdefault("rollingUpdate", {}), "partition", 0)
    _set(spec, "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    template(spec)


def daemonset(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        _set(ru, "maxSurge", 0)
        _set(ru, "maxUnavailable", 1)
    template(spec)
    if not obj.get("status"):  # DaemonSetStatus: four counters without omitempty, before the controller runs
        obj["status"] = (old or {}).get("status") or {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                                       "desiredNumberScheduled": 0, "numberReady": 0}


def job_selector(obj: dict) -> None:
    """The Job strategy's PrepareForCreate: a generated selector and the labels it matches."""
    spec = obj.setdefault("spec", {})
    meta = obj.get("metadata") or {}
    if meta.get("uid") and not spec.get("manualSelector") and not spec.get("selector"):
        uid, name = meta["uid"], meta.get("name", "")
        labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                  "controller-uid": uid, "job-name": name}
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        tpl_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        tpl_meta["labels"] = {**(tpl_meta.get("labels") or {}), **labels}
        meta["labels"] = {**labels, **(meta.get("labels") or {})}


def job(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "backoffLimit", 6)
    _set(spec, "completionMode", "NonIndexed")
    _set(spec, "completions", 1)
    _set(spec, "parallelism", 1)
    _set(spec, "suspend", False)
    template(spec)


def cronjob(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "concurrencyPolicy", "Allow")
    _set(spec, "failedJobsHistoryLimit", 1)
    _set(spec, "successfulJobsHistoryLimit", 3)
    _set(spec, "suspend", False)
    jt = spec.setdefault("jobTemplate", {})
    if isinstance(jt, dict):
        jt.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        job(jt, None)


def pod(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    _set(spec, "enableServiceLinks", True)
    _set(spec, "preemptionPolicy", "PreemptLowerPriority")
    _set(spec, "priority", 0)
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa
    if old is None or "status" not in obj:
        status = (old or {}).get("status") or {"phase": "Pending", "qosClass": _qos(spec)}
        obj["status"] = status


def _qos(spec: dict) -> str:
    res = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all(r.get("limits") and r.get("limits") == (r.get("requests") or r.get("limits")) for r in res):
        return "Guaranteed"
    return "Burstable"


def service(obj: dict, old: dict | None) -> None:
    """SetDefaults_Service; on create the allocations wait for service_allocate (the registry's job)."""
    spec = obj.setdefault("spec", {})
    _set(spec, "type", "ClusterIP")
    _set(spec, "sessionAffinity", "None")
    for p in spec.get("ports") or ():
        _set(p, "protocol", "TCP")
        _set(p, "targetPort", p.get("port"))
    if spec["type"] != "ExternalName":
        _set(spec, "internalTrafficPolicy", "Cluster")
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
    if spec["type"] in ("NodePort", "LoadBalancer"):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if old is not None:
        _allocate(spec, old.get("spec") or {})
    if "status" not in obj:
        obj["status"] = (old or {}).get("status") or {"loadBalancer": {}}


def _allocate(spec: dict, ospec: dict) -> None:
    """The Service registry's allocations: cluster IP, IP families, node ports (kept from the live object)."""
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP") and ospec.get("clusterIP"):
            spec["clusterIP"] = ospec["clusterIP"]
        if not spec.get("clusterIP"):
            spec["clusterIP"] = str(_CIDR[_rng.randrange(10, _CIDR.num_addresses - 1)])
        spec["clusterIPs"] = spec.get("clusterIPs") or [spec["clusterIP"]]
        _set(spec, "ipFamilies", ["IPv4"])
        _set(spec, "ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in ospec.get("ports") or ()}
        for p in spec.get("ports") or ():
            if not p.get("nodePort"):
                p["nodePort"] = old_ports.get((p.get("port"), p.get("protocol"))) or _rng.randrange(30000, 32768)


def service_allocate(obj: dict) -> None:
    """A new Service's allocations, made by the registry after the field manager ran (nobody owns them)."""
    _allocate(obj.setdefault("spec", {}), {})


def namespace(obj: dict, old: dict | None) -> None:
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    labels["kubernetes.io/metadata.name"] = meta["name"]
    meta["labels"] = labels
    _set(obj.setdefault("spec", {}), "finalizers", ["kubernetes"])
    if "status" not in obj:
        obj["status"] = (old or {}).get("status") or {"phase": "Active"}


def secret(obj: dict, old: dict | None) -> None:
    """stringData is write-only: the server folds it into data (base64) and never stores it."""
    _set(obj, "type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = dict(obj.get("data") or {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data


def pvc(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "volumeMode", "Filesystem")
    if "status" not in obj:
        obj["status"] = (old or {}).get("status") or {"phase": "Pending"}


def pv(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "persistentVolumeReclaimPolicy", "Retain")
    _set(spec, "volumeMode", "Filesystem")
    if "status" not in obj:
        obj["status"] = (old or {}).get("status") or {"phase": "Pending"}


def storageclass(obj: dict, old: dict | None) -> None:
    _set(obj, "reclaimPolicy", "Delete")
    _set(obj, "volumeBindingMode", "Immediate")


def priorityclass(obj: dict, old: dict | None) -> None:
    _set(obj, "preemptionPolicy", "PreemptLowerPriority")


def crd(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "conversion", {"strategy": "None"})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        _set(names, "listKind", names["kind"] + "List")
        _set(names, "singular", names["kind"].lower())
    if "status" not in obj:
        obj["status"] = (old or {}).get("status") or {
            "acceptedNames": {"kind": "", "plural": ""}, "conditions": [],
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")]}


def networkpolicy(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def ingress(obj: dict, old: dict | None) -> None:
    if "status" not in obj:
        obj["status"] = (old or {}).get("status") or {"loadBalancer": {}}


def pdb(obj: dict, old: dict | None) -> None:
    if not obj.get("status"):  # PodDisruptionBudgetStatus: four counters without omitempty
        obj["status"] = (old or {}).get("status") or {"disruptionsAllowed": 0, "currentHealthy": 0,
                                                       "desiredHealthy": 0, "expectedPods": 0}


DEFAULTERS: dict[str, Callable[[dict, dict | None], None]] = {
    "Deployment": deployment, "ReplicaSet": replicaset, "StatefulSet": statefulset, "DaemonSet": daemonset,
    "Job": job, "CronJob": cronjob, "Pod": pod, "Service": service, "Namespace": namespace, "Secret": secret,
    "PersistentVolumeClaim": pvc, "PersistentVolume": pv, "StorageClass": storageclass,
    "PriorityClass": priorityclass, "CustomResourceDefinition": crd, "NetworkPolicy": networkpolicy,
    "Ingress": ingress, "PodDisruptionBudget": pdb,
}


# What the registries' PrepareForCreate do: after the field manager ran, so the creator does not own it.
STRATEGIES: dict[str, Callable[[dict], None]] = {"Job": job_selector, "Service": service_allocate}


def prepare_for_create(rt: ResourceType, obj: dict) -> None:
    """Strategy changes to a new built-in object that no manager owns (run after managedFields are tracked)."""
    fn = STRATEGIES.get(rt.kind) if rt.builtin else None
    if fn is not None:
        try:
            fn(obj)
        except (AttributeError, TypeError):
            pass


def apply(rt: ResourceType, obj: dict, old: dict | None) -> None:
    """Fill in the fields the server defaults (built-in kinds only), in place."""
    if not rt.builtin:
        return
    fn = DEFAULTERS.get(rt.kind)
    if fn is not None:
        try:
            fn(obj, old)
        except (AttributeError, TypeError):
            pass  # malformed input: leave it as sent; validation is not this table's job
