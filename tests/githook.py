"""A Git host's push webhook: calls signed as GitHub, GitLab and Gitea sign them, and a bare repo that announces
every push it receives (a post-receive hook, as a Git host runs one) to an applier's webhook endpoint."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import load_fixture

HOOK = "#!/bin/sh\ncat > '{fifo}'\n"  # git-receive-pack feeds it "<old> <new> <ref>" lines after the refs moved


def proof(sender: str, secret: bytes, body: bytes) -> dict[str, str]:
    """The header(s) with which the host proves a call: GitHub's and Gitea's HMAC-SHA256, GitLab's token."""
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if sender == "github":
        return {"X-Hub-Signature-256": f"sha256={digest}"}
    if sender == "gitea":  # Gitea signs with its own header and GitHub's
        return {"X-Gitea-Signature": digest, "X-Hub-Signature-256": f"sha256={digest}"}
    return {"X-Gitlab-Token": secret.decode()}


def push_call(sender: str, ref: str = "refs/heads/main", after: str | None = None) -> tuple[dict[str, str], bytes]:
    """A push call of sender (headers without the proof, body) from tests/fixtures/webhooks, for ref and after."""
    fixture = copy.deepcopy(load_fixture(f"webhooks/{sender}-push.json"))
    body: dict[str, Any] = fixture["body"]
    body["ref"] = ref
    if after is not None:
        body["after"] = after
    return fixture["headers"], json.dumps(body).encode()


def call(url: str, headers: dict[str, str], body: bytes, timeout: float = 10.0) -> tuple[int, str]:
    """POST one call; (status, answer)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def announce(url: str, secret: bytes, sender: str = "github", ref: str = "refs/heads/main",
             after: str | None = None, wrong: bool = False) -> tuple[int, str]:
    """Call the endpoint as sender does for a push (wrong: signed with another secret)."""
    headers, body = push_call(sender, ref, after)
    return call(url, {**headers, **proof(sender, b"not-" + secret if wrong else secret, body)}, body)


class Announcer:
    """Makes a bare repo announce each push to url, signed as GitHub does, from a thread of this process.

    The post-receive hook writes to a FIFO this object keeps open for reading and writing, so the hook never blocks
    and the announcement leaves as soon as the push has moved the branch."""

    def __init__(self, bare: Path, url: str, secret: bytes, workdir: Path) -> None:
        self.url, self.secret = url, secret
        self.answers: list[int] = []
        fifo = workdir / "pushes.fifo"
        os.mkfifo(fifo)
        self._fd = os.open(fifo, os.O_RDWR)
        hook = bare / "hooks" / "post-receive"
        hook.write_text(HOOK.format(fifo=fifo))
        hook.chmod(0o755)
        self._thread = threading.Thread(target=self._run, name="announcer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while data := os.read(self._fd, 65536):
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line == b"stop":
                    return
                _, new, ref = line.decode().split()
                self.answers.append(announce(self.url, self.secret, "github", ref, new)[0])

    def stop(self) -> None:
        os.write(self._fd, b"stop\n")
        self._thread.join(10)
        os.close(self._fd)
