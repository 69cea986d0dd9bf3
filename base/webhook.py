"""The push webhook a Git host calls when a branch moves: verified with the shared secret, it starts a fetch at once.

SENDERS is the one table of what each host sends: the header that proves the call and how, and the header naming
the event. GitHub signs the body with HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`), Gitea (and Forgejo, which
sends Gitea's headers too) signs it the same way without the prefix (`X-Gitea-Signature: <hex>`), GitLab sends the
secret itself (`X-Gitlab-Token`). A call that proves nothing is refused with 401, counted, and starts nothing;
a verified one for another branch, or another event, is answered 200 and starts nothing either. The body is read
only up to MAX_BODY and only from a client that keeps sending (READ_TIMEOUT).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from kubedr import metrics
from kubedr.config import UsageError

log = logging.getLogger("kubedr.webhook")

PATH = "/webhook"
MAX_BODY = 5 * 1024 * 1024  # push payloads are kilobytes (GitHub lists at most 20 commits)
READ_TIMEOUT = 10.0  # seconds a client may take between bytes
SECRET_MAX = 4096  # bytes: a secret file larger than this is not a secret
WARN_EVERY = 60.0  # seconds between log lines about refused calls (each one is counted)


@dataclass(frozen=True)
class Sender:
    """One Git host's webhook: where the proof is, how it proves the secret, and which event is a push."""

    name: str
    proof_header: str
    proof: str  # "hmac-sha256": hex HMAC-SHA256 of the body, after prefix; "token": the secret itself
    prefix: str
    event_header: str
    push_event: str


SENDERS = (  # the first whose proof header a call carries verifies it (Gitea also sends GitHub's header)
    Sender("gitea", "X-Gitea-Signature", "hmac-sha256", "", "X-Gitea-Event", "push"),
    Sender("github", "X-Hub-Signature-256", "hmac-sha256", "sha256=", "X-GitHub-Event", "push"),
    Sender("gitlab", "X-Gitlab-Token", "token", "", "X-Gitlab-Event", "Push Hook"),
)


@dataclass(frozen=True)
class Answer:
    """What a call gets: HTTP status and one line, and how it is counted."""

    status: int
    text: str
    sender: str
    outcome: str  # fetch | ignored | refused | invalid


class Receiver:
    """Verifies calls against the secret and calls on_push(after) for a push to the followed branch."""

    def __init__(self, secret: bytes, branch: str, on_push: Callable[[str], None]) -> None:
        self.secret = secret
        self.ref = f"refs/heads/{branch}"
        self.on_push = on_push
        self._warned = 0.0
        self._refused = 0  # since the last log line about refused calls
        self._lock = threading.Lock()

    def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one call (headers by lower-case name); a verified push to the followed branch calls on_push."""
        sender = next((s for s in SENDERS if s.proof_header.lower() in headers), None)
        if sender is None:
            return Answer(401, "no signature or token of GitHub, GitLab or Gitea", "unknown", "refused")
        if not self._proves(sender, headers[sender.proof_header.lower()], body):
            return Answer(401, f"{sender.proof_header} does not match the secret", sender.name, "refused")
        event = headers.get(sender.event_header.lower(), "")
        if event != sender.push_event:
            return Answer(200, f"ignored: a {event or 'nameless'} event, not a push", sender.name, "ignored")
        try:
            payload = _payload(headers.get("content-type", ""), body)
            ref, after = payload["ref"], payload.get("after") or ""
            if not isinstance(ref, str) or not isinstance(after, str):
                raise ValueError("ref or after is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            return Answer(400, f"not a push payload: {exc}", sender.name, "invalid")
        if ref != self.ref:
            return Answer(200, f"ignored: {ref[:200]} is not the followed branch", sender.name, "ignored")
        self.on_push(after)
        return Answer(202, f"fetching {ref}", sender.name, "fetch")

    def _proves(self, sender: Sender, given: str, body: bytes) -> bool:
        if sender.proof == "token":
            return hmac.compare_digest(given.encode(errors="replace"), self.secret)
        digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given.encode(errors="replace"), (sender.prefix + digest).encode())

    def count(self, answer: Answer, peer: str) -> None:
        """Count the call; say in the log that calls are refused, at most every WARN_EVERY seconds."""
        metrics.APPLY_WEBHOOK_CALLS.labels(sender=answer.sender, outcome=answer.outcome).inc()
        if answer.outcome != "refused":
            log.debug("webhook from %s (%s): %d %s", peer, answer.sender, answer.status, answer.text)
            return
        with self._lock:
            self._refused += 1
            now = time.monotonic()
            if now - self._warned < WARN_EVERY:
                return
            refused, self._refused, self._warned = self._refused, 0, now
        log.warning("webhook call from %s refused (401): %s (%d refused since the last such line; check the "
                    "secret the Git host sends)", peer, answer.text, refused)


def _payload(content_type: str, body: bytes) -> dict[str, object]:
    """The JSON object of a call: the body, or its `payload` field when form-encoded (a GitHub option)."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        body = (parse_qs(body.decode(errors="replace")).get("payload") or [""])[0].encode()
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def load_secret(path: str, flag: str = "--webhook-secret-file") -> bytes:
    """The shared secret from a file (its last line break dropped); UsageError when it is unreadable or empty."""
    try:
        with open(path, "rb") as fh:
            secret = fh.read(SECRET_MAX + 1).rstrip(b"\r\n")
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from exc
    if not secret or len(secret) > SECRET_MAX:
        raise UsageError(f"{flag} {path}: " + ("empty" if not secret else f"longer than {SECRET_MAX} bytes"))
    return secret


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    timeout = READ_TIMEOUT

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?", 1)[0] != PATH:
            self._send(404, f"not found: POST {PATH}")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._send(411, "a Content-Length is needed")
            return
        if int(length) > MAX_BODY:
            self._count(Answer(413, f"over {MAX_BODY} bytes", "unknown", "invalid"))
            self.close_connection = True
            return
        try:
            body = self.rfile.read(int(length))
        except OSError:  # the client stopped sending (READ_TIMEOUT)
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._count(self.receiver.receive(headers, body))

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] == "/healthz":
            self._send(200, "ok")
        else:
            self._send(404, f"not found: the webhook is POST {PATH}")

    def _count(self, answer: Answer) -> None:
        self.receiver.count(answer, self.client_address[0])
        self._send(answer.status, answer.text)

    def _send(self, code: int, text: str) -> None:
        body = f"{text}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def serve(listen: str, receiver: Receiver) -> ThreadingHTTPServer:
    """Serve POST /webhook on host:port in a daemon thread; UsageError (exit 2) when the address cannot be used."""
    handler = type("WebhookHandler", (_Handler,), {"receiver": receiver})
    return metrics.listen_http("--webhook-listen", listen, handler, example=":9443")
