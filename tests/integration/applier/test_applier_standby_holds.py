"""Everything that runs is held on the standby, by rule, and a switchover brings it back: on two emulators, the
real exporter (primary -> repo) and the applier daemon (repo -> secondary).

Held: a custom resource whose CRD declares a scale subresource (at 3, held at 0), a Flux Kustomization
(suspended), a KEDA ScaledObject (paused by annotation: the switchover removes it), and a kind no built-in row
knows, held by a rule of the repo policy. The held state survives a restart of the applier; a later change on the
primary to a held field reaches the standby's annotation, not the live field; the switchover restores every
primary value, a second switchover changes nothing, and the daemon then applies in active mode.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr.commands.cli import main
from tests.conftest import free_port, stop_process, wait_until
from tests.integration.applier.conftest import Repo, deployment, live, namespace, status_of

POLICY = b"""version: 1
standby:
  - kind: Pipeline.ci.example.com
    pointer: /spec/enabled
    value: false
    why: a Pipeline runs builds against production as soon as it is enabled
"""


def crd(group: str, kind: str, scale: bool = False, served: str = "v1", **props: dict[str, Any]) -> dict[str, Any]:
    version: dict[str, Any] = {"name": served, "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "properties": props,
                                                  "x-kubernetes-preserve-unknown-fields": True}}}}}
    if scale:
        version["subresources"] = {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                           "statusReplicasPath": ".status.replicas"}}
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "versions": [version],
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"}}}


CRDS = [crd("example.com", "Widget", scale=True, replicas={"type": "integer", "minimum": 0}),
        crd("kustomize.toolkit.fluxcd.io", "Kustomization"),
        crd("keda.sh", "ScaledObject", served="v1alpha1"),
        crd("ci.example.com", "Pipeline", enabled={"type": "boolean"}),
        crd("db.example.com", "Database", scale=True, replicas={"type": "integer", "minimum": 1})]


def cr(api_version: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


OBJECTS = [cr("example.com/v1", "Widget", "w", {"replicas": 3, "color": "blue"}),
           cr("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps",
              {"interval": "10m", "path": "./apps", "prune": True, "sourceRef": {"kind": "GitRepository",
                                                                                "name": "flux-system"}}),
           cr("keda.sh/v1alpha1", "ScaledObject", "web", {"scaleTargetRef": {"name": "web"},
                                                         "triggers": [{"type": "cpu"}]}),
           cr("ci.example.com/v1", "Pipeline", "release", {"enabled": True, "branch": "main"}),
           deployment("web")]
DATABASE = cr("db.example.com/v1", "Database", "orders", {"replicas": 3})  # its CRD: replicas >= 1


def get(emu: Any, obj: dict[str, Any]) -> dict[str, Any]:
    found = live(emu, obj["apiVersion"], obj["kind"], obj["metadata"]["name"], "shop")
    assert found is not None, f"{obj['kind']} missing"
    return found


def ann(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def create(emu: Any, obj: dict[str, Any]) -> None:
    from kubedr.apierrors import NotFound

    def done() -> bool:
        try:
            emu.api.create(obj)
        except NotFound:  # a CRD just created: served in a moment
            return False
        return True

    wait_until(done, timeout=10, what=f"{obj['kind']} created")


def export(primary: Any, repo: Repo, tmp: Path) -> None:
    assert main(["export", "--once", "--kubeconfig", primary.kubeconfig_path, "--namespaces", "shop",
                 "--repo", str(repo.remote), "--workdir", str(tmp / "export"), "--cluster-name", "primary"]) == 0


class Applier:
    """The applier daemon on the secondary, as the manifests run it."""

    def __init__(self, secondary: Any, repo: Repo, tmp: Path) -> None:
        self.args = [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", secondary.kubeconfig_path,
                     "--repo", str(repo.remote), "--workdir", str(tmp / "applier"), "--interval", "0.1s",
                     "--drift-interval", "2s"]
        self.metrics = f"127.0.0.1:{free_port()}"
        self.log = tmp / "applier.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*self.args, "--metrics-listen", self.metrics], stdout=out,
                                         stderr=subprocess.STDOUT, env=env)

    def get(self, path: str) -> str:
        try:
            with urllib.request.urlopen(f"http://{self.metrics}{path}", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def applier(secondary: Any, repo: Repo, tmp_path: Path) -> Iterator[Applier]:
    a = Applier(secondary, repo, tmp_path)
    yield a
    if a.proc is not None:
        stop_process(a.proc)


def test_everything_that_runs_is_held_and_a_switchover_brings_it_back(
        primary: Any, secondary: Any, repo: Repo, applier: Applier, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    widget, kustomization, scaled, pipeline, web = OBJECTS
    primary.api.create(namespace("shop"))
    for o in [*CRDS, *OBJECTS, DATABASE]:
        create(primary, o)
    repo.write(".kubedr/policy.yaml", POLICY)
    repo.commit("policy: hold Pipelines")
    export(primary, repo, tmp_path)
    applier.start()

    def held() -> bool:
        try:
            [get(secondary, o) for o in (*OBJECTS, DATABASE)]  # a round applies kinds in stages: all are there
            said = applier.log.read_text()  # and the round that held them said so
            return (get(secondary, widget)["spec"]["replicas"] == 0
                    and get(secondary, pipeline)["spec"]["enabled"] is False
                    and "held      Pipeline.ci.example.com" in said and "standby: Database.db.example.com" in said)
        except AssertionError:
            return False

    wait_until(held, timeout=30, what="the standby holds the custom resources")
    w, k, so, p, d = (get(secondary, o) for o in OBJECTS)
    assert ann(w)["kubedr.io/primary-replicas"] == "3" and w["metadata"]["labels"]["kubedr.io/held"] == "true"
    assert k["spec"]["suspend"] is True and ann(k)["kubedr.io/primary-suspend"] == "false"
    assert ann(so)["autoscaling.keda.sh/paused-replicas"] == "0"
    assert json.loads(ann(so)["kubedr.io/primary-values"]) == {
        "/metadata/annotations/autoscaling.keda.sh~1paused-replicas": None}
    assert json.loads(ann(p)["kubedr.io/primary-values"]) == {"/spec/enabled": True}
    assert d["spec"]["replicas"] == 0 and ann(d)["kubedr.io/primary-replicas"] == "3"
    log = applier.log.read_text()
    assert "held      Widget.example.com: spec.replicas at standby replicas (scale subresource" in log
    assert "held      Pipeline.ci.example.com: spec.enabled=false (policy: a Pipeline runs builds" in log
    # a standby value the CRD's schema refuses: said once, the object applied as it is
    assert get(secondary, DATABASE)["spec"]["replicas"] == 3 and "kubedr.io/held" not in \
        (get(secondary, DATABASE)["metadata"].get("labels") or {})
    assert log.count("standby: Database.db.example.com is applied as it is, not held: its CRD allows "
                     "spec.replicas >= 1 (minimum), not 0") == 1
    assert "as is     Database.db.example.com: its CRD allows spec.replicas >= 1 (minimum), not 0" in log

    # a restart: the same held objects, not one write to them
    versions = {o["kind"]: get(secondary, o)["metadata"]["resourceVersion"] for o in OBJECTS}
    wait_until(lambda: applier.get("/readyz").startswith("ok"), timeout=20, what="the applier caught up")
    applier.kill()
    applier.start()
    wait_until(lambda: applier.get("/readyz").startswith("ok"), timeout=20, what="the applier back")
    assert {o["kind"]: get(secondary, o)["metadata"]["resourceVersion"] for o in OBJECTS} == versions
    wait_until(lambda: applier.log.read_text().count("held      Widget.example.com") == 2, timeout=20,
               what="the restarted applier's report of what it holds")

    # the primary scales its Widget and enables nothing new: the annotation follows, the live field stays held
    primary.api.patch("example.com/v1", "Widget", "w", {"spec": {"replicas": 5}}, namespace="shop")
    export(primary, repo, tmp_path)
    wait_until(lambda: ann(get(secondary, widget)).get("kubedr.io/primary-replicas") == "5", timeout=20,
               what="the primary's new replica count in the standby's annotation")
    assert get(secondary, widget)["spec"]["replicas"] == 0

    capsys.readouterr()
    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path, "--timeout", "60s"]) == 0
    out = capsys.readouterr().out
    # the running applier reads the recorded active mode too and may bring some up first: never a failure
    brought = re.search(r"switchover: (\d+) objects brought up \(active\); 0 failed", out)
    assert brought is not None and 1 <= int(brought[1]) <= 5, out
    assert "standby serves: " in out and "RTO " in out
    w, k, so, p, d = (get(secondary, o) for o in OBJECTS)
    assert w["spec"]["replicas"] == 5 and k["spec"].get("suspend", False) is False and p["spec"]["enabled"] is True
    assert "autoscaling.keda.sh/paused-replicas" not in ann(so)
    assert d["spec"]["replicas"] == 3 and d["status"]["availableReplicas"] == 3

    # the daemon applies the active mode: the marks go, the primary's values stay (nothing held again)
    def active() -> bool:
        return all("kubedr.io/held" not in (get(secondary, o)["metadata"].get("labels") or {}) for o in OBJECTS)

    wait_until(active, timeout=30, what="the daemon applied the active mode")
    w, k, so, p, d = (get(secondary, o) for o in OBJECTS)
    assert (w["spec"]["replicas"], k["spec"].get("suspend", False), p["spec"]["enabled"], d["spec"]["replicas"]) == \
        (5, False, True, 3)
    assert "autoscaling.keda.sh/paused-replicas" not in ann(so)
    record = status_of(secondary)["switchover"]
    assert record["command"] == "switchover" and record["rtoSeconds"] > 0 and record["broughtUp"] == 5
    wait_until(lambda: "kubedr_applier_switchover_rto_seconds" in applier.get("/metrics"), timeout=20,
               what="the RTO on /metrics")

    # a second switchover: nothing left to bring up, nothing changes, the first figure is kept
    before = {o["kind"]: get(secondary, o)["metadata"]["resourceVersion"] for o in OBJECTS}
    assert main(["switchover", "--kubeconfig", secondary.kubeconfig_path, "--timeout", "60s"]) == 0
    assert "switchover: 0 objects brought up (active)" in capsys.readouterr().out
    assert {o["kind"]: get(secondary, o)["metadata"]["resourceVersion"] for o in OBJECTS} == before
    assert status_of(secondary)["switchover"] == record


def test_a_switchover_patch_raced_by_a_running_applier_reads_the_object_again(secondary: Any) -> None:
    """The switchover lists a held object, then a running applier (which read the active mode too) changes it before
    the switchover's patch lands: the patch no longer applies (422), the object is read again and counted as brought
    up, not reported as a failure. The patch is delayed on purpose so the applier's change always comes first."""
    from kubedr.applier.sources import SOURCE_LABEL, Records
    from kubedr.applier.standby import switchover
    from kubedr.holds import VALUES_ANNOTATION
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    secondary.api.create(namespace("shop"))
    web = deployment("web", "shop")
    web["metadata"]["labels"] = {"kubedr.io/managed": "true", SOURCE_LABEL: "a", "kubedr.io/held": "true"}
    web["metadata"]["annotations"] = {"example.com/paused": "true",
                                      VALUES_ANNOTATION: json.dumps({"/metadata/annotations/example.com~1paused": None})}
    secondary.api.create(web)
    path = "/apis/apps/v1/namespaces/shop/deployments/web"
    secondary.delay("PATCH", path, 1.0)
    listed = threading.Event()

    def applier_brings_it_up() -> None:
        wait_until(lambda: any(m == "GET" and p.startswith("/apis/apps/v1/namespaces/shop/deployments?")
                               for _, m, p in secondary.requests), timeout=20, what="the switchover's listing")
        live = secondary.api.get("apps/v1", "Deployment", "web", "shop")
        del live["metadata"]["annotations"]["example.com/paused"]  # what the switchover's patch was to remove
        secondary.api.update(live)
        listed.set()

    racer = threading.Thread(target=applier_brings_it_up)
    racer.start()
    done = switchover(Cluster(api_client(secondary.kubeconfig_path)), Records("a"), ["shop"])
    racer.join(30)
    assert listed.is_set()
    assert done.failures == [] and [r.name for r in done.brought_up] == ["web"], done
    assert sum(1 for _, m, p in secondary.requests if m == "PATCH" and p.startswith(path)) == 1  # no second patch
