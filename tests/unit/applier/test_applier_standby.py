"""Standby: workloads held at standby replicas with the primary's count kept; CronJobs suspended."""

from __future__ import annotations

from kubedr.applier.standby import REPLICAS_ANNOTATION, SUSPEND_ANNOTATION, Mode, hold


def workload(kind: str = "Deployment", ns: str = "shop", replicas: int | None = 3, owned: bool = False) -> dict:
    meta: dict = {"name": "web", "namespace": ns}
    if owned:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u",
                                    "controller": True}]
    spec: dict = {"selector": {}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def test_deployment_and_statefulset_scaled_to_standby() -> None:
    for kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        obj = hold(workload(kind), Mode())
        assert obj["spec"]["replicas"] == 0
        assert obj["metadata"]["annotations"][REPLICAS_ANNOTATION] == "3"


def test_missing_replicas_means_one() -> None:
    obj = hold(workload(replicas=None), Mode())
    assert obj["metadata"]["annotations"][REPLICAS_ANNOTATION] == "1"


def test_owned_replicaset_untouched() -> None:
    assert hold(workload("ReplicaSet", owned=True), Mode())["spec"]["replicas"] == 3


def test_standby_replicas_and_namespace_override() -> None:
    mode = Mode(replicas=1, namespace_replicas={"critical": 2})
    assert hold(workload(), mode)["spec"]["replicas"] == 1
    assert hold(workload(ns="critical"), mode)["spec"]["replicas"] == 2


def test_cronjob_suspended_with_primary_setting_kept() -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "shop"},
            "spec": {"schedule": "* * * * *", "suspend": False}}
    obj = hold(cron, Mode())
    assert obj["spec"]["suspend"] is True
    assert obj["metadata"]["annotations"][SUSPEND_ANNOTATION] == "false"


def test_active_mode_and_active_namespaces_apply_as_is() -> None:
    assert hold(workload(), Mode(active=True))["spec"]["replicas"] == 3
    mode = Mode(active_namespaces={"shop"})
    assert hold(workload(), mode)["spec"]["replicas"] == 3
    assert hold(workload(ns="other"), mode)["spec"]["replicas"] == 0
    assert "shop" in mode.name


def test_other_kinds_untouched() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {}}
    assert hold(dict(cm), Mode()) == cm


def test_fingerprint_changes_with_mode() -> None:
    assert Mode().fingerprint() != Mode(active=True).fingerprint()
    assert Mode().fingerprint() != Mode(active_namespaces={"a"}).fingerprint()


def job(suspend: bool | None = None, owned: bool = False, ns: str = "shop") -> dict:
    meta: dict = {"name": "migrate", "namespace": ns}
    if owned:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u",
                                    "controller": True}]
    spec: dict = {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m"}]}}}
    if suspend is not None:
        spec["suspend"] = suspend
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def test_standalone_job_suspended_with_primary_setting_kept() -> None:
    for primary, recorded in ((None, "false"), (False, "false"), (True, "true")):
        obj = hold(job(primary), Mode())
        assert obj["spec"]["suspend"] is True
        assert obj["metadata"]["annotations"][SUSPEND_ANNOTATION] == recorded


def test_job_owned_by_a_controller_and_jobs_in_active_namespaces_untouched() -> None:
    assert "suspend" not in hold(job(owned=True), Mode())["spec"]
    assert "suspend" not in hold(job(), Mode(active_namespaces={"shop"}))["spec"]
    assert hold(job(False), Mode(active=True))["spec"]["suspend"] is False
    assert "annotations" not in hold(job(False), Mode(active=True))["metadata"]
