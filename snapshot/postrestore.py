"""post-restore: once the restored API answers, compare nodes, restart workloads, drop Pods of gone nodes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubedr.apierrors import ApiError, NotFound
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.snapshot")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets on the pod template
MARK = "kubedr.io/post-restore"  # on the workload: the snapshot it was restarted for (a re-run skips it)
KINDS: dict[str, str] = {"Deployment": "deployments", "DaemonSet": "daemonsets", "StatefulSet": "statefulsets"}
PATCH = "application/strategic-merge-patch+json"  # what `kubectl rollout restart` sends


@dataclass
class Summary:
    """What post-restore found and did; failures name the object."""

    missing_nodes: list[str] = field(default_factory=list)
    extra_nodes: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted_pods: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"nodes missing (recorded, not in the cluster): {', '.join(self.missing_nodes) or 'none'}",
               f"nodes extra (in the cluster, not recorded): {', '.join(self.extra_nodes) or 'none'}"]
        out += [f"restarted {w}" for w in self.restarted] + [f"skipped {w}" for w in self.skipped]
        out += [f"deleted pod {p}" for p in self.deleted_pods] + [f"FAILED {f}" for f in self.failed]
        out.append(f"post-restore: {len(self.restarted)} workloads restarted, {len(self.skipped)} skipped, "
                   f"{len(self.deleted_pods)} pods of gone nodes deleted, {len(self.failed)} failed")
        return out


def _path(plural: str, namespace: str | None, name: str = "", group_version: str = "apps/v1") -> str:
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}" + (f"/{name}" if name else "")


def _items(api: Cluster, plural: str, namespaces: list[str] | None, group_version: str = "apps/v1") -> list[Any]:
    scopes: list[str | None] = list(namespaces or []) or [None]  # None: every namespace (or cluster-scoped)
    return [o for ns in scopes
            for o in api.request("GET", _path(plural, ns, group_version=group_version)).get("items") or []]


def _restart(api: Cluster, kind: str, obj: dict[str, Any], snapshot_id: str, now: str, force: bool,
             out: Summary) -> None:
    meta = obj.get("metadata") or {}
    name = f"{kind} {meta.get('namespace')}/{meta.get('name')}"
    if (meta.get("annotations") or {}).get(MARK) == snapshot_id and not force:
        out.skipped.append(f"{name} (already restarted for {snapshot_id})")
        return
    if kind == "Deployment" and (obj.get("spec") or {}).get("paused"):
        out.skipped.append(f"{name} (paused; kubectl refuses to restart it too)")
        return
    body = {"metadata": {"annotations": {MARK: snapshot_id}},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
    try:
        api.request("PATCH", _path(KINDS[kind], meta["namespace"], meta["name"]), body, content_type=PATCH)
        out.restarted.append(name)
    except ApiError as exc:
        out.failed.append(f"{name}: {exc.status} {exc.reason or exc}")


def run(api: Cluster, recorded_nodes: list[str], snapshot_id: str,
        namespaces: list[str] | None = None, force: bool = False) -> Summary:
    """Compare nodes, rollout-restart workloads and delete Pods bound to nodes that do not exist; re-runnable."""
    out = Summary()
    nodes = {n["metadata"]["name"] for n in _items(api, "nodes", None, "v1")}
    out.missing_nodes = sorted(set(recorded_nodes) - nodes)
    out.extra_nodes = sorted(nodes - set(recorded_nodes)) if recorded_nodes else []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # Go's time.RFC3339, as kubectl writes it
    for kind in KINDS:
        try:
            objs = _items(api, KINDS[kind], namespaces)
        except ApiError as exc:
            out.failed.append(f"list {kind}: {exc.status} {exc.reason or exc}")
            continue
        for obj in objs:
            _restart(api, kind, obj, snapshot_id, now, force, out)
    for pod in _items(api, "pods", namespaces, "v1"):
        meta, node = pod["metadata"], (pod.get("spec") or {}).get("nodeName")
        if node and node not in nodes:
            name = f"{meta['namespace']}/{meta['name']} (node {node})"
            try:  # no kubelet will confirm it: delete at once, as the pod garbage collector does
                api.request("DELETE", _path("pods", meta["namespace"], meta["name"], "v1"),
                            query={"gracePeriodSeconds": "0"})
                out.deleted_pods.append(name)
            except NotFound:
                pass
            except ApiError as exc:
                out.failed.append(f"delete pod {name}: {exc.status} {exc.reason or exc}")
    return out
