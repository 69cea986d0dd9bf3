"""Every --dry-run changes nothing anywhere: the repo, the exporters' clones, the clusters' records and objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from failback_harness import (
    Side,
    branch_file,
    cm_path,
    configmap,
    git,
    run_kubedr,
    side_branches,
    start_pair,
    wait_data,
)

from tests.conftest import wait_until


def _refs(gitdir: Path) -> str:
    out = subprocess.run(["git", "--git-dir", str(gitdir), "for-each-ref", "--format=%(refname) %(objectname)"],
                         capture_output=True, text=True, check=True).stdout
    return out + (gitdir / "HEAD").read_text()


def _state(pair: dict[str, Side]) -> dict[str, Any]:
    """Everything a dry run could have changed, as bytes to compare."""
    remote = pair["A"].remote
    out: dict[str, Any] = {"remote": _refs(remote)}
    for name, side in pair.items():
        clone = side.tmp / f"export-{name}" / ".git"
        out[f"clone {name}"] = _refs(clone) if clone.exists() else None
        out[f"index {name}"] = (clone / "index").read_bytes() if (clone / "index").exists() else None
        out[f"records {name}"] = side.emu.api.list("v1", "ConfigMap", "kubedr-system")
        out[f"resourceVersion {name}"] = side.emu.api.rv  # any write to the cluster moves it
    return out


def _settled(pair: dict[str, Side]) -> dict[str, Any]:
    """The state, once the running exporters' own role checks have read the branch's head (they move by themselves)."""
    head = git(pair["A"].remote, "rev-parse", "main").strip()
    wait_until(lambda: all(f"refs/kubedr/role-check {head}" in (s or "") for k, s in _state(pair).items()
                           if k.startswith("clone")), timeout=30, what="the exporters' role checks at the head")
    return _state(pair)


def _dry(side: Side, command: str, *extra: str) -> subprocess.CompletedProcess:
    if command == "demote":
        return side.demote("--dry-run", *extra)
    if command == "promote":
        return side.promote("--dry-run", *extra)
    return run_kubedr("apply", "--kubeconfig", side.kubeconfig, "--repo", str(side.remote), "--cluster-name",
                      side.name, "--prune", "--once", "--dry-run", *extra)


def test_dry_runs_of_apply_promote_and_demote_change_nothing(pair: dict[str, Side]) -> None:
    a, b = start_pair(pair, 2)
    b.stop("applier")  # the standby's records stay still; what A changes next waits to be applied
    a.put(configmap("settings", v="2"))
    wait_until(lambda: "v: '2'" in (branch_file(a.remote, cm_path("settings")) or ""), timeout=30, what="v=2 pushed")

    before = _settled(pair)
    planned = _dry(b, "apply")
    assert planned.returncode == 0 and f"would apply {cm_path('settings')}" in planned.stdout, planned.stderr
    assert _state(pair) == before
    planned = _dry(b, "promote", "--force")
    assert planned.returncode == 0 and "plan: apply main" in planned.stdout, planned.stderr
    assert _state(pair) == before
    assert b.data("settings") == {"v": "1"}

    a.kill("exporter")  # the primary region is cut off; a change there never reaches the branch
    a.put(configmap("only-on-a", n="1"))
    promoted = b.promote("--force")
    assert promoted.returncode == 0, promoted.stderr
    wait_until(lambda: b.readyz() == "ok\n", timeout=30, what="B exports")

    before = _state(pair)
    planned = _dry(a, "demote")
    assert planned.returncode == 0, planned.stderr
    assert "1 objects never reached main" in planned.stdout and "plan: push them" in planned.stdout, planned.stdout
    assert _state(pair) == before
    planned = _dry(a, "apply")  # A held the role and was not demoted: a real apply would apply nothing either
    assert planned.returncode == 0 and "nothing would be applied" in planned.stdout, planned.stdout + planned.stderr
    assert _state(pair) == before
    assert not side_branches(a.remote, "A")

    demoted = a.demote()  # the dry runs took nothing away from the real one
    assert demoted.returncode == 0, demoted.stderr
    [side] = side_branches(a.remote, "A")
    assert branch_file(a.remote, cm_path("only-on-a"), side) is not None
    wait_data(a, "only-on-a", None, "the standby round pruned what A alone had")
    assert "v: '2'" in git(a.remote, "show", f"main:{cm_path('settings')}")
