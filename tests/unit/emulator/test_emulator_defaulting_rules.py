"""Defaulting rules that tests/fixtures/defaults does not show (the integration test covers those): each case is
one rule of the v1.24 defaulting functions, named after it."""

from __future__ import annotations

import copy

import pytest

from kubedr.emulator import defaults
from kubedr.emulator.resources import BUILTINS

RT = {rt.kind: rt for rt in BUILTINS}


def _pod(**spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def _container(**fields: object) -> dict:
    return {"name": "c", "image": "registry.example.com/app:1.0", **fields}


def _defaulted(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    defaults.apply(RT[obj["kind"]], obj, None)
    return obj


# (rule, object, path to read, expected value)
CASES = [
    ("SetDefaults_Container: untagged image pulls Always", _pod(containers=[_container(image="busybox")]),
     ("spec", "containers", 0, "imagePullPolicy"), "Always"),
    ("SetDefaults_Container: :latest pulls Always", _pod(containers=[_container(image="reg:5000/app:latest")]),
     ("spec", "containers", 0, "imagePullPolicy"), "Always"),
    ("SetDefaults_Container: a registry port is not a tag", _pod(containers=[_container(image="reg:5000/app")]),
     ("spec", "containers", 0, "imagePullPolicy"), "Always"),
    ("SetDefaults_Container: digest only pulls IfNotPresent",
     _pod(containers=[_container(image="app@sha256:" + "0" * 64)]),
     ("spec", "containers", 0, "imagePullPolicy"), "IfNotPresent"),
    ("SetDefaults_Container: a set policy stays", _pod(containers=[_container(image="a", imagePullPolicy="Never")]),
     ("spec", "containers", 0, "imagePullPolicy"), "Never"),
    ("SetDefaults_Probe: a zero value field is defaulted too",
     _pod(containers=[_container(livenessProbe={"exec": {"command": ["true"]}, "timeoutSeconds": 0})]),
     ("spec", "containers", 0, "livenessProbe", "timeoutSeconds"), 1),
    ("SetDefaults_HTTPGetAction: path /", _pod(containers=[_container(readinessProbe={"httpGet": {"port": 80}})]),
     ("spec", "containers", 0, "readinessProbe", "httpGet", "path"), "/"),
    ("lifecycle postStart httpGet", _pod(containers=[_container(lifecycle={"postStart": {"httpGet": {"port": 1}}})]),
     ("spec", "containers", 0, "lifecycle", "postStart", "httpGet", "scheme"), "HTTP"),
    ("SetDefaults_EphemeralContainer", _pod(containers=[], ephemeralContainers=[_container()]),
     ("spec", "ephemeralContainers", 0, "terminationMessagePolicy"), "File"),
    ("defaultHostNetworkPorts (PodSpec in v1.24)",
     _pod(hostNetwork=True, containers=[_container(ports=[{"containerPort": 53}])]),
     ("spec", "containers", 0, "ports", 0, "hostPort"), 53),
    ("SetDefaults_Pod: requests default to limits",
     _pod(containers=[_container(resources={"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})]),
     ("spec", "containers", 0, "resources", "requests"), {"cpu": "500m", "memory": "1Gi"}),
    ("SetDefaults_Pod: enableServiceLinks", _pod(containers=[]), ("spec", "enableServiceLinks"), True),
    ("ServiceAccount admission: default", _pod(containers=[]), ("spec", "serviceAccount"), "default"),
    ("v1 conversion: serviceAccountName from the deprecated serviceAccount", _pod(serviceAccount="old"),
     ("spec", "serviceAccountName"), "old"),
    ("SetDefaults_Volume: no source is an emptyDir", _pod(volumes=[{"name": "v"}]),
     ("spec", "volumes", 0, "emptyDir"), {}),
    ("SetDefaults_HostPathVolumeSource: type unset is ''", _pod(volumes=[{"name": "v", "hostPath": {"path": "/x"}}]),
     ("spec", "volumes", 0, "hostPath", "type"), ""),
    ("SetDefaults_SecretVolumeSource keeps a set mode", _pod(volumes=[{"name": "v", "secret": {"defaultMode": 256}}]),
     ("spec", "volumes", 0, "secret", "defaultMode"), 256),
    ("ServiceAccountTokenProjection: one hour",
     _pod(volumes=[{"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]),
     ("spec", "volumes", 0, "projected", "sources", 0, "serviceAccountToken", "expirationSeconds"), 3600),
    ("RBDVolumeSource", _pod(volumes=[{"name": "v", "rbd": {"monitors": ["m"], "image": "i"}}]),
     ("spec", "volumes", 0, "rbd"), {"monitors": ["m"], "image": "i", "pool": "rbd", "user": "admin",
                                     "keyring": "/etc/ceph/keyring"}),
    ("ISCSIVolumeSource", _pod(volumes=[{"name": "v", "iscsi": {"iqn": "q"}}]),
     ("spec", "volumes", 0, "iscsi", "iscsiInterface"), "default"),
    ("ephemeral volume claim spec", _pod(volumes=[{"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
     ("spec", "volumes", 0, "ephemeral", "volumeClaimTemplate", "spec", "volumeMode"), "Filesystem"),
    ("SetDefaults_Deployment: Recreate gets no rollingUpdate",
     {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"strategy": {"type": "Recreate"}}},
     ("spec", "strategy"), {"type": "Recreate"}),
    ("SetDefaults_StatefulSet: OnDelete gets no partition",
     {"kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"updateStrategy": {"type": "OnDelete"}}},
     ("spec", "updateStrategy"), {"type": "OnDelete"}),
    ("SetDefaults_DaemonSet: OnDelete gets no rollingUpdate",
     {"kind": "DaemonSet", "metadata": {"name": "s"}, "spec": {"updateStrategy": {"type": "OnDelete"}}},
     ("spec", "updateStrategy"), {"type": "OnDelete"}),
    ("SetDefaults_Job: parallelism alone leaves completions unset",
     {"kind": "Job", "metadata": {"name": "j"}, "spec": {"parallelism": 3}}, ("spec",),
     {"parallelism": 3, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False}),
    ("SetDefaults_Job: completions alone gets parallelism 1",
     {"kind": "Job", "metadata": {"name": "j"}, "spec": {"completions": 5}}, ("spec", "parallelism"), 1),
    ("SetDefaults_Job: labels from the template when the Job has none",
     {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}},
     ("metadata", "labels"), {"a": "b"}),
    ("SetDefaults_Service: ClientIP affinity gets its timeout",
     {"kind": "Service", "metadata": {"name": "s"}, "spec": {"sessionAffinity": "ClientIP"}},
     ("spec", "sessionAffinityConfig"), {"clientIP": {"timeoutSeconds": 10800}}),
    ("SetDefaults_Service: a named targetPort stays",
     {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}},
     ("spec", "ports", 0, "targetPort"), "http"),
    ("SetDefaults_Service: no externalTrafficPolicy for ClusterIP",
     {"kind": "Service", "metadata": {"name": "s"}, "spec": {}}, ("spec", "externalTrafficPolicy"), None),
    ("SetDefaults_NetworkPolicy: egress rules add Egress",
     {"kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": {"egress": [{"ports": [{"port": 53}]}]}},
     ("spec",), {"egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}], "policyTypes": ["Ingress", "Egress"]}),
    ("SetDefaults_LimitRangeItem: default from max, defaultRequest from default then min",
     {"kind": "LimitRange", "metadata": {"name": "l"}, "spec": {"limits": [
         {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}},
     ("spec", "limits", 0), {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"},
                             "default": {"cpu": "2"}, "defaultRequest": {"memory": "1Mi", "cpu": "2"}}),
    ("SetDefaults_LimitRangeItem: only Container limits",
     {"kind": "LimitRange", "metadata": {"name": "l"}, "spec": {"limits": [{"type": "Pod", "max": {"cpu": "2"}}]}},
     ("spec", "limits", 0), {"type": "Pod", "max": {"cpu": "2"}}),
    ("SetDefaults_HorizontalPodAutoscaler: 80% CPU without metrics",
     {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}, "spec": {"maxReplicas": 2}},
     ("spec",), {"maxReplicas": 2, "minReplicas": 1, "metrics": [{"type": "Resource", "resource": {
         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}),
    ("SetDefaults_HorizontalPodAutoscalerBehavior: the unset rules filled in",
     {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
      "spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}},
     ("spec", "behavior"), {
         "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
             {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]},
         "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
             {"type": "Percent", "value": 100, "periodSeconds": 15}]}}),
    ("SetDefaults_Subject: User gets the rbac group",
     {"kind": "RoleBinding", "metadata": {"name": "r"}, "roleRef": {"kind": "Role", "name": "x"},
      "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]},
     ("subjects",), [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"},
                     {"kind": "ServiceAccount", "name": "s"}]),
    ("SetDefaults_RoleBinding: roleRef group", {"kind": "ClusterRoleBinding", "metadata": {"name": "r"},
                                                "roleRef": {"kind": "ClusterRole", "name": "x"}},
     ("roleRef", "apiGroup"), "rbac.authorization.k8s.io"),
    ("discovery/v1 SetDefaults_EndpointPort", {"kind": "EndpointSlice", "metadata": {"name": "e"}, "ports": [{}]},
     ("ports",), [{"name": "", "protocol": "TCP"}]),
    ("SetDefaults_Endpoints: port protocol", {"kind": "Endpoints", "metadata": {"name": "e"},
                                              "subsets": [{"ports": [{"port": 80}]}]},
     ("subsets", 0, "ports", 0, "protocol"), "TCP"),
    ("SetDefaults_PersistentVolume", {"kind": "PersistentVolume", "metadata": {"name": "v"}, "spec": {}},
     ("spec",), {"persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}),
]


@pytest.mark.parametrize(("rule", "obj", "path", "want"), CASES, ids=[c[0] for c in CASES])
def test_defaulting_rule(rule: str, obj: dict, path: tuple, want: object) -> None:
    node: object = _defaulted(obj)
    for step in path:
        node = node[step] if isinstance(node, list) or step in node else None  # type: ignore[index,operator]
        if node is None:
            break
    assert node == want


def test_daemonset_template_generation_follows_template_changes() -> None:
    """DaemonSet PrepareForCreate/PrepareForUpdate: the annotation is the server's, bumped by a new template."""
    ds = {"kind": "DaemonSet", "metadata": {"name": "a", "uid": "u"}, "spec": {"template": {"spec": {}}}}
    defaults.prepare_for_create(RT["DaemonSet"], ds)
    assert ds["metadata"]["annotations"] == {"deprecated.daemonset.template.generation": "1"}
    same = copy.deepcopy(ds)
    same["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = "7"
    defaults.prepare_for_update(RT["DaemonSet"], same, ds)
    assert same["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    changed = copy.deepcopy(ds)
    changed["spec"]["template"]["spec"]["hostNetwork"] = True
    defaults.prepare_for_update(RT["DaemonSet"], changed, ds)
    assert changed["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"


def test_job_with_a_manual_selector_keeps_it() -> None:
    job = {"kind": "Job", "metadata": {"name": "j", "uid": "u"},
           "spec": {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}}}}
    defaults.prepare_for_create(RT["Job"], job)
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}
    assert job["metadata"]["annotations"] == {"batch.kubernetes.io/job-tracking": ""}


def test_malformed_input_is_left_for_validation() -> None:
    obj = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": "nonsense", "strategy": 3}}
    defaults.apply(RT["Deployment"], obj, None)  # no exception
    assert obj["spec"]["template"] == "nonsense"


# resource.Quantity's canonical form (apimachinery CanonicalizeBytes), ResourceLists rounded up to milli units
QUANTITIES = [("0.5", "500m"), ("1000m", "1"), ("1500m", "1500m"), ("2000", "2k"), ("100", "100"), (2, "2"),
              (0.25, "250m"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("1.5Gi", "1536Mi"), ("0.5Gi", "512Mi"),
              ("0.1Ki", "102400m"), ("1000M", "1G"), ("1e3", "1e3"), ("1.5e3", "1500"), ("0.0001", "1m"),
              ("0", "0"), ("not-a-quantity", "not-a-quantity")]


@pytest.mark.parametrize(("given", "want"), QUANTITIES)
def test_resource_quantities_come_back_canonical(given: object, want: str) -> None:
    pod = _defaulted(_pod(containers=[_container(resources={"limits": {"cpu": given}})]))
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": want}, "requests": {"cpu": want}}


def test_quantities_outside_resource_lists_are_not_rounded() -> None:
    pod = _defaulted(_pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "0.0001"}}]))
    assert pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "100u"
    quota = _defaulted({"kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"memory": "2048Mi"}}})
    assert quota["spec"]["hard"] == {"memory": "2Gi"}
