"""What the user scopes in or out, and fields never exported: flags, else the repo policy's `export:` section.

Each setting is taken from its flag when one was given, else from `.kubedr/policy.yaml` on the branch, else
its default. The effective scope is written to `.kubedr/export-scope.yaml` (and a commit trailer), so the
history shows what was replicated when, and `kubedr status` can show it.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubedr import policyfile
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Resource
from kubedr.policyfile import POLICY_PATH
from kubedr.selectors import SelectorError, label_matcher

SCOPE_PATH = ".kubedr/export-scope.yaml"  # written by the exporter: the scope in force
SCOPE_TRAILER = "Kubedr-Scope"


class ScopeError(ValueError):
    """A scope setting is unusable; one line naming it."""


def split_names(value: Any) -> list[str]:
    """A list or comma-separated string of names as a list (flags and policy alike)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [v.strip() for item in items for v in str(item).split(",") if v.strip()]


def _selector(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    try:
        label_matcher(text)
    except SelectorError as exc:
        raise ScopeError(f"label_selector {text!r}: {exc}") from None
    return text


def _ignore(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScopeError("ignore: expected a list of {kind, name, paths}")
    out = []
    for i, rule in enumerate(value):
        if not isinstance(rule, dict) or not rule.get("kind") or not rule.get("paths"):
            raise ScopeError(f"ignore[{i}]: needs kind and paths")
        paths = split_names(rule["paths"]) if isinstance(rule["paths"], str) else [str(p) for p in rule["paths"]]
        for p in paths:
            parse_path(p)
        out.append({"kind": str(rule["kind"]), "name": str(rule.get("name") or "*"), "paths": paths})
    return out


# setting -> (policy keys, converter, default). Flags use the same names (--label-selector, ...).
SETTINGS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any], Any]] = {
    "namespaces": (("namespaces",), split_names, []),  # [] = every namespace
    "exclude_namespaces": (("exclude_namespaces",), split_names, []),
    "extra_kinds": (("cluster_scoped_kinds", "extra_kinds"), split_names, []),
    "label_selector": (("label_selector",), _selector, ""),
    "exclude_kinds": (("exclude_kinds",), split_names, []),
    "exclude_objects": (("exclude_objects",), split_names, []),
    "ignore": (("ignore",), _ignore, []),
}


def parse_policy(data: bytes | None) -> dict[str, Any]:
    """The policy's export section as setting -> value; ScopeError names the bad key."""
    try:
        section = policyfile.section(data, "export")
    except policyfile.PolicyFileError as exc:
        raise ScopeError(f"{POLICY_PATH}: {exc}") from exc
    out: dict[str, Any] = {}
    for name, (keys, convert, _) in SETTINGS.items():
        for key in keys:
            if section.get(key) is not None:
                try:
                    out[name] = convert(section[key])
                except ScopeError as exc:
                    raise ScopeError(f"{POLICY_PATH}: export.{exc}") from None
                break
    return out


@dataclass(frozen=True)
class Scope:
    """The effective scope, and where each setting came from (flag, policy, default)."""

    values: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in SETTINGS:
            return self.values[name]
        raise AttributeError(name)

    def describe(self) -> str:
        """One line for the log: every non-empty setting and its origin."""
        parts = [f"{k}={json.dumps(v, separators=(',', ':'))} ({self.origin[k]})" for k, v in self.values.items()
                 if v not in ([], "") or k == "namespaces"]
        return "; ".join(parts)

    def document(self) -> bytes:
        """The canonical YAML written to SCOPE_PATH."""
        doc = {"version": 1, "export": self.values, "origin": self.origin}
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).encode()

    def trailer(self) -> str:
        """The scope as one JSON line (a commit trailer's value)."""
        return json.dumps(self.values, separators=(",", ":"), sort_keys=True)


def effective(flags: dict[str, Any], policy: dict[str, Any]) -> Scope:
    """Flags (the settings given at all) win; the policy fills what they leave open; defaults the rest."""
    values, origin = {}, {}
    for name, (_, convert, default) in SETTINGS.items():
        if name in flags:
            values[name], origin[name] = convert(flags[name]), "flag"
        elif name in policy:
            values[name], origin[name] = policy[name], "policy"
        else:
            values[name], origin[name] = default, "default"
    return Scope(values, origin)


# ---- matching -----------------------------------------------------------------------------------------------

def kind_names(rtype_or_key: Resource | tuple[str, str]) -> set[str]:
    """Every lower-case way a user may name a type: Kind, Kind.group, plural, plural.group."""
    if isinstance(rtype_or_key, Resource):
        group, kind, plural = rtype_or_key.group, rtype_or_key.kind, rtype_or_key.plural
    else:
        (group, kind), plural = rtype_or_key, ""
    names = {kind.lower()} | ({plural.lower()} if plural else set())
    if group:
        names |= {f"{n}.{group}".lower() for n in list(names)}
    return names


class Filters:
    """Label selector, excluded kinds and excluded objects (namespace/Kind/name globs; _cluster for none)."""

    def __init__(self, scope: Scope | None = None) -> None:
        values = scope.values if scope else {}
        self.matcher = label_matcher(values.get("label_selector") or None)
        self.exclude_kinds = {k.lower() for k in values.get("exclude_kinds") or []}
        self.exclude_objects = [g.lower() for g in values.get("exclude_objects") or []]

    def kind_excluded(self, rtype: Resource | tuple[str, str]) -> bool:
        """True for a type the user left out entirely."""
        return bool(kind_names(rtype) & self.exclude_kinds)

    def object_excluded(self, obj: dict[str, Any], ref: ObjectRef) -> bool:
        """True for an object an exclude glob names."""
        if not self.exclude_objects:
            return False
        ns = ref.namespace or "_cluster"
        kinds = kind_names((ref.group, ref.kind))
        candidates = [f"{ns}/{k}/{ref.name}".lower() for k in kinds]
        return any(fnmatch.fnmatchcase(c, g) for g in self.exclude_objects for c in candidates)

    def labels_match(self, obj: dict[str, Any]) -> bool:
        """The label selector (everything without one)."""
        return self.matcher is None or self.matcher(obj)


# ---- ignore rules ---------------------------------------------------------------------------------------------

_SEGMENT = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\*|\d+)\]|([^.\[\]]+)')


def parse_path(path: str) -> tuple[str, ...]:
    """A JSON pointer (/metadata/annotations/a~1b) or a dotted path (metadata.annotations["a/b"], spec.x[*])."""
    if path.startswith("/"):
        return tuple(p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/"))
    parts: list[str] = []
    pos = 0
    text = path.lstrip(".")
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if not m:
            raise ScopeError(f"ignore path {path!r}: cannot parse at {text[pos:]!r}")
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
    if not parts:
        raise ScopeError(f"ignore path {path!r}: empty")
    return tuple(parts)


def _drop(node: Any, parts: tuple[str, ...]) -> None:
    """Remove what parts name under node; a map or list the removal empties goes too (no `annotations: {}`)."""
    if not parts or not isinstance(node, dict | list):
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys: list[Any] = list(node) if head == "*" else [head] if head in node else []
    else:
        keys = list(range(len(node))) if head == "*" else [int(head)] if head.isdigit() and int(head) < len(node) else []
    for k in reversed(keys):
        child = node[k]
        if rest:
            had = bool(child)
            _drop(child, rest)
            if not (had and isinstance(child, dict | list) and not child):
                continue
        del node[k]


@dataclass(frozen=True)
class IgnoreRule:
    """Values not exported for objects of one kind (and an optional name glob)."""

    kind: str
    name: str
    paths: tuple[tuple[str, ...], ...]

    def applies(self, ref: ObjectRef) -> bool:
        return self.kind.lower() in kind_names((ref.group, ref.kind)) and fnmatch.fnmatchcase(ref.name, self.name)


def ignore_rules(rules: Iterable[dict[str, Any]]) -> list[IgnoreRule]:
    """Parsed rules from the scope's ignore list."""
    return [IgnoreRule(r["kind"], r.get("name") or "*", tuple(parse_path(p) for p in r["paths"])) for r in rules]


def strip_ignored(obj: dict[str, Any], ref: ObjectRef, rules: list[IgnoreRule]) -> dict[str, Any]:
    """A copy of the object without the values the rules name (the object itself when none applies)."""
    matching = [rule for rule in rules if rule.applies(ref)]
    if not matching:
        return obj
    obj = copy.deepcopy(obj)
    for rule in matching:
        for parts in rule.paths:
            _drop(obj, parts)
    return obj
