"""Conformance of the emulator driven by the real kubectl."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from tests.conftest import wait_until

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:1.4.2
        ports: [{containerPort: 8080, name: http}]
        env: [{name: MODE, value: prod}]
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


@pytest.fixture
def k(emulator, kubectl):
    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([kubectl, "--kubeconfig", str(emulator.kubeconfig), *args], input=stdin,
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc
    return run


def _get(k, *args: str) -> dict:
    return json.loads(k("get", *args, "-o", "json", "--show-managed-fields").stdout)


def test_create_get_list_delete(k):
    k("create", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, labels: {app: web}}\n"
                                  "data: {a: '1'}\n")
    cm = _get(k, "configmap", "app")
    assert cm["data"] == {"a": "1"} and cm["metadata"]["managedFields"][0]["manager"] == "kubectl-create"
    names = [i["metadata"]["name"] for i in _get(k, "cm", "-l", "app=web")["items"]]
    assert names == ["app"]
    assert "app" in k("get", "cm").stdout
    out = k("get", "cm", "missing", check=False)
    assert out.returncode != 0 and 'configmaps "missing" not found' in out.stderr
    k("delete", "cm", "app")
    assert k("get", "cm", "app", check=False).returncode != 0


def test_apply_server_side_and_patches(k, emulator):
    k("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    dep = _get(k, "deployment", "web")
    managers = {(f["manager"], f["operation"]) for f in dep["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    assert dep["metadata"]["generation"] == 1
    k("patch", "deployment", "web", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    k("patch", "deployment", "web", "--type=json", "-p",
      '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"web:2"}]')
    k("patch", "deployment", "web", "-p",
      '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"EXTRA","value":"1"}]}]}}}}')
    dep = _get(k, "deployment", "web")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert dep["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert container["image"] == "web:2"
    assert {e["name"] for e in container["env"]} == {"MODE", "EXTRA"}  # strategic merge by name
    assert dep["metadata"]["generation"] == 3


def test_get_watch_streams_changes(k, emulator, kubectl):
    proc = subprocess.Popen([kubectl, "--kubeconfig", str(emulator.kubeconfig), "get", "cm", "-w", "-o",
                             "custom-columns=NAME:.metadata.name,A:.data.a", "--no-headers"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line.split()) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        wait_until(lambda: ["kube-root-ca.crt", "<none>"] in lines, what="initial state in kubectl get -w")
        emulator.api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "namespace":
                                                                                   "default"}, "data": {"a": "1"}})
        emulator.api.patch("v1", "ConfigMap", "w", {"data": {"a": "2"}}, namespace="default")
        wait_until(lambda: ["w", "2"] in lines, what="MODIFIED event printed by kubectl get -w")
        assert ["w", "1"] in lines
    finally:
        proc.terminate()
        proc.wait(10)


def test_crd_then_custom_resource_round_trip(k):
    k("apply", "--server-side", "-f", "-", stdin=CRD)
    crd = _get(k, "crd", "widgets.example.com")
    conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    k("apply", "--server-side", "-f", "-", stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: blue}\n"
                                                  "spec: {color: blue}\n")
    w = _get(k, "wd", "blue")
    assert w["spec"] == {"color": "blue"} and w["metadata"]["generation"] == 1
    assert [i["metadata"]["name"] for i in _get(k, "widgets")["items"]] == ["blue"]
    k("delete", "crd", "widgets.example.com")
    assert k("get", "widgets", check=False).returncode != 0


def test_scale_and_server_side_apply_conflict(k, emulator):
    k("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    k("scale", "deployment", "web", "--replicas=3")
    wait_until(lambda: len(emulator.api.list("v1", "Pod", "default", label_selector="app=web")) == 3,
               what="three pods after kubectl scale")
    out = k("apply", "--server-side", "--field-manager=other", "-f", "-", stdin=DEPLOYMENT, check=False)
    assert out.returncode != 0
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas' in out.stderr
    k("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-", stdin=DEPLOYMENT)
    assert _get(k, "deployment", "web")["spec"]["replicas"] == 2
    wait_until(lambda: len(emulator.api.list("v1", "Pod", "default", label_selector="app=web")) == 2,
               what="rescaled to two pods")


def test_garbage_collection_of_owned_objects(k, emulator):
    k("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    wait_until(lambda: len(emulator.api.list("v1", "Pod", "default")) == 2, what="pods of the deployment")
    rs = _get(k, "rs")["items"][0]
    owner = rs["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Deployment" and owner["controller"] and owner["blockOwnerDeletion"]
    assert rs["metadata"]["labels"]["pod-template-hash"] in rs["metadata"]["name"]
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    events = {(e["involvedObject"]["kind"], e["reason"]) for e in _get(k, "events")["items"]}
    assert {("Deployment", "ScalingReplicaSet"), ("ReplicaSet", "SuccessfulCreate")} <= events
    k("delete", "deployment", "web")
    wait_until(lambda: not emulator.api.list("v1", "Pod", "default") and
               not emulator.api.list("apps/v1", "ReplicaSet", "default"), what="replicaset and pods collected")


def test_imperative_creates_table_output_and_namespace_deletion(k, emulator):
    k("create", "namespace", "shop")  # kubectl posts protobuf here
    k("create", "configmap", "cfg", "-n", "shop", "--from-literal=a=1", "--from-literal=b=2")
    k("create", "secret", "generic", "pw", "-n", "shop", "--from-literal=pw=s3cret")
    k("create", "deployment", "api", "-n", "shop", "--image=registry.example.com/api:1", "--replicas=1")
    assert _get(k, "secret", "pw", "-n", "shop")["data"] == {"pw": "czNjcmV0"}
    table = k("get", "cm", "-n", "shop").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert ["cfg", "2"] == table[1].split()[:2]
    deploy = k("get", "deploy", "-n", "shop").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    k("delete", "namespace", "shop")  # waits until the namespace is gone
    assert k("get", "namespace", "shop", check=False).returncode != 0
    assert emulator.api.list("v1", "ConfigMap", "shop") == []


def test_client_side_apply_uses_openapi(k):
    k("apply", "-f", "-", stdin=DEPLOYMENT)
    assert "unchanged" in k("apply", "-f", "-", stdin=DEPLOYMENT).stdout
    changed = DEPLOYMENT.replace("value: prod", "value: staging")
    assert "configured" in k("apply", "-f", "-", stdin=changed).stdout
    dep = _get(k, "deployment", "web")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "staging"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    managers = {f["manager"] for f in dep["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" in managers


def test_statefulset_and_job_controllers(k, emulator):
    k("apply", "--server-side", "-f", "-", stdin="""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "postgres:16"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
""")
    k("create", "job", "migrate", "--image=busybox:1.36", "--", "sh", "-c", "echo migrate")
    wait_until(lambda: {p["metadata"]["name"] for p in emulator.api.list("v1", "Pod", "default")} >= {"db-0", "db-1"},
               what="statefulset pods")
    pvcs = [p["metadata"]["name"] for p in emulator.api.list("v1", "PersistentVolumeClaim", "default")]
    assert pvcs == ["data-db-0", "data-db-1"]
    job = _get(k, "job", "migrate")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"controller-uid": uid}}  # v1.24
    wait_until(lambda: emulator.api.list("v1", "Pod", "default", label_selector=f"controller-uid={uid}"),
               what="job pod")
    out = k("delete", "namespace", "default", check=False)
    assert out.returncode != 0 and "this namespace may not be deleted" in out.stderr


PDB = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"""


def test_pod_disruption_budget_served_like_the_other_built_ins(k, emulator):
    resources = k("api-resources", "--api-group=policy", "-o", "wide", "--no-headers").stdout.split()
    assert resources[:5] == ["poddisruptionbudgets", "pdb", "policy/v1", "true", "PodDisruptionBudget"]
    k("apply", "-f", "-", stdin=PDB)
    pdb = _get(k, "pdb", "web")
    assert pdb["spec"]["minAvailable"] == 1 and pdb["metadata"]["generation"] == 1
    assert pdb["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    # the selector's patchStrategy is "replace": kubectl always sends it, the server sees no change
    again = k("apply", "-f", "-", stdin=PDB)
    assert again.stdout.strip() == "poddisruptionbudget.policy/web configured"
    assert _get(k, "pdb", "web")["metadata"]["resourceVersion"] == pdb["metadata"]["resourceVersion"]
    k("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=PDB.replace("minAvailable: 1",
                                                                                   "maxUnavailable: 25%"))
    pdb = _get(k, "pdb", "web")
    # kubectl applies, moves the client-side owner's fields to itself, then applies again: minAvailable goes
    assert pdb["spec"]["maxUnavailable"] == "25%" and "minAvailable" not in pdb["spec"]
    assert pdb["metadata"]["generation"] >= 2
    assert "25%" in k("get", "pdb").stdout
    k("delete", "pdb", "web")
    assert emulator.api.list("policy/v1", "PodDisruptionBudget", "default") == []


def test_openapi_v2_protobuf_for_what_v3_lacks(k):
    """kubectl reads /openapi/v2 as protobuf (explain's v2 output, validation of kinds absent from v3)."""
    out = k("explain", "pdb.spec.minAvailable", "--output", "plaintext-openapiv2").stdout
    assert "FIELD:    minAvailable <string>" in out and "eviction is allowed" in out
    # an unknown kind is skipped by client-side validation, then fails alone at mapping, as on a real cluster
    mixed = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: example.com/v1\nkind: Gadget\n" \
            "metadata: {name: g}\n"
    proc = k("apply", "-f", "-", stdin=mixed, check=False)
    assert proc.returncode != 0 and 'no matches for kind "Gadget" in version "example.com/v1"' in proc.stderr
    assert "proto:" not in proc.stderr
    assert _get(k, "cm", "ok")["metadata"]["name"] == "ok"


def test_immutable_selector_refused_as_on_a_cluster(k):
    k("apply", "-f", "-", stdin=DEPLOYMENT)
    moved = DEPLOYMENT.replace("{app: web}", "{app: web2}")
    out = k("apply", "-f", "-", stdin=moved, check=False)
    assert out.returncode != 0
    assert ('The Deployment "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
            'map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is '
            'immutable') in out.stderr
    assert _get(k, "deployment", "web")["spec"]["selector"] == {"matchLabels": {"app": "web"}}


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: c, image: "busybox:1.36"}]}
"""


def test_job_selector_generated_after_the_field_manager(k):
    """PrepareForCreate makes the selector and its labels: nobody owns them, so moving the client-side
    applier's fields to server-side apply keeps them and re-applying the manifest is accepted."""
    k("apply", "-f", "-", stdin=JOB)
    job = _get(k, "job", "once")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"controller-uid": uid}}  # v1.24
    owned = json.dumps(job["metadata"]["managedFields"])
    assert "f:selector" not in owned and "controller-uid" not in owned
    k("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=JOB)
    k("apply", "--server-side", "-f", "-", stdin=JOB)
    assert _get(k, "job", "once")["spec"]["selector"] == job["spec"]["selector"]
    out = k("replace", "-f", "-", stdin=JOB, check=False)  # a PUT without the generated selector
    assert out.returncode != 0 and "spec.selector: Invalid value: null: field is immutable" in out.stderr


def test_service_allocations_are_owned_by_nobody(k):
    """The registry allocates after the field manager ran: cluster IP, IP families and node ports have no owner,
    while the defaulted fields belong to the creator (what the exporter's sanitizer relies on)."""
    k("apply", "-f", "-", stdin="apiVersion: v1\nkind: Service\nmetadata: {name: np}\n"
                                 "spec: {type: NodePort, selector: {app: web}, ports: [{port: 80}]}\n")
    svc = _get(k, "svc", "np")
    assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["nodePort"] >= 30000
    (entry,) = svc["metadata"]["managedFields"]
    spec = entry["fieldsV1"]["f:spec"]
    assert {"f:type", "f:sessionAffinity", "f:internalTrafficPolicy", "f:externalTrafficPolicy"} <= set(spec)
    assert not {"f:clusterIP", "f:clusterIPs", "f:ipFamilies", "f:ipFamilyPolicy"} & set(spec)
    (port,) = [v for key, v in spec["f:ports"].items() if key.startswith("k:")]
    assert "f:nodePort" not in port and {"f:port", "f:protocol", "f:targetPort"} <= set(port)
    again = k("apply", "-f", "-", stdin="apiVersion: v1\nkind: Service\nmetadata: {name: np}\n"
                                         "spec: {type: NodePort, selector: {app: web}, ports: [{port: 80}]}\n")
    assert again.stdout.strip() == "service/np unchanged"
    assert _get(k, "svc", "np")["spec"]["ports"][0]["nodePort"] == svc["spec"]["ports"][0]["nodePort"]


def test_version_names_the_release_whose_schemas_are_served(k):
    from kubedr.emulator.k8s_schema import latest_version

    server = json.loads(k("version", "-o", "json").stdout)["serverVersion"]
    major, minor, _ = latest_version().split(".")
    assert (server["major"], server["minor"]) == (major, minor)
    assert server["gitVersion"].startswith(f"v{major}.{minor}.")
