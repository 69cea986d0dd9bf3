"""Built-in Kubernetes schemas from kubernetes-validate: one lazily loaded, cached source for SMP, SSA, OpenAPI."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate

SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")

# List-map keys that the real apiserver defaults when an item omits them (the openapi `default` the
# kubernetes-validate schemas drop). structured-merge-diff uses these to build the item key.
LIST_KEY_DEFAULTS: dict[tuple[str, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
}


def latest_version() -> str:
    """The newest Kubernetes version kubernetes-validate ships schemas for (e.g. "1.37.0")."""
    found = [m.group(1) for p in SCHEMA_ROOT.iterdir() if (m := re.fullmatch(r"v(\d+\.\d+\.\d+)-local", p.name))]
    return max(found, key=lambda v: tuple(int(x) for x in v.split(".")))


@functools.lru_cache(maxsize=4)
def definitions(version: str | None = None) -> dict[str, dict]:
    """All definitions of one Kubernetes version, loaded once (a few ms)."""
    version = version or latest_version()
    path = SCHEMA_ROOT / f"v{version}-local" / "_definitions.json"
    return json.loads(path.read_text())["$defs"]


@functools.lru_cache(maxsize=4)
def _gvk_index(version: str | None = None) -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for name, schema in definitions(version).items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group, ver, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
            api_version = f"{group}/{ver}" if group else ver
            index.setdefault((api_version, kind), name)
    return index


def definition_name(api_version: str, kind: str, version: str | None = None) -> str | None:
    """The definition name of a built-in kind (None for custom resources and unknown kinds)."""
    return _gvk_index(version).get((api_version, kind))


def ref_name(schema: dict) -> str | None:
    """The definition name a `$ref` points at, if any."""
    ref = schema.get("$ref")
    if not ref:
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            ref = all_of[0].get("$ref")
    if not isinstance(ref, str) or not ref:
        return None
    for prefix in REF_PREFIXES:
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref.rsplit("/", 1)[-1]


def _types(schema: dict) -> set[str]:
    t = schema.get("type")
    if t is None:
        return set()
    return {t} if isinstance(t, str) else set(t)


@dataclass(frozen=True)
class Shape:
    """How structured-merge-diff sees one schema node: struct, map, list, scalar or untyped (deduced)."""

    kind: str  # "struct" | "map" | "list" | "scalar" | "untyped"
    schema: dict
    name: str | None = None  # definition name when it came from a $ref
    atomic: bool = False
    list_type: str = "atomic"  # for lists: "map" | "set" | "atomic"
    keys: tuple[str, ...] = ()
    version: str | None = None

    def field(self, key: str) -> Shape:
        """The shape of a struct field or map value; untyped when the schema does not declare it."""
        if self.kind == "untyped":
            return UNTYPED
        props = self.schema.get("properties") or {}
        if key in props:
            return shape_of(props[key], self.version)
        extra = self.schema.get("additionalProperties")
        if isinstance(extra, dict):
            return shape_of(extra, self.version)
        return UNTYPED

    def item(self) -> Shape:
        """The shape of a list element."""
        items = self.schema.get("items")
        return shape_of(items, self.version) if isinstance(items, dict) else UNTYPED

    def key_default(self, key: str) -> Any:
        """The value structured-merge-diff assumes for a list-map key an item omits (None if none)."""
        item = self.item()
        return LIST_KEY_DEFAULTS.get((item.name or "", key))


UNTYPED = Shape("untyped", {})


def _shape(schema: dict, version: str | None) -> Shape:
    name = ref_name(schema)
    merged = dict(schema)
    if name is not None:
        target = definitions(version).get(name, {})
        merged = {**target, **{k: v for k, v in schema.items() if k not in ("$ref", "allOf")}}
    types = _types(merged)
    if merged.get("x-kubernetes-int-or-string"):
        return Shape("scalar", merged, name, version=version)
    if "array" in types:
        list_type = merged.get("x-kubernetes-list-type")
        keys: tuple[str, ...] = tuple(merged.get("x-kubernetes-list-map-keys") or ())
        if list_type is None:
            strategy = merged.get("x-kubernetes-patch-strategy", "")
            if "merge" in strategy.split(","):
                merge_key = merged.get("x-kubernetes-patch-merge-key")
                list_type, keys = ("map", (merge_key,)) if merge_key else ("set", ())
            else:
                list_type = "atomic"
        return Shape("list", merged, name, atomic=list_type == "atomic", list_type=list_type, keys=keys,
                     version=version)
    if "object" in types or "properties" in merged or "additionalProperties" in merged:
        atomic = merged.get("x-kubernetes-map-type") == "atomic"
        if merged.get("properties"):
            return Shape("struct", merged, name, atomic=atomic, version=version)
        if isinstance(merged.get("additionalProperties"), dict):
            return Shape("map", merged, name, atomic=atomic, version=version)
        # An object without fields (RawExtension, JSON) is atomic unless it preserves unknown fields.
        preserve = bool(merged.get("x-kubernetes-preserve-unknown-fields"))
        return Shape("untyped", merged, name, atomic=atomic or not preserve, version=version)
    if types:
        return Shape("scalar", merged, name, version=version)
    return Shape("untyped", merged, name, version=version)


_SHAPES: dict[tuple[int, str | None], tuple[dict, Shape]] = {}


def shape_of(schema: dict, version: str | None = None) -> Shape:
    """The (cached) shape of a schema node; the cache holds the node so its id is never reused."""
    key = (id(schema), version)
    found = _SHAPES.get(key)
    if found is None or found[0] is not schema:
        found = _SHAPES[key] = (schema, _shape(schema, version))
    return found[1]


_CUSTOM_KINDS: dict[tuple[str, str], Shape] = {}


def register_custom_kind(api_version: str, kind: str, schema: dict | None) -> None:
    """Type a custom kind by its CRD schema (None forgets it); unregistered custom kinds stay untyped."""
    if schema is None:
        _CUSTOM_KINDS.pop((api_version, kind), None)
    else:
        _CUSTOM_KINDS[(api_version, kind)] = _shape(schema, None)


def kind_shape(api_version: str, kind: str, version: str | None = None) -> Shape:
    """The shape of a whole object of a kind: built-in schema, registered CRD schema, else untyped."""
    custom = _CUSTOM_KINDS.get((api_version, kind))
    if custom is not None:
        return custom
    name = definition_name(api_version, kind, version)
    if name is None:
        return UNTYPED
    return _kind_shape(name, version)


@functools.lru_cache(maxsize=512)
def _kind_shape(name: str, version: str | None) -> Shape:
    return _shape({"$ref": f"#/$defs/{name}"}, version)
