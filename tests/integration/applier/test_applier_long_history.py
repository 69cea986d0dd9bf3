"""Long histories: what an applier learns by walking the branch is recorded, so a restart walks only new commits."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kubedr import roles
from kubedr.applier import role
from kubedr.applier.fetch import Source
from kubedr.applier.sources import Records, key
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster
from tests.history import NAMESPACE, push_change, synthesize
from tests.integration.applier.conftest import Repo, git, status_of

RECORDS = Records("a")  # the source the scans are recorded for


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
    return role.serving(cluster, "A", source, records=RECORDS)


def test_the_held_role_scan_resumes_from_its_record_after_a_restart(secondary: Any, repo: Repo) -> None:
    cluster = Cluster(api_client(secondary.kubeconfig_path))
    source = Source(str(repo.remote))
    old = _commit_as(repo, "A", 1, "A exports")
    first = _commit_as(repo, "B", 2, "B promoted")
    assert _restart(cluster, source)  # A made `old` under its role: nothing is applied until A is demoted
    here = key(str(repo.remote), "main")
    assert RECORDS.get(cluster, role.SCAN_CONFIGMAP) == {"cluster": "A", "scanned": first, "held": old, "repo": here}
    # the branch rewritten without A's commit: the record no longer holds; the whole history is walked again
    git("checkout", "-q", "--orphan", "fresh", cwd=repo.work)
    rewritten = _commit_as(repo, "B", 2, "B promoted, history squashed", force=True)
    assert not _restart(cluster, source)
    assert RECORDS.get(cluster, role.SCAN_CONFIGMAP) == {"cluster": "A", "scanned": rewritten, "held": "", "repo": here}
    # a restart goes on from the recorded commit: a planted record past A's commit proves the walk starts there
    _commit_as(repo, "A", 1, "A exports again")
    tip = _commit_as(repo, "B", 3, "B promoted again")
    assert _restart(cluster, source)
    RECORDS.put(cluster, role.SCAN_CONFIGMAP, {"cluster": "A", "scanned": tip, "held": ""})
    assert not _restart(cluster, source)
    later = _commit_as(repo, "A", 4, "A promoted")
    last = _commit_as(repo, "B", 5, "B promoted once more")
    role._checked.clear()  # the same process, a moment later: the new commits are walked, from the record on
    assert role.serving(cluster, "A", source, records=RECORDS)
    assert RECORDS.get(cluster, role.SCAN_CONFIGMAP) == {"cluster": "A", "scanned": last, "held": later, "repo": here}


def test_a_new_mirror_fetches_the_tip_and_only_as_much_history_as_it_needs(git_daemon: Any, tmp_path: Path,
                                                                           secondary: Any) -> None:
    bare, url = git_daemon("long.git")
    shutil.rmtree(bare)
    tip = synthesize(bare, 1000)
    older = git("rev-parse", "main~100", cwd=bare)
    src = Source(url, "main", str(tmp_path / "mirror"))
    assert src.head() == tip and src.shallow and _count(src) == 1
    newer = push_change(bare, "1000")
    assert src.head() == newer and _count(src) == 2  # an incremental fetch: still the recent part only
    assert [(c.status, c.path) for c in src.changes(older, newer) or []] == [
        ("A", "history/ConfigMap/cm-0.yaml"), ("A", "history/ConfigMap/cm-1.yaml")]
    assert src.shallow and 100 < _count(src) < 1000  # deepened as far as the older commit, not to the root
    # the applier of a secondary that applied `older` (its status) starts on an empty work dir: the diff only
    from kubedr.commands.cli import main

    assert main(["apply", "--once", "--kubeconfig", secondary.kubeconfig_path, "--repo", url, "--revision", older,
                 "--workdir", str(tmp_path / "pinned")]) == 0
    assert main(["apply", "--once", "--kubeconfig", secondary.kubeconfig_path, "--repo", url,
                 "--workdir", str(tmp_path / "fresh")]) == 0
    assert status_of(secondary)["commit"] == newer
    assert secondary.api.get("v1", "ConfigMap", "cm-1", NAMESPACE)["data"]["value"] == "1000"
    fresh = Source(url, "main", str(tmp_path / "fresh"))
    assert fresh.shallow and _count(fresh) < 1000
    # a check of the whole history (trust on a secondary that never applied anything) fetches all of it
    assert not fresh.reach(None, newer) and not fresh.shallow and _count(fresh) == 1001


def _count(src: Source) -> int:
    return int(src._g("rev-list", "--count", "refs/heads/main").decode())


def test_a_dry_run_scans_the_role_history_but_writes_no_record(secondary: Any, repo: Repo) -> None:
    cluster = Cluster(api_client(secondary.kubeconfig_path))
    source = Source(str(repo.remote))
    _commit_as(repo, "A", 1, "A exports")
    _commit_as(repo, "B", 2, "B promoted")
    role._history.clear()
    role._checked.clear()
    assert role.serving(cluster, "A", source, record=False, records=RECORDS)  # the same answer as a real round
    assert RECORDS.get(cluster, role.SCAN_CONFIGMAP) is None
