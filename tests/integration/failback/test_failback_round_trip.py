"""The round trip A -> B -> A with real exporters and appliers: changes on each side while it serves reach the
other, the branch history stays one line, and the role moves only through promote."""

from __future__ import annotations

from failback_harness import (
    Side,
    branch_file,
    cm_path,
    configmap,
    git,
    side_branches,
    sources,
    start_pair,
    wait_data,
    writer,
)

from tests.conftest import wait_until


def test_round_trip_a_b_a_keeps_every_change_on_one_line(pair: dict[str, Side]) -> None:
    a, b = start_pair(pair, 3)
    wait_until(lambda: b.readyz().startswith("fenced: the writer is A (epoch 1)"), timeout=30, what="B fenced")
    assert b.metric("kubedr_exporter_fenced") == 1.0

    a.put(configmap("settings", v="2"))
    a.put(configmap("from-a", x="1"))
    wait_data(b, "from-a", {"x": "1"})
    wait_data(b, "settings", {"v": "2"})

    a.kill("exporter")  # the primary region is lost
    promoted = b.promote("--force")
    assert promoted.returncode == 0, promoted.stderr
    assert "the last commit of A is" in promoted.stdout and "the RPO you accept" in promoted.stdout
    assert writer(a.remote) == "B@2"
    assert b.replicas("web") == 3

    # B serves: its exporter (fenced until now) exports its changes
    b.put(configmap("settings", v="3"))
    b.put(configmap("from-b", y="1"))
    b.delete("v1", "ConfigMap", "from-a")
    wait_until(lambda: branch_file(b.remote, cm_path("from-b")) is not None
               and branch_file(b.remote, cm_path("from-a")) is None, timeout=30, what="B's changes pushed")
    wait_until(lambda: "v: '3'" in (branch_file(b.remote, cm_path("settings")) or ""), timeout=30, what="v=3")

    # A comes back: its exporter is fenced, demote makes it a standby of B
    a.start_exporter()
    wait_until(lambda: a.readyz().startswith("fenced: the writer is B (epoch 2)"), timeout=30, what="A fenced")
    demoted = a.demote()
    assert demoted.returncode == 0, demoted.stderr
    assert "nothing unreplicated" in demoted.stdout
    assert side_branches(a.remote, "A") == []
    assert a.data("settings") == {"v": "3"} and a.data("from-b") == {"y": "1"}
    assert a.data("from-a") is None  # deleted on B while it served: pruned on A
    assert a.replicas("web") == 0  # a standby now
    a.start_applier()
    b.put(configmap("late-b", z="1"))
    wait_data(a, "late-b", {"z": "1"}, "B's change applied on A")

    # failback: a planned stop of B's exporter, then the same two commands the other way
    b.stop("exporter")
    promoted = a.promote("--force")
    assert promoted.returncode == 0, promoted.stderr
    assert writer(a.remote) == "A@3"
    assert a.replicas("web") == 3
    wait_until(lambda: a.readyz() == "ok\n", timeout=30, what="A's exporter exporting again")
    demoted = b.demote()
    assert demoted.returncode == 0, demoted.stderr
    assert b.replicas("web") == 0
    a.put(configmap("after-failback", w="1"))
    wait_data(b, "after-failback", {"w": "1"}, "A's change applied on B after the failback")

    for side in (a, b):
        assert side.data("settings") == {"v": "3"}
        assert side.data("from-b") == {"y": "1"} and side.data("late-b") == {"z": "1"}
        assert side.data("after-failback") == {"w": "1"}
        assert side.data("from-a") is None
    assert git(a.remote, "rev-list", "--merges", "main") == ""
    assert git(a.remote, "rev-list", "--count", "main") == git(a.remote, "rev-list", "--first-parent", "--count", "main")
    log = sources(a.remote)
    assert {"A", "B"} <= set(log)
    # A's exporter commits only before B's promote and after its own: the lines never interleave
    runs = [s for i, s in enumerate(log) if s and (i == 0 or log[i - 1] != s)]
    assert runs[:3] == ["A", "B", "A"], runs
