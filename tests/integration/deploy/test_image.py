"""The container image, built by scripts/image (mmdebstrap + buildah, no registry, no daemon) and run with buildah:
uid 65532, read-only root, only the manifests' volumes writable, the tools the stages call, the demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from image import build as image
from tests.conftest import ROOT
from tests.manifests import MANIFESTS, by_kind, pod_runtime, render

TOOLS = ("mmdebstrap", "buildah", "skopeo")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="root-only: mmdebstrap's root mode and buildah's chroot need root "
                       "(CI runs as root; scripts/test installs the tools)"),
    pytest.mark.skipif(not all(map(shutil.which, TOOLS)),
                       reason=f"needs Debian's {', '.join(TOOLS)} (scripts/test installs them)"),
    pytest.mark.timeout(900),
]
SPEC = image.load_spec()
Run = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """scripts/image, once for the module, from the checkout, into a temp dir."""
    out = tmp_path_factory.mktemp("image") / "kubedr.oci.tar"
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "image"), "--output", str(out)], capture_output=True,
                          text=True, timeout=840, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"\n{proc.stdout.strip()} (test fixture: {time.monotonic() - started:.0f} s)")
    assert re.search(r"-> .*kubedr\.oci\.tar: \d+ MB \(\d+ MB unpacked\), built in \d+ s", proc.stdout)
    yield out
    out.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def container(archive: Path) -> Iterator[Run]:
    """A container from the archive (as a user would load it) whose root file system is mounted read-only."""
    with image.scratch() as tmp:
        bah = image.Buildah(tmp / "storage")
        ctr = bah("from", "-q", f"oci-archive:{archive}")
        # as in Kubernetes, the image's VOLUMEs get nothing: only what a test mounts is writable
        bah("config", *[a for v in SPEC["volumes"] for a in ("--volume", f"{v}-")], ctr)
        rootfs = bah("mount", ctr)
        run_dir = tmp / "run"     # buildah writes /run/.containerenv: /run is the one host-side writable dir
        run_dir.mkdir()
        mounts = [rootfs, f"{rootfs}/run"]
        subprocess.run(["mount", "--bind", rootfs, rootfs], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", rootfs], check=True)
            subprocess.run(["mount", "--bind", str(run_dir), f"{rootfs}/run"], check=True)

            def run(*cmd: str, user: str = "65532:65532", volumes: dict[str, Path] | None = None,
                    env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
                """cmd in the container as user, capabilities dropped, with host dirs on the given paths."""
                opts = ["--isolation", "chroot", "--user", user, "--cap-drop", "all"]
                opts += [a for path, host in (volumes or {}).items() for a in ("-v", f"{host}:{path}")]
                opts += [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
                return subprocess.run([*bah.base, "run", *opts, ctr, "--", *cmd], capture_output=True, text=True,
                                      timeout=timeout, env=bah.env)

            yield run
        finally:
            for m in reversed(mounts):
                subprocess.run(["umount", m], capture_output=True)


def empty_dirs(base: Path, paths: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """Fresh host dirs for the writable paths, world-writable like a pod's emptyDir."""
    out = {}
    for i, path in enumerate(paths):
        host = base / f"vol{i}"
        host.mkdir()
        host.chmod(0o1777)
        out[path] = host
    return out


def test_a_killed_builds_tmpfs_is_freed_by_the_next(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / "stale"
    stale.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"{image.TMPFS}-{gone.pid}", str(stale)], check=True)
    alive = tmp_path / "alive"     # a build still running keeps its tmpfs
    alive.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"{image.TMPFS}-{os.getpid()}", str(alive)], check=True)
    try:
        image.reap_stale_scratch()
        mounted = Path("/proc/mounts").read_text()
        assert f" {stale} " not in mounted and not stale.exists()
        assert f" {alive} " in mounted
    finally:
        subprocess.run(["umount", str(alive)], capture_output=True)
        subprocess.run(["umount", str(stale)], capture_output=True)


def test_skopeo_reads_the_archive_user_entrypoint_and_settings(archive: Path) -> None:
    summary = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"], check=True,
                                        capture_output=True, text=True, timeout=60).stdout)
    assert summary["Labels"]["org.opencontainers.image.version"] == image.version()
    config = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{archive}"], check=True,
                                       capture_output=True, text=True, timeout=60).stdout)["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == SPEC["entrypoint"] and config["Cmd"] == SPEC["cmd"]
    assert config["WorkingDir"] == SPEC["workdir"]
    assert set(config["Volumes"]) == set(SPEC["volumes"])
    assert set(config["ExposedPorts"]) == {f"{p}/tcp" for p in SPEC["ports"]}
    assert dict(e.split("=", 1) for e in config["Env"]) == SPEC["env"]
    index = subprocess.run(["tar", "-xOf", str(archive), "index.json"], check=True, capture_output=True,
                           text=True).stdout
    (manifest,) = json.loads(index)["manifests"]
    assert manifest["annotations"]["org.opencontainers.image.ref.name"] == image.reference(SPEC)


def test_tools_run_as_65532_on_a_read_only_root(container: Run, tmp_path: Path) -> None:
    volumes = empty_dirs(tmp_path, SPEC["volumes"])
    script = ("id -u; id -g; echo HOME=$HOME; pwd; kubedr --help; git --version; ssh -V 2>&1; age --version; "
              "etcdctl version; tini --version; grep ' / ' /proc/mounts")
    proc = container("sh", "-c", script, volumes=volumes)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["65532", "65532", f"HOME={SPEC['env']['HOME']}", SPEC["workdir"]]
    out = proc.stdout
    assert "usage: kubedr" in out and re.search(r"^git version 2\.", out, re.M)
    assert re.search(r"^OpenSSH_\d", out, re.M) and re.search(r"^v?1\.\d+\.\d+", out, re.M)   # age
    assert re.search(r"^etcdctl version: 3\.", out, re.M) and re.search(r"^tini version 0\.", out, re.M)
    assert " ro," in lines[-1], f"root not read-only: {lines[-1]}"
    for path in ("/probe", "/etc/probe", f"{SPEC['venv']}/probe", "/usr/probe"):
        denied = container("touch", path, volumes=volumes)
        assert denied.returncode != 0 and ("Read-only" in denied.stderr or "Permission denied" in denied.stderr)
    for path in SPEC["volumes"]:
        assert container("touch", f"{path}/probe").returncode != 0, f"{path} writable with no volume on it"
        assert container("touch", f"{path}/probe", volumes=volumes).returncode == 0
        assert (volumes[path] / "probe").exists()


@pytest.mark.parametrize("overlay,name", [("primary", "kubedr-exporter"), ("secondary", "kubedr-applier")])
def test_the_deployments_settings_are_enough_at_run_time(container: Run, kubectl: str, tmp_path: Path,
                                                         overlay: str, name: str) -> None:
    """With only the Deployment's user, env and writable mounts, git can init the workdir and write HOME."""
    pod = pod_runtime(by_kind(render(kubectl, overlay), "Deployment")[name])
    command = pod.args[1]
    workdir = yaml.safe_load((MANIFESTS / "overlays" / overlay / "config.yaml").read_text())[command]["workdir"]
    volumes = empty_dirs(tmp_path, pod.writable)
    env = {k: v for k, v in pod.env.items() if not k.startswith(("KUBEDR_", "GIT_SSH", "GIT_CONFIG"))}
    script = (f'git init -q -b main "{workdir}" && git -C "{workdir}" commit -q --allow-empty -m probe '
              '&& git config --global safe.directory "*" && test -s "$HOME/.gitconfig" '
              f'&& kubedr {command} --help >/dev/null && python3 -c "import tempfile; tempfile.mkstemp()"')
    proc = container("sh", "-c", script, user=f"{pod.user}:{pod.group}", volumes=volumes, env=env)
    assert proc.returncode == 0, f"{pod.workload}: {proc.stderr}"
    home = next(host for path, host in volumes.items() if pod.env["HOME"].startswith(path))
    assert (home / ".gitconfig").exists()


def test_demo_runs_in_the_image_on_loopback(container: Run, tmp_path: Path) -> None:
    proc = container("kubedr", "demo", "--timeout", "90", volumes=empty_dirs(tmp_path, SPEC["volumes"]),
                     timeout=180)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "demo OK: the secondary converged on every step" in proc.stdout
