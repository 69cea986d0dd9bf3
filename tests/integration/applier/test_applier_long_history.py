"""Long histories: what an applier learns by walking the branch is recorded, so a restart walks only new commits."""

from __future__ import annotations

from typing import Any

from conftest import Repo, git
from kubedr.applier import role
from kubedr.applier.client import Cluster, get_state, put_state
from kubedr.applier.fetch import Source

from kubedr import roles
from kubedr.kube import api_client


def _commit_as(repo: Repo, writer: str, epoch: int, message: str, force: bool = False) -> str:
    """A commit made under writer's role (its trailers), pushed (force: replacing the branch)."""
    repo.write(roles.WRITER_PATH, roles.dump(roles.Writer(writer, epoch)))
    git("add", "-A", cwd=repo.work)
    git("-c", "user.name=t", "commit", "-q", "-m", message, "-m", "\n".join(roles.trailers(roles.Writer(writer, epoch))),
        cwd=repo.work)
    git("push", "-q", *(["-f"] if force else []), "origin", "HEAD:main", cwd=repo.work)
    return git("rev-parse", "HEAD", cwd=repo.work)


def _restart(cluster: Cluster, source: Source) -> bool:
    """What a new applier process concludes (nothing kept in memory)."""
    role._history.clear()
    role._checked.clear()
    return role.serving(cluster, "A", source)


def test_the_held_role_scan_resumes_from_its_record_after_a_restart(secondary: Any, repo: Repo) -> None:
    cluster = Cluster(api_client(secondary.kubeconfig_path))
    source = Source(str(repo.remote))
    old = _commit_as(repo, "A", 1, "A exports")
    first = _commit_as(repo, "B", 2, "B promoted")
    assert _restart(cluster, source)  # A made `old` under its role: nothing is applied until A is demoted
    assert get_state(cluster, role.SCAN_CONFIGMAP) == {"cluster": "A", "scanned": first, "held": old}
    # the branch rewritten without A's commit: the record no longer holds; the whole history is walked again
    git("checkout", "-q", "--orphan", "fresh", cwd=repo.work)
    rewritten = _commit_as(repo, "B", 2, "B promoted, history squashed", force=True)
    assert not _restart(cluster, source)
    assert get_state(cluster, role.SCAN_CONFIGMAP) == {"cluster": "A", "scanned": rewritten, "held": ""}
    # a restart goes on from the recorded commit: a planted record past A's commit proves the walk starts there
    _commit_as(repo, "A", 1, "A exports again")
    tip = _commit_as(repo, "B", 3, "B promoted again")
    assert _restart(cluster, source)
    put_state(cluster, role.SCAN_CONFIGMAP, {"cluster": "A", "scanned": tip, "held": ""})
    assert not _restart(cluster, source)
    later = _commit_as(repo, "A", 4, "A promoted")
    last = _commit_as(repo, "B", 5, "B promoted once more")
    role._checked.clear()  # the same process, a moment later: the new commits are walked, from the record on
    assert role.serving(cluster, "A", source)
    assert get_state(cluster, role.SCAN_CONFIGMAP) == {"cluster": "A", "scanned": last, "held": later}
