"""The exporter's claim on the writer role, against a real bare remote: who may export, stale epochs, and a
remote that cannot be reached at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubedr import roles
from kubedr.commands import repo_init
from kubedr.commands.handover import Branch
from kubedr.exporter.fence import Fence
from kubedr.exporter.gitstore import GitStore
from kubedr.git import GitError
from kubedr.policyfile import POLICY_PATH
from tests import hostile
from tests.conftest import push_note, run_git


def _set_role(remote: Path, cluster: str) -> roles.Writer:
    with Branch(str(remote)) as branch:
        branch.fetch()
        new = roles.successor(branch.writer(), cluster, "test")
        branch.push(branch.commit_file(roles.WRITER_PATH, roles.dump(new), f"promote {cluster}\n"))
    return new


def _fence(tmp_path: Path, remote: Path, cluster: str, clone: str = "clone") -> Fence:
    return Fence(GitStore(tmp_path / clone, str(remote)), cluster)


def test_claim_follows_the_role_and_refuses_stale_local_commits(tmp_path: Path, git_remote: Path) -> None:
    repo_init.init_repo(str(git_remote), writer="A")
    a = _fence(tmp_path, git_remote, "A")
    assert a.claim() is None and a.held == roles.Writer("A", 1, a.held.since, "kubedr init --writer")
    assert a.trailers() == ["Writer: A", "Writer-Epoch: 1"]
    b = _fence(tmp_path, git_remote, "B", "clone-b")
    assert b.claim() == "the writer is A (epoch 1), not B"

    # A exports, a commit stays unpushed (epoch 1); B is promoted and A again: that commit is stale
    a.store.open()
    assert a.store.commit_paths(lambda _: "local\n\nWriter: A\nWriter-Epoch: 1\n", contents={"x.yaml": b"x: 1\n"})
    _set_role(git_remote, "B")
    assert _fence(tmp_path, git_remote, "A").claim() == "the writer is B (epoch 2), not A"
    _set_role(git_remote, "A")
    a.store.close()
    stale = _fence(tmp_path, git_remote, "A").claim()
    assert stale is not None and "1 local commit" in stale and "run `kubedr demote` for A" in stale


def test_on_a_branch_without_a_role_local_commits_are_never_stale(tmp_path: Path, git_remote: Path) -> None:
    push_note(git_remote, tmp_path / "other", "a branch kubedr init never gave a role\n")
    a = _fence(tmp_path, git_remote, "A")
    a.store.open()
    assert a.store.commit_paths(lambda _: "local\n", contents={"x.yaml": b"x: 1\n"})
    a.store.close()
    assert _fence(tmp_path, git_remote, "A").claim() is None  # no role: nobody's epoch to be stale against


def test_a_remote_unreachable_at_start_exports_under_the_role_last_read(tmp_path: Path, git_remote: Path) -> None:
    repo_init.init_repo(str(git_remote), writer="A")
    assert _fence(tmp_path, git_remote, "A").claim() is None
    away = git_remote.rename(git_remote.with_name("away.git"))
    assert _fence(tmp_path, git_remote, "A").claim() is None  # the clone's last view: A may export
    assert _fence(tmp_path, git_remote, "B", "clone").claim() == "the writer is A (epoch 1), not B"
    with pytest.raises(GitError, match="reading the writer role from"):
        _fence(tmp_path, git_remote, "A", "fresh").claim()  # nothing known locally: an error, not a guess
    away.rename(git_remote)


def test_role_commits_are_signed_with_the_signing_key(tmp_path: Path, git_remote: Path) -> None:
    """promote's role commit goes onto the applied branch: an applier that verifies signatures must accept it."""
    from kubedr.signing import Signer
    from tests.sshkeys import allowed_signers, make_key, verify_commit

    repo_init.init_repo(str(git_remote), writer="A")
    key, other = make_key(tmp_path, "kubedr"), make_key(tmp_path, "other")
    with Branch(str(git_remote), signer=Signer(key)) as branch:
        branch.fetch()
        sha = branch.commit_file(roles.WRITER_PATH, roles.dump(roles.successor(branch.writer(), "B", "t")), "p\n")
        branch.push(sha)
    assert verify_commit(git_remote, sha, allowed_signers(tmp_path / "ok", kubedr=key)).returncode == 0
    assert verify_commit(git_remote, sha, allowed_signers(tmp_path / "no", other=other)).returncode != 0
    with Branch(str(git_remote)) as unsigned:  # without a key nothing is signed, and nothing verifies
        unsigned.fetch()
        plain = unsigned.commit_file("x.yaml", b"x: 1\n", "x\n")
        unsigned.push(plain, "refs/heads/plain")
    assert verify_commit(git_remote, plain, allowed_signers(tmp_path / "ok2", kubedr=key)).returncode != 0


def test_a_role_given_to_this_cluster_while_it_exports_is_taken_up_not_fenced(
        tmp_path: Path, git_remote: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`kubedr init --writer A` on a repo A already exports to: A settles into epoch 1 with its unpushed work."""
    import logging

    repo_init.init_repo(str(git_remote))
    a = _fence(tmp_path, git_remote, "A")
    assert a.claim() is None and a.held is None
    a.store.open()
    # unpushed, no role trailers
    assert a.store.commit_paths(lambda _: "made before the role\n", contents={"x.yaml": b"x: 1\n"})
    _set_role(git_remote, "A")
    a.store.fetch()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kubedr.exporter.fence"):
        reason = a.check()
    assert reason == ("the branch's role became A at epoch 1 while this exporter exported under no role: "
                      "waiting for the role to settle")
    fence = [r for r in caplog.records if r.name == "kubedr.exporter.fence"]
    assert [r.levelno for r in fence] == [logging.INFO] and "demote" not in fence[0].getMessage()
    a.store.close()
    again = _fence(tmp_path, git_remote, "A")
    assert again.claim() is None and again.held is not None and again.held.epoch == 1  # the commit is not stale


def test_waiting_at_start_is_a_warning_the_role_moving_away_mid_run_an_error(
        tmp_path: Path, git_remote: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The standby's exporter waits by design (WARNING); losing the role while exporting is the alarm (ERROR)."""
    import logging

    repo_init.init_repo(str(git_remote), writer="A")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kubedr.exporter.fence"):
        assert _fence(tmp_path, git_remote, "B", "clone-b").claim() == "the writer is A (epoch 1), not B"
        a = _fence(tmp_path, git_remote, "A")
        assert a.claim() is None
        a.store.open()
        _set_role(git_remote, "B")
        assert a.recheck() == "the writer is B (epoch 2), not A"
    a.store.close()
    fenced = [(r.levelno, r.getMessage().split(";")[0]) for r in caplog.records
              if r.name == "kubedr.exporter.fence" and "fenced:" in r.getMessage()]
    assert fenced == [(logging.WARNING, "fenced: the writer is A (epoch 1), not B"),
                      (logging.ERROR, "fenced: the writer is B (epoch 2), not A")]


def _push_file(remote: Path, path: str, data: bytes, message: str) -> None:
    with Branch(str(remote)) as branch:
        branch.fetch()
        branch.push(branch.commit_file(path, data, message))


def test_the_checks_while_exporting_follow_the_role_on_the_branch(tmp_path: Path, git_remote: Path) -> None:
    """check() reads the pusher's last fetch, recheck() the branch afresh: a moved role, a role file nobody can
    read and an unreachable remote each give their answer (fenced, fenced, no answer)."""
    repo_init.init_repo(str(git_remote), writer="A")
    a = _fence(tmp_path, git_remote, "A")
    assert a.claim() is None
    a.store.open()
    a.store.fetch()
    assert a.check() is None and a.recheck() is None and a.reason is None
    _set_role(git_remote, "B")
    assert a.check() is None, "check() judges the remote as last fetched: the pusher fetches before it retries"
    assert a.recheck() == "the writer is B (epoch 2), not A" == a.reason
    a.store.fetch()
    assert a.check() == "the writer is B (epoch 2), not A"

    _push_file(git_remote, roles.WRITER_PATH, b"cluster: [A\n", "a role file nobody can read")
    a.store.fetch()
    unreadable = a.check()
    assert unreadable is not None and unreadable.startswith(f"{roles.WRITER_PATH}: not a writer role")
    assert a.recheck() == unreadable

    away = git_remote.rename(git_remote.with_name("away.git"))
    a.reason = None
    assert a.recheck() is None and a.reason is None, "an unreachable remote is no answer: the pusher decides"
    away.rename(git_remote)
    a.store.close()


def test_a_restart_with_its_own_unpushed_commits_exports_and_an_unreadable_role_fences(tmp_path: Path,
                                                                                       git_remote: Path) -> None:
    repo_init.init_repo(str(git_remote), writer="A")
    a = _fence(tmp_path, git_remote, "A")
    assert a.claim() is None
    a.store.open()
    assert a.store.commit_paths(lambda _: "local\n\nWriter: A\nWriter-Epoch: 1\n", contents={"x.yaml": b"x: 1\n"})
    a.store.close()
    assert _fence(tmp_path, git_remote, "A").claim() is None, "its own epoch's commits are pushed, not stale"
    _push_file(git_remote, roles.WRITER_PATH, b"epoch: 0\ncluster: A\n", "a role file nobody may trust")
    refused = _fence(tmp_path, git_remote, "A", "clone-2").claim()
    assert refused == f"{roles.WRITER_PATH}: epoch must be 1 or more, not 0"


def test_a_role_commit_goes_through_a_branch_with_entries_git_refuses(git_remote: Path) -> None:
    """Someone pushed `..`, a symlink, a slash-named entry and an odd mode: the role still moves (promote on the day
    of the disaster), the hostile entries are left out of the role commit (git's index carried them forward), every
    real file is kept."""
    repo_init.init_repo(str(git_remote), writer="A")
    policy = run_git("--git-dir", str(git_remote), "show", f"main:{POLICY_PATH}")
    target = hostile.blob(git_remote, b"/etc/passwd")
    hostile.add(git_remote, "main", "", ("40000", b"..", hostile.tree(git_remote, [])),
                ("120000", b"README.md.link", target), ("100644", b".kubedr/writer.yaml", target))
    hostile.add(git_remote, "main", ".kubedr", ("100664", b"odd.yaml", target))
    writer = _set_role(git_remote, "B")
    assert (writer.cluster, writer.epoch) == ("B", 2)
    names = run_git("--git-dir", str(git_remote), "ls-tree", "-r", "--name-only", "main").split()
    assert set(names) == {"README.md", ".gitattributes", POLICY_PATH, roles.WRITER_PATH}
    assert run_git("--git-dir", str(git_remote), "show", f"main:{POLICY_PATH}") == policy
    run_git("--git-dir", str(git_remote), "read-tree", f"--index-output={git_remote.parent / 'check.index'}", "main")  # a tree git accepts
