"""The repo contract shared by exporter and applier: object <-> path, and canonical YAML bytes.

Layout: one object per file.

    <namespace>/<Kind>.<group>/<name>.yaml      namespaced objects  (shop/Deployment.apps/web.yaml)
    _cluster/<Kind>.<group>/<name>.yaml         cluster-scoped      (_cluster/Namespace/shop.yaml)

The core group is written as just ``<Kind>`` (``shop/ConfigMap/settings.yaml``). A kind never contains a
dot, a group always does or is empty, so ``<Kind>.<group>`` splits at the first dot. ``_cluster`` can never
be a namespace (namespaces are DNS labels, no underscore).

Names: Kubernetes forbids only ``/`` and ``%`` (and the names ``.``/``..``) in path-segment names, so RBAC
names like ``system:controller:x`` are legal. Every byte outside ``[A-Za-z0-9._-]`` is percent-encoded
(UTF-8), and so is a leading dot: ``system%3Acontroller%3Ax.yaml``. Because ``%`` can never occur in a real
name, the encoding is unambiguous and reversible, and the files are safe on Windows/macOS checkouts.

Long names: a file name holds at most 255 bytes (ext4, XFS, btrfs, APFS, NTFS). When ``<encoded name>.yaml`` would
be longer (a 251-253 character name, or a shorter one that percent-encoding lengthens), the file is named by a prefix
of the encoded name, ``~`` and the sha256 of the full name: ``aaaa…aaa~3f2c…9b1e.yaml``. ``~`` never occurs in an
encoded name, so such a file name can never be an ordinary one; the object inside carries its real name, and only
the name whose hash it is may live there. Names that fit keep their paths.

Files that are not objects: anything not exactly three segments deep, any segment starting with a dot
(``.kubedr/…``, ``.gitattributes``), anything not ending in ``.yaml``, and kind segments that do not start
with an upper-case letter (Kinds are CamelCase), e.g. ``README.md`` or ``docs/examples/x.yaml``. A path that is
not the one its object would get (``shop/ConfigMap./x.yaml``) is refused: one object, one path (but for a long
name's full encoding, as written before the long-name rule: still read, and the exporter's next sync moves it).

Reading is bounded: a file over MAX_FILE_BYTES, or one with YAML anchors or aliases (canonical YAML has none; a
few lines of them expand to gigabytes), is refused with one line naming it.

Canonical YAML (``dump``): block style, UTF-8, no aliases, no line folding, multi-line strings as literal
blocks. Key order: ``apiVersion``, ``kind``, ``metadata``, then the other top-level keys alphabetically;
in ``metadata``: ``name``, ``namespace``, ``labels``, ``annotations``, then the rest alphabetically; every
other mapping is sorted alphabetically (as ``kubectl get -o yaml`` does). The same object always gives the
same bytes, whatever the key order of the input. Strings that Go's YAML (kubectl) would read as booleans or
numbers (``y``, ``on``, ``1e3``, ``0o17``, ``1_e3``) are quoted, so a file also works with ``kubectl apply -f``.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

CLUSTER_DIR = "_cluster"
SUFFIX = ".yaml"
_TOP_FIRST = ("apiVersion", "kind", "metadata")
_META_FIRST = ("name", "namespace", "labels", "annotations")
_SAFE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_KIND_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
MAX_FILE_NAME = 255  # bytes of one path segment on the file systems a checkout lands on
LONG_MARK = "~"  # between a long name's prefix and its hash; never in an encoded name
_HASH_HEX = 64  # sha256
_PREFIX_MAX = MAX_FILE_NAME - len(SUFFIX) - len(LONG_MARK) - _HASH_HEX
_LONG_STEM_RE = re.compile(rf"(?:[A-Za-z0-9._-]|%[0-9A-F]{{2}})+{LONG_MARK}[0-9a-f]{{{_HASH_HEX}}}")
MAX_FILE_BYTES = 3 * 1024 * 1024  # the API server's request limit: no object file can usefully be larger


class ManifestError(Exception):
    """A file in the repo is not a usable manifest; str() is one line naming the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def encode_name(name: str) -> str:
    """Make an object name a safe, reversible file-name stem (percent-encoding, leading dot too)."""
    out = []
    for i, ch in enumerate(name):
        if ch in _SAFE_NAME_CHARS and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def decode_name(stem: str) -> str:
    """Reverse encode_name; ValueError when the stem is not something encode_name produces."""
    raw = bytearray()
    i = 0
    while i < len(stem):
        ch = stem[i]
        if ch == "%":
            hexpart = stem[i + 1:i + 3]
            if len(hexpart) != 2 or not all(c in "0123456789ABCDEF" for c in hexpart):
                raise ValueError(f"bad escape {stem[i:i + 3]!r} in file name")
            raw.append(int(hexpart, 16))
            i += 3
        else:
            raw.extend(ch.encode("utf-8"))
            i += 1
    name = raw.decode("utf-8")
    if encode_name(name) != stem:
        raise ValueError(f"file name {stem!r} is not in canonical encoding (expected {encode_name(name)!r})")
    return name


def file_name(name: str) -> str:
    """The file name of an object: its encoded name, or a prefix, `~` and a hash when that exceeds 255 bytes."""
    stem = encode_name(name)
    if len(stem) + len(SUFFIX) <= MAX_FILE_NAME:
        return stem + SUFFIX
    prefix = stem[:_PREFIX_MAX]
    cut = prefix.find("%", _PREFIX_MAX - 2)  # never end inside a %XX escape
    prefix = prefix[:cut] if cut >= 0 else prefix
    return f"{prefix}{LONG_MARK}{hashlib.sha256(name.encode()).hexdigest()}{SUFFIX}"


def hashed(path: str) -> bool:
    """Whether the path's file name is a long name's prefix and hash: the object's real name is only in the file."""
    return LONG_MARK in path.rpartition("/")[2]


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """Identity of an object in both clusters and in the repo; namespace is "" for cluster-scoped objects."""

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def type_dir(self) -> str:
        """The `<Kind>.<group>` directory (just `<Kind>` for the core group)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def path(self) -> str:
        """Repo path of the object's file, relative to the repo root, with forward slashes."""
        top = self.namespace or CLUSTER_DIR
        return f"{top}/{self.type_dir}/{file_name(self.name)}"

    @property
    def display(self) -> str:
        """Readable form for commit messages and errors: `apps/Deployment shop/web`, `ConfigMap shop/x`."""
        gk = f"{self.group}/{self.kind}" if self.group else self.kind
        return f"{gk} {self.namespace}/{self.name}" if self.namespace else f"{gk} {self.name}"

    def __str__(self) -> str:
        return self.display


def group_of(api_version: str) -> str:
    """The API group of an apiVersion (`apps/v1` -> `apps`, `v1` -> ``)."""
    return api_version.rpartition("/")[0]


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    """Identity of an API object; ValueError when apiVersion, kind or metadata.name is missing."""
    meta = obj.get("metadata") or {}
    api_version, kind, name = obj.get("apiVersion"), obj.get("kind"), meta.get("name")
    if not (isinstance(api_version, str) and api_version and isinstance(kind, str) and kind
            and isinstance(name, str) and name):
        raise ValueError("object needs apiVersion, kind and metadata.name")
    # group, kind and namespace repeat across objects: one string each, not one per object (exporter memory)
    return ObjectRef(sys.intern(group_of(api_version)), sys.intern(kind), sys.intern(meta.get("namespace") or ""),
                     name)


def ref_of_path(path: str) -> ObjectRef | None:
    """Identity for a repo path, or None when the file is not an object (README.md, .kubedr/…, dotfiles).

    For a long name's file (`hashed`), the name is the file's stem, a stand-in: the real one is in the file (load
    checks that it hashes to this path). Raises ManifestError for a path shaped like an object whose name is not
    canonically encoded.
    """
    parts = path.split("/")
    if len(parts) != 3 or any(not p or p.startswith(".") for p in parts) or not parts[2].endswith(SUFFIX):
        return None
    top, type_dir, filename = parts
    kind, _, group = type_dir.partition(".")
    if not _KIND_RE.match(kind):
        return None
    stem = filename[: -len(SUFFIX)]
    namespace = "" if top == CLUSTER_DIR else top
    if LONG_MARK in stem:
        if not _LONG_STEM_RE.fullmatch(stem) or not _PREFIX_MAX - 2 <= stem.index(LONG_MARK) <= _PREFIX_MAX:
            raise ManifestError(path, f"file name {filename!r} is neither an encoded name nor a long name's "
                                      f"prefix{LONG_MARK}sha256")
        ref = ObjectRef(group, kind, namespace, stem)
        expected = f"{ref.namespace or CLUSTER_DIR}/{ref.type_dir}/{filename}"
    else:
        try:
            ref = ObjectRef(group, kind, namespace, decode_name(stem))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(path, str(exc)) from exc
        expected = ref.path
    if path not in (expected, _encoded_path(ref)):
        raise ManifestError(path, f"not the path of {ref.display} (that is {expected})")
    return ref


def _encoded_path(ref: ObjectRef) -> str:
    """The path with the whole encoded name: ref.path, but for a long name (what was written before its rule)."""
    return f"{ref.namespace or CLUSTER_DIR}/{ref.type_dir}/{encode_name(ref.name)}{SUFFIX}"


# ---- tree entries ------------------------------------------------------------------------------------
# The repo is untrusted input: only regular files and directories whose names git itself accepts are read.
# Names as git's verify_path and fsck judge them (core.protectNTFS and protectHFS included): a name with a
# slash or NUL, ".", "..", ".git" in any case or disguise (trailing dots/spaces, the 8.3 short name git~1,
# HFS+ ignorable code points). The table says why each mode that is not a file or a directory is refused.

FILE_MODES = frozenset({0o100644, 0o100755})
TREE_MODE = 0o040000
REFUSED_MODES = {0o120000: "a symbolic link", 0o160000: "a submodule (gitlink)"}
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def entry_problem(name: bytes, mode: int) -> str | None:
    """Why a tree entry must not be read (one phrase), or None for a regular file or directory git accepts."""
    if not name:
        return "an empty name"
    if b"/" in name or b"\0" in name:
        return "a name with a slash or NUL, which git refuses"
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return "a name that is not UTF-8"
    if text in (".", ".."):
        return f"the name {text!r}, which git refuses"
    folded = _HFS_IGNORED.sub("", text).lower().rstrip(". ")
    if folded in (".git", "git~1"):
        return "a name git reserves for its own directory"
    if mode in FILE_MODES or mode == TREE_MODE:
        return None
    return REFUSED_MODES.get(mode, f"mode {mode:o}, not a regular file")


# ---- canonical YAML ---------------------------------------------------------------------------------
# A small block-style emitter: ~5x faster than yaml.dump's Python representer. Scalars it is not sure
# about are handed to libyaml (cached), so every output loads back to the same object.

_PLAIN_RE = re.compile(r"[A-Za-z_/](?:[A-Za-z0-9_./@+:-]*[A-Za-z0-9_./@+-])?")
# YAML 1.1 words that PyYAML or Go's YAML (kubectl) would read as booleans or null.
_RESERVED = frozenset(
    w for base in ("y", "n", "yes", "no", "true", "false", "on", "off", "null")
    for w in (base, base.capitalize(), base.upper()))
_LITERAL_BAD_RE = re.compile(
    "[^\\n\\x20-\\x7e\\xa0-\\u2027\\u202a-\\ud7ff\\ue000-\\ufefe\\uff00-\\ufffd\\U00010000-\\U0010ffff]")
_BREAKS_RE = re.compile("[\\n\\x85\\u2028\\u2029]")
# what go-yaml v2 (sigs.k8s.io/yaml, kubectl) resolves to an int or a float, once underscores are removed
_GO_INT_RE = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)")
_GO_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


class _Dumper(yaml.CSafeDumper):
    """libyaml emitter for single scalars the fast path leaves alone; never emits aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@lru_cache(maxsize=65536)
def _libyaml_scalar(value: Any) -> str:
    text = yaml.dump(value, Dumper=_Dumper, width=1 << 30, allow_unicode=True)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    if _BREAKS_RE.search(text):  # libyaml chose a multi-line style: force one double-quoted line
        text = yaml.dump(value, Dumper=_Dumper, width=1 << 30, allow_unicode=True, default_style='"')
        text = text.removesuffix("\n")
    return text


def _go_number(value: str) -> bool:
    """Go's YAML (kubectl) reads a plain scalar starting with a digit or sign as a number when, underscores
    removed, strconv.ParseInt/ParseUint (base 0: 0x, 0o, 0b in either case) or its float pattern accept it:
    `1e3`, `0o17`, `0X1F`, `1_e3` are numbers there and strings for YAML 1.1/PyYAML."""
    if not value or value[0] not in "+-.0123456789":
        return False
    plain = value.replace("_", "") if value[0] != "." else value  # a leading dot goes to ParseFloat as is
    if _GO_INT_RE.fullmatch(plain) or _GO_FLOAT_RE.fullmatch(plain):
        return True
    try:  # also what Python reads as a float (`-inf`): quoting more than Go needs is harmless, and kept
        float(value)   # for the bytes of existing repos
    except ValueError:
        return False
    return True


@lru_cache(maxsize=65536)
def _str_scalar(value: str) -> str:
    if _PLAIN_RE.fullmatch(value):
        return f"'{value}'" if value in _RESERVED else value
    text = _libyaml_scalar(value)
    if text == value and _go_number(value):
        return f"'{value}'"
    return text


def _literal_ok(value: str) -> bool:
    return ("\n" in value and not value.startswith((" ", "\n")) and " \n" not in value
            and not _LITERAL_BAD_RE.search(value))


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _str_scalar(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return _libyaml_scalar(value)


def _literal(value: str, indent: str) -> str:
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    head = "|-" if trailing == 0 else "|" if trailing == 1 else "|+"
    lines = [f"{indent}{line}" if line else "" for line in body.split("\n")]
    return head + "\n" + "\n".join(lines) + "\n" * trailing + ("\n" if trailing == 0 else "")


def _emit_value(out: list[str], value: Any, indent: str) -> None:
    """Append ` value\\n` or a nested block after a `key:` or `-` already written."""
    if isinstance(value, dict):
        if not value:
            out.append(" {}\n")
        else:
            out.append("\n")
            _emit_mapping(out, value, indent + "  ", sorted(value, key=str))
    elif isinstance(value, list):
        if not value:
            out.append(" []\n")
        else:
            out.append("\n")
            _emit_sequence(out, value, indent)
    elif isinstance(value, str) and "\n" in value and _literal_ok(value):
        out.append(" " + _literal(value, indent + "  "))
    else:
        out.append(" " + _scalar(value) + "\n")


def _key(key: Any, indent: str) -> str:
    text = _scalar(key)
    return f"{text}:" if len(text) < 1000 else f"? {text}\n{indent}:"  # YAML caps implicit keys at 1024


def _emit_mapping(out: list[str], mapping: dict[Any, Any], indent: str, keys: list[Any]) -> None:
    for key in keys:
        out.append(indent + _key(key, indent))
        _emit_value(out, mapping[key], indent)


def _emit_sequence(out: list[str], items: list[Any], indent: str) -> None:
    for item in items:
        if isinstance(item, dict) and item:
            keys = sorted(item, key=str)
            out.append(f"{indent}- " + _key(keys[0], indent + "  "))
            _emit_value(out, item[keys[0]], indent + "  ")
            _emit_mapping(out, item, indent + "  ", keys[1:])
        elif isinstance(item, list) and item:
            out.append(f"{indent}-\n")
            _emit_sequence(out, item, indent + "  ")
        else:
            out.append(f"{indent}-")
            _emit_value(out, item, indent)


def _first_then_sorted(mapping: dict[str, Any], first: tuple[str, ...]) -> list[str]:
    head = [k for k in first if k in mapping]
    return head + sorted((k for k in mapping if k not in first), key=str)


def dump(obj: dict[str, Any]) -> bytes:
    """Canonical YAML bytes of an object: the same object always gives the same bytes."""
    out: list[str] = []
    for key in _first_then_sorted(obj, _TOP_FIRST):
        value = obj[key]
        if key == "metadata" and isinstance(value, dict) and value:
            out.append("metadata:\n")
            _emit_mapping(out, value, "  ", _first_then_sorted(value, _META_FIRST))
        else:
            out.append(_key(key, ""))
            _emit_value(out, value, "")
    return "".join(out).encode("utf-8")


def parse_yaml(data: bytes, path: str) -> Any:
    """One YAML document of the repo, bounded: ManifestError (one line naming the file) for a file over
    MAX_FILE_BYTES, with anchors or aliases, or not YAML."""
    if len(data) > MAX_FILE_BYTES:
        raise ManifestError(path, f"{len(data)} bytes, over the {MAX_FILE_BYTES} byte limit (not read)")
    try:
        if b"&" in data or b"*" in data:  # the only characters that start an anchor or an alias
            for event in yaml.parse(data, Loader=yaml.CSafeLoader):
                if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                    line = f" on line {event.start_mark.line + 1}" if event.start_mark else ""
                    raise ManifestError(path, f"YAML anchor or alias{line}: the repo contract has none "
                                              f"(refused unparsed)")
        return yaml.load(data, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ManifestError(path, f"invalid YAML: {reason}") from exc
    except RecursionError:
        raise ManifestError(path, "YAML nested too deeply") from None


def load(data: bytes, path: str) -> dict[str, Any]:
    """Parse one manifest; ManifestError names the file for YAML errors, non-objects and misplaced files."""
    obj = parse_yaml(data, path)
    if not isinstance(obj, dict):
        raise ManifestError(path, f"expected a mapping (one object), got {type(obj).__name__}")
    try:
        ref = ref_of(obj)
    except ValueError as exc:
        raise ManifestError(path, str(exc)) from exc
    expected = ref_of_path(path)
    if expected is not None and path not in (ref.path, _encoded_path(ref)):
        raise ManifestError(path, f"file holds {ref.display}, but its path says {expected.display}")
    return obj
