"""Raw JSON over the Kubernetes client's connection pool: lists and watch streams without model classes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client import ApiClient


class ApiError(Exception):
    """A non-2xx answer; status 410 means the resourceVersion is too old (re-list)."""

    def __init__(self, status: int, path: str, message: str) -> None:
        super().__init__(f"{status} from {path}: {message}")
        self.status = status


class KubeHTTP:
    """GET JSON and stream watch events, reusing the ApiClient's auth, TLS and pool."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def _prepare(self, path: str, query: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
        _, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        return url, headers

    def get(self, path: str, query: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """One JSON document; ApiError for anything but 2xx."""
        url, headers = self._prepare(path, query)
        r = self.api.rest_client.pool_manager.request(
            "GET", url, headers=headers, timeout=urllib3.Timeout(connect=10, read=timeout))
        if not 200 <= r.status < 300:
            raise ApiError(r.status, path, _message(r.data))
        doc: dict[str, Any] = json.loads(r.data)
        return doc

    def watch(self, path: str, query: dict[str, Any], read_timeout: float) -> Iterator[dict[str, Any]]:
        """Watch events as dicts, one per line of the chunked stream."""
        url, headers = self._prepare(path, {**query, "watch": "1"})
        r = self.api.rest_client.pool_manager.request(
            "GET", url, headers=headers, preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=read_timeout))
        finished = False
        try:
            if not 200 <= r.status < 300:
                raise ApiError(r.status, path, _message(r.read()))
            buf = b""
            for chunk in r.stream(65536, decode_content=True):
                buf += chunk
                if b"\n" not in buf:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if buf.strip():
                yield json.loads(buf)
            finished = True
        finally:
            if not finished:
                r.close()  # a half-read stream cannot go back to the pool
            r.release_conn()


def _message(body: bytes) -> str:
    try:
        return json.loads(body).get("message") or body[:200].decode(errors="replace")
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")
