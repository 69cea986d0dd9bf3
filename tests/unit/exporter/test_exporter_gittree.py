"""Trees written through libgit2 with only the changed paths are byte-identical to what `git write-tree` makes
from the whole file list; big batches become one pack git verifies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubedr.exporter.gittree import PACK_THRESHOLD, BlobSink, TreeCache, blob_id

PATHS = ["a/y.yaml", "a-b/x.yaml", "a.c", "a0", "_cluster/Namespace/shop.yaml", "shop/ConfigMap/%3Ax.yaml",
         "shop/ConfigMap/x.yaml", "shop/Deployment.apps/web.yaml", "README.md", ".kubedr/policy.yaml"]
NAMES = ["a", "a.b", "a-b", "a0", "ab", "b", "%3Ab", "_c", "z"]  # '/' sorts between '.-' and '0'


def git(repo: Path, *args: str, stdin: bytes | None = None, env: dict | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=True,
                          env=env).stdout.decode()


def _git_tree_of(repo: Path, files: dict[str, bytes]) -> str:
    """The tree `git write-tree` makes from these path -> raw blob id entries (a scratch index, no work tree)."""
    index = repo / "scratch-index"
    index.unlink(missing_ok=True)
    listing = "".join(f"100644 {oid.hex()}\t{path}\n" for path, oid in sorted(files.items()))
    env = {"GIT_INDEX_FILE": str(index), "PATH": "/usr/bin:/bin"}
    git(repo, "update-index", "--add", "--index-info", stdin=listing.encode(), env=env)
    return git(repo, "write-tree", env=env).strip()


def _repo(tmp_path: Path) -> tuple[Path, pygit2.Repository]:
    path = tmp_path / "r"
    git(tmp_path, "init", "-q", str(path))
    return path, pygit2.Repository(str(path / ".git"))


def test_tree_matches_git_write_tree(tmp_path: Path) -> None:
    path, repo = _repo(tmp_path)
    files = {p: repo.create_blob(f"content {i}\n".encode()).raw for i, p in enumerate(PATHS)}
    cache = TreeCache(repo, None)
    tree = cache.apply(files)
    assert str(tree) == _git_tree_of(path, files)
    assert cache.get("shop/ConfigMap/x.yaml") == files["shop/ConfigMap/x.yaml"]
    assert cache.get("shop/ConfigMap") is None and cache.get("nope/x.yaml") is None

    reread = TreeCache(repo, tree)  # a fresh cache reads HEAD's trees
    tree = reread.apply({"shop/ConfigMap/x.yaml": None, "a/y.yaml": None})  # a/ goes with its file
    del files["shop/ConfigMap/x.yaml"], files["a/y.yaml"]
    assert str(tree) == _git_tree_of(path, files)
    assert reread.get("shop/ConfigMap/x.yaml") is None
    assert str(reread.apply({p: None for p in files})) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    git(path, "fsck", "--strict")


@st.composite
def _steps(draw: st.DrawFn) -> list[tuple[str, bool]]:
    return draw(st.lists(st.tuples(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join),
                                   st.booleans()), min_size=1, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_steps(), min_size=1, max_size=4))
def test_incremental_trees_match_git_through_adds_updates_deletes_and_type_changes(
        tmp_path_factory, batches: list[list[tuple[str, bool]]]) -> None:
    path, repo = _repo(tmp_path_factory.mktemp("t"))
    files: dict[str, bytes] = {}
    cache = TreeCache(repo, None)
    for n, batch in enumerate(batches):
        changes: dict[str, bytes | None] = {}
        for step, (p, delete) in enumerate(batch):
            if delete:
                if p in files:
                    del files[p]
                changes[p] = None
                continue
            oid = repo.create_blob(f"{p} {n} {step}\n".encode()).raw
            # a file replaces a directory of that name and the other way round, as in a work tree
            for gone in [f for f in files if f.startswith(p + "/")]:
                del files[gone]
                changes[gone] = None
            parts = p.split("/")
            for i in range(1, len(parts)):
                if files.pop("/".join(parts[:i]), None) is not None:
                    changes["/".join(parts[:i])] = None
            files[p] = oid
            changes[p] = oid
        # one batch: the committer's dict of the latest state per path
        tree = cache.apply({k: files.get(k) for k in changes})
        assert str(tree) == _git_tree_of(path, files)
        assert all(cache.get(p) == oid for p, oid in files.items())
        if n % 2:
            cache = TreeCache(repo, tree)  # as after a restart: read from git, not kept


def test_large_batches_become_one_valid_pack(tmp_path: Path) -> None:
    path, repo = _repo(tmp_path)
    sink = BlobSink(repo)
    blobs = {f"ns/ConfigMap/cm-{i}.yaml": sink.add(f"value {i}\n".encode() * (i + 1)) for i in range(300)}
    assert sink.add(b"value 0\n") == blobs["ns/ConfigMap/cm-0.yaml"]  # staged once
    sink.flush()
    assert not any(p.is_dir() and p.name not in ("pack", "info") for p in (path / ".git/objects").iterdir())
    idx = list((path / ".git/objects/pack").glob("*.idx"))
    assert len(idx) == 1
    git(path, "verify-pack", str(idx[0].relative_to(path)))  # (an absolute path fails in git 2.39)
    tree = TreeCache(repo, None).apply(blobs)
    assert git(path, "cat-file", "-p", f"{tree}:ns/ConfigMap/cm-299.yaml") == "value 299\n" * 300
    commit = git(path, "commit-tree", str(tree), "-m", "x").strip()
    git(path, "update-ref", "refs/heads/main", commit)
    git(path, "fsck", "--strict", "--no-dangling")


def test_small_batches_are_loose_and_a_discarded_batch_leaves_nothing(tmp_path: Path) -> None:
    path, repo = _repo(tmp_path)
    sink = BlobSink(repo)
    oid = sink.add(b"a: 1\n")
    assert sink.get(oid) == b"a: 1\n"
    sink.flush()
    assert (path / ".git/objects" / oid.hex()[:2] / oid.hex()[2:]).is_file()
    assert oid == blob_id(b"a: 1\n")
    for i in range(PACK_THRESHOLD + 5):
        sink.add(f"{i}\n".encode())
    sink.discard()
    assert list((path / ".git/objects/pack").glob("*")) == []
    assert not repo.odb.exists(pygit2.Oid(raw=blob_id(b"0\n")))
