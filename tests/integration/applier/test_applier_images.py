"""`kubedr images`: every image the repo's workloads need (image maps applied) and, with --check, whether the DR
registry has it: a real registry (Debian's docker-registry) on loopback, over TLS with htpasswd credentials, one
image pushed with skopeo. The applier's record and the switchover plan list them too."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr.commands.cli import main
from tests.conftest import free_port, port_open, wait_until
from tests.integration.applier.conftest import Repo, apply, deployment, namespace, status_of

REGISTRY = "/usr/bin/docker-registry"
PRIMARY = "registry.primary.example.com"


def cronjob(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                "containers": [{"name": name, "image": image}]}}}}}}


@pytest.fixture
def shop(repo: Repo) -> Repo:
    for o in (namespace("shop"), deployment("web", image=f"{PRIMARY}/shop/web:1.0"),
              deployment("api", image=f"{PRIMARY}/shop/web:1.0"), cronjob("report", f"{PRIMARY}/shop/report:2.0")):
        repo.put(o)
    repo.commit("shop")
    return repo


def images(*args: str) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run([sys.executable, "-m", "kubedr", "--log-level", "ERROR", "images", "-o", "json", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_images_listed_with_their_objects_and_the_map(shop: Repo, tmp_path: Path) -> None:
    code, rows = images("--repo", str(shop.remote), "--workdir", str(tmp_path / "w"),
                        "--image-map", f"{PRIMARY}=reg.dr.example.com")
    assert code == 0
    assert {r["image"]: r["objects"] for r in rows} == {
        "busybox:1.36": ["batch/CronJob shop/report"],
        "reg.dr.example.com/shop/report:2.0": ["batch/CronJob shop/report"],
        "reg.dr.example.com/shop/web:1.0": ["apps/Deployment shop/api", "apps/Deployment shop/web"],
    }


def test_applier_record_and_switchover_plan_name_the_images(secondary: Any, shop: Repo,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert apply(secondary, shop, "--image-map", f"{PRIMARY}=reg.dr.example.com") == 0
    st = status_of(secondary)
    assert st["images"]["reg.dr.example.com/shop/web:1.0"] == ["apps/Deployment shop/api", "apps/Deployment shop/web"]
    assert st["imageCount"] == 3
    capsys.readouterr()
    assert main(["switchover", "--plan", "--kubeconfig", secondary.kubeconfig_path]) == 0
    out = capsys.readouterr().out
    assert "would bring up Deployment shop/web: replicas 0 -> 3" in out
    assert "reg.dr.example.com/shop/report:2.0  (batch/CronJob shop/report)" in out


# ---- a real registry ------------------------------------------------------------------------------------------

def _oci_layout(root: Path, tag: str) -> Path:
    """A one-layer image in an OCI layout directory, for skopeo to push."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"kubedr test image\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer_tar = buf.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]}
                         }).encode()

    def blob(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer)}]
                           }).encode()
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """docker-registry on loopback (TLS, htpasswd user/secret) holding shop/web:1.0, pushed by skopeo."""
    if not Path(REGISTRY).exists():
        pytest.skip("Debian's docker-registry is not installed (scripts/test installs it when apt can)")
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (scripts/test installs it when apt can)")
    import bcrypt  # docker-registry's htpasswd takes bcrypt hashes only

    from kubedr.emulator.tls import serving_certs

    ca, cert, key = serving_certs("127.0.0.1")
    d = tmp_path / "registry"
    (d / "certs").mkdir(parents=True)
    (d / "certs" / "ca.crt").write_bytes(ca)
    (d / "tls.crt").write_bytes(cert + ca)
    (d / "tls.key").write_bytes(key)
    (d / "htpasswd").write_text(f"user:{bcrypt.hashpw(b'secret', bcrypt.gensalt()).decode()}\n")
    port = free_port()
    (d / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "error"}, "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(d / "tls.crt"), "key": str(d / "tls.key")}},
        "auth": {"htpasswd": {"realm": "kubedr-test", "path": str(d / "htpasswd")}}}))
    proc = subprocess.Popen([REGISTRY, "serve", str(d / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=(d / "registry.log").open("w"))
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, what="docker-registry to listen")
        assert proc.poll() is None, (d / "registry.log").read_text()
        host = f"127.0.0.1:{port}"
        push = subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-creds", "user:secret",
                               "--dest-cert-dir", str(d / "certs"), f"oci:{_oci_layout(d / 'image', '1.0')}:1.0",
                               f"docker://{host}/shop/web:1.0"], capture_output=True, text=True, timeout=120)
        assert push.returncode == 0, push.stderr
        yield {"host": host, "ca": str(d / "certs" / "ca.crt"), "dir": d}
    finally:
        proc.terminate()
        proc.wait(10)


def test_check_against_a_real_registry(shop: Repo, registry: dict[str, Any], tmp_path: Path, secondary: Any) -> None:
    host = registry["host"]
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"user:secret").decode()}}}))
    common = ("--repo", str(shop.remote), "--workdir", str(tmp_path / "w"), "--image-map", f"{PRIMARY}={host}",
              "--image-map", f"busybox={host}/shop/web", "--check", "--ca-file", registry["ca"])
    code, rows = images(*common, "--auth-file", str(auth))
    assert code == 1
    state = {r["image"]: r["state"] for r in rows}
    assert state == {f"{host}/shop/web:1.0": "present", f"{host}/shop/report:2.0": "missing",
                     f"{host}/shop/web:1.36": "missing"}
    present = next(r for r in rows if r["state"] == "present")
    assert present["detail"].startswith("sha256:")
    assert present["objects"] == ["apps/Deployment shop/api", "apps/Deployment shop/web"]

    # the secondary's pull credentials, from its dockerconfigjson Secret
    secondary.api.create(namespace("shop"))
    secondary.api.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                          "metadata": {"name": "pull", "namespace": "shop"},
                          "data": {".dockerconfigjson": base64.b64encode(auth.read_bytes()).decode()}})
    code, rows = images(*common, "--kubeconfig", secondary.kubeconfig_path, "--pull-secret", "shop/pull")
    assert {r["image"]: r["state"] for r in rows} == state

    code, rows = images(*common)  # no credentials: nothing is claimed present or missing
    assert code == 1 and {r["state"] for r in rows} == {"error"}
    assert "wants credentials" in rows[0]["detail"]
