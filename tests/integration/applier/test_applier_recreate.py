"""Immutable fields: the applier deletes and re-creates what the primary recreated; never PVCs; --no-recreate."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.applier.conftest import Repo, apply, configmap, deployment, live, namespace, status_of


def relabel(dep: dict[str, Any], **labels: str) -> dict[str, Any]:
    """The Deployment with a new selector (and matching pod labels): what `kubectl delete; apply` leaves."""
    dep["spec"]["selector"] = {"matchLabels": labels}
    dep["spec"]["template"]["metadata"]["labels"] = dict(labels)
    return dep


def pvc(access: str = "ReadWriteOnce") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"accessModes": [access], "storageClassName": "standard",
                     "resources": {"requests": {"storage": "1Gi"}}}}


def rolebinding(role: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "readers", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}]}


def frozen(value: str) -> dict[str, Any]:
    cm = configmap("frozen", k=value)
    cm["immutable"] = True
    return cm


def service(ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": ip, "selector": {"app": "db"}, "ports": [{"port": 5432, "protocol": "TCP"}]}}


def uid(obj: dict[str, Any] | None) -> str:
    assert obj is not None
    return str(obj["metadata"]["uid"])


def failures(emu: Any) -> dict[str, str]:
    return {f["path"]: f["reason"] for f in status_of(emu)["failures"]}


def test_changed_immutable_fields_are_recreated_and_converge(secondary: Any, repo: Repo,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for o in (namespace("shop"), deployment(), frozen("v1"), rolebinding("view"), service("10.96.7.7")):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    before = {kind: uid(live(secondary, api, kind, name, "shop")) for api, kind, name in (
        ("apps/v1", "Deployment", "web"), ("v1", "ConfigMap", "frozen"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "readers"), ("v1", "Service", "db"))}

    for o in (relabel(deployment(), app="web", tier="front"), frozen("v2"), rolebinding("edit"),
              service("10.96.7.8")):
        repo.put(o)
    head = repo.commit("primary deleted and recreated them")
    capsys.readouterr()
    assert apply(secondary, repo) == 0, status_of(secondary)["failures"]
    log = capsys.readouterr().err

    web = live(secondary, "apps/v1", "Deployment", "web", "shop")
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web", "tier": "front"}}
    assert web["spec"]["replicas"] == 0 and web["metadata"]["annotations"]["kubedr.io/primary-replicas"] == "3"
    assert live(secondary, "v1", "ConfigMap", "frozen", "shop")["data"] == {"k": "v2"}
    assert live(secondary, "rbac.authorization.k8s.io/v1", "RoleBinding", "readers", "shop")["roleRef"]["name"] == \
        "edit"
    assert live(secondary, "v1", "Service", "db", "shop")["spec"]["clusterIP"] == "10.96.7.8"
    after = {kind: uid(live(secondary, api, kind, name, "shop")) for api, kind, name in (
        ("apps/v1", "Deployment", "web"), ("v1", "ConfigMap", "frozen"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "readers"), ("v1", "Service", "db"))}
    assert all(after[k] != before[k] for k in before), (before, after)
    assert "recreated apps/Deployment shop/web (immutable field changed)" in log
    assert "recreated rbac.authorization.k8s.io/RoleBinding shop/readers (immutable field changed)" in log
    st = status_of(secondary)
    assert st["fullyAppliedCommit"] == head and st["failures"] == []

    assert apply(secondary, repo) == 0  # converged: the next round has nothing to recreate
    assert uid(live(secondary, "apps/v1", "Deployment", "web", "shop")) == after["Deployment"]


def test_pvc_is_refused_by_name_and_the_rest_of_the_commit_applies(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), pvc(), configmap("settings", k="v1"), deployment()):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    claim_uid = uid(live(secondary, "v1", "PersistentVolumeClaim", "data", "shop"))

    path = repo.put(pvc("ReadWriteMany"))
    for o in (configmap("settings", k="v2"), configmap("added"), relabel(deployment(), app="web2")):
        repo.put(o)
    repo.commit("claim changed on the primary, among other changes")
    assert apply(secondary, repo) == 1

    reasons = failures(secondary)
    assert list(reasons) == [path]
    assert "never recreates a PersistentVolumeClaim" in reasons[path] and "recreate it by hand" in reasons[path]
    assert "\n" not in reasons[path]
    claim = live(secondary, "v1", "PersistentVolumeClaim", "data", "shop")
    assert uid(claim) == claim_uid and claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # never deleted
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"k": "v2"}
    assert live(secondary, "v1", "ConfigMap", "added", "shop") is not None
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["selector"]["matchLabels"] == \
        {"app": "web2"}


def test_no_recreate_leaves_it_failed_with_the_reason_then_policy_and_flag(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), deployment()):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    old = uid(live(secondary, "apps/v1", "Deployment", "web", "shop"))
    path = repo.put(relabel(deployment(), app="web", tier="front"))
    repo.commit("selector changed")

    assert apply(secondary, repo, "--no-recreate") == 1
    reason = failures(secondary)[path]
    assert "--no-recreate" in reason and "spec.selector" in reason and "field is immutable" in reason
    web = live(secondary, "apps/v1", "Deployment", "web", "shop")
    assert uid(web) == old and web["spec"]["selector"]["matchLabels"] == {"app": "web"}

    repo.write(".kubedr/policy.yaml", b"apply:\n  recreate: false\n")
    repo.commit("policy: never recreate")
    assert apply(secondary, repo) == 1  # the repo's policy turns it off
    assert "--no-recreate" in failures(secondary)[path]
    assert uid(live(secondary, "apps/v1", "Deployment", "web", "shop")) == old

    assert apply(secondary, repo, "--recreate") == 0  # the operator's flag wins over the policy
    assert uid(live(secondary, "apps/v1", "Deployment", "web", "shop")) != old
    assert status_of(secondary)["failures"] == []


def test_no_recreate_from_the_environment(secondary: Any, repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    for o in (namespace("shop"), rolebinding("view")):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    path = repo.put(rolebinding("edit"))
    repo.commit("roleRef changed")
    monkeypatch.setenv("KUBEDR_RECREATE", "false")
    assert apply(secondary, repo) == 1
    assert "cannot change roleRef" in failures(secondary)[path]
    monkeypatch.delenv("KUBEDR_RECREATE")
    assert apply(secondary, repo) == 0  # on by default; the failed path is retried
    assert live(secondary, "rbac.authorization.k8s.io/v1", "RoleBinding", "readers", "shop")["roleRef"]["name"] == \
        "edit"


def test_dry_run_only_reports_would_recreate(secondary: Any, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    for o in (namespace("shop"), deployment(), pvc()):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    old = uid(live(secondary, "apps/v1", "Deployment", "web", "shop"))
    repo.put(relabel(deployment(), app="web", tier="front"))
    repo.put(pvc("ReadWriteMany"))
    repo.commit("selector and claim changed")
    capsys.readouterr()
    assert apply(secondary, repo, "--dry-run") == 1  # the claim would fail
    out = capsys.readouterr().out
    assert "would recreate apps/Deployment shop/web (immutable field changed)" in out
    assert "would fail shop/PersistentVolumeClaim/data.yaml: immutable field changed; kubedr never recreates" in out
    assert uid(live(secondary, "apps/v1", "Deployment", "web", "shop")) == old


def test_running_job_recreated_with_its_old_pods_gone(secondary: Any, repo: Repo) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "shop"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "m", "image": "migrate:1"}]}}}}
    for o in (namespace("shop"), job):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo, "--active") == 0  # active: the Job runs, so its template is immutable
    old = uid(live(secondary, "batch/v1", "Job", "migrate", "shop"))

    def pods_of(job_uid: str) -> list[dict[str, Any]]:
        return [p for p in secondary.api.list("v1", "Pod", "shop")
                if any(r.get("uid") == job_uid for r in p["metadata"].get("ownerReferences") or [])]

    wait_until(lambda: pods_of(old), what="the first run's pod")
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "migrate:2"
    repo.put(job)
    repo.commit("new migration image")
    assert apply(secondary, repo) == 0
    new = live(secondary, "batch/v1", "Job", "migrate", "shop")
    assert uid(new) != old and new["spec"]["template"]["spec"]["containers"][0]["image"] == "migrate:2"
    assert pods_of(old) == []


HOLD = "kubedr.test/hold"


def hold_deletion(emu: Any) -> None:
    """A finalizer on the live Deployment, as a controller or a backup tool may keep one."""
    emu.api.patch("apps/v1", "Deployment", "web", {"metadata": {"finalizers": [HOLD]}}, "merge", namespace="shop")


def release(emu: Any) -> None:
    emu.api.patch("apps/v1", "Deployment", "web", {"metadata": {"finalizers": None}}, "merge", namespace="shop")


def terminating(emu: Any) -> bool:
    obj = live(emu, "apps/v1", "Deployment", "web", "shop")
    return bool(obj and obj["metadata"].get("deletionTimestamp"))


def test_recreate_waits_until_the_old_object_is_really_gone(secondary: Any, repo: Repo) -> None:
    for o in (namespace("shop"), deployment()):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    old = uid(live(secondary, "apps/v1", "Deployment", "web", "shop"))
    hold_deletion(secondary)
    repo.put(relabel(deployment(), app="web", tier="front"))
    repo.commit("selector changed")

    def finalizer_done_late() -> None:
        wait_until(lambda: terminating(secondary), what="the old Deployment to be terminating")
        release(secondary)

    helper = threading.Thread(target=finalizer_done_late)
    helper.start()
    try:
        assert apply(secondary, repo) == 0, status_of(secondary)["failures"]
    finally:
        helper.join()
    web = live(secondary, "apps/v1", "Deployment", "web", "shop")
    assert uid(web) != old and not web["metadata"].get("deletionTimestamp")
    assert web["spec"]["selector"]["matchLabels"] == {"app": "web", "tier": "front"}


def test_recreate_gives_up_after_the_timeout_and_finishes_next_round(secondary: Any, repo: Repo,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for o in (namespace("shop"), deployment()):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    hold_deletion(secondary)
    path = repo.put(relabel(deployment(), app="web", tier="front"))
    repo.commit("selector changed")
    monkeypatch.setattr("kubedr.applier.recreate.RECREATE_TIMEOUT", 0.3)
    assert apply(secondary, repo) == 1
    reason = failures(secondary)[path]
    assert "still there after 0.3s" in reason and HOLD in reason
    assert terminating(secondary)

    release(secondary)
    assert apply(secondary, repo) == 0
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["selector"]["matchLabels"] == \
        {"app": "web", "tier": "front"}


def test_object_kubedr_did_not_create_is_not_recreated(secondary: Any, repo: Repo) -> None:
    secondary.api.create(namespace("shop"), manager="kubectl")
    secondary.api.create(relabel(deployment(), app="hand-made"), manager="kubectl")
    hand = uid(live(secondary, "apps/v1", "Deployment", "web", "shop"))
    path = repo.put(deployment())
    repo.commit("web")
    assert apply(secondary, repo) == 1
    assert "not created by kubedr" in failures(secondary)[path]
    assert uid(live(secondary, "apps/v1", "Deployment", "web", "shop")) == hand


def test_primary_recreates_exporter_commits_applier_recreates(primary: Any, secondary: Any, repo: Repo,
                                                              tmp_path: Any) -> None:
    from kubedr.commands.cli import main

    def export() -> None:
        assert main(["export", "--once", "--kubeconfig", primary.kubeconfig_path, "--namespaces", "shop",
                     "--repo", str(repo.remote), "--workdir", str(tmp_path / "export-work")]) == 0

    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "shop"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "m", "image": "migrate:1"}]}}}}
    for o in (namespace("shop"), deployment(), pvc(), configmap("settings", k="v1"), job):
        primary.api.create(o)
    export()
    assert apply(secondary, repo) == 0, status_of(secondary)["failures"]
    old = uid(live(secondary, "apps/v1", "Deployment", "web", "shop"))
    assert live(secondary, "batch/v1", "Job", "migrate", "shop")["spec"]["suspend"] is True

    # on the primary: kubectl delete + kubectl apply with the changed immutable fields
    primary.api.delete("apps/v1", "Deployment", "web", "shop")
    primary.api.create(relabel(deployment(), app="web", tier="front"))
    primary.api.delete("v1", "PersistentVolumeClaim", "data", "shop")
    primary.api.create(pvc("ReadWriteMany"))
    primary.api.patch("v1", "ConfigMap", "settings", {"data": {"k": "v2"}}, "merge", namespace="shop")
    export()
    assert apply(secondary, repo) == 1
    web = live(secondary, "apps/v1", "Deployment", "web", "shop")
    assert uid(web) != old and web["spec"]["selector"]["matchLabels"] == {"app": "web", "tier": "front"}
    assert list(failures(secondary)) == ["shop/PersistentVolumeClaim/data.yaml"]
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"k": "v2"}


def test_diff_marks_what_would_be_recreated(secondary: Any, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    from kubedr.commands.cli import main

    for o in (namespace("shop"), rolebinding("view")):
        repo.put(o)
    repo.commit("seed")
    assert apply(secondary, repo) == 0
    repo.put(rolebinding("edit"))
    repo.commit("roleRef changed")
    capsys.readouterr()
    assert main(["diff", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(repo.remote)]) == 1
    out = capsys.readouterr().out
    assert "# would recreate rbac.authorization.k8s.io/RoleBinding shop/readers (immutable field changed)" in out
    assert "-  name: view" in out and "+  name: edit" in out
    assert live(secondary, "rbac.authorization.k8s.io/v1", "RoleBinding", "readers", "shop")["roleRef"]["name"] == \
        "view"
