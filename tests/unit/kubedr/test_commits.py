"""Commits read in-process (kubedr.commits) answer as the git commands they replace: cat-file -e, merge-base
--is-ancestor, rev-list --topo-order --reverse --parents, log's times and trailers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubedr import git
from kubedr.commits import CommitReader


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """root - a - b (main) and root - a - side, merged into main as m; then c."""
    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name in ("root", "a"):
        _git(path, "commit", "-q", "--allow-empty", "-m", name)
    _git(path, "branch", "side")
    _git(path, "commit", "-q", "--allow-empty", "-m", "b")
    _git(path, "checkout", "-q", "side")
    _git(path, "commit", "-q", "--allow-empty", "-m", "side")
    _git(path, "checkout", "-q", "main")
    _git(path, "merge", "-q", "--no-ff", "-m", "m", "side")
    _git(path, "commit", "-q", "--allow-empty", "-m", "c\n\nKubedr-Committed-At: 2026-01-02T03:04:05.678Z\n"
                                                       "Source-Cluster: east")
    return path


def test_presence_and_ancestry_match_git(repo: Path) -> None:
    reader = CommitReader(str(repo))
    shas = _git(repo, "rev-list", "--all").split()
    for old in [*shas, "0" * 40]:
        assert reader.has(old) == (subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{old}^{{commit}}"],
                                                  capture_output=True).returncode == 0)
        for new in shas:
            ancestor = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", old, new],
                                      capture_output=True).returncode == 0
            assert reader.is_ancestor(old, new) == ancestor, (old, new)


def test_walks_match_rev_list(repo: Path) -> None:
    reader = CommitReader(str(repo))
    base = _git(repo, "rev-parse", "main~2")  # b
    got = reader.ancestry("main", [base])
    want = [line.split() for line in _git(repo, "rev-list", "--topo-order", "--reverse", "--parents", "main",
                                          f"^{base}").splitlines()]
    assert sorted((s, p) for s, p in got) == sorted((s, p) for s, *p in want)
    order = [s for s, _ in got]
    assert all(order.index(p) < order.index(s) for s, ps in got for p in ps if p in order)  # ancestors first
    assert {s for s, _ in reader.between("main", [base])} == set(order)
    assert [s for s, _ in reader.ancestry("main")][-1] == _git(repo, "rev-parse", "main")


def test_a_commit_reads_as_git_log_tells_it(repo: Path) -> None:
    reader = CommitReader(str(repo))
    [want] = git.log(["main"], cwd=repo, no_walk=True)
    got = reader.commit("main")
    assert got is not None
    assert (got.sha, got.time, got.subject, got.trailers) == (want.sha, want.time, want.subject, want.trailers)
    assert reader.commit("0" * 40) is None and reader.raw("0" * 40) is None
    raw = reader.raw(want.sha)
    assert raw is not None and raw == subprocess.run(["git", "-C", str(repo), "cat-file", "commit", want.sha],
                                                     capture_output=True, check=True).stdout
