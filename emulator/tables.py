"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for (`Accept: ...;as=Table`), columns as data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Cell = Callable[[dict], object]


def age(obj: dict) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    secs = int((datetime.now(UTC) - datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)).total_seconds())
    secs = max(secs, 0)
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    if secs < 120:
        return f"{secs}s"
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if hours < 3:
        return f"{mins}m"
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _g(obj: dict, *path: str, default: Any = None) -> Any:
    cur: Any = obj
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return default if cur is None else cur


def _ports(obj: dict) -> str:
    ports = _g(obj, "spec", "ports", default=[])
    out = [f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
           for p in ports]
    return ",".join(out) or "<none>"


def _ready(obj: dict) -> str:
    return f"{_g(obj, 'status', 'readyReplicas', default=0)}/{_g(obj, 'spec', 'replicas', default=0)}"


NAME = ("Name", "string", "name", lambda o: o["metadata"]["name"])
AGE = ("Age", "string", "", age)
# kind -> columns (title, type, format, cell); kinds not listed get Name and Age, as custom resources do.
COLUMNS: dict[str, list[tuple[str, str, str, Cell]]] = {
    "ConfigMap": [NAME, ("Data", "string", "", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
                  AGE],
    "Secret": [NAME, ("Type", "string", "", lambda o: o.get("type", "")),
               ("Data", "string", "", lambda o: len(o.get("data") or {})), AGE],
    "Namespace": [NAME, ("Status", "string", "", lambda o: _g(o, "status", "phase", default="")), AGE],
    "ServiceAccount": [NAME, ("Secrets", "string", "", lambda o: len(o.get("secrets") or [])), AGE],
    "Service": [NAME, ("Type", "string", "", lambda o: _g(o, "spec", "type", default="")),
                ("Cluster-IP", "string", "", lambda o: _g(o, "spec", "clusterIP", default="<none>")),
                ("External-IP", "string", "", lambda o: ",".join(_g(o, "spec", "externalIPs", default=[]))
                 or "<none>"),
                ("Port(s)", "string", "", _ports), AGE],
    "Pod": [NAME, ("Ready", "string", "", lambda o: f"0/{len(_g(o, 'spec', 'containers', default=[]))}"),
            ("Status", "string", "", lambda o: _g(o, "status", "phase", default="Pending")),
            ("Restarts", "string", "", lambda o: "0"), AGE],
    "Deployment": [NAME, ("Ready", "string", "", _ready),
                   ("Up-to-date", "string", "", lambda o: _g(o, "status", "updatedReplicas", default=0)),
                   ("Available", "string", "", lambda o: _g(o, "status", "availableReplicas", default=0)), AGE],
    "ReplicaSet": [NAME, ("Desired", "string", "", lambda o: _g(o, "spec", "replicas", default=0)),
                   ("Current", "string", "", lambda o: _g(o, "status", "replicas", default=0)),
                   ("Ready", "string", "", lambda o: _g(o, "status", "readyReplicas", default=0)), AGE],
    "StatefulSet": [NAME, ("Ready", "string", "", _ready), AGE],
    "Endpoints": [NAME, ("Endpoints", "string", "", lambda o: "<none>"), AGE],
    "CustomResourceDefinition": [NAME, ("Created At", "date", "",
                                        lambda o: o["metadata"].get("creationTimestamp", ""))],
    "Event": [("Last Seen", "string", "", lambda o: age({"metadata": {"creationTimestamp": o.get("lastTimestamp")}})),
              ("Type", "string", "", lambda o: o.get("type", "")), ("Reason", "string", "", lambda o: o.get("reason")),
              ("Object", "string", "", lambda o: f"{_g(o, 'involvedObject', 'kind', default='').lower()}/"
                                                 f"{_g(o, 'involvedObject', 'name', default='')}"),
              ("Message", "string", "", lambda o: o.get("message", ""))],
    "PodDisruptionBudget": [NAME, ("Min Available", "string", "", lambda o: _g(o, "spec", "minAvailable", default="N/A")),
                            ("Max Unavailable", "string", "",
                             lambda o: _g(o, "spec", "maxUnavailable", default="N/A")),
                            ("Allowed Disruptions", "integer", "",
                             lambda o: _g(o, "status", "disruptionsAllowed", default=0)), AGE],
    "PersistentVolumeClaim": [NAME, ("Status", "string", "", lambda o: _g(o, "status", "phase", default="")),
                              ("Volume", "string", "", lambda o: _g(o, "spec", "volumeName", default="")), AGE],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _columns(kind: str) -> list[tuple[str, str, str, Cell]]:
    return COLUMNS.get(kind, [NAME, AGE])


def _row(kind: str, obj: dict, include: str) -> dict:
    cells = []
    for _, _, _, cell in _columns(kind):
        try:
            cells.append(cell(obj))
        except Exception:
            cells.append("<unknown>")
    row: dict = {"cells": cells}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata", {})}
    return row


def table(kind: str, objs: list[dict], list_meta: dict, include: str = "Metadata") -> dict:
    """A Table of objs; include is the includeObject query parameter (None, Metadata, Object)."""
    cols = [{"name": title, "type": type_, "format": fmt, "description": title, "priority": 0}
            for title, type_, fmt, _ in _columns(kind)]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": cols,
            "rows": [_row(kind, o, include) for o in objs]}
