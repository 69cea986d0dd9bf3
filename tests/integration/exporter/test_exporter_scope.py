"""Namespaces chosen by flag, and the cluster-scoped objects they depend on (RBAC, storage, named kinds)."""

from __future__ import annotations

from pathlib import Path

from exporter_harness import remote_files

from tests.conftest import wait_until

RBAC = "rbac.authorization.k8s.io/v1"


def test_namespaces_and_their_cluster_scoped_dependencies(primary, start_exporter, git_remote: Path) -> None:
    api = primary.api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    api.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
                "provisioner": "example.com/disk"})
    api.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "unused"},
                "provisioner": "example.com/disk"})
    api.create({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "shop-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    api.create({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "not-ours"}, "rules": []})
    start_exporter(git_remote, "--namespaces", "shop", "--cluster-scoped-kinds", "PriorityClass")
    wait_until(lambda: "_cluster/Namespace/shop.yaml" in remote_files(git_remote), what="first export")
    files = remote_files(git_remote)
    assert "_cluster/Namespace/other.yaml" not in files
    assert not any("StorageClass" in p or "ClusterRole" in p for p in files)

    api.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
                "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}})
    api.create({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "shop-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "shop-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]})
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}})
    api.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"},
                "value": 1000})
    want = {"_cluster/StorageClass.storage.k8s.io/fast.yaml",
            "_cluster/ClusterRoleBinding.rbac.authorization.k8s.io/shop-reader.yaml",
            "_cluster/ClusterRole.rbac.authorization.k8s.io/shop-reader.yaml",
            "_cluster/PriorityClass.scheduling.k8s.io/high.yaml"}
    wait_until(lambda: want <= set(remote_files(git_remote)), what="dependencies exported")
    files = remote_files(git_remote)
    assert "_cluster/StorageClass.storage.k8s.io/unused.yaml" not in files
    assert "_cluster/ClusterRole.rbac.authorization.k8s.io/not-ours.yaml" not in files
    assert not any(p.startswith("other/") for p in files)

    api.delete("v1", "PersistentVolumeClaim", "data", "shop")
    wait_until(lambda: "_cluster/StorageClass.storage.k8s.io/fast.yaml" not in remote_files(git_remote),
               what="storage class leaves with its last claim")
