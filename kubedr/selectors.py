"""Label and field selectors in the query-string syntax kubectl and client libraries send."""

from __future__ import annotations

import re
from collections.abc import Callable


class SelectorError(ValueError):
    """A selector that does not parse; the API server answers it with 400 Bad Request."""

Matcher = Callable[[dict], bool]
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
    tests: list[Callable[[dict], bool]] = []
    for part in _split(expr):
        m = _EQ.match(part)
        if m:
            key, op, val = m.groups()
            if op == "!=":
                tests.append(lambda lb, k=key, v=val: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=val: lb.get(k) == v)
            continue
        m = _SET.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: invalid label selector: {part.strip()!r}")
        neg, key, op, values = m.groups()
        if op:
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            if op == "in":
                tests.append(lambda lb, k=key, vs=vals: lb.get(k) in vs)
            else:
                tests.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        elif neg:
            tests.append(lambda lb, k=key: k not in lb)
        else:
            tests.append(lambda lb, k=key: k in lb)

    def match(obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return match


def selector_matches(selector: dict | None, labels: dict) -> bool:
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


def _lookup(obj: dict, path: str) -> str:
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
    tests = []
    for part in _split(expr):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{expr}'; can't understand '{part}'")
        path, op, val = m.groups()
        if path not in ("metadata.name", "metadata.namespace") and path not in allowed:
            raise SelectorError(f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        tests.append((path, op == "!=", val))

    def match(obj: dict) -> bool:
        return all((_lookup(obj, p) != v) if neg else (_lookup(obj, p) == v) for p, neg, v in tests)

    return match
