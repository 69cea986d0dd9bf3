"""Re-discovery after a CRD change covers kinds that exist only at a non-preferred version, and says so."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from exporter_harness import remote_files

from tests.conftest import wait_until


def _crd(plural: str, kind: str, version: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_a_kind_added_at_an_older_version_is_watched_after_rediscovery(
        primary, start_exporter, git_remote: Path, caplog: pytest.LogCaptureFixture) -> None:
    api = primary.api
    api.create(_crd("widgets", "Widget", "v1"))
    wait_until(lambda: primary.api.groups().get("example.com"), what="example.com served")
    with caplog.at_level(logging.DEBUG, logger="kubedr.exporter"):
        exp = start_exporter(git_remote)
        assert "gadgets.example.com" not in "\n".join(exp.coverage().lines())
        api.create(_crd("gadgets", "Gadget", "v1alpha1"))
        gadget = {"apiVersion": "example.com/v1alpha1", "kind": "Gadget",
                  "metadata": {"name": "g1", "namespace": "shop"}, "spec": {"size": 1}}

        def create() -> bool:
            try:
                api.create(gadget)
                return True
            except Exception:  # noqa: BLE001 - served once the CRD is Established
                return False

        wait_until(create, what="gadget created")
        wait_until(lambda: "shop/Gadget.example.com/g1.yaml" in remote_files(git_remote), timeout=15,
                   what="gadget exported after re-discovery")
        wait_until(lambda: any("watched gadgets.example.com (v1alpha1, not served at the preferred v1)"
                               in r.getMessage() for r in caplog.records), what="coverage logged again")
    row = next(w for w in exp.coverage().watched if w.rtype.plural == "gadgets")
    assert (row.rtype.version, row.preferred, row.exported) == ("v1alpha1", "v1", 1)


def _deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "web:1"}]}}}}


def test_the_children_of_a_kind_out_of_scope_are_exported_and_reported(primary, start_exporter,
                                                                       git_remote: Path) -> None:
    """The ReplicaSet of an excluded Deployment is exported (nothing on the secondary would recreate it) and
    the coverage report says so; its Pods, whose ReplicaSet is exported, are not."""
    primary.api.create(_deployment("web"))
    wait_until(lambda: primary.api.list("apps/v1", "ReplicaSet", "shop"), what="the ReplicaSet made")
    exp = start_exporter(git_remote, "--namespaces", "shop", "--exclude-kinds", "Deployment.apps")
    wait_until(lambda: any(p.startswith("shop/ReplicaSet.apps/web-") for p in remote_files(git_remote)),
               what="the ReplicaSet exported")
    files = remote_files(git_remote)
    assert not any("/Deployment.apps/" in p or "/Pod/" in p for p in files), sorted(files)
    rs = next(text for p, text in files.items() if p.startswith("shop/ReplicaSet.apps/"))
    assert "ownerReferences" not in rs
    row = next(w for w in exp.coverage().watched if w.rtype.plural == "replicasets")
    assert dict(row.orphans) == {"Deployment.apps": 1} and row.exported == 1
    assert "1 exported though controlled" in exp.coverage().summary()
    pods = next(w for w in exp.coverage().watched if w.rtype.plural == "pods")
    assert pods.exported == 0 and sum(pods.skipped.values()) >= 1 and not pods.orphans


def test_the_children_of_an_exported_kind_are_not_exported(primary, start_exporter, git_remote: Path) -> None:
    primary.api.create(_deployment("web"))
    wait_until(lambda: primary.api.list("apps/v1", "ReplicaSet", "shop"), what="the ReplicaSet made")
    exp = start_exporter(git_remote)
    wait_until(lambda: "shop/Deployment.apps/web.yaml" in remote_files(git_remote), what="the Deployment exported")
    assert not any("/ReplicaSet.apps/" in p for p in remote_files(git_remote))
    row = next(w for w in exp.coverage().watched if w.rtype.plural == "replicasets")
    assert row.exported == 0 and row.skipped["controlled"] == 1 and not row.orphans
