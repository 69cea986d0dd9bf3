"""Drift on the secondary: a hand edit healed (or reported), strays reported, controllers' fields left alone,
a fight with another writer reported without a hot loop. A real `kubedr apply` daemon and the real kubectl."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

from kubedr.applier.sources import derive
from tests.conftest import wait_until
from tests.integration.applier.conftest import (
    Repo,
    applied,
    apply,
    configmap,
    deployment,
    live,
    namespace,
    status,
    status_of,
)


def kubectl_run(kubectl: str, secondary: Any, *args: str) -> str:
    proc = subprocess.run([kubectl, "--kubeconfig", secondary.kubeconfig_path, *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def data_of(secondary: Any, name: str) -> dict[str, str] | None:
    obj = live(secondary, "v1", "ConfigMap", name, "shop")
    return None if obj is None else obj.get("data")


def test_hand_edit_healed_and_stray_reported_not_deleted(secondary: Any, repo: Repo, daemon: Any,
                                                         kubectl: str) -> None:
    for o in (namespace("shop"), configmap("settings", color="blue"), deployment("web", replicas=3)):
        repo.put(o)
    repo.commit("shop")
    d = daemon(secondary, repo)
    applied(secondary, repo, d)
    wait_until(lambda: status_of(secondary).get("heal"), timeout=15, what="the drift watch to report")

    kubectl_run(kubectl, secondary, "-n", "shop", "patch", "configmap", "settings", "--type", "merge",
                "-p", '{"data":{"color":"red"}}')
    kubectl_run(kubectl, secondary, "-n", "shop", "create", "configmap", "stray", "--from-literal=a=b")
    wait_until(lambda: data_of(secondary, "settings") == {"color": "blue"}, timeout=5, interval=0.05,
               what="the hand edit to be healed within 5 s")
    assert "healed ConfigMap shop/settings" in d.text()
    # standby replicas kubedr sets itself are no drift: still held at 0, never "healed" to 3
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 0
    assert "healed Deployment" not in d.text()

    def stray_reported() -> Any:
        return [s for s in status_of(secondary)["strays"] if s["object"] == "ConfigMap shop/stray"]
    wait_until(stray_reported, timeout=15, what=f"the stray to be reported; log:\n{d.text()}")
    assert data_of(secondary, "stray") == {"a": "b"}  # reported, never deleted
    assert "stray ConfigMap shop/stray" in d.text()
    code, row = status(secondary, "--max-drift", "0")
    assert code == 0 and row["drift"] == "0" and "stray" in row["detail"]


def test_heal_off_reports_the_field_and_status_fails_max_drift(secondary: Any, repo: Repo, daemon: Any,
                                                               kubectl: str) -> None:
    for o in (namespace("shop"), configmap("settings", color="blue", size="m")):
        repo.put(o)
    repo.commit("shop")
    d = daemon(secondary, repo, "--no-heal")
    applied(secondary, repo, d)
    kubectl_run(kubectl, secondary, "-n", "shop", "patch", "configmap", "settings", "--type", "merge",
                "-p", '{"data":{"size":"xl"}}')

    def drifted() -> Any:
        return status_of(secondary)["drift"]
    found = wait_until(drifted, timeout=10, what=f"the drift to be reported; log:\n{d.text()}")
    assert found[0]["object"] == "ConfigMap shop/settings" and found[0]["fields"] == ["data.size"]
    assert "kubectl-patch" in found[0]["writers"]
    assert "drift ConfigMap shop/settings (shop/ConfigMap/settings.yaml): data.size" in d.text()
    code, row = status(secondary, "--max-drift", "0")
    assert code == 1 and row["drift"] == "1" and row["state"].startswith("DRIFT")
    assert "in sync" not in row["detail"]
    assert data_of(secondary, "settings") == {"color": "blue", "size": "xl"}  # reported only

    # the primary changes the object: applying the new version ends the drift
    repo.put(configmap("settings", color="green", size="m"))
    repo.commit("green")
    wait_until(lambda: not drifted(), timeout=15, what="the drift to clear after the next apply")
    assert status(secondary, "--max-drift", "0")[0] == 0


def test_controllers_fields_are_not_drift(secondary: Any, repo: Repo, daemon: Any, kubectl: str) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}  # targetPort, type, ... defaulted
    for o in (namespace("shop"), deployment("web", replicas=2), svc):
        repo.put(o)
    repo.commit("shop")
    assert apply(secondary, repo, "--active") == 0  # the daemon then starts with nothing to apply
    d = daemon(secondary, repo)
    wait_until(lambda: status_of(secondary).get("heal") == "off (active)", timeout=15,
               what=f"the drift watch to follow the recorded commit; log:\n{d.text()}")
    wait_until(lambda: (live(secondary, "apps/v1", "Deployment", "web", "shop").get("status") or {}).get("replicas")
               == 2, timeout=10, what="the Deployment controller to write status")
    # the HorizontalPodAutoscaler scales through the scale subresource, as kube-controller-manager
    secondary.api.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 5}}, "merge", namespace="shop",
                        manager="kube-controller-manager", subresource="scale")
    wait_until(lambda: live(secondary, "apps/v1", "Deployment", "web", "shop")["status"].get("replicas") == 5,
               timeout=10, what="the scale-up")
    # then a real edit of the same object (heal is off while active): reported after the scale was seen
    kubectl_run(kubectl, secondary, "-n", "shop", "annotate", "deployment", "web", "kubedr.io/path-")

    def drift() -> Any:
        return status_of(secondary)["drift"]
    found = wait_until(drift, timeout=10, what=f"the annotation removal to be reported; log:\n{d.text()}")
    assert [(x["object"], x["fields"]) for x in found] == [
        ("apps/Deployment shop/web", ["metadata.annotations.kubedr.io/path"])]  # no replicas, status, defaults
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 5
    assert "healed" not in d.text()


def test_a_fight_is_reported_without_a_hot_loop(secondary: Any, repo: Repo, daemon: Any) -> None:
    for o in (namespace("shop"), configmap("settings", color="blue")):
        repo.put(o)
    repo.commit("shop")
    d = daemon(secondary, repo)
    applied(secondary, repo, d)
    stop = threading.Event()

    def fighter() -> None:  # a misbehaving controller: rewrites the field every 100 ms
        while not stop.wait(0.1):
            secondary.api.patch("v1", "ConfigMap", "settings", {"data": {"color": "red"}}, "merge",
                                namespace="shop", manager="fighter")

    t = threading.Thread(target=fighter, daemon=True)
    t.start()
    try:
        wait_until(lambda: d.text().count("healed ConfigMap shop/settings") >= 3, timeout=15,
                   what=f"a few heals; log:\n{d.text()}")
        before = d.text().count("healed ConfigMap shop/settings")
        stop.wait(6.0)  # the window whose heals are counted (time is what is measured here)
        during = d.text().count("healed ConfigMap shop/settings") - before
        drift = status_of(secondary)["drift"]
    finally:
        stop.set()
        t.join(5)
    # backoff 1, 2, 4 s capped at the 4 s interval: at most 3 heals in 6 s, where a hot loop would make 60
    assert 1 <= during <= 3, d.text()
    assert "keeps coming back" in d.text()
    assert drift and drift[0]["writers"] == ["fighter"] and drift[0]["heals"] >= 3


def test_switchover_is_not_drift_and_metrics_count_drift(secondary: Any, repo: Repo, daemon: Any,
                                                         kubectl: str) -> None:
    import urllib.request

    from kubedr.commands.cli import main
    from tests.conftest import free_port

    for o in (namespace("shop"), deployment("web", replicas=3), configmap("settings", color="blue")):
        repo.put(o)
    repo.commit("shop")
    port = free_port()
    d = daemon(secondary, repo, "--metrics-listen", f"127.0.0.1:{port}")
    applied(secondary, repo, d)
    wait_until(lambda: status_of(secondary).get("heal") == "on", timeout=15, what="the drift watch")

    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path]) == 0
    wait_until(lambda: status_of(secondary).get("heal") == "off (active)", timeout=15,
               what=f"the next round in active mode; log:\n{d.text()}")
    assert live(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 3
    assert "healed" not in d.text() and "drift apps/Deployment" not in d.text()

    def metric(name: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))
    assert metric("kubedr_applier_drifted_objects") == 0
    kubectl_run(kubectl, secondary, "-n", "shop", "patch", "configmap", "settings", "--type", "merge",
                "-p", '{"data":{"color":"red"}}')  # active: reported, not healed (no --heal given)
    wait_until(lambda: metric("kubedr_applier_drifted_objects") == 1, timeout=10, what="the drift gauge")
    assert metric("kubedr_applier_drift_detected_total") >= 1 and metric("kubedr_applier_heals_total") == 0
    assert data_of(secondary, "settings") == {"color": "red"}


def test_a_restart_never_heals_objects_the_repo_deleted_meanwhile(secondary: Any, repo: Repo, daemon: Any) -> None:
    """Applier stopped; 300 ConfigMaps deleted on the primary (their files left the repo) and on the secondary;
    restarted with --prune. The emulator holds its first round back (its first read, the role record, answers
    late), so the drift watch is up first: it must not heal towards the last recorded commit."""
    ghosts = [f"ghost-{i:03}" for i in range(300)]
    for obj in (namespace("shop"), configmap("keep"), *(configmap(f"stay-{i}") for i in range(5)),
                *(configmap(g) for g in ghosts)):
        repo.put(obj)
    repo.commit("300 ghosts to be")
    assert apply(secondary, repo, "--prune", "--no-validate") == 0
    for g in ghosts:
        repo.remove(configmap(g))
        secondary.api.delete("v1", "ConfigMap", g, "shop")
    repo.remove(configmap("keep"))
    head = repo.commit("the ghosts and keep deleted on the primary")

    role_record = f"kubedr-role.{derive(str(repo.remote), 'main')}"
    secondary.delay("GET", f"/api/v1/namespaces/kubedr-system/configmaps/{role_record}", 6.0)
    d = daemon(secondary, repo, "--prune", "--no-validate")
    applied(secondary, repo, d, head)
    assert not [g for g in ghosts if live(secondary, "v1", "ConfigMap", g, "shop")], d.text()
    assert live(secondary, "v1", "ConfigMap", "keep", "shop") is None, d.text()  # pruned: no ghost counted
    assert "healed" not in d.text() and "prune refused" not in d.text()
    wait_until(lambda: status_of(secondary).get("driftWatched") == 6, timeout=20,
               what=f"the drift watch to follow the applied head; log:\n{d.text()}")
