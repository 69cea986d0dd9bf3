"""/openapi/v2 as the apiserver serves it: Swagger 2.0 definitions, JSON or gnostic protobuf.

kubectl asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` only (client-go has no JSON
fallback) whenever a kind is missing from /openapi/v3: client-side validation of an unknown kind, the
three-way patch fallback, `kubectl explain --output plaintext-openapiv2`. The definitions come from
kubernetes-validate's schemas, rewritten in the Swagger 2.0 shape kube-openapi's parser accepts (a `$ref`
stands alone with its description, one type per schema, arrays always have items). Paths are not served:
kubectl reads only the definitions.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import yaml

from kubedr.emulator import k8s_schema

# client-go asks for the old "@v1.0" name; the server answers with the ".v1.0" one (Go's mime parser rejects "@").
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PROTOBUF_ACCEPTED = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", PROTOBUF)
REF_PREFIX = "#/definitions/"
# Definitions whose kubernetes-validate form (a oneOf) the real document publishes as one primitive.
PRIMITIVES = {"io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
              "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"}}


# ---------------------------------------------------------------- Swagger 2.0 definitions


def _type(node: dict) -> str | None:
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    if t is None and isinstance(node.get("oneOf"), list):  # a primitive union: its first member's type
        t = next((_type(m) for m in node["oneOf"] if isinstance(m, dict) and _type(m)), None)
    return t


def _schema(node: Any) -> dict:
    """One kubernetes-validate schema node -> a Swagger 2.0 schema kube-openapi can parse."""
    if not isinstance(node, dict):
        return {}
    ref = k8s_schema.ref_name(node) if isinstance(node.get("$ref"), str) or "allOf" in node else None
    if ref is not None:
        out: dict = {"$ref": REF_PREFIX + ref}
        if node.get("description"):
            out = {"description": node["description"], **out}
        return out
    out = {}
    for key in ("description", "format"):
        if isinstance(node.get(key), str):
            out[key] = node[key]
    t = _type(node)
    if t is not None:
        out["type"] = t
    if node.get("required"):
        out["required"] = list(node["required"])
    enum = [v for v in node.get("enum") or () if v is not None]
    if enum:
        out["enum"] = enum
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _schema(v) for k, v in node["properties"].items()}
        out.setdefault("type", "object")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = _schema(extra)
    elif isinstance(extra, bool):
        out["additionalProperties"] = extra
    if t == "array":
        out["items"] = _schema(node.get("items"))
    if node.get("readOnly") is True:
        out["readOnly"] = True
    for key, value in node.items():
        if key.startswith("x-"):
            out[key] = value
    return out


@functools.lru_cache(maxsize=4)
def _document_json(k8s_version: str) -> str:
    defs = k8s_schema.definitions(k8s_version)
    out = {}
    for name in sorted(defs):
        out[name] = dict(PRIMITIVES[name]) if name in PRIMITIVES else _schema(defs[name])
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": f"v{k8s_version}"}, "paths": {},
           "definitions": out}
    return json.dumps(doc, separators=(",", ":"))


def document(version: str | None = None) -> dict:
    """The Swagger 2.0 document (definitions only) for one Kubernetes version (default: the newest)."""
    return json.loads(_document_json(version or k8s_schema.latest_version()))


# ---------------------------------------------------------------- gnostic openapi_v2 protobuf
# Field numbers of gnostic's OpenAPIv2.proto (package openapi.v2), the messages the definitions need.
DOC_SWAGGER, DOC_INFO, DOC_PATHS, DOC_DEFINITIONS = 1, 2, 8, 9
INFO_TITLE, INFO_VERSION = 1, 2
NAMED_NAME, NAMED_VALUE = 1, 2  # NamedSchema / NamedAny
ANY_YAML = 2
SCHEMA_FIELDS = {"$ref": 1, "format": 2, "title": 3, "description": 4, "default": 5, "required": 19, "enum": 20,
                 "additionalProperties": 21, "type": 22, "items": 23, "allOf": 24, "properties": 25,
                 "readOnly": 27, "vendorExtension": 31}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _len(field, text.encode())


def _bool(field: int, value: bool) -> bytes:
    return _varint(field << 3) + (b"\x01" if value else b"\x00")


def _any(value: Any) -> bytes:
    """gnostic Any: the value as YAML text (what kube-openapi parses vendor extensions and enums from)."""
    return _str(ANY_YAML, yaml.safe_dump(value, default_flow_style=False, sort_keys=False))


def _named(name: str, payload: bytes) -> bytes:
    return _str(NAMED_NAME, name) + _len(NAMED_VALUE, payload)


def encode_schema(schema: dict) -> bytes:
    """A Swagger 2.0 schema as a gnostic openapi.v2.Schema message."""
    f = SCHEMA_FIELDS
    out = bytearray()
    for key in ("$ref", "format", "title", "description"):
        if isinstance(schema.get(key), str):
            out += _str(f[key], schema[key])
    if "default" in schema:
        out += _len(f["default"], _any(schema["default"]))
    for name in schema.get("required") or ():
        out += _str(f["required"], name)
    for value in schema.get("enum") or ():
        out += _len(f["enum"], _any(value))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out += _len(f["additionalProperties"], _len(1, encode_schema(extra)))
    elif isinstance(extra, bool):
        out += _len(f["additionalProperties"], _bool(2, extra))
    if isinstance(schema.get("type"), str):
        out += _len(f["type"], _str(1, schema["type"]))
    if isinstance(schema.get("items"), dict):
        out += _len(f["items"], _len(1, encode_schema(schema["items"])))
    for member in schema.get("allOf") or ():
        out += _len(f["allOf"], encode_schema(member))
    if isinstance(schema.get("properties"), dict):
        props = b"".join(_len(1, _named(k, encode_schema(v))) for k, v in schema["properties"].items())
        out += _len(f["properties"], props)
    if schema.get("readOnly") is True:
        out += _bool(f["readOnly"], True)
    for key, value in schema.items():
        if key.startswith("x-"):
            out += _len(f["vendorExtension"], _named(key, _any(value)))
    return bytes(out)


def encode_document(doc: dict) -> bytes:
    """A Swagger 2.0 document (info and definitions) as a gnostic openapi.v2.Document message."""
    info = doc.get("info") or {}
    out = bytearray(_str(DOC_SWAGGER, doc.get("swagger", "2.0")))
    out += _len(DOC_INFO, _str(INFO_TITLE, info.get("title", "")) + _str(INFO_VERSION, info.get("version", "")))
    out += _len(DOC_PATHS, b"")
    defs = b"".join(_len(1, _named(name, encode_schema(schema)))
                    for name, schema in (doc.get("definitions") or {}).items())
    out += _len(DOC_DEFINITIONS, defs)
    return bytes(out)


@functools.lru_cache(maxsize=4)
def _protobuf(k8s_version: str) -> bytes:
    return encode_document(document(k8s_version))


def protobuf(version: str | None = None) -> bytes:
    """The protobuf body of /openapi/v2 (cached per version)."""
    return _protobuf(version or k8s_schema.latest_version())


def json_body(version: str | None = None) -> bytes:
    """The JSON body of /openapi/v2 (cached per version)."""
    return _document_json(version or k8s_schema.latest_version()).encode()
