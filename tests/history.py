"""Synthesize repos fast with `git fast-import`: a long chain of tiny commits, or one commit of many objects.

The first commit adds the writer role file, a Namespace and `objects` ConfigMaps; every later one rewrites
ConfigMap cm-0 with the exporter's role trailers (what an exporter that saw one change writes), so a million
commits take a minute or two, not hours of `git commit`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from kubedr import contract, roles

NAMESPACE = "history"


def configmap(i: int, value: str) -> dict:
    """ConfigMap cm-<i> of the history namespace holding one value."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": NAMESPACE},
            "data": {"value": value}}


def blob(obj: dict) -> bytes:
    """The fast-import command that writes one object's file."""
    data = contract.dump(obj)
    return b"M 100644 inline %s\ndata %d\n%s\n" % (contract.ref_of(obj).path.encode(), len(data), data)


def one_commit(bare: Path, objects: Iterable[dict], branch: str = "main") -> str:
    """A bare repo whose branch has one commit holding these objects (100,000 in seconds); its sha."""
    subprocess.run(["git", "init", "--bare", "-q", "-b", branch, str(bare)], check=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=bare, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b"commit refs/heads/%s\ncommitter kubedr <kubedr@example.invalid> 1700000000 +0000\n"
                     b"data 8\nsnapshot\n" % branch.encode())
    for obj in objects:
        proc.stdin.write(blob(obj))
    proc.stdin.write(b"\ndone\n")
    proc.stdin.close()
    assert proc.wait() == 0, "git fast-import failed"
    return _rev(bare, branch)


def _rev(bare: Path, rev: str) -> str:
    return subprocess.run(["git", "--git-dir", str(bare), "rev-parse", rev], check=True, capture_output=True,
                          text=True).stdout.strip()


def synthesize(bare: Path, commits: int, objects: int = 10, branch: str = "main", writer: str = "primary") -> str:
    """A bare repo whose branch has `commits` commits (the first adds every object); the tip's sha."""
    subprocess.run(["git", "init", "--bare", "-q", "-b", branch, str(bare)], check=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=bare, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    out = proc.stdin
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}

    when, head = 1_700_000_000, b"commit refs/heads/" + branch.encode()
    role = roles.dump(roles.Writer(writer, 1))
    out.write(b"%s\ncommitter kubedr <kubedr@example.invalid> %d +0000\ndata 4\nseed\n"
              b"M 100644 inline %s\ndata %d\n%s\n%s\n" % (
                  head, when, roles.WRITER_PATH.encode(), len(role), role,
                  blob(ns) + b"".join(blob(configmap(i, "0")) for i in range(objects))))
    msg = ("update cm-0\n\n" + "\n".join(roles.trailers(roles.Writer(writer, 1))) + "\n").encode()
    first, _, rest = blob(configmap(0, "{}")).partition(b"\n")  # the changing file, its value a placeholder
    template = rest.split(b"\n", 1)[1]
    for n in range(1, commits):
        data = template.replace(b"{}", b"%d" % n)
        out.write(b"%s\ncommitter kubedr <kubedr@example.invalid> %d +0000\ndata %d\n%s%s\n"
                  b"data %d\n%s\n\n" % (head, when + n, len(msg), msg, first, len(data), data))
    out.write(b"done\n")
    out.close()
    assert proc.wait() == 0, "git fast-import failed"
    return _rev(bare, branch)


def push_change(bare: Path, value: str, signing_key: Path | None = None, branch: str = "main") -> str:
    """One more commit on the branch setting cm-1's value (signed with an SSH key when given), written with
    plumbing: no clone of a long history; its sha."""

    def git(*args: str, data: bytes | None = None) -> str:
        return subprocess.run(["git", "--git-dir", str(bare), *args], check=True, capture_output=True, input=data,
                              env={**os.environ, "GIT_INDEX_FILE": str(bare / "push.index")}).stdout.decode().strip()

    blob = git("hash-object", "-w", "--stdin", data=contract.dump(configmap(1, value)))
    git("read-tree", branch)
    git("update-index", "--cacheinfo", f"100644,{blob},{NAMESPACE}/ConfigMap/cm-1.yaml")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signing_key}"] if signing_key else []
    commit = git("-c", "user.name=kubedr", "-c", "user.email=kubedr@example.invalid", *sign, "commit-tree",
                 *(["-S"] if signing_key else []), git("write-tree"), "-p", branch, "-m", f"set cm-1 {value}")
    git("update-ref", f"refs/heads/{branch}", commit)
    return commit
