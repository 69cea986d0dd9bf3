"""Server-side field validation (fieldValidation=Strict|Warn): fields the kind's schema does not declare."""

from __future__ import annotations

from typing import Any

from kubedr.emulator import k8s_schema
from kubedr.emulator.k8s_schema import Shape

# Strategic merge patch directives: keys of a patch body, never fields of an object.
DIRECTIVES = ("$patch", "$retainKeys")
DIRECTIVE_PREFIXES = ("$setElementOrder/", "$deleteFromPrimitiveList/")


def unknown_fields(obj: dict, api_version: str, kind: str) -> list[str]:
    """Paths of fields the schema does not know, as the strict decoder spells them (SMP directives skipped)."""
    shape = k8s_schema.kind_shape(api_version, kind)
    if shape.kind != "struct":
        return []
    out: list[str] = []
    _walk(obj, shape, "", out)
    return out


def _walk(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    if isinstance(value, dict) and shape.kind == "struct":
        props = shape.schema.get("properties") or {}
        for key, child in value.items():
            if key in DIRECTIVES or key.startswith(DIRECTIVE_PREFIXES):
                continue
            where = f"{path}.{key}" if path else key
            if key not in props:
                if not shape.schema.get("x-kubernetes-preserve-unknown-fields"):
                    out.append(where)
                continue
            _walk(child, shape.field(key), where, out)
    elif isinstance(value, dict) and shape.kind == "map":
        item = shape.field("")
        for key, child in value.items():
            _walk(child, item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and shape.kind == "list":
        item = shape.item()
        for i, child in enumerate(value):
            _walk(child, item, f"{path}[{i}]", out)


def strict_message(paths: list[str]) -> str:
    """The error text of a Strict request with unknown fields (the server answers 400 BadRequest)."""
    return "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in paths)


def warnings(paths: list[str]) -> list[str]:
    """Warning header values for fieldValidation=Warn (the default of the API for clients that send none)."""
    return [f'unknown field "{p}"' for p in paths]


def prune_unknown(obj: dict, api_version: str, kind: str) -> list[str]:
    """Drop, in place, the fields a built-in kind's Go types do not have (the decoder drops them); their paths."""
    shape = k8s_schema.kind_shape(api_version, kind)
    out: list[str] = []
    if shape.kind == "struct" and k8s_schema.definition_name(api_version, kind) is not None:
        _prune(obj, shape, "", out)
    return out


def _prune(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    if isinstance(value, dict) and shape.kind == "struct":
        props = shape.schema.get("properties") or {}
        preserve = shape.schema.get("x-kubernetes-preserve-unknown-fields")
        for key in list(value):
            if key not in props:
                where = f"{path}.{key}" if path else key
                if not preserve:
                    del value[key]
                    out.append(where)
                continue
            child = value[key]
            if isinstance(child, dict | list):  # scalars have nothing below them
                _prune(child, shape.field(key), f"{path}.{key}" if path else key, out)
    elif isinstance(value, dict) and shape.kind == "map":
        item = shape.field("")
        if item.kind in ("scalar", "untyped"):  # labels, data, ...: nothing below can be unknown
            return
        for key, child in value.items():
            _prune(child, item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and shape.kind == "list":
        item = shape.item()
        if item.kind in ("scalar", "untyped"):
            return
        for i, child in enumerate(value):
            _prune(child, item, f"{path}[{i}]", out)
