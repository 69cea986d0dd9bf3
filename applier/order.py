"""The apply order as one table: what must exist before what. Deletions run the same table in reverse."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from kubedr.contract import ObjectRef

RBAC = "rbac.authorization.k8s.io"

# (stage, {(group, kind), ...}); the last stage, "rest", takes every kind not named here.
ORDER: tuple[tuple[str, frozenset[tuple[str, str]]], ...] = (
    ("namespaces", frozenset({("", "Namespace")})),
    ("crds", frozenset({("apiextensions.k8s.io", "CustomResourceDefinition")})),
    # before the token Secrets that name them: the token controller deletes one whose ServiceAccount is missing
    ("serviceaccounts", frozenset({("", "ServiceAccount")})),
    ("config", frozenset({
        (RBAC, "ClusterRole"), (RBAC, "Role"), (RBAC, "ClusterRoleBinding"),
        (RBAC, "RoleBinding"), ("", "ConfigMap"), ("", "Secret"), ("", "LimitRange"), ("", "ResourceQuota"),
        ("scheduling.k8s.io", "PriorityClass"), ("storage.k8s.io", "StorageClass"),
    })),
    ("storage", frozenset({("", "PersistentVolume"), ("", "PersistentVolumeClaim")})),
    ("services", frozenset({("", "Service")})),
    ("workloads", frozenset({
        ("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("apps", "ReplicaSet"),
        ("batch", "Job"), ("batch", "CronJob"), ("", "Pod"), ("", "ReplicationController"),
    })),
    ("rest", frozenset()),
    # last: the workloads that serve them exist by now (a webhook without its server refuses every write it
    # matches), and nothing of this round has to pass webhooks whose Pods are still starting
    ("admission", frozenset({
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("apiregistration.k8s.io", "APIService"),
    })),
)

STAGES: tuple[str, ...] = tuple(name for name, _ in ORDER)
_INDEX: dict[tuple[str, str], int] = {gk: i for i, (_, kinds) in enumerate(ORDER) for gk in kinds}
_REST = STAGES.index("rest")

T = TypeVar("T")


def stage_of(group: str, kind: str) -> int:
    """Index of the stage a kind is applied in."""
    return _INDEX.get((group, kind), _REST)


def plan(items: Iterable[tuple[ObjectRef, T]]) -> list[tuple[str, list[T]]]:
    """Group items into stages in apply order (empty stages left out); order within a stage is stable."""
    buckets: list[list[T]] = [[] for _ in ORDER]
    for ref, item in items:
        buckets[stage_of(ref.group, ref.kind)].append(item)
    return [(ORDER[i][0], b) for i, b in enumerate(buckets) if b]


def plan_deletes(items: Iterable[tuple[ObjectRef, T]]) -> list[tuple[str, list[T]]]:
    """Deletion stages: the apply order reversed (workloads before their config, namespaces last)."""
    return list(reversed(plan(items)))
