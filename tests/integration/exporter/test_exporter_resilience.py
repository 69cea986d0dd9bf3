"""Startup resync, 410 Gone, and a remote that goes away and comes back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from exporter_harness import export_args, remote_files, subjects

from kubedr import metrics
from kubedr.commands.cli import main
from tests.conftest import free_port, port_open, wait_until


def cm(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
            "data": {"v": value}}


def test_once_makes_one_resync_commit_with_what_changed_while_down(primary, git_remote: Path,
                                                                   tmp_path: Path) -> None:
    api = primary.api
    api.create(cm("keep", "1"))
    api.create(cm("change", "1"))
    api.create(cm("drop", "1"))
    argv = export_args(primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--once")
    assert main(argv) == 0
    assert subjects(git_remote) == ["resync 4 objects: 4 create"]  # 3 ConfigMaps and the Namespace
    api.delete("v1", "ConfigMap", "drop", "shop")
    live = api.get("v1", "ConfigMap", "change", "shop")
    live["data"]["v"] = "2"
    api.update(live)
    api.create(cm("new", "1"))
    assert main(argv) == 0
    assert subjects(git_remote)[0] == "resync 3 objects: 1 create, 1 update, 1 delete"
    files = remote_files(git_remote)
    assert "shop/ConfigMap/drop.yaml" not in files and "shop/ConfigMap/new.yaml" in files
    assert "v: '2'" in files["shop/ConfigMap/change.yaml"]
    assert main(argv) == 0  # nothing changed: no commit
    assert len(subjects(git_remote)) == 2
    # a fresh clone elsewhere (new pod, empty disk) adopts the remote and still makes no commit
    assert main(export_args(primary, git_remote, tmp_path / "other", "--namespaces", "shop", "--once")) == 0
    assert len(subjects(git_remote)) == 2


def _gone_count() -> float:
    return sum(s.value for m in metrics.EXPORT_WATCH_RESTARTS.collect() for s in m.samples
               if s.name.endswith("_total") and s.labels.get("cause") == "gone")


def test_410_gone_relists_and_finds_deletions_made_while_disconnected(primary, start_exporter,
                                                                      git_remote: Path) -> None:
    api = primary.api
    api.create(cm("doomed", "1"))
    start_exporter(git_remote)
    wait_until(lambda: "shop/ConfigMap/doomed.yaml" in remote_files(git_remote), what="first export")
    before = _gone_count()
    primary.stop()  # every watch breaks; meanwhile more changes than the watch history holds
    api.delete("v1", "ConfigMap", "doomed", "shop")
    for i in range(250):
        api.create(cm(f"churn-{i % 5}-{i}", str(i))) if i < 5 else api.update(
            {**api.get("v1", "ConfigMap", f"churn-{i % 5}-{i % 5}", "shop"), "data": {"v": str(i)}})
    primary.start()
    wait_until(lambda: "shop/ConfigMap/doomed.yaml" not in remote_files(git_remote), timeout=30,
               what="deletion found by the re-list")
    expected = {f"churn-{i}-{i}": str(245 + i) for i in range(5)}
    wait_until(lambda: all(f"v: '{v}'" in remote_files(git_remote).get(f"shop/ConfigMap/{n}.yaml", "")
                           for n, v in expected.items()), timeout=30, what="latest values")
    assert _gone_count() > before


def test_remote_away_for_a_while_receives_everything_later(primary, start_exporter, git_remote: Path) -> None:
    api = primary.api
    exp = start_exporter(git_remote)
    api.create(cm("a", "1"))
    wait_until(lambda: "shop/ConfigMap/a.yaml" in remote_files(git_remote), what="first push")
    away = git_remote.with_name("away.git")
    git_remote.rename(away)
    api.create(cm("b", "1"))
    api.delete("v1", "ConfigMap", "a", "shop")
    api.create(cm("c", "1"))

    def local_has_everything() -> bool:
        out = subprocess.run(["git", "ls-tree", "-r", "--name-only", "main"], cwd=exp.store.workdir,
                             capture_output=True, text=True).stdout.split()
        return "shop/ConfigMap/c.yaml" in out and "shop/ConfigMap/a.yaml" not in out

    wait_until(local_has_everything, what="commits buffered in the local clone")
    wait_until(lambda: exp.pusher.pushed != exp.store.head(), what="push pending")
    away.rename(git_remote)
    wait_until(lambda: {"shop/ConfigMap/b.yaml", "shop/ConfigMap/c.yaml"} <= set(remote_files(git_remote))
               and "shop/ConfigMap/a.yaml" not in remote_files(git_remote), timeout=15, what="remote caught up")
    wait_until(lambda: subprocess.run(["git", "rev-parse", "main"], cwd=git_remote, capture_output=True,
                                      text=True).stdout.strip() == exp.store.head(), what="every commit pushed")


def test_remote_that_moved_is_rebased_onto_never_overwritten(primary, start_exporter, git_remote: Path,
                                                             tmp_path: Path) -> None:
    api = primary.api
    start_exporter(git_remote)
    api.create(cm("a", "1"))
    wait_until(lambda: "shop/ConfigMap/a.yaml" in remote_files(git_remote), what="first push")
    other = tmp_path / "someone-else"
    subprocess.run(["git", "clone", "-q", str(git_remote), str(other)], check=True)
    (other / "README.md").write_text("hello\n")
    subprocess.run(["git", "add", "README.md"], cwd=other, check=True)
    subprocess.run(["git", "commit", "-qm", "docs: readme"], cwd=other, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=other, check=True)
    api.create(cm("b", "1"))
    wait_until(lambda: "shop/ConfigMap/b.yaml" in remote_files(git_remote), what="pushed after rebase")
    assert "README.md" in remote_files(git_remote)
    assert subjects(git_remote)[:2] == ["create ConfigMap shop/b", "docs: readme"]


def _daemon(base: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
                             f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    wait_until(lambda: port_open(port), what="git daemon")
    return proc


def test_git_daemon_stopped_and_restarted_receives_everything(primary, start_exporter, tmp_path: Path) -> None:
    base = tmp_path / "daemon"
    base.mkdir()
    bare = base / "repo.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(bare)], check=True)
    port = free_port()
    daemon = _daemon(base, port)
    try:
        api = primary.api
        start_exporter(f"git://127.0.0.1:{port}/repo.git")
        api.create(cm("a", "1"))
        wait_until(lambda: "shop/ConfigMap/a.yaml" in remote_files(bare), what="push over git://")
        daemon.terminate()
        daemon.wait(10)
        for i in range(20):
            api.create(cm(f"while-down-{i}", str(i)))
        api.delete("v1", "ConfigMap", "a", "shop")
        daemon = _daemon(base, port)
        wait_until(lambda: "shop/ConfigMap/while-down-19.yaml" in remote_files(bare)
                   and "shop/ConfigMap/a.yaml" not in remote_files(bare), timeout=20, what="caught up")
    finally:
        daemon.terminate()
        daemon.wait(10)
