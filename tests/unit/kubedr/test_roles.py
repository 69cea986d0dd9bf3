"""The writer role: the file format, who may push, side-branch names, and how status reads a side's role."""

from __future__ import annotations

import pytest

from kubedr import roles
from kubedr.commands.status import role_state

A1 = roles.Writer("A", 1)
B2 = roles.Writer("B", 2)

# (writer on the branch, exporter's cluster, epoch it holds) -> fenced?
FENCE = [
    (None, "A", 0, False),   # no role yet: nobody is fenced
    (None, "A", 1, True),    # the role file vanished under an exporter that held one
    (A1, "A", 1, False),
    (A1, "A", 0, True),      # the role was given to A while its exporter ran without one
    (A1, "B", 0, True),      # the standby's exporter
    (B2, "A", 1, True),      # the old primary after B's promote
    (roles.Writer("A", 3), "A", 1, True),  # A is the writer again, but this exporter holds epoch 1
]


@pytest.mark.parametrize(("writer", "cluster", "held", "fenced"), FENCE)
def test_fence_reason(writer: roles.Writer | None, cluster: str, held: int, fenced: bool) -> None:
    reason = roles.fence_reason(writer, cluster, held)
    assert (reason is not None) == fenced
    if writer is not None and writer.cluster != cluster:
        assert reason == f"the writer is {writer.cluster} (epoch {writer.epoch}), not {cluster}"
    if writer is not None and writer.cluster == cluster and fenced:  # its own role, newer: claimed afresh
        assert reason is not None and reason.endswith("waiting for the role to settle") and "demote" not in reason


def test_the_role_file_round_trips_and_the_epoch_only_grows() -> None:
    first = roles.successor(None, "prod-eu-1", "kubedr init --writer", now=0)
    assert first == roles.Writer("prod-eu-1", 1, "1970-01-01T00:00:00Z", "kubedr init --writer")
    assert roles.parse(roles.dump(first)) == first
    second = roles.successor(first, "prod-us-1", "kubedr promote prod-us-1")
    assert second.epoch == 2 and roles.trailers(second) == ["Writer: prod-us-1", "Writer-Epoch: 2"]


@pytest.mark.parametrize("data", [b"cluster: A\n", b"epoch: 2\n", b"cluster: A\nepoch: zero\n", b"cluster: A\nepoch: 0\n",
                                  b"cluster: 'a b'\nepoch: 1\n", b": : :\n", b"- a\n"])
def test_a_broken_role_file_is_one_line_naming_it(data: bytes) -> None:
    with pytest.raises(roles.RoleError) as err:
        roles.parse(data)
    assert str(err.value).startswith(".kubedr/writer.yaml: ") and "\n" not in str(err.value)


def test_side_branch_names_the_cluster_and_the_time() -> None:
    assert roles.side_branch("A", now=86400) == "kubedr/unreplicated/A/19700102T000000Z"
    with pytest.raises(roles.RoleError):
        roles.side_branch("a/b")


# (record on the cluster, branch writer, --*-cluster-name, side serves) -> (state, problem)
ROLE_STATES = [
    ({}, A1, "A", True, ("writer", False)),
    ({}, B2, "A", True, ("fenced", True)),          # the old primary, never demoted
    ({}, A1, "B", False, ("standby", False)),       # the secondary: its exporter waits, as designed
    ({}, A1, None, True, ("unknown", False)),
    ({"cluster": "B", "role": "writer", "epoch": "2"}, B2, None, False, ("writer", False)),
    ({"cluster": "B", "role": "writer", "epoch": "2"}, roles.Writer("A", 3), None, False, ("fenced", True)),
    ({"cluster": "A", "role": "standby", "epoch": "2", "sideBranch": "kubedr/unreplicated/A/x"}, B2, None, True,
     ("standby", False)),
]


@pytest.mark.parametrize(("rec", "writer", "name", "serves", "expected"), ROLE_STATES)
def test_status_role_state(rec: dict, writer: roles.Writer, name: str | None, serves: bool, expected: tuple) -> None:
    state, detail, problem = role_state(rec, writer, name, serves)
    assert (state, problem) == expected
    if state == "fenced":
        assert "kubedr demote" in detail


def test_the_role_is_read_entry_by_entry_a_shadow_entry_never_stands_in(tmp_path) -> None:
    from tests import hostile
    from tests.conftest import run_git

    repo = tmp_path / "repo.git"
    run_git("init", "--bare", "-q", "-b", "main", str(repo))
    real, shadow = (hostile.blob(repo, roles.dump(w)) for w in (A1, B2))
    kubedr = hostile.tree(repo, [("100644", b"writer.yaml", real)])
    # the shadow first: git's own `main:.kubedr/writer.yaml` lookup takes it
    sha = hostile.commit(repo, hostile.tree(repo, [("100644", b".kubedr/writer.yaml", shadow),
                                                   ("40000", b".kubedr", kubedr)]), "shadowed role")
    assert run_git("-C", str(repo), "cat-file", "blob", f"{sha}:.kubedr/writer.yaml") == roles.dump(B2).decode()
    assert roles.read_writer(str(repo), "main") == A1
    assert roles.read_writer(str(repo), "no-such-ref") is None
