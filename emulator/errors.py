"""API errors as the real server shapes them: metav1.Status objects with code, reason and details."""

from __future__ import annotations

from kubedr.apierrors import ApiError, error_class
from kubedr.emulator.resources import ServedResource

__all__ = ["ApiError", "api_error", "status_of"]  # ApiError: the base class every emulator error is one of


def api_error(code: int, reason: str, message: str, details: dict | None = None) -> ApiError:
    """An error the API answers with a Status object (the in-process API raises it too), of the base class its
    code and reason name (NotFound, Conflict, Gone, Invalid, ...), so a client catches the emulator's as a server's."""
    return error_class(code, reason)(code, reason, message, "", details)


def status_of(exc: ApiError) -> dict:
    """The metav1.Status body the server sends for exc."""
    out: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": exc.message}
    if exc.reason:  # StatusReasonUnknown is "" and omitted, as for errors that are not a Status
        out["reason"] = exc.reason
    if exc.details is not None:
        out["details"] = exc.details
    out["code"] = exc.status
    return out


def _details(rt: ServedResource | None, name: str, plural: str | None = None, **more) -> dict:
    d: dict = {}
    if name:
        d["name"] = name
    if rt is not None and rt.group:
        d["group"] = rt.group
    d["kind"] = plural or (rt.plural if rt else "")
    d.update(more)
    return d


def not_found(rt: ServedResource, name: str) -> ApiError:
    return api_error(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def namespace_not_found(name: str) -> ApiError:
    return api_error(404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"})


def already_exists(rt: ServedResource, name: str) -> ApiError:
    return api_error(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name))


def conflict(rt: ServedResource, name: str, why: str = "the object has been modified; please apply your changes "
             "to the latest version and try again") -> ApiError:
    return api_error(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
                    _details(rt, name))


def invalid(rt: ServedResource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, reason, message) e.g. ("metadata.name", "FieldValueInvalid", 'Invalid value: ...')."""
    texts = [f"{f}: {m}" for f, _, m in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict = {"name": name} if name else {}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind  # schema.GroupKind.String()
    return api_error(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)


def forbidden_terminating(rt: ServedResource, name: str, namespace: str) -> ApiError:
    who = f'{rt.group_resource} "{name}"' if name else rt.group_resource
    details = _details(rt, name)
    details["causes"] = [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated",
                          "field": "metadata.namespace"}]
    return api_error(403, "Forbidden", f"{who} is forbidden: unable to create new content in namespace {namespace} "
                    "because it is being terminated", details)


def expired(message: str) -> ApiError:
    return api_error(410, "Expired", message)


def bad_request(message: str) -> ApiError:
    return api_error(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return api_error(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def unsupported_media_type(content_type: str, accepted: tuple[str, ...]) -> ApiError:
    return api_error(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media "
                    f"types include: {', '.join(accepted)}", {})


def resource_not_found() -> ApiError:
    return api_error(404, "NotFound", "the server could not find the requested resource", {})


def unauthorized() -> ApiError:
    return api_error(401, "Unauthorized", "Unauthorized")


def too_large_resource_version(requested: int, current: int) -> ApiError:
    return api_error(504, "Timeout", f"Too large resource version: {requested}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})
