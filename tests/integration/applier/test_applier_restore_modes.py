"""Restore to a past commit, standby and switchover, the namespace and image maps, diff, CRDs first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubedr.applier.cli import run as _unused  # noqa: F401  (the module the CLI routes to imports cleanly)
from kubedr.applier.sources import derive
from kubedr.commands.cli import main
from tests.integration.applier.conftest import (
    Repo,
    apply,
    configmap,
    deployment,
    git,
    live,
    namespace,
    status_of,
)


def test_restore_older_commit_brings_back_deleted_and_removes_newer(secondary: Any, repo: Repo) -> None:
    for o in [namespace("shop")] + [configmap(f"cm-{i}") for i in range(6)]:
        repo.put(o)
    old = repo.commit("v1", date="2026-01-01T10:00:00Z")
    repo.remove(configmap("cm-0"))
    repo.put(configmap("newer"))
    repo.put(configmap("cm-1", k="changed"))
    repo.commit("v2", date="2026-01-02T10:00:00Z")
    assert apply(secondary, repo, "--prune") == 0
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop") is None
    assert live(secondary, "v1", "ConfigMap", "newer", "shop") is not None

    assert apply(secondary, repo, "--prune", "--revision", old) == 0
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop") is not None
    assert live(secondary, "v1", "ConfigMap", "newer", "shop") is None
    assert live(secondary, "v1", "ConfigMap", "cm-1", "shop")["data"] == {"k": "cm-1"}
    assert status_of(secondary)["fullyAppliedCommit"] == old

    assert apply(secondary, repo, "--prune") == 0  # back to the head
    assert live(secondary, "v1", "ConfigMap", "newer", "shop") is not None
    assert apply(secondary, repo, "--at", "2026-01-01T12:00:00Z") == 0  # a restore prunes by itself
    assert live(secondary, "v1", "ConfigMap", "newer", "shop") is None
    assert status_of(secondary)["fullyAppliedCommit"] == old


def test_standby_then_switchover_then_commits_respect_active(secondary: Any, repo: Repo) -> None:
    sts = deployment("db", replicas=2)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "r", "image": "busybox"}]}}}}}}
    for o in (namespace("shop"), namespace("other"), deployment(), sts, cron, deployment("api", ns="other")):
        repo.put(o)
    repo.commit("workloads")
    assert apply(secondary, repo, "--standby-replicas", "0", "--namespace-standby-replicas", "other=1") == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 0
    assert live(secondary, "apps/v1", "StatefulSet", "db", "shop")["spec"]["replicas"] == 0
    assert live(secondary, "apps/v1", "Deployment", "api", "other")["spec"]["replicas"] == 1
    assert live(secondary, "batch/v1", "CronJob", "report", "shop")["spec"]["suspend"] is True

    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path, "--namespaces", "shop"]) == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 3
    assert live(secondary, "apps/v1", "StatefulSet", "db", "shop")["spec"]["replicas"] == 2
    assert live(secondary, "batch/v1", "CronJob", "report", "shop")["spec"]["suspend"] is False
    assert live(secondary, "apps/v1", "Deployment", "api", "other")["spec"]["replicas"] == 1
    st = status_of(secondary)
    assert st["mode"] == "standby" and st["activeNamespaces"] == ["shop"]

    repo.put(deployment(image="nginx:1.28"))
    repo.put(deployment("api", ns="other", image="nginx:1.28"))
    repo.commit("new image")
    assert apply(secondary, repo, "--namespace-standby-replicas", "other=1") == 0
    web = live(secondary, "apps/v1", "Deployment", "web", "shop")
    assert web["spec"]["replicas"] == 3
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert live(secondary, "apps/v1", "Deployment", "api", "other")["spec"]["replicas"] == 1

    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path]) == 0
    assert live(secondary, "apps/v1", "Deployment", "api", "other")["spec"]["replicas"] == 3
    assert status_of(secondary)["mode"] == "active"


def test_back_to_standby_right_after_a_switchover(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), deployment()):
        repo.put(o)
    repo.commit("workloads")
    assert apply(secondary, repo, "--standby") == 0
    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path]) == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 3
    # no new commit, same settings as the last round: the workloads still go down again
    assert apply(secondary, repo, "--standby") == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 0
    assert status_of(secondary)["mode"] == "standby"


def test_namespace_and_image_maps(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), configmap("settings"),
              deployment(image="registry.primary.example.com/shop/web:1.0")):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo, "--namespace-map", "shop=shop-dr",
                 "--image-map", "registry.primary.example.com=registry.dr.example.com") == 0
    assert live(secondary, "v1", "Namespace", "shop-dr") is not None
    assert live(secondary, "v1", "Namespace", "shop") is None
    assert live(secondary, "v1", "ConfigMap", "settings", "shop-dr") is not None
    web = live(secondary, "apps/v1", "Deployment", "web", "shop-dr")
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.dr.example.com/shop/web:1.0"


def test_diff_shows_the_pending_change(secondary: Any, repo: Repo, capsys: Any) -> None:
    for o in (namespace("shop"), configmap("settings", mode="blue"), configmap("same")):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    capsys.readouterr()
    args = ["diff", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(repo.remote)]
    assert main(args) == 0
    assert capsys.readouterr().out == ""
    repo.put(configmap("settings", mode="green"))
    repo.put(configmap("brand-new"))
    repo.commit("pending")
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "--- live/shop/ConfigMap/settings.yaml" in out and "+++ repo/shop/ConfigMap/settings.yaml" in out
    assert "-  mode: blue" in out and "+  mode: green" in out
    assert "+++ repo/shop/ConfigMap/brand-new.yaml" in out
    assert "same.yaml" not in out
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"mode": "blue"}


def test_diff_refuses_to_plan_against_another_repos_records(secondary: Any, repo: Repo, tmp_path: Path,
                                                            capsys: Any) -> None:
    """A secondary that applied one repo, diffed against another: not a plan to delete all it holds."""
    for o in (namespace("shop"), configmap("settings"), configmap("other")):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo, "--prune") == 0
    elsewhere = tmp_path / "elsewhere.git"
    git("init", "--bare", "-q", "-b", "main", str(elsewhere), cwd=tmp_path)
    other = Repo(elsewhere, tmp_path / "elsewhere")
    other.put(namespace("shop"))
    other.put(configmap("settings"))
    other.commit("another history")
    capsys.readouterr()
    args = ["diff", "--prune", "--kubeconfig", secondary.kubeconfig_path, "--workdir", str(tmp_path / "mirror")]
    source = derive(str(repo.remote), "main")
    assert main([*args, "--repo", str(elsewhere), "--source", source]) == 2  # the source re-pointed
    out = capsys.readouterr()
    [line] = [ln for ln in out.err.splitlines() if " ERROR " in ln]
    assert out.out == "" and f"this cluster's records are of {repo.remote} (main) at " in line, out.err
    assert "refusing to plan" in line
    # another source: what the first one applied is not its to change, let alone to prune
    assert main([*args, "--repo", str(elsewhere)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and f"_cluster/Namespace/shop.yaml: refused: Namespace shop is owned by source {source}" in out.err
    # the same repo under another name is the same history: planned as usual, its prune labelled with the reason
    repo.remove(configmap("other"))
    repo.commit("other goes")
    assert main([*args, "--repo", f"file://{repo.remote}"]) == 1
    out = capsys.readouterr().out
    assert "# prune ConfigMap shop/other: kubedr applied it and its file left the repo (--prune)" in out
    assert "# apply would refuse these 1 prunes: prune refused: would delete 1 of 3 objects (33%" in out


def test_crd_applied_and_established_before_its_custom_resources(secondary: Any, repo: Repo) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"},
              "spec": {"size": 3}}
    for o in (namespace("shop"), crd, widget):
        repo.put(o)
    repo.commit("crd and a widget")
    assert apply(secondary, repo) == 0
    assert live(secondary, "example.com/v1", "Widget", "w1", "shop")["spec"] == {"size": 3}


def test_repo_policy_supplies_defaults_flags_override(secondary: Any, repo: Repo) -> None:
    repo.write(".kubedr/policy.yaml", b"apply:\n  prune: true\n  prune_max_objects: 1\n"
                                      b"  namespace_map: {shop: shop-dr}\n  standby_replicas: 2\n")
    for o in [namespace("shop"), deployment()] + [configmap(f"cm-{i}") for i in range(8)]:
        repo.put(o)
    repo.commit("seed with policy")
    assert apply(secondary, repo) == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop-dr")["spec"]["replicas"] == 2
    repo.remove(configmap("cm-0"))
    repo.remove(configmap("cm-1"))
    repo.commit("two deletions")
    assert apply(secondary, repo) == 1  # the policy prunes, and its guard allows one deletion per run
    assert "more than 1" in status_of(secondary)["failures"][0]["reason"]
    assert apply(secondary, repo, "--prune-max-objects", "5") == 0
    assert live(secondary, "v1", "ConfigMap", "cm-0", "shop-dr") is None
    repo.remove(configmap("cm-2"))
    repo.commit("one more")
    assert apply(secondary, repo, "--no-prune") == 0
    assert live(secondary, "v1", "ConfigMap", "cm-2", "shop-dr") is not None


def test_active_flag_is_recorded_and_followed_by_later_rounds(secondary: Any, repo: Repo) -> None:
    repo.put(namespace("shop"))
    repo.put(deployment())
    repo.commit("one")
    assert apply(secondary, repo, "--active") == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 3
    assert status_of(secondary)["mode"] == "active"
    repo.put(deployment("api"))
    repo.commit("two")
    assert apply(secondary, repo) == 0  # no flag: the recorded mode holds
    assert live(secondary, "apps/v1", "Deployment", "api", "shop")["spec"]["replicas"] == 3
    assert apply(secondary, repo, "--standby") == 0  # failback: everything re-applied at standby
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 0
    assert live(secondary, "apps/v1", "Deployment", "api", "shop")["spec"]["replicas"] == 0
