"""Readers for the bare remote, argument builders and the exporter as a process, shared by the exporter tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubedr import contract
from kubedr.sanitize import sanitize


def export_args(primary, remote: Path | str, workdir: Path, *extra: str) -> list[str]:
    return ["export", "--kubeconfig", str(primary.kubeconfig_path), "--repo", str(remote), "--workdir",
            str(workdir), "--cluster-name", "prod", *extra]


def spawn(primary, remote: Path | str, workdir: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`kubedr export` as its own process (its own session: a kill takes its git children too), stderr to log."""
    argv = export_args(primary, remote, workdir, *(extra or ("--namespaces", "shop")), "--push-backoff-max", "0.5s")
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "kubedr", *argv], stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)


def alive(proc: subprocess.Popen, log: Path):
    """Wrap a condition for wait_until: it fails at once, with the log's tail, when the exporter has exited."""
    def check(cond):
        def probe() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the exporter exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return bool(cond())
        return probe
    return check


def all_objects(remote: Path) -> bytes:
    """The content of every object reachable from any ref of the remote, as one byte string to search."""
    objs = subprocess.run(["git", "rev-list", "--objects", "--all"], cwd=remote, capture_output=True, text=True,
                          check=True).stdout.split("\n")
    shas = "".join(line.split()[0] + "\n" for line in objs if line.strip())
    return subprocess.run(["git", "cat-file", "--batch"], cwd=remote, input=shas.encode(), capture_output=True,
                          check=True).stdout


def expected_configmaps(api, namespace: str = "shop") -> dict[str, str]:
    """path -> file the exporter writes for each ConfigMap the primary holds in namespace."""
    out = {}
    for obj in api.list("v1", "ConfigMap", namespace):
        clean = sanitize(obj)
        if clean is not None:
            out[contract.ref_of(obj).path] = contract.dump(clean).decode()
    return out


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


def hand_push(remote: Path, work: Path, path: str, text: str, message: str, key: Path | None = None) -> str:
    """Commit one file change the way a person with push access would (signed with key, if given)."""
    if not work.exists():
        git(remote.parent, "clone", "-q", str(remote), str(work))
    from kubedr import signing

    env = {**os.environ, **(signing.Signer(key).git_config() if key else {})}
    for _ in range(5):
        git(work, "fetch", "-q", "origin")
        git(work, "reset", "-q", "--hard", "origin/main")
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
        git(work, "add", "-A")
        subprocess.run(["git", "-c", "user.name=intruder", "-c", "user.email=i@example.com", "commit", "-q",
                        "--allow-empty", "-m", message], cwd=work, env=env, check=True, capture_output=True)
        if subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=work, capture_output=True).returncode == 0:
            return git(work, "rev-parse", "HEAD").strip()
    raise AssertionError("could not push by hand")
