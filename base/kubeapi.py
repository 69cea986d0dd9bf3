"""The one Kubernetes client: raw JSON requests, watch streams and discovery over the ApiClient's connection pool.

The generated typed clients cost more per call than the request itself; kubedr sends and reads JSON it
already holds, so it talks HTTP through the ApiClient's authentication, TLS and pool, and nothing more.
Every refusal is an `apierrors.ApiError` subclass (NotFound, Conflict, Gone, Invalid, ...); a server that cannot
be reached or does not answer in time is `Unreachable`, with one line that says which and why. Every request is
bounded: CONNECT_TIMEOUT to connect, then READ_TIMEOUT (reads) or WRITE_TIMEOUT (writes) for the answer; a timed
out request is never retried (the caller's next round is the retry).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes.client import ApiClient

from kubedr.apierrors import NotFound, api_error
from kubedr.contract import ObjectRef
from kubedr.kube import version_priority

AUTH_TTL = 1.0  # seconds the auth headers (which may carry a refreshed token) are reused
CONNECT_TIMEOUT = 5.0  # seconds to open a connection (TCP and TLS)
READ_TIMEOUT = 15.0  # seconds a read (a GET, a list page) may wait for the server's answer
WRITE_TIMEOUT = 35.0  # a write passes admission webhooks, which may take up to 30 s (their maximum timeoutSeconds)
RESENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})  # sent again once when a kept-alive connection broke


class Unreachable(ConnectionError):
    """The API server refused the connection, could not be reached, or did not answer in time; str() is one line."""


def unreachable(exc: Exception, server: str, what: str) -> Unreachable:
    """The one-line Unreachable for a urllib3 failure of `what` (GET /api/v1, a watch)."""
    cause: Exception = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    errors = urllib3.exceptions
    if isinstance(cause, errors.NameResolutionError):
        why = "its host name does not resolve"
    elif isinstance(cause, errors.NewConnectionError):
        inner = cause.__cause__ or cause.__context__
        why = (inner.strerror if isinstance(inner, OSError) and inner.strerror else str(cause).rpartition(": ")[2])
        why = why[:1].lower() + why[1:]
    elif isinstance(cause, errors.ConnectTimeoutError):
        why = f"no connection within {_seconds(cause)} s"
    elif isinstance(cause, errors.ReadTimeoutError):
        why = f"no answer within {_seconds(cause)} s"
    elif isinstance(cause, errors.SSLError):
        why = f"TLS failed: {cause}"
    else:
        why = f"connection broken: {cause}"
    return Unreachable(f"API server {server}: {why} ({what})")


def _seconds(exc: Exception) -> str:
    """The timeout urllib3 names at the end of its message (`... (read timeout=15.0)` -> 15)."""
    try:
        return f"{float(str(exc).rpartition('=')[2].rstrip(')')):g}"
    except ValueError:
        return "?"


def bounds(method: str, timeout: float | tuple[float, float] | None) -> urllib3.Timeout:
    """The urllib3 Timeout of one request: (connect, read), or a number bounding the whole request."""
    if timeout is None:
        return urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT if method in ("GET", "HEAD") else WRITE_TIMEOUT)
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(connect=min(CONNECT_TIMEOUT, timeout), read=timeout, total=timeout)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: /api[s]/<group_version>/[namespaces/<ns>/]<plural>."""

    group_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        base = "/api/" if "/" not in self.group_version else "/apis/"
        out = base + self.group_version
        if self.namespaced and namespace:
            out += f"/namespaces/{quote(namespace, safe='')}"
        out += f"/{self.plural}"
        if name:
            out += f"/{quote(name, safe='')}"
        return out


class Cluster:
    """One cluster: request(), get(), watch(), discovery by (group, kind) or apiVersion, and /version; as the
    kubeconfig's user, or impersonating another (Impersonate-User, as `kubectl --as` sends it)."""

    def __init__(self, api_client: ApiClient, impersonate: str | None = None) -> None:
        self.api = api_client
        self.impersonate = impersonate
        self._as = {"Impersonate-User": impersonate} if impersonate else {}
        self.server = str(api_client.configuration.host)
        self._lock = threading.Lock()
        self._by_gv: dict[str, dict[str, Resource]] = {}
        self._versions: dict[str, list[str]] | None = None
        self._headers: tuple[float, urllib3.HTTPConnectionPool, str, dict[str, str]] | None = None

    def as_user(self, user: str) -> Cluster:
        """The same cluster over the same connections, every request made as `user` (the kubeconfig's user must
        be allowed to impersonate it): the API server authorizes each one for that user."""
        return Cluster(self.api, user)

    # ---- requests -----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", timeout: float | tuple[float, float] | None = None) -> Any:
        """Send one request; the decoded JSON body, an ApiError subclass for any non-2xx answer, Unreachable when
        there is no answer (timeout: (connect, read) seconds or a bound on the whole request; default by method)."""
        pool, prefix, auth = self._auth()
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = prefix + path + ("?" + urlencode(query) if query else "")
        if isinstance(body, str | bytes):  # already serialized (a YAML apply configuration): sent as it is
            data: bytes | None = body.encode() if isinstance(body, str) else body
        else:
            data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        bound = bounds(method, timeout)
        for attempt in (1, 2):
            try:
                resp = pool.urlopen(method, url, body=data, headers={**auth, "Content-Type": content_type},
                                    timeout=bound, retries=False, preload_content=True, assert_same_host=False)
                break
            except urllib3.exceptions.ProtocolError as exc:  # the server had closed a kept-alive connection
                if attempt == 2 or method not in RESENT:
                    raise unreachable(exc, self.server, f"{method} {path}") from exc
            except urllib3.exceptions.HTTPError as exc:
                raise unreachable(exc, self.server, f"{method} {path}") from exc
        raw = resp.data
        if resp.status >= 400:
            raise api_error(resp.status, raw, path)
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"message": raw.decode(errors="replace")[:300]}

    def _auth(self) -> tuple[urllib3.HTTPConnectionPool, str, dict[str, str]]:
        """The server's connection pool, its path prefix, and the headers every request carries. Asking the
        kubernetes client for them runs its token-refresh hook, which costs more than a request: once per AUTH_TTL."""
        now = time.monotonic()
        cached = self._headers
        if cached is None or now - cached[0] >= AUTH_TTL:
            _, url, headers, _, _ = self.api.param_serialize("GET", "", header_params={"Accept": "application/json"},
                                                             auth_settings=["BearerToken"])
            pool = self.api.rest_client.pool_manager.connection_from_url(url)
            cached = self._headers = (now, pool, urllib3.util.parse_url(url).path or "", {**headers, **self._as})
        return cached[1], cached[2], cached[3]

    def get(self, path: str, query: dict[str, Any] | None = None,
            timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """One JSON document (a list page, a discovery document); an ApiError subclass for anything but 2xx."""
        doc = self.request("GET", path, query=query, timeout=(CONNECT_TIMEOUT, timeout))
        return doc if isinstance(doc, dict) else {}

    def _prepare(self, path: str, query: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
        _, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        return url, {**headers, **self._as}

    def watch(self, path: str, query: dict[str, Any], read_timeout: float) -> Iterator[dict[str, Any]]:
        """Watch events as dicts, one per line of the chunked stream."""
        url, headers = self._prepare(path, {**query, "watch": "1"})
        try:
            r = self.api.rest_client.pool_manager.request(
                "GET", url, headers=headers, preload_content=False, retries=False,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise unreachable(exc, self.server, f"watch {path}") from exc
        finished = False
        try:
            if not 200 <= r.status < 300:
                raise api_error(r.status, r.read(), path)
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

    # ---- discovery ----------------------------------------------------------------------------------------

    def version(self) -> str:
        """The server's gitVersion (v1.30.2)."""
        return str(self.request("GET", "/version").get("gitVersion", ""))

    def _load_gv(self, gv: str) -> dict[str, Resource]:
        path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        try:
            doc = self.request("GET", path)
        except NotFound:
            return {}
        out: dict[str, Resource] = {}
        for r in doc.get("resources", []):
            if "/" in r["name"]:
                continue
            out[r["kind"]] = Resource(gv, r["kind"], r["name"], bool(r.get("namespaced")))
        return out

    def _group_versions(self, refresh: bool = False) -> dict[str, list[str]]:
        """Group -> its served group-versions, the preferred one first, then by Kubernetes version priority."""
        if self._versions is None or refresh:
            out = {"": ["v1"]}
            for g in self.request("GET", "/apis").get("groups", []):
                gvs = [v["groupVersion"] for v in g.get("versions") or []]
                pv = (g.get("preferredVersion") or {}).get("groupVersion") or (gvs[0] if gvs else "")
                rest = sorted((gv for gv in gvs if gv != pv), key=lambda gv: version_priority(gv.rpartition("/")[2]))
                out[g["name"]] = [pv, *rest]
            self._versions = out
        return self._versions

    def resource_for(self, api_version: str, kind: str) -> Resource | None:
        """The resource of a kind at an apiVersion; rediscovers once on a miss (a CRD just arrived)."""
        with self._lock:
            if api_version not in self._by_gv or kind not in self._by_gv[api_version]:
                self._by_gv[api_version] = self._load_gv(api_version)
            return self._by_gv[api_version].get(kind)

    def resource_of(self, ref: ObjectRef) -> Resource | None:
        """The resource of a (group, kind): at the group's preferred version when served there, else at the
        newest version that serves it; None when not served."""
        for refresh in (False, True):  # a miss rediscovers once (a CRD just arrived or gained a version)
            versions = self._group_versions(refresh).get(ref.group, [])
            for gv in versions:
                with self._lock:
                    if refresh or gv not in self._by_gv:
                        self._by_gv[gv] = self._load_gv(gv)
                    found = self._by_gv[gv].get(ref.kind)
                if found is not None:
                    return found
        return None

    def forget(self) -> None:
        """Drop discovery caches (after CRDs were applied or deleted)."""
        with self._lock:
            self._by_gv.clear()
            self._versions = None
