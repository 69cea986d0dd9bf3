"""Trees written without git are byte-identical to what `git write-tree` makes (sort order, nesting)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubedr.exporter.gittree import ObjectStore, TreeModel

PATHS = ["a/y.yaml", "a-b/x.yaml", "a.c", "a0", "_cluster/Namespace/shop.yaml", "shop/ConfigMap/%3Ax.yaml",
         "shop/ConfigMap/x.yaml", "shop/Deployment.apps/web.yaml", "README.md", ".kubedr/policy.yaml"]


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=True).stdout.decode()


def test_tree_model_matches_git_write_tree(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    model = TreeModel(ObjectStore(repo / ".git"))
    for i, path in enumerate(PATHS):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(f"content {i}\n")
        model.set(path, model.store.write("blob", f"content {i}\n".encode()))
    git(repo, "add", "-A")
    assert model.write_tree() == git(repo, "write-tree").strip()

    model.set("shop/ConfigMap/x.yaml", None)
    model.set("a/y.yaml", None)  # the directory goes with its last file
    (repo / "shop/ConfigMap/x.yaml").unlink()
    (repo / "a/y.yaml").unlink()
    git(repo, "add", "-A")
    assert model.write_tree() == git(repo, "write-tree").strip()
    git(repo, "fsck", "--strict", "--no-dangling")

    reloaded = TreeModel(model.store)
    reloaded.load(git(repo, "ls-tree", "-r", "-z", "--full-tree", git(repo, "write-tree").strip()))
    assert reloaded.write_tree() == model.write_tree()


def test_large_batches_become_one_valid_pack(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    model = TreeModel(ObjectStore(repo / ".git"))
    model.store.begin()
    for i in range(300):
        model.set(f"ns/ConfigMap/cm-{i}.yaml", model.store.write("blob", f"value {i}\n".encode() * (i + 1)))
    tree = model.write_tree()
    model.store.flush()
    assert not any(p.is_dir() and p.name != "pack" and p.name != "info" for p in (repo / ".git/objects").iterdir())
    assert len(list((repo / ".git/objects/pack").glob("*.idx"))) == 1
    git(repo, "verify-pack", str(next((repo / ".git/objects/pack").glob("*.idx"))))
    assert git(repo, "cat-file", "-p", f"{tree}:ns/ConfigMap/cm-299.yaml") == "value 299\n" * 300
    commit = git(repo, "commit-tree", tree, "-m", "x").strip()
    git(repo, "update-ref", "refs/heads/main", commit)
    git(repo, "fsck", "--strict", "--no-dangling")


def _git_tree_of(repo: Path, files: dict[str, str], tmp_path: Path) -> str:
    """The tree `git write-tree` makes from these path -> blob sha entries (a scratch index, no work tree)."""
    env_index = tmp_path / "scratch-index"
    env_index.unlink(missing_ok=True)
    listing = "".join(f"100644 {sha}\t{path}\n" for path, sha in sorted(files.items()))
    env = {"GIT_INDEX_FILE": str(env_index), "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "update-index", "--add", "--index-info"], cwd=repo, input=listing.encode(), env=env,
                   check=True, capture_output=True)
    return subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_incremental_trees_match_git_through_random_adds_updates_deletes_and_type_changes(tmp_path: Path) -> None:
    import random

    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    model = TreeModel(ObjectStore(repo / ".git"))
    rng = random.Random(7)
    names = ["a", "a.b", "a-b", "a0", "ab", "b", "%3Ab", "_c", "z"]  # '/' sorts between '.-' and '0'
    files: dict[str, str] = {}
    for step in range(400):
        path = "/".join(rng.choice(names) for _ in range(rng.randint(1, 3)))
        if path in files and rng.random() < 0.4:
            model.set(path, None)
            del files[path]
        else:
            sha = model.store.write("blob", f"{path} {step}\n".encode())
            model.set(path, sha)
            # a file replaces a directory of that name and the other way round, as in a work tree
            files = {p: s for p, s in files.items() if not p.startswith(path + "/")}
            parts = path.split("/")
            for i in range(1, len(parts)):
                files.pop("/".join(parts[:i]), None)
            files[path] = sha
        if step % 20 == 19 or step < 10:
            assert model.write_tree() == _git_tree_of(repo, files, tmp_path), f"after step {step}: {path}"
    assert files, "the walk should leave some files"
    reloaded = TreeModel(model.store)
    reloaded.load(git(repo, "ls-tree", "-r", "-z", "--full-tree", model.write_tree()))
    assert reloaded.write_tree() == model.write_tree()
    git(repo, "fsck", "--strict", "--no-dangling")
