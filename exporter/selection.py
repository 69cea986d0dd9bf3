"""Which objects belong in the repo: the chosen namespaces plus the cluster-scoped objects they depend on."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from kubedr.contract import ObjectRef, ref_of, ref_of_path
from kubedr.exporter.events import Event
from kubedr.exporter.scope import Filters, Scope
from kubedr.kubeapi import Resource

RBAC = "rbac.authorization.k8s.io"
ADMISSION = "admissionregistration.k8s.io"
CRD_KEY = ("apiextensions.k8s.io", "CustomResourceDefinition")
Target = tuple[str, str, str]  # (group, kind, name) of a cluster-scoped object
Decision = tuple[dict[str, Any], bool]  # (object, belongs in the repo)


def _selected_sa_subject(obj: dict[str, Any], sel: Selection) -> bool:
    return any(s.get("kind") == "ServiceAccount" and sel.namespace_selected(s.get("namespace") or "")
               for s in obj.get("subjects") or [])


def _webhook_service_selected(obj: dict[str, Any], sel: Selection) -> bool:
    """A webhook configuration one of whose webhooks is served from a chosen namespace."""
    return any(sel.namespace_selected(((w.get("clientConfig") or {}).get("service") or {}).get("namespace") or "")
               for w in obj.get("webhooks") or [] if isinstance(w, dict))


def _api_service_selected(obj: dict[str, Any], sel: Selection) -> bool:
    """An aggregated API served from a chosen namespace (local APIServices have no service)."""
    return sel.namespace_selected(((obj.get("spec") or {}).get("service") or {}).get("namespace") or "")


def _claim_selected(obj: dict[str, Any], sel: Selection) -> bool:
    return sel.namespace_selected(((obj.get("spec") or {}).get("claimRef") or {}).get("namespace") or "")


# Cluster-scoped kinds exported because the chosen namespaces depend on them. The rule says when an object
# belongs on its own; otherwise it belongs while something exported references it (see REFERENCES).
DEPENDENCY_RULES: dict[tuple[str, str], Callable[[dict[str, Any], Selection], bool]] = {
    ("", "Namespace"): lambda o, s: s.namespace_selected(o["metadata"]["name"]),
    (RBAC, "ClusterRoleBinding"): _selected_sa_subject,
    (ADMISSION, "ValidatingWebhookConfiguration"): _webhook_service_selected,
    (ADMISSION, "MutatingWebhookConfiguration"): _webhook_service_selected,
    ("apiregistration.k8s.io", "APIService"): _api_service_selected,
    ("", "PersistentVolume"): _claim_selected,
    ("scheduling.k8s.io", "PriorityClass"): lambda o, s: not o["metadata"]["name"].startswith("system-"),
    ("networking.k8s.io", "IngressClass"): lambda o, s: True,
    CRD_KEY: lambda o, s: False,
    (RBAC, "ClusterRole"): lambda o, s: False,
    ("storage.k8s.io", "StorageClass"): lambda o, s: False,
}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _role_ref(obj: dict[str, Any]) -> list[Target]:
    ref = obj.get("roleRef") or {}
    return [(RBAC, "ClusterRole", ref["name"])] if ref.get("kind") == "ClusterRole" and ref.get("name") else []


def _storage_class(spec: dict[str, Any]) -> list[Target]:
    name = spec.get("storageClassName")
    return [("storage.k8s.io", "StorageClass", name)] if name else []


def _pvc_refs(obj: dict[str, Any]) -> list[Target]:
    spec = _spec(obj)
    vol = [("", "PersistentVolume", spec["volumeName"])] if spec.get("volumeName") else []
    return _storage_class(spec) + vol


def _sts_refs(obj: dict[str, Any]) -> list[Target]:
    return [t for tpl in _spec(obj).get("volumeClaimTemplates") or [] for t in _storage_class(_spec(tpl))]


# What an exported object references among the dependency kinds: (group, kind) -> targets.
REFERENCES: dict[tuple[str, str], Callable[[dict[str, Any]], list[Target]]] = {
    ("", "PersistentVolumeClaim"): _pvc_refs,
    ("apps", "StatefulSet"): _sts_refs,
    (RBAC, "RoleBinding"): _role_ref,
    (RBAC, "ClusterRoleBinding"): _role_ref,
    ("", "PersistentVolume"): lambda o: _storage_class(_spec(o)),
}


def _no_refs(obj: dict[str, Any]) -> list[Target]:
    return []


def parse_kinds(values: Iterable[str]) -> set[str]:
    """User-named kinds, lower-cased: `Node`, `nodes`, `APIService.apiregistration.k8s.io` all work."""
    return {v.strip().lower() for item in values for v in item.split(",") if v.strip()}


class Selection:
    """Decides per event which objects are written or removed, tracking references between them."""

    def __init__(self, namespaces: Iterable[str] | None, exclude: Iterable[str] = (),
                 cluster_kinds: Iterable[str] = ()) -> None:
        self.namespaces = set(namespaces) if namespaces is not None else None
        self.exclude = set(exclude)
        self.cluster_kinds = parse_kinds(cluster_kinds)
        self.filters = Filters()  # the user's label selector and exclusions (exporter/scope.py)
        self._sources: dict[str, frozenset[Target]] = {}
        self._counts: Counter[Target] = Counter()
        # cluster-scoped objects of the dependency kinds, kept compressed (CRD schemas are large)
        self._candidates: dict[Target, bytes] = {}

    def configure(self, scope: Scope) -> None:
        """Take a new effective scope (a re-list of every type then applies it to what is in the repo)."""
        self.namespaces = set(scope.namespaces) if scope.namespaces else None
        self.exclude = set(scope.exclude_namespaces)
        self.cluster_kinds = parse_kinds(scope.extra_kinds)
        self.filters = Filters(scope)

    def _admits(self, obj: dict[str, Any], by_labels: bool = True) -> bool:
        ref = ref_of(obj)
        return not self.filters.object_excluded(obj, ref) and (not by_labels or self.filters.labels_match(obj))

    def namespace_selected(self, ns: str) -> bool:
        """True for a namespace this exporter covers."""
        if not ns or ns in self.exclude:
            return False
        return self.namespaces is None or ns in self.namespaces

    def named_by_user(self, rtype: Resource) -> bool:
        names = {rtype.kind.lower(), rtype.plural.lower()}
        if rtype.group:
            names |= {f"{rtype.kind}.{rtype.group}".lower(), f"{rtype.plural}.{rtype.group}".lower()}
        return bool(names & self.cluster_kinds)

    def watches(self, rtype: Resource) -> bool:
        """Whether this resource type needs a watch at all."""
        if self.filters.kind_excluded(rtype):
            return False
        return rtype.namespaced or rtype.key in DEPENDENCY_RULES or self.named_by_user(rtype)

    def process(self, event: Event) -> list[Decision]:
        """Decisions for one event: the object itself and any dependency whose membership changed."""
        if event.type == "SYNCED":
            return self._synced(event)
        obj = event.obj or {}
        deleted = event.type == "DELETED"
        if event.rtype.namespaced:
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            wanted = not deleted and self.namespace_selected(ns) and self._admits(obj)
            refs = self._refs_of(obj, event.rtype) if wanted else frozenset()
            return [(obj, wanted)] + self._set_refs(ref_of(obj).path, refs)
        if event.rtype.key in DEPENDENCY_RULES:
            ref = ref_of(obj)
            target = (ref.group, ref.kind, ref.name)
            if deleted:
                self._candidates.pop(target, None)
            else:
                self._candidates[target] = zlib.compress(json.dumps(obj).encode(), 1)
            return self._cluster(obj, ref, deleted)
        return [(obj, not deleted and self.named_by_user(event.rtype) and self._admits(obj))]

    def _refs_of(self, obj: dict[str, Any], rtype: Resource) -> frozenset[Target]:
        refs = list(REFERENCES.get(rtype.key, _no_refs)(obj))
        if rtype.group and rtype.namespaced:  # a custom resource depends on its CRD (no-op for built-ins)
            refs.append((*CRD_KEY, f"{rtype.plural}.{rtype.group}"))
        return frozenset(refs)

    def _cluster(self, obj: dict[str, Any], ref: ObjectRef, deleted: bool) -> list[Decision]:
        key = (ref.group, ref.kind)
        wanted = not deleted and (DEPENDENCY_RULES[key](obj, self) or self._counts[(*key, ref.name)] > 0
                                  or self._user_named_key(key)) and self._admits(obj, by_labels=False)
        refs = frozenset(REFERENCES.get(key, _no_refs)(obj)) if wanted else frozenset()
        return [(obj, wanted)] + self._set_refs(ref.path, refs)

    def _user_named_key(self, key: tuple[str, str]) -> bool:
        group, kind = key
        return kind.lower() in self.cluster_kinds or (bool(group) and f"{kind}.{group}".lower() in self.cluster_kinds)

    def _set_refs(self, source: str, refs: frozenset[Target]) -> list[Decision]:
        old = self._sources.get(source, frozenset())
        if old == refs:
            return []
        if refs:
            self._sources[source] = refs
        else:
            self._sources.pop(source, None)
        out: list[Decision] = []
        for t in refs - old:
            self._counts[t] += 1
            if self._counts[t] == 1:
                out += self._reevaluate(t)
        for t in old - refs:
            self._counts[t] -= 1
            if self._counts[t] <= 0:
                del self._counts[t]
                out += self._reevaluate(t)
        return out

    def _reevaluate(self, target: Target) -> list[Decision]:
        packed = self._candidates.get(target)
        if packed is None:
            return []
        obj = json.loads(zlib.decompress(packed))
        return self._cluster(obj, ref_of(obj), False)

    def _synced(self, event: Event) -> list[Decision]:
        """After a full list: forget objects of that type that were not listed (deleted while away)."""
        group, kind = event.rtype.key
        out: list[Decision] = []
        for target in [t for t in self._candidates if t[:2] == (group, kind)]:
            ref = ObjectRef(group, kind, "", target[2])
            if ref.path not in event.seen:
                obj = json.loads(zlib.decompress(self._candidates.pop(target)))
                out += self._cluster(obj, ref, True)
        type_dir = f"/{kind}.{group}/" if group else f"/{kind}/"
        for source in [s for s in self._sources if type_dir in s and s not in event.seen]:
            named = ref_of_path(source)
            if named is not None and (named.group, named.kind) == (group, kind):
                out += self._set_refs(source, frozenset())
        return out
