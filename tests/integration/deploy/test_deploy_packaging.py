"""The wheel (what the Dockerfile installs) carries the repo template, and `kubedr init` works from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT, run_git


def test_wheel_ships_the_repo_template_and_init_uses_it(tmp_path: Path) -> None:
    src = tmp_path / "src"    # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"))
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("kubedr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ("README.md", ".gitattributes", ".kubedr/policy.yaml"):
        assert f"kubedr/repo_template/{rel}" in names
    for module in ("kubedr/leader.py", "kubedr/demo.py", "kubedr/status.py", "kubedr/repo_init.py"):
        assert module in names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    repo = tmp_path / "cfg"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from kubedr import repo_init; "
            "print(repo_init.template_dir()); print(repo_init.init_repo(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, str(site), str(repo)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(site / "kubedr" / "repo_template")
    assert set(run_git("ls-files", cwd=repo).split()) == {"README.md", ".gitattributes", ".kubedr/policy.yaml"}
