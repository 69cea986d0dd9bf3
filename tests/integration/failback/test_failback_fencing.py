"""Split brain, the liveness refusal, and SIGKILL during promote and demote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from failback_harness import (
    Side,
    branch_file,
    cm_path,
    configmap,
    git,
    kubedr_env,
    run_kubedr,
    side_branches,
    sources,
    start_pair,
    writer,
)

from kubedr import contract, sanitize
from tests.conftest import wait_until


def _exported(side: Side, name: str) -> str:
    """The bytes the exporter writes for a live ConfigMap."""
    return contract.dump(sanitize.sanitize(side.emu.api.get("v1", "ConfigMap", name, "shop"))).decode()


def _commits_since_promote(remote: Path) -> list[str]:
    """Source-Cluster of every commit on main from B's promote on (newest first)."""
    out = sources(remote)
    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    end = next(i for i, s in enumerate(subjects) if s.startswith("promote B"))
    return out[:end + 1]


def test_split_brain_old_primary_pushes_nothing_and_its_changes_go_to_a_side_branch(pair: dict[str, Side]) -> None:
    a, b = start_pair(pair, 2)
    promoted = b.promote("--force")  # A's exporter is still running: a region cut off, not destroyed
    assert promoted.returncode == 0, promoted.stderr

    a.put(configmap("while-running", n="1"))  # committed by A's exporter, its push rejected: fenced
    wait_until(lambda: a.readyz().startswith("fenced: the writer is B (epoch 2)"), timeout=30, what="A fenced")
    assert a.metric("kubedr_exporter_fenced") == 1.0
    assert "fenced: the writer is B (epoch 2), not A" in a.log("exporter")

    a.kill("exporter")  # the old primary's exporter restarts, and its cluster changes
    a.start_exporter()
    a.put(configmap("settings", v="99"))
    a.put(configmap("after-restart", n="2"))
    wait_until(lambda: a.readyz().startswith("fenced: the writer is B"), timeout=30, what="A fenced after restart")
    b.put(configmap("from-b", y="1"))
    wait_until(lambda: branch_file(b.remote, cm_path("from-b")) is not None, timeout=30, what="B exports")
    assert set(_commits_since_promote(a.remote)) == {"B"}
    assert branch_file(a.remote, cm_path("while-running")) is None
    status = run_kubedr("status", "--repo", str(a.remote), "--primary-kubeconfig", a.kubeconfig,
                        "--primary-cluster-name", "A", "--secondary-kubeconfig", b.kubeconfig, "-o", "json")
    rows = {(r["side"], r["component"]): r for r in json.loads(status.stdout)}
    assert rows[("repo", "git")]["data"]["writer"] == "B" and rows[("repo", "git")]["data"]["epoch"] == 2
    assert rows[("primary", "role")]["state"] == "fenced" and status.returncode == 1
    assert rows[("secondary", "role")]["state"] == "writer"
    expected = {name: _exported(a, name) for name in ("while-running", "settings", "after-restart")}

    demoted = a.demote()  # while A's exporter waits, fenced
    assert demoted.returncode == 1 and "prune refused: would delete 2 of 6 objects" in demoted.stderr
    [side] = side_branches(a.remote, "A")  # set aside before anything is deleted
    assert "already a standby" in (demoted := a.demote("--force-prune")).stdout, demoted.stderr
    assert demoted.returncode == 0, demoted.stderr
    assert side_branches(a.remote, "A") == [side]
    for name, data in expected.items():
        assert branch_file(a.remote, cm_path(name), side) == data
    base = git(a.remote, "rev-parse", f"{side}^").strip()
    assert git(a.remote, "diff", "--name-only", base, side).split() == sorted(cm_path(n) for n in expected)
    assert git(a.remote, "rev-list", "--count", f"main..{side}").strip() == "1"
    assert "unreplicated A: 3 objects: 2 create, 1 update" in git(a.remote, "log", "-1", "--format=%B", side)
    # never applied: A follows the branch now, B never saw them
    assert a.data("settings") == {"v": "1"} and a.data("while-running") is None and a.data("after-restart") is None
    assert b.data("while-running") is None and b.data("settings") == {"v": "1"}
    assert a.replicas("web") == 0
    assert set(_commits_since_promote(a.remote)) == {"B"}
    assert a.readyz().startswith("fenced: the writer is B")


def test_promote_refuses_while_the_writer_is_alive_unless_forced(pair: dict[str, Side]) -> None:
    a, b = start_pair(pair, 2)
    a.start_applier()  # deployed on both sides: on the writer it applies nothing
    wait_until(lambda: "nothing is applied to this cluster: it is the writer (A at epoch 1)" in a.log("applier"),
               timeout=30, what="A's applier idle")
    assert a.replicas("web") == 2  # a standby round would have held it at 0
    refused = b.promote()
    assert refused.returncode == 1
    assert "refused: A committed" in refused.stderr and "looks alive" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    planned = b.promote("--force", "--dry-run")
    assert planned.returncode == 0 and "plan: apply main" in planned.stdout
    assert writer(a.remote) == "A@1" and b.replicas("web") == 0
    assert b.promote("--force").returncode == 0
    assert writer(a.remote) == "B@2" and b.replicas("web") == 2
    # A's exporter, running and idle (nothing to push), learns of the promote by itself
    wait_until(lambda: a.readyz().startswith("fenced: the writer is B (epoch 2)"), timeout=30, what="idle A fenced")
    # and A's applier does not overwrite what A may hold unreplicated: only a demote makes A a standby
    wait_until(lambda: "A held the writer role before; run `kubedr demote` for it first" in a.log("applier"),
               timeout=30, what="A's applier waits for the demote")
    assert a.replicas("web") == 2
    again = b.promote()
    assert again.returncode == 0 and "already the writer" in again.stdout
    assert writer(a.remote) == "B@2"


def _killed_at(argv: list[str], line: str) -> None:
    """Run a kubedr command and SIGKILL it as soon as it prints a line containing `line`."""
    proc = subprocess.Popen([sys.executable, "-m", "kubedr", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=kubedr_env(), start_new_session=True)
    seen = []
    for out in proc.stdout:
        seen.append(out)
        if line in out:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, f"never printed {line!r}: {''.join(seen)}"


def test_sigkill_during_promote_or_demote_then_rerun_completes(pair: dict[str, Side]) -> None:
    a, b = start_pair(pair, 2)
    a.kill("exporter")
    promote = ["promote", "--kubeconfig", b.kubeconfig, "--repo", str(b.remote), "--cluster-name", "B", "--force"]
    _killed_at(promote, "the RPO you accept")  # before anything changed
    _killed_at(promote, "writer.yaml = B epoch 2")  # the role is taken, the cluster not told yet
    done = b.promote("--force")
    assert done.returncode == 0 and "already the writer" in done.stdout, done.stdout + done.stderr
    assert writer(b.remote) == "B@2" and b.replicas("web") == 2
    assert git(b.remote, "log", "--format=%s", "main").count("promote B") == 1

    a.put(configmap("unreplicated", n="1"))
    demote = ["demote", *a.export_args(), "--prune"]
    _killed_at(demote, "objects never reached main")  # before the side branch
    _killed_at(demote, "side branch kubedr/unreplicated/A/")  # pushed, clone not reset, role not recorded
    done = a.demote()
    assert done.returncode == 0, done.stdout + done.stderr
    [side] = side_branches(a.remote, "A")
    assert branch_file(a.remote, cm_path("unreplicated"), side) is not None
    assert a.data("unreplicated") is None and a.replicas("web") == 0
    again = a.demote()
    assert again.returncode == 0 and "already a standby" in again.stdout
    assert len(side_branches(a.remote, "A")) == 1
