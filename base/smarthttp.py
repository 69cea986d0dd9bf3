"""A push to an HTTP(S) remote over one kept connection: git pays a TCP and TLS handshake and an auth challenge
on every push (each git process has its own curl), which at 80 ms a round trip is 240 ms per push before any work.

git send-pack --stateless-rpc still decides what to send and makes the pack, as git-remote-https has it do; this
module only carries its request and the host's answer, with the credentials git's own helpers give (sent at once,
not after a 401). Anything this does not do as git would (a proxy, client certificates, redirects, URL rewrites,
other http.* settings, credentials refused) leaves the push to `git push`: push() then answers None.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from kubedr import git
from kubedr.remote import redact, scrub

log = logging.getLogger("kubedr.smarthttp")

SERVICE = "git-receive-pack"
ADVERTISEMENT = f"application/x-{SERVICE}-advertisement"
MAX_ADVERTISEMENT = 16 << 20  # bytes of refs a host may advertise: far beyond one branch, bounded all the same
IN_MEMORY = 1 << 20  # a request up to this size goes with its length; a larger one is streamed in chunks
READ_TIMEOUT = float(git.LOW_SPEED_SECONDS)  # a host silent this long fails the push (git: 1 KB/s for 30 s)
# git settings this module honours; any other http.* setting for the URL (proxy, sslVerify, client certificates,
# extra headers, cookies, redirects) is git's to apply, and so is any proxy or TLS setting in the environment
HONOURED = frozenset({"http.sslcainfo", "http.lowspeedlimit", "http.lowspeedtime", "http.postbuffer"})
GITS_ENVIRONMENT = ("GIT_SSL_", "GIT_CURL_", "GIT_TRACE_CURL", "GIT_PROXY_", "GIT_HTTP_PROXY", "GIT_HTTP_USER_AGENT")


class Declined(Exception):
    """Why this remote's pushes are left to git push (for the debug log)."""


def pkt_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The payloads of git's pkt-lines on stream up to a flush-pkt (or its end)."""
    while len(head := stream.read(4)) == 4:
        size = int(head, 16)
        if size < 4:  # 0000 flush (0001 delim, 0002 end: not in a v0 push)
            return
        yield stream.read(size - 4)


def advertised(body: bytes) -> bytes:
    """The refs a host advertises in a smart HTTP info/refs answer: what follows its `# service=` header."""
    size = _size(body)
    if size < 5 or not body[4:size].startswith(f"# service={SERVICE}".encode()):
        raise Declined("not a smart HTTP answer")
    rest = body[size:]
    while rest[:4] != b"0000":  # metadata lines up to the header's flush
        size = _size(rest)
        if size < 4:
            raise Declined("a truncated smart HTTP answer")
        rest = rest[size:]
    return rest[4:]


def _size(data: bytes) -> int:
    """The length a host's pkt-line header gives (Declined when it is none)."""
    try:
        return int(data[:4], 16) if len(data) >= 4 else 0
    except ValueError:
        raise Declined("not a smart HTTP answer") from None


class Push:
    """Pushes to one HTTP(S) remote through one kept connection (made again when the host closed it)."""

    def __init__(self, url: str, git_dir: Path, env: Mapping[str, str]) -> None:
        self.url, self.git_dir, self.env = url, git_dir, env  # the store's, as it changes
        self.shown = redact(url)
        parts = urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = parts.path.rstrip("/")
        self._headers: dict[str, str] | None = None  # User-Agent and Authorization, read on first push
        self._connection: http.client.HTTPConnection | None = None
        self._declined: str | None = None
        self._lock = threading.Lock()
        self._expired = threading.Event()  # this push is past its time
        self._cafile: str | None = None  # git's CA bundle for the URL; None: the system's

    @staticmethod
    def applies(url: str) -> bool:
        """Whether url is an HTTP(S) remote (the only kind this pushes to)."""
        return url.lower().startswith(("http://", "https://"))

    def push(self, sha: str, ref: str, timeout: float = git.NETWORK_TIMEOUT) -> git.Result | None:
        """Push sha to ref: send-pack's helper status (`ok <ref>`, `error <ref> <why>`) as a git.Result;
        None when the push is git push's to make (then for every later push too)."""
        with self._lock:
            if self._declined is not None:
                return None
            self._expired = threading.Event()
            deadline = threading.Timer(timeout, self._abort)  # a host that trickles or stalls ends here too
            deadline.daemon = True
            deadline.start()
            try:
                self._prepare()
                return self._push(sha, ref, timeout)
            except git.GitError:
                if self._expired.is_set():
                    raise git.GitError("push", f"{self.shown}: no answer within {timeout:g} s") from None
                raise
            except Declined as exc:
                self._declined = str(exc)
                self.close()
                log.debug("pushes to %s go through git push: %s", self.shown, exc)
                return None
            finally:
                deadline.cancel()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _prepare(self) -> None:
        if self._headers is not None:
            return
        env = git.environment(self.env)
        if any(k.startswith(GITS_ENVIRONMENT) and k != "GIT_SSL_CAINFO" for k in env):
            raise Declined("git's TLS or proxy settings in the environment")
        if any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") and v for k, v in env.items()):
            raise Declined("a proxy in the environment")
        settings = self._git("config", "--get-urlmatch", "http", self.url)
        keys = {line.split(" ", 1)[0].lower() for line in settings.splitlines() if line}
        if keys - HONOURED:
            raise Declined(f"git settings {', '.join(sorted(keys - HONOURED))}")
        if self._git("config", "--get-regexp", r"^url\..*\.(push)?insteadof$"):
            raise Declined("URL rewrites (url.*.insteadOf)")
        self._cafile = env.get("GIT_SSL_CAINFO") or next(
            (line.split(" ", 1)[1] for line in settings.splitlines() if line.lower().startswith("http.sslcainfo ")),
            None)
        version = self._git("version").split()[-1]
        headers = {"User-Agent": f"git/{version}"}  # hosts serve the smart protocol to git/ agents
        user, password = self._credentials()
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._headers = headers

    def _git(self, *args: str) -> str:
        return git.run(args, git_dir=self.git_dir, env=self.env, check=False, remote=self.url).text

    def _credentials(self) -> tuple[str | None, str]:
        """The URL's user and password, else those git's credential helpers give for it (None: none given)."""
        parts = urlsplit(self.url)
        if parts.password is not None:
            return unquote(parts.username or ""), unquote(parts.password)
        answer = git.run(["credential", "fill"], git_dir=self.git_dir, env=self.env, check=False, remote=self.url,
                         stdin=f"url={self.url}\n\n".encode(), timeout=git.NETWORK_TIMEOUT)
        fields = dict(line.partition("=")[::2] for line in answer.text.splitlines() if "=" in line)
        if not answer.ok or "password" not in fields:
            return None, ""
        return fields.get("username", ""), fields["password"]

    def _abort(self) -> None:
        """Unblock the push waiting on the host (it is past its time): its socket is shut, no retry follows."""
        self._expired.set()
        sock = self._connection.sock if self._connection is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connect(self) -> http.client.HTTPConnection:
        if self._expired.is_set():
            raise git.GitError("push", "past its time")
        if self._connection is None:
            if self._https:
                context = ssl.create_default_context(cafile=self._cafile)
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=git.CONNECT_TIMEOUT, context=context)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=git.CONNECT_TIMEOUT)
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(READ_TIMEOUT)
            self._connection = conn
        return self._connection

    def _request(self, method: str, path: str, body: bytes | Iterator[bytes] | None = None,
                 headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
        """One request on the kept connection; a GET is sent again on a new one when the host had closed it."""
        assert self._headers is not None
        for attempt in (1, 2):
            conn = self._connect()
            try:
                conn.request(method, path, body=body, headers={**self._headers, **(headers or {})},
                             encode_chunked=body is not None and not isinstance(body, bytes))
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if method != "GET" or attempt == 2:
                    raise git.GitError("push", f"{self.shown}: the connection closed ({exc})") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise git.GitError("push", scrub(f"{self.shown}: {exc or type(exc).__name__}", self.url)) from None
        raise AssertionError("unreachable")

    def _push(self, sha: str, ref: str, timeout: float) -> git.Result:
        answer = self._request("GET", f"{self._path}/info/refs?service={SERVICE}", headers={"Pragma": "no-cache"})
        body = answer.read(MAX_ADVERTISEMENT + 1)
        if answer.status in (401, 403) or 300 <= answer.status < 400:
            raise Declined(f"HTTP {answer.status} to info/refs")
        if answer.status != 200:
            raise git.GitError("push", f"{self.shown}: HTTP {answer.status} {answer.reason}")
        if answer.getheader("Content-Type", "").split(";")[0].strip() != ADVERTISEMENT:
            raise Declined("a dumb HTTP host")
        if len(body) > MAX_ADVERTISEMENT:
            raise git.GitError("push", f"{self.shown}: advertises over {MAX_ADVERTISEMENT >> 20} MiB of refs")
        refs = advertised(body)
        spec = f"{sha}:{ref}\n".encode()
        args = ["send-pack", "--stateless-rpc", "--helper-status", "--thin", "--no-progress", self.url, "--stdin"]
        with tempfile.TemporaryFile() as errors, git.talk(args, git_dir=self.git_dir, env=self.env, stderr=errors,
                                                          timeout=timeout, on_timeout=self._abort) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"%04x%s0000%s" % (len(spec) + 4, spec, refs))
            proc.stdin.flush()
            request = self._body(proc.stdout)
            if request is not None:
                self._post(request, proc.stdin)
            proc.stdin.close()
            status = proc.stdout.read()
            code = proc.wait()
            errors.seek(0)
            stderr = errors.read()
        return git.Result(code, status, stderr)

    def _body(self, stdout: IO[bytes]) -> bytes | Iterator[bytes] | None:
        """send-pack's request (None when it sends none: the host has the commit), whole if small, else a stream."""
        head, size = [], 0
        lines = pkt_lines(stdout)
        for payload in lines:
            head.append(payload)
            size += len(payload)
            if size > IN_MEMORY:
                return itertools.chain([b"".join(head)], lines)
        return b"".join(head) or None

    def _post(self, request: bytes | Iterator[bytes], to: IO[bytes]) -> None:
        answer = self._request("POST", f"{self._path}/{SERVICE}", body=request, headers={
            "Content-Type": f"application/x-{SERVICE}-request", "Accept": f"application/x-{SERVICE}-result"})
        if answer.status != 200:
            answer.read()
            raise git.GitError("push", f"{self.shown}: HTTP {answer.status} {answer.reason} to {SERVICE}")
        try:
            while chunk := answer.read(65536):
                to.write(chunk)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise git.GitError("push", scrub(f"{self.shown}: {exc or type(exc).__name__}", self.url)) from None

