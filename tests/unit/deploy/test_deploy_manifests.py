"""The manifests: every document valid (kubernetes-validate, strict), and the promises the README makes hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from image import build as image
from tests.conftest import ROOT
from tests.manifests import MANIFESTS, OVERLAYS, by_kind, pod_runtime, render, under

VERSION = kubernetes_validate.latest_version()
NOT_RESOURCES = {"kustomization.yaml", "config.yaml", "kubedr.rules.yaml"}  # the rules: test_alert_rules.py
NOT_BUILT_IN = ("monitoring.coreos.com/",)  # CRDs of the Prometheus operator: test_alert_rules.py


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def source_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        if path.name in NOT_RESOURCES:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and not doc["apiVersion"].startswith(NOT_BUILT_IN):
                docs.append((f"{path.relative_to(MANIFESTS)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


@pytest.mark.parametrize("where,doc", source_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_source_document_is_valid(where: str, doc: dict[str, Any]) -> None:
    validate(doc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_document_is_valid(kubectl: str, overlay: str) -> None:
    docs = render(kubectl, overlay)
    assert len(docs) >= 10
    errors = []
    for doc in docs:
        try:
            validate(doc)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert not errors, "\n".join(errors)


def test_the_validator_can_fail() -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}, "unknownField": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)


def test_primary_has_exporter_and_snapshot_secondary_has_applier(kubectl: str) -> None:
    primary, secondary = render(kubectl, "primary"), render(kubectl, "secondary")
    assert set(by_kind(primary, "Deployment")) == {"kubedr-exporter"}
    assert set(by_kind(primary, "DaemonSet")) == {"kubedr-snapshot"}
    assert set(by_kind(secondary, "Deployment")) == {"kubedr-applier"}
    assert not by_kind(secondary, "DaemonSet")
    # hostPath needs "privileged" where the snapshot job runs; the secondary stays "restricted"
    ns_label = "pod-security.kubernetes.io/enforce"
    assert by_kind(primary, "Namespace")["kubedr-system"]["metadata"]["labels"][ns_label] == "privileged"
    assert by_kind(secondary, "Namespace")["kubedr-system"]["metadata"]["labels"][ns_label] == "restricted"


def test_exporter_cluster_role_is_read_only(kubectl: str) -> None:
    role = by_kind(render(kubectl, "primary"), "ClusterRole")["kubedr-exporter"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}


def test_applier_may_write_but_not_impersonate(kubectl: str) -> None:
    role = by_kind(render(kubectl, "secondary"), "ClusterRole")["kubedr-applier"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert {"create", "update", "patch", "delete"} <= verbs
    assert not verbs & {"impersonate", "deletecollection", "*"}


@pytest.mark.parametrize("overlay,name", [("primary", "kubedr-exporter"), ("secondary", "kubedr-applier")])
def test_deployments_are_hardened_probed_and_elected(kubectl: str, overlay: str, name: str) -> None:
    docs = render(kubectl, overlay)
    dep = by_kind(docs, "Deployment")[name]
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["args"][0] == "--log-json"     # structured logs for the log shipper
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for key in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][key])
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBEDR_LEADER_ELECT"]["value"] == "true"
    assert env["KUBEDR_LEADER_ELECTION_NAME"]["value"] == name
    assert env["KUBEDR_LEADER_ELECTION_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # every writable path is a volume
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/kubedr"} <= mounts
    # the config map reference follows the generated (hashed) name
    generated = set(by_kind(docs, "ConfigMap"))
    referenced = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    assert referenced <= generated
    # RBAC for the Lease, named after the Deployment
    role = by_kind(docs, "Role")[f"{name}-leader-election"]
    lease_rules = [r for r in role["rules"] if "leases" in r["resources"]]
    assert {"create"} <= {v for r in lease_rules for v in r["verbs"]}
    assert any(r.get("resourceNames") == [name] and {"get", "update"} <= set(r["verbs"]) for r in lease_rules)
    binding = by_kind(docs, "RoleBinding")[f"{name}-leader-election"]
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"] == name


def test_credentials_come_from_secrets_and_recipients_from_a_config_map(kubectl: str) -> None:
    def volumes(docs: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]["volumes"]}

    primary = render(kubectl, "primary")
    exp = volumes(primary, "kubedr-exporter")
    assert exp["git-credentials"]["secret"]["secretName"] == "kubedr-git"
    assert exp["age-recipients"]["configMap"]["name"].startswith("kubedr-age-recipients-")
    assert not any("kubedr-age-identity" in str(v) for v in exp.values()), "the primary never holds the identity"
    app = volumes(render(kubectl, "secondary"), "kubedr-applier")
    assert app["age-identity"]["secret"]["secretName"] == "kubedr-age-identity"
    assert app["git-credentials"]["secret"]["secretName"] == "kubedr-git"


def test_snapshot_daemonset_runs_on_control_plane_with_host_paths(kubectl: str) -> None:
    ds = by_kind(render(kubectl, "primary"), "DaemonSet")["kubedr-snapshot"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert any(t["key"] == "node-role.kubernetes.io/control-plane" for t in pod["tolerations"])
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert {"/etc/kubernetes", "/etc/kubernetes/pki/etcd"} <= host_paths
    (container,) = pod["containers"]
    assert container["args"] == ["--log-json", "snapshot", "save", "--every", "30m"]
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] not in ("tmp", "textfile-collector"))
    textfile = next(v for v in pod["volumes"] if v["name"] == "textfile-collector")["hostPath"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "textfile-collector")["mountPath"]
    config = yaml.safe_load((MANIFESTS / "overlays/primary/config.yaml").read_text())["snapshot"]
    assert config["metrics_file"] == mount + "/kubedr_snapshot.prom"   # node-exporter reads *.prom there
    assert textfile["path"] == "/var/lib/node_exporter/textfile_collector"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1


def test_dockerfile_is_generated_from_the_image_spec() -> None:
    assert (ROOT / "Dockerfile").read_text() == image.dockerfile(image.load_spec()), \
        "the Dockerfile drifted from image/spec.toml: bash scripts/image --dockerfile > Dockerfile"


def test_the_image_installs_what_runs_and_drops_root() -> None:
    spec = image.load_spec()
    assert {"python3", "git", "openssh-client", "age", "etcd-client", "ca-certificates", "tini"} <= set(spec["packages"])
    text = (ROOT / "Dockerfile").read_text()
    assert f"FROM {spec['base']}" in text and spec["suite"] in spec["base"]
    assert "USER 65532:65532" in text and 'ENTRYPOINT ["tini", "-s", "--", "kubedr"]' in text
    assert spec["entrypoint"][0] == "tini" and spec["entrypoint"][-1] == "kubedr"  # PID 1 reaps orphaned ssh masters
    assert spec["user"]["uid"] == 65532 and 9090 in spec["ports"]
    assert under(spec["env"]["HOME"], tuple(spec["volumes"])) and under(spec["workdir"], tuple(spec["volumes"]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_security_settings_fit_the_image(kubectl: str, overlay: str) -> None:
    """runAsUser, the read-only root and the writable mounts give the image what it writes at run time."""
    spec = image.load_spec()
    docs = render(kubectl, overlay)
    settings = yaml.safe_load((MANIFESTS / "overlays" / overlay / "config.yaml").read_text())
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    assert workloads
    for doc in workloads:
        pod = pod_runtime(doc)
        assert pod.image.split(":")[0] == spec["name"], pod.workload
        assert pod.read_only_root, pod.workload
        home = pod.env.get("HOME", spec["env"]["HOME"])
        assert under(home, pod.writable), f"{pod.workload}: HOME {home} is on the read-only root"
        assert under(pod.env.get("TMPDIR", "/tmp"), pod.writable), f"{pod.workload}: no writable /tmp"
        if doc["kind"] == "Deployment":
            assert (pod.user, pod.group) == (spec["user"]["uid"], spec["user"]["gid"]), pod.workload
            assert set(pod.ports) <= set(spec["ports"]), pod.workload
            assert set(spec["volumes"]) <= set(pod.writable), f"{pod.workload}: the image's volumes are not all mounted"
            workdir = settings[pod.args[1]]["workdir"]
            assert under(workdir, pod.writable), f"{pod.workload}: workdir {workdir} is on the read-only root"
        else:   # the snapshot job reads root-only kubeadm keys (see its comment): uid 0, writing only /tmp
            assert pod.user == 0, pod.workload


def test_dockerfile_copies_every_package_the_wheel_needs() -> None:
    import tomllib

    text = (ROOT / "Dockerfile").read_text()
    copied = {src for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
              for src in line.split()[1:-1]}
    for src in copied:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()}
    assert not copied & ignored
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["package-dir"].values())
    assert packages <= copied, f"packages missing from the image build: {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md", "repo-template"} <= copied   # the template link points there


def test_every_file_under_manifests_is_referenced(tmp_path: Path) -> None:
    listed = set()
    for kust in MANIFESTS.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kust.read_text())
        for key in ("resources",):
            for item in doc.get(key) or []:
                listed.add((kust.parent / item).resolve())
        for gen in doc.get("configMapGenerator") or []:
            for item in gen.get("files") or []:
                listed.add((kust.parent / item.split("=")[-1]).resolve())
    files = {p.resolve() for p in MANIFESTS.rglob("*.yaml") if p.name != "kustomization.yaml"}
    files |= {p.resolve() for p in MANIFESTS.rglob("*.txt")}
    assert files <= listed, f"not referenced by any kustomization: {sorted(map(str, files - listed))}"


def _settings_for(command: str, config_file: Path, env: dict[str, str], monkeypatch) -> Any:
    """Parse like `kubedr <command>` does inside the pod: no flags, KUBEDR_CONFIG + the Deployment's env."""
    from kubedr import config
    from kubedr.commands import cli

    for key in [k for k in __import__("os").environ if k.startswith("KUBEDR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBEDR_CONFIG", str(config_file))
    argv = ["--log-json", command] + (["save"] if command == "snapshot" else [])
    parser = cli.build_parser(command)
    args = parser.parse_args(argv)
    assert args.log_json is True
    config.apply_defaults(parser, args, argv)
    return args


@pytest.mark.parametrize("overlay,commands", [("primary", ("export", "snapshot")), ("secondary", ("apply",))])
def test_overlay_config_is_accepted_by_the_real_commands(kubectl: str, overlay: str, commands: tuple[str, ...],
                                                         monkeypatch) -> None:
    docs = render(kubectl, overlay)
    config_file = MANIFESTS / "overlays" / overlay / "config.yaml"
    sections = yaml.safe_load(config_file.read_text())
    assert set(sections) == set(commands)
    for command in commands:
        workload = next(d for d in docs if d["kind"] in ("Deployment", "DaemonSet") and
                        d["spec"]["template"]["spec"]["containers"][0]["args"][1] == command)
        pod = workload["spec"]["template"]
        env = {e["name"]: e.get("value", "from-field") for e in pod["spec"]["containers"][0].get("env", [])}
        assert env["KUBEDR_CONFIG"].startswith("/etc/kubedr/config/")
        env.pop("KUBEDR_CONFIG")
        args = _settings_for(command, config_file, env, monkeypatch)
        for key, value in sections[command].items():
            assert getattr(args, key) == value, f"{command}.{key} not picked up"
        if command in ("export", "apply"):
            assert args.metrics_listen == "0.0.0.0:9090"
            assert args.repo and args.workdir.startswith("/var/lib/kubedr/")


@pytest.mark.parametrize("command,lease", [("export", "kubedr-exporter"), ("apply", "kubedr-applier")])
def test_the_commands_the_deployments_run_accept_leader_election(command: str, lease: str, monkeypatch) -> None:
    """The Deployments run 2 replicas and set $KUBEDR_LEADER_ELECT; the command must honour it."""
    from kubedr.commands import cli

    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    dests = {a.dest: a.default for a in sub._actions}
    assert "leader_elect" in dests, f"`kubedr {command}` has no --leader-elect: both replicas would run active"
    assert dests["leader_election_name"] == lease


def test_snapshot_job_uses_its_service_account_not_the_nodes_admin_conf(kubectl: str) -> None:
    docs = render(kubectl, "primary")
    ds = by_kind(docs, "DaemonSet")["kubedr-snapshot"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubedr-snapshot" and pod.get("automountServiceAccountToken") is not False
    config_name = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "config")
    data = by_kind(docs, "ConfigMap")[config_name]["data"]
    settings = yaml.safe_load(data["config.yaml"])["snapshot"]
    assert settings["kubeconfig"] == "/etc/kubedr/config/sa.kubeconfig"
    kubeconfig = yaml.safe_load(data["sa.kubeconfig"])
    (user,) = kubeconfig["users"]
    assert user["user"] == {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://kubernetes.default.svc"
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"    # cluster DNS despite hostNetwork


def test_the_webhook_component_routes_to_the_leader_and_apply_takes_its_settings(kubectl: str, tmp_path: Path,
                                                                                monkeypatch) -> None:
    import os
    import subprocess

    from kubedr.applier.routing import LABEL, VALUE

    overlay = tmp_path / "secondary-webhook"
    overlay.mkdir()
    rel = os.path.relpath(MANIFESTS, overlay)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel}/overlays/secondary]\ncomponents: [{rel}/components/applier-webhook]\n")
    out = subprocess.run([kubectl, "kustomize", str(overlay)], check=True, capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        validate(doc)
    service = by_kind(docs, "Service")["kubedr-applier-webhook"]
    pod = by_kind(docs, "Deployment")["kubedr-applier"]["spec"]["template"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "kubedr-applier", LABEL: VALUE}
    assert pod["metadata"]["labels"].get(LABEL) is None  # only the leader, at run time, carries it
    (container,) = pod["spec"]["containers"]
    port = next(p for p in container["ports"] if p["name"] == service["spec"]["ports"][0]["targetPort"])
    env = {e["name"]: e.get("value", "from-field") for e in container["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= env.keys()  # the pod the leader labels
    mount = next(m for m in container["volumeMounts"] if env["KUBEDR_WEBHOOK_SECRET_FILE"].startswith(m["mountPath"]))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "kubedr-webhook"
    env.pop("KUBEDR_CONFIG")
    args = _settings_for("apply", MANIFESTS / "overlays" / "secondary" / "config.yaml", env, monkeypatch)
    assert args.webhook_listen == f"0.0.0.0:{port['containerPort']}"
    assert args.webhook_secret_file == "/etc/kubedr/webhook/secret"


def test_dr_region_runs_an_applier_per_source_that_writes_only_through_its_source_s_account(
        kubectl: str, tmp_path: Path, monkeypatch) -> None:
    """overlays/dr-region: two sources, each its own applier, lease, settings and signers; the appliers read the
    cluster, and write only as their source's ServiceAccount, which may write its namespace alone."""
    docs = render(kubectl, "dr-region")
    for doc in docs:
        validate(doc)
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"kubedr-applier-a", "kubedr-applier-b"}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}

    def rules_of(account: str) -> list[tuple[str | None, dict[str, Any]]]:
        """(namespace of the grant or None for the cluster, rule) of everything bound to kubedr-system/account."""
        out = []
        for b in bindings:
            if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"]):
                ns = b["metadata"].get("namespace")
                kind = b["roleRef"]["kind"]
                role = roles[(kind, ns if kind == "Role" else None, b["roleRef"]["name"])]
                out += [(ns, r) for r in role["rules"]]
        return out

    selectors = []
    for source in ("a", "b"):
        dep = deployments[f"kubedr-applier-{source}"]
        pod = dep["spec"]["template"]["spec"]
        selectors.append(dep["spec"]["selector"]["matchLabels"])
        assert pod["serviceAccountName"] == f"kubedr-applier-{source}"
        env = {e["name"]: e.get("value", "from-field") for e in pod["containers"][0]["env"]}
        assert env["KUBEDR_LEADER_ELECTION_NAME"] == f"kubedr-applier-{source}"
        config = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "config")
        (tmp_path / f"{source}.yaml").write_text(by_kind(docs, "ConfigMap")[config]["data"]["config.yaml"])
        env.pop("KUBEDR_CONFIG")
        args = _settings_for("apply", tmp_path / f"{source}.yaml", env, monkeypatch)
        assert (args.source, args.service_account) == (source, f"kubedr-system/kubedr-source-{source}")
        own = rules_of(f"kubedr-applier-{source}")
        cluster_verbs = {v for ns, r in own if ns is None for v in r["verbs"]}
        assert cluster_verbs == {"get", "list", "watch"}, "the applier itself writes nothing outside kubedr-system"
        assert {ns for ns, r in own if set(r["verbs"]) - {"get", "list", "watch"}} == {"kubedr-system"}
        impersonates = [r for ns, r in own if "impersonate" in r["verbs"]]
        assert impersonates == [{"apiGroups": [""], "resources": ["serviceaccounts"],
                                 "resourceNames": [f"kubedr-source-{source}"], "verbs": ["impersonate"]}]
        leases = [r for ns, r in own if "leases" in r.get("resources", []) and "resourceNames" in r]
        assert leases and all(r["resourceNames"] == [f"kubedr-applier-{source}"] for r in leases)
        writes = rules_of(f"kubedr-source-{source}")
        assert {ns for ns, r in writes if "resourceNames" not in r} == {f"app-{source}"}
        assert all(r["resourceNames"] == [f"app-{source}"] and r["resources"] == ["namespaces"]
                   for ns, r in writes if ns is None)
    assert selectors[0] != selectors[1], "one Deployment's ReplicaSets would adopt the other's Pods"
