"""What an idle applier test needs: a seeded bare repo and a `git` on PATH that counts its invocations."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def seed_repo(bare: Path, work: Path) -> str:
    """One commit (a Namespace and a ConfigMap) on main of a bare repo; its sha."""
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    (work / "_cluster" / "Namespace").mkdir(parents=True)
    (work / "_cluster" / "Namespace" / "idle.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                                               "  name: idle\n")
    (work / "idle" / "ConfigMap").mkdir(parents=True)
    (work / "idle" / "ConfigMap" / "c.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
                                                        "  namespace: idle\ndata:\n  k: v\n")
    for args in (["add", "-A"], ["commit", "-q", "-m", "seed"], ["push", "-q", "origin", "HEAD:main"]):
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True,
                          text=True).stdout.strip()


def counting_git(bindir: Path, log: Path, timestamps: bool = False) -> str:
    """A `git` wrapper in bindir that appends one line per invocation to log (with timestamps: the Unix time
    first, from bash's $EPOCHREALTIME, no extra process); the PATH that puts it first."""
    real = shutil.which("git")
    assert real, "git is not installed"
    bindir.mkdir(parents=True, exist_ok=True)
    wrapper = bindir / "git"
    stamp = "$EPOCHREALTIME " if timestamps else ""
    wrapper.write_text(f'#!/bin/bash\necho "{stamp}$1 $2 $3" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def git_calls(log: Path) -> int:
    """How many git processes the wrapper has started."""
    try:
        return len(log.read_text().splitlines())
    except FileNotFoundError:
        return 0
