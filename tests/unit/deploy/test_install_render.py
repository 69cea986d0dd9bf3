"""What `kubedr install` renders: the same objects `kubectl kustomize` gives for the filled overlays, every
setting read by the command it is for, every key mounted where its command reads it, and nothing private."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from kubedr import sealing, signing
from kubedr.commands import install_keys, install_tree, kustomize
from kubedr.commands.install_tree import KEEP, SETTINGS, Values
from tests.manifests import by_kind

RECIPIENT = str(pyrage.x25519.Identity.generate().to_public())
SIGNER = signing.public_key(signing.parse_private_key(signing.new_private_key(), "test key"))
ONE_NAMESPACE = {"repo": "https://git.example.com/dr/cluster-config.git", "branch": "dr",
                 "primary_cluster_name": "prod-eu-1", "secondary_cluster_name": "prod-us-1",
                 "namespaces": "shop,payments", "all_namespaces": None, "exclude_namespaces": None,
                 "snapshot_store": "s3://kubedr-snapshots/etcd"}
ALL_NAMESPACES = {**ONE_NAMESPACE, "namespaces": None, "all_namespaces": True, "exclude_namespaces": "kube-system,lab"}
COMMAND = {"export": "kubedr-exporter", "apply": "kubedr-applier", "snapshot": "kubedr-snapshot"}


def filled(settings: dict[str, Any] | None = None, image: str = "") -> dict[str, bytes]:
    return install_tree.fill(install_tree.manifests(), Values(dict(settings or ONE_NAMESPACE), [RECIPIENT],
                                                              [("exporter@prod-eu-1", SIGNER)], image))


def kustomized(kubectl: str, tree: dict[str, bytes], where: str, tmp: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a directory of the tree, written to tmp."""
    install_tree.write_tree(tree, tmp)
    out = subprocess.run([kubectl, "kustomize", str(tmp / where)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def keyed(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}


CASES = {
    "as shipped": lambda: install_tree.manifests(),
    "one namespace": lambda: filled(),
    "all namespaces, no snapshots": lambda: filled({**ALL_NAMESPACES, "snapshot_store": None,
                                                    "exclude_namespaces": KEEP}),
    "image by tag": lambda: filled(image="registry.example.com:5000/dr/kubedr:0.2.0"),
    "image by digest": lambda: filled(image="registry.example.com/kubedr@sha256:" + "ab" * 32),
    "image without a tag": lambda: filled(image="registry.example.com/kubedr"),
}


@pytest.mark.parametrize("overlay", ["primary", "secondary"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_renderer_gives_what_kubectl_kustomize_gives(kubectl: str, tmp_path: Path, case: str,
                                                         overlay: str) -> None:
    tree = CASES[case]()
    mine = keyed(install_tree.render(tree, overlay))
    theirs = keyed(kustomized(kubectl, tree, f"overlays/{overlay}", tmp_path))
    assert set(mine) == set(theirs)
    assert mine == theirs


def test_generated_names_hash_as_kustomize_does(kubectl: str, tmp_path: Path) -> None:
    """Go escapes <, > and & in the JSON it hashes, keeps other Unicode; every kind of reference follows."""
    pod = {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {
        "name": "odd", "key": "k"}}}], "envFrom": [{"configMapRef": {"name": "odd"}}]}],
           "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "odd"}}]}}]}
    tree = {"kustomization.yaml": yaml.safe_dump({"resources": ["job.yaml"], "configMapGenerator": [
        {"name": "odd", "literals": ["k=<a & b> é \u2028 ü"]}]}).encode(),
            "job.yaml": yaml.safe_dump({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "j"},
                                        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {
                                            "template": {"spec": pod}}}}}).encode()}
    mine = keyed(kustomize.build(tree, "."))
    assert mine == keyed(kustomized(kubectl, tree, ".", tmp_path))
    assert "'odd'" not in str(mine[("CronJob", "", "j")])  # every reference follows the new name


@pytest.mark.parametrize("field,kustomization", [
    ("namePrefix", {"namePrefix": "x-", "resources": ["cm.yaml"]}),
    ("envs", {"configMapGenerator": [{"name": "a", "envs": ["a.env"]}]}),
    ("includeSelectors", {"resources": ["cm.yaml"], "labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]}),
    ("JSON 6902", {"resources": ["cm.yaml"], "patches": [{"patch": "metadata:\n  name: y\n"}]}),
])
def test_the_renderer_refuses_what_it_does_not_render(field: str, kustomization: dict[str, Any]) -> None:
    tree = {"k/kustomization.yaml": yaml.safe_dump(kustomization).encode(),
            "k/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}
    with pytest.raises(kustomize.RenderError) as refused:
        kustomize.build(tree, "k")
    assert str(refused.value).startswith("k/kustomization.yaml: ") and field in str(refused.value)


def _config(docs: list[dict[str, Any]], command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config.yaml the command's workload mounts, and the workload."""
    workload = next(d for d in docs if d["kind"] in ("Deployment", "DaemonSet") and d["metadata"]["name"] == COMMAND[
        command])
    pod = workload["spec"]["template"]["spec"]
    config_map = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "config")
    return yaml.safe_load(by_kind(docs, "ConfigMap")[config_map]["data"]["config.yaml"]), workload


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s.overlay}.{s.section}.{s.key}")
def test_every_setting_reaches_the_command_that_reads_it(setting: install_tree.Setting, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The option's value is in the config file the command's pod mounts, and the command reads it from there."""
    from kubedr import config
    from kubedr.commands import cli

    settings = ALL_NAMESPACES if setting.option in ("all_namespaces", "exclude_namespaces") else ONE_NAMESPACE
    docs = install_tree.render(filled(settings), setting.overlay)
    written, _ = _config(docs, setting.section)
    assert written[setting.section][setting.key] == settings[setting.option]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(written))
    for key in [k for k in os.environ if k.startswith("KUBEDR_")]:
        monkeypatch.delenv(key)
    argv = ["--log-json", setting.section] + (["save"] if setting.section == "snapshot" else [])
    parser = cli.build_parser(setting.section)
    args = parser.parse_args(["--config", str(tmp_path / "config.yaml"), *argv])
    config.apply_defaults(parser, args, argv)
    assert getattr(args, setting.key) == settings[setting.option]


def test_a_setting_given_as_none_leaves_the_template() -> None:
    export, _ = _config(install_tree.render(filled(), "primary"), "export")
    assert export["export"]["namespaces"] == "shop,payments"
    assert "all_namespaces" not in export["export"] and "exclude_namespaces" not in export["export"]
    kept, _ = _config(install_tree.render(filled({**ALL_NAMESPACES, "exclude_namespaces": KEEP}), "primary"), "export")
    template = yaml.safe_load(install_tree.manifests()["overlays/primary/config.yaml"])
    assert kept["export"]["exclude_namespaces"] == template["export"]["exclude_namespaces"]


def test_the_snapshot_job_comes_with_a_store_only() -> None:
    without = install_tree.render(filled({**ONE_NAMESPACE, "snapshot_store": None}), "primary")
    assert not by_kind(without, "DaemonSet") and "snapshot" not in _config(without, "export")[0]
    label = "pod-security.kubernetes.io/enforce"
    assert by_kind(without, "Namespace")["kubedr-system"]["metadata"]["labels"][label] == "restricted"
    with_store = install_tree.render(filled(), "primary")
    assert set(by_kind(with_store, "DaemonSet")) == {"kubedr-snapshot"}
    assert by_kind(with_store, "Namespace")["kubedr-system"]["metadata"]["labels"][label] == "privileged"


@pytest.mark.parametrize("key", install_keys.KEYS, ids=lambda k: k.secret)
def test_every_key_is_mounted_only_where_it_belongs_and_read_there(key: install_keys.Key) -> None:
    """Its side's workload mounts the Secret, and its command's config or env names the file; the other side's
    manifests never name the Secret."""
    command = "export" if key.side == "primary" else "apply"
    docs = install_tree.render(filled(), key.side)
    settings, workload = _config(docs, command)
    pod = workload["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if (v.get("secret") or {}).get("secretName") == key.secret]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    path = f"{mount['mountPath']}/{key.item}"
    named = set(map(str, settings[command].values())) | {e.get("value") for e in pod["containers"][0]["env"]}
    assert path in named, f"{key.secret}: nothing reads {path}"
    other = "secondary" if key.side == "primary" else "primary"
    assert key.secret not in str(install_tree.render(filled(), other))


@pytest.mark.parametrize("key", install_keys.KEYS, ids=lambda k: k.secret)
def test_a_new_key_reads_back_and_a_broken_one_is_named(key: install_keys.Key) -> None:
    public = key.public(key.make(), "new")
    if key.secret == "kubedr-age-identity":
        assert sealing.parse_recipient(public) == public
    elif key.secret == "kubedr-signing-key":
        assert public.startswith("ssh-ed25519 ")
    else:
        assert public == ""  # the digest key has nothing that travels
    with pytest.raises((ValueError, signing.SigningError)) as broken:
        key.public(b"not a key\n", "Secret kubedr-system/x: item")
    assert str(broken.value).startswith("Secret kubedr-system/x: item")


def test_only_public_keys_travel_and_every_object_carries_the_install_label() -> None:
    tree = filled()
    assert RECIPIENT in tree["overlays/primary/recipients.txt"].decode()
    assert f'exporter@prod-eu-1 namespaces="git" {SIGNER}' in tree["overlays/secondary/allowed_signers"].decode()
    for overlay in ("primary", "secondary"):
        for obj in install_tree.render(tree, overlay):
            assert obj["metadata"]["labels"][install_tree.INSTALLED_BY[0]] == install_tree.INSTALLED_BY[1], obj
        assert "PRIVATE KEY" not in str(tree) and "AGE-SECRET-KEY" not in str(tree).upper()
