"""The standby rules (kubedr.holds) as the applier uses them: every built-in row holds the real field of its kind
and a switchover's patch, read from the annotations alone, gives the primary's value back; precedence; the
scale subresource; a schema that refuses the standby value; the policy's standby: section."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubedr import holds
from kubedr.applier.holding import Holds
from kubedr.applier.standby import Mode, hold, restore_ops
from kubedr.holds import (
    BUILTIN,
    HELD_LABEL,
    MISSING,
    HoldError,
    policy_rules,
    resolve,
    scale_rule,
    schema_refusal,
)


def _obj(api_version: str, kind: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "shop", **meta},
            "spec": spec}


# (group, kind) -> a manifest as the operator's documentation writes one
SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("apps", "Deployment"): _obj("apps/v1", "Deployment", {"replicas": 3, "selector": {"matchLabels": {"a": "x"}}}),
    ("apps", "StatefulSet"): _obj("apps/v1", "StatefulSet", {"replicas": 2, "serviceName": "x"}),
    ("apps", "ReplicaSet"): _obj("apps/v1", "ReplicaSet", {"replicas": 4}),
    ("batch", "CronJob"): _obj("batch/v1", "CronJob", {"schedule": "0 * * * *", "suspend": False}),
    ("batch", "Job"): _obj("batch/v1", "Job", {"template": {"spec": {"restartPolicy": "Never"}}}),
    ("kustomize.toolkit.fluxcd.io", "Kustomization"): _obj(
        "kustomize.toolkit.fluxcd.io/v1", "Kustomization",
        {"interval": "10m", "path": "./apps", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "flux"}}),
    ("helm.toolkit.fluxcd.io", "HelmRelease"): _obj(
        "helm.toolkit.fluxcd.io/v2", "HelmRelease",
        {"interval": "5m", "chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository",
                                                                               "name": "podinfo"}}}}),
    ("source.toolkit.fluxcd.io", "GitRepository"): _obj(
        "source.toolkit.fluxcd.io/v1", "GitRepository",
        {"interval": "1m", "url": "https://github.com/stefanprodan/podinfo", "ref": {"branch": "master"}}),
    ("source.toolkit.fluxcd.io", "OCIRepository"): _obj(
        "source.toolkit.fluxcd.io/v1beta2", "OCIRepository",
        {"interval": "5m", "url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "ref": {"tag": "latest"}}),
    ("source.toolkit.fluxcd.io", "HelmRepository"): _obj(
        "source.toolkit.fluxcd.io/v1", "HelmRepository", {"interval": "5m", "url": "https://stefanprodan.github.io/podinfo"}),
    ("source.toolkit.fluxcd.io", "Bucket"): _obj(
        "source.toolkit.fluxcd.io/v1beta2", "Bucket",
        {"interval": "5m", "provider": "generic", "bucketName": "podinfo", "endpoint": "minio.example.com"}),
    ("argoproj.io", "CronWorkflow"): _obj(
        "argoproj.io/v1alpha1", "CronWorkflow",
        {"schedules": ["* * * * *"], "concurrencyPolicy": "Replace", "workflowSpec": {"entrypoint": "date"}}),
    ("velero.io", "Schedule"): _obj("velero.io/v1", "Schedule",
                                    {"schedule": "0 7 * * *", "template": {"ttl": "720h0m0s"}}),
    ("keda.sh", "ScaledObject"): _obj("keda.sh/v1alpha1", "ScaledObject",
                                      {"scaleTargetRef": {"name": "web"}, "triggers": [{"type": "cpu"}]}),
    ("keda.sh", "ScaledJob"): _obj("keda.sh/v1alpha1", "ScaledJob",
                                   {"jobTargetRef": {"template": {}}, "triggers": [{"type": "rabbitmq"}]}),
    ("monitoring.coreos.com", "Prometheus"): _obj("monitoring.coreos.com/v1", "Prometheus",
                                                  {"replicas": 2, "shards": 2}),
    ("monitoring.coreos.com", "PrometheusAgent"): _obj("monitoring.coreos.com/v1alpha1", "PrometheusAgent",
                                                       {"replicas": 1, "shards": 3}),
    ("postgresql.cnpg.io", "Cluster"): _obj("postgresql.cnpg.io/v1", "Cluster",
                                            {"instances": 3, "storage": {"size": "1Gi"}}),
}


def patched(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON patch of add/remove ops applied as the API server applies it."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parent, last = holds.pointer_tokens(op["path"])
        node = holds.get(out, tuple(parent))
        if op["op"] == "add":
            node[last] = op["value"]
        else:
            del node[last]
    return out


def test_every_builtin_row_has_a_sample_of_its_kind() -> None:
    assert {(r.group, r.kind) for r in BUILTIN} == set(SAMPLES)
    assert all(r.why for r in BUILTIN)


@pytest.mark.parametrize("rule", BUILTIN, ids=lambda r: r.name)
def test_builtin_row_holds_its_field_and_a_switchover_restores_it(rule: holds.Rule) -> None:
    primary = SAMPLES[(rule.group, rule.kind)]
    held = hold(copy.deepcopy(primary), Mode(replicas=0))
    standby = 0 if rule.replicas else rule.value
    assert holds.get(held, rule.tokens) == standby
    assert held["metadata"]["labels"][HELD_LABEL] == "true"
    assert rule.keep in held["metadata"]["annotations"]
    restored = patched(held, restore_ops(held))
    was = holds.get(primary, rule.tokens)
    now = holds.get(restored, rule.tokens)
    assert now == was or (was is MISSING and now in (MISSING, False, 1)), (was, now)  # API defaults: false, 1
    assert restore_ops(restored) == []  # a second switchover changes nothing


def test_owned_replicaset_and_job_follow_their_owner() -> None:
    owner = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "u", "controller": True}]
    for key in (("apps", "ReplicaSet"), ("batch", "Job")):
        obj = copy.deepcopy(SAMPLES[key])
        obj["metadata"]["ownerReferences"] = owner
        assert hold(copy.deepcopy(obj), Mode()) == obj


def test_a_primary_value_is_kept_even_when_it_is_the_standby_value() -> None:
    """KEDA already paused at 5 on the primary: the standby pauses at 0, the switchover puts 5 back."""
    obj = copy.deepcopy(SAMPLES[("keda.sh", "ScaledObject")])
    obj["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": "5"}
    held = hold(obj, Mode())
    assert held["metadata"]["annotations"]["autoscaling.keda.sh/paused-replicas"] == "0"
    assert json.loads(held["metadata"]["annotations"][holds.VALUES_ANNOTATION]) == {
        "/metadata/annotations/autoscaling.keda.sh~1paused-replicas": "5"}
    assert patched(held, restore_ops(held))["metadata"]["annotations"]["autoscaling.keda.sh/paused-replicas"] == "5"


def test_prometheus_row_wins_over_its_scale_subresource() -> None:
    crd = {"spec": {"group": "monitoring.coreos.com", "names": {"kind": "Prometheus"}, "versions": [
        {"name": "v1", "storage": True, "subresources": {"scale": {"specReplicasPath": ".spec.shards"}}}]}}
    assert scale_rule(crd) is not None and scale_rule(crd).pointer == "/spec/shards"  # type: ignore[union-attr]
    rule = resolve("monitoring.coreos.com", "Prometheus", {}, crd)
    assert rule is not None and rule.pointer == "/spec/replicas" and rule.source == "built-in"


def _crd(scale_path: str | None, minimum: int | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        prop["minimum"] = minimum
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": prop}}}}}}
    if scale_path:
        version["subresources"] = {"scale": {"specReplicasPath": scale_path, "statusReplicasPath": ".status.size"}}
    return {"spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "versions": [version]}}


def test_scale_subresource_holds_through_spec_replicas_path_and_the_policy_wins_over_it() -> None:
    rule = resolve("example.com", "Widget", {}, _crd(".spec.size"))
    assert rule is not None and rule.pointer == "/spec/size" and rule.replicas and rule.source == "scale subresource"
    assert rule.keep == holds.VALUES_ANNOTATION  # not spec.replicas: the pointer travels with the value
    assert resolve("example.com", "Widget", {}, _crd(None)) is None
    (mine,) = policy_rules(b"standby:\n- {kind: Widget.example.com, pointer: /spec/paused, value: true}\n")
    assert resolve("example.com", "Widget", {("example.com", "Widget"): mine}, _crd(".spec.size")) == mine
    (off,) = policy_rules(b"standby:\n- {kind: Deployment.apps, hold: false, why: run the canary}\n")
    assert resolve("apps", "Deployment", {("apps", "Deployment"): off}, None) is None


def test_a_schema_that_refuses_the_standby_value_is_named() -> None:
    assert schema_refusal(_crd(".spec.size", minimum=1), "v1", ("spec", "size"), 0) == \
        "its CRD allows spec.size >= 1 (minimum), not 0"
    assert schema_refusal(_crd(".spec.size", minimum=0), "v1", ("spec", "size"), 0) is None
    assert schema_refusal(_crd(".spec.size"), "v1", ("spec", "size"), True) == \
        "its CRD types spec.size as integer, not true"
    assert schema_refusal(_crd(".spec.size"), "v1", ("spec", "other"), 0) is None  # not described: allowed


def test_a_refused_hold_applies_the_object_as_it_is_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    class Secondary(Holds):
        def crd(self, group: str, kind: str, api_version: str | None = None) -> dict[str, Any] | None:
            return _crd(".spec.size", minimum=1) if group == "example.com" else None

    mode = Mode(holds=Secondary())
    widget = _obj("example.com/v1", "Widget", {"size": 3})
    for _ in range(3):
        assert hold(copy.deepcopy(widget), mode) == widget
    said = [r.getMessage() for r in caplog.records if "Widget.example.com" in r.getMessage()]
    assert said == ["standby: Widget.example.com is applied as it is, not held: its CRD allows spec.size >= 1 "
                    "(minimum), not 0 (rule: spec.size at standby replicas (scale subresource))"]


def test_policy_rules_parse_and_refuse_in_one_line() -> None:
    rules = policy_rules(b"""standby:
- kind: Cluster.postgresql.cnpg.io
  annotation: cnpg.io/hibernation
  value: "on"
- {kind: DaemonSet.apps, pointer: /spec/template/spec/nodeSelector, value: {kubedr.io/standby: hold}}
""")
    assert [(r.name, r.pointer, r.value, r.source) for r in rules] == [
        ("Cluster.postgresql.cnpg.io", "/metadata/annotations/cnpg.io~1hibernation", "on", "policy"),
        ("DaemonSet.apps", "/spec/template/spec/nodeSelector", {"kubedr.io/standby": "hold"}, "policy")]
    assert policy_rules(b"apply: {prune: true}\n") == ()
    for bad, says in ((b"standby: {kind: X}", "expected a list"),
                      (b"standby: [{kind: X.a, pointer: /status/x, value: 1}]", "under /spec or one annotation"),
                      (b"standby: [{kind: X.a, pointer: spec.x, value: 1}]", "expected a JSON pointer"),
                      (b"standby: [{kind: X.a, annotation: a, pointer: /spec/x, value: 1}]", "one of pointer"),
                      (b"standby: [{kind: X.a, pointer: /spec/x}]", "value"),
                      (b"standby: [{kind: X.a, pointer: /spec/x, value: 1, colour: red}]", "unknown key 'colour'")):
        with pytest.raises(HoldError, match=says) as err:
            policy_rules(bad)
        assert "\n" not in str(err.value)


def test_daemonset_held_by_a_policy_rule_gets_its_node_selector_back() -> None:
    (rule,) = policy_rules(b"standby: [{kind: DaemonSet.apps, pointer: /spec/template/spec/nodeSelector, "
                           b"value: {kubedr.io/standby: hold}}]")
    ds = _obj("apps/v1", "DaemonSet", {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}})
    held = hold(copy.deepcopy(ds), Mode(holds=Holds([rule])))
    assert held["spec"]["template"]["spec"]["nodeSelector"] == {"kubedr.io/standby": "hold"}
    assert patched(held, restore_ops(held))["spec"] == ds["spec"]  # the whole map, not merged into the held one


def test_report_names_held_kinds_by_rule_and_what_runs_as_it_is() -> None:
    lines = holds.report([("apps", "Deployment"), ("apps", "DaemonSet"), ("example.com", "Widget"),
                          ("example.com", "Gadget"), ("", "ConfigMap")], {},
                         lambda g, k: _crd(".spec.size") if k == "Widget" else _crd(None))
    assert lines[0] == "standby holds: 2 kinds held, 2 that may run work applied as they are"
    assert any(ln.startswith("  held      Deployment.apps: spec.replicas at standby replicas (built-in") for ln in lines)
    assert any(ln.startswith("  held      Widget.example.com: spec.size at standby replicas (scale subresource") for ln in lines)
    assert any(ln.startswith("  as is     DaemonSet.apps: a Pod on every node") for ln in lines)
    assert any(ln.startswith("  as is     Gadget.example.com: custom resource without") for ln in lines)
    assert not any("ConfigMap" in ln for ln in lines)
