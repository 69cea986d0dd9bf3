"""One error hierarchy for the Kubernetes API's refusals: a class per status code, built from the Status body.

Callers catch what they mean (`except NotFound`), as client-go's `apierrors.IsNotFound` lets Go code do,
instead of comparing status numbers. `api_error` is the one place an answer becomes an exception.
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """A non-2xx answer; str() is the server's one-line message."""

    def __init__(self, status: int, reason: str, message: str, path: str = "",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the Status's reason (NotFound, AlreadyExists, Expired, ...), "" when none
        self.message = message
        self.path = path
        self.details = details  # the Status's details (kind, name, causes), None when the server sent none

    @property
    def causes(self) -> list[str]:
        """The messages of the Status's causes (`Invalid value: ...: field is immutable`), one per field."""
        causes = (self.details or {}).get("causes") or []
        return [str(c.get("message") or "") for c in causes if isinstance(c, dict)]


class BadRequest(ApiError):
    """400: the request itself is malformed."""


class Unauthorized(ApiError):
    """401: no valid credentials."""


class Forbidden(ApiError):
    """403: authenticated, but RBAC (or a terminating namespace) refuses it."""


class NotFound(ApiError):
    """404: the object, or the resource type, does not exist."""


class MethodNotAllowed(ApiError):
    """405: the resource does not support the verb."""


class Conflict(ApiError):
    """409: a stale resourceVersion, a field-manager conflict, or (AlreadyExists) the name is taken."""


class AlreadyExists(Conflict):
    """409 with reason AlreadyExists: a create found the name taken."""


class Gone(ApiError):
    """410: the resourceVersion is older than the server keeps (re-list)."""


class Invalid(ApiError):
    """422: the object fails validation; `causes` names the fields."""


class TooManyRequests(ApiError):
    """429: throttled (API priority and fairness); retry later."""


class ServerError(ApiError):
    """5xx: the server (or an aggregated API, or a webhook) failed."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed, 409: Conflict,
    410: Gone, 422: Invalid, 429: TooManyRequests,
}
BY_REASON: dict[str, type[ApiError]] = {"AlreadyExists": AlreadyExists}  # finer than the status says


def error_class(status: int, reason: str = "") -> type[ApiError]:
    """The class of an answer: by reason where that is finer, by status, ServerError for any 5xx."""
    cls = BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    finer = BY_REASON.get(reason)
    return finer if finer is not None and issubclass(finer, cls) else cls


def api_error(status: int, body: bytes | str | dict[str, Any] | None, path: str = "") -> ApiError:
    """The exception for one non-2xx answer, from its metav1.Status body (or whatever text it carried)."""
    doc: Any = body
    if isinstance(body, bytes | str):
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            raw = body.decode(errors="replace") if isinstance(body, bytes) else body
            doc = {"message": raw[:300]}
    doc = doc if isinstance(doc, dict) else {}
    reason = str(doc.get("reason") or "")
    message = " ".join(str(doc.get("message") or f"HTTP {status}").split())
    details = doc.get("details")
    return error_class(status, reason)(status, reason, message, path, details if isinstance(details, dict) else None)
