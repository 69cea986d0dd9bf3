"""A field manager's server-side-apply field set (managedFields, FieldsV1) and the values an object holds there.

Drift is judged only on these paths: what kubedr declared when it applied. Fields other writers own
(status, defaults, a controller's replicas) are outside the set and so never compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Elements = tuple[str, ...]  # FieldsV1 path elements: "f:name", "k:{...}", "v:...", "i:0"
MISSING: Any = object()


@dataclass(frozen=True)
class Difference:
    """One owned field whose value is not what kubedr applied: readable path and FieldsV1 elements."""

    path: str
    elements: Elements


def applied_set(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    """The FieldsV1 tree the manager's Apply entry owns ({} when it has none)."""
    merged: dict[str, Any] = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource"):
            _union(merged, entry.get("fieldsV1") or {})
    return merged


def _union(into: dict[str, Any], tree: dict[str, Any]) -> None:
    for key, sub in tree.items():
        _union(into.setdefault(key, {}), sub or {})


def owners(obj: dict[str, Any], elements: Elements) -> set[str]:
    """Managers whose entries own this path now (exactly, or an ancestor owned atomically)."""
    out: set[str] = set()
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        node, depth = entry.get("fieldsV1") or {}, 0
        for el in elements:
            if el not in node:
                if depth and not node:  # an atomic ancestor: the whole value is theirs
                    out.add(str(entry.get("manager")))
                break
            node, depth = node[el] or {}, depth + 1
        else:
            out.add(str(entry.get("manager")))
    return out


def extract(value: Any, tree: dict[str, Any]) -> Any:
    """The part of value the tree covers (what to keep as the baseline)."""
    if not tree or value is MISSING:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for el, sub in tree.items():
            if el.startswith("f:") and el[2:] in value:
                out[el[2:]] = extract(value[el[2:]], sub or {})
        return out
    if isinstance(value, list):
        items = []
        for el, sub in tree.items():
            item = _list_item(value, el)
            if item is not MISSING:
                part = extract(item, sub or {})
                if el.startswith("k:") and isinstance(part, dict):  # keep the key: the item is found by it
                    part = {**json.loads(el[2:]), **part}
                items.append(part)
        return items
    return value


def differences(baseline: Any, live: Any, tree: dict[str, Any], prefix: str = "",
                elements: Elements = ()) -> list[Difference]:
    """Owned paths where live differs from baseline (both read through the same tree)."""
    leaf = not [k for k in tree if k != "."]
    if leaf or not isinstance(baseline, dict | list) or not isinstance(live, dict | list):
        return [] if _same(baseline, live) else [Difference(prefix or ".", elements)]
    out: list[Difference] = []
    for el, sub in tree.items():
        if el == ".":
            continue
        a, b = _child(baseline, el), _child(live, el)
        if a is MISSING and b is MISSING:
            continue
        out += differences(a, b, sub or {}, _join(prefix, el), (*elements, el))
    return out


def _same(a: Any, b: Any) -> bool:
    return a is b or (a is not MISSING and b is not MISSING and a == b)


def _child(value: Any, el: str) -> Any:
    if isinstance(value, dict):
        return value.get(el[2:], MISSING) if el.startswith("f:") else MISSING
    if isinstance(value, list):
        return _list_item(value, el)
    return MISSING


def _list_item(items: list[Any], el: str) -> Any:
    kind, _, raw = el.partition(":")
    if kind == "k":
        keys = json.loads(raw)
        return next((i for i in items if isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items())),
                    MISSING)
    if kind == "v":
        wanted = json.loads(raw)
        return wanted if wanted in items else MISSING
    if kind == "i" and raw.isdigit() and int(raw) < len(items):
        return items[int(raw)]
    return MISSING


def _join(prefix: str, el: str) -> str:
    kind, _, raw = el.partition(":")
    if kind == "f":
        return f"{prefix}.{raw}" if prefix else raw
    if kind == "k":
        keys = json.loads(raw)
        return f"{prefix}[{','.join(f'{k}={v}' for k, v in keys.items())}]"
    return f"{prefix}[{raw}]"
