"""The rendered manifests, and what their pods get at run time: user, read-only root, writable paths, env."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import yaml

from tests.conftest import ROOT

MANIFESTS = ROOT / "manifests"
OVERLAYS = ("primary", "secondary")
# Kubernetes mounts these volume types read-only whatever the mount says.
READ_ONLY_VOLUMES = {"configMap", "secret", "projected", "downwardAPI"}


def render(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay, as documents."""
    out = subprocess.run([kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """name -> document, for one kind."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@dataclass(frozen=True)
class PodRuntime:
    """What the single container of a workload runs as and may write."""

    workload: str
    image: str
    user: int | None
    group: int | None
    read_only_root: bool
    writable: tuple[str, ...]
    env: dict[str, str]
    args: tuple[str, ...]
    ports: tuple[int, ...]


def pod_runtime(workload: dict[str, Any]) -> PodRuntime:
    """The container's effective user, root-fs mode, writable mounts and literal env (Deployment or DaemonSet)."""
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    writable = tuple(m["mountPath"] for m in container.get("volumeMounts", [])
                     if not m.get("readOnly") and not READ_ONLY_VOLUMES & set(volumes[m["name"]]))
    return PodRuntime(
        workload=f"{workload['kind']}/{workload['metadata']['name']}",
        image=container["image"],
        user=sc.get("runAsUser", pod_sc.get("runAsUser")),
        group=sc.get("runAsGroup", pod_sc.get("runAsGroup")),
        read_only_root=bool(sc.get("readOnlyRootFilesystem")),
        writable=writable,
        env={e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
        args=tuple(container.get("args", [])),
        ports=tuple(p["containerPort"] for p in container.get("ports", [])),
    )


def under(path: str, roots: tuple[str, ...]) -> bool:
    """path is one of roots or inside one."""
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)
