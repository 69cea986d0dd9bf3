"""Sealed Secrets on the applier side, and `kubedr sync` (one-shot export + apply) between two clusters."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyrage

from kubedr import sealing
from kubedr.commands.cli import main
from tests.integration.applier.conftest import Repo, apply, configmap, live, namespace, status_of


def secret(name: str, value: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "shop"},
            "type": "Opaque", "data": {"password": base64.b64encode(value).decode()}}


def test_sealed_secret_without_identity_refused_by_name_rest_applies(secondary: Any, repo: Repo,
                                                                     tmp_path: Path) -> None:
    ident = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "applier.key"
    key_file.write_text(f"# created: test\n{ident}\n")
    sealer = sealing.Sealer([str(ident.to_public())], b"d" * 32)
    repo.put(namespace("shop"))
    repo.put(configmap("settings"))
    path = repo.put(sealer.seal(secret("db", b"hunter2")))
    repo.commit("sealed secret")

    assert apply(secondary, repo) == 1
    assert live(secondary, "v1", "ConfigMap", "settings", "shop") is not None
    assert live(secondary, "v1", "Secret", "db", "shop") is None
    [failure] = status_of(secondary)["failures"]
    assert failure["path"] == path and "shop/db" in failure["reason"] and "--identity" in failure["reason"]

    assert apply(secondary, repo, "--identity", str(key_file)) == 0
    got = live(secondary, "v1", "Secret", "db", "shop")
    assert base64.b64decode(got["data"]["password"]) == b"hunter2"
    assert "sealed" not in got


def test_sync_carries_namespaces_and_secrets_in_one_command(primary: Any, secondary: Any) -> None:
    api = primary.api
    for ns in ("shop", "billing", "ignored"):
        api.create(namespace(ns))
        api.create(configmap("settings", ns=ns))
    api.create(secret("db", b"s3cret"))
    rc = main(["sync", "--from-kubeconfig", primary.kubeconfig_path, "--to-kubeconfig", secondary.kubeconfig_path,
               "--namespaces", "shop billing"])
    assert rc == 0
    assert live(secondary, "v1", "ConfigMap", "settings", "shop") is not None
    assert live(secondary, "v1", "ConfigMap", "settings", "billing") is not None
    assert live(secondary, "v1", "Namespace", "ignored") is None
    assert base64.b64decode(live(secondary, "v1", "Secret", "db", "shop")["data"]["password"]) == b"s3cret"



def test_sync_exports_in_this_process_from_any_directory(primary: Any, secondary: Any, tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    """No child Python: with no interpreter to start (and run from elsewhere) it exports and applies all the same."""
    primary.api.create(namespace("shop"))
    primary.api.create(configmap("settings", ns="shop"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
    monkeypatch.chdir(tmp_path)
    assert main(["sync", "--from-kubeconfig", primary.kubeconfig_path, "--to-kubeconfig", secondary.kubeconfig_path,
                 "--namespaces", "shop"]) == 0
    assert live(secondary, "v1", "ConfigMap", "settings", "shop") is not None


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # kubectl apply's copy of the object


def test_diff_masks_secret_values_as_kubectl_diff_does(secondary: Any, repo: Repo, tmp_path: Path) -> None:
    ident = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "applier.key"
    key_file.write_text(f"# created: test\n{ident}\n")
    sealer = sealing.Sealer([str(ident.to_public())], b"d" * 32)
    values = {"password": b"pw-before-4f1c", "same": b"same-9d2e", "token": b"tok-old-77aa", "after": b"pw-after-0b3e",
              "added": b"new-c4d5"}

    def sealed(name: str, **data: bytes) -> dict[str, Any]:
        obj = {**secret(name, b""), "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        return sealer.seal(obj)

    repo.put(namespace("shop"))
    repo.put(sealed("db", password=values["password"], same=values["same"]))
    old = repo.put(sealed("old", token=values["token"]))
    repo.commit("secrets")
    assert apply(secondary, repo, "--identity", str(key_file)) == 0
    db = live(secondary, "v1", "Secret", "db", "shop")
    copy = json.dumps({"apiVersion": "v1", "kind": "Secret", "data": db["data"]})  # as `kubectl apply` keeps it
    secondary.api.patch("v1", "Secret", "db", {"metadata": {"annotations": {LAST_APPLIED: copy}}}, "merge",
                        namespace="shop", manager="kubectl-client-side-apply")
    repo.put(sealed("db", password=values["after"], same=values["same"], added=values["added"]))
    repo.remove(old)
    values["pin"] = b"13579"  # a plain Secret the schema refuses: its error must not quote the value
    repo.put({**secret("plain", b""), "data": {}, "stringData": {"pin": int(values["pin"])}})
    repo.commit("rotate the password, add a key, drop a Secret")

    done = subprocess.run([sys.executable, "-m", "kubedr", "diff", "--kubeconfig", secondary.kubeconfig_path, "--repo",
                           str(repo.remote), "--identity", str(key_file), "--prune", "--workdir",
                           str(tmp_path / "diff-work")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    out = done.stdout + done.stderr
    assert "shop/Secret/plain.yaml" in done.stderr and "Secret value: not shown" in done.stderr
    for line in ("-  password: '*** (before)'", "+  password: '*** (after)'", "+  added: '***'", "   same: '***'",
                 "-  token: '***'", f"     {LAST_APPLIED}: '***'"):
        assert line in out.splitlines(), out
    dry = subprocess.run([sys.executable, "-m", "kubedr", "apply", "--kubeconfig", secondary.kubeconfig_path, "--repo",
                          str(repo.remote), "--identity", str(key_file), "--prune", "--dry-run", "--once"],
                         capture_output=True, text=True, timeout=120)
    assert "would fail shop/Secret/plain.yaml" in dry.stdout, dry.stdout + dry.stderr
    assert apply(secondary, repo, "--identity", str(key_file)) == 1  # the plain one fails: into kubedr-status
    status = subprocess.run([sys.executable, "-m", "kubedr", "status", "--secondary-kubeconfig",
                             secondary.kubeconfig_path, "-o", "json"], capture_output=True, text=True, timeout=60)
    assert "plain.yaml" in status.stdout
    for text in (out, dry.stdout + dry.stderr, status.stdout + status.stderr, json.dumps(status_of(secondary))):
        for value in values.values():
            assert value.decode() not in text and base64.b64encode(value).decode() not in text
    assert base64.b64decode(live(secondary, "v1", "Secret", "db", "shop")["data"]["password"]) == values["after"]
