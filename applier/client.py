"""Raw REST calls to the target cluster, plus the discovery the applier needs (kind -> resource path).

The generated typed clients cost more per call than the request itself; the applier sends JSON it already
holds, so it talks HTTP through the ApiClient's connection pool and authentication, and nothing more.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s

from kubedr.contract import ObjectRef
from kubedr.kube import version_priority

# The bound on one request; how often the auth headers (which may carry a refreshed token) are rebuilt.
TIMEOUT = urllib3.Timeout(total=60)
AUTH_TTL = 1.0


class ApiError(Exception):
    """A request the API server refused; str() is the server's one-line message."""

    def __init__(self, status: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details = details or {}  # the Status's details (kind, name, causes), when the server sent them

    @property
    def causes(self) -> list[str]:
        """The messages of the Status's causes (`Invalid value: ...: field is immutable`), one per field."""
        return [str(c.get("message") or "") for c in self.details.get("causes") or [] if isinstance(c, dict)]


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
    """One target cluster: request(), discovery by (group, kind) or apiVersion, and /version."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api = api_client
        self._lock = threading.Lock()
        self._by_gv: dict[str, dict[str, Resource]] = {}
        self._versions: dict[str, list[str]] | None = None
        self._headers: tuple[float, urllib3.HTTPConnectionPool, str, dict[str, str]] | None = None

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Any:
        """Send one request; the decoded JSON body, or ApiError for any non-2xx answer."""
        pool, prefix, auth = self._auth()
        url = prefix + path + ("?" + urlencode(query) if query else "")
        if isinstance(body, str | bytes):  # already serialized (a YAML apply configuration): sent as it is
            data: bytes | None = body.encode() if isinstance(body, str) else body
        else:
            data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        resp = pool.urlopen(method, url, body=data, headers={**auth, "Content-Type": content_type}, timeout=TIMEOUT,
                            preload_content=True, assert_same_host=False)
        raw = resp.data
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"message": raw.decode(errors="replace")[:300]}
        if resp.status >= 400:
            doc = doc if isinstance(doc, dict) else {}
            details = doc.get("details")
            raise ApiError(resp.status, doc.get("reason") or "",
                           " ".join(str(doc.get("message") or f"HTTP {resp.status}").split()),
                           details if isinstance(details, dict) else None)
        return doc

    def _auth(self) -> tuple[urllib3.HTTPConnectionPool, str, dict[str, str]]:
        """The server's connection pool, its path prefix, and the headers every request carries (the token is
        refreshed at most once per AUTH_TTL: the kubernetes client's refresh hook costs more than a request)."""
        now = time.monotonic()
        cached = self._headers
        if cached is None or now - cached[0] >= AUTH_TTL:
            _, url, headers, _, _ = self.api.param_serialize("GET", "", header_params={"Accept": "application/json"},
                                                             auth_settings=["BearerToken"])
            pool = self.api.rest_client.pool_manager.connection_from_url(url)
            cached = self._headers = (now, pool, urllib3.util.parse_url(url).path or "", headers)
        return cached[1], cached[2], cached[3]

    # ---- discovery ----------------------------------------------------------------------------------------

    def version(self) -> str:
        """The server's gitVersion (v1.30.2)."""
        return str(self.request("GET", "/version").get("gitVersion", ""))

    def _load_gv(self, gv: str) -> dict[str, Resource]:
        path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        try:
            doc = self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return {}
            raise
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


# ---- kubedr's own state on the secondary: ConfigMaps in kubedr-system ---------------------------------------

SYSTEM_NAMESPACE = "kubedr-system"
STATE_MANAGER = "kubedr-state"


def _cm_path(name: str = "") -> str:
    return f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/configmaps" + (f"/{name}" if name else "")


def ensure_system_namespace(cluster: Cluster) -> None:
    """Create kubedr-system if missing (server-side apply: harmless when it exists)."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
    cluster.request("PATCH", f"/api/v1/namespaces/{SYSTEM_NAMESPACE}", body,
                    {"fieldManager": STATE_MANAGER, "force": "true"}, "application/apply-patch+yaml")


def get_state(cluster: Cluster, name: str) -> dict[str, str] | None:
    """The data of one state ConfigMap, None when absent."""
    try:
        return dict(cluster.request("GET", _cm_path(name)).get("data") or {})
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def list_state(cluster: Cluster, selector: str) -> dict[str, dict[str, str]]:
    """Name -> data of the state ConfigMaps matching a label selector."""
    try:
        doc = cluster.request("GET", _cm_path(), query={"labelSelector": selector})
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise
    return {i["metadata"]["name"]: dict(i.get("data") or {}) for i in doc.get("items") or []}


def put_state(cluster: Cluster, name: str, data: dict[str, str], labels: dict[str, str] | None = None,
              manager: str = STATE_MANAGER) -> None:
    """Write one state ConfigMap (the manager's keys, server-side apply), creating kubedr-system when needed."""
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE,
                         "labels": {"app.kubernetes.io/part-of": "kubedr", **(labels or {})}},
            "data": data}
    query = {"fieldManager": manager, "force": "true"}
    try:
        cluster.request("PATCH", _cm_path(name), body, query, "application/apply-patch+yaml")
    except ApiError as exc:
        if exc.status != 404:
            raise
        ensure_system_namespace(cluster)
        cluster.request("PATCH", _cm_path(name), body, query, "application/apply-patch+yaml")


def delete_state(cluster: Cluster, name: str) -> None:
    """Remove one state ConfigMap; absent is fine."""
    try:
        cluster.request("DELETE", _cm_path(name))
    except ApiError as exc:
        if exc.status != 404:
            raise
