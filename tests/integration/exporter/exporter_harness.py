"""Readers for the bare remote and argument builders shared by the exporter tests and benchmark."""

from __future__ import annotations

import subprocess
from pathlib import Path


def export_args(primary, remote: Path | str, workdir: Path, *extra: str) -> list[str]:
    return ["export", "--kubeconfig", str(primary.kubeconfig_path), "--repo", str(remote), "--workdir",
            str(workdir), "--cluster-name", "prod", *extra]


def git(remote: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=remote, capture_output=True, text=True, check=True).stdout


def remote_files(remote: Path) -> dict[str, str]:
    """path -> content of every file on the remote's main branch ({} before the first push)."""
    head = subprocess.run(["git", "rev-parse", "-q", "--verify", "main"], cwd=remote, capture_output=True, text=True)
    if head.returncode != 0:
        return {}
    sha = head.stdout.strip()
    out = subprocess.run(["git", "ls-tree", "-r", "--name-only", sha], cwd=remote, capture_output=True, text=True)
    paths = out.stdout.split()
    if not paths:
        return {}
    blobs = subprocess.run(["git", "cat-file", "--batch"], cwd=remote, capture_output=True, check=True,
                           input="".join(f"{sha}:{p}\n" for p in paths).encode()).stdout
    result, pos = {}, 0
    for p in paths:
        header_end = blobs.index(b"\n", pos)
        size = int(blobs[pos:header_end].split()[2])
        result[p] = blobs[header_end + 1:header_end + 1 + size].decode()
        pos = header_end + 1 + size + 1
    return result


def subjects(remote: Path) -> list[str]:
    """Commit subjects on the remote, newest first."""
    out = subprocess.run(["git", "log", "--format=%s", "main"], cwd=remote, capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else []
