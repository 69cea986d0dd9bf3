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
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
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
        return f"{round(float(str(exc).rpartition('=')[2].rstrip(')')), 1):g}"
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
    """One served resource (never a subresource) at one version: where its objects live, what it allows."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """(group, kind): the identity the repo layout uses."""
        return (self.group, self.kind)

    def path(self, namespace: str = "", name: str = "") -> str:
        """/api[s]/<apiVersion>/[namespaces/<ns>/]<plural>[/<name>]."""
        out = ("/apis/" if self.group else "/api/") + self.api_version
        if self.namespaced and namespace:
            out += f"/namespaces/{quote(namespace, safe='')}"
        out += f"/{self.plural}"
        if name:
            out += f"/{quote(name, safe='')}"
        return out

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass
class Discovery:
    """What the server serves: every resource once, each group's preferred version, the versions that failed."""

    resources: list[Resource]
    preferred: dict[str, str]  # group -> its preferred version
    failed: dict[tuple[str, str], Exception]  # (group, version) whose discovery document could not be read


class WatchStream:
    """The events of one watch request, one dict per line of the chunked stream; shutdown() from another thread
    ends the iteration at once (the socket is shut, not waited on until its read timeout)."""

    def __init__(self, cluster: Cluster, path: str, query: dict[str, Any], read_timeout: float) -> None:
        self.cluster = cluster
        self.path = path
        self.query = query
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._shut = False
        self._events: Iterator[dict[str, Any]] | None = None

    def shutdown(self) -> None:
        """End the stream now, from any thread."""
        with self._lock:
            self._shut = True
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except (ValueError, RuntimeError, OSError):  # already ended and back in the pool
                pass

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._events is None:
            self._events = self._read()
        return next(self._events)

    def close(self) -> None:
        """Stop reading and give the connection up."""
        self.shutdown()
        if isinstance(self._events, Generator):
            self._events.close()

    def _read(self) -> Iterator[dict[str, Any]]:
        url, headers = self.cluster._prepare(self.path, {**self.query, "watch": "1"})
        try:
            r = self.cluster.api.rest_client.pool_manager.request(
                "GET", url, headers=headers, preload_content=False, retries=False,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=self.read_timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise unreachable(exc, self.cluster.server, f"watch {self.path}") from exc
        with self._lock:
            self._response = r
            shut = self._shut
        finished = False
        try:
            if shut:
                return
            if not 200 <= r.status < 300:
                raise api_error(r.status, r.read(), self.path)
            buf = b""
            for chunk in r.stream(65536, decode_content=True):
                buf += chunk
                if b"\n" not in buf:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if buf.strip() and not self._shut:
                yield json.loads(buf)
            finished = not self._shut
        finally:
            if not finished:
                r.close()  # a half-read stream cannot go back to the pool
            r.release_conn()


class Cluster:
    """One cluster: request(), get(), watch(), discovery by (group, kind) or apiVersion, and /version; as the
    kubeconfig's user, or impersonating another (Impersonate-User, as `kubectl --as` sends it)."""

    def __init__(self, api_client: ApiClient, impersonate: str | None = None) -> None:
        self.api = api_client
        self.impersonate = impersonate
        self._as = {"Impersonate-User": impersonate} if impersonate else {}
        self.server = str(api_client.configuration.host)
        self._lock = threading.Lock()
        self._by_gv: dict[str, list[Resource]] = {}
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

    def watch(self, path: str, query: dict[str, Any], read_timeout: float) -> WatchStream:
        """One watch request: its events as dicts (kubedr.listwatch is the loop that lists, resumes, re-lists)."""
        return WatchStream(self, path, query, read_timeout)

    # ---- discovery ----------------------------------------------------------------------------------------

    def version(self) -> str:
        """The server's gitVersion (v1.30.2)."""
        return str(self.request("GET", "/version").get("gitVersion", ""))

    def _served(self, api_version: str) -> list[Resource]:
        """The resources of one group version (its discovery document, read now)."""
        group, _, version = api_version.rpartition("/")
        doc = self.get("/api/v1" if api_version == "v1" else f"/apis/{api_version}")
        return [Resource(group, version, r["name"], str(r.get("kind", "")), bool(r.get("namespaced")),
                         frozenset(r.get("verbs") or ()))
                for r in doc.get("resources") or [] if "/" not in r.get("name", "/")]

    def _load_gv(self, api_version: str, refresh: bool = False) -> list[Resource]:
        """The resources of one group version, cached; none when it is not served (any more)."""
        with self._lock:
            known = self._by_gv.get(api_version)
        if known is None or refresh:
            try:
                known = self._served(api_version)
            except NotFound:
                known = []
            with self._lock:
                self._by_gv[api_version] = known
        return known

    def _group_versions(self, refresh: bool = False) -> dict[str, list[str]]:
        """Group -> its served versions: the preferred one first, then by Kubernetes version priority."""
        if self._versions is None or refresh:
            out = {"": ["v1"]}
            for g in self.get("/apis").get("groups") or []:
                versions = [v.get("version") or str(v.get("groupVersion", "")).rpartition("/")[2]
                            for v in g.get("versions") or []]
                preferred = (g.get("preferredVersion") or {}).get("version") or (versions[0] if versions else "")
                out[g["name"]] = [preferred, *sorted((v for v in versions if v != preferred), key=version_priority)]
            self._versions = out
        return self._versions

    def discover(self) -> Discovery:
        """Every served resource once, read afresh: at its group's preferred version when served there, else at
        the newest version that serves it (the rule resource_of follows). A group version whose document cannot
        be read is in `failed`, not fatal; the core group's is."""
        found: list[Resource] = []
        failed: dict[tuple[str, str], Exception] = {}
        decided: set[tuple[str, str]] = set()
        core = self._served("v1")  # first: a server that cannot serve its core group fails here, by that name
        groups = self._group_versions(refresh=True)
        for group, versions in groups.items():
            for version in versions:
                api_version = f"{group}/{version}" if group else version
                try:
                    served = self._served(api_version) if group else core
                except Exception as exc:  # noqa: BLE001 - ApiError, Unreachable, a body that is no JSON
                    failed[(group, version)] = exc
                    continue
                with self._lock:
                    self._by_gv[api_version] = served
                for r in served:  # the first version that serves a resource wins
                    if (group, r.plural) not in decided:
                        decided.add((group, r.plural))
                        found.append(r)
        return Discovery(found, {group: versions[0] for group, versions in groups.items()}, failed)

    def resource_for(self, api_version: str, kind: str) -> Resource | None:
        """The resource of a kind at an apiVersion; rediscovers once on a miss (a CRD just arrived)."""
        with self._lock:
            known = self._by_gv.get(api_version)
        if known is None or not any(r.kind == kind for r in known):
            known = self._load_gv(api_version, refresh=True)
        return next((r for r in known if r.kind == kind), None)

    def resource_of(self, ref: ObjectRef) -> Resource | None:
        """The resource of a (group, kind): at the group's preferred version when served there, else at the
        newest version that serves it; None when not served."""
        for refresh in (False, True):  # a miss rediscovers once (a CRD just arrived or gained a version)
            for version in self._group_versions(refresh).get(ref.group, []):
                api_version = f"{ref.group}/{version}" if ref.group else version
                found = next((r for r in self._load_gv(api_version, refresh) if r.kind == ref.kind), None)
                if found is not None:
                    return found
        return None

    def forget(self) -> None:
        """Drop discovery caches (after CRDs were applied or deleted)."""
        with self._lock:
            self._by_gv.clear()
            self._versions = None
