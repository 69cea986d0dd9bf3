"""The wheel (what the image installs): one top-level package, the repo template, and a working `kubedr demo`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_git


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build the wheel from a copy of the checkout (the build leaves nothing in it) and unpack it as pip would."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"))
    dist = tmp / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("kubedr-*.whl")
    site = tmp / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return wheel, site


def test_wheel_installs_one_top_level_package(wheel_site: tuple[Path, Path]) -> None:
    wheel, site = wheel_site
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"kubedr"}, f"top-level names besides kubedr: {sorted(tops - {'kubedr'})}"
    for stage in ("commands", "exporter", "applier", "snapshot", "emulator"):
        assert f"kubedr/{stage}/__init__.py" in names
    (info,) = site.glob("kubedr-*.dist-info")
    assert "kubedr = kubedr.commands.cli:main" in (info / "entry_points.txt").read_text()


def test_wheel_ships_the_repo_template_and_init_uses_it(wheel_site: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, site = wheel_site
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ("README.md", ".gitattributes", ".kubedr/policy.yaml"):
        assert f"kubedr/commands/repo_template/{rel}" in names
    for module in ("kubedr/leader.py", "kubedr/commands/demo.py", "kubedr/commands/status.py", "kubedr/commands/repo_init.py"):
        assert module in names
    repo = tmp_path / "cfg"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from kubedr.commands import repo_init; "
            "print(repo_init.template_dir()); print(repo_init.init_repo(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, str(site), str(repo)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(site / "kubedr" / "commands" / "repo_template")
    assert set(run_git("ls-files", cwd=repo).split()) == {"README.md", ".gitattributes", ".kubedr/policy.yaml"}


def test_demo_runs_from_the_installed_wheel(wheel_site: tuple[Path, Path], tmp_path: Path) -> None:
    _, site = wheel_site
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    env["PYTHONPATH"] = str(site)  # ahead of the checkout's editable install: the wheel's code runs
    where = subprocess.run([sys.executable, "-c", "import kubedr.exporter as e; print(e.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(site / "kubedr" / "exporter" / "__init__.py"), where.stderr
    proc = subprocess.run([sys.executable, "-m", "kubedr", "demo", "--workdir", str(tmp_path / "demo")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "demo OK: the secondary converged on every step" in proc.stdout


@pytest.fixture(scope="module")
def user_venv(wheel_site: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed as the README's first command does (not editable); the suite's
    venv lends it the dependencies through a path entry, but not its editable finder (that .pth is not read)."""
    wheel, _ = wheel_site
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "suite-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                         capture_output=True, text=True, timeout=240)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return venv


def _as_a_user(venv: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The installed `kubedr` command, run from the clone's root as a new user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEDR_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(venv / "bin" / "kubedr"), *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_first_command_works_from_the_clone_root(user_venv: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(user_venv / "bin" / "python"), "-c",
                            "import kubedr, kubedr.exporter as e; print(kubedr.__file__); print(e.__file__)"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert all(str(user_venv) in line for line in where.stdout.split()), where.stdout  # not the checkout's code
    proc = _as_a_user(user_venv, "demo", "--workdir", str(tmp_path / "demo"), timeout=150)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "demo OK: the secondary converged on every step" in proc.stdout


def test_sync_works_from_the_clone_root(user_venv: Path, tmp_path: Path) -> None:
    from kubedr.emulator.server import Emulator

    primary, secondary = Emulator().start(), Emulator().start()
    try:
        for emu, name in ((primary, "p"), (secondary, "s")):
            emu.write_kubeconfig(tmp_path / name)
        primary.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings",
                            "namespace": "shop"}, "data": {"color": "blue"}})
        proc = _as_a_user(user_venv, "sync", "--from-kubeconfig", str(tmp_path / "p"), "--to-kubeconfig",
                          str(tmp_path / "s"), "--namespaces", "shop", timeout=120)
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert secondary.api.get("v1", "ConfigMap", "settings", "shop")["data"] == {"color": "blue"}
    finally:
        primary.stop()
        secondary.stop()


def test_layers_hold_in_the_wheel(wheel_site: tuple[Path, Path], tmp_path: Path) -> None:
    """import-linter on the installed layout: stages independent, the base free of stages and commands."""
    _, site = wheel_site
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_wheel_ships_the_manifests_install_renders(wheel_site: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, site = wheel_site
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"kubedr/commands/manifests/{p.relative_to(ROOT / 'manifests').as_posix()}"
               for p in (ROOT / "manifests").rglob("*") if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from kubedr.commands import install_tree as t; "
            "from kubedr.commands.shipped import shipped; print(shipped('manifests', 'manifests')); "
            "print(len(t.render(t.manifests(), 'primary')))")
    proc = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    where, count = proc.stdout.split()
    assert where == str(site / "kubedr" / "commands" / "manifests") and int(count) >= 10
