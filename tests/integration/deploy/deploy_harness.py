"""What the deploy tests share: a pretend kubelet that runs one of kubedr's Deployments as a local process, with
exactly the args, env and mounted files its Pod would get, and a snapshot of every object of a cluster.

The emulator runs no containers, so `run_deployment` reads the live Deployment and its ConfigMaps and Secrets
over the wire (kubectl), writes each volume under a root directory at its mount path and starts `python -m
kubedr <args>` there. The only differences from the Pod: every mount path is under that root (in the env and
in the mounted config files, as text), KUBECONFIG stands in for the service account, the fieldRefs get fixed
values, and the metrics port is a free loopback one.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

NAMESPACE = "kubedr-system"
FIELDS = {"metadata.name": "{name}-local", "metadata.namespace": NAMESPACE, "spec.nodeName": "local"}


def kubectl_json(kubectl: str, kubeconfig: Path, *args: str) -> Any:
    done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args, "-o", "json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def snapshot(kubectl: str, kubeconfig: Path) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(apiVersion, kind, namespace, name) -> object, for every object of every kind the cluster lists."""
    types = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "api-resources", "--verbs=list", "-o", "name"],
                           capture_output=True, text=True, timeout=60, check=True).stdout.split()
    items = kubectl_json(kubectl, kubeconfig, "get", ",".join(types), "--all-namespaces")["items"]
    return {(o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in items}


def versions(objects: dict[tuple[str, str, str, str], dict[str, Any]]) -> dict[tuple[str, str, str, str], str]:
    return {key: obj["metadata"]["resourceVersion"] for key, obj in objects.items()}


def _rehome(text: str, mounts: list[str], root: Path) -> str:
    """Every absolute mount path in text moved under root."""
    pattern = "|".join(re.escape(m.rstrip("/")) for m in sorted(mounts, key=len, reverse=True))
    return re.sub(rf"(?<![\w/.])({pattern})(?=/|\b|$)", lambda m: f"{root}{m.group(1)}", text)


def _volume_files(kubectl: str, kubeconfig: Path, volume: dict[str, Any]) -> tuple[dict[str, bytes], int]:
    """The files a volume mounts (a ConfigMap's or Secret's keys; none for an emptyDir) and their mode."""
    if "configMap" in volume:
        cm = kubectl_json(kubectl, kubeconfig, "-n", NAMESPACE, "get", "configmap", volume["configMap"]["name"])
        return {k: v.encode() for k, v in (cm.get("data") or {}).items()}, volume["configMap"].get("defaultMode", 0o644)
    if "secret" in volume:
        secret = kubectl_json(kubectl, kubeconfig, "-n", NAMESPACE, "get", "secret", volume["secret"]["secretName"])
        return ({k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()},
                volume["secret"].get("defaultMode", 0o644))
    assert "emptyDir" in volume, f"the pretend kubelet mounts configMap, secret and emptyDir only: {volume}"
    return {}, 0o755


def run_deployment(kubectl: str, kubeconfig: Path, name: str, root: Path, metrics_port: int,
                   log: Path) -> subprocess.Popen:
    """Start the Deployment's container as a local process, as its Pod would run it (see the module's doc)."""
    dep = kubectl_json(kubectl, kubeconfig, "-n", NAMESPACE, "get", "deployment", name)
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    files: dict[Path, tuple[bytes, int]] = {}
    for mount in container.get("volumeMounts", []):
        where = root / mount["mountPath"].lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        content, mode = _volume_files(kubectl, kubeconfig, volumes[mount["name"]])
        for item, data in content.items():
            files[where / item] = (data, mode)
    for path, (data, mode) in files.items():  # config files name mount paths too: moved under root like the env
        text = _rehome(data.decode(), mounts, root).encode() if path.suffix in (".yaml", ".kubeconfig") else data
        path.write_bytes(text)
        path.chmod(mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEDR_", "KUBECONFIG", "GIT_"))}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _rehome(item["value"], mounts, root)
        else:
            env[item["name"]] = FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]].format(name=name)
    env["KUBECONFIG"] = str(kubeconfig)  # the service account's stand-in
    env["KUBEDR_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    argv = [sys.executable, "-m", "kubedr", *container.get("args", [])]  # the image's entrypoint is `kubedr`
    assert "command" not in container, "the image's entrypoint runs the container"
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=root / "var/lib/kubedr", env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
