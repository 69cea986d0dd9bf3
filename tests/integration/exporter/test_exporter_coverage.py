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
