"""Where the DaemonSet controller puts a Pod: on every Node that its template's nodeSelector and required node
affinity match and whose NoSchedule/NoExecute taints it tolerates (the predicates the real controller runs
before it creates a Pod pinned to the Node), and what that Pod looks like."""

from __future__ import annotations

import copy
from typing import Any

EFFECTS = ("NoSchedule", "NoExecute")  # taints that keep a Pod off a Node (PreferNoSchedule does not)


def _number(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def _holds(values: dict[str, str], expression: dict[str, Any]) -> bool:
    """One NodeSelectorRequirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) against labels or fields."""
    key, op, wanted = expression.get("key"), expression.get("operator"), expression.get("values") or []
    have = values.get(str(key))
    if op == "In":
        return have in wanted
    if op == "NotIn":
        return have not in wanted
    if op == "Exists":
        return key in values
    if op == "DoesNotExist":
        return key not in values
    if op in ("Gt", "Lt") and have is not None and len(wanted) == 1:
        mine, bound = _number(have), _number(wanted[0])
        return mine is not None and bound is not None and (mine > bound if op == "Gt" else mine < bound)
    return False


def _term(node: dict[str, Any], term: dict[str, Any]) -> bool:
    """A NodeSelectorTerm: every expression on the labels and every field (metadata.name) holds; empty: none."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": str((node.get("metadata") or {}).get("name") or "")}
    exprs, field_exprs = term.get("matchExpressions") or [], term.get("matchFields") or []
    return bool(exprs or field_exprs) and all(_holds(labels, e) for e in exprs) and \
        all(_holds(fields, e) for e in field_exprs)


def selected(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    """The Pod's nodeSelector and required node affinity (any of its terms) match the Node."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    return terms is None or any(_term(node, t) for t in terms)


def tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    """Some toleration matches the taint: same effect (or any), and the key with Exists or an equal value."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def eligible(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    """A Pod of this template belongs on the Node."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in EFFECTS]
    tolerations = pod_spec.get("tolerations") or []
    return selected(node, pod_spec) and all(tolerated(t, tolerations) for t in taints)


def pod_for(ds: dict[str, Any], node: str, owner_ref: dict[str, Any]) -> dict[str, Any]:
    """The Pod the controller creates for a Node: the template, pinned to the Node by required affinity on its
    name (as the real controller does), and bound to it (there is no scheduler here)."""
    template = (ds.get("spec") or {}).get("template") or {}
    meta = copy.deepcopy(template.get("metadata") or {})
    meta.pop("creationTimestamp", None)
    meta.update({"generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"]["namespace"],
                 "ownerReferences": [owner_ref]})
    spec = copy.deepcopy(template.get("spec") or {})
    pin = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [pin]}
    spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
