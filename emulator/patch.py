"""The three PATCH bodies the apiserver accepts besides apply: JSON merge, JSON patch and strategic merge."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubedr.emulator import k8s_schema
from kubedr.emulator.k8s_schema import Shape

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
UNSUPPORTED_MESSAGE = ("the body of the request was in an unknown format - accepted media types include: "
                       "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


class PatchError(ValueError):
    """A patch that cannot be applied (the apiserver answers 422, or 409 for a failed JSON patch test)."""


class UnsupportedPatch(Exception):
    """Strategic merge patch on a kind without Go types (custom resources): the apiserver answers 415."""

    def __init__(self, message: str = UNSUPPORTED_MESSAGE) -> None:
        super().__init__(message)


# ---------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- RFC 6902


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list, token: str, path: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index {index} out of range in {path!r}")
    return index


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError(f"path {path!r} points at the whole document")
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, path)
    return node, tokens[-1]


def _child(node: Any, token: str, path: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f"path {path!r} not found: no key {token!r}")
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, path, allow_end=False)]
    raise PatchError(f"path {path!r} not found: {token!r} below a scalar")


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _pointer(path):
        node = _child(node, token, path)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    parent, token = _parent(doc, path)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path, allow_end=True), value)
    else:
        raise PatchError(f"cannot add at {path!r}: parent is a scalar")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parent, token = _parent(doc, path)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"cannot remove {path!r}: not found")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, path, allow_end=False))
    raise PatchError(f"cannot remove {path!r}: parent is a scalar")


def json_patch(target: Any, ops: list) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test); PatchError names the failing op."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for n, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {n}: needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {n} ({kind} {path}): missing 'value'")
        if kind in ("move", "copy") and "from" not in op:
            raise PatchError(f"operation {n} ({kind} {path}): missing 'from'")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            if path == "":
                doc = copy.deepcopy(op["value"])
                continue
            _get(doc, path)
            doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = op["from"]
            if path != source and path.startswith(source + "/"):
                raise PatchError(f"operation {n}: cannot move {source!r} into its own child {path!r}")
            doc, value = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"operation {n}: unknown op {kind!r}")
    return doc


# ---------------------------------------------------------------- strategic merge patch


def strategic_merge_patch(target: dict, patch: dict, api_version: str, kind: str) -> dict:
    """Kubernetes strategic merge patch, with list strategies and merge keys from the built-in schema."""
    if k8s_schema.definition_name(api_version, kind) is None:
        raise UnsupportedPatch()
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    result = _smp_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch,
                      k8s_schema.kind_shape(api_version, kind))
    return result if result is not None else {}


def _strategy(shape: Shape) -> tuple[list[str], str | None]:
    raw = shape.schema.get("x-kubernetes-patch-strategy", "")
    return [s for s in raw.split(",") if s], shape.schema.get("x-kubernetes-patch-merge-key")


def _smp_map(original: dict, patch: dict, shape: Shape) -> dict | None:
    """Merge one patch map into an original map; None means the map itself is deleted."""
    directive = patch.get(DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_directives(patch)
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type {directive!r} in map")
    retain = patch.get(RETAIN_KEYS)
    result = original
    orders: dict[str, list] = {}
    for key, value in patch.items():
        if key in (DIRECTIVE, RETAIN_KEYS):
            continue
        if key.startswith(SET_ORDER):
            orders[key[len(SET_ORDER):]] = value if isinstance(value, list) else []
            continue
        if key.startswith(DELETE_PRIMITIVE):
            field = key[len(DELETE_PRIMITIVE):]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = _smp_value(result.get(key), value, shape.field(key))
        if merged is _DELETE:
            result.pop(key, None)
        else:
            result[key] = merged
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(original_list=result[field], order=order, shape=shape.field(field))
    if isinstance(retain, list):
        keep = set(retain)
        for key in [k for k in result if k not in keep]:
            del result[key]
    return result


_DELETE = object()


def _smp_value(original: Any, patch: Any, shape: Shape) -> Any:
    if isinstance(patch, dict):
        if "replace" in _strategy(shape)[0]:
            return _strip_directives(patch)
        merged = _smp_map(original if isinstance(original, dict) else {}, patch, shape)
        return _DELETE if merged is None else merged
    if isinstance(patch, list) and shape.kind == "list":
        return _smp_list(original if isinstance(original, list) else [], patch, shape)
    return copy.deepcopy(patch)


def _item_key(item: Any, merge_key: str | None) -> Any:
    if merge_key is None:
        return json.dumps(item, sort_keys=True)
    if isinstance(item, dict):
        return json.dumps(item.get(merge_key), sort_keys=True)
    return None


def _smp_list(original: list, patch: list, shape: Shape) -> list:
    strategies, merge_key = _strategy(shape)
    if "merge" not in strategies:
        return [_strip_directives(v) for v in patch]
    item_shape = shape.item()
    if any(isinstance(p, dict) and p.get(DIRECTIVE) == "replace" for p in patch):
        return [_strip_directives(p) for p in patch if not (isinstance(p, dict) and DIRECTIVE in p)]
    if merge_key is None:
        if any(isinstance(p, dict) for p in patch):
            raise PatchError("merging a list of maps needs a patch merge key")
        result: list = []
        for value in [*original, *patch]:  # a set: deduplicated, then merged
            if value not in result:
                result.append(copy.deepcopy(value))
        return result
    result = list(original)
    for element in patch:
        if not isinstance(element, dict):
            raise PatchError(f"list merged by {merge_key!r} holds a non-object element")
        if merge_key not in element:
            raise PatchError(f"map: {element} does not contain declared merge key: {merge_key}")
        key = _item_key(element, merge_key)
        at = next((i for i, item in enumerate(result) if _item_key(item, merge_key) == key), None)
        if element.get(DIRECTIVE) == "delete":
            if at is not None:
                result = [item for item in result if _item_key(item, merge_key) != key]
            continue
        if at is None:
            merged = _smp_map({}, element, item_shape)
            if merged is not None:
                result.append(merged)
        else:
            merged = _smp_map(result[at] if isinstance(result[at], dict) else {}, element, item_shape)
            if merged is None:
                result.pop(at)
            else:
                result[at] = merged
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if k != DIRECTIVE}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return copy.deepcopy(value)


def _apply_order(original_list: list, order: list, shape: Shape) -> list:
    """$setElementOrder: patch-ordered items, with server-only items kept near their old neighbours."""
    _, merge_key = _strategy(shape)
    wanted = [_item_key(o, merge_key) for o in order]
    position = {k: i for i, k in enumerate(wanted)}
    keys = [_item_key(item, merge_key) for item in original_list]
    in_order = sorted((it for it, k in zip(original_list, keys, strict=True) if k in position),
                      key=lambda it: position[_item_key(it, merge_key)])
    server_only = [it for it, k in zip(original_list, keys, strict=True) if k not in position]
    server_index = {k: i for i, k in enumerate(keys)}
    out: list = []
    i = j = 0
    while i < len(in_order) or j < len(server_only):
        if i >= len(in_order):
            out.append(server_only[j])
            j += 1
        elif j >= len(server_only):
            out.append(in_order[i])
            i += 1
        else:
            left = server_index.get(_item_key(in_order[i], merge_key), -1)
            right = server_index.get(_item_key(server_only[j], merge_key), -1)
            if left < right:
                out.append(in_order[i])
                i += 1
            else:
                out.append(server_only[j])
                j += 1
    return out
