"""Pushes and fetches over one kept HTTP(S) connection per remote: git opens a connection per process, so every
push, fetch and poll pays TCP, a TLS handshake (with git's TLS library set up again: ~50 ms of CPU here) and an
auth challenge; at 80 ms a round trip that is 240 ms and more before any work.

git itself still decides what to send and makes or takes in the pack (send-pack and fetch-pack --stateless-rpc,
as git-remote-https has them do); this module only carries their requests and the host's answers, with the
credentials git's own helpers give (sent at once, not after a 401). Anything this does not do as git would (a
proxy, client certificates, redirects, URL rewrites, other http.* settings, credentials refused) leaves the work to
git: push(), fetch() and tip() then answer None, for that call and every later one.
"""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import unquote, urlsplit

from kubedr import git
from kubedr.remote import redact, scrub

log = logging.getLogger("kubedr.smarthttp")
T = TypeVar("T")

PUSH, FETCH = "git-receive-pack", "git-upload-pack"
MAX_ADVERTISEMENT = 16 << 20  # bytes of refs a host may advertise: far beyond one branch, bounded all the same
IN_MEMORY = 1 << 20  # a request up to this size goes with its length; a larger one is streamed in chunks
READ_TIMEOUT = float(git.LOW_SPEED_SECONDS)  # a host silent this long fails the call (git: 1 KB/s for 30 s)
# git settings this module honours; any other http.* setting for the URL (proxy, sslVerify, client certificates,
# extra headers, cookies, redirects) is git's to apply, and so is any proxy or TLS setting in the environment
HONOURED = frozenset({"http.sslcainfo", "http.lowspeedlimit", "http.lowspeedtime", "http.postbuffer"})
GITS_ENVIRONMENT = ("GIT_SSL_", "GIT_CURL_", "GIT_TRACE_CURL", "GIT_PROXY_", "GIT_HTTP_PROXY", "GIT_HTTP_USER_AGENT")


class Declined(Exception):
    """Why this remote's work is left to git (for the debug log)."""


class Unframed(Exception):
    """What git said that is no pkt-line (send-pack's status when it had nothing to send): its first bytes."""


def pkt_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The payloads of git's pkt-lines on stream up to a flush-pkt (or its end); Unframed at a line that is none."""
    while len(head := stream.read(4)) == 4:
        try:
            size = int(head, 16)
        except ValueError:
            raise Unframed(head) from None
        if size < 4:  # 0000 flush (0001 delim, 0002 end: not in protocol v0)
            return
        yield stream.read(size - 4)


def advertised(body: bytes, service: str = PUSH) -> bytes:
    """The refs a host advertises in a smart HTTP info/refs answer: what follows its `# service=` header."""
    size = _size(body)
    if size < 5 or not body[4:size].startswith(f"# service={service}".encode()):
        raise Declined("not a smart HTTP answer")
    rest = body[size:]
    while rest[:4] != b"0000":  # metadata lines up to the header's flush
        size = _size(rest)
        if size < 4:
            raise Declined("a truncated smart HTTP answer")
        rest = rest[size:]
    return rest[4:]


def ref_names(refs: bytes) -> dict[str, str]:
    """name -> sha of the refs in a v0 advertisement (capabilities and peeled tags left out)."""
    out = {}
    for payload in pkt_lines(io.BytesIO(refs)):
        sha, _, name = payload.split(b"\0", 1)[0].strip().decode(errors="replace").partition(" ")
        if len(sha) == 40 and name.startswith("refs/") and not name.endswith("^{}"):
            out[name] = sha
    return out


def _size(data: bytes) -> int:
    """The length a host's pkt-line header gives (Declined when it is none)."""
    try:
        return int(data[:4], 16) if len(data) >= 4 else 0
    except ValueError:
        raise Declined("not a smart HTTP answer") from None


class Session:
    """One HTTP(S) remote through one kept connection (made again when the host closed it)."""

    def __init__(self, url: str, git_dir: Path, env: Mapping[str, str]) -> None:
        self.url, self.git_dir, self.env = url, git_dir, env  # the store's, as it changes
        self.shown = redact(url)
        parts = urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = parts.path.rstrip("/")
        self._headers: dict[str, str] | None = None  # User-Agent and Authorization, read on the first call
        self._connection: http.client.HTTPConnection | None = None
        self._declined: str | None = None
        self._lock = threading.Lock()
        self._expired = threading.Event()  # the call under way is past its time
        self._cafile: str | None = None  # git's CA bundle for the URL; None: the system's

    @staticmethod
    def applies(url: str) -> bool:
        """Whether url is an HTTP(S) remote (the only kind this reaches)."""
        return url.lower().startswith(("http://", "https://"))

    def push(self, sha: str, ref: str, timeout: float = git.NETWORK_TIMEOUT) -> git.Result | None:
        """Push sha to ref: send-pack's helper status (`ok <ref>`, `error <ref> <why>`) as a git.Result;
        None when the push is git push's to make."""
        spec = f"{sha}:{ref}\n".encode()
        args = ["send-pack", "--stateless-rpc", "--helper-status", "--thin", "--no-progress", self.shown, "--stdin"]
        return self._guarded("push", timeout, lambda: self._converse(PUSH, args, [spec], timeout))

    def fetch(self, branch: str, into: str | None = None, tags: bool = True,
              timeout: float = git.NETWORK_TIMEOUT) -> str | None:
        """Fetch the branch (into refs/heads/<branch>, or the ref into names) and the tags, as `git fetch
        +refs/heads/B:<into> +refs/tags/*:refs/tags/*` does: the branch's commit ('' when the host has no such
        branch); None when the fetch is git fetch's to make."""
        ref = f"refs/heads/{branch}"
        return self._guarded("fetch", timeout, lambda: self._fetch(ref, into or ref, tags, timeout))

    def tip(self, ref: str, timeout: float = git.NETWORK_TIMEOUT) -> str | None:
        """The commit the host's ref is at, as `git ls-remote` tells it ('' when it has no such ref); None when
        asking is git's to do."""
        return self._guarded("ls-remote", timeout, lambda: ref_names(self._advertisement(FETCH)).get(ref, ""))

    def _guarded(self, command: str, timeout: float, work: Callable[[], T]) -> T | None:
        with self._lock:
            if self._declined is not None:
                return None
            self._expired = threading.Event()
            deadline = threading.Timer(timeout, self._abort)  # a host that trickles or stalls ends here too
            deadline.daemon = True
            deadline.start()
            try:
                self._prepare()
                return work()
            except git.GitError as exc:
                self.close()  # a conversation cut short leaves the connection mid-answer: the next call starts afresh
                if self._expired.is_set():
                    raise git.GitError(command, f"{self.shown}: no answer within {timeout:g} s") from None
                raise git.GitError(command, exc.reason, exc.returncode, exc.stderr) from None
            except Declined as exc:
                self._declined = str(exc)
                self.close()
                log.debug("%s to %s goes through git: %s", command, self.shown, exc)
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
        settings = self._git("config", "--get-urlmatch", "http", self._without_password())
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

    def _without_password(self) -> str:
        """The URL as git's http.<url>.* settings match it, with no password for other users' `ps` to see."""
        parts = urlsplit(self.url)
        user = f"{parts.username}@" if parts.username else ""
        return parts._replace(netloc=user + parts.netloc.rpartition("@")[2]).geturl()

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
        """Unblock the call waiting on the host (it is past its time): its socket is shut, no retry follows."""
        self._expired.set()
        sock = self._connection.sock if self._connection is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connect(self) -> http.client.HTTPConnection:
        if self._expired.is_set():
            raise git.GitError("connect", "past its time")
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
                    raise git.GitError(method, f"{self.shown}: the connection closed ({exc})") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise git.GitError(method, scrub(f"{self.shown}: {exc or type(exc).__name__}", self.url)) from None
        raise AssertionError("unreachable")

    def _advertisement(self, service: str) -> bytes:
        answer = self._request("GET", f"{self._path}/info/refs?service={service}", headers={"Pragma": "no-cache"})
        body = answer.read(MAX_ADVERTISEMENT + 1)
        if answer.status in (401, 403) or 300 <= answer.status < 400:
            raise Declined(f"HTTP {answer.status} to info/refs")
        if answer.status != 200:
            raise git.GitError("info/refs", f"{self.shown}: HTTP {answer.status} {answer.reason}")
        if answer.getheader("Content-Type", "").split(";")[0].strip() != f"application/x-{service}-advertisement":
            raise Declined("a dumb HTTP host")
        if len(body) > MAX_ADVERTISEMENT:
            raise git.GitError("info/refs", f"{self.shown}: advertises over {MAX_ADVERTISEMENT >> 20} MiB of refs")
        return advertised(body, service)

    def _converse(self, service: str, args: list[str], lines: list[bytes], timeout: float,
                  refs: bytes | None = None) -> git.Result:
        """Run git's stateless side of service (send-pack or fetch-pack) given lines and the host's refs, carrying
        each request it makes to the host and the answer back: what git said and how it ended."""
        refs = self._advertisement(service) if refs is None else refs
        preamble = b"".join(b"%04x%s" % (len(line) + 4, line) for line in lines) + b"0000"
        with tempfile.TemporaryFile() as errors, git.talk(args, git_dir=self.git_dir, env=self.env, stderr=errors,
                                                          timeout=timeout, on_timeout=self._abort) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(preamble + refs)
            proc.stdin.flush()
            said = b""
            try:
                while (request := self._body(proc.stdout)) is not None:  # a fetch may negotiate over several
                    self._post(service, request, proc.stdin)
            except Unframed as exc:
                said = exc.args[0]
            proc.stdin.close()
            said += proc.stdout.read()
            code = proc.wait()
            errors.seek(0)
            stderr = errors.read()
        return git.Result(code, said, stderr)

    def _fetch(self, ref: str, into: str, tags: bool, timeout: float) -> str:
        refs = self._advertisement(FETCH)
        names = ref_names(refs)
        wanted = {name: sha for name, sha in names.items() if name == ref or tags and name.startswith("refs/tags/")}
        missing = self._missing(wanted)
        kept: list[str] = []
        if missing:
            args = ["fetch-pack", "--stateless-rpc", "--stdin", "--lock-pack", "--thin", "--no-progress", self.shown]
            done = self._converse(FETCH, args, [f"{name}\n".encode() for name in missing], timeout, refs)
            if not done.ok:
                text = scrub(done.stderr.decode(errors="replace"), self.url)
                raise git.GitError("fetch-pack", git.reason(text, done.returncode), done.returncode, text)
            kept = [line[5:] for line in done.text.splitlines() if line.startswith("lock ")]
            news = "".join(f"{wanted[name]}\n" for name in missing)
            git.run(["rev-list", "--objects", "--quiet", "--stdin", "--not", "--all"], git_dir=self.git_dir,
                    env=self.env, stdin=news.encode())  # every object they need is here, as git fetch checks
        moves = "".join(f"update {into if name == ref else name} {sha}\n" for name, sha in wanted.items())
        if moves:
            git.run(["update-ref", "--stdin"], git_dir=self.git_dir, env=self.env, stdin=moves.encode())
        packs = (Path(self.git_dir) / "objects" / "pack").resolve()
        for keep in kept:  # the packs are referenced now: what held them against a repack goes
            path = Path(keep).resolve()
            if path.parent == packs and path.suffix == ".keep":
                path.unlink(missing_ok=True)
        return wanted.get(ref, "")

    def _missing(self, refs: dict[str, str]) -> list[str]:
        """The refs whose object this repo lacks (one git process however many tags)."""
        if not refs:
            return []
        asked = "".join(f"{sha}\n" for sha in refs.values()).encode()
        said = git.run(["cat-file", "--batch-check"], git_dir=self.git_dir, env=self.env, stdin=asked).text
        absent = {line.split()[0] for line in said.splitlines() if line.endswith(" missing")}
        return [name for name, sha in refs.items() if sha in absent]

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

    def _post(self, service: str, request: bytes | Iterator[bytes], to: IO[bytes]) -> None:
        answer = self._request("POST", f"{self._path}/{service}", body=request, headers={
            "Content-Type": f"application/x-{service}-request", "Accept": f"application/x-{service}-result"})
        if answer.status != 200:
            answer.read()
            raise git.GitError(service, f"{self.shown}: HTTP {answer.status} {answer.reason} to {service}")
        try:
            while chunk := answer.read(65536):
                to.write(chunk)
            to.flush()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise git.GitError(service, scrub(f"{self.shown}: {exc or type(exc).__name__}", self.url)) from None

