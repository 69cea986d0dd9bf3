"""Writes: create, update, patch and server-side apply (with the patch glue), the scale subresource, and the
checks and server-owned fields every write shares."""

from __future__ import annotations

import copy
import json
import random
import re
import uuid

from kubedr.emulator import defaults, errors, immutable, resources, times
from kubedr.emulator import field_validation as _fv
from kubedr.emulator import managed_fields as _mf
from kubedr.emulator import patch as _patch
from kubedr.emulator.errors import ApiError, api_error
from kubedr.emulator.objects import DEFAULT_MANAGER, META_ORDER, SERVER_META, StoredObject, dumps, now_iso
from kubedr.emulator.registry import Registry
from kubedr.emulator.resources import ServedResource

GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
RX_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RX_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RX_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                 "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
            "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
            "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


class Writes(Registry):
    """POST, PUT and PATCH by resource; the HTTP server and the in-process API both call these."""

    @staticmethod
    def _shape(rt: ServedResource, obj: dict) -> dict:
        """kind, apiVersion and metadata first, metadata keys in the server's order."""
        meta = obj.get("metadata") or {}
        ordered = {k: meta[k] for k in META_ORDER if k in meta}
        if len(ordered) != len(meta):
            ordered.update((k, v) for k, v in meta.items() if k not in ordered)
        out = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": ordered}
        for k, v in obj.items():
            if k not in out:
                out[k] = v
        return out

    def _validate(self, rt: ServedResource, obj: dict) -> None:
        name = obj["metadata"].get("name") or ""
        if not name:
            raise errors.invalid(rt, "", [("metadata.name", "FieldValueRequired",
                                           "Required value: name or generateName is required")])
        rule = resources.NAME_RULE.get(rt.kind, "subdomain")
        msg = None
        if rule == "subdomain" and (len(name) > 253 or not RX_SUBDOMAIN.match(name)):
            msg = MSG_SUBDOMAIN if len(name) <= 253 else "must be no more than 253 characters"
        elif rule == "label" and rt.kind == "Service" and (len(name) > 63 or not RX_1035.match(name)):
            msg = MSG_1035 if len(name) <= 63 else "must be no more than 63 characters"
        elif rule == "label" and rt.kind != "Service" and (len(name) > 63 or not RX_LABEL.match(name)):
            msg = MSG_LABEL if len(name) <= 63 else "must be no more than 63 characters"
        elif rule == "path":
            if name in (".", ".."):
                msg = f"may not be '{name}'"
            elif "/" in name or "%" in name:
                msg = "may not contain '/'" if "/" in name else "may not contain '%'"
        if msg:
            raise errors.invalid(rt, name, [("metadata.name", "FieldValueInvalid",
                                             f"Invalid value: {json.dumps(name)}: {msg}")])
        if rt.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            want = f"{names.get('plural')}.{spec.get('group')}"
            if name != want:
                raise errors.invalid(rt, name, [("metadata.name", "FieldValueInvalid",
                                                 f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')])

    def _check_namespace(self, rt: ServedResource, ns: str | None, name: str) -> str:
        if not rt.namespaced:
            return ""
        if not ns:
            raise errors.bad_request("the server could not find the requested resource")
        nsrt = self.kinds[("v1", "Namespace")]
        entry = self._entry(nsrt, "", ns)
        if entry is None:
            raise errors.namespace_not_found(ns)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise errors.forbidden_terminating(rt, name, ns)
        return ns

    @staticmethod
    def _manager_fields(old: dict | None, new: dict, manager: str, rt: ServedResource, subresource: str | None) -> None:
        """Record a non-apply write in metadata.managedFields."""
        meta = new["metadata"]
        incoming = meta.get("managedFields")
        if not incoming and old is not None:
            meta["managedFields"] = old["metadata"].get("managedFields") or []
        elif incoming and incoming == [{}]:
            meta["managedFields"] = []
        meta["managedFields"] = _mf.track_update(old, new, manager, rt.api_version, rt.kind, now_iso(),
                                                 subresource=subresource)
        if not meta["managedFields"]:
            del meta["managedFields"]

    @staticmethod
    def _spec_changed(old: dict, new: dict) -> bool:
        skip = ("metadata", "status", "kind", "apiVersion")
        return {k: v for k, v in old.items() if k not in skip} != {k: v for k, v in new.items() if k not in skip}

    @staticmethod
    def _same(old: dict, new: dict) -> bool:
        """A no-op write: equal but for resourceVersion and managedFields timestamps (no rv bump, no event)."""
        def norm(o: dict) -> dict:
            m = dict(o["metadata"])
            m.pop("resourceVersion", None)
            m["managedFields"] = [{k: v for k, v in f.items() if k != "time"} for f in m.get("managedFields") or ()]
            return {**o, "metadata": m}
        return norm(old) == norm(new)

    def create_rt(self, rt: ServedResource, obj: dict, namespace: str | None = None, manager: str = DEFAULT_MANAGER,
                  dry_run: bool = False, fields_done: bool = False) -> StoredObject:
        """POST: server metadata, namespace checks, validation, AlreadyExists."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        ns = namespace if namespace is not None else meta.get("namespace")
        if rt.namespaced and namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(random.choices(GENERATE_CHARS, k=5))
            name = meta.get("name") or ""
            ns = self._check_namespace(rt, ns, name)
            if rt.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            for k in SERVER_META:
                meta.pop(k, None)
            obj = self._shape(rt, obj)
            if rt.builtin:
                _prune(obj, rt)
                times.normalise_object(obj, rt.api_version, rt.kind)
            self._validate(rt, obj)
            if self._entry(rt, ns, name) is not None:
                raise errors.already_exists(rt, name)
            meta = obj["metadata"]
            meta["uid"] = str(uuid.uuid4())
            meta["resourceVersion"] = ""
            if rt.generation:
                meta["generation"] = 1
            meta["creationTimestamp"] = now_iso()
            obj = self._shape(rt, obj)
            if "status" in rt.subresources and rt.kind not in ("CustomResourceDefinition",):
                obj.pop("status", None)
            defaults.apply(rt, obj, None)
            if rt.builtin and "status" in rt.subresources:
                obj.setdefault("status", {})  # a Go struct, never omitted
            if not fields_done:
                self._manager_fields(None, obj, manager, rt, None)
            if rt.builtin and rt.kind in defaults.STRATEGIES:
                defaults.prepare_for_create(rt, obj)
                obj = self._shape(rt, obj)  # metadata keys back in the server's order
            if self.admission is not None:
                obj = self.admission(rt, "CREATE", obj, None, manager, dry_run)
            if dry_run:
                del obj["metadata"]["resourceVersion"]
                return StoredObject(obj, dumps(obj), 0)
            entry = self._commit(rt, obj, None, "ADDED")
            if rt.kind == "CustomResourceDefinition":
                entry = self._crd_established(entry)
            return entry

    def update_rt(self, rt: ServedResource, obj: dict, name: str, namespace: str | None = None,
                  manager: str = DEFAULT_MANAGER, dry_run: bool = False, subresource: str | None = None,
                  fields_done: bool = False, check_rv: bool = True) -> StoredObject:
        """PUT: optimistic concurrency on resourceVersion, immutable server fields, status/spec split."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({name})")
        if rt.namespaced and namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        with self.lock:
            cur = self._require(rt, namespace if rt.namespaced else "", name)
            old = cur.obj
            rv = meta.get("resourceVersion")
            if check_rv and rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            new = self._merge_server_fields(rt, old, obj, subresource)
            if not fields_done:
                self._manager_fields(old, new, manager, rt, subresource)
            return self._finish_update(rt, cur, new, dry_run, manager, subresource)

    def _merge_server_fields(self, rt: ServedResource, old: dict, obj: dict, subresource: str | None) -> dict:
        """The object a write produces: server-owned metadata from the live object, status or spec kept aside."""
        ometa = old["metadata"]
        if subresource == "status":
            new = {k: v for k, v in old.items()}
            new["metadata"] = dict(ometa)
            if obj.get("metadata", {}).get("managedFields") is not None:
                new["metadata"]["managedFields"] = obj["metadata"]["managedFields"]
            if "annotations" in obj.get("metadata", {}):  # as the workload status strategies: labels are kept
                new["metadata"]["annotations"] = obj["metadata"]["annotations"]
                if not new["metadata"]["annotations"]:
                    del new["metadata"]["annotations"]
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return self._shape(rt, new)
        meta = dict(obj.get("metadata") or {})
        for k in SERVER_META:
            if k in ometa:
                meta[k] = ometa[k]
            else:
                meta.pop(k, None)
        meta["name"] = ometa["name"]
        if "namespace" in ometa:
            meta["namespace"] = ometa["namespace"]
        new = dict(obj)
        new["metadata"] = meta
        if "status" in rt.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        new = self._shape(rt, new)
        defaults.apply(rt, new, old)
        if rt.builtin:
            _prune(new, rt)
        return new

    def _finish_update(self, rt: ServedResource, cur: StoredObject, new: dict, dry_run: bool, manager: str = "",
                       subresource: str | None = None) -> StoredObject:
        old = cur.obj
        defaults.prepare_for_update(rt, new, old)
        if self.admission is not None:
            new = self.admission(rt, "UPDATE", new, old, manager, dry_run, subresource)
        if rt.builtin:
            times.normalise_object(new, rt.api_version, rt.kind)
            immutable.check_update(rt, old, new)
        if rt.generation and self._spec_changed(old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if self._same(old, new):
            return cur
        if dry_run:
            return StoredObject(new, dumps(new), 0)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind != "Namespace":
            entry = self._commit(rt, new, cur, "MODIFIED")
            self._delete_now(rt, entry)
            return entry
        entry = self._commit(rt, new, cur, "MODIFIED")
        if rt.kind == "CustomResourceDefinition":
            self._serve_crd(entry.obj)
        return entry

    def patch_rt(self, rt: ServedResource, name: str, namespace: str | None, patch: object, patch_type: str,
                 manager: str = DEFAULT_MANAGER, force: bool = False, dry_run: bool = False,
                 subresource: str | None = None) -> StoredObject:
        """PATCH: merge, json, strategic, or apply (server-side apply creates the object if absent)."""
        ns = namespace if rt.namespaced else ""
        with self.lock:
            cur = self._entry(rt, ns, name)
            if patch_type == "apply":
                return self._apply(rt, cur, patch, name, ns, manager, force, dry_run, subresource)
            if cur is None:
                raise errors.not_found(rt, name)
            base = copy.deepcopy(cur.obj)
            if subresource == "scale":
                return self._scale_write(rt, cur, do_patch(self.scale_of(rt, cur), patch, patch_type, rt, "Scale"),
                                         manager, dry_run)
            patched = do_patch(base, patch, patch_type, rt, rt.kind)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            pmeta = patched.setdefault("metadata", {})
            if pmeta.get("resourceVersion") and pmeta["resourceVersion"] != cur.obj["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            if patched.get("metadata", {}).get("managedFields") == cur.obj["metadata"].get("managedFields"):
                patched["metadata"].pop("managedFields", None)
            new = self._merge_server_fields(rt, cur.obj, patched, subresource)
            self._manager_fields(cur.obj, new, manager, rt, subresource)
            return self._finish_update(rt, cur, new, dry_run, manager, subresource)

    def _apply(self, rt: ServedResource, cur: StoredObject | None, config: object, name: str, ns: str, manager: str,
               force: bool, dry_run: bool, subresource: str | None) -> StoredObject:
        if not isinstance(config, dict):
            raise errors.bad_request("the apply configuration must be an object")
        cmeta = config.get("metadata") or {}
        if cmeta.get("name") and cmeta["name"] != name:
            raise errors.bad_request(f"the name of the object ({cmeta['name']}) does not match the name on the URL "
                                     f"({name})")
        if config.get("kind") and config["kind"] != rt.kind or config.get("apiVersion") and \
                config["apiVersion"] != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({config.get('apiVersion')}) does not match the "
                                     f"expected API version ({rt.api_version})")
        if not config.get("kind") or not config.get("apiVersion"):
            raise errors.bad_request("apiVersion and kind must be set in an apply configuration")
        live = cur.obj if cur else None
        if cur is None and subresource:
            raise errors.not_found(rt, name)
        merged = _server_side_apply(live, config, manager, force, rt)
        merged.setdefault("metadata", {})["name"] = name
        if cur is None:
            if rt.namespaced:
                merged["metadata"]["namespace"] = ns
            return self.create_rt(rt, merged, ns or None, manager, dry_run, fields_done=True)
        new = self._merge_server_fields(rt, cur.obj, merged, subresource)
        new["metadata"]["managedFields"] = merged["metadata"].get("managedFields") or []
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]
        return self._finish_update(rt, cur, new, dry_run, manager, subresource)

    # ------------------------------------------------------------------ scale subresource

    def scale_of(self, rt: ServedResource, entry: StoredObject) -> dict:
        obj = entry.obj
        meta = obj["metadata"]
        sel = (obj.get("spec") or {}).get("selector")
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": _path_get(obj, rt.scale_path) or 0},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": selector_string(sel) if isinstance(sel, dict) else (sel or "")}}

    def scale_update_rt(self, rt: ServedResource, name: str, namespace: str | None, scale: dict,
                        manager: str = DEFAULT_MANAGER, dry_run: bool = False) -> StoredObject:
        with self.lock:
            cur = self._require(rt, namespace if rt.namespaced else "", name)
            return self._scale_write(rt, cur, scale, manager, dry_run)

    def _scale_write(self, rt: ServedResource, cur: StoredObject, scale: dict, manager: str, dry_run: bool) -> StoredObject:
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != cur.obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, cur.obj["metadata"]["name"])
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(rt, cur.obj["metadata"]["name"], [("spec.replicas", "FieldValueInvalid",
                                 f"Invalid value: {replicas}: must be greater than or equal to 0")])
        new = copy.deepcopy(cur.obj)
        _path_set(new, rt.scale_path, replicas)
        self._manager_fields(cur.obj, new, manager, rt, "scale")
        return self._finish_update(rt, cur, new, dry_run, manager, "scale")


def selector_string(sel: dict) -> str:
    """A LabelSelector as the string form Scale.status.selector carries."""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {op.lower()} ({','.join(sorted(e.get('values') or []))})")
        elif op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
    return ",".join(sorted(parts))


def _path_get(obj: dict, path: str) -> object:
    cur: object = obj
    for part in path.strip(".").split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _path_set(obj: dict, path: str, value: object) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


# ---------------------------------------------------------------------- patch and apply glue

# what a patch or apply configuration of the wrong shape raises while it is applied
MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def do_patch(base: dict, patch: object, patch_type: str, rt: ServedResource, kind: str) -> dict:
    try:
        if patch_type == "merge":
            return _merge(base, patch)
        if patch_type == "json":
            if not isinstance(patch, list):
                raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            return _patch.json_patch(base, patch)
        if patch_type == "strategic":
            if not rt.builtin:
                raise errors.unsupported_media_type("application/strategic-merge-patch+json", PATCH_TYPES_CR)
            api_version = "autoscaling/v1" if kind == "Scale" else rt.api_version
            return _patch.strategic_merge_patch(base, patch, api_version, kind)
    except _patch.UnsupportedPatch:
        raise errors.unsupported_media_type("application/strategic-merge-patch+json", PATCH_TYPES_CR) from None
    except _patch.PatchError as exc:
        text = str(exc)
        if "test" in text.lower() and "fail" in text.lower():
            raise errors.api_error(409, "Conflict", text) from None
        raise errors.api_error(422, "Invalid", text) from None
    except MALFORMED as exc:  # any other malformed patch: the apiserver answers 400
        raise errors.bad_request(str(exc)) from None
    raise errors.unsupported_media_type(patch_type, PATCH_TYPES)


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml",
               "application/strategic-merge-patch+json")
PATCH_TYPES_CR = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _merge(target: object, patch: object) -> object:
    return _patch.merge_patch(target, patch)


def _server_side_apply(live: dict | None, config: dict, manager: str, force: bool, rt: ServedResource) -> dict:
    try:
        return _mf.server_side_apply(live, config, manager, force, rt.api_version, rt.kind, now_iso())
    except _mf.ApplyConflict as exc:  # the apiserver's own wording and causes
        body = exc.status()
        raise api_error(409, "Conflict", body["message"], body["details"]) from None
    except _mf.FieldsError as exc:
        raise typed_patch_error(config, rt, str(exc)) from None
    except _patch.PatchError as exc:
        raise errors.api_error(422, "Invalid", str(exc)) from None
    except MALFORMED as exc:  # any other malformed configuration: the apiserver answers 400
        raise errors.bad_request(str(exc)) from None


def typed_patch_error(config: dict, rt: ServedResource, why: str) -> ApiError:
    """An apply the schema refuses (undeclared field, list item without its key): the apiserver returns the
    plain error of structured-merge-diff's conversion, which its status writer turns into a 500 without reason
    (kubernetes/kubernetes#122480, #139253)."""
    meta = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    gvk = f"{rt.group}/{rt.version}, Kind={rt.kind}"
    where = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}; {gvk}"
    return api_error(500, "", f"failed to create typed patch object ({where}): {why}")


def _prune(obj: dict, rt: ServedResource) -> None:
    """A built-in object holds only what its Go type has: unknown fields go, as the apiserver's decoder drops them."""
    _fv.prune_unknown(obj, rt.api_version, rt.kind)
