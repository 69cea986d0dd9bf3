"""post-restore: once the restored API answers, compare nodes, restart workloads, drop Pods of gone nodes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("kubedr.snapshot")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets on the pod template
MARK = "kubedr.io/post-restore"  # on the workload: the snapshot it was restarted for (a re-run skips it)
# kind -> (list all namespaces, list one namespace, patch) method names of AppsV1Api
KINDS: dict[str, tuple[str, str, str]] = {
    "Deployment": ("list_deployment_for_all_namespaces", "list_namespaced_deployment", "patch_namespaced_deployment"),
    "DaemonSet": ("list_daemon_set_for_all_namespaces", "list_namespaced_daemon_set", "patch_namespaced_daemon_set"),
    "StatefulSet": ("list_stateful_set_for_all_namespaces", "list_namespaced_stateful_set",
                    "patch_namespaced_stateful_set"),
}


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


def _items(api: client.AppsV1Api, kind: str, namespaces: list[str] | None) -> list[Any]:
    every, one, _ = KINDS[kind]
    if not namespaces:
        return list(getattr(api, every)().items)
    return [o for ns in namespaces for o in getattr(api, one)(ns).items]


def _restart(api: client.AppsV1Api, kind: str, obj: Any, snapshot_id: str, now: str, force: bool, out: Summary) -> None:
    name = f"{kind} {obj.metadata.namespace}/{obj.metadata.name}"
    if (obj.metadata.annotations or {}).get(MARK) == snapshot_id and not force:
        out.skipped.append(f"{name} (already restarted for {snapshot_id})")
        return
    if kind == "Deployment" and obj.spec.paused:
        out.skipped.append(f"{name} (paused; kubectl refuses to restart it too)")
        return
    body = {"metadata": {"annotations": {MARK: snapshot_id}},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
    try:
        getattr(api, KINDS[kind][2])(obj.metadata.name, obj.metadata.namespace, body)
        out.restarted.append(name)
    except ApiException as exc:
        out.failed.append(f"{name}: {exc.status} {exc.reason}")


def run(api_client: client.ApiClient, recorded_nodes: list[str], snapshot_id: str,
        namespaces: list[str] | None = None, force: bool = False) -> Summary:
    """Compare nodes, rollout-restart workloads and delete Pods bound to nodes that do not exist; re-runnable."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    out = Summary()
    nodes = {n.metadata.name for n in core.list_node().items if n.metadata and n.metadata.name}
    out.missing_nodes = sorted(set(recorded_nodes) - nodes)
    out.extra_nodes = sorted(nodes - set(recorded_nodes)) if recorded_nodes else []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # Go's time.RFC3339, as kubectl writes it
    for kind in KINDS:
        try:
            objs = _items(apps, kind, namespaces)
        except ApiException as exc:
            out.failed.append(f"list {kind}: {exc.status} {exc.reason}")
            continue
        for obj in objs:
            _restart(apps, kind, obj, snapshot_id, now, force, out)
    pods = [p for ns in namespaces for p in core.list_namespaced_pod(ns).items] if namespaces \
        else core.list_pod_for_all_namespaces().items
    for pod in pods:
        node, meta = pod.spec.node_name if pod.spec else None, pod.metadata
        if node and node not in nodes and meta and meta.name and meta.namespace:
            name = f"{meta.namespace}/{meta.name} (node {node})"
            try:  # no kubelet will confirm it: delete at once, as the pod garbage collector does
                core.delete_namespaced_pod(meta.name, meta.namespace, grace_period_seconds=0)
                out.deleted_pods.append(name)
            except ApiException as exc:
                if exc.status != 404:
                    out.failed.append(f"delete pod {name}: {exc.status} {exc.reason}")
    return out
