"""Decode: repo bytes -> the object to apply. Parse (repo contract), unseal, validate, map, mark as kubedr's."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubedr import contract
from kubedr.applier.sources import SOURCE_LABEL
from kubedr.contract import ObjectRef

log = logging.getLogger("kubedr.applier.decode")

MANAGED_LABEL = "kubedr.io/managed"
SECRET_FIELDS = ("data", "stringData")  # a Secret's fields whose every value is secret
PATH_ANNOTATION = "kubedr.io/path"


class DecodeError(Exception):
    """A file that cannot become an object to apply; str() is one line (the reason, no path)."""


@dataclass(frozen=True)
class Maps:
    """The transforms from the primary's world to the secondary's: namespaces, image registries, storage."""

    namespaces: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    storage_classes: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        return json.dumps([self.namespaces, self.images, self.storage_classes], sort_keys=True)


def parse_map(pairs: list[str] | None, what: str) -> dict[str, str]:
    """`a=b` pairs (repeatable or comma/space separated) to a dict; ValueError names the bad pair."""
    out: dict[str, str] = {}
    for raw in pairs or []:
        for pair in raw.replace(",", " ").split():
            old, sep, new = pair.partition("=")
            if not sep or not old or not new:
                raise ValueError(f"--{what}: expected old=new, got {pair!r}")
            out[old] = new
    return out


# ---- validation ------------------------------------------------------------------------------------------

class Validator:
    """kubernetes-validate schemas for the target's version, each compiled once by jsonschema-rs (the pure-Python
    validator cost more per object than the apply request)."""

    def __init__(self, server_version: str) -> None:
        from kubernetes_validate import utils as kv

        self._kv = kv
        versions = kv.all_versions()
        wanted = _minor(server_version.lstrip("v"))
        usable = [v for v in versions if (_minor(v) or (0, 0)) <= wanted] if wanted else []
        self.version = usable[-1] if usable else versions[0]
        if wanted and not usable:
            log.info("validating against Kubernetes %s schemas (oldest bundled; cluster is %s)",
                     self.version, server_version)
        self._cache: dict[tuple[str, str], Any] = {}
        self._defs: Any = None

    def _validator(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._cache:
            import jsonschema_rs

            kv = self._kv
            gv = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            schema_dir = f"v{self.version}-local"
            try:
                schema = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{gv}.json",
                                            self.version)
            except FileNotFoundError:
                self._cache[key] = None
                return None
            if self._defs is None:
                defs = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", self.version)
                self._defs = jsonschema_rs.Registry([(defs["$id"], defs)])
            self._cache[key] = jsonschema_rs.Draft202012Validator(schema, registry=self._defs)
        return self._cache[key]

    def check(self, obj: dict[str, Any]) -> None:
        """DecodeError naming the first invalid field; kinds without a bundled schema (CRs) pass."""
        validator = self._validator(str(obj.get("apiVersion")), str(obj.get("kind")))
        if validator is None:
            return
        error = next(iter(validator.iter_errors(obj)), None)
        if error is not None:
            where = ".".join(str(p) for p in error.instance_path) or "(root)"
            minor = ".".join(self.version.split(".")[:2])
            # the schema's message quotes the value: never a Secret's
            secret = obj.get("kind") == "Secret" and str(next(iter(error.instance_path), "")) in SECRET_FIELDS
            message = "not what the schema allows (a Secret value: not shown)" if secret else error.message
            raise DecodeError(f"invalid for Kubernetes {minor}: {where}: {message}")


def _minor(version: str) -> tuple[int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ---- transforms ------------------------------------------------------------------------------------------

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def map_image(image: str, images: dict[str, str]) -> str:
    """Swap a registry/repository prefix; the longest matching prefix wins, at a / : or @ boundary."""
    for old in sorted(images, key=len, reverse=True):
        if image == old or (image.startswith(old) and _boundary(old, image[len(old):])):
            return images[old] + image[len(old):]
    return image


def _boundary(old: str, rest: str) -> bool:
    """Whether old ends at a path boundary of the image: `/`, a digest `@`, or a tag `:` (not a port)."""
    return old.endswith("/") or rest[0] in "/@" or (rest[0] == ":" and "/" not in rest)


def _walk_containers(node: Any, fn: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                for c in value:
                    if isinstance(c, dict):
                        fn(c)
            else:
                _walk_containers(value, fn)
    elif isinstance(node, list):
        for item in node:
            _walk_containers(item, fn)


def _map_storage(obj: dict[str, Any], classes: dict[str, str]) -> None:
    def swap(spec: dict[str, Any] | None) -> None:
        if isinstance(spec, dict) and spec.get("storageClassName") in classes:
            spec["storageClassName"] = classes[spec["storageClassName"]]

    kind = obj.get("kind")
    if kind in ("PersistentVolumeClaim", "PersistentVolume"):
        swap(obj.get("spec"))
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        key = "volume.beta.kubernetes.io/storage-class"
        if ann.get(key) in classes:
            ann[key] = classes[ann[key]]
    elif kind == "StatefulSet":
        for tmpl in (obj.get("spec") or {}).get("volumeClaimTemplates") or []:
            swap(tmpl.get("spec") if isinstance(tmpl, dict) else None)


def map_ref(ref: ObjectRef, maps: Maps) -> ObjectRef:
    """Where an object of the repo lands on the secondary (namespace map applied)."""
    ns = maps.namespaces
    if ref.group == "" and ref.kind == "Namespace" and ref.name in ns:
        return ObjectRef(ref.group, ref.kind, "", ns[ref.name])
    if ref.namespace in ns:
        return ObjectRef(ref.group, ref.kind, ns[ref.namespace], ref.name)
    return ref


def transform(obj: dict[str, Any], maps: Maps) -> dict[str, Any]:
    """Apply namespace, image and storage-class maps (in place; returns obj)."""
    meta = obj.setdefault("metadata", {})
    ns = maps.namespaces
    if ns:
        if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1" and meta.get("name") in ns:
            meta["name"] = ns[meta["name"]]
        if meta.get("namespace") in ns:
            meta["namespace"] = ns[meta["namespace"]]
        if obj.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects") or []:
                if isinstance(subject, dict) and subject.get("namespace") in ns:
                    subject["namespace"] = ns[subject["namespace"]]
        for svc in _called_services(obj):  # webhooks and aggregated APIs call the mapped namespace's Service
            if svc.get("namespace") in ns:
                svc["namespace"] = ns[svc["namespace"]]
    if maps.images:
        def swap_image(c: dict[str, Any]) -> None:
            if isinstance(c.get("image"), str):
                c["image"] = map_image(c["image"], maps.images)
        _walk_containers(obj.get("spec"), swap_image)
    if maps.storage_classes:
        _map_storage(obj, maps.storage_classes)
    return obj


def _called_services(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The `service` references of a webhook configuration's webhooks or an APIService's spec."""
    if obj.get("kind") in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        hooks = [h for h in obj.get("webhooks") or [] if isinstance(h, dict)]
        return [s for h in hooks if isinstance(s := (h.get("clientConfig") or {}).get("service"), dict)]
    if obj.get("kind") == "APIService":
        svc = (obj.get("spec") or {}).get("service")
        return [svc] if isinstance(svc, dict) else []
    return []


def mark(obj: dict[str, Any], path: str, source: str = "") -> dict[str, Any]:
    """Label the object as kubedr's (prune deletes nothing without it) and its source's (applier.owners), and note
    its repo path."""
    meta = obj.setdefault("metadata", {})
    meta["labels"] = dict(meta.get("labels") or {}, **{MANAGED_LABEL: "true"},
                          **({SOURCE_LABEL: source} if source else {}))
    meta["annotations"] = dict(meta.get("annotations") or {}, **{PATH_ANNOTATION: path})
    return obj


# ---- the pipeline ----------------------------------------------------------------------------------------

@dataclass
class Decoder:
    """Everything needed to turn a repo file into the object to apply."""

    maps: Maps
    validator: Validator | None = None
    identities: list[Any] | None = None
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # standby, set by the caller
    source: str = ""  # the source applying it: its label on the object (applier.owners)

    def decode(self, path: str, data: bytes) -> dict[str, Any]:
        """The object to apply for a repo file; ManifestError/DecodeError (one line) when it cannot be."""
        obj = contract.load(data, path)  # a fresh object: changed in place below
        for key in ("status",):
            obj.pop(key, None)
        meta = obj.get("metadata") or {}
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"):
            meta.pop(key, None)
        if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
            obj = self._unseal(obj)
        if self.validator is not None:
            self.validator.check(obj)
        transform(obj, self.maps)
        if self.finish is not None:
            obj = self.finish(obj)
        return mark(obj, path, self.source)

    def _unseal(self, obj: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(obj.get("sealed"), dict):
            return obj
        from kubedr import sealing

        if not self.identities:
            raise DecodeError(f"sealed Secret {ref_name(obj)} refused: no --identity given to unseal it")
        try:
            return sealing.unseal(obj, self.identities)
        except Exception as exc:  # UnsealError and friends: one line
            raise DecodeError(" ".join(str(exc).split())) from exc


def ref_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}".lstrip("/")
