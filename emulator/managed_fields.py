"""Server-side apply and managedFields with structured-merge-diff semantics, over FieldsV1 path sets.

Not emulated: the cap of 10 Update managers ("ancient-changes" buckets), conversion between API versions
of one kind (entries keep the apiVersion they were written with), and managers' fields of removed
versions. A custom kind without a registered CRD schema is deduced: maps granular, lists atomic.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from kubedr.emulator import k8s_schema
from kubedr.emulator.k8s_schema import Shape

Path = tuple[str, ...]  # path elements as FieldsV1 spells them: "f:name", "k:{...}", "v:...", "i:0"
MISSING: Any = object()

# Paths the apiserver never records in managedFields (stripMeta): exact paths, not their children.
STRIPPED: frozenset[Path] = frozenset({
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *(("f:metadata", f"f:{name}") for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
        "managedFields", "resourceVersion")),
})
# Metadata the server owns: an apply never changes it (the core sets it).
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
# Struct fields that are values (not pointers) in the Go types: a freshly created object already holds
# them, so creating one does not make their own path part of the creator's set (no "." in FieldsV1).
VALUE_STRUCT_FIELDS = frozenset({"spec", "status", "template", "metadata", "jobTemplate", "strategy",
                                 "updateStrategy", "resources", "source"})
# Which part of an object each write path may own (the strategies' reset fields).
IGNORED_PREFIX: dict[str | None, Path] = {None: ("f:status",), "status": ("f:spec",)}


class FieldsError(ValueError):
    """An apply the schema refuses: a list item without its key, or a field a built-in kind does not declare."""


@dataclass(frozen=True)
class Conflict:
    """One field another manager owns with a different value."""

    manager: str
    operation: str
    subresource: str
    api_version: str
    time: str | None
    path: str

    def owner(self) -> str:
        """The manager as the apiserver prints it in conflict messages."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}" + (f" at {self.time}" if self.time else "")
        return text


class ApplyConflict(Exception):
    """A server-side apply that would take fields other managers own (409 Conflict)."""

    def __init__(self, details: list[Conflict]) -> None:
        self.details = details
        self.conflicts: list[tuple[str, str]] = [(c.manager, c.path) for c in details]
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The Status message, word for word as the real apiserver writes it."""
        n = len(self.details)
        if n == 1:
            body = f"conflict with {self.details[0].owner()}: {self.details[0].path}"
        else:
            groups: dict[str, list[Conflict]] = {}
            for c in self.details:
                groups.setdefault(c.owner(), []).append(c)
            lines = []
            for owner in sorted(groups, key=lambda o: _identity_sort(groups[o][0])):
                lines.append(f"conflicts with {owner}:")
                lines.extend(f"- {c.path}" for c in groups[owner])
            body = "\n".join(lines)
        return f"Apply failed with {n} conflict{'s' if n != 1 else ''}: {body}"

    def status(self) -> dict:
        """The whole 409 Status object the apiserver returns."""
        return {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": "Conflict",
            "details": {"causes": [
                {"reason": "FieldManagerConflict", "message": f"conflict with {c.owner()}", "field": c.path}
                for c in self.details]},
            "code": 409,
        }


def _identity_sort(c: Conflict) -> str:
    entry = {"manager": c.manager, "operation": c.operation}
    if c.operation == "Update":
        entry["apiVersion"] = c.api_version
    if c.subresource:
        entry["subresource"] = c.subresource
    return json.dumps(entry, separators=(",", ":"))


# ---------------------------------------------------------------- path elements and FieldsV1


def _go_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _item_element(shape: Shape, item: Any) -> str:
    if shape.list_type == "set":
        return "v:" + _go_json(item)
    if not isinstance(item, dict):
        raise FieldsError(f"associative list with keys {list(shape.keys)} has a non-object element")
    key = {}
    for name in shape.keys:
        if name in item and item[name] is not None:
            key[name] = item[name]
        else:
            default = shape.key_default(name)
            if default is None:
                raise FieldsError(f"associative list with keys has an element that omits key field {json.dumps(name)} "
                                  "(and doesn't have default value)")
            key[name] = default
    return "k:" + _go_json(key)


def path_string(path: Path) -> str:
    """A path as structured-merge-diff prints it: .spec.containers[name="web"].image."""
    out = []
    for element in path:
        tag, rest = element[:1], element[2:]
        if tag == "f":
            out.append("." + rest)
        elif tag == "k":
            key = json.loads(rest)
            out.append("[" + ",".join(f"{k}={_go_json(key[k])}" for k in sorted(key)) + "]")
        elif tag == "v":
            out.append(f"[={rest}]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)


_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def _element_sort(element: str) -> tuple[int, Any]:
    tag = element[:1]
    return (_ORDER.get(tag, 4), int(element[2:]) if tag == "i" else element[2:])


def to_fields_v1(paths: set[Path]) -> dict:
    """Encode a path set as FieldsV1, with the apiserver's key order ("." first, then f:, k:, v:, i:)."""
    tree: dict = {}
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _ordered(tree)


def _ordered(node: dict) -> dict:
    out: dict = {}
    children = [k for k in node if k != "."]
    if "." in node and children:
        out["."] = {}
    for key in sorted(children, key=_element_sort):
        out[key] = _ordered(node[key])
    return out


def from_fields_v1(fields: dict) -> set[Path]:
    """Decode FieldsV1 into a set of paths."""
    out: set[Path] = set()

    def walk(node: dict, prefix: Path) -> None:
        if not node and prefix:
            out.add(prefix)
        for key, child in node.items():
            if key == ".":
                out.add(prefix)
            else:
                walk(child, prefix + (key,))

    walk(fields or {}, ())
    return out


# ---------------------------------------------------------------- typed walks


def _is_map(shape: Shape, value: Any) -> bool:
    return shape.kind in ("struct", "map") or (shape.kind == "untyped" and isinstance(value, dict))


def _is_list(shape: Shape, value: Any) -> bool:
    return shape.kind == "list" or (shape.kind == "untyped" and isinstance(value, list))


def _list_atomic(shape: Shape) -> bool:
    return shape.kind != "list" or shape.atomic


def field_set(obj: Any, shape: Shape, prefix: Path = (), strict: bool = False) -> set[Path]:
    """The paths an applied configuration sets (structured-merge-diff ToFieldSet); strict refuses unknown fields."""
    out: set[Path] = set()
    _field_set(obj, shape, prefix, out, strict)
    return out


def fields_v1(obj: dict, api_version: str, kind: str) -> dict:
    """The FieldsV1 an apply of this object would own (server-owned metadata and status left out)."""
    shape = k8s_schema.kind_shape(api_version, kind)
    return to_fields_v1(_strip(field_set(_without_meta(obj), shape), _ignored(shape, None)))


def _field_set(value: Any, shape: Shape, path: Path, out: set[Path], strict: bool = False) -> None:
    if isinstance(value, dict) and _is_map(shape, value):
        if shape.atomic:
            out.add(path)
            return
        props = None
        if strict and shape.kind == "struct" and not shape.schema.get("x-kubernetes-preserve-unknown-fields"):
            props = shape.schema.get("properties") or {}
        for key, child in value.items():
            p = path + ("f:" + key,)
            if props is not None and key not in props:
                raise FieldsError(f"{path_string(p)}: field not declared in schema")
            _field_set(child, shape.field(key), p, out, strict)
            if child is None or (isinstance(child, dict) and not child):
                out.add(p)
        return
    if isinstance(value, list) and _is_list(shape, value):
        if _list_atomic(shape):
            out.add(path)
            return
        item_shape = shape.item()
        for i, item in enumerate(value):
            try:
                p = path + (_item_element(shape, item),)
            except FieldsError as exc:
                raise FieldsError(f"{path_string(path)}: element {i}: {exc}") from None
            _field_set(item, item_shape, p, out, strict)
            out.add(p)
        return
    out.add(path)


def _items(shape: Shape, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in value or ():
        out.setdefault(_item_element(shape, item), item)
    return out


@dataclass
class Comparison:
    """What changed between two objects, as path sets."""

    added: set[Path]
    modified: set[Path]
    removed: set[Path]


def compare(lhs: Any, rhs: Any, shape: Shape) -> Comparison:
    """Added, modified and removed paths from lhs to rhs (structured-merge-diff Compare)."""
    result = Comparison(set(), set(), set())
    _compare(lhs, rhs, shape, (), result)
    return result


def _leaf(lhs: Any, rhs: Any, path: Path, result: Comparison) -> None:
    if lhs is MISSING:
        result.added.add(path)
    elif rhs is MISSING:
        result.removed.add(path)
    elif lhs != rhs:
        result.modified.add(path)


def _compare(lhs: Any, rhs: Any, shape: Shape, path: Path, result: Comparison) -> None:
    present = [v for v in (lhs, rhs) if v is not MISSING and v is not None]
    if present and all(isinstance(v, dict) for v in present) and _is_map(shape, present[0]):
        lm = lhs if isinstance(lhs, dict) else {}
        rm = rhs if isinstance(rhs, dict) else {}
        if shape.atomic or (not lm and not rm):
            _leaf(lhs, rhs, path, result)
            return
        for key in {**lm, **rm}:
            _compare(lm.get(key, MISSING), rm.get(key, MISSING), shape.field(key), path + ("f:" + key,), result)
    elif present and all(isinstance(v, list) for v in present) and _is_list(shape, present[0]):
        ll = lhs if isinstance(lhs, list) else []
        rl = rhs if isinstance(rhs, list) else []
        if _list_atomic(shape) or (not ll and not rl):
            _leaf(lhs, rhs, path, result)
            return
        li, ri = _items(shape, ll), _items(shape, rl)
        item_shape = shape.item()
        for element in {**li, **ri}:
            _compare(li.get(element, MISSING), ri.get(element, MISSING), item_shape, path + (element,), result)
    else:
        _leaf(lhs, rhs, path, result)
        return
    if lhs is MISSING:
        result.added.add(path)
    elif rhs is MISSING:
        result.removed.add(path)


def merge(live: Any, config: Any, shape: Shape) -> Any:
    """Merge an applied configuration into the live object (structured-merge-diff Merge)."""
    if live is MISSING or live is None:
        live = MISSING
    if isinstance(config, dict) and _is_map(shape, config):
        if shape.atomic or not isinstance(live, dict):
            return _clean(config)
        out = dict(live)
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(live.get(key, MISSING), value, shape.field(key))
        return out
    if isinstance(config, list) and _is_list(shape, config):
        if _list_atomic(shape) or not isinstance(live, list):
            return _clean(config) if _list_atomic(shape) else [merge(MISSING, v, shape.item()) for v in config]
        return _merge_list(live, config, shape)
    return copy.deepcopy(config)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    return copy.deepcopy(value)


def _merge_list(live: list, config: list, shape: Shape) -> list:
    item_shape = shape.item()
    lhs = [(_item_element(shape, v), v) for v in live]
    rhs = [(_item_element(shape, v), v) for v in config]
    lmap, rmap = dict(reversed(lhs)), dict(reversed(rhs))
    shared = [pe for pe, _ in rhs if pe in lmap]
    out: list = []
    merged: set[str] = set()
    li = ri = 0
    nxt = shared.pop(0) if shared else None
    while li < len(lhs) or ri < len(rhs):
        if li < len(lhs) and ri < len(rhs):
            pe = lhs[li][0]
            if pe == rhs[ri][0]:
                if pe not in merged:
                    merged.add(pe)
                    out.append(merge(lmap[pe], rmap[pe], item_shape))
                li += 1
                ri += 1
                nxt = shared.pop(0) if shared else None
                continue
            if pe in rmap and nxt is not None and nxt != pe:
                li += 1
                continue
        if li < len(lhs):
            pe = lhs[li][0]
            if pe not in rmap:
                out.append(lhs[li][1])
                li += 1
                continue
            if pe in merged:
                li += 1
                continue
        if ri < len(rhs):
            pe = rhs[ri][0]
            if pe not in merged:
                merged.add(pe)
                out.append(merge(lmap.get(pe, MISSING), rmap[pe], item_shape))
            ri += 1
            if nxt is not None and nxt == pe:
                nxt = shared.pop(0) if shared else None
    return out


def _path_tree(paths: set[Path]) -> dict:
    """Paths as nested dicts of path elements; "." marks where a path ends."""
    tree: dict = {}
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node["."] = True
    return tree


def extract(obj: Any, paths: set[Path], shape: Shape) -> Any:
    """The part of an object a path set covers (what a manager's entry says it set)."""
    out = _extract(obj, _path_tree(paths), shape)
    return {} if out is MISSING else out


def _extract(value: Any, tree: dict, shape: Shape) -> Any:
    if "." in tree and len(tree) == 1:
        return copy.deepcopy(value)
    if isinstance(value, dict) and _is_map(shape, value):
        out = {}
        for key, child in value.items():
            sub = tree.get("f:" + key)
            if sub is not None:
                got = _extract(child, sub, shape.field(key))
                if got is not MISSING:
                    out[key] = got
        return out if out or "." in tree else MISSING
    if isinstance(value, list) and _is_list(shape, value) and not _list_atomic(shape):
        items = []
        for item in value:
            sub = tree.get(_item_element(shape, item))
            if sub is not None:
                got = _extract(item, sub, shape.item())
                if got is not MISSING:
                    items.append(got)
        return items if items or "." in tree else MISSING
    return copy.deepcopy(value) if "." in tree else MISSING


def remove_paths(obj: Any, paths: set[Path], shape: Shape) -> Any:
    """The object without the given member paths (whole subtrees); containers emptied by it go too."""
    out = _remove(obj, _path_tree(paths), shape)
    return out if out is not MISSING else {}


def _remove(value: Any, tree: dict, shape: Shape) -> Any:
    if "." in tree:
        return MISSING
    if isinstance(value, dict):
        out = {}
        changed = False
        for key, child in value.items():
            sub = tree.get("f:" + key)
            if sub is None:
                out[key] = child
                continue
            new = _remove(child, sub, shape.field(key))
            changed = True
            if new is not MISSING:
                out[key] = new
        return MISSING if changed and not out and value else out
    if isinstance(value, list) and _is_list(shape, value) and not _list_atomic(shape):
        out_list = []
        for item in value:
            sub = tree.get(_item_element(shape, item))
            if sub is None:
                out_list.append(item)
                continue
            new = _remove(item, sub, shape.item())
            if new is not MISSING:
                out_list.append(new)
        return MISSING if value and not out_list else out_list
    return value


# ---------------------------------------------------------------- managers


@dataclass
class ManagerEntry:
    """One managedFields entry, decoded."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    paths: set[Path]

    def identity(self) -> tuple[str, str, str, str]:
        """Managers are told apart by name, operation, subresource, and (for Update) apiVersion."""
        return (self.manager, self.operation, self.api_version if self.operation == "Update" else "",
                self.subresource)

    def encode(self) -> dict:
        """The entry as the apiserver serializes it."""
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = to_fields_v1(self.paths)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode_entries(obj: dict | None) -> list[ManagerEntry]:
    """The managedFields of an object as entries."""
    entries = []
    for raw in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        entries.append(ManagerEntry(raw.get("manager", ""), raw.get("operation", "Update"), raw.get("apiVersion", ""),
                             raw.get("subresource", "") or "", raw.get("time"),
                             from_fields_v1(raw.get("fieldsV1") or {})))
    return entries


def encode_entries(entries: list[ManagerEntry]) -> list[dict]:
    """Entries sorted as the apiserver sorts them (operation, time, manager, apiVersion, subresource)."""
    alive = [e for e in entries if e.paths]
    alive.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.encode() for e in alive]


def _without_meta(obj: dict | None) -> Any:
    if obj is None:
        return MISSING
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def _ignored(shape: Shape, subresource: str | None) -> Path | None:
    """The part of the object this write path may not own: status on the main resource, spec on status."""
    ignored = IGNORED_PREFIX.get(subresource)
    if ignored and shape.kind == "struct" and "status" in (shape.schema.get("properties") or {}):
        return ignored
    return None


def _strip(paths: set[Path], ignored: Path | None) -> set[Path]:
    return {p for p in paths
            if p not in STRIPPED and not (ignored and p[:len(ignored)] == ignored)}


def zero_object(shape: Shape) -> dict:
    """What the Go type of a kind holds before anything is set: value structs and required fields."""
    return _zero(shape, 0) or {}


def _zero(shape: Shape, depth: int) -> Any:
    if shape.kind != "struct" or depth > 12:
        return None
    out: dict[str, Any] = {}
    if (shape.name or "").endswith(".ObjectMeta"):
        out["creationTimestamp"] = None  # a zero metav1.Time still serializes, as null
    required = set(shape.schema.get("required") or ())
    for name in shape.schema.get("properties") or {}:
        child = shape.field(name)
        if child.kind == "struct" and (name in VALUE_STRUCT_FIELDS or name in required):
            out[name] = _zero(child, depth + 1) or {}
        elif name in required and child.kind in ("list", "map"):
            out[name] = None
    return out


def _nulls_like(zero: dict, new: Any) -> dict:
    """A field the new object holds as null has no omitempty in Go: the zero object holds it as null too."""
    if not isinstance(new, dict):
        return zero
    for key, value in new.items():
        if value is None and key not in zero:
            zero[key] = None
        elif isinstance(value, dict) and isinstance(zero.get(key), dict):
            _nulls_like(zero[key], value)
    return zero


def track_update(old: dict | None, new: dict, manager: str, api_version: str, kind: str, now: str,
                 subresource: str | None = None) -> list:
    """managedFields after a non-apply write: the writer owns what it changed, others lose it."""
    shape = k8s_schema.kind_shape(api_version, kind)
    try:
        rhs = _without_meta(new)
        lhs = _without_meta(old) if old is not None else _nulls_like(zero_object(shape), rhs)
        diff = compare(lhs, rhs, shape)
    except FieldsError:
        return copy.deepcopy(((old or {}).get("metadata") or {}).get("managedFields") or [])
    changed = _strip(diff.added | diff.modified, _ignored(shape, subresource))
    # Like the apiserver: managedFields sent with a main-resource write replace the stored ones
    # ([{}] clears them); otherwise, and always for subresources, the stored ones carry on.
    incoming = (new.get("metadata") or {}).get("managedFields")
    entries = decode_entries(new if incoming and subresource is None else old)
    me = ManagerEntry(manager, "Update", api_version, subresource or "", _entry_time(now, subresource), set())
    for entry in entries:
        if entry.identity() == me.identity():
            me = entry
            continue
        entry.paths -= changed | diff.removed
    entries = [e for e in entries if e is not me]
    own = (me.paths - diff.removed) | changed
    if changed:
        me.time = _entry_time(now, subresource)
    me.paths = own
    entries.append(me)
    return encode_entries(entries)


def _entry_time(now: str, subresource: str | None) -> str | None:
    # The real apiserver (fixtures, v1.24) records no time on scale subresource entries.
    return None if subresource == "scale" else now


def server_side_apply(live: dict | None, config: dict, manager: str, force: bool, api_version: str, kind: str,
                      now: str, subresource: str | None = None) -> dict:
    """Merge an applied configuration into the live object and record who owns what (or ApplyConflict)."""
    shape = k8s_schema.kind_shape(api_version, kind)
    cfg = copy.deepcopy(config)
    meta = cfg.get("metadata")
    if isinstance(meta, dict):
        for name in SERVER_METADATA:
            meta.pop(name, None)
    ignored = _ignored(shape, subresource)
    if ignored:
        cfg.pop(ignored[0][2:], None)
    # Built-in kinds refuse undeclared fields (custom resources are pruned by their schema instead).
    strict = k8s_schema.definition_name(api_version, kind) is not None
    applied = _strip(field_set(cfg, shape, strict=strict), ignored)
    live_body = _without_meta(live) if live is not None else {}
    merged = merge(live_body, cfg, shape)

    entries = decode_entries(live)
    me = ManagerEntry(manager, "Apply", api_version, subresource or "", now, applied)
    previous = next((e for e in entries if e.identity() == me.identity()), None)
    others = [e for e in entries if e is not previous]
    if previous is not None and previous.paths:
        owned = set(applied).union(*(e.paths for e in others))
        stale = {p for p in previous.paths if p not in owned}
        if stale:
            # Only what the merged object itself holds as a member (leaves, list items, empty maps) can go:
            # a list or map path an old entry owned never drops the items a current config still applies.
            try:
                stale &= field_set(merged, shape)
            except FieldsError:
                pass
        if stale:
            merged = remove_paths(merged, stale, shape)
    diff = compare(live_body if live is not None else MISSING, merged, shape)
    touched = diff.added | diff.modified
    details = []
    for entry in others:
        for path in sorted(entry.paths & touched, key=lambda p: [_element_sort(e) for e in p]):
            # the apiserver names a manager by its identity, which never holds the time (BuildManagerIdentifier)
            details.append(Conflict(entry.manager, entry.operation, entry.subresource, entry.api_version,
                                    None, path_string(path)))
    if details and not force:
        raise ApplyConflict(details)
    for entry in others:
        entry.paths -= touched | diff.removed
    result = merged if isinstance(merged, dict) else {}
    for name in ("apiVersion", "kind"):
        if name in config:
            result[name] = config[name]
    result_meta = dict(result.get("metadata") or {})
    for name in SERVER_METADATA:
        if live is not None and name in (live.get("metadata") or {}):
            result_meta[name] = live["metadata"][name]
    result_meta["managedFields"] = encode_entries([*others, me])
    result["metadata"] = result_meta
    return result
