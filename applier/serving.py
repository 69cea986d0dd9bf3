"""Workloads that serve the cluster itself stay up in standby: the Pods behind webhooks and aggregated APIs.

A ValidatingWebhookConfiguration with failurePolicy Fail whose Service has no ready endpoints refuses every
write it matches, so holding its Deployment at 0 would stop the standby from following the primary. The
workloads whose Pods a webhook's or APIService's Service selects are applied at the primary's replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubedr import contract
from kubedr.applier.decode import Maps, map_ref
from kubedr.applier.fetch import Source
from kubedr.applier.standby import SCALED
from kubedr.contract import ObjectRef

log = logging.getLogger("kubedr.applier.serving")
ADMISSION = "admissionregistration.k8s.io"
ServiceRef = tuple[str, str]  # (namespace, name) as the primary names it


def _webhook_services(obj: dict[str, Any]) -> list[ServiceRef]:
    out = []
    for hook in obj.get("webhooks") or []:
        svc = ((hook or {}).get("clientConfig") or {}).get("service") or {}
        if svc.get("namespace") and svc.get("name"):
            out.append((svc["namespace"], svc["name"]))
    return out


def _api_service(obj: dict[str, Any]) -> list[ServiceRef]:
    svc = (obj.get("spec") or {}).get("service") or {}
    return [(svc["namespace"], svc["name"])] if svc.get("namespace") and svc.get("name") else []


# Kinds whose objects are served by the Pods behind a Service: (group, kind) -> the Services they call.
SERVED_THROUGH: dict[tuple[str, str], Callable[[dict[str, Any]], list[ServiceRef]]] = {
    (ADMISSION, "ValidatingWebhookConfiguration"): _webhook_services,
    (ADMISSION, "MutatingWebhookConfiguration"): _webhook_services,
    ("apiregistration.k8s.io", "APIService"): _api_service,
}
_WORKLOADS = {(api.rpartition("/")[0], kind) for api, kind, _ in SCALED}


class Serving:
    """The exempt workloads of a commit (cached per commit and maps): ref -> why."""

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._exempt: dict[ObjectRef, str] = {}

    def exempt(self, source: Source, target: str, maps: Maps) -> dict[ObjectRef, str]:
        """Workloads (as applied: namespace map done) selected by a Service a webhook or APIService calls."""
        key = (target, maps.fingerprint())
        if key != self._key:
            self._exempt = _compute(source, target, maps)
            self._key = key
        return self._exempt


def _load(source: Source, tree: dict[str, str], paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path, data in zip(paths, source.read_blobs([tree[p] for p in paths]), strict=True):
        try:
            out.append((path, contract.load(data, path)))
        except contract.ManifestError:
            continue  # reported by the round that applies it
    return out


def _compute(source: Source, target: str, maps: Maps) -> dict[ObjectRef, str]:
    tree = source.tree(target)
    refs = source.objects(target).refs
    callers: dict[ServiceRef, str] = {}
    for path, obj in _load(source, tree, [p for p, r in refs.items() if (r.group, r.kind) in SERVED_THROUGH]):
        ref = refs[path]
        for called in SERVED_THROUGH[(ref.group, ref.kind)](obj):
            callers.setdefault(called, f"{ref.kind} {ref.name}")
    if not callers:
        return {}
    namespaces = {ns for ns, _ in callers}
    services = [p for p, r in refs.items() if (r.group, r.kind) == ("", "Service") and (r.namespace, r.name) in callers]
    selectors: dict[str, list[tuple[dict[str, str], str]]] = {}
    for path, svc in _load(source, tree, services):
        selector = (svc.get("spec") or {}).get("selector")
        ref = refs[path]
        if selector:
            why = f"serves {callers[(ref.namespace, ref.name)]} through Service {ref.namespace}/{ref.name}"
            selectors.setdefault(ref.namespace, []).append((selector, why))
    workloads = [p for p, r in refs.items() if (r.group, r.kind) in _WORKLOADS and r.namespace in namespaces
                 and r.namespace in selectors]
    out: dict[ObjectRef, str] = {}
    for path, obj in _load(source, tree, workloads):
        labels = ((((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}
        for selector, why in selectors[refs[path].namespace]:
            if all(labels.get(k) == v for k, v in selector.items()):
                out[map_ref(refs[path], maps)] = why
                break
    return out
