"""Every answer status becomes its own class, built from the real server's Status body."""

from __future__ import annotations

import json

import pytest

from kubedr import apierrors
from kubedr.apierrors import (
    AlreadyExists,
    ApiError,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    ServerError,
    api_error,
)
from tests.conftest import FIXTURES, load_fixture

STATUSES = [(400, apierrors.BadRequest), (401, apierrors.Unauthorized), (403, apierrors.Forbidden), (404, NotFound),
            (405, apierrors.MethodNotAllowed), (409, Conflict), (410, Gone), (422, Invalid),
            (429, apierrors.TooManyRequests), (500, ServerError), (503, ServerError), (504, ServerError)]


@pytest.mark.parametrize(("status", "cls"), STATUSES)
def test_each_status_has_its_class(status: int, cls: type[ApiError]) -> None:
    exc = api_error(status, {"kind": "Status", "message": "no", "code": status}, "/api/v1/x")
    assert type(exc) is cls and exc.status == status and exc.path == "/api/v1/x" and str(exc) == "no"


def test_the_table_has_a_test_row_for_every_entry() -> None:
    assert set(apierrors.BY_STATUS) <= {s for s, _ in STATUSES}


def test_an_unlisted_client_error_is_a_plain_api_error() -> None:
    exc = api_error(418, b"")
    assert type(exc) is ApiError and str(exc) == "HTTP 418"


@pytest.mark.parametrize(("fixture", "cls", "reason"), [
    ("errors/404-not-found.json", NotFound, "NotFound"),
    ("errors/404-namespace-missing.json", NotFound, "NotFound"),
    ("errors/409-already-exists.json", AlreadyExists, "AlreadyExists"),
    ("errors/409-apply-conflict.json", Conflict, "Conflict"),
    ("errors/409-conflict-stale-resourceversion.json", Conflict, "Conflict"),
    ("errors/422-invalid.json", Invalid, "Invalid"),
])
def test_real_status_bodies(fixture: str, cls: type[ApiError], reason: str) -> None:
    raw = (FIXTURES / fixture).read_bytes()
    doc = load_fixture(fixture)
    exc = api_error(doc["code"], raw, "/api/v1/namespaces/shop/configmaps/app-config")
    assert type(exc) is cls and exc.reason == reason and str(exc) == " ".join(doc["message"].split())
    assert exc.details == doc.get("details")


def test_already_exists_is_a_conflict_but_a_stale_write_is_not_already_exists() -> None:
    assert isinstance(api_error(409, {"reason": "AlreadyExists"}), Conflict)
    assert not isinstance(api_error(409, {"reason": "Conflict"}), AlreadyExists)
    assert type(api_error(404, {"reason": "AlreadyExists"})) is NotFound  # a reason never contradicts the status


def test_a_watch_error_event_is_gone() -> None:
    event = json.loads((FIXTURES / "watch/too-old-resourceversion.jsonl").read_text().splitlines()[0])
    exc = api_error(event["object"]["code"], event["object"])
    assert isinstance(exc, Gone) and exc.reason == "Expired" and "too old resource version" in str(exc)


def test_invalid_names_its_causes() -> None:
    exc = api_error(422, load_fixture("errors/422-invalid.json"))
    assert exc.causes and all(exc.causes)


def test_a_body_that_is_not_json_is_the_message() -> None:
    exc = api_error(503, b"<html>\n  upstream connect error </html>")
    assert isinstance(exc, ServerError) and str(exc) == "<html> upstream connect error </html>"
