"""`kubectl apply -k` of each overlay into the API emulator, as a user would run it against a cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

OVERLAYS = ROOT / "manifests" / "overlays"


def kubectl_run(kubectl: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=120)


def rendered(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(OVERLAYS / overlay)], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def served_kinds(kubectl: str, kubeconfig: Path) -> set[tuple[str, str]]:
    out = kubectl_run(kubectl, kubeconfig, "api-resources", "-o", "wide", "--no-headers")
    assert out.returncode == 0, out.stderr
    kinds = set()
    for line in out.stdout.splitlines():
        cols = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...
        idx = next(i for i, c in enumerate(cols) if c in ("true", "false"))
        kinds.add((cols[idx - 1], cols[idx + 1]))
    return kinds


@pytest.fixture
def kubeconfig(emulator: Any, tmp_path: Path) -> Path:
    return emulator.write_kubeconfig(tmp_path / "apply-kubeconfig")


@pytest.mark.parametrize("overlay", ["primary", "secondary", "dr-region"])
@pytest.mark.parametrize("mode", ["client-side", "server-side"])
def test_apply_k_creates_every_object(kubectl: str, kubeconfig: Path, overlay: str, mode: str) -> None:
    docs = rendered(kubectl, overlay)
    missing = {(d["apiVersion"], d["kind"]) for d in docs} - served_kinds(kubectl, kubeconfig)
    extra = ["--server-side"] if mode == "server-side" else []
    proc = kubectl_run(kubectl, kubeconfig, "apply", *extra, "-k", str(OVERLAYS / overlay))
    # every object the emulator serves was created, whatever happened to the others
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in missing:
            continue
        meta = doc["metadata"]
        args = ["get", doc["kind"].lower() + "." + (doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"]
                                                    else ""), meta["name"], "-o", "json"]
        args[1] = args[1].rstrip(".")
        if meta.get("namespace"):
            args += ["-n", meta["namespace"]]
        got = kubectl_run(kubectl, kubeconfig, *args)
        assert got.returncode == 0, f"{doc['kind']} {meta['name']}: {got.stderr}"
        live = json.loads(got.stdout)
        assert live["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubedr"
        if doc["kind"] == "Deployment":
            assert live["spec"]["replicas"] == 2
            container = live["spec"]["template"]["spec"]["containers"][0]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert not missing, f"the emulator does not serve {sorted(missing)}; kubectl said: {proc.stderr.strip()[-300:]}"
    assert proc.returncode == 0, proc.stderr
    # applying again changes nothing
    again = kubectl_run(kubectl, kubeconfig, "apply", *extra, "-k", str(OVERLAYS / overlay))
    assert again.returncode == 0, again.stderr
    if mode == "client-side":
        # PodDisruptionBudgetSpec.selector has patchStrategy "replace": kubectl's three-way patch always carries
        # it, so a real cluster reports the PDB "configured" on every re-apply too (the object does not change).
        changed = [line for line in again.stdout.splitlines()
                   if not line.endswith("unchanged") and not line.startswith("poddisruptionbudget.policy/")]
        assert not changed, again.stdout
