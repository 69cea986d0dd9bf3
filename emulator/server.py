"""The HTTP face of the emulator: discovery, CRUD, list, watch, patch, apply, with bearer-token auth."""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from kubedr.apierrors import Gone
from kubedr.emulator import authz, errors, openapi_v2, protobuf, resources, tables, tls
from kubedr.emulator import field_validation as _fv
from kubedr.emulator import openapi as _openapi
from kubedr.emulator.admission import Admission
from kubedr.emulator.controllers import Controllers
from kubedr.emulator.errors import ApiError, api_error, status_of
from kubedr.emulator.k8s_schema import latest_version
from kubedr.emulator.kubelet import Kubelet
from kubedr.emulator.objects import dumps
from kubedr.emulator.resources import ServedResource
from kubedr.emulator.store import ClusterStore
from kubedr.emulator.writes import PATCH_TYPES
from kubedr.kube import version_priority

log = logging.getLogger("kubedr.emulator")

DEFAULT_TOKEN = "kubedr-emulator-token"


def server_version() -> dict[str, str]:
    """/version names the Kubernetes release whose schemas the emulator serves, as a real server names its own."""
    major, minor, patch = latest_version().split(".")
    return {"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.{patch}-kubedr", "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2", "compiler": "gc",
            "platform": "linux/amd64"}


PUBLIC = ("/version", "/healthz", "/livez", "/readyz")
PATCH_KINDS = {"application/merge-patch+json": "merge", "application/json-patch+json": "json",
               "application/strategic-merge-patch+json": "strategic", "application/apply-patch+yaml": "apply",
               "application/apply-patch+json": "apply"}
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)



def _bool(q: dict, key: str) -> bool:
    return (q.get(key) or [""])[0].lower() in ("1", "true")


def _one(q: dict, key: str) -> str | None:
    v = q.get(key)
    return v[0] if v else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "kubedr-emulator"
    server: EmulatorHTTPServer
    user: authz.User = authz.TOKEN_USER  # who the request is made as (authz.requester)
    attrs: authz.Attributes | None = None  # what it asks, when RBAC decides (impersonated users)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet, like a production server
        pass

    def setup(self) -> None:
        self.server.track(self.request, True)
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def handle_one_request(self) -> None:
        if self.server.stopping:  # a request that raced stop(): the connection is dropped, not served
            self.close_connection = True
            return
        super().handle_one_request()

    # --------------------------------------------------------------- plumbing

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        head = (f"HTTP/1.1 {code} {self.responses.get(code, ('',))[0]}\r\nContent-Type: {ctype}\r\n"
                f"Cache-Control: no-cache, private\r\nContent-Length: {len(body)}\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"
        for text in getattr(self, "warnings", None) or ():
            escaped = text.replace("\\", "\\\\").replace('"', '\\"')
            head += f'Warning: 299 - "{escaped}"\r\n'
        self.warnings: list[str] | None = None
        self.wfile.write(head.encode() + b"\r\n" + body)

    def _json(self, code: int, obj: object) -> None:
        self._send(code, dumps(obj))

    def _error(self, exc: ApiError) -> None:
        self._json(exc.status, status_of(exc))

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _decode(self, raw: bytes, ctype: str) -> object:
        if "protobuf" in ctype:
            try:
                return protobuf.decode(raw)
            except (protobuf.ProtobufError, UnicodeDecodeError, IndexError) as exc:
                raise errors.unsupported_media_type(ctype, ("application/json", "application/yaml")) from exc
        if "cbor" in ctype:
            raise errors.unsupported_media_type(ctype, ("application/json", "application/yaml"))
        if not raw:
            raise errors.bad_request("the body of the request was empty")
        try:
            if "yaml" in ctype and not raw.lstrip().startswith((b"{", b"[")):
                return yaml.load(raw, Loader=SAFE_LOADER)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from None

    def _manager(self, q: dict) -> str:
        fm = _one(q, "fieldManager")
        if fm:
            return fm
        ua = self.headers.get("User-Agent") or ""
        return (ua.split("/")[0] or "unknown")[:128]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = parse_qs(url.query, keep_blank_values=True)
        self.server.requests.append((time.monotonic(), method, self.path))
        self.server.slow_down(method, path)
        try:
            if not path.startswith(PUBLIC):
                auth = self.headers.get("Authorization")
                if auth != self.server.auth_header and (auth is not None or self.server.require_auth):
                    self._body()
                    raise errors.unauthorized()
            self.user = authz.requester(self.headers)
            self._route(method, path, q)
        except ApiError as exc:
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug of ours: answer 500 as a Status, keep serving
            log.exception("emulator: %s %s failed", method, self.path)
            self._error(api_error(500, "InternalError", f"Internal error occurred: {exc}", {}))

    # --------------------------------------------------------------- routing

    def _route(self, method: str, path: str, q: dict) -> None:
        store = self.server.store
        parts = [p for p in path.split("/") if p]
        resource_path = (parts[:1] == ["api"] and len(parts) >= 3) or (parts[:1] == ["apis"] and len(parts) >= 4)
        if not resource_path and not self.user.superuser:
            self._authorize(authz.Attributes(method.lower(), path))
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._send(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self._json(200, server_version())
        if parts and parts[0] == "openapi":
            return self._openapi(path)
        if method == "GET" and path == "/api":
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server.address}]})
        if method == "GET" and path == "/apis":
            return self._json(200, self._group_list())
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 2:
            if len(parts) == 2:
                g = next((g for g in self._group_list()["groups"] if g["name"] == parts[1]), None)
                if g is None or method != "GET":
                    raise errors.resource_not_found()
                return self._json(200, {"kind": "APIGroup", "apiVersion": "v1", **g})
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.resource_not_found()
        if version not in store.groups().get(group, ()):
            raise errors.resource_not_found()
        if not rest:
            if method != "GET":
                raise errors.method_not_allowed()
            return self._json(200, self._resource_list(group, version))
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and len(rest) == 3 and
                                                                rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise errors.resource_not_found()
        rt = store.resource(group, version, rest[0])
        if rt is None:
            raise errors.resource_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (ns is not None and not rt.namespaced) or (sub and sub not in rt.subresources and sub != "finalize"):
            raise errors.resource_not_found()
        if rt.namespaced and ns is None and (name or method not in ("GET", "DELETE")):
            raise errors.resource_not_found()
        if not self.user.superuser:
            self.attrs = self._attributes(method, rt, ns, name, sub, path, q)
            self._authorize(self.attrs)
        if name is None:
            return self._collection(method, rt, ns, q)
        return self._item(method, rt, ns, name, sub, q)

    def _authorize(self, attrs: authz.Attributes) -> None:
        """RBAC for an impersonated user; a refused request's body is read first (the connection stays usable)."""
        try:
            self.server.rbac.check(self.user, attrs)
        except ApiError:
            self._body()
            raise

    def _attributes(self, method: str, rt: ServedResource, ns: str | None, name: str | None, sub: str | None,
                    path: str, q: dict) -> authz.Attributes:
        """What the request asks, for RBAC (a Namespace's own requests are in that namespace, as RequestInfo has it)."""
        namespace = ns or (name if rt.kind == "Namespace" and not rt.group and name else "")
        return authz.Attributes(authz.verb_of(method, bool(name), _bool(q, "watch")), path, rt.plural, rt.group,
                                sub or "", namespace or "", name or "")

    def _openapi(self, path: str) -> None:
        """/openapi/v2 and /openapi/v3[/<group-version>] from the openapi helper's documents."""
        store = self.server.store
        served = sorted({(rt.group, rt.version) for rt in store.types.values()})
        gv_paths = [f"apis/{g}/{v}" if g else f"api/{v}" for g, v in served]
        parts = path.strip("/").split("/")
        if parts == ["openapi", "v2"]:
            return self._openapi_v2()
        try:
            if parts == ["openapi", "v3"]:
                doc = _openapi.v3_index(group_versions=gv_paths)
            elif parts[:2] == ["openapi", "v3"] and "/".join(parts[2:]) in gv_paths:
                gv_path = "/".join(parts[2:])
                group, version = (parts[3], parts[4]) if parts[2] == "apis" else ("", parts[3])
                res = [_openapi.Resource(rt.plural, rt.kind, rt.namespaced) for rt in store.types.values()
                       if rt.group == group and rt.version == version and rt.builtin]
                doc = _openapi.v3_group(gv_path, resources=res)
            else:
                raise errors.resource_not_found()
        except KeyError:
            raise errors.resource_not_found() from None
        self._json(200, doc)

    def _openapi_v2(self) -> None:
        """Content negotiation as kube-openapi's handler: JSON or gnostic protobuf, else 406 with no body."""
        for media in _accepted(self.headers.get("Accept") or "*/*"):
            if media in ("application/json", "application/*", "*/*"):
                return self._send(200, openapi_v2.json_body(), "application/json")
            if media in openapi_v2.PROTOBUF_ACCEPTED:
                return self._send(200, openapi_v2.protobuf(), openapi_v2.PROTOBUF)
        self._send(406, b"", "text/plain; charset=utf-8")

    # --------------------------------------------------------------- discovery

    def _group_list(self) -> dict:
        served = self.server.store.groups()
        order = [g for g in resources.GROUP_ORDER if g in served]
        order += sorted(g for g in served if g and g not in order)
        groups = []
        for g in order:
            versions = sorted(served[g], key=version_priority)
            groups.append({"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                           "preferredVersion": {"groupVersion": f"{g}/{versions[0]}", "version": versions[0]}})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict:
        store = self.server.store
        rts = sorted((rt for rt in store.types.values() if rt.group == group and rt.version == version),
                     key=lambda rt: rt.plural)
        items = [entry for rt in rts for entry in rt.discovery()]
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": items}

    def _bind(self, ns: str | None, binding: dict, q: dict) -> None:
        """POST bindings (what a scheduler does): set the Pod's spec.nodeName once; nothing is stored."""
        store = self.server.store
        name = (binding.get("metadata") or {}).get("name") or ""
        node = (binding.get("target") or {}).get("name") or ""
        pods = store.kind("v1", "Pod")
        pod = store.get_rt(pods, name, ns).obj
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise api_error(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is '
                           f'already assigned to node "{current}"', {"name": name, "kind": "pods/binding"})
        if not self._dry_run(q):
            store.patch_rt(pods, name, ns, {"spec": {"nodeName": node}}, "merge", self._manager(q))
        self._json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})

    # --------------------------------------------------------------- collections

    def _collection(self, method: str, rt: ServedResource, ns: str | None, q: dict) -> None:
        store = self.server.store
        if method == "GET":
            if _bool(q, "watch"):
                return self._watch(rt, ns, q)
            self._check_verb(rt, "list")
            limit = _one(q, "limit")
            rv, entries, extra = store.list_rt(rt, ns, _one(q, "labelSelector"), _one(q, "fieldSelector"),
                                               int(limit) if limit and limit.isdigit() else None, _one(q, "continue"),
                                               _one(q, "resourceVersion"), _one(q, "resourceVersionMatch"))
            meta = {"resourceVersion": str(rv), **extra}
            if tables.wants_table(self.headers.get("Accept") or ""):
                return self._json(200, tables.table(rt.kind, [e.obj for e in entries], meta,
                                                    _one(q, "includeObject") or "Metadata"))
            list_kind = rt.extra.get("listKind") or rt.kind + "List"
            head = dumps({"kind": list_kind, "apiVersion": rt.api_version, "metadata": meta})[:-1]
            body = head + b',"items":[' + b",".join(e.item(rt.builtin) for e in entries) + b"]}"
            return self._send(200, body)
        if method == "POST":
            self._check_verb(rt, "create")
            raw = self._body()
            obj = self._decode(raw, self.headers.get("Content-Type") or "")
            if not isinstance(obj, dict):
                raise errors.bad_request("the body of the request was not an object")
            self._check_type(rt, obj)
            if rt.kind == "Binding":
                return self._bind(ns, obj, q)
            self._validate_fields(rt, q, obj)
            entry = store.create_rt(rt, obj, ns, self._manager(q), self._dry_run(q))
            return self._send(201, entry.data)
        if method == "DELETE":
            self._check_verb(rt, "deletecollection")
            opts = self._delete_options(q)
            _, entries, _ = store.list_rt(rt, ns, _one(q, "labelSelector"), _one(q, "fieldSelector"))
            for e in entries:
                m = e.obj["metadata"]
                try:
                    store.delete_rt(rt, m["name"], m.get("namespace"), opts.get("propagationPolicy"),
                                    bool(opts.get("dryRun")))
                except ApiError:
                    pass
            rv = store.rv
            head = dumps({"kind": rt.extra.get("listKind") or rt.kind + "List", "apiVersion": rt.api_version,
                          "metadata": {"resourceVersion": str(rv)}})[:-1]
            return self._send(200, head + b',"items":[' + b",".join(e.item(rt.builtin) for e in entries) + b"]}")
        raise errors.method_not_allowed()

    def _check_verb(self, rt: ServedResource, verb: str) -> None:
        if verb not in rt.verbs:
            raise errors.method_not_allowed()

    def _check_type(self, rt: ServedResource, obj: dict) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if not kind:  # the real decoder defaults kind and apiVersion from the URL
            obj["kind"], obj["apiVersion"] = rt.kind, api_version or rt.api_version
            kind, api_version = rt.kind, obj["apiVersion"]
        if kind != rt.kind or (api_version and api_version != rt.api_version):
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                                     f"version ({rt.api_version})" if kind == rt.kind else
                                     f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")

    def _validate_fields(self, rt: ServedResource, q: dict, obj: object) -> None:
        """fieldValidation=Strict: unknown fields are a 400; Warn (the default): a Warning header per dropped field."""
        mode = _one(q, "fieldValidation") or "Warn"
        if mode not in ("Strict", "Warn") or not rt.builtin or not isinstance(obj, dict):
            return
        paths = [p for p in _fv.unknown_fields(obj, rt.api_version, rt.kind) if "$" not in p]  # SMP directives
        if not paths:
            return
        if mode == "Strict":
            raise errors.bad_request(_fv.strict_message(paths))
        self.warnings = _fv.warnings(paths)

    def _dry_run(self, q: dict) -> bool:
        values = q.get("dryRun") or []
        for v in values:
            if v != "All":
                raise errors.bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    def _delete_options(self, q: dict) -> dict:
        raw = self._body()
        opts: dict = {}
        if raw:
            body = self._decode(raw, self.headers.get("Content-Type") or "")
            if isinstance(body, dict):
                opts = body
        policy = _one(q, "propagationPolicy") or opts.get("propagationPolicy")
        if policy is None and opts.get("orphanDependents") is not None:
            policy = "Orphan" if opts["orphanDependents"] else "Background"
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}"')
        dry = self._dry_run(q) or bool(opts.get("dryRun"))
        return {"propagationPolicy": policy, "dryRun": dry, "preconditions": opts.get("preconditions")}

    # --------------------------------------------------------------- items

    def _item(self, method: str, rt: ServedResource, ns: str | None, name: str, sub: str | None, q: dict) -> None:
        store = self.server.store
        manager = self._manager(q)
        if method == "GET":
            self._check_verb(rt, "get")
            entry = store.get_rt(rt, name, ns)
            if sub == "scale":
                return self._json(200, store.scale_of(rt, entry))
            if tables.wants_table(self.headers.get("Accept") or ""):
                return self._json(200, tables.table(rt.kind, [entry.obj], {"resourceVersion": str(store.rv)},
                                                    _one(q, "includeObject") or "Metadata"))
            return self._send(200, entry.data)
        if method == "PUT":
            self._check_verb(rt, "update")
            obj = self._decode(self._body(), self.headers.get("Content-Type") or "")
            if not isinstance(obj, dict):
                raise errors.bad_request("the body of the request was not an object")
            if sub == "scale":
                entry = store.scale_update_rt(rt, name, ns, obj, manager, self._dry_run(q))
                return self._json(200, store.scale_of(rt, entry))
            self._check_type(rt, obj)
            self._validate_fields(rt, q, obj)
            entry = store.update_rt(rt, obj, name, ns, manager, self._dry_run(q), sub if sub == "status" else None)
            return self._send(200, entry.data)
        if method == "PATCH":
            self._check_verb(rt, "patch")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            kind = PATCH_KINDS.get(ctype)
            if kind is None or (kind == "strategic" and not rt.builtin):
                self._body()
                accepted = PATCH_TYPES if rt.builtin else tuple(t for t in PATCH_TYPES if "strategic" not in t)
                raise errors.unsupported_media_type(ctype, accepted)
            patch = self._decode(self._body(), ctype)
            if kind == "apply" and not _one(q, "fieldManager"):
                raise api_error(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                               "is required for apply patch", {"group": "meta.k8s.io", "kind": "PatchOptions",
                               "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required "
                                           "for apply patch", "field": "fieldManager"}]})
            if kind in ("merge", "strategic") and sub is None:
                # (an apply is typed by the field manager whatever fieldValidation says: unknown fields fail there)
                self._validate_fields(rt, q, patch)
            existed = store._entry(rt, ns if rt.namespaced else "", name) is not None
            if kind == "apply" and not existed and not self.user.superuser:
                assert self.attrs is not None  # set by _route for every user RBAC decides for
                self.server.rbac.check_create(self.user, self.attrs)  # an apply that creates: create is checked too
            entry = store.patch_rt(rt, name, ns, patch, kind, manager, _bool(q, "force"), self._dry_run(q), sub)
            if sub == "scale":
                return self._json(200, store.scale_of(rt, entry))
            return self._send(201 if kind == "apply" and not existed else 200, entry.data)
        if method == "DELETE":
            self._check_verb(rt, "delete")
            if sub:
                raise errors.method_not_allowed()
            opts = self._delete_options(q)
            entry, deleted = store.delete_rt(rt, name, ns, opts["propagationPolicy"], opts["dryRun"],
                                             opts["preconditions"])
            if deleted and rt.kind not in resources.RETURNS_DELETED_OBJECT:
                details = {"name": name}
                if rt.group:
                    details["group"] = rt.group
                details["kind"] = rt.plural
                details["uid"] = entry.obj["metadata"].get("uid")
                return self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "details": details})
            return self._send(200, entry.data)
        raise errors.method_not_allowed()

    # --------------------------------------------------------------- watch

    def _watch(self, rt: ServedResource, ns: str | None, q: dict) -> None:
        self._check_verb(rt, "watch")
        store = self.server.store
        timeout = _one(q, "timeoutSeconds")
        deadline = time.monotonic() + (int(timeout) if timeout and timeout.isdigit() else 1800)
        bookmarks = _bool(q, "allowWatchBookmarks")
        interval = self.server.bookmark_interval
        try:
            w, first = store.watch_rt(rt, ns, _one(q, "labelSelector"), _one(q, "fieldSelector"),
                                      _one(q, "resourceVersion"), _bool(q, "sendInitialEvents"))
        except Gone as exc:
            self._start_stream()
            self._chunk(dumps({"type": "ERROR", "object": status_of(exc)}) + b"\n")
            return self._end_stream()
        self.server.watchers.add(w)
        as_table = tables.wants_table(self.headers.get("Accept") or "")
        include = _one(q, "includeObject") or "Metadata"

        def emit(lines: list[bytes]) -> None:
            if as_table:
                lines = [_table_event(line, rt.kind, include) for line in lines]
            self._chunk(b"".join(lines))

        try:
            self._start_stream()
            if first:
                emit(first)
            next_bm = time.monotonic() + interval
            while not w.closed and not self.server.stopping:
                now = time.monotonic()
                if now >= deadline:
                    break
                lines = w.take(min(deadline, next_bm if bookmarks else deadline) - now)
                if lines:
                    emit(lines)
                if bookmarks and time.monotonic() >= next_bm:
                    self._chunk(w.bookmark())
                    next_bm = time.monotonic() + interval
            if not self.server.stopping:
                self._end_stream()
            else:
                self.close_connection = True
        finally:
            w.close()
            self.server.watchers.discard(w)

    def _start_stream(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


def _table_event(line: bytes, kind: str, include: str) -> bytes:
    ev = json.loads(line)
    obj = ev["object"]
    if ev["type"] in ("ADDED", "MODIFIED", "DELETED") and obj.get("kind") == kind:
        ev["object"] = tables.table(kind, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                    include)
    return dumps(ev) + b"\n"


def _accepted(accept: str) -> list[str]:
    """The media types of an Accept header, highest q first (ties keep their order), parameters dropped."""
    found = []
    for i, clause in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in clause.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media and q > 0:
            found.append((-q, i, media.lower()))
    return [m for _, _, m in sorted(found)]


@dataclass
class Delay:
    """Requests of one method and path answered late, and how many more."""

    method: str
    path: str
    seconds: float
    left: int


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], store: ClusterStore, token: str, bookmark_interval: float,
                 require_auth: bool):
        super().__init__(addr, Handler)
        self.require_auth = require_auth
        self.store = store
        self.auth_header = f"Bearer {token}"
        self.bookmark_interval = bookmark_interval
        self.stopping = False
        self.watchers: set = set()
        self.requests: deque[tuple[float, str, str]] = deque(maxlen=100_000)  # (monotonic time, method, path)
        self.connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.address = f"{addr[0]}:{self.server_address[1]}"
        self.delays: list[Delay] = []  # Emulator.delay
        self.rbac = authz.Rbac(store)  # for impersonated users (authz.py)

    def slow_down(self, method: str, path: str) -> None:
        """Wait before answering a request Emulator.delay named (a slow API server, on purpose)."""
        with self._conn_lock:
            found = next((d for d in self.delays if (d.method, d.path) == (method, path) and d.left > 0), None)
            if found is not None:
                found.left -= 1
        if found is not None:
            time.sleep(found.seconds)

    def track(self, conn: socket.socket, live: bool) -> None:
        """Remember open client connections, so that stop() can drop keep-alive ones."""
        with self._conn_lock:
            if live:
                self.connections.add(conn)
            else:
                self.connections.discard(conn)

    def drop_connections(self) -> None:
        """Shut every client connection down: handlers blocked reading the next request see EOF and exit."""
        with self._conn_lock:
            conns = list(self.connections)
            self.connections.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Emulator:
    """A Kubernetes API emulator on loopback: start()/stop() or a context manager; .api is the in-process API."""

    def __init__(self, listen: str = "127.0.0.1:0", token: str = DEFAULT_TOKEN, tls: bool = False,
                 history: int = 10_000, bookmark_interval: float = 1.0, controllers: bool = True,
                 require_auth: bool | None = None, pod_ip: str | None = None, kubelet: bool = True,
                 pod_start_delay: float = 0.0):
        host, _, port = listen.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port or 0)
        self.token = token
        self.tls = tls
        # kubectl (client-go) never sends credentials over plain HTTP, so there a request without an
        # Authorization header is let in, like the old insecure port; a wrong token is always a 401.
        self.require_auth = tls if require_auth is None else require_auth
        self.store = ClusterStore(history)
        self.store.admission = Admission(self.store)
        self.api = self.store
        self.pod_ip = pod_ip  # the address of every Pod (tests serve their ports on 127.0.0.1); else none
        self.kubelet = kubelet  # a node that runs every Pod at once (kubelet.py); False: Pods stay Pending
        self.pod_start_delay = pod_start_delay  # seconds each Pod waits before it runs (deterministic races)
        self.bookmark_interval = bookmark_interval
        self.with_controllers = controllers
        self.controllers: Controllers | None = None
        self.ca_pem: bytes | None = None
        self.kubeconfig: Path | None = None  # set by write_kubeconfig
        self._httpd: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def delay(self, method: str, path: str, seconds: float, times: int = 1) -> None:
        """Answer the next `times` requests of method to path (no query) only after seconds: a test holds one side
        of a race back on purpose, so the other side deterministically goes first."""
        assert self._httpd is not None, "start() the emulator first"
        with self._httpd._conn_lock:
            self._httpd.delays.append(Delay(method, path, seconds, times))

    @property
    def requests(self) -> list[tuple[float, str, str]]:
        """The requests served so far (newest last, the last 100,000): (time.monotonic(), method, path+query)."""
        return list(self._httpd.requests) if self._httpd is not None else []

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> Emulator:
        if self.with_controllers:
            node = Kubelet(self.store, self.pod_ip, self.pod_start_delay) if self.kubelet else None
            self.controllers = Controllers(self.store, node)
            self.controllers.start()
        bootstrap(self.store)
        httpd = EmulatorHTTPServer((self.host, self.port), self.store, self.token, self.bookmark_interval,
                                   self.require_auth)
        self.port = httpd.server_address[1]
        if self.tls:
            self.ca_pem, ctx = tls.server_context(self.host)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"emulator-{self.port}", daemon=True)
        self._thread.start()
        log.info("emulator serving on %s", self.url)
        return self

    def stop(self) -> None:
        httpd = self._httpd
        if httpd is not None:
            httpd.stopping = True
            for w in list(httpd.watchers):
                w.closed = True
                w.wake.set()
            httpd.shutdown()
            httpd.server_close()
            httpd.drop_connections()
            self._httpd = None
        if self.controllers is not None:
            self.controllers.stop()
            self.controllers = None
        self._forget_custom_kinds()

    def _forget_custom_kinds(self) -> None:
        """The OpenAPI registry is per process: a stopped emulator's CRDs must not show in the next one's."""
        if _openapi is None:
            return
        _, crds, _ = self.store.list_rt(self.store.kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"))
        for entry in crds:
            spec = entry.obj["spec"]
            for v in spec.get("versions") or ():
                _openapi.remove_custom_resource(spec["group"], v["name"], spec["names"]["kind"])

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig_dict(self, context: str = "emulator") -> dict:
        cluster: dict = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        return {"apiVersion": "v1", "kind": "Config", "preferences": {},
                "clusters": [{"name": context, "cluster": cluster}],
                "users": [{"name": context, "user": {"token": self.token}}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                           "namespace": "default"}}],
                "current-context": context}

    def write_kubeconfig(self, path: str | Path, context: str = "emulator") -> Path:
        """Write a kubeconfig (bearer token, CA data under TLS) that kubectl and the clients can use."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig_dict(context), sort_keys=False))
        path.chmod(0o600)
        self.kubeconfig = path
        return path


def bootstrap(store: ClusterStore) -> None:
    """What a fresh cluster has: the four system namespaces and the `kubernetes` Service."""
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        if store._entry(store.kind("v1", "Namespace"), "", name) is None:
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                         manager="kube-apiserver")
    svc = store.kind("v1", "Service")
    if store._entry(svc, "default", "kubernetes") is None:
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver",
                                                                    "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                          "targetPort": 6443}]}}, manager="kube-apiserver")


def wait_listening(host: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
