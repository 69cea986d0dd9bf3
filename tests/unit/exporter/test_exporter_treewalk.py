"""The branch's trees read as data: only regular files under names git accepts are listed, everything else is
refused by name, never descended into, and dropped by the next tree; local commits are made again on a moved
tip with exactly the files they changed, whatever entries the tip holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubedr.contract import entry_problem
from kubedr.exporter.gittree import TREE, TreeCache
from kubedr.exporter.replay import changes_of, replay
from kubedr.exporter.treewalk import Refused, files, resolves, shown, walk

FILE, EXEC, LINK, GITLINK, DIR = 0o100644, 0o100755, 0o120000, 0o160000, 0o040000


def _repo(tmp_path: Path) -> pygit2.Repository:
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "r.git")], check=True)
    return pygit2.Repository(str(tmp_path / "r.git"))


def _tree(repo: pygit2.Repository, entries: list[tuple[int, bytes, pygit2.Oid]]) -> pygit2.Oid:
    """A tree object exactly as given, names and modes git itself would refuse included (no validation)."""
    def key(e: tuple[int, bytes, pygit2.Oid]) -> bytes:
        return e[1] + (b"/" if e[0] == DIR else b"")
    raw = b"".join(b"%o %s\0" % (mode, name) + oid.raw for mode, name, oid in sorted(entries, key=key))
    return repo.odb.write(TREE, raw)


def _hostile(repo: pygit2.Repository) -> tuple[pygit2.Oid, pygit2.Oid]:
    """A root tree with two real object files beside every kind of entry kubedr refuses; and its blob."""
    blob = repo.create_blob(b"kind: ConfigMap\n")
    cms = _tree(repo, [(FILE, b"a.yaml", blob), (FILE, b"..", blob), (LINK, b"b.yaml", blob)])
    shop = _tree(repo, [(DIR, b"ConfigMap", cms), (DIR, b".git", cms)])
    root = _tree(repo, [(DIR, b"shop", shop), (LINK, b"README.md", blob), (GITLINK, b"mod", blob),
                        (FILE, b"shop/ConfigMap/a.yaml", blob), (FILE, b"\xff\xfe.yaml", blob),
                        (DIR, b"notatree", blob), (0o100664, b"odd.yaml", blob), (EXEC, b"run.sh", blob),
                        (FILE, b".GIT ", blob), (DIR, b"..", cms)])
    return root, blob


def test_a_walk_lists_regular_files_only_and_names_every_refused_entry(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    root, blob = _hostile(repo)
    found = files(repo, root)
    # libgit2 reads an odd mode such as 100664 as git checks it out: a regular file
    assert sorted(found.changes) == [("odd.yaml", blob.raw), ("run.sh", blob.raw), ("shop/ConfigMap/a.yaml", blob.raw)]
    refused = {r.path: r.why for r in found.refused}
    assert refused == {
        "README.md": "a symbolic link",
        "mod": "a submodule (gitlink)",
        "shop/ConfigMap/a.yaml": "a name with a slash or NUL, which git refuses",
        "\\xff\\xfe.yaml": "a name that is not UTF-8",
        "notatree": "a directory entry whose object is not a tree",
        ".GIT ": "a name git reserves for its own directory",
        "..": "the name '..', which git refuses",
        "shop/.git": "a name git reserves for its own directory",
        "shop/ConfigMap/..": "the name '..', which git refuses",
        "shop/ConfigMap/b.yaml": "a symbolic link",
    }
    assert [r for r in found.refused if r.path == "shop/ConfigMap/a.yaml"] == [
        Refused("", "shop/ConfigMap/a.yaml", "a name with a slash or NUL, which git refuses")]  # the entry, not the file


def test_a_walk_against_the_tree_it_replaces_sees_only_what_changed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    one, two = repo.create_blob(b"v: 1\n"), repo.create_blob(b"v: 2\n")
    cms = _tree(repo, [(FILE, b"a.yaml", one), (FILE, b"b.yaml", one)])
    old = _tree(repo, [(DIR, b"shop", _tree(repo, [(DIR, b"ConfigMap", cms)])), (FILE, b"README.md", one)])
    cms2 = _tree(repo, [(FILE, b"a.yaml", two), (LINK, b"c.yaml", one)])
    new = _tree(repo, [(DIR, b"shop", _tree(repo, [(DIR, b"ConfigMap", cms2)])), (FILE, b"README.md", one),
                       (DIR, b"_cluster", _tree(repo, [(DIR, b"Namespace", _tree(repo, [(FILE, b"shop.yaml", one)]))]))])
    found = walk(repo, new, old)
    assert sorted(found.changes) == [("_cluster/Namespace/shop.yaml", one.raw), ("shop/ConfigMap/a.yaml", two.raw),
                                     ("shop/ConfigMap/b.yaml", None)]
    assert found.refused == [Refused("shop/ConfigMap", "c.yaml", "a symbolic link")]
    gone = walk(repo, _tree(repo, [(LINK, b"shop", one)]), old)  # a directory replaced by a link: its files went
    assert sorted(gone.changes) == [("README.md", None), ("shop/ConfigMap/a.yaml", None), ("shop/ConfigMap/b.yaml", None)]
    assert [r.path for r in gone.refused] == ["shop"]


def test_a_walk_survives_a_deep_tree(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    blob = repo.create_blob(b"x")
    node = _tree(repo, [(FILE, b"f", blob)])
    for _ in range(3000):  # deeper than Python's call stack
        node = _tree(repo, [(DIR, b"d", node)])
    assert len(files(repo, node).changes) == 1


def test_the_next_tree_drops_every_refused_entry_and_keeps_the_files(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    root, blob = _hostile(repo)
    cache = TreeCache(repo, root)
    assert cache.get("README.md") is None and cache.get("mod") is None  # a link or submodule is no file to read
    assert cache.get("shop/ConfigMap/b.yaml") is None and cache.get("shop/ConfigMap/a.yaml") == blob.raw
    refused = files(repo, root).refused
    clean = cache.apply({"shop/ConfigMap/b.yaml": blob.raw}, [(r.folder, r.name) for r in refused])
    after = files(repo, clean)
    assert after.refused == []
    assert sorted(after.paths) == ["odd.yaml", "run.sh", "shop/ConfigMap/a.yaml", "shop/ConfigMap/b.yaml"]
    sig = pygit2.Signature("t", "t@example.com", 1_700_000_000, 0)
    repo.create_commit("refs/heads/clean", sig, sig, "clean\n", clean, [])
    strict = tmp_path / "strict.git"  # a host that checks every object pushed to it, as git fsck --strict does
    subprocess.run(["git", "init", "-q", "--bare", str(strict)], check=True)
    subprocess.run(["git", "--git-dir", repo.path, "push", "-q", "--receive-pack",
                    "git -c receive.fsckObjects=true receive-pack", str(strict), "refs/heads/clean"], check=True,
                   capture_output=True)


def test_a_path_resolves_only_to_the_file_it_names(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    root, blob = _hostile(repo)
    assert resolves(repo, root, "shop/ConfigMap/a.yaml", blob, FILE)
    assert not resolves(repo, root, "shop/ConfigMap/b.yaml", blob, LINK)
    assert not resolves(repo, root, "shop/ConfigMap/..", blob, FILE)
    assert not resolves(repo, root, "../a.yaml", blob, FILE)
    assert not resolves(repo, root, "shop/ConfigMap/a.yaml", repo.create_blob(b"other"), FILE)
    assert shown("a\nb\udcff") == "a\\nb\\xff"


def test_local_commits_are_made_again_on_a_hostile_tip_with_exactly_their_files(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    one, two = repo.create_blob(b"v: 1\n"), repo.create_blob(b"v: 2\n")
    sig = pygit2.Signature("t", "t@example.com", 1_700_000_000, 0)
    base_tree = _tree(repo, [(FILE, b"x.yaml", one)])
    base = repo.create_commit(None, sig, sig, "base\n", base_tree, [])
    # the local commit removes a refused entry named like a path and changes a real file
    had = _tree(repo, [(FILE, b"x.yaml", one), (FILE, b"shop/ConfigMap/a.yaml", one)])
    mid = repo.create_commit(None, sig, sig, "foreign\n", had, [base])
    cms = _tree(repo, [(FILE, b"a.yaml", two)])
    mine_tree = _tree(repo, [(FILE, b"x.yaml", one), (DIR, b"shop", _tree(repo, [(DIR, b"ConfigMap", cms)]))])
    mine = repo.create_commit(None, sig, sig, "update shop/ConfigMap/a.yaml\n", mine_tree, [mid])
    assert changes_of(repo, repo[mine].peel(pygit2.Commit)) == {"shop/ConfigMap/a.yaml": two.raw}

    tip_tree = _tree(repo, [(FILE, b"x.yaml", two), (LINK, b"README.md", one), (DIR, b"..", base_tree),
                            (FILE, b"shop/ConfigMap/a.yaml", one)])
    tip = repo.create_commit(None, sig, sig, "hostile\n", tip_tree, [base])
    made: list[tuple[pygit2.Oid, str, str]] = []

    def make(tree: pygit2.Oid, parent: str, message: str, when: float) -> str:
        made.append((tree, parent, message))
        return str(repo.create_commit(None, sig, sig, message, tree, [pygit2.Oid(hex=parent)]))

    new_tip, count = replay(repo, [str(mid), str(mine)], str(tip), make)  # mid changed no file: not made again
    assert count == 1 and made == [(made[0][0], str(tip), "update shop/ConfigMap/a.yaml\n")]
    result = files(repo, repo[new_tip].peel(pygit2.Tree).id)
    assert sorted(result.changes) == [("shop/ConfigMap/a.yaml", two.raw), ("x.yaml", two.raw)]
    assert sorted(r.path for r in result.refused) == ["..", "README.md", "shop/ConfigMap/a.yaml"]  # dropped later
    again, count = replay(repo, [str(mine)], new_tip, make)
    assert (again, count) == (new_tip, 0)  # already there: nothing made


NAMES = st.sampled_from([b"a", b"b.yaml", b"_cluster", b".kubedr", b".", b"..", b".git", b".Git.", b"git~1",
                         b"a/b", b"", b"\xff", b"x\xe2\x80\x8c.git", b"ok-1"])
MODES = st.sampled_from([FILE, EXEC, LINK, GITLINK, 0o100664])


@st.composite
def _listing(draw: st.DrawFn, depth: int = 0) -> list[tuple[int, bytes, object]]:
    entries: dict[bytes, tuple[int, bytes, object]] = {}
    for name in draw(st.lists(NAMES, max_size=5, unique=True)):
        if depth < 2 and draw(st.booleans()):
            entries[name] = (DIR, name, draw(_listing(depth + 1)))
        else:
            entries[name] = (draw(MODES), name, None)
    return list(entries.values())


def _build(repo: pygit2.Repository, listing: list, blob: pygit2.Oid) -> pygit2.Oid:
    return _tree(repo, [(m, n, _build(repo, sub, blob) if m == DIR else blob) for m, n, sub in listing])


def _expected(listing: list, folder: str = "") -> set[str]:
    if any(name == b"" for _, name, _ in listing):
        return set()  # neither git nor libgit2 reads a tree with an empty name: it is refused as a whole
    out: set[str] = set()
    for mode, name, sub in listing:
        if entry_problem(name, FILE if mode == 0o100664 else mode) is not None:  # as libgit2 (and git) read it
            continue
        path = f"{folder}/{name.decode()}" if folder else name.decode()
        out |= _expected(sub, path) if mode == DIR else {path}
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(listing=_listing())
def test_any_tree_yields_exactly_the_regular_files_the_contract_accepts(tmp_path: Path, listing: list) -> None:
    repo = pygit2.Repository(str(tmp_path / "r.git")) if (tmp_path / "r.git").exists() else _repo(tmp_path)
    blob = repo.create_blob(b"x")
    root = _build(repo, listing, blob)
    found = files(repo, root)
    assert set(found.paths) == _expected(listing)
    cleaned = TreeCache(repo, root).apply({}, [(r.folder, r.name) for r in found.refused])
    after = files(repo, cleaned)
    assert after.refused == [] and set(after.paths) == _expected(listing)
