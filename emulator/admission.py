"""Admission webhooks, called as the kube-apiserver calls them: AdmissionReview v1 over HTTPS.

Mutating webhooks first (configurations by name, a JSONPatch answer applied), then validating ones, for
CREATE and UPDATE of any resource or subresource the rules match, in scope, with namespaceSelector and
objectSelector. A `service` reference resolves through the Service's ready Endpoints (the apiserver's
endpoint routing), a `url` is called as is; caBundle verifies the server (the system roots when empty).
failurePolicy decides what an unreachable or broken webhook means. Webhooks are never called for webhook
configurations themselves, as on a real server.

Not emulated: DELETE and CONNECT operations, matchConditions (CEL), matchPolicy Equivalent (other versions
of a resource), reinvocationPolicy, audit annotations and warnings, the webhook client's retries.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import uuid
from typing import Any
from urllib.parse import urlsplit

from kubedr.emulator.errors import ApiError, api_error
from kubedr.emulator.resources import ServedResource
from kubedr.emulator.writes import do_patch
from kubedr.selectors import selector_matches

ADMISSION_GROUP = "admissionregistration.k8s.io"
# (plural, mutating): mutating webhooks run first
CONFIG_KINDS = (("mutatingwebhookconfigurations", True), ("validatingwebhookconfigurations", False))
NOT_ADMITTED_GROUPS = frozenset({ADMISSION_GROUP})  # the apiserver never sends its webhook configurations
DRY_RUN_SAFE = frozenset({"None", "NoneOnDryRun"})


class Admission:
    """The store's admission chain: call(rt, operation, obj, old, ...) -> the admitted (maybe mutated) object."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __call__(self, rt: ServedResource, operation: str, obj: dict, old: dict | None, user: str, dry_run: bool,
                 subresource: str | None = None) -> dict:
        if rt.group in NOT_ADMITTED_GROUPS:
            return obj
        for plural, mutating in CONFIG_KINDS:
            configs = self.store.objs.get((ADMISSION_GROUP, plural), {}).get("", {})
            for name in sorted(configs):
                for hook in configs[name].obj.get("webhooks") or []:
                    if self._matches(hook, rt, subresource, operation, obj, old):
                        obj = self._call(hook, rt, subresource, operation, obj, old, user, dry_run, mutating)
        return obj

    # ---- matching ------------------------------------------------------------------------------------------

    def _matches(self, hook: dict, rt: ServedResource, sub: str | None, op: str, obj: dict, old: dict | None) -> bool:
        if not any(_rule_matches(r, rt, sub, op) for r in hook.get("rules") or []):
            return False
        labels = [((o or {}).get("metadata") or {}).get("labels") or {} for o in (obj, old) if o]
        if not any(selector_matches(hook.get("objectSelector") or {}, lab) for lab in labels):
            return False
        ns_sel = hook.get("namespaceSelector") or {}
        if rt.kind == "Namespace" and not rt.group:
            return any(selector_matches(ns_sel, lab) for lab in labels)
        if not rt.namespaced:
            return True
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        entry = self.store.objs.get(("", "namespaces"), {}).get("", {}).get(ns)
        ns_labels = ((entry.obj.get("metadata") or {}).get("labels") or {}) if entry else {}
        return selector_matches(ns_sel, ns_labels)

    # ---- calling ---------------------------------------------------------------------------------------------

    def _call(self, hook: dict, rt: ServedResource, sub: str | None, op: str, obj: dict, old: dict | None,
              user: str, dry_run: bool, mutating: bool) -> dict:
        name = hook.get("name") or ""
        if dry_run and hook.get("sideEffects") not in DRY_RUN_SAFE:
            raise api_error(400, "BadRequest", f'admission webhook "{name}" does not support dry run')
        if "v1" not in (hook.get("admissionReviewVersions") or []):
            return self._failed(hook, obj, f'failed calling webhook "{name}": webhook does not accept v1 '
                                           f"AdmissionReview")
        meta = obj.get("metadata") or {}
        uid = str(uuid.uuid4())
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        gvr = {"group": rt.group, "version": rt.version, "resource": rt.plural}
        request: dict[str, Any] = {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": meta.get("name") or "", "operation": op, "userInfo": {"username": user},
            "object": obj, "oldObject": old, "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" if op == "CREATE" else
                        "UpdateOptions"}}
        if rt.namespaced:
            request["namespace"] = meta.get("namespace") or ""
        if sub:
            request["subResource"] = sub
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        try:
            answer = self._post(hook, json.dumps(review).encode())
            response = answer.get("response") or {}
            if answer.get("apiVersion") != "admission.k8s.io/v1" or answer.get("kind") != "AdmissionReview":
                raise _CallError("expected response.apiVersion admission.k8s.io/v1, kind AdmissionReview")
            if response.get("uid") != uid:
                raise _CallError(f"expected response.uid={uid!r}, got {response.get('uid')!r}")
        except _CallError as exc:
            return self._failed(hook, obj, f'failed calling webhook "{name}": {exc}')
        if not response.get("allowed"):
            raise _denied(name, response.get("status") or {})
        if mutating and response.get("patch"):
            if response.get("patchType") != "JSONPatch":
                return self._failed(hook, obj, f'failed calling webhook "{name}": unsupported patch type '
                                               f'"{response.get("patchType")}"')
            patch = json.loads(base64.b64decode(response["patch"]))
            obj = do_patch(obj, patch, "json", rt, rt.kind)
        return obj

    @staticmethod
    def _failed(hook: dict, obj: dict, message: str) -> dict:
        """failurePolicy: Fail (the default) refuses the request; Ignore lets it through."""
        if hook.get("failurePolicy", "Fail") == "Ignore":
            return obj
        raise api_error(500, "InternalError", f"Internal error occurred: {message}",
                       {"causes": [{"message": message}]})

    def _post(self, hook: dict, body: bytes) -> dict:
        cc = hook.get("clientConfig") or {}
        timeout = float(hook.get("timeoutSeconds") or 10)
        ctx = ssl.create_default_context()
        if cc.get("caBundle"):
            ctx = ssl.create_default_context(cadata=base64.b64decode(cc["caBundle"]).decode())
        if cc.get("url"):
            u = urlsplit(cc["url"])
            if u.scheme != "https":
                raise _CallError(f'Post "{cc["url"]}": webhook url must use the https scheme')
            host, port, path, server_name = u.hostname or "", u.port or 443, u.path or "/", u.hostname or ""
            shown = cc["url"]
            if u.query:
                path += "?" + u.query
        else:
            svc = cc.get("service") or {}
            server_name = f"{svc.get('name')}.{svc.get('namespace')}.svc"
            port = int(svc.get("port") or 443)
            path = svc.get("path") or "/"
            shown = f"https://{server_name}:{port}{path}?timeout={int(timeout)}s"
            host, port = self._endpoint(svc.get("namespace") or "", svc.get("name") or "", port, shown)
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
            sock = ctx.wrap_socket(raw, server_hostname=server_name)
            conn = http.client.HTTPSConnection(server_name, port, timeout=timeout, context=ctx)
            conn.sock = sock
            conn.request("POST", path, body, {"Content-Type": "application/json", "Accept": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            raise _CallError(f'failed to call webhook: Post "{shown}": {exc}') from exc
        if resp.status != 200:
            raise _CallError(f"received invalid webhook response: HTTP {resp.status}")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise _CallError(f"received invalid webhook response: {exc}") from exc

    def _endpoint(self, ns: str, name: str, port: int, shown: str) -> tuple[str, int]:
        """A ready address of the Service and the target port behind its `port`, as endpoint routing picks."""
        services = self.store.objs.get(("", "services"), {}).get(ns, {})
        svc = services.get(name)
        if svc is None:
            raise _CallError(f'failed to call webhook: Post "{shown}": service "{name}" not found')
        svc_port = next((p for p in (svc.obj.get("spec") or {}).get("ports") or [] if p.get("port") == port), None)
        if svc_port is None:
            raise _CallError(f'failed to call webhook: Post "{shown}": no service port {port} found for service '
                             f'"{name}"')
        eps = self.store.objs.get(("", "endpoints"), {}).get(ns, {}).get(name)
        for subset in ((eps.obj.get("subsets") if eps else None) or []):
            ep_port = next((p for p in subset.get("ports") or [] if p.get("name", "") == svc_port.get("name", "")),
                           None)
            for addr in subset.get("addresses") or []:
                if ep_port is not None and addr.get("ip"):
                    return addr["ip"], int(ep_port["port"])
        raise _CallError(f'failed to call webhook: Post "{shown}": no endpoints available for service "{name}"')


class _CallError(Exception):
    """The webhook could not be called or answered nonsense (failurePolicy decides)."""


def _rule_matches(rule: dict, rt: ServedResource, sub: str | None, op: str) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and op not in ops:
        return False
    if not _listed(rule.get("apiGroups"), rt.group) or not _listed(rule.get("apiVersions"), rt.version):
        return False
    scope = rule.get("scope") or "*"
    if scope != "*" and (scope == "Namespaced") != rt.namespaced:
        return False
    wanted = f"{rt.plural}/{sub}" if sub else rt.plural
    for res in rule.get("resources") or []:
        name, _, res_sub = res.partition("/")
        if res == "*/*" or res == wanted or (name == "*" and not res_sub and not sub):
            return True
        if res_sub and (name in ("*", rt.plural)) and res_sub in ("*", sub or ""):
            return True
    return False


def _listed(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in (values or ()) or value in (values or ()))


def _denied(name: str, status: dict) -> ApiError:
    """As webhookerrors.ToStatusErr: at least 400, the webhook's message after who denied it."""
    code = int(status.get("code") or 0)
    code = code if code >= 400 else 400
    denied = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied}: {status['reason']}"
    else:
        message = f"{denied} without explanation"
    return api_error(code, status.get("reason") or "", message, status.get("details"))
