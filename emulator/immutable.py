"""Update validation the DR flow meets on a real cluster: fields that may not change once an object exists.

A table of the built-in kinds' immutable fields (the apiserver's ValidateXUpdate functions), checked on every
main-resource write; a change is a 422 Invalid with one cause per field, worded as the real server words it.
The Go `%#v` dumps the real messages hold for struct values are reproduced for LabelSelector and RoleRef;
other structs print as JSON, and the cmp.Diff the real PVC/PV messages append is left out.
Not covered: Pod spec updates, CRD scope/group changes, Job template changes of suspended jobs' scheduling
directives (allowed here whenever the Job is suspended), volumeClaimTemplates beyond the StatefulSet rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubedr.emulator import errors
from kubedr.emulator.resources import ServedResource

Cause = tuple[str, str, str]  # (field, reason, message) as errors.invalid takes them
MISSING = object()

STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                       "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
STATEFULSET_MESSAGE = ("Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                       "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                       "and 'minReadySeconds' are forbidden")
IMMUTABLE_WHEN_SET = "Forbidden: field is immutable when `immutable` is set"
# PersistentVolumeSpec fields outside its inlined PersistentVolumeSource.
PV_NOT_SOURCE = ("capacity", "accessModes", "claimRef", "persistentVolumeReclaimPolicy", "storageClassName",
                 "mountOptions", "volumeMode", "nodeAffinity", "volumeAttributesClassName")


def _get(obj: dict, path: str) -> Any:
    cur: Any = obj
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return MISSING
        cur = cur[key]
    return cur


def _go_strings(values: list) -> str:
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def go_label_selector(sel: Any) -> str:
    """metav1.LabelSelector as Go's %#v prints it (maps sorted by key, nil slices spelled out)."""
    sel = sel if isinstance(sel, dict) else {}
    labels = sel.get("matchLabels")
    ml = "map[string]string(nil)" if labels is None else \
        "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(labels.items())) + "}"
    exprs = sel.get("matchExpressions")
    if exprs is None:
        me = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = [f'v1.LabelSelectorRequirement{{Key:{json.dumps(e.get("key", ""))}, '
                 f'Operator:{json.dumps(e.get("operator", ""))}, '
                 f'Values:{_go_strings(e["values"]) if e.get("values") is not None else "[]string(nil)"}}}'
                 for e in exprs]
        me = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}"


def go_role_ref(ref: Any) -> str:
    """rbac.RoleRef (an internal type without String()) as %#v prints it."""
    ref = ref if isinstance(ref, dict) else {}
    return (f'rbac.RoleRef{{APIGroup:{json.dumps(ref.get("apiGroup", ""))}, Kind:{json.dumps(ref.get("kind", ""))}, '
            f'Name:{json.dumps(ref.get("name", ""))}}}')


def go_value(value: Any) -> str:
    """field.Invalid's value text: %q for strings, %v for numbers and bools, null for nil (JSON for structs)."""
    if value is MISSING or value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _immutable(path: str, show: Callable[[Any], str] = go_value, message: str = "field is immutable",
               label: str | None = None) -> Callable:
    def check(old: dict, new: dict) -> list[Cause]:
        before, after = _get(old, path), _get(new, path)
        if before == after:
            return []
        shown = "null" if after is MISSING or after is None else show(after)  # a nil pointer prints as null
        return [(label or path, "FieldValueInvalid", f"Invalid value: {shown}: {message}")]
    return check


def _forbidden(path: str, message: str) -> Callable:
    def check(old: dict, new: dict) -> list[Cause]:
        return [] if _get(old, path) == _get(new, path) else [(path, "FieldValueForbidden", f"Forbidden: {message}")]
    return check


def _statefulset(old: dict, new: dict) -> list[Cause]:
    def rest(obj: dict) -> dict:
        return {k: v for k, v in (obj.get("spec") or {}).items() if k not in STATEFULSET_MUTABLE}
    return [] if rest(old) == rest(new) else [("spec", "FieldValueForbidden", STATEFULSET_MESSAGE)]


def _when_immutable(*fields: str) -> Callable:
    """ConfigMap/Secret: once immutable is true, it stays true and the data may not change."""
    def check(old: dict, new: dict) -> list[Cause]:
        if old.get("immutable") is not True:
            return []
        out = []
        if new.get("immutable") is not True:
            out.append(("immutable", "FieldValueForbidden", IMMUTABLE_WHEN_SET))
        out += [(f, "FieldValueForbidden", IMMUTABLE_WHEN_SET) for f in fields if old.get(f) != new.get(f)]
        return out
    return check


def _cluster_ip(old: dict, new: dict) -> list[Cause]:
    ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
    if "ExternalName" in (ospec.get("type"), nspec.get("type")) or not ospec.get("clusterIP"):
        return []
    return _immutable("spec.clusterIP")(old, new)


def _job_template(old: dict, new: dict) -> list[Cause]:
    if (old.get("spec") or {}).get("suspend") is True:
        return []
    return _immutable("spec.template", lambda v: "core.PodTemplateSpec" + go_value(v))(old, new)


def _pvc(old: dict, new: dict) -> list[Cause]:
    def rest(obj: dict) -> dict:
        spec = dict(obj.get("spec") or {})
        spec.pop("volumeAttributesClassName", None)
        resources = dict(spec.pop("resources", None) or {})
        resources.pop("requests", None)
        spec["resources"] = resources
        if not (old.get("spec") or {}).get("volumeName"):
            spec.pop("volumeName", None)  # binding sets it once
        return spec
    if rest(old) == rest(new):
        return []
    return [("spec", "FieldValueForbidden", "Forbidden: spec is immutable after creation except resources.requests "
             "and volumeAttributesClassName for bound claims")]


def _pv_source(old: dict, new: dict) -> list[Cause]:
    def source(obj: dict) -> dict:
        return {k: v for k, v in (obj.get("spec") or {}).items() if k not in PV_NOT_SOURCE}
    if source(old) == source(new):
        return []
    return [("spec.persistentvolumesource", "FieldValueForbidden",
             "Forbidden: spec.persistentvolumesource is immutable after creation")]


RULES: dict[str, tuple[Callable[[dict, dict], list[Cause]], ...]] = {
    "Deployment": (_immutable("spec.selector", go_label_selector),),
    "ReplicaSet": (_immutable("spec.selector", go_label_selector),),
    "DaemonSet": (_immutable("spec.selector", go_label_selector),),
    "StatefulSet": (_statefulset,),
    "Job": (_immutable("spec.selector", go_label_selector), _job_template),
    "Service": (_cluster_ip,),
    "ConfigMap": (_when_immutable("data", "binaryData"),),
    "Secret": (_immutable("type"), _when_immutable("data")),
    "RoleBinding": (_immutable("roleRef", go_role_ref, "cannot change roleRef"),),
    "ClusterRoleBinding": (_immutable("roleRef", go_role_ref, "cannot change roleRef"),),
    "PriorityClass": (_forbidden("value", "may not be changed in an update."), _immutable("preemptionPolicy")),
    "StorageClass": (_forbidden("parameters", "updates to parameters are forbidden."),
                     _forbidden("provisioner", "updates to provisioner are forbidden."),
                     _forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."),
                     _immutable("volumeBindingMode")),
    "PersistentVolumeClaim": (_pvc,),
    "PersistentVolume": (_pv_source, _immutable("spec.volumeMode", label="volumeMode")),  # sic: no "spec."
}


def check_update(rt: ServedResource, old: dict, new: dict) -> None:
    """Raise the real 422 Invalid when new changes a field the kind's update validation forbids changing."""
    rules = RULES.get(rt.kind) if rt.builtin else None
    if not rules:
        return
    causes = [cause for rule in rules for cause in rule(old, new)]
    if causes:
        raise errors.invalid(rt, new["metadata"]["name"], causes)
