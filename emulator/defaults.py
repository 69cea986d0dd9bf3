"""Defaulting as a kube-apiserver v1.24 does it on every write, so stored objects look like a cluster's.

Three layers, in the order the real server applies them:

1. ``FIELDS`` / ``FUNCS`` / ``NESTED``: the scheme's defaulting functions (``SetDefaults_<Type>`` in
   pkg/apis/*/v1/defaults.go and the ``+default`` markers), per Go type, walked through the nested types the
   way the generated ``SetObjectDefaults_<Kind>`` do. They run when a request body is decoded, so they come
   before validation and before managedFields are computed (``apply``).
2. ``STATUS``: the status a new object is stored with (its Go zero value as JSON, or a defaulted phase).
3. ``STRATEGIES`` / ``UPDATES``: what the registries' PrepareForCreate/PrepareForUpdate and allocators add
   after the field manager ran (no manager owns it): a Job's selector, a Service's cluster IP, ...

Each rule is shown by a capture in tests/fixtures/defaults (tests/integration/emulator/test_emulator_defaults.py)
or, where no capture shows it, by tests/unit/emulator/test_emulator_defaulting_rules.py.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import random
from collections.abc import Callable, Iterator

from kubedr.emulator import quantity
from kubedr.emulator.resources import ServedResource

_rng = random.Random()
_CIDR = ipaddress.ip_network("10.96.0.0/12")

# (field, default, zero): the default is set when the field is absent or null, and also when it holds its Go
# zero value (0, "") if `zero` is true (a value field such as int32 or string; pointers are only nil-checked).
Field = tuple[str, object, bool]


def _v(name: str, value: object) -> Field:
    return (name, value, True)


def _p(name: str, value: object) -> Field:
    return (name, value, False)


FIELDS: dict[str, tuple[Field, ...]] = {
    "Probe": (_v("timeoutSeconds", 1), _v("periodSeconds", 10), _v("successThreshold", 1),
              _v("failureThreshold", 3)),
    "HTTPGetAction": (_v("path", "/"), _v("scheme", "HTTP")),
    "GRPCAction": (_p("service", ""),),
    "Container": (_v("terminationMessagePath", "/dev/termination-log"), _v("terminationMessagePolicy", "File")),
    "ContainerPort": (_v("protocol", "TCP"),),
    "ObjectFieldSelector": (_v("apiVersion", "v1"),),
    "PodSpec": (_v("dnsPolicy", "ClusterFirst"), _v("restartPolicy", "Always"), _p("securityContext", {}),
                _p("terminationGracePeriodSeconds", 30), _v("schedulerName", "default-scheduler")),
    "TemplateMeta": (_p("creationTimestamp", None),),
    "SecretVolumeSource": (_p("defaultMode", 0o644),),
    "ConfigMapVolumeSource": (_p("defaultMode", 0o644),),
    "DownwardAPIVolumeSource": (_p("defaultMode", 0o644),),
    "ProjectedVolumeSource": (_p("defaultMode", 0o644),),
    "ServiceAccountTokenProjection": (_p("expirationSeconds", 3600),),
    "HostPathVolumeSource": (_p("type", ""),),
    "ISCSIVolumeSource": (_v("iscsiInterface", "default"),),
    "RBDVolumeSource": (_v("pool", "rbd"), _v("user", "admin"), _v("keyring", "/etc/ceph/keyring")),
    "AzureDiskVolumeSource": (_p("cachingMode", "ReadWrite"), _p("kind", "Shared"), _p("fsType", "ext4"),
                              _p("readOnly", False)),
    "ScaleIOVolumeSource": (_v("storageMode", "ThinProvisioned"), _v("fsType", "xfs")),
    "PersistentVolumeClaimSpec": (_p("volumeMode", "Filesystem"),),
    "Deployment": (_p("replicas", 1), _p("revisionHistoryLimit", 10), _p("progressDeadlineSeconds", 600)),
    "ReplicaSet": (_p("replicas", 1),),
    "StatefulSet": (_v("podManagementPolicy", "OrderedReady"), _p("replicas", 1), _p("revisionHistoryLimit", 10)),
    "DaemonSet": (_p("revisionHistoryLimit", 10),),
    "JobSpec": (_p("backoffLimit", 6), _p("completionMode", "NonIndexed"), _p("suspend", False)),
    "CronJob": (_v("concurrencyPolicy", "Allow"), _p("suspend", False), _p("successfulJobsHistoryLimit", 3),
                _p("failedJobsHistoryLimit", 1)),
    "Service": (_v("sessionAffinity", "None"), _v("type", "ClusterIP")),
    "ServicePort": (_v("protocol", "TCP"),),
    "EndpointPort": (_v("protocol", "TCP"),),
    "EndpointSlicePort": (_p("name", ""), _p("protocol", "TCP")),
    "NetworkPolicyPort": (_p("protocol", "TCP"),),
    "Secret": (_v("type", "Opaque"),),
    "PersistentVolume": (_v("persistentVolumeReclaimPolicy", "Retain"), _p("volumeMode", "Filesystem")),
    "StorageClass": (_p("reclaimPolicy", "Delete"), _p("volumeBindingMode", "Immediate")),
    "PriorityClass": (_p("preemptionPolicy", "PreemptLowerPriority"),),
    "RoleRef": (_v("apiGroup", "rbac.authorization.k8s.io"),),
    "HorizontalPodAutoscaler": (_p("minReplicas", 1),),
    "CustomResourceDefinition": (_p("conversion", {"strategy": "None"}),),
}

# Where a type holds others: (path, type); "[]" steps into every list item. Kinds are the roots.
NESTED: dict[str, tuple[tuple[str, str], ...]] = {
    "Probe": (("httpGet", "HTTPGetAction"), ("grpc", "GRPCAction")),
    "LifecycleHandler": (("httpGet", "HTTPGetAction"),),
    "Container": (("livenessProbe", "Probe"), ("readinessProbe", "Probe"), ("startupProbe", "Probe"),
                  ("lifecycle.postStart", "LifecycleHandler"), ("lifecycle.preStop", "LifecycleHandler"),
                  ("ports[]", "ContainerPort"), ("env[].valueFrom.fieldRef", "ObjectFieldSelector"),
                  ("resources", "ResourceRequirements")),
    "PodSpec": (("containers[]", "Container"), ("initContainers[]", "Container"),
                ("ephemeralContainers[]", "Container"), ("volumes[]", "Volume")),
    "Volume": (("secret", "SecretVolumeSource"), ("configMap", "ConfigMapVolumeSource"),
               ("downwardAPI", "DownwardAPIVolumeSource"), ("projected", "ProjectedVolumeSource"),
               ("hostPath", "HostPathVolumeSource"), ("iscsi", "ISCSIVolumeSource"), ("rbd", "RBDVolumeSource"),
               ("azureDisk", "AzureDiskVolumeSource"), ("scaleIO", "ScaleIOVolumeSource"),
               ("ephemeral.volumeClaimTemplate.metadata", "TemplateMeta"),
               ("ephemeral.volumeClaimTemplate.spec", "PersistentVolumeClaimSpec")),
    "DownwardAPIVolumeSource": (("items[].fieldRef", "ObjectFieldSelector"),),
    "ProjectedVolumeSource": (("sources[].downwardAPI.items[].fieldRef", "ObjectFieldSelector"),
                              ("sources[].serviceAccountToken", "ServiceAccountTokenProjection")),
    "PodTemplateSpec": (("metadata", "TemplateMeta"), ("spec", "PodSpec")),
    "Pod": (("spec", "PodSpec"),),
    "Deployment": (("spec.template", "PodTemplateSpec"),),
    "ReplicaSet": (("spec.template", "PodTemplateSpec"),),
    "DaemonSet": (("spec.template", "PodTemplateSpec"),),
    "StatefulSet": (("spec.template", "PodTemplateSpec"), ("spec.volumeClaimTemplates[]", "ClaimTemplate")),
    "ClaimTemplate": (("metadata", "TemplateMeta"), ("spec", "PersistentVolumeClaimSpec")),
    "PersistentVolumeClaim": (("spec", "PersistentVolumeClaimSpec"),),
    "PersistentVolumeClaimSpec": (("resources", "ResourceRequirements"),),
    "Job": (("spec", "JobSpec"),),
    "JobSpec": (("template", "PodTemplateSpec"),),
    "CronJob": (("spec.jobTemplate.metadata", "TemplateMeta"), ("spec.jobTemplate.spec.template", "PodTemplateSpec")),
    "Service": (("spec.ports[]", "ServicePort"),),
    "Endpoints": (("subsets[].ports[]", "EndpointPort"),),
    "EndpointSlice": (("ports[]", "EndpointSlicePort"),),
    "NetworkPolicy": (("spec.ingress[].ports[]", "NetworkPolicyPort"), ("spec.egress[].ports[]", "NetworkPolicyPort")),
    "RoleBinding": (("roleRef", "RoleRef"), ("subjects[]", "Subject")),
    "ClusterRoleBinding": (("roleRef", "RoleRef"), ("subjects[]", "Subject")),
    "LimitRange": (("spec.limits[]", "LimitRangeItem"),),
}

# Which fields of a kind live under spec (FIELDS name them relative to the object otherwise).
SPEC_FIELDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "CronJob", "Service",
                         "PersistentVolume", "HorizontalPodAutoscaler", "CustomResourceDefinition"})


def _set(d: dict, key: str, value: object, zero: bool = False) -> None:
    cur = d.get(key)
    if cur is None or (zero and (cur == 0 or cur == "") and not isinstance(cur, bool)):
        d[key] = copy.deepcopy(value)


def _image_pull_policy(c: dict) -> None:
    """SetDefaults_Container: Always for a :latest or untagged (and undigested) image, IfNotPresent otherwise."""
    if c.get("imagePullPolicy"):
        return
    image, _, digest = str(c.get("image") or "").partition("@")
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    latest = tag == "latest" or (image and not tag and not digest)
    c["imagePullPolicy"] = "Always" if latest else "IfNotPresent"


def _template(tpl: dict) -> None:
    """An embedded ObjectMeta is a struct: always serialised, with its null creationTimestamp."""
    if not isinstance(tpl.get("metadata"), dict):
        tpl["metadata"] = {}


def _pod_spec(spec: dict) -> None:
    """The deprecated serviceAccount mirrors serviceAccountName (v1 conversion); hostNetwork ports (v1.24)."""
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if sa:
        spec["serviceAccountName"] = spec["serviceAccount"] = sa
    if spec.get("hostNetwork"):
        for c in _items(spec.get("containers")) + _items(spec.get("initContainers")):
            for p in _items(c.get("ports")):
                if not p.get("hostPort"):
                    p["hostPort"] = p.get("containerPort")


def _volume(vol: dict) -> None:
    """SetDefaults_Volume: a volume without a source is an emptyDir."""
    sources = [k for k in vol if k != "name"]
    if not any(vol[k] is not None for k in sources):
        vol["emptyDir"] = {}
    _volume_quantities(vol)


def _pod(pod: dict) -> None:
    """SetDefaults_Pod: requests default to limits; service links on; what admission adds to a new Pod."""
    spec = pod.setdefault("spec", {})
    for c in _items(spec.get("containers")) + _items(spec.get("initContainers")):
        res = c.get("resources")
        if isinstance(res, dict) and isinstance(res.get("limits"), dict):
            res["requests"] = {**res["limits"], **(res.get("requests") or {})}
    _set(spec, "enableServiceLinks", True)
    _set(spec, "preemptionPolicy", "PreemptLowerPriority")  # Priority admission
    _set(spec, "priority", 0)
    if not spec.get("serviceAccountName") and not spec.get("serviceAccount"):  # ServiceAccount admission
        spec["serviceAccountName"] = spec["serviceAccount"] = "default"


def _container(c: dict) -> None:
    _image_pull_policy(c)
    _set(c, "resources", {})


def _deployment(obj: dict) -> None:
    strategy = obj["spec"].setdefault("strategy", {})
    _set(strategy, "type", "RollingUpdate", True)
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        _set(ru, "maxUnavailable", "25%")
        _set(ru, "maxSurge", "25%")


def _daemonset(obj: dict) -> None:
    strategy = obj["spec"].setdefault("updateStrategy", {})
    _set(strategy, "type", "RollingUpdate", True)
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        _set(ru, "maxUnavailable", 1)
        _set(ru, "maxSurge", 0)


def _statefulset(obj: dict) -> None:
    """No persistentVolumeClaimRetentionPolicy: StatefulSetAutoDeletePVC is alpha (off) in v1.24."""
    strategy = obj["spec"].setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        _set(strategy, "rollingUpdate", {})
    if strategy["type"] == "RollingUpdate" and isinstance(strategy.get("rollingUpdate"), dict):
        _set(strategy["rollingUpdate"], "partition", 0)


def _claim_template(pvc: dict) -> None:
    """A StatefulSet's claim templates come back with apiVersion/kind (conversion) and a Pending phase."""
    _template(pvc)
    pvc["apiVersion"], pvc["kind"] = "v1", "PersistentVolumeClaim"
    _set(pvc, "status", {})
    _set(pvc["status"], "phase", "Pending", True)


def _job(obj: dict) -> None:
    """SetDefaults_Job: completions and parallelism 1 when both unset; labels from the pod template."""
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _set(spec, "parallelism", 1)
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    meta = obj.setdefault("metadata", {})
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)


def _service(obj: dict) -> None:
    """SetDefaults_Service (v1.24): internalTrafficPolicy for every type, ExternalName included."""
    spec = obj["spec"]
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig") or {}
        if ((cfg.get("clientIP") or {}).get("timeoutSeconds")) is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    for p in _items(spec.get("ports")):
        if p.get("targetPort") in (None, 0, ""):
            p["targetPort"] = p.get("port")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        _set(spec, "externalTrafficPolicy", "Cluster", True)
    _set(spec, "internalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        _set(spec, "allocateLoadBalancerNodePorts", True)
    if spec["type"] != "ExternalName" and spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]


def _secret(obj: dict) -> None:
    """stringData is write-only: the server folds it into data (base64) and never stores it."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = dict(obj.get("data") or {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data


def _namespace(obj: dict) -> None:
    meta = obj["metadata"]
    if meta.get("name"):
        meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}
    _set(obj.setdefault("spec", {}), "finalizers", ["kubernetes"])


def _network_policy(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _subject(s: dict) -> None:
    if not s.get("apiGroup") and s.get("kind") in ("User", "Group"):
        s["apiGroup"] = "rbac.authorization.k8s.io"


def _limit_range_item(item: dict) -> None:
    """SetDefaults_LimitRangeItem: a Container limit's default from max, defaultRequest from default, then min."""
    if item.get("type") == "Container":
        _container_limit_defaults(item)
    _quantities(item, ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"), True)


def _container_limit_defaults(item: dict) -> None:
    default = {**(item.get("max") or {}), **(item.get("default") or {})}
    request = {**(item.get("min") or {}), **default, **(item.get("defaultRequest") or {})}
    if default:
        item["default"] = default
    if request:
        item["defaultRequest"] = request



_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                          {"type": "Percent", "value": 100, "periodSeconds": 15}]}
_SCALE_DOWN = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _hpa(obj: dict) -> None:
    """autoscaling/v2 SetDefaults_HorizontalPodAutoscaler: 80% CPU when no metrics; behavior filled in if set."""
    spec = obj["spec"]
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        for key, rules in (("scaleUp", _SCALE_UP), ("scaleDown", _SCALE_DOWN)):
            given = behavior.get(key) or {}
            behavior[key] = {**copy.deepcopy(rules), **{k: v for k, v in given.items() if v is not None}}
    _metric_targets(obj)


def _cronjob(obj: dict) -> None:
    job_template = obj["spec"].get("jobTemplate")
    if isinstance(job_template, dict):
        _template(job_template)


def _quantities(node: dict, keys: tuple[str, ...], round_milli: bool) -> None:
    """Quantities come back in canonical form; a ResourceList is first rounded up to milli units
    (SetDefaults_ResourceList)."""
    for key in keys:
        value = node.get(key)
        if isinstance(value, dict):
            node[key] = {k: quantity.canonical(v, round_milli) for k, v in value.items()}
        elif key in node and value is not None:
            node[key] = quantity.canonical(value, round_milli)


def _resource_lists(*keys: str) -> Callable[[dict], None]:
    return lambda node: _quantities(node, keys, True)


def _volume_quantities(vol: dict) -> None:
    if isinstance(vol.get("emptyDir"), dict):
        _quantities(vol["emptyDir"], ("sizeLimit",), False)


def _metric_targets(obj: dict) -> None:
    for metric in _items(obj["spec"].get("metrics")):
        for source in metric.values():
            if isinstance(source, dict) and isinstance(source.get("target"), dict):
                _quantities(source["target"], ("value", "averageValue"), False)


def _crd(obj: dict) -> None:
    names = obj["spec"].setdefault("names", {})
    if names.get("kind"):
        _set(names, "listKind", names["kind"] + "List")
        _set(names, "singular", names["kind"].lower())


FUNCS: dict[str, Callable[[dict], None]] = {
    "Container": _container, "PodSpec": _pod_spec, "Volume": _volume, "Pod": _pod, "Deployment": _deployment,
    "DaemonSet": _daemonset, "StatefulSet": _statefulset, "ClaimTemplate": _claim_template, "Job": _job,
    "Service": _service, "Secret": _secret, "Namespace": _namespace, "NetworkPolicy": _network_policy,
    "Subject": _subject, "LimitRangeItem": _limit_range_item, "HorizontalPodAutoscaler": _hpa,
    "CustomResourceDefinition": _crd, "PodTemplateSpec": _template, "CronJob": _cronjob,
    "ResourceRequirements": _resource_lists("limits", "requests"),
    "ResourceQuota": lambda o: _quantities(o.setdefault("spec", {}), ("hard",), True),
    "PersistentVolume": lambda o: _quantities(o["spec"], ("capacity",), True),
}


def _items(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _at(node: object, path: str) -> Iterator[dict]:
    """The dicts a NESTED path reaches ("a.b[].c")."""
    nodes = [node]
    for step in path.split("."):
        many = step.endswith("[]")
        key = step[:-2] if many else step
        found = []
        for n in nodes:
            child = n.get(key) if isinstance(n, dict) else None
            found.extend(_items(child) if many else [child] if isinstance(child, dict) else [])
        nodes = found
    yield from nodes


def default(type_name: str, node: dict) -> None:
    """Fill in one Go type's defaults and those of every type nested in it, in place."""
    target = node.setdefault("spec", {}) if type_name in SPEC_FIELDS else node
    for name, value, zero in FIELDS.get(type_name, ()):
        _set(target, name, value, zero)
    fn = FUNCS.get(type_name)
    if fn is not None:
        fn(node)
    for path, sub in NESTED.get(type_name, ()):
        for child in _at(node, path):
            default(sub, child)


# ---- the status a new object is stored with ------------------------------------------------------------

STATUS: dict[str, Callable[[dict], dict]] = {
    "Service": lambda o: {"loadBalancer": {}},
    "Ingress": lambda o: {"loadBalancer": {}},
    "Namespace": lambda o: {"phase": "Active"},
    "PersistentVolumeClaim": lambda o: {"phase": "Pending"},
    "PersistentVolume": lambda o: {"phase": "Pending"},
    "Pod": lambda o: {"phase": "Pending", "qosClass": _qos(o.get("spec") or {})},
    # Go structs whose counters have no omitempty
    "PodDisruptionBudget": lambda o: {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                      "expectedPods": 0},
    "HorizontalPodAutoscaler": lambda o: {"currentMetrics": None, "desiredReplicas": 0},
    "DaemonSet": lambda o: {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                            "numberReady": 0},
    "CustomResourceDefinition": lambda o: {
        "acceptedNames": {"kind": "", "plural": ""}, "conditions": [],
        "storedVersions": [v["name"] for v in (o.get("spec") or {}).get("versions") or [] if v.get("storage")]},
}


def _qos(spec: dict) -> str:
    res = [c.get("resources") or {} for c in _items(spec.get("containers"))]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all(r.get("limits") and r.get("limits") == (r.get("requests") or r.get("limits")) for r in res):
        return "Guaranteed"
    return "Burstable"


# ---- registry strategies: after the field manager ran, so nobody owns what they set ----------------------

def _job_prepare(obj: dict) -> None:
    """Job PrepareForCreate/Validate (v1.24): the uid selector and its labels, the job-tracking annotation."""
    spec = obj.setdefault("spec", {})
    meta = obj["metadata"]
    meta["annotations"] = {**(meta.get("annotations") or {}), "batch.kubernetes.io/job-tracking": ""}
    if meta.get("uid") and not spec.get("manualSelector") and not spec.get("selector"):
        uid = meta["uid"]
        spec["selector"] = {"matchLabels": {"controller-uid": uid}}
        tpl_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        tpl_meta["labels"] = {**(tpl_meta.get("labels") or {}), "controller-uid": uid, "job-name": meta["name"]}
    _job(obj)  # defaulting again on the way out: labels from the now labelled template


def _daemonset_prepare(obj: dict) -> None:
    """DaemonSet PrepareForCreate: templateGeneration 1, shown in v1 as an annotation."""
    _template_generation(obj, 1)


def _template_generation(obj: dict, value: int) -> None:
    meta = obj["metadata"]
    meta["annotations"] = {**(meta.get("annotations") or {}), "deprecated.daemonset.template.generation": str(value)}


def _daemonset_update(obj: dict, old: dict) -> None:
    """DaemonSet PrepareForUpdate: the template generation is the server's; a new template bumps it."""
    try:
        gen = int(((old["metadata"].get("annotations") or {}).get("deprecated.daemonset.template.generation")) or 1)
    except ValueError:
        gen = 1
    if (obj.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
        gen += 1
    _template_generation(obj, gen)


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
        old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in _items(ospec.get("ports"))}
        for p in _items(spec.get("ports")):
            if not p.get("nodePort"):
                p["nodePort"] = old_ports.get((p.get("port"), p.get("protocol"))) or _rng.randrange(30000, 32768)


def _service_prepare(obj: dict) -> None:
    """A new Service's allocations, made by the registry after the field manager ran (nobody owns them)."""
    _allocate(obj.setdefault("spec", {}), {})


STRATEGIES: dict[str, Callable[[dict], None]] = {
    "Job": _job_prepare, "Service": _service_prepare, "DaemonSet": _daemonset_prepare,
}
UPDATES: dict[str, Callable[[dict, dict], None]] = {"DaemonSet": _daemonset_update}


# ---- entry points ------------------------------------------------------------------------------------------

def _guarded(fn: Callable[..., None], *args: object) -> None:
    try:
        fn(*args)
    except (AttributeError, TypeError, KeyError):
        pass  # malformed input: leave it as sent; validation is not this module's job


def apply(rt: ServedResource, obj: dict, old: dict | None) -> None:
    """Decode-time defaulting of a built-in object (before validation and managedFields), in place."""
    if not rt.builtin:
        return
    if rt.kind in FIELDS or rt.kind in FUNCS or rt.kind in NESTED:
        _guarded(default, rt.kind, obj)
    if rt.kind == "Service" and old is not None:
        _guarded(_allocate, obj.get("spec") or {}, old.get("spec") or {})
    status = STATUS.get(rt.kind)
    if status is not None and not obj.get("status"):
        obj["status"] = (old or {}).get("status") or _guarded_status(status, obj)


def _guarded_status(fn: Callable[[dict], dict], obj: dict) -> dict:
    try:
        return fn(obj)
    except (AttributeError, TypeError, KeyError):
        return {}


def prepare_for_create(rt: ServedResource, obj: dict) -> None:
    """Strategy changes to a new built-in object that no manager owns (run after managedFields are tracked)."""
    fn = STRATEGIES.get(rt.kind) if rt.builtin else None
    if fn is not None:
        _guarded(fn, obj)


def prepare_for_update(rt: ServedResource, obj: dict, old: dict) -> None:
    """Strategy changes to an updated built-in object that no manager owns (after managedFields)."""
    fn = UPDATES.get(rt.kind) if rt.builtin else None
    if fn is not None:
        _guarded(fn, obj, old)
