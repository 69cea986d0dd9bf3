"""metav1.Time and metav1.MicroTime fields as the real server round-trips them through its Go types.

The apiserver decodes a body into typed structs and encodes them again, so a time a client sends is stored
normalised: Time as RFC 3339 in UTC without fractions (`2026-11-24T19:50:21Z`), MicroTime with exactly six
fraction digits (`2026-11-24T19:50:21.123456Z`). A MicroTime without those six digits (what Python's
`datetime.isoformat()` gives at microsecond 0) does not parse: 400, as there. The paths come from the kinds'
schemas; the server-owned top-level metadata times are the store's business.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

from kubedr.emulator import k8s_schema
from kubedr.emulator.errors import api_error

TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
LAYOUT = {"time": "2006-01-02T15:04:05Z07:00", "micro": "2006-01-02T15:04:05.000000Z07:00"}
# Go's time.Parse with those layouts: Time takes any fraction, MicroTime exactly six digits; offset Z or ±hh:mm.
PATTERN = {"time": re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)"),
           "micro": re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})(Z|[+-]\d\d:\d\d)")}

Path = tuple[str, ...]  # keys; "[]" walks list items, "{}" map values


def _walk(schema: dict, prefix: Path, stack: tuple[str, ...]) -> list[tuple[Path, str]]:
    name = k8s_schema.ref_name(schema)
    if name == TIME:
        return [(prefix, "time")]
    if name == MICRO:
        return [(prefix, "micro")]
    if name is not None:
        if name in stack:
            return []
        schema = k8s_schema.definitions().get(name, {})
        stack = (*stack, name)
    out: list[tuple[Path, str]] = []
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            out += _walk(sub, (*prefix, key), stack)
    if isinstance(schema.get("items"), dict):
        out += _walk(schema["items"], (*prefix, "[]"), stack)
    if isinstance(schema.get("additionalProperties"), dict):
        out += _walk(schema["additionalProperties"], (*prefix, "{}"), stack)
    return out


@functools.lru_cache(maxsize=256)
def time_paths(api_version: str, kind: str) -> tuple[tuple[Path, str], ...]:
    """(path, "time"|"micro") of every Time/MicroTime field of a built-in kind, top-level metadata left out."""
    name = k8s_schema.definition_name(api_version, kind)
    if name is None:
        return ()
    found = _walk({"$ref": f"#/$defs/{name}"}, (), ())
    return tuple((p, k) for p, k in found if p[:1] != ("metadata",))


def normalise(value: str, kind: str) -> str | None:
    """The string the Go type encodes back, or None if Go's parser rejects it."""
    m = PATTERN[kind].fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        return None
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    if kind == "time":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"


def _visit(node: object, path: Path, kind: str, api_version: str, obj_kind: str) -> None:
    if not path or node is None:
        return
    key, rest = path[0], path[1:]
    children: list[tuple[object, object]] = []
    if key == "[]" and isinstance(node, list):
        children = list(enumerate(node))
    elif key == "{}" and isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, dict) and key in node:
        children = [(key, node[key])]
    for k, child in children:
        if rest:
            _visit(child, rest, kind, api_version, obj_kind)
        elif isinstance(child, str):
            fixed = normalise(child, kind)
            if fixed is None:
                version = api_version.rsplit("/", 1)[-1]
                raise api_error(400, "BadRequest", f'{obj_kind} in version "{version}" cannot be handled as a '
                               f'{obj_kind}: parsing time "{child}" as "{LAYOUT[kind]}": cannot parse "{child}" '
                               f'as "{LAYOUT[kind]}"')
            if fixed != child:
                node[k] = fixed  # type: ignore[index]


def normalise_object(obj: dict, api_version: str, kind: str) -> None:
    """Rewrite obj's Time/MicroTime strings in place as the server stores them; ApiError 400 if one is invalid."""
    for path, time_kind in time_paths(api_version, kind):
        _visit(obj, path, time_kind, api_version, kind)
