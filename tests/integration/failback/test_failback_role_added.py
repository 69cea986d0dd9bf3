"""A writer role given to the cluster a running exporter exports from: it carries on under the role, quietly."""

from __future__ import annotations

from pathlib import Path

from failback_harness import NS, Side, branch_file, cm_path, configmap, git, run_kubedr

from kubedr.commands import repo_init
from tests.conftest import wait_until


def test_the_exporter_takes_up_a_role_added_while_it_runs(tmp_path: Path, git_remote: Path) -> None:
    from kubedr.emulator.server import Emulator

    repo_init.init_repo(str(git_remote))  # no writer yet
    emu = Emulator().start()
    a = Side("A", emu, tmp_path, git_remote)
    try:
        emu.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        a.put(configmap("settings", v="1"))
        a.start_exporter()
        wait_until(lambda: "v: '1'" in (branch_file(git_remote, cm_path("settings")) or ""), timeout=30,
                   what="the first export")
        added = run_kubedr("init", "--repo", str(git_remote), "--writer", "A")
        assert added.returncode == 0, added.stderr
        a.put(configmap("settings", v="2"))
        wait_until(lambda: "v: '2'" in (branch_file(git_remote, cm_path("settings")) or ""), timeout=30,
                   what="the change after the role was added")
        wait_until(lambda: "writer of main: A at epoch 1" in a.log("exporter"), timeout=30, what="the role taken")
        a.put(configmap("settings", v="3"))  # made under the role: it says so
        wait_until(lambda: "v: '3'" in (branch_file(git_remote, cm_path("settings")) or ""), timeout=30,
                   what="a change under the role")
        assert "Writer: A\nWriter-Epoch: 1" in git(git_remote, "log", "-1", "--format=%B", "main")
        log = a.log("exporter")
        assert "waiting for the role to settle" in log, log
        assert "fenced:" not in log and "demote" not in log and " ERROR " not in log, log
    finally:
        a.close()
        emu.stop()
