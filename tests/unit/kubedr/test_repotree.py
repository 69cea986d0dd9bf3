"""The tree reader: real git objects, hostile ones made with `git hash-object --literally`; what is refused and why."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from kubedr import contract
from kubedr.repotree import TreeReader
from tests import hostile
from tests.conftest import run_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo.git"
    run_git("init", "--bare", "-q", "-b", "main", str(path))
    return path


def _files(repo: Path, files: dict[str, bytes]) -> str:
    """A tree of ordinary files (nested by their paths); its id."""
    nested: dict = {}
    for path, data in files.items():
        *dirs, name = path.split("/")
        node = nested
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data

    def write(node: dict) -> str:
        return hostile.tree(repo, sorted(
            ("40000", name.encode(), write(v)) if isinstance(v, dict) else ("100644", name.encode(),
                                                                             hostile.blob(repo, v))
            for name, v in node.items()))

    return write(nested)


def test_a_slash_in_a_name_is_refused_and_the_real_file_read(repo: Path) -> None:
    real = _files(repo, {"shop/ConfigMap/settings.yaml": b"color: blue\n"})
    shadow = hostile.blob(repo, b"color: HACKED-shadow\n")
    root = hostile.tree(repo, [*hostile.entries_of(repo, real), ("100644", b"shop/ConfigMap/settings.yaml", shadow)])
    listing = TreeReader(str(repo)).read(hostile.commit(repo, root, "shadow"))
    assert list(listing.files) == ["shop/ConfigMap/settings.yaml"]
    assert next(TreeReader(str(repo)).blobs([listing.files["shop/ConfigMap/settings.yaml"]])) == b"color: blue\n"
    assert [(r.path, r.reason) for r in listing.refused] == [
        ("'shop/ConfigMap/settings.yaml'", "a name with a slash or NUL, which git refuses")]


@pytest.mark.parametrize(("mode", "name", "why"), [
    ("100644", b"..", "the name '..', which git refuses"),
    ("40000", b".", "the name '.', which git refuses"),
    ("40000", b".GIT", "a name git reserves for its own directory"),
    ("120000", b"README.md", "a symbolic link"),
    ("160000", b"vendor", "a submodule (gitlink)"),
    ("100664", b"odd.yaml", "mode 100664, not a regular file"),
    ("644", b"short.yaml", "mode 644, not a regular file"),
    ("100644", b"\xff.yaml", "a name that is not UTF-8"),
    ("100644", b"", "an empty name"),
])
def test_entries_git_refuses_or_that_are_not_regular_files_are_refused(repo: Path, mode: str, name: bytes,
                                                                       why: str) -> None:
    base = _files(repo, {"shop/ConfigMap/a.yaml": b"a: 1\n"})
    oid = hostile.blob(repo, b"x: 1\n") if mode != "40000" else base
    if mode == "160000":
        oid = "1" * 40  # a gitlink names a commit of another repository: never present here
    shop = hostile.entries_of(repo, f"{base}:shop")
    root = hostile.tree(repo, [("40000", b"shop", hostile.tree(repo, [*shop, (mode, name, oid)]))])
    listing = TreeReader(str(repo)).read(hostile.commit(repo, root, "hostile"))
    assert list(listing.files) == ["shop/ConfigMap/a.yaml"]
    assert [(r.path, r.reason) for r in listing.refused] == [(hostile_where("shop", name), why)]


def hostile_where(parent: str, name: bytes) -> str:
    return f"{parent}/{name.decode('utf-8', 'backslashreplace')!r}"


def test_a_name_twice_in_one_tree_is_refused_both_times(repo: Path) -> None:
    one, two = hostile.blob(repo, b"a: 1\n"), hostile.blob(repo, b"a: 2\n")
    root = hostile.tree(repo, [("100644", b"x.yaml", one), ("100644", b"x.yaml", two), ("100644", b"y.yaml", one)])
    listing = TreeReader(str(repo)).read(hostile.commit(repo, root, "twice"))
    assert list(listing.files) == ["y.yaml"]
    assert [r.reason for r in listing.refused] == ["a name that occurs twice in one tree"] * 2


def test_an_object_that_is_not_what_its_mode_says_is_refused(repo: Path) -> None:
    sub = _files(repo, {"a.yaml": b"a: 1\n"})
    data = hostile.blob(repo, b"a: 1\n")
    root = hostile.tree(repo, [("100644", b"file-but-tree", sub), ("40000", b"tree-but-blob", data)])
    listing = TreeReader(str(repo)).read(hostile.commit(repo, root, "modes"))
    assert listing.files == {}
    assert sorted(r.reason for r in listing.refused) == ["mode 100644 but the object is a tree",
                                                         "mode 40000 but the object is a blob"]


def test_a_file_over_the_size_limit_is_refused_unread(repo: Path) -> None:
    big = b"k: " + b"x" * contract.MAX_FILE_BYTES + b"\n"
    root = _files(repo, {"shop/ConfigMap/big.yaml": big, "shop/ConfigMap/small.yaml": b"k: v\n"})
    listing = TreeReader(str(repo)).read(hostile.commit(repo, root, "big"))
    assert list(listing.files) == ["shop/ConfigMap/small.yaml"]
    assert [(r.path, r.reason) for r in listing.refused] == [
        ("shop/ConfigMap/'big.yaml'", f"{len(big)} bytes, over the {contract.MAX_FILE_BYTES} byte limit")]


def test_a_new_commit_is_read_as_a_whole_and_unchanged_directories_are_kept(repo: Path) -> None:
    reader = TreeReader(str(repo))
    first = hostile.commit(repo, _files(repo, {"a/x.yaml": b"1", "b/y.yaml": b"2"}), "one")
    second = hostile.commit(repo, _files(repo, {"a/x.yaml": b"1", "b/y.yaml": b"3", "c/z.yaml": b"4"}), "two")
    assert sorted(reader.read(first).files) == ["a/x.yaml", "b/y.yaml"]
    after = reader.read(second)
    assert sorted(after.files) == ["a/x.yaml", "b/y.yaml", "c/z.yaml"]
    assert list(reader.blobs([after.files["b/y.yaml"]])) == [b"3"]
    assert sorted(reader.read(first).files) == ["a/x.yaml", "b/y.yaml"]  # back again: from what is kept


def test_one_file_is_found_by_the_same_rules_without_reading_the_tree(repo: Path) -> None:
    policy = hostile.blob(repo, b"apply: {}\n")
    kubedr = hostile.tree(repo, [("100644", b"policy.yaml", policy)])
    shadow = hostile.blob(repo, b"apply: {prune: true}\n")
    root = hostile.tree(repo, [("100644", b"", shadow), ("40000", b".kubedr", kubedr),
                               ("100644", b".kubedr/policy.yaml", shadow)])  # libgit2 will not parse this tree
    sha = hostile.commit(repo, root, "a root git refuses to show")
    reader = TreeReader(str(repo))
    assert reader.file(sha, ".kubedr/policy.yaml") == policy
    assert reader.file(sha, ".kubedr/writer.yaml") is None and reader.file(sha, "") is None
    assert reader.read(sha).files == {".kubedr/policy.yaml": policy}


def test_a_tree_nested_deeper_than_python_recurses_is_read(repo: Path) -> None:
    odb = pygit2.Repository(str(repo)).odb  # 3000 trees: written in process, not by 3000 git commands
    tree = hostile.tree(repo, [("100644", b"deep.yaml", hostile.blob(repo, b"a: 1\n"))])
    for _ in range(3000):
        tree = str(odb.write(pygit2.GIT_OBJECT_TREE, b"40000 d\0" + bytes.fromhex(tree)))
    listing = TreeReader(str(repo)).read(hostile.commit(repo, tree, "deep"))
    assert list(listing.files) == ["d/" * 3000 + "deep.yaml"] and listing.refused == []
