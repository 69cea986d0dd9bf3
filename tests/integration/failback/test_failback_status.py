"""`kubedr status` after a promote reads the roles: the writer's applier applies nothing (no lag, no drift against
itself), both clusters' appliers show whichever flag named them, the last commit is named by its trailers."""

from __future__ import annotations

import json

from failback_harness import Side, branch_file, cm_path, configmap, run_kubedr, start_pair

from kubedr.applier.sources import pick
from kubedr.applier.status import STATUS_CONFIGMAP
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster
from tests.conftest import wait_until


def _record(side: Side) -> dict[str, str]:
    cluster = Cluster(api_client(side.kubeconfig))
    return pick(cluster, None, write=False).get(cluster, STATUS_CONFIGMAP) or {}


def test_status_of_a_promoted_secondary_knows_who_writes(pair: dict[str, Side]) -> None:
    a, b = start_pair(pair, 2)  # A writes; B's exporter waits fenced, its applier applies (standby, drift on)
    a.kill("exporter")  # the primary region is lost
    assert b.promote("--force").returncode == 0
    wait_until(lambda: "nothing is applied to this cluster: it is the writer" in b.log("applier"), timeout=30,
               what="B's applier knows B writes")
    wait_until(lambda: b.readyz() == "ok\n", timeout=30, what="B exports")
    b.put(configmap("settings", v="edited-on-b"))  # a normal edit on the new primary: exported, not drift
    wait_until(lambda: "edited-on-b" in (branch_file(b.remote, cm_path("settings")) or ""), timeout=30,
               what="B's edit exported")
    b.put(configmap("more", v="1"))
    wait_until(lambda: branch_file(b.remote, cm_path("more")) is not None, timeout=30, what="a second commit of B")
    wait_until(lambda: _record(b).get("heal") == "off (this cluster is or was the writer)", timeout=30,
               what="B's drift watch stands down")
    assert json.loads(_record(b).get("drift") or "[]") == [] and "drift ConfigMap" not in b.log("applier")
    demoted = a.demote()  # A comes back as a standby: now it has an applier record too
    assert demoted.returncode == 0, demoted.stderr

    args = ["--repo", str(a.remote), "--primary-kubeconfig", a.kubeconfig, "--primary-cluster-name", "A",
            "--secondary-kubeconfig", b.kubeconfig, "--secondary-cluster-name", "B"]
    shown = run_kubedr("status", "-o", "json", *args)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = {(r["side"], r["component"]): r for r in json.loads(shown.stdout)}
    git = rows[("repo", "git")]
    assert git["data"]["writer"] == "B" and git["data"]["source"] == "B" and "by B: create ConfigMap shop/more" in \
        git["detail"]
    assert rows[("primary", "exporter")]["detail"].startswith("no kubedr-exporter Lease")
    assert "last commit of A " in rows[("primary", "exporter")]["detail"]
    assert rows[("primary", "role")]["state"] == "standby"
    standby = rows[("primary", "applier")]  # the old primary's applier, named by --primary-kubeconfig
    assert standby["state"] == "standby" and "in sync with the repo head" in standby["detail"], standby
    assert standby["lag"].endswith("s") and not standby["problem"], standby
    writer = rows[("secondary", "applier")]
    assert writer["state"] == "idle (writer)" and (writer["lag"], writer["drift"]) == ("", ""), writer
    assert "this cluster writes the branch" in writer["detail"] and not writer["problem"]
    assert rows[("secondary", "role")]["state"] == "writer"

    table = run_kubedr("status", *args)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 120, "\n".join(ln for ln in lines if len(ln) > 120)
    assert any(ln.split()[:3] == ["secondary", "applier", "idle"] for ln in lines), table.stdout
    assert any("secondary applier: this cluster writes the branch" in ln for ln in lines), table.stdout
