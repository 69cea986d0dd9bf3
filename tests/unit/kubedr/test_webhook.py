"""The push webhook: each sender of the table verified by the field it really sends; nothing else starts a fetch."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from kubedr import webhook
from kubedr.config import UsageError
from tests.githook import proof, push_call

SECRET = b"kubedr-test-secret"


class Recorder:
    def __init__(self) -> None:
        self.pushes: list[str] = []
        self.receiver = webhook.Receiver(SECRET, "main", self.pushes.append)

    def receive(self, headers: dict[str, str], body: bytes) -> webhook.Answer:
        return self.receiver.receive({k.lower(): v for k, v in headers.items()}, body)


def test_the_table_has_a_row_for_each_host() -> None:
    assert [s.name for s in webhook.SENDERS] == ["gitea", "github", "gitlab"]


@pytest.mark.parametrize("sender", ["github", "gitlab", "gitea"])
def test_a_verified_push_to_the_branch_starts_a_fetch(sender: str) -> None:
    rec = Recorder()
    headers, body = push_call(sender)
    answer = rec.receive({**headers, **proof(sender, SECRET, body)}, body)
    assert (answer.status, answer.sender, answer.outcome) == (202, sender, "fetch")
    assert rec.pushes == [json.loads(body)["after"]]


@pytest.mark.parametrize("sender", ["github", "gitlab", "gitea"])
def test_a_call_signed_with_another_secret_is_refused_and_starts_nothing(sender: str) -> None:
    rec = Recorder()
    headers, body = push_call(sender)
    answer = rec.receive({**headers, **proof(sender, b"another secret", body)}, body)
    assert (answer.status, answer.sender, answer.outcome) == (401, sender, "refused")
    assert rec.pushes == []


@pytest.mark.parametrize("sender", ["github", "gitea"])
def test_a_signature_covers_the_whole_body(sender: str) -> None:
    rec = Recorder()
    headers, body = push_call(sender)
    tampered = body.replace(b"refs/heads/main", b"refs/heads/mainx")
    assert rec.receive({**headers, **proof(sender, SECRET, body)}, tampered).status == 401
    assert rec.pushes == []


def test_a_call_without_any_proof_is_refused() -> None:
    rec = Recorder()
    headers, body = push_call("github")
    answer = rec.receive(headers, body)
    assert (answer.status, answer.sender, answer.outcome) == (401, "unknown", "refused") and rec.pushes == []


@pytest.mark.parametrize("sender", ["github", "gitlab", "gitea"])
def test_a_push_to_another_branch_starts_nothing(sender: str) -> None:
    rec = Recorder()
    headers, body = push_call(sender, ref="refs/heads/feature")
    answer = rec.receive({**headers, **proof(sender, SECRET, body)}, body)
    assert (answer.status, answer.outcome) == (200, "ignored") and "refs/heads/feature" in answer.text
    tag_headers, tag_body = push_call(sender, ref="refs/tags/main")
    assert rec.receive({**tag_headers, **proof(sender, SECRET, tag_body)}, tag_body).outcome == "ignored"
    assert rec.pushes == []


def test_another_event_starts_nothing() -> None:
    rec = Recorder()
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 292430182}).encode()
    answer = rec.receive({"X-GitHub-Event": "ping", **proof("github", SECRET, body)}, body)
    assert (answer.status, answer.outcome) == (200, "ignored") and rec.pushes == []
    headers, push = push_call("gitlab")
    tag = rec.receive({**headers, "X-Gitlab-Event": "Tag Push Hook", **proof("gitlab", SECRET, push)}, push)
    assert tag.outcome == "ignored" and rec.pushes == []


def test_a_gitea_call_is_verified_by_giteas_own_header() -> None:
    rec = Recorder()
    headers, body = push_call("gitea")
    signed = {**headers, **proof("gitea", SECRET, body), "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert rec.receive(signed, body).sender == "gitea" and rec.pushes  # the first proof header of the table


def test_github_form_encoded_payloads_are_read() -> None:
    rec = Recorder()
    headers, body = push_call("github")
    form = urllib.parse.urlencode({"payload": body.decode()}).encode()
    headers = {**headers, "Content-Type": "application/x-www-form-urlencoded", **proof("github", SECRET, form)}
    assert rec.receive(headers, form).outcome == "fetch" and rec.pushes == [json.loads(body)["after"]]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"after": "x"}', b'{"ref": 7}'])
def test_a_verified_call_that_is_no_push_payload_is_invalid(body: bytes) -> None:
    rec = Recorder()
    answer = rec.receive({"X-GitHub-Event": "push", **proof("github", SECRET, body)}, body)
    assert (answer.status, answer.outcome) == (400, "invalid") and rec.pushes == []


def test_the_secret_comes_from_a_file_without_its_line_break(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"s3cret\r\n")
    assert webhook.load_secret(str(tmp_path / "secret")) == b"s3cret"
    (tmp_path / "huge").write_bytes(b"x" * (webhook.SECRET_MAX + 1))
    with pytest.raises(UsageError, match="longer than 4096 bytes"):
        webhook.load_secret(str(tmp_path / "huge"))
