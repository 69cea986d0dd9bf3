"""Readiness rules (kstatus) and the causes of a workload that is not Available, each on the fields a real
cluster writes: the v1.24 captures in tests/fixtures/defaults (a cluster without nodes: nothing runs) and the
statuses its controllers write once the Pods run."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubedr.applier import readiness
from kubedr.applier.readiness import WHY_NOT, Cause, Clue, verdict, why_not
from tests.conftest import FIXTURES


def capture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "defaults" / name).read_text()))


def test_captured_workloads_of_a_cluster_without_nodes() -> None:
    assert verdict(capture("deployment-probes.json")) == readiness.Verdict(False, "Available: 0/1")
    assert verdict(capture("statefulset-db.json")) == readiness.Verdict(False, "Ready: 0/1")
    assert verdict(capture("daemonset-agent.json")).available  # desiredNumberScheduled 0: nothing to run


def _deployment(want: int, **status: Any) -> dict[str, Any]:
    d = capture("deployment-probes.json")
    d["spec"]["replicas"] = want
    d["status"] = {"observedGeneration": 1, **status}
    return d


def _conditions(available: str, progressing_reason: str) -> list[dict[str, str]]:
    return [{"type": "Available", "status": available, "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": progressing_reason}]


def test_deployment_is_available_once_its_new_replicaset_has_progressed() -> None:
    up = dict(replicas=3, updatedReplicas=3, readyReplicas=3, availableReplicas=3)
    assert verdict(_deployment(3, **up, conditions=_conditions("True", "NewReplicaSetAvailable"))).available
    assert verdict(_deployment(3, **up, conditions=_conditions("True", "ReplicaSetUpdated"))).message == \
        "ReplicaSet not Available"
    assert verdict(_deployment(3, replicas=3, updatedReplicas=3, readyReplicas=1, availableReplicas=1,
                               conditions=_conditions("False", "ReplicaSetUpdated"))).message == "Available: 1/3"
    stalled = _deployment(3, conditions=[{"type": "Progressing", "status": "False",
                                          "reason": "ProgressDeadlineExceeded"}])
    assert verdict(stalled) == readiness.Verdict(False, "progress deadline exceeded", failed=True)
    behind = _deployment(3, **up, conditions=_conditions("True", "NewReplicaSetAvailable"))
    behind["metadata"]["generation"] = 2
    assert verdict(behind).message == "generation 2 not observed yet (observedGeneration 1)"
    assert verdict(_deployment(0, conditions=_conditions("True", "NewReplicaSetAvailable"))).available


def test_statefulset_replicaset_and_daemonset_rules() -> None:
    sts = capture("statefulset-db.json")
    sts["status"].update(readyReplicas=1, availableReplicas=1)
    assert verdict(sts).available
    assert sts["spec"]["updateStrategy"]["rollingUpdate"] == {"partition": 0}  # defaulted: a partitioned rollout
    sts["status"]["updatedReplicas"] = 0
    assert verdict(sts).message == "Updated: 0/1"
    del sts["spec"]["updateStrategy"]["rollingUpdate"]
    sts["status"].update(updatedReplicas=1, updateRevision="db-new")
    assert verdict(sts).message == "waiting for the update revision to become current"
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "generation": 1},
          "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "replicas": 2, "fullyLabeledReplicas": 2,
                                              "readyReplicas": 2, "availableReplicas": 2}}
    assert verdict(rs).available
    rs["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]
    assert verdict(rs).message == "ReplicaFailure: cannot create Pods"
    ds = capture("daemonset-agent.json")
    ds["status"].update(desiredNumberScheduled=3, currentNumberScheduled=3, updatedNumberScheduled=3,
                        numberAvailable=2, numberReady=2)
    assert verdict(ds).message == "Available: 2/3"
    del ds["status"]["observedGeneration"]
    assert not verdict(ds).available


def test_custom_resources_by_the_generic_rules() -> None:
    cr = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "generation": 3}, "spec": {}}
    assert verdict(cr).available  # no status at all
    cr["status"] = {"observedGeneration": 2}
    assert not verdict(cr).available
    cr["status"] = {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "False",
                                                             "message": "Instances not ready"}]}
    assert verdict(cr).message == "Ready False: Instances not ready"
    cr["status"]["conditions"] = [{"type": "Reconciling", "status": "True", "reason": "Progressing"}]
    assert verdict(cr).message == "Reconciling: Progressing"
    cr["status"]["conditions"] = [{"type": "Stalled", "status": "True", "message": "bad spec"}]
    assert verdict(cr) == readiness.Verdict(False, "Stalled: bad spec", failed=True)
    cr["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert verdict(cr).available
    cr["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert verdict(cr).message == "being deleted"


# each WHY_NOT row: the clue a real cluster shows for it (reason and message as its component writes them)
CASES: dict[Cause, Clue] = {}


def case(source: str, reason: str, says: str, message: str) -> None:
    cause = next(c for c in WHY_NOT if (c.source, c.reason, c.says) == (source, reason, says))
    CASES[cause] = Clue(source, reason, message)


case("container", "ErrImagePull", "image pull failure", 'failed to resolve reference "r.example/x:1": not found')
case("container", "ImagePullBackOff", "image pull failure", 'Back-off pulling image "r.example/x:1"')
case("container", "InvalidImageName", "image pull failure", 'Failed to apply default image tag "X:": invalid')
case("container", "ErrImageNeverPull", "image pull failure", 'Container image "x:1" is not present with pull '
     "policy of Never")
case("container", "CrashLoopBackOff", "crash loop", "back-off 5m0s restarting failed container=web pod=web-1")
case("container", "CreateContainerConfigError", "container config error (a missing ConfigMap or Secret key?)",
     'configmap "settings" not found')
case("scheduling", "Unschedulable", "unbound claim", "0/3 nodes are available: pod has unbound immediate "
     "PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
case("scheduling", "Unschedulable", "unschedulable", "0/3 nodes are available: 3 node(s) didn't match Pod's node "
     "affinity/selector.")
case("condition", "FailedCreate", "quota", 'pods "web-7d9-x" is forbidden: exceeded quota: compute, requested: '
     "cpu=1, used: cpu=4, limited: cpu=4")
case("event", "FailedCreate", "quota", 'Error creating: pods "web-7d9-x" is forbidden: exceeded quota: compute')
case("condition", "FailedCreate", "cannot create Pods", 'pods "web-x" is forbidden: violates PodSecurity '
     '"restricted:latest"')
case("event", "FailedCreate", "cannot create Pods", 'Error creating: pods "web-x" is forbidden: error looking up '
     'service account shop/web: serviceaccount "web" not found')
case("event", "FailedScheduling", "unbound claim", "0/1 nodes are available: pod has unbound immediate "
     "PersistentVolumeClaims.")
case("event", "FailedScheduling", "unschedulable", "0/2 nodes are available: 2 Insufficient cpu.")
case("event", "ProvisioningFailed", "unbound claim", 'storageclass.storage.k8s.io "fast" not found')
case("event", "FailedMount", "volume cannot be mounted", 'MountVolume.SetUp failed for volume "cfg" : configmap '
     '"cfg" not found')
case("event", "BackOff", "crash loop", "Back-off restarting failed container web in pod web-1_shop(uid)")
case("event", "Failed", "image pull failure", 'Failed to pull image "r.example/x:1": rpc error: not found')


def test_every_cause_has_a_case() -> None:
    assert set(CASES) == set(WHY_NOT)


@pytest.mark.parametrize("cause", WHY_NOT, ids=lambda c: f"{c.source}-{c.reason}-{c.says.split()[0]}")
def test_cause_is_named_from_its_clue(cause: Cause) -> None:
    clue = CASES[cause]
    assert why_not([clue]) == f"{cause.says}: {clue.message[:160]}"


def test_clues_from_a_pod_and_events_as_the_emulated_kubelet_writes_them() -> None:
    from kubedr.emulator.kubelet import pod_status

    pod = {"spec": {"containers": [{"name": "web", "image": "registry.invalid/shop/web:1"}]}}
    pod["status"] = pod_status(copy.deepcopy(pod), None)
    assert why_not(readiness.clues_of_pod(pod)) == \
        'image pull failure: Back-off pulling image "registry.invalid/shop/web:1"'
    events = [{"type": "Normal", "reason": "Scheduled", "message": "assigned", "lastTimestamp": "2026-01-01T00:00:01Z"},
              {"type": "Warning", "reason": "FailedMount", "message": "MountVolume.SetUp failed",
               "lastTimestamp": "2026-01-01T00:00:02Z"}]
    assert why_not(readiness.clues_of_events(events)) == "volume cannot be mounted: MountVolume.SetUp failed"
    assert why_not([]) == ""
