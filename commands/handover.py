"""The branch as promote and demote see it: a scratch copy to read the role from and commit role changes onto.

Every change is one commit pushed as a fast-forward, so the remote itself arbitrates: a push that lost a race
is rejected, the caller fetches again and decides again. Nothing is ever force-pushed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pygit2

from kubedr import contract, git, repotree, roles
from kubedr.remote import redact, scrub
from kubedr.signing import Signer

IDENTITY = {"GIT_AUTHOR_NAME": "kubedr", "GIT_AUTHOR_EMAIL": "kubedr@kubedr.invalid",
            "GIT_COMMITTER_NAME": "kubedr", "GIT_COMMITTER_EMAIL": "kubedr@kubedr.invalid"}


class Rejected(Exception):
    """The remote branch moved under the push (another writer committed): fetch and decide again."""


def local_repo(repo: str) -> str:
    """A path made absolute (git runs elsewhere); URLs as they are."""
    if "://" not in repo and ":" not in repo.split("/")[0] and os.path.exists(repo):
        return os.path.abspath(repo)
    return repo


class Branch:
    """A scratch bare repository holding the remote branch (removed by close())."""

    def __init__(self, repo: str, branch: str = "main", signer: Signer | None = None) -> None:
        self.repo = local_repo(repo)
        self.branch = branch
        self.gitdir = tempfile.mkdtemp(prefix="kubedr-branch-")
        self.env = {**IDENTITY, **os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        self.sign = [] if signer is None else ["-S"]  # commit-tree signs only when told (git ignores commit.gpgSign)
        if signer is not None:
            self.env.update(signer.git_config())
        self.git("init", "-q", "--bare")
        self.head: str | None = None

    def close(self) -> None:
        shutil.rmtree(self.gitdir, ignore_errors=True)

    def __enter__(self) -> Branch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def git(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        """Run git on the scratch repository; git.GitError when it fails."""
        return git.run(args, git_dir=self.gitdir, stdin=stdin, env=self.env, check=check, remote=self.repo).text

    def fetch(self) -> str | None:
        """Fetch the branch; its head sha (None when the branch does not exist yet)."""
        out = self.git("ls-remote", self.repo, f"refs/heads/{self.branch}").split()
        if not out:
            self.head = None
            return None
        self.git("fetch", "-q", "--no-tags", self.repo, f"+refs/heads/{self.branch}:refs/heads/{self.branch}")
        self.head = self.git("rev-parse", f"refs/heads/{self.branch}").strip()
        return self.head

    def writer(self) -> roles.Writer | None:
        """The role at the fetched head."""
        return roles.read_writer(self.gitdir, self.head) if self.head else None

    def commit_file(self, path: str, data: bytes, message: str, when: float | None = None) -> str:
        """A commit on the fetched head that changes one file, built from git objects (no index, no work tree: a
        tree entry git refuses, pushed by someone, cannot stop a promote; such entries are dropped on the way)."""
        from kubedr.exporter.gittree import COMMITTED_AT, committed_at, with_trailer

        when = time.time() if when is None else when
        repo = pygit2.Repository(self.gitdir)
        root = repo[self.head].peel(pygit2.Tree).id.raw if self.head else None
        tree = pygit2.Oid(raw=_with_file(repo, root, path.split("/"), repo.create_blob(data).raw))
        text = with_trailer(message, COMMITTED_AT, committed_at(when))
        stamp = f"{int(when)} +0000"
        env = {**self.env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        parents = ["-p", self.head] if self.head else []
        return git.run(["commit-tree", *self.sign, str(tree), *parents], git_dir=self.gitdir, stdin=text.encode(),
                       env=env).text.strip()

    def push(self, sha: str, ref: str | None = None) -> None:
        """Push sha to the branch (or ref) as a fast-forward; Rejected when the remote moved, else git.GitError."""
        target = ref or f"refs/heads/{self.branch}"
        proc = git.run(["push", "-q", "--porcelain", self.repo, f"{sha}:{target}"], git_dir=self.gitdir, env=self.env,
                       check=False, remote=self.repo)
        if proc.ok:
            return
        err = (proc.stdout + proc.stderr).decode(errors="replace")
        if "[rejected]" in err or "non-fast-forward" in err or "fetch first" in err:
            raise Rejected(f"{redact(self.repo)} branch {self.branch} moved during the push")
        lines = [ln.strip() for ln in err.splitlines() if ln.strip() and not ln.startswith(("To ", "Done"))]
        raise git.GitError("push", scrub(f"{' | '.join(lines[-2:])}", self.repo), proc.returncode, scrub(err, self.repo))


def _with_file(repo: pygit2.Repository, tree: bytes | None, parts: list[str], blob: bytes) -> bytes:
    """The id of a tree like `tree` with the file at `parts` set to `blob`; entries the contract refuses are left
    out of the trees on the way (the exporter drops them from its next commit too)."""
    keep: dict[bytes, tuple[int, bytes]] = {}
    if tree is not None:
        for mode, name, oid in repotree.entries(repo.odb.read(pygit2.Oid(raw=tree))[1]):
            if contract.entry_problem(name, mode) is None:
                keep[name] = (mode, oid)
    name = parts[0].encode()
    if len(parts) == 1:
        keep[name] = (0o100644, blob)
    else:
        sub = keep.get(name)
        keep[name] = (contract.TREE_MODE, _with_file(repo, sub[1] if sub and sub[0] == contract.TREE_MODE else None,
                                                      parts[1:], blob))
    order = sorted(keep.items(), key=lambda kv: kv[0] + (b"/" if kv[1][0] == contract.TREE_MODE else b""))
    raw = b"".join(f"{mode:o}".encode() + b" " + n + b"\0" + oid for n, (mode, oid) in order)
    return bytes(repo.odb.write(pygit2.GIT_OBJECT_TREE, raw).raw)


def ago(seconds: float) -> str:
    """'42s', '5m 3s', '2h 10m', '3d 4h'."""
    s = max(0, int(seconds))
    for big, small, bn, sn in ((86400, 3600, "d", "h"), (3600, 60, "h", "m"), (60, 1, "m", "s")):
        if s >= big:
            return f"{s // big}{bn} {(s % big) // small}{sn}"
    return f"{s}s"
