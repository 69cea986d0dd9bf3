"""Build the kubedr image from Debian packages and PyPI wheels with mmdebstrap and buildah: no registry, no daemon.

    scripts/image [--output dist/kubedr-VERSION.oci.tar]   build; prints the archive's size and the build time
    scripts/image --dockerfile                               print the Dockerfile generated from image/spec.toml
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "image" / "spec.toml"
# The tmpfs a build works in is named TMPFS-<pid>.
TMPFS = "kubedr-image"
# What the wheel is built from (tests, caches and the venv stay out).
SOURCE_IGNORE = (".git", ".venv", ".ci", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests")


class BuildError(Exception):
    """A build step failed; the message says which and why."""


@dataclass(frozen=True)
class Target:
    """The image's interpreter, which the wheels must fit: CPython version, glibc version, machine."""

    python: tuple[int, int]
    glibc: tuple[int, int]
    machine: str


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    """The image's contents: the single source that the build, the Dockerfile and the tests read."""
    return tomllib.loads(path.read_text())


def version() -> str:
    """The project version: the image's tag."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def reference(spec: dict[str, Any]) -> str:
    """name:tag of the image."""
    return f"{spec['name']}:{version()}"


def user_setup(spec: dict[str, Any]) -> str:
    """Shell run as root in the image: the unprivileged user and its workdir (the Dockerfile runs the same)."""
    u = spec["user"]
    limits = f"-K UID_MAX={max(u['uid'], 60000)} -K GID_MAX={max(u['gid'], 60000)}"
    return (f"groupadd --gid {u['gid']} {limits} {u['name']}"
            f" && useradd --uid {u['uid']} --gid {u['gid']} {limits} --home-dir {spec['env']['HOME']}"
            f" --no-create-home --shell /usr/sbin/nologin {u['name']}"
            f" && install -d -o {u['uid']} -g {u['gid']} {spec['workdir']}")


def venv_setup(spec: dict[str, Any], install: str) -> str:
    """Shell run as root in the image: the venv with kubedr (install = pip's arguments), then no pip in it."""
    pip = f"{spec['venv']}/bin/pip"
    return (f"python3 -m venv {spec['venv']}"
            f" && {pip} install --no-cache-dir --disable-pip-version-check {install}"
            f" && {pip} uninstall -q -y pip setuptools")


def source_dirs() -> list[str]:
    """What the wheel is built from: pyproject's package folders, the folders the package links to (the repo
    template, the manifests `kubedr install` renders), the metadata."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = list(dict.fromkeys(project["tool"]["setuptools"]["package-dir"].values()))
    return ["pyproject.toml", "README.md", *packages, "repo-template", "manifests"]


def dockerfile(spec: dict[str, Any]) -> str:
    """The Dockerfile for those who build with Docker: the same packages, venv, user and settings as scripts/image."""
    copies = "\n".join(f"COPY {src} ./" if src.endswith((".toml", ".md")) else f"COPY {src} ./{src}"
                       for src in source_dirs())
    apt = ("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} "
           "&& rm -rf /var/lib/apt/lists/*")
    env = " ".join(f"{k}={v}" for k, v in spec["env"].items())
    return f"""\
# GENERATED from image/spec.toml by `scripts/image --dockerfile > Dockerfile`; a test fails when they differ.
# kubedr: one image for the exporter, the applier and the snapshot job.
#   docker build -t {reference(spec)} .
# Without Docker, a registry or a daemon: scripts/image (mmdebstrap + buildah) builds the same image.
# Everything it needs is installed at build time; nothing is downloaded when it runs.

FROM {spec['base']} AS build
RUN {apt.format("python3 python3-venv")}
WORKDIR /src
{copies}
RUN {venv_setup(spec, ".")}

FROM {spec['base']}
RUN {apt.format(" ".join(spec['packages']))} \\
 && {user_setup(spec)}
COPY --from=build {spec['venv']} {spec['venv']}
ENV {env}
USER {spec['user']['uid']}:{spec['user']['gid']}
WORKDIR {spec['workdir']}
VOLUME {json.dumps(spec['volumes'])}
EXPOSE {" ".join(str(p) for p in spec['ports'])}
ENTRYPOINT {json.dumps(spec['entrypoint'])}
CMD {json.dumps(spec['cmd'])}
"""


def host_sources(suite: str, indextargets: str, host_codename: str) -> list[str]:
    """apt lines for the image's suite, on the Debian mirrors this host's apt uses (no host is written down)."""
    uris: dict[str, str] = {}
    for line in indextargets.splitlines():
        if line.strip():
            uri, release = line.split()
            uris.setdefault(release, uri)
    archive, security = uris.get(host_codename), uris.get(f"{host_codename}-security")
    if not archive:
        raise BuildError(f"no Debian archive for '{host_codename}' in this host's apt sources "
                         "(apt-get indextargets); mmdebstrap needs the mirror apt uses")
    lines = [f"deb {archive} {suite} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    return lines


def _host_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise BuildError("/etc/os-release has no VERSION_CODENAME: not a Debian host")


def _indextargets() -> str:
    return _run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)", "Identifier: Packages"])


def wheel_platforms(target: Target) -> list[str]:
    """pip --platform values a wheel may carry to load in the image (manylinux up to the image's glibc)."""
    major, minor = target.glibc
    tags = [f"manylinux_{major}_{m}_{target.machine}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{target.machine}" for m, name in legacy.items() if major == 2 and m <= minor]


def _run(cmd: list[str], **kw: Any) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise BuildError(f"{shlex.join(cmd[:4])}... failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


@contextmanager
def step(name: str, times: dict[str, float]) -> Iterator[None]:
    """Time one build step (scripts/image prints them)."""
    started = time.monotonic()
    yield
    times[name] = time.monotonic() - started


def reap_stale_scratch() -> None:
    """Unmount and remove the tmpfs of a build that was killed (its pid is gone): a re-run frees that memory."""
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        pid = source.removeprefix(f"{TMPFS}-")
        if source.startswith(f"{TMPFS}-") and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["umount", "--lazy", target], capture_output=True)
            shutil.rmtree(target, ignore_errors=True)


def step_of(fn: Callable[..., None], name: str, times: dict[str, float]) -> Callable[..., None]:
    """fn, timed as a build step (for a thread)."""
    def timed(*args: Any) -> None:
        with step(name, times):
            fn(*args)
    return timed


@contextmanager
def scratch(tmpdir: str | None = None, size: str = "4g") -> Iterator[Path]:
    """A temp dir on its own tmpfs where mounting one works: unpacking and removing ~30,000 files is then quick."""
    reap_stale_scratch()
    path = Path(tempfile.mkdtemp(prefix="kubedr-image-", dir=tmpdir))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", f"{TMPFS}-{os.getpid()}",
                              str(path)], capture_output=True).returncode == 0
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


class Buildah:
    """buildah on its own vfs storage in a temp dir: nothing is kept or shared outside it."""

    def __init__(self, storage: Path) -> None:
        self.base = ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run"),
                     "--storage-driver", "vfs"]
        (storage / "tmp").mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "TMPDIR": str(storage / "tmp")}   # commit's blobs stay in there too

    def __call__(self, *args: str) -> str:
        return _run([*self.base, *args], env=self.env).strip()


def build_wheels(target: Target, dest: Path, tmp: Path) -> None:
    """kubedr's wheel and PyPI's wheels of its dependencies, for the image's Python and glibc (not the host's)."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*SOURCE_IGNORE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    _run([*pip, "wheel", "-q", "--no-deps", "-w", str(dest), str(src)])
    (wheel,) = dest.glob("kubedr-*.whl")
    py = f"{target.python[0]}{target.python[1]}"
    platforms = [arg for p in wheel_platforms(target) for arg in ("--platform", p)]
    _run([*pip, "download", "-q", "--only-binary=:all:", "--implementation", "cp", "--python-version", py,
          "--abi", f"cp{py}", *platforms, "-d", str(dest), str(wheel)])


def debian_rootfs(spec: dict[str, Any], target_dir: Path) -> None:
    """mmdebstrap: the suite's minbase plus the runtime packages, from the host's Debian mirrors."""
    sources = host_sources(spec["suite"], _indextargets(), _host_codename())
    dpkg = [f"--dpkgopt=path-exclude={p}" for p in spec["dpkg_exclude"]]
    dpkg += [f"--dpkgopt=path-include={p}" for p in spec["dpkg_include"]]
    # unsafe-io speeds up the build; the hook keeps it out of the image's dpkg settings
    cmd = ["mmdebstrap", "--variant=minbase", f"--include={','.join(spec['packages'])}", *dpkg,
           "--dpkgopt=force-unsafe-io",
           "--customize-hook=sed -i /force-unsafe-io/d \"$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap\"",
           spec["suite"], str(target_dir), *sources]
    _run(cmd, env={**os.environ, "LC_ALL": "C.UTF-8"})


def spec_target(spec: dict[str, Any]) -> Target:
    """The suite's Python and glibc as the spec states them, for this host's machine (mmdebstrap's default)."""
    py, libc = (tuple(int(n) for n in spec[k].split(".")[:2]) for k in ("python", "glibc"))
    return Target((py[0], py[1]), (libc[0], libc[1]), os.uname().machine)


def image_target(rootfs: Path) -> Target:
    """Read the image's Python and glibc versions from its root filesystem."""
    code = "import platform, sys; print(*sys.version_info[:2], platform.libc_ver()[1], platform.machine())"
    major, minor, glibc, machine = _run(["chroot", str(rootfs), "python3", "-c", code], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).split()
    gmaj, gmin = glibc.split(".")[:2]
    return Target((int(major), int(minor)), (int(gmaj), int(gmin)), machine)


def configure(bah: Buildah, ctr: str, spec: dict[str, Any]) -> None:
    """The image config from the spec: user, entrypoint, command, environment, workdir, volumes, ports."""
    args = ["--user", f"{spec['user']['uid']}:{spec['user']['gid']}", "--entrypoint", json.dumps(spec["entrypoint"]),
            "--cmd", json.dumps(spec["cmd"]), "--workingdir", spec["workdir"],
            "--created-by", "scripts/image (mmdebstrap + buildah)",
            "--label", "org.opencontainers.image.title=kubedr", "--label", f"org.opencontainers.image.version={version()}"]
    args += [a for k, v in spec["env"].items() for a in ("--env", f"{k}={v}")]
    args += [a for v in spec["volumes"] for a in ("--volume", v)]
    args += [a for p in spec["ports"] for a in ("--port", f"{p}/tcp")]
    bah("config", *args, ctr)


def du(path: Path) -> int:
    """Bytes under a directory (the unpacked image)."""
    return int(_run(["du", "-sb", str(path)]).split()[0])


@dataclass(frozen=True)
class Built:
    """What scripts/image made: the archive, its size, the unpacked size, seconds taken in all and per step."""

    archive: Path
    reference: str
    size: int
    unpacked: int
    seconds: float
    steps: dict[str, float]


def build(output: Path, spec: dict[str, Any] | None = None, tmpdir: str | None = None) -> Built:
    """Build the image into an OCI archive at output (written whole or not at all)."""
    spec = spec or load_spec()
    for tool in ("mmdebstrap", "buildah"):
        if not shutil.which(tool):
            raise BuildError(f"{tool} not found: apt-get install mmdebstrap buildah")
    if os.geteuid() != 0:
        raise BuildError("scripts/image runs as root (mmdebstrap's root mode, chroot, buildah's vfs storage)")
    started, times = time.monotonic(), {}
    with scratch(tmpdir) as tmp:
        bah = Buildah(tmp / "storage")
        ctr = bah("from", "--name", f"kubedr-image-{os.getpid()}", "scratch")
        rootfs = Path(bah("mount", ctr))
        wheels, target = tmp / "wheels", spec_target(spec)
        with ThreadPoolExecutor(1) as pool:   # the wheels download while mmdebstrap works
            fetched = pool.submit(step_of(build_wheels, "wheels", times), target, wheels, tmp)
            with step("debian", times):
                debian_rootfs(spec, rootfs)
            fetched.result()
        if image_target(rootfs) != target:
            raise BuildError(f"image/spec.toml says python {spec['python']}, glibc {spec['glibc']}, but "
                             f"{spec['suite']} has {image_target(rootfs)}: correct the spec")
        script = f"{venv_setup(spec, '--no-index --find-links /wheels kubedr')} && {user_setup(spec)}"
        with step("venv", times):
            bah("run", "--isolation", "chroot", "--user", "0:0", "-v", f"{wheels}:/wheels:ro",
                "-e", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", ctr, "--", "sh", "-c", script)
        unpacked = du(rootfs)
        bah("umount", ctr)
        configure(bah, ctr, spec)
        output.parent.mkdir(parents=True, exist_ok=True)
        part = output.with_name(output.name + ".part")
        part.unlink(missing_ok=True)
        with step("commit", times):
            bah("commit", "-q", "--format", "oci", "--disable-compression=false", ctr,
                f"oci-archive:{part}:{reference(spec)}")
        part.replace(output)
    return Built(output, reference(spec), output.stat().st_size, unpacked, time.monotonic() - started, times)


def main(argv: list[str] | None = None) -> int:
    """scripts/image: build the OCI archive, or print the generated Dockerfile."""
    parser = argparse.ArgumentParser(prog="scripts/image", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="the OCI archive (default dist/kubedr-VERSION.oci.tar)")
    parser.add_argument("--dockerfile", action="store_true", help="print the Dockerfile generated from the spec")
    args = parser.parse_args(argv)
    spec = load_spec()
    if args.dockerfile:
        sys.stdout.write(dockerfile(spec))
        return 0
    output = args.output or ROOT / "dist" / f"kubedr-{version()}.oci.tar"
    try:
        built = build(output.resolve(), spec)
    except BuildError as exc:
        print(f"scripts/image: {exc}", file=sys.stderr)
        return 1
    print(f"{built.reference} -> {built.archive}: {built.size / 1e6:.0f} MB "
          f"({built.unpacked / 1e6:.0f} MB unpacked), built in {built.seconds:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in built.steps.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
