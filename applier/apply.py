"""Server-side apply as field manager `kubedr`, forcing ownership as Flux does; concurrent within a stage."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubedr import contract
from kubedr.apierrors import ApiError, Conflict, Invalid, NotFound
from kubedr.applier import recreate as rc
from kubedr.applier.decode import MANAGED_LABEL, DecodeError
from kubedr.applier.owners import foreign
from kubedr.backoff import Backoff
from kubedr.contract import ManifestError, ObjectRef
from kubedr.kubeapi import Cluster
from kubedr.owned import owned_by_cluster

log = logging.getLogger("kubedr.applier.apply")

FIELD_MANAGER = "kubedr"
CRD_ESTABLISH_TIMEOUT = 30.0
STAGE_CHUNK = 2000  # items read and handed to the thread pool at once (memory stays flat with 100k)


def cluster_owned(obj: dict[str, Any]) -> bool:
    """Whether every cluster's control plane makes this object for itself (kubedr.owned says so)."""
    return owned_by_cluster(obj) is not None


class Action(enum.StrEnum):
    """What kubedr did to one object (or, in a dry run, would do), as Flux's SSA change set names it."""

    APPLIED = "applied"
    RECREATED = "recreated"  # an immutable field changed: deleted and created again
    WOULD_RECREATE = "would recreate"
    DELETED = "deleted"  # pruned
    GONE = "gone"  # to prune, but already absent
    FOREIGN = "foreign"  # to prune, but without kubedr's label: left alone
    OTHER_SOURCE = "other source"  # to prune, but another source owns it now (applier.owners): left alone
    CLUSTER_OWNED = "cluster-owned"  # to prune, but the target's control plane made its own: left alone


@dataclass(frozen=True)
class Applied:
    """One object applied: what was done, and the object as the server has (or would have) it."""

    action: Action
    live: dict[str, Any]


T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    """One item of a stage: fn's result, or the one-line reason it failed (result None)."""

    item: T
    result: R | None = None
    error: str = ""
    reason: str = ""  # metric label: invalid, conflict, notfound, forbidden, server, ...


def _reason(exc: Exception) -> str:
    if isinstance(exc, ManifestError | DecodeError):
        return "invalid"
    if isinstance(exc, rc.ImmutableError):
        return "immutable"
    if isinstance(exc, rc.RecreateTimeout):
        return "recreate-timeout"
    if isinstance(exc, ApiError):
        return {400: "badrequest", 403: "forbidden", 404: "notfound", 409: "conflict",
                422: "invalid"}.get(exc.status, "server" if exc.status >= 500 else "rejected")
    return "error"


class ServerSideApplier:
    """Server-side applies and deletes objects on the target cluster, batch by batch (Engine drives the rounds)."""

    def __init__(self, cluster: Cluster, concurrency: int = 16, dry_run: bool = False, source: str = "") -> None:
        self.cluster = cluster  # the source's ServiceAccount when it applies through one (kubeapi impersonation)
        self.dry_run = dry_run
        self.source = source
        self.recreate_timeout = rc.RECREATE_TIMEOUT
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="kubedr-apply")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    # ---- one object --------------------------------------------------------------------------------------

    def apply_one(self, obj: dict[str, Any], dry_run: bool | None = None) -> dict[str, Any]:
        """Server-side apply one object; the object as the server has (or would have) it."""
        meta = obj.get("metadata") or {}
        resource = self.cluster.resource_for(str(obj["apiVersion"]), str(obj["kind"]))
        if resource is None:
            raise NotFound(404, "NotFound", f"the cluster does not serve {obj['kind']} in {obj['apiVersion']}")
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if self.dry_run if dry_run is None else dry_run:
            query["dryRun"] = "All"
        answer: dict[str, Any] = self.cluster.request(
            "PATCH", resource.path(meta.get("namespace") or "", meta["name"]), obj, query,
            "application/apply-patch+yaml")
        return answer

    def apply_recreating(self, obj: dict[str, Any], allowed: bool = True) -> Applied:
        """Apply, recreating what the primary recreated (an immutable field changed) when allowed."""
        try:
            return Applied(Action.APPLIED, self.apply_one(obj))
        except Invalid as exc:
            server = rc.immutable_change(exc)
            if not server:
                raise
        ref = contract.ref_of(obj)
        why = rc.refusal(ref, allowed)
        if why:
            raise rc.refused(why, server)
        live = self.get_live(ref, str(obj["apiVersion"]))
        if live is None:  # deleted meanwhile: a plain create
            return Applied(Action.APPLIED, self.apply_one(obj))
        why = rc.refusal_for_live(ref, live)
        if why:
            raise rc.refused(why, server)
        if self.dry_run:
            return Applied(Action.WOULD_RECREATE, {})
        resource = self.cluster.resource_for(str(obj["apiVersion"]), ref.kind)
        assert resource is not None  # get_live found it
        self.delete_and_wait(resource.path(ref.namespace, ref.name), live["metadata"]["uid"],
                             rc.RECREATE[(ref.group, ref.kind)].propagation, self.recreate_timeout)
        return Applied(Action.RECREATED, self.apply_one(obj))

    def delete_and_wait(self, path: str, uid: str, propagation: str, timeout: float) -> None:
        """Delete exactly this uid and return once it is gone (404 or another uid), so the create cannot race it."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation,
                   "preconditions": {"uid": uid}}
        try:
            self.cluster.request("DELETE", path, options)
        except (NotFound, Conflict):  # already gone, or another object (uid) holds the name now
            return
        deadline = time.monotonic() + timeout
        backoff = Backoff(0.01, 0.5)
        while True:
            try:
                live = self.cluster.request("GET", path)
            except NotFound:
                return
            meta = live.get("metadata") or {}
            if meta.get("uid") != uid:
                return
            if time.monotonic() >= deadline:
                waiting = " ".join(meta.get("finalizers") or []) or "nothing named"
                raise rc.RecreateTimeout(f"immutable field changed; deleted to recreate it, but it was still there "
                                         f"after {timeout:g}s (finalizers: {waiting}); created again next round")
            backoff.wait()

    def get_live(self, ref: ObjectRef, api_version: str | None = None) -> dict[str, Any] | None:
        """The live object, None when absent or its kind is not served."""
        resource = (self.cluster.resource_for(api_version, ref.kind) if api_version
                    else self.cluster.resource_of(ref))
        if resource is None:
            return None
        try:
            live: dict[str, Any] = self.cluster.request("GET", resource.path(ref.namespace, ref.name))
        except NotFound:
            return None
        return live

    def exists(self, ref: ObjectRef) -> bool:
        """Whether the object is on the cluster (its type not being served means it is not)."""
        resource = self.cluster.resource_of(ref)
        if resource is None:
            return False
        try:
            self.cluster.request("GET", resource.path(ref.namespace, ref.name))
        except NotFound:
            return False
        return True

    def delete_one(self, ref: ObjectRef) -> Action:
        """Delete an object kubedr applied: DELETED, GONE (already absent), FOREIGN (not kubedr's), OTHER_SOURCE
        (another source's now) or CLUSTER_OWNED (the target's control plane made its own, which must stay)."""
        resource = self.cluster.resource_of(ref)
        if resource is None:
            return Action.GONE
        path = resource.path(ref.namespace, ref.name)
        try:
            live = self.cluster.request("GET", path)
        except NotFound:
            return Action.GONE
        if ((live.get("metadata") or {}).get("labels") or {}).get(MANAGED_LABEL) != "true":
            return Action.FOREIGN
        if foreign(live, self.source):
            return Action.OTHER_SOURCE
        if cluster_owned(live):  # e.g. a bootstrap ClusterRole an older export put in the repo
            return Action.CLUSTER_OWNED
        if self.dry_run:
            return Action.DELETED
        try:
            self.cluster.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1",
                                                   "propagationPolicy": "Background"})
        except NotFound:
            return Action.GONE
        return Action.DELETED

    # ---- many ----------------------------------------------------------------------------------------------

    def run_stage(self, items: list[T], fn: Callable[[T], R]) -> list[Outcome[T, R]]:
        """Run fn over a stage's items concurrently; every item gets an Outcome, failures never raise."""
        def one(item: T) -> Outcome[T, R]:
            try:
                return Outcome(item, fn(item))
            except Exception as exc:  # one bad object never stops the rest
                text = exc.reason if isinstance(exc, ManifestError) else str(exc)
                return Outcome(item, None, " ".join(text.split()) or type(exc).__name__, _reason(exc))
        if len(items) == 1:
            return [one(items[0])]
        out: list[Outcome[T, R]] = []
        for i in range(0, len(items), STAGE_CHUNK):  # a bounded number of futures at a time, not one per object
            out.extend(self.pool.map(one, items[i:i + STAGE_CHUNK]))
        return out

    def wait_established(self, names: list[str], timeout: float = CRD_ESTABLISH_TIMEOUT) -> list[str]:
        """Wait until the CRDs are Established (so their kinds can be applied); the names that never were."""
        pending = set(names)
        deadline = time.monotonic() + timeout
        backoff = Backoff(0.02, 0.5)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                try:
                    crd = self.cluster.request(
                        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                except ApiError:
                    continue
                conds = (crd.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                    pending.discard(name)
            if pending:
                backoff.wait()
        self.cluster.forget()
        return sorted(pending)
