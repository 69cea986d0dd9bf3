"""Git's smart HTTP protocol over TLS with basic auth: the real git-http-backend behind a small CGI gateway."""

from __future__ import annotations

import base64
import itertools
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BACKEND = "/usr/lib/git-core/git-http-backend"


class GitHTTPS:
    """Serves every bare repo under root at https://127.0.0.1:<port>/<name>, for one user and token."""

    def __init__(self, root: Path, user: str, token: str, workdir: Path, idle: float | None = None) -> None:
        self.root, self.user, self.token = root, user, token
        self.requests: list[tuple[int, str, str, int]] = []  # (connection, method, path?query, status) as they came
        self.closed: list[int] = []  # connections the server has closed or seen closed
        self.chunked: list[str] = []  # paths of requests whose body came in chunks
        self.idle = idle  # seconds a kept connection may stay silent before the server closes it
        self._connections = itertools.count(1)
        self.ca_file = workdir / "git-ca.crt"
        self._context = self._tls(workdir)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.socket = self._context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitHTTPS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _tls(self, workdir: Path) -> ssl.SSLContext:
        from kubedr.emulator.tls import serving_certs  # the same throwaway PKI the emulator serves with

        ca_pem, cert_pem, key_pem = serving_certs("127.0.0.1")
        self.ca_file.write_bytes(ca_pem)
        (workdir / "git-tls.crt").write_bytes(cert_pem)
        (workdir / "git-tls.key").write_bytes(key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(workdir / "git-tls.crt", workdir / "git-tls.key")
        return ctx

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave in separate writes

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                self.timeout = owner.idle
                super().setup()
                self.number = next(owner._connections)

            def finish(self) -> None:
                super().finish()
                owner.closed.append(self.number)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._cgi()

            def do_POST(self) -> None:  # noqa: N802
                self._cgi()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    owner.chunked.append(self.path)
                    out = bytearray()
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return bytes(out)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _cgi(self) -> None:
                path, _, query = self.path.partition("?")
                body = self._body()
                if self.headers.get("Authorization") != expected:
                    owner.requests.append((self.number, self.command, self.path, 401))
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                env = {"PATH": os.environ.get("PATH", ""), "GIT_PROJECT_ROOT": str(owner.root),
                       "GIT_HTTP_EXPORT_ALL": "1", "REMOTE_USER": owner.user, "REQUEST_METHOD": self.command,
                       "PATH_INFO": path, "QUERY_STRING": query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(body)), "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                       "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", "")}
                out = subprocess.run([BACKEND], input=body, env=env, capture_output=True, check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(": ")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value))
                owner.requests.append((self.number, self.command, self.path, status))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


if __name__ == "__main__":  # python -m tests.githttp ROOT USER TOKEN WORKDIR: prints the port, serves until stdin ends
    import sys

    server = GitHTTPS(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])).start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()
