"""/openapi/v3 (and a JSON /openapi/v2) built from kubernetes-validate's schemas, as kubectl reads them."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from kubedr.emulator import k8s_schema

SCHEMA_PREFIX = "#/components/schemas/"
META_DEFS = "io.k8s.apimachinery.pkg.apis.meta.v1."
# Query parameters of write operations; kubectl looks for fieldValidation on PATCH to decide that the
# server validates fields itself (otherwise it validates on the client from /openapi/v2).
WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
PATCH_TYPES_BUILTIN = ("application/json-patch+json", "application/merge-patch+json",
                       "application/strategic-merge-patch+json", "application/apply-patch+yaml")
PATCH_TYPES_CUSTOM = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


@dataclass(frozen=True)
class Resource:
    """One REST resource of a group-version (what discovery lists)."""

    plural: str
    kind: str
    namespaced: bool


@dataclass
class CustomKind:
    """A kind served from a CustomResourceDefinition, with its openAPIV3Schema."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    schema: dict


_CUSTOM: dict[tuple[str, str, str], CustomKind] = {}


def _version(version: str | None) -> str:
    if not version:
        return k8s_schema.latest_version()
    return version.lstrip("v").split("-")[0].split("+")[0]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _split_gv_path(path: str) -> tuple[str, str]:
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return "", parts[1]
    if parts[0] == "apis" and len(parts) == 3:
        return parts[1], parts[2]
    raise KeyError(path)


def custom_definition_name(group: str, version: str, kind: str) -> str:
    """The schema name the apiserver gives a custom kind (reversed group, version, kind)."""
    return ".".join([*reversed(group.split(".")), version, kind])


def add_custom_resource(group: str, version: str, kind: str, plural: str, namespaced: bool,
                        openapi_v3_schema: dict | None) -> None:
    """Publish a CRD version's schema in /openapi/v3 and type its objects for server-side apply."""
    schema = copy.deepcopy(openapi_v3_schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    _CUSTOM[(group, version, kind)] = CustomKind(group, version, kind, plural, namespaced, schema)
    k8s_schema.register_custom_kind(f"{group}/{version}", kind, _typed_custom_schema(schema))
    _clear_caches()


def remove_custom_resource(group: str, version: str, kind: str) -> None:
    """Forget a custom kind (its CRD was deleted)."""
    _CUSTOM.pop((group, version, kind), None)
    k8s_schema.register_custom_kind(f"{group}/{version}", kind, None)
    _clear_caches()


def _typed_custom_schema(schema: dict) -> dict:
    typed = copy.deepcopy(schema)
    props = typed.setdefault("properties", {})
    props["metadata"] = {"$ref": f"#/$defs/{META_DEFS}ObjectMeta"}
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    typed.setdefault("type", "object")
    return typed


def _clear_caches() -> None:
    _builtin_group.cache_clear()
    _index_cached.cache_clear()


# ---------------------------------------------------------------- schema conversion


def _convert(node: Any) -> Any:
    """kubernetes-validate's JSON-schema dialect -> OpenAPI 3.0 as the apiserver writes it."""
    if isinstance(node, list):
        return [_convert(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = k8s_schema.ref_name(node) if isinstance(node.get("$ref"), str) else None
    for key, value in node.items():
        if key == "$ref" and ref is not None:
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if types:
                out["type"] = types[0]
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v) for k, v in value.items()}
        elif key in ("additionalProperties", "items", "not") and isinstance(value, dict):
            out[key] = _convert(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = _convert(value)
        else:
            out[key] = copy.deepcopy(value)
    if ref is not None:
        target = {"$ref": SCHEMA_PREFIX + ref}
        if not out:
            return target
        out["allOf"] = [target]
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        name = k8s_schema.ref_name(node) if isinstance(node.get("$ref"), str) else None
        if name:
            found.add(name)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(names: set[str], defs: dict[str, dict]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(found - seen)
    return seen


# ---------------------------------------------------------------- paths


def _plural(kind: str) -> str:
    low = kind.lower()
    if low == "endpoints":
        return low
    if low.endswith(("s", "x", "ch", "sh")):
        return low + "es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def builtin_resources(group: str, version: str, k8s_version: str | None = None) -> list[Resource]:
    """Kinds of a built-in group-version, from the schemas (plurals guessed; the core may pass its own)."""
    defs = k8s_schema.definitions(_version(k8s_version))
    out = []
    for schema in defs.values():
        props = schema.get("properties") or {}
        if "metadata" not in props or k8s_schema.ref_name(props["metadata"]) != f"{META_DEFS}ObjectMeta":
            continue
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if gvk.get("group", "") == group and gvk["version"] == version:
                out.append(Resource(_plural(gvk["kind"]), gvk["kind"], True))
    return sorted(out, key=lambda r: r.plural)


def _op(action: str, gvk: dict, kind_ref: str | None, params: list[str], body_types: tuple[str, ...] = (),
        op_id: str = "") -> dict:
    op: dict[str, Any] = {
        "operationId": op_id,
        "parameters": [{"name": p, "in": "query", "schema": {"type": "boolean" if p == "force" else "string",
                                                              "uniqueItems": True}} for p in params],
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": kind_ref}}} if kind_ref else {}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body_types and kind_ref:
        body = {"$ref": SCHEMA_PREFIX + META_DEFS + "Patch"} if action == "patch" else {"$ref": kind_ref}
        op["requestBody"] = {"content": {t: {"schema": body} for t in body_types}, "required": True}
    return op


def _paths(group: str, version: str, resources: list[Resource], kind_refs: dict[str, str],
           custom: bool) -> dict:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, dict] = {}
    for res in resources:
        if "/" in res.plural or res.kind not in kind_refs:
            continue
        gvk = {"group": group, "kind": res.kind, "version": version}
        ref = kind_refs[res.kind]
        base = f"{prefix}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{prefix}/{res.plural}"
        op_kind = res.kind + ("Namespaced" if res.namespaced else "")
        verb_suffix = f"{version.capitalize()}{op_kind}"
        paths[base] = {
            "get": _op("list", gvk, None, ["labelSelector", "fieldSelector", "limit", "continue",
                                           "resourceVersion", "watch"], op_id=f"list{verb_suffix}"),
            "post": _op("post", gvk, ref, list(WRITE_PARAMS), ("application/json", "application/yaml"),
                        op_id=f"create{verb_suffix}"),
        }
        paths[base + "/{name}"] = {
            "get": _op("get", gvk, ref, [], op_id=f"read{verb_suffix}"),
            "put": _op("put", gvk, ref, list(WRITE_PARAMS), ("application/json", "application/yaml"),
                       op_id=f"replace{verb_suffix}"),
            "patch": _op("patch", gvk, ref, [*WRITE_PARAMS, "force"],
                         PATCH_TYPES_CUSTOM if custom else PATCH_TYPES_BUILTIN, op_id=f"patch{verb_suffix}"),
            "delete": _op("delete", gvk, None, ["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                          op_id=f"delete{verb_suffix}"),
        }
    return paths


# ---------------------------------------------------------------- documents


@functools.lru_cache(maxsize=64)
def _builtin_group(group: str, version: str, k8s_version: str, resources: tuple[Resource, ...] | None) -> str:
    defs = k8s_schema.definitions(k8s_version)
    res = list(resources) if resources is not None else builtin_resources(group, version, k8s_version)
    kind_refs: dict[str, str] = {}
    roots: set[str] = set()
    for r in res:
        name = k8s_schema.definition_name(f"{group}/{version}" if group else version, r.kind, k8s_version)
        if name:
            kind_refs[r.kind] = SCHEMA_PREFIX + name
            roots.add(name)
            list_name = name + "List"
            if list_name in defs:
                roots.add(list_name)
    roots |= {f"{META_DEFS}Status", f"{META_DEFS}Patch", f"{META_DEFS}DeleteOptions", f"{META_DEFS}APIResourceList"}
    schemas = {name: _convert(defs[name]) for name in sorted(_closure(roots, defs))}
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": f"v{k8s_version}"},
           "paths": _paths(group, version, res, kind_refs, custom=False),
           "components": {"schemas": schemas,
                          "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                              "name": "authorization", "in": "header"}}}}
    return json.dumps(doc, separators=(",", ":"))


def _custom_group(group: str, version: str, k8s_version: str) -> dict:
    defs = k8s_schema.definitions(k8s_version)
    kinds = [c for (g, v, _), c in sorted(_CUSTOM.items()) if g == group and v == version]
    kind_refs: dict[str, str] = {}
    schemas: dict[str, Any] = {}
    for c in kinds:
        name = custom_definition_name(group, version, c.kind)
        schema = copy.deepcopy(c.schema)
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string"}
        props["kind"] = {"type": "string"}
        props["metadata"] = {"allOf": [{"$ref": SCHEMA_PREFIX + META_DEFS + "ObjectMeta"}]}
        schema.setdefault("type", "object")
        schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": c.kind, "version": version}]
        schemas[name] = schema
        schemas[name + "List"] = {
            "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "items": {"type": "array", "items": {"$ref": SCHEMA_PREFIX + name}},
                           "metadata": {"allOf": [{"$ref": SCHEMA_PREFIX + META_DEFS + "ListMeta"}]}},
            "x-kubernetes-group-version-kind": [{"group": group, "kind": c.kind + "List", "version": version}]}
        kind_refs[c.kind] = SCHEMA_PREFIX + name
    roots = {f"{META_DEFS}ObjectMeta", f"{META_DEFS}ListMeta", f"{META_DEFS}Status", f"{META_DEFS}Patch",
             f"{META_DEFS}DeleteOptions"}
    for name in sorted(_closure(roots, defs)):
        schemas[name] = _convert(defs[name])
    res = [Resource(c.plural, c.kind, c.namespaced) for c in kinds]
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
            "paths": _paths(group, version, res, kind_refs, custom=True),
            "components": {"schemas": schemas}}


def v3_group(group_version_path: str, version: str | None = None,
             resources: list[Resource] | None = None) -> dict:
    """The OpenAPI v3 document of one group-version ("api/v1", "apis/apps/v1"); KeyError if unknown."""
    k8s_version = _version(version)
    group, gv = _split_gv_path(group_version_path)
    if any(g == group and v == gv for g, v, _ in _CUSTOM):
        return _custom_group(group, gv, k8s_version)
    if f"{group}/{gv}" not in _builtin_group_versions(k8s_version):
        raise KeyError(group_version_path)
    return json.loads(_builtin_group(group, gv, k8s_version, tuple(resources) if resources is not None else None))


@functools.lru_cache(maxsize=4)
def _builtin_group_versions(k8s_version: str) -> tuple[str, ...]:
    out = set()
    for schema in k8s_schema.definitions(k8s_version).values():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            out.add(f"{gvk.get('group', '')}/{gvk['version']}")
    return tuple(sorted(out))


def document_hash(doc: dict) -> str:
    """The content hash the index puts in serverRelativeURL (sha512, upper-case hex, as the apiserver)."""
    return hashlib.sha512(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest().upper()


@functools.lru_cache(maxsize=64)
def _index_cached(k8s_version: str, group_versions: tuple[str, ...] | None) -> str:
    if group_versions is None:
        gvs = [_gv_path(*gv.split("/", 1)) for gv in _builtin_group_versions(k8s_version)]
    else:
        gvs = list(group_versions)
    gvs += [_gv_path(g, v) for g, v, _ in _CUSTOM]
    paths: dict[str, dict] = {}
    for path in sorted(set(gvs)):
        custom = [c.schema for (g, v, _), c in sorted(_CUSTOM.items()) if _gv_path(g, v) == path]
        # A cache key, not a content hash: it changes when the version or a custom schema changes.
        digest = hashlib.sha512(json.dumps([k8s_version, path, custom], sort_keys=True).encode())
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.hexdigest().upper()}"}
    return json.dumps({"paths": paths})


def v3_index(version: str | None = None, group_versions: list[str] | None = None) -> dict:
    """The /openapi/v3 discovery document; group_versions ("api/v1", "apis/apps/v1") limits it to what is served."""
    return json.loads(_index_cached(_version(version), tuple(group_versions) if group_versions is not None else None))


def v2(version: str | None = None) -> dict:
    """Swagger 2.0 definitions (JSON). kubectl asks for protobuf and only falls back here; v3 is what it uses."""
    k8s_version = _version(version)
    defs = k8s_schema.definitions(k8s_version)
    text = json.dumps({name: _convert(schema) for name, schema in defs.items()})
    text = re.sub(r'"#/components/schemas/', '"#/definitions/', text)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": f"v{k8s_version}"}, "paths": {},
            "definitions": json.loads(text)}
