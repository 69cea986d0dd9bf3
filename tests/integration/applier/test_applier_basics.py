"""The applier against an emulated secondary: apply, standby, record, prune and its guard, bad manifests."""

from __future__ import annotations

from typing import Any

import pytest

from kubedr import metrics
from tests.integration.applier.conftest import Repo, apply, configmap, deployment, live, namespace, status_of


def _deleted() -> float:
    """kubedr_applier_objects_total{action="delete"} of this process (the rounds run in it)."""
    return metrics.APPLY_OBJECTS.labels("delete")._value.get()


def seed(repo: Repo, n: int = 6) -> list[dict[str, Any]]:
    objs = [namespace("shop")] + [configmap(f"cm-{i}") for i in range(n)] + [deployment()]
    for o in objs:
        repo.put(o)
    return objs


def test_first_apply_in_order_standby_and_recorded(secondary: Any, repo: Repo) -> None:
    seed(repo)
    sha = repo.commit("seed")
    assert apply(secondary, repo) == 0
    assert live(secondary, "v1", "ConfigMap", "cm-3", "shop")["data"] == {"k": "cm-3"}
    dep = live(secondary, "apps/v1", "Deployment", "web", "shop")
    assert dep["spec"]["replicas"] == 0
    assert dep["metadata"]["annotations"]["kubedr.io/primary-replicas"] == "3"
    assert dep["metadata"]["labels"]["kubedr.io/managed"] == "true"
    st = status_of(secondary)
    assert st["fullyAppliedCommit"] == sha and st["failures"] == [] and st["mode"] == "standby"
    assert 0 <= st["lagSeconds"] < 60
    managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
    assert "kubedr" in managers


def test_deletes_mirrored_with_prune_and_guard_trips_on_emptied_repo(secondary: Any, repo: Repo,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    objs = seed(repo)
    repo.commit("seed")
    assert apply(secondary, repo, "--prune") == 0
    repo.remove(objs[1])
    repo.commit("delete cm-0")
    capfd.readouterr()
    assert apply(secondary, repo, "--prune") == 0
    assert ": 0 applied, 1 deleted, 0 failed" in capfd.readouterr().err  # the round's report line
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop") is None
    assert live(secondary, "v1", "ConfigMap", "cm-1", "shop") is not None

    for o in objs[2:]:
        repo.remove(o)
    repo.remove(objs[0])
    emptied = repo.commit("oops: everything deleted")
    refused, deleted = metrics.APPLY_PRUNE_REFUSED._value.get(), _deleted()
    assert apply(secondary, repo, "--prune") == 1
    assert metrics.APPLY_PRUNE_REFUSED._value.get() == refused + 1 and _deleted() == deleted
    assert live(secondary, "v1", "ConfigMap", "cm-1", "shop") is not None
    st = status_of(secondary)
    assert st["fullyAppliedCommit"] != emptied
    assert any("prune refused" in f["reason"] and "--force-prune" in f["reason"] for f in st["failures"])

    assert apply(secondary, repo, "--prune", "--force-prune") == 0
    assert live(secondary, "v1", "ConfigMap", "cm-1", "shop") is None
    assert _deleted() == deleted + len(objs) - 1  # /metrics counts every deletion (cm-0 went before)
    assert status_of(secondary)["fullyAppliedCommit"] == emptied


def test_prune_never_deletes_what_kubedr_did_not_create(secondary: Any, repo: Repo) -> None:
    seed(repo, 8)
    repo.commit("seed")
    assert apply(secondary, repo, "--prune") == 0
    secondary.api.create(configmap("hand-made"), manager="kubectl")
    # someone took cm-1 over by hand on the secondary: it no longer carries kubedr's label
    secondary.api.patch("v1", "ConfigMap", "cm-1", {"metadata": {"labels": {"kubedr.io/managed": None}}},
                        "merge", namespace="shop")
    repo.remove(configmap("cm-0"))
    repo.remove(configmap("cm-1"))
    repo.commit("delete cm-0 and cm-1")
    assert apply(secondary, repo, "--prune") == 0
    assert live(secondary, "v1", "ConfigMap", "hand-made", "shop") is not None
    assert live(secondary, "v1", "ConfigMap", "cm-1", "shop") is not None
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop") is None


def test_bad_manifests_reported_and_skipped_rest_applies_then_retried(secondary: Any, repo: Repo) -> None:
    seed(repo)
    repo.write("shop/ConfigMap/broken.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n")
    bad = deployment("bad")
    bad["spec"]["replicas"] = "three"
    bad_path = repo.put(bad)
    repo.commit("seed with two bad files")
    assert apply(secondary, repo) == 1
    assert live(secondary, "v1", "ConfigMap", "cm-5", "shop") is not None
    assert live(secondary, "apps/v1", "Deployment", "web", "shop") is not None
    st = status_of(secondary)
    reasons = {f["path"]: f["reason"] for f in st["failures"]}
    assert set(reasons) == {"shop/ConfigMap/broken.yaml", bad_path}
    assert "invalid YAML" in reasons["shop/ConfigMap/broken.yaml"]
    assert "spec.replicas" in reasons[bad_path]
    assert st["fullyAppliedCommit"] == ""

    repo.write("shop/ConfigMap/broken.yaml",
               b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken, namespace: shop}\n")
    bad["spec"]["replicas"] = 2
    repo.put(bad)
    fixed = repo.commit("fix")
    assert apply(secondary, repo) == 0
    assert live(secondary, "v1", "ConfigMap", "broken", "shop") is not None
    assert status_of(secondary)["fullyAppliedCommit"] == fixed


def test_rejected_by_api_server_is_skipped(secondary: Any, repo: Repo) -> None:
    seed(repo)
    repo.put(configmap("orphan", ns="no-such-namespace"))
    repo.commit("object in a namespace that does not exist")
    assert apply(secondary, repo) == 1
    st = status_of(secondary)
    assert [f["path"] for f in st["failures"]] == ["no-such-namespace/ConfigMap/orphan.yaml"]
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop") is not None


def test_dry_run_changes_nothing(secondary: Any, repo: Repo, capsys: Any) -> None:
    seed(repo)
    repo.commit("seed")
    assert apply(secondary, repo, "--dry-run") == 0
    assert live(secondary, "v1", "Namespace", "shop") is None
    assert not secondary.api.list("v1", "ConfigMap", "kubedr-system"), "a dry run records nothing"
    assert "would apply shop/ConfigMap/cm-0.yaml" in capsys.readouterr().out


def test_dry_run_with_prune_lists_deletions_and_changes_nothing(secondary: Any, repo: Repo, capsys: Any) -> None:
    seed(repo)
    repo.commit("seed")
    assert apply(secondary, repo, "--prune") == 0
    before = status_of(secondary)
    repo.remove(configmap("cm-0"))
    repo.put(configmap("cm-new"))
    repo.commit("pending")
    capsys.readouterr()
    assert apply(secondary, repo, "--prune", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would apply shop/ConfigMap/cm-new.yaml" in out and "would delete shop/ConfigMap/cm-0.yaml" in out
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop") is not None
    assert live(secondary, "v1", "ConfigMap", "cm-new", "shop") is None
    assert status_of(secondary)["commit"] == before["commit"]

    from kubedr.commands.cli import main
    assert main(["diff", "--prune", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(repo.remote)]) == 1
    out = capsys.readouterr().out
    assert "--- live/shop/ConfigMap/cm-0.yaml" in out and "+++ repo/shop/ConfigMap/cm-new.yaml" in out
    assert "# prune ConfigMap shop/cm-0: kubedr applied it and its file left the repo (--prune)\n" in out
