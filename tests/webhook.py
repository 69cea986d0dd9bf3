"""An admission webhook server over HTTPS on loopback: answers AdmissionReview v1 and records each request."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Decide = Callable[[dict[str, Any]], dict[str, Any]]  # AdmissionReview request -> response fields


def allow_all(request: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": True}


class WebhookServer:
    """Serves POST <any path> at https://127.0.0.1:<port>, with a certificate for `host` and 127.0.0.1."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", decide: Decide = allow_all) -> None:
        from kubedr.emulator.tls import serving_certs

        self.decide = decide
        self.requests: list[dict[str, Any]] = []  # the AdmissionReview requests, in arrival order
        ca_pem, cert_pem, key_pem = serving_certs(host)
        self.ca_bundle = base64.b64encode(ca_pem).decode()
        (workdir / "hook.crt").write_bytes(cert_pem)
        (workdir / "hook.key").write_bytes(key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(workdir / "hook.crt", workdir / "hook.key")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def seen(self, kind: str, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"]["kind"] == kind and r["name"] == name
                and namespace in (None, r.get("namespace"))]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                request = review["request"]
                owner.requests.append(request)
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": {"uid": request["uid"], **owner.decide(request)}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
