"""Create/update/delete of each kind reach the remote as the right files and commits; children never do."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from exporter_harness import remote_files, subjects

from kubedr.contract import ref_of
from tests.conftest import wait_until

POD = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD}


def _o(api: str, kind: str, name: str, **body) -> dict:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "shop"}, **body}


KINDS = [
    _o("v1", "ConfigMap", "settings", data={"mode": "a"}),
    _o("v1", "Secret", "creds", type="Opaque", stringData={"password": "p1"}),
    _o("v1", "ServiceAccount", "app"),
    _o("v1", "Service", "web", spec={"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
    _o("v1", "PersistentVolumeClaim", "data", spec={"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}),
    _o("apps/v1", "Deployment", "web", spec={"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                             "template": TEMPLATE}),
    _o("apps/v1", "StatefulSet", "db", spec={"serviceName": "db", "selector": {"matchLabels": {"app": "web"}},
                                             "template": TEMPLATE}),
    _o("apps/v1", "DaemonSet", "agent", spec={"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}),
    _o("batch/v1", "CronJob", "nightly", spec={"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": {
        "spec": {**POD, "restartPolicy": "Never"}}}}}),
    _o("rbac.authorization.k8s.io/v1", "Role", "reader", rules=[{"apiGroups": [""], "resources": ["pods"],
                                                                  "verbs": ["get"]}]),
    _o("rbac.authorization.k8s.io/v1", "RoleBinding", "reader", roleRef={
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        subjects=[{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]),
    _o("networking.k8s.io/v1", "NetworkPolicy", "deny", spec={"podSelector": {}}),
    _o("networking.k8s.io/v1", "Ingress", "web", spec={"defaultBackend": {"service": {"name": "web",
                                                                                       "port": {"number": 80}}}}),
]


def _change(obj: dict) -> dict:
    new = copy.deepcopy(obj)
    new["metadata"].setdefault("labels", {})["changed"] = "yes"
    return new


def test_create_update_delete_of_each_builtin_kind(primary, start_exporter, git_remote: Path) -> None:
    start_exporter(git_remote)
    api = primary.api
    for obj in KINDS:
        ref = ref_of(obj)
        api.create(obj)
        wait_until(lambda ref=ref: ref.path in remote_files(git_remote), what=f"{ref.display} exported")
        assert f"create {ref.display}" in subjects(git_remote)
        live = api.get(obj["apiVersion"], obj["kind"], ref.name, "shop")
        live["metadata"].setdefault("labels", {})["changed"] = "yes"
        api.update(live)
        wait_until(lambda ref=ref: "changed: 'yes'" in remote_files(git_remote).get(ref.path, ""),
                   what=f"{ref.display} updated")
        assert subjects(git_remote)[0] == f"update {ref.display}"
        text = remote_files(git_remote)[ref.path]
        doc = yaml.safe_load(text)
        assert "status" not in doc and "resourceVersion" not in doc["metadata"] and "uid" not in doc["metadata"]
    for obj in KINDS:
        ref = ref_of(obj)
        api.delete(obj["apiVersion"], obj["kind"], ref.name, "shop")
        wait_until(lambda ref=ref: ref.path not in remote_files(git_remote), what=f"{ref.display} deleted")
        assert f"delete {ref.display}" in subjects(git_remote)


def test_owned_children_never_appear(primary, start_exporter, git_remote: Path) -> None:
    start_exporter(git_remote)
    api = primary.api
    deploy = api.create(KINDS[5])
    owner = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deploy["metadata"]["uid"],
              "controller": True, "blockOwnerDeletion": True}]
    rs = _o("apps/v1", "ReplicaSet", "web-5d4f", spec={"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                                      "template": TEMPLATE})
    rs["metadata"]["ownerReferences"] = owner
    api.create(rs)
    if primary.controllers is not None:  # the ReplicaSet's Pods (and the Deployment's own ReplicaSet) exist
        wait_until(lambda: api.list("v1", "Pod", "shop"), what="controller-made pods")
        primary.controllers.idle()
    # Each type has its own watch, so only a marker of the same type, created after the children, proves
    # they were seen: standalone objects (no controller) are exported. (Types are not ordered among them.)
    markers = [api.create(_o("apps/v1", "ReplicaSet", "standalone", spec=rs["spec"])),
               api.create(_o("v1", "Pod", "standalone", spec=POD))]
    paths = [ref_of(m).path for m in markers] + ["shop/Deployment.apps/web.yaml"]
    wait_until(lambda: all(p in remote_files(git_remote) for p in paths), what="deployment and markers exported")
    children = sorted(p for p in remote_files(git_remote) if p.split("/")[1] in ("ReplicaSet.apps", "Pod"))
    assert children == sorted(paths[:2])


def test_noop_and_status_only_updates_make_no_commit(primary, start_exporter, git_remote: Path) -> None:
    start_exporter(git_remote)
    api = primary.api
    deploy = api.create(KINDS[5])
    wait_until(lambda: "shop/Deployment.apps/web.yaml" in remote_files(git_remote), what="deployment")
    before = subjects(git_remote)
    live = api.get("apps/v1", "Deployment", "web", "shop")
    live["status"] = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    api.update(live, subresource="status")
    live = api.get("apps/v1", "Deployment", "web", "shop")
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "7"
    api.update(live)
    api.update(api.get("apps/v1", "Deployment", "web", "shop"))  # no-op PUT
    assert api.get("apps/v1", "Deployment", "web", "shop")["metadata"]["resourceVersion"] != \
        deploy["metadata"]["resourceVersion"]
    api.create(_o("v1", "ConfigMap", "marker", data={"a": "b"}))
    wait_until(lambda: "shop/ConfigMap/marker.yaml" in remote_files(git_remote), what="marker exported")
    assert subjects(git_remote) == ["create ConfigMap shop/marker", *before]


def test_custom_resources_and_their_crd_come_and_go(primary, start_exporter, git_remote: Path) -> None:
    start_exporter(git_remote)
    api = primary.api
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    api.create(crd)
    widget = _o("example.com/v1", "Widget", "blue", spec={"size": 3})

    def create_widget() -> bool:
        try:
            api.create(widget)
            return True
        except Exception:  # noqa: BLE001 - the emulator serves the type once the CRD is established
            return False

    wait_until(create_widget, what="widget type served")
    wait_until(lambda: "shop/Widget.example.com/blue.yaml" in remote_files(git_remote), what="widget exported")
    crd_path = "_cluster/CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com.yaml"
    wait_until(lambda: crd_path in remote_files(git_remote), what="its CRD exported")
    live = api.get("example.com/v1", "Widget", "blue", "shop")
    live["spec"]["size"] = 4
    api.update(live)
    wait_until(lambda: "size: 4" in remote_files(git_remote).get("shop/Widget.example.com/blue.yaml", ""),
               what="widget updated")
    assert subjects(git_remote)[0] == "update example.com/Widget shop/blue"
    api.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com")
    wait_until(lambda: not any("example.com" in p for p in remote_files(git_remote)), what="widget and CRD removed")


def test_a_job_leaves_the_repo_when_it_finishes(primary, start_exporter, git_remote: Path) -> None:
    start_exporter(git_remote)
    api = primary.api
    api.create(_o("batch/v1", "Job", "migrate", spec={"template": {"spec": {**POD, "restartPolicy": "Never"}}}))
    wait_until(lambda: "shop/Job.batch/migrate.yaml" in remote_files(git_remote), what="running Job exported")
    live = api.get("batch/v1", "Job", "migrate", "shop")
    live["status"] = {"succeeded": 1, "conditions": [  # as the job controller writes it
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached"}]}
    api.update(live, subresource="status")
    wait_until(lambda: "shop/Job.batch/migrate.yaml" not in remote_files(git_remote), what="finished Job removed")
    assert subjects(git_remote)[0] == "delete batch/Job shop/migrate"


def test_a_token_secret_a_user_made_is_exported_one_the_controller_made_is_not(primary, start_exporter,
                                                                                git_remote: Path) -> None:
    start_exporter(git_remote)
    api = primary.api
    api.create(_o("v1", "ServiceAccount", "ci"))

    def token_secret(name: str) -> dict:
        obj = _o("v1", "Secret", name, type="kubernetes.io/service-account-token")
        obj["metadata"]["annotations"] = {"kubernetes.io/service-account.name": "ci"}
        return obj

    api.create(token_secret("ci-token-x7k2p"), manager="kube-controller-manager")   # pre-1.24 auto-generated
    api.create(token_secret("ci-long-lived"), manager="kubectl")                    # what users make since 1.24
    api.create(_o("v1", "ConfigMap", "marker", data={"a": "b"}))
    wait_until(lambda: {"shop/Secret/ci-long-lived.yaml", "shop/ConfigMap/marker.yaml"} <= set(remote_files(git_remote)),
               what="the user's token Secret exported")
    exported = yaml.safe_load(remote_files(git_remote)["shop/Secret/ci-long-lived.yaml"])
    assert exported["type"] == "kubernetes.io/service-account-token"
    assert exported["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "ci"}
    assert "shop/Secret/ci-token-x7k2p.yaml" not in remote_files(git_remote)
