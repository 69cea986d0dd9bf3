"""The part of kustomize that manifests/ uses, so `kubedr install` renders the overlays without kubectl.

`build(tree, "overlays/primary")` gives the objects `kubectl kustomize overlays/primary` prints for the same
files (order aside): resources and components, `labels` (metadata only), `images`, `configMapGenerator` with
kustomize's own name hash and the references to it, and JSON 6902 `patches`. Anything else is refused in one
line naming the file and the field, so a manifest that starts using another kustomize feature fails here
instead of rendering something else. tests/unit/deploy/test_install_render.py holds the two renderers together.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

Tree = Mapping[str, bytes]  # path relative to the tree's root (posix) -> content
Obj = dict[str, Any]

KUSTOMIZATION = "kustomization.yaml"
FIELDS = frozenset({"apiVersion", "kind", "resources", "components", "labels", "images", "configMapGenerator",
                    "patches"})
GENERATOR_FIELDS = frozenset({"name", "namespace", "files", "literals", "options"})
GENERATOR_OPTIONS = frozenset({"disableNameSuffixHash", "labels", "annotations"})
LABEL_FIELDS = frozenset({"pairs", "includeSelectors", "includeTemplates"})
IMAGE_FIELDS = frozenset({"name", "newName", "newTag", "digest"})
TARGET_FIELDS = frozenset({"group", "version", "kind", "name", "namespace"})
# where a pod template sits in each workload kind
POD_SPECS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",), "Deployment": ("spec", "template", "spec"), "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


class RenderError(ValueError):
    """The tree uses something this renderer does not do, or is broken; one line naming the file."""


@dataclass
class Resource:
    """One object of the build, and whether its name still gets kustomize's content hash."""

    obj: Obj
    hashed: bool = False


def build(tree: Tree, where: str) -> list[Obj]:
    """The objects of the kustomization in directory `where` of the tree, as kustomize renders them."""
    return _finish(_build(tree, _clean(where), [], "Kustomization"))


def name_hash(data: Mapping[str, str]) -> str:
    """kustomize's suffix for a generated ConfigMap: of its data alone (kustomize 4 and 5 look the name up at
    a path that never matches, so it hashes as empty), sha256 as Go's encoding/json writes the document."""
    text = json.dumps({"data": dict(data), "kind": "ConfigMap", "name": ""}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return hashlib.sha256(text.encode()).hexdigest()[:10].translate(str.maketrans("013ae", "ghkmt"))


def split_image(image: str) -> tuple[str, str, str]:
    """(name, tag, digest) of an image reference; tag and digest '' when absent."""
    name, _, digest = image.partition("@")
    head, sep, tag = name.rpartition(":")
    if sep and "/" not in tag:
        return head, tag, digest
    return name, "", digest


# ---- the build ------------------------------------------------------------------------------------------

def _build(tree: Tree, where: str, inherited: list[Resource], kind: str) -> list[Resource]:
    path = posixpath.normpath(posixpath.join(where, KUSTOMIZATION))
    k = _load_kustomization(tree, path, kind)
    out = list(inherited)
    for entry in _list(k, "resources", path):
        target = _join(where, entry, path)
        if _is_dir(tree, target):
            out += _build(tree, target, [], "Kustomization")
        else:
            out += [Resource(doc) for doc in _documents(tree, target)]
    for entry in _list(k, "components", path):
        out = _build(tree, _join(where, entry, path), out, "Component")
    out += [_generate(tree, where, gen, path) for gen in _list(k, "configMapGenerator", path)]
    for patch in _list(k, "patches", path):
        _patch(tree, where, patch, out, path)
    for labels in _list(k, "labels", path):
        _label(labels, out, path)
    for image in _list(k, "images", path):
        _image(image, out, path)
    return out


def _load_kustomization(tree: Tree, path: str, kind: str) -> dict[str, Any]:
    if path not in tree:
        raise RenderError(f"{path}: not found")
    k = _yaml(tree[path], path)
    if not isinstance(k, dict):
        raise RenderError(f"{path}: not a kustomization")
    if k.get("kind", "Kustomization") != kind:
        raise RenderError(f"{path}: a {k.get('kind', 'Kustomization')} where a {kind} belongs")
    unknown = sorted(set(k) - FIELDS)
    if unknown:
        raise RenderError(f"{path}: {unknown[0]}: not rendered by kubedr (only {', '.join(sorted(FIELDS))})")
    return k


def _generate(tree: Tree, where: str, gen: Any, path: str) -> Resource:
    """One ConfigMap of a configMapGenerator entry: a file per key, literals, the options' labels."""
    _fields(gen, GENERATOR_FIELDS, f"{path}: configMapGenerator")
    options = gen.get("options") or {}
    _fields(options, GENERATOR_OPTIONS, f"{path}: configMapGenerator options")
    data: dict[str, str] = {}
    for entry in gen.get("files") or []:
        key, sep, file = str(entry).partition("=")
        target = _join(where, file if sep else key, path)
        if target not in tree:
            raise RenderError(f"{path}: configMapGenerator file {entry}: not found")
        data[key if sep else posixpath.basename(key)] = tree[target].decode()
    for entry in gen.get("literals") or []:
        key, _, value = str(entry).partition("=")
        data[key] = value
    meta: dict[str, Any] = {"name": gen["name"]}
    if gen.get("namespace"):
        meta["namespace"] = gen["namespace"]
    for field in ("labels", "annotations"):
        if options.get(field):
            meta[field] = dict(options[field])
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    return Resource(obj, hashed=not options.get("disableNameSuffixHash"))


def _patch(tree: Tree, where: str, entry: Any, out: list[Resource], path: str) -> None:
    """A JSON 6902 patch (a list of operations) on every object its target selects."""
    _fields(entry, frozenset({"target", "patch", "path"}), f"{path}: patches")
    target = entry.get("target") or {}
    _fields(target, TARGET_FIELDS, f"{path}: patches target")
    text = entry["patch"].encode() if "patch" in entry else tree.get(_join(where, str(entry.get("path")), path))
    ops = _yaml(text or b"", path)
    if not target or not isinstance(ops, list):
        raise RenderError(f"{path}: patches: only JSON 6902 patches (a list of operations, with a target)")
    for res in out:
        if _selected(res.obj, target):
            for op in ops:
                _operation(res.obj, op, path)


def _selected(obj: Obj, target: Mapping[str, str]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    meta = obj["metadata"]
    have = {"group": group, "version": version, "kind": obj["kind"], "name": meta["name"],
            "namespace": meta.get("namespace", "")}
    return all(have[k] == v for k, v in target.items())


def _operation(obj: Obj, op: Any, path: str) -> None:
    """add, replace or remove at a JSON pointer."""
    if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
        raise RenderError(f"{path}: patch operation {op!r}: only add, replace and remove")
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if op["op"] == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), op["value"])
    else:
        node[last] = op["value"]


def _label(entry: Any, out: list[Resource], path: str) -> None:
    _fields(entry, LABEL_FIELDS, f"{path}: labels")
    if entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise RenderError(f"{path}: labels: only metadata labels (includeSelectors and includeTemplates false)")
    for res in out:
        res.obj["metadata"].setdefault("labels", {}).update({k: str(v) for k, v in entry["pairs"].items()})


def _image(entry: Any, out: list[Resource], path: str) -> None:
    _fields(entry, IMAGE_FIELDS, f"{path}: images")
    for container in (c for res in out for c in _containers(res.obj)):
        name, tag, digest = split_image(container["image"])
        if name != entry["name"]:
            continue
        name = entry.get("newName") or name
        if entry.get("digest"):
            container["image"] = f"{name}@{entry['digest']}"
        elif entry.get("newTag"):
            container["image"] = f"{name}:{entry['newTag']}"
        else:
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _finish(out: list[Resource]) -> list[Obj]:
    """Generated names get their hash, and every reference to them follows."""
    renamed: dict[tuple[str, str], str] = {}
    for res in out:
        if res.hashed:
            meta = res.obj["metadata"]
            new = f"{meta['name']}-{name_hash(res.obj.get('data') or {})}"
            renamed[(meta.get("namespace", ""), meta["name"])] = new
            meta["name"] = new
    for res in out:
        namespace = res.obj["metadata"].get("namespace", "")
        for ref in _config_map_refs(res.obj):
            ref["name"] = renamed.get((namespace, ref.get("name", "")), ref.get("name"))
    return [res.obj for res in out]


# ---- pod templates ----------------------------------------------------------------------------------------

def _pod_spec(obj: Obj) -> dict[str, Any] | None:
    node: Any = obj
    for key in POD_SPECS.get(obj.get("kind", ""), ()):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) and obj.get("kind") in POD_SPECS else None


def _containers(obj: Obj) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(obj) or {}
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []


def _config_map_refs(obj: Obj) -> Iterator[dict[str, Any]]:
    """Every place a pod template names a ConfigMap: volumes (plain and projected), env and envFrom."""
    spec = _pod_spec(obj) or {}
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            yield volume["configMap"]
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield source["configMap"]
    for container in _containers(obj):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref is not None:
                yield ref
        for env in container.get("envFrom") or []:
            if "configMapRef" in env:
                yield env["configMapRef"]


# ---- the tree -------------------------------------------------------------------------------------------

def _clean(where: str) -> str:
    where = posixpath.normpath(where)
    if where.startswith("../") or where == ".." or where.startswith("/"):
        raise RenderError(f"{where}: outside the tree")
    return where


def _join(where: str, entry: Any, path: str) -> str:
    joined = posixpath.normpath(posixpath.join(where, str(entry)))
    if joined.startswith("../") or joined == ".." or str(entry).startswith("/"):
        raise RenderError(f"{path}: {entry}: outside the tree")
    return joined


def _is_dir(tree: Tree, where: str) -> bool:
    return any(p.startswith(where + "/") for p in tree)


def _documents(tree: Tree, path: str) -> list[Obj]:
    if path not in tree:
        raise RenderError(f"{path}: not found")
    try:
        docs = [d for d in yaml.safe_load_all(tree[path]) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    for doc in docs:
        if not (isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind") and
                isinstance(doc.get("metadata"), dict) and doc["metadata"].get("name")):
            raise RenderError(f"{path}: a document without apiVersion, kind and metadata.name")
    return docs


def _yaml(data: bytes, path: str) -> Any:
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc


def _list(k: Mapping[str, Any], field: str, path: str) -> list[Any]:
    value = k.get(field) or []
    if not isinstance(value, list):
        raise RenderError(f"{path}: {field}: expected a list")
    return value


def _fields(entry: Any, known: frozenset[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise RenderError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - known)
    if unknown:
        raise RenderError(f"{where}: {unknown[0]}: not rendered by kubedr")
