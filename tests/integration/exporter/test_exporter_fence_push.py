"""The push-time fence alone: the role moves while a commit waits to be pushed, and that commit never reaches
the branch. The idle re-check and the follower are slowed to an hour on purpose, so only the pusher's own
check stands between the old writer and a split brain."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from exporter_harness import export_args, remote_files

from kubedr import roles
from kubedr.commands.cli import build_parser
from kubedr.commands.handover import Branch
from kubedr.commands.repo_init import init_repo
from kubedr.exporter.cli import export_options, exporter_for
from kubedr.exporter.pipeline import FENCED
from tests.conftest import wait_until


def _promote(remote: Path, cluster: str) -> str:
    """Take the writer role for cluster in one commit, as `kubedr promote` does; its sha."""
    with Branch(str(remote)) as branch:
        branch.fetch()
        sha = branch.commit_file(roles.WRITER_PATH, roles.dump(roles.successor(branch.writer(), cluster, "test")),
                                 f"promote {cluster}\n")
        branch.push(sha)
    return sha


def _log(repo: Path, *args: str) -> list[str]:
    return subprocess.run(["git", "log", "--format=%s", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_a_commit_waiting_to_be_pushed_when_the_role_moves_is_never_pushed(primary, git_remote: Path,
                                                                           tmp_path: Path) -> None:
    init_repo(str(git_remote), writer="A")
    argv = export_args(primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--secrets", "plaintext",
                       "--cluster-name", "A", "--role-check-interval", "1h", "--remote-check-interval", "1h",
                       "--push-backoff-max", "0.3s")
    exp = exporter_for(export_options(build_parser("export").parse_args(argv)))
    stop, code = threading.Event(), []
    worker = threading.Thread(target=lambda: code.append(exp.work(stop, once=False)), daemon=True)
    worker.start()
    try:
        api = primary.api
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first", "namespace": "shop"}})
        wait_until(lambda: "shop/ConfigMap/first.yaml" in remote_files(git_remote), what="A exports")

        away = git_remote.rename(git_remote.with_name("away.git"))  # A's next push waits (the host is away)
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": "shop"}})
        wait_until(lambda: exp.pusher.failing and any("late" in s for s in _log(tmp_path / "clone")),
                   what="A's commit of late waits to be pushed")
        promoted = _promote(away, "B")  # meanwhile B takes the role
        away.rename(git_remote)

        wait_until(lambda: code or "shop/ConfigMap/late.yaml" in remote_files(git_remote), timeout=20,
                   what="A stops, fenced (or pushes: split brain)")
        tip = subprocess.run(["git", "rev-parse", "main"], cwd=git_remote, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert tip == promoted, f"split brain: A pushed onto B's branch: {_log(git_remote, '-3', 'main')}"
        assert "shop/ConfigMap/late.yaml" not in remote_files(git_remote)
        assert code == [FENCED] and exp.fence.reason == "the writer is B (epoch 2), not A"
        assert any("late" in s for s in _log(tmp_path / "clone")), "A keeps its commit for `kubedr demote`"
    finally:
        stop.set()
        worker.join(15)
