"""Label and field selectors in the query-string syntax kubectl and client libraries send."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class SelectorError(ValueError):
    """A selector that does not parse; the API server answers it with 400 Bad Request."""

Matcher = Callable[[dict[str, Any]], bool]
_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split(expr: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_matcher(expr: str | None) -> Matcher | None:
    """A predicate over an object's labels, or None when the selector selects everything."""
    if not expr or not expr.strip():
        return None
    tests: list[tuple[str, str, frozenset[str]]] = []  # key, in | notin | exists | !exists, values
    for part in _split(expr):
        m = _EQ.match(part)
        if m:
            key, op, val = m.groups()
            tests.append((key, "notin" if op == "!=" else "in", frozenset([val])))
            continue
        m = _SET.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: invalid label selector: {part.strip()!r}")
        neg, key, op, values = m.groups()
        if op:
            tests.append((key, op, frozenset(v.strip() for v in values.split(",") if v.strip())))
        else:
            tests.append((key, "!exists" if neg else "exists", frozenset()))

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(_holds(labels, *t) for t in tests)

    return match


def _holds(labels: dict[str, Any], key: str, op: str, values: frozenset[str]) -> bool:
    if op == "in":
        return labels.get(key) in values
    if op == "notin":
        return labels.get(key) not in values
    return (key in labels) == (op == "exists")


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    """A metav1.LabelSelector (matchLabels/matchExpressions) against labels; an empty selector matches all."""
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if (op == "In" and labels.get(key) not in vals) or (op == "NotIn" and labels.get(key) in vals) or \
                (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _lookup(obj: dict[str, Any], path: str) -> str:
    cur: object = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_matcher(expr: str | None, allowed: tuple[str, ...]) -> Matcher | None:
    """A predicate for fieldSelector; unknown fields are a 400 as on the real server."""
    if not expr or not expr.strip():
        return None
    tests: list[tuple[str, bool, str]] = []
    for part in _split(expr):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{expr}'; can't understand '{part}'")
        path, op, val = m.groups()
        if path not in ("metadata.name", "metadata.namespace") and path not in allowed:
            raise SelectorError(f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        tests.append((path, op == "!=", val))

    def match(obj: dict[str, Any]) -> bool:
        return all((_lookup(obj, p) != v) if neg else (_lookup(obj, p) == v) for p, neg, v in tests)

    return match
