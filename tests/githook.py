"""A Git host's push webhook: calls signed as GitHub, GitLab and Gitea sign them, and a bare repo that announces
every push it receives (a post-receive hook, as a Git host runs one) to an applier's webhook endpoint."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import queue
import threading
import time
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
    """POST one call; (status, answer), status 0 when nothing answered (a host notes a failed delivery)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


def announce(url: str, secret: bytes, sender: str = "github", ref: str = "refs/heads/main",
             after: str | None = None, wrong: bool = False) -> tuple[int, str]:
    """Call the endpoint as sender does for a push (wrong: signed with another secret)."""
    headers, body = push_call(sender, ref, after)
    return call(url, {**headers, **proof(sender, b"not-" + secret if wrong else secret, body)}, body)


class Announcer:
    """A bare repo that notes every push it receives (when, old and new commit, ref) and, given a url, announces
    each one there as GitHub does.

    The post-receive hook writes to a FIFO this object keeps open for reading and writing, so the hook never blocks;
    a thread notes each push as the hook reports it, another sends the calls (a slow endpoint delays no note)."""

    def __init__(self, bare: Path, workdir: Path, url: str | None = None, secret: bytes = b"") -> None:
        self.url, self.secret = url, secret
        self.pushes: list[tuple[float, str, str, str]] = []  # (time.time(), old, new, ref)
        self.answers: list[int] = []
        self._calls: queue.Queue[tuple[str, str] | None] = queue.Queue()
        fifo = workdir / f"pushes-{bare.name}.fifo"
        os.mkfifo(fifo)
        self._fd = os.open(fifo, os.O_RDWR)
        hook = bare / "hooks" / "post-receive"
        hook.write_text(HOOK.format(fifo=fifo))
        hook.chmod(0o755)
        self._threads = [threading.Thread(target=self._note, name="push-notes", daemon=True),
                         threading.Thread(target=self._send, name="push-announcer", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _note(self) -> None:
        pending = b""
        while data := os.read(self._fd, 65536):
            now = time.time()
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line == b"stop":
                    self._calls.put(None)
                    return
                old, new, ref = line.decode().split()
                self.pushes.append((now, old, new, ref))
                if self.url:
                    self._calls.put((ref, new))

    def _send(self) -> None:
        while (push := self._calls.get()) is not None:
            assert self.url is not None
            self.answers.append(announce(self.url, self.secret, "github", *push)[0])

    def stop(self) -> None:
        os.write(self._fd, b"stop\n")
        for thread in self._threads:
            thread.join(10)
        os.close(self._fd)
