"""Decode the protobuf request bodies kubectl's typed clients send (`kubectl create namespace|configmap|...`).

kubectl posts `application/vnd.kubernetes.protobuf` for built-in kinds and has no JSON fallback, so the
emulator reads the wire format: the `k8s\\x00` envelope (runtime.Unknown) and, per message, a table of
field numbers taken from the kinds' generated.proto. Only the kinds and fields kubectl's create
generators fill are mapped; other fields are skipped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

MAGIC = b"k8s\x00"

# message -> {field number: (json name, type)}; type is a message name, "string", "bytes", "int", "bool",
# "time", "quantity", "intorstr", or "map:<value type>" / "[]<type>" for maps and repeated fields.
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
                   8: ("creationTimestamp", "time"), 11: ("labels", "map:string"),
                   12: ("annotations", "map:string"), 13: ("ownerReferences", "[]OwnerReference"),
                   14: ("finalizers", "[]string")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                       5: ("apiVersion", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"),
               4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "[]ObjectReference"),
                       3: ("imagePullSecrets", "[]LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string")},
    "LocalObjectReference": {1: ("name", "string")},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec")},
    "DeploymentSpec": {1: ("replicas", "int"), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec"),
                       4: ("strategy", "DeploymentStrategy"), 5: ("minReadySeconds", "int"),
                       6: ("revisionHistoryLimit", "int"), 7: ("paused", "bool"),
                       9: ("progressDeadlineSeconds", "int")},
    "DeploymentStrategy": {1: ("type", "string")},
    "LabelSelector": {1: ("matchLabels", "map:string"), 2: ("matchExpressions", "[]LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "[]string")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {2: ("containers", "[]Container"), 3: ("restartPolicy", "string"),
                4: ("terminationGracePeriodSeconds", "int"), 6: ("dnsPolicy", "string"),
                7: ("nodeSelector", "map:string"), 8: ("serviceAccountName", "string"),
                16: ("hostname", "string"), 19: ("schedulerName", "string"), 20: ("initContainers", "[]Container")},
    "Container": {1: ("name", "string"), 2: ("image", "string"), 3: ("command", "[]string"), 4: ("args", "[]string"),
                  5: ("workingDir", "string"), 6: ("ports", "[]ContainerPort"), 7: ("env", "[]EnvVar"),
                  8: ("resources", "ResourceRequirements"), 13: ("terminationMessagePath", "string"),
                  14: ("imagePullPolicy", "string"), 20: ("terminationMessagePolicy", "string")},
    "ContainerPort": {1: ("name", "string"), 2: ("hostPort", "int"), 3: ("containerPort", "int"),
                      4: ("protocol", "string")},
    "EnvVar": {1: ("name", "string"), 2: ("value", "string")},
    "ResourceRequirements": {1: ("limits", "map:quantity"), 2: ("requests", "map:quantity")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec")},
    "ServiceSpec": {1: ("ports", "[]ServicePort"), 2: ("selector", "map:string"), 3: ("clusterIP", "string"),
                    4: ("type", "string"), 5: ("externalIPs", "[]string"), 7: ("sessionAffinity", "string"),
                    10: ("externalName", "string"), 18: ("clusterIPs", "[]string")},
    "ServicePort": {1: ("name", "string"), 2: ("protocol", "string"), 3: ("port", "int"),
                    4: ("targetPort", "intorstr"), 5: ("nodePort", "int")},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "PolicyRule": {1: ("verbs", "[]string"), 2: ("apiGroups", "[]string"), 3: ("resources", "[]string"),
                   4: ("resourceNames", "[]string"), 5: ("nonResourceURLs", "[]string")},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "Subject": {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"), 4: ("namespace", "string")},
    "RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "JobSpec": {1: ("parallelism", "int"), 2: ("completions", "int"), 6: ("template", "PodTemplateSpec"),
                7: ("backoffLimit", "int")},
    "CronJob": {1: ("metadata", "ObjectMeta"), 2: ("spec", "CronJobSpec")},
    "CronJobSpec": {1: ("schedule", "string"), 5: ("jobTemplate", "JobTemplateSpec")},
    "JobTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "PriorityClass": {1: ("metadata", "ObjectMeta"), 2: ("value", "int"), 3: ("globalDefault", "bool"),
                      4: ("description", "string"), 5: ("preemptionPolicy", "string")},
    "Scale": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ScaleSpec")},
    "ScaleSpec": {1: ("replicas", "int")},
}
# Scalars whose zero value is meaningful (pointer fields in the Go types): kept when they decode as 0/false.
KEEP_ZERO = frozenset({"replicas", "immutable", "automountServiceAccountToken", "value", "port",
                       "containerPort", "backoffLimit", "completions", "parallelism"})


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf envelope, or a kind without a field table."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        val: int | bytes
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield num, wire, val


def _scalar(type_: str, wire: int, val: int | bytes) -> object:
    if type_ == "string":
        return bytes(val).decode()
    if type_ == "bytes":
        return base64.b64encode(bytes(val)).decode()
    if type_ == "int":
        v = int(val)
        return v - (1 << 64) if v >= 1 << 63 else v
    if type_ == "bool":
        return bool(val)
    if type_ == "time":
        secs = next((v for n, _, v in _fields(bytes(val)) if n == 1), None)
        return None if secs is None else datetime.fromtimestamp(int(secs), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if type_ == "quantity":
        return next((bytes(v).decode() for n, _, v in _fields(bytes(val)) if n == 1), "")
    if type_ == "intorstr":
        parts = {n: v for n, _, v in _fields(bytes(val))}
        return bytes(parts.get(3, b"")).decode() if parts.get(1) == 1 else int(parts.get(2, 0))
    return decode_message(type_, bytes(val))


def decode_message(name: str, buf: bytes) -> dict:
    """One message as the JSON object the Go type would marshal to (zero values omitted)."""
    table = MESSAGES.get(name)
    if table is None:
        raise ProtobufError(f"no protobuf field table for {name}")
    out: dict = {}
    for num, wire, val in _fields(buf):
        spec = table.get(num)
        if spec is None:
            continue
        key, type_ = spec
        if type_.startswith("map:"):
            entry = {n: v for n, _, v in _fields(bytes(val))}
            out.setdefault(key, {})[bytes(entry.get(1, b"")).decode()] = _scalar(type_[4:], 2, entry.get(2, b""))
        elif type_.startswith("[]"):
            out.setdefault(key, []).append(_scalar(type_[2:], wire, val))
        else:
            out[key] = _scalar(type_, wire, val)
    return {k: v for k, v in out.items() if k in KEEP_ZERO or v not in ("", 0, False, None, {}) or
            (isinstance(v, dict) and k in ("data", "labels", "annotations", "resources"))}


def decode(body: bytes) -> dict:
    """A `k8s\\x00`-prefixed protobuf body -> the object as JSON-compatible dict with kind and apiVersion."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    unknown = {n: v for n, _, v in _fields(body[len(MAGIC):])}
    type_meta = decode_message("TypeMeta", bytes(unknown.get(1, b"")))
    kind = type_meta.get("kind") or ""
    obj = decode_message(kind, bytes(unknown.get(2, b"")))
    return {"kind": kind, "apiVersion": type_meta.get("apiVersion", ""), **obj}
