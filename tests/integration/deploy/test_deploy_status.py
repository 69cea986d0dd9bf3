"""`kubedr status`: repo head, exporter Lease, the applier's record (written by a real `kubedr apply`), last snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract, kube, leader
from tests.conftest import free_port, run_git, wait_until


def kubedr(*args: str, timeout: float = 90, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "kubedr", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def status_json(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    proc = kubedr("status", "-o", "json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, {r["component"]: r for r in json.loads(proc.stdout)}


@pytest.fixture
def repo(tmp_path: Path, git_remote: Path) -> tuple[Path, Path]:
    """A remote with one ConfigMap, and a clone to add commits with."""
    work = tmp_path / "work"
    run_git("clone", "-q", str(git_remote), str(work))
    run_git("checkout", "-q", "-B", "main", cwd=work)
    commit(work, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "create Namespace shop")
    commit(work, cm("a"), "create ConfigMap shop/a")
    return git_remote, work


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
            "data": {"k": name}}


def commit(work: Path, obj: dict[str, Any], message: str) -> str:
    path = work / contract.ref_of(obj).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contract.dump(obj))
    run_git("add", "-A", cwd=work)
    run_git("commit", "-q", "-m", message, cwd=work)
    run_git("push", "-q", "origin", "main", cwd=work)
    return run_git("rev-parse", "HEAD", cwd=work).strip()


def test_secondary_in_sync_then_behind(emulator: Any, tmp_path: Path, repo: tuple[Path, Path]) -> None:
    remote, work = repo
    kc = str(emulator.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    applied = kubedr("apply", "--once", "--kubeconfig", kc, "--repo", str(remote), "--workdir", str(tmp_path / "aw"))
    assert applied.returncode == 0, applied.stderr
    head = run_git("rev-parse", "HEAD", cwd=work).strip()

    code, rows = status_json("--repo", str(remote), "--secondary-kubeconfig", kc)
    assert code == 0
    assert rows["git"]["data"]["sha"] == head
    app = rows["applier"]
    assert app["commit"] == head[:12] and app["failures"] == "0" and app["state"] == "standby"
    assert "in sync" in app["detail"] and app["data"]["lag_seconds"] >= 0

    commit(work, cm("b"), "create ConfigMap shop/b")
    commit(work, cm("c"), "create ConfigMap shop/c")
    code, rows = status_json("--repo", str(remote), "--secondary-kubeconfig", kc)
    assert "2 commits behind" in rows["applier"]["detail"]
    assert rows["applier"]["data"]["lag_seconds"] >= 0
    code, _ = status_json("--repo", str(remote), "--secondary-kubeconfig", kc, "--max-lag", "-1")
    assert code == 1


def test_a_relative_repo_path_is_read_from_the_current_directory(repo: tuple[Path, Path]) -> None:
    remote, work = repo
    proc = kubedr("status", "-o", "json", "--repo", remote.name, cwd=remote.parent)
    assert proc.returncode == 0, proc.stderr
    rows = {r["component"]: r for r in json.loads(proc.stdout)}
    assert rows["git"]["data"]["sha"] == run_git("rev-parse", "HEAD", cwd=work).strip()


def test_failures_are_counted_and_named(emulator: Any, tmp_path: Path, repo: tuple[Path, Path]) -> None:
    remote, work = repo
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "namespace": "shop"},
           "data": {"k": ["not", "a", "string"]}}
    commit(work, bad, "create ConfigMap shop/bad")
    kc = str(emulator.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    kubedr("apply", "--once", "--kubeconfig", kc, "--repo", str(remote), "--workdir", str(tmp_path / "aw"))
    code, rows = status_json("--repo", str(remote), "--secondary-kubeconfig", kc)
    assert code == 1
    assert rows["applier"]["failures"] == "1"
    assert "shop/ConfigMap/bad.yaml" in rows["applier"]["detail"]


def test_exporter_lease_shows_the_leader(emulator: Any, tmp_path: Path) -> None:
    kc = str(emulator.write_kubeconfig(tmp_path / "primary.kubeconfig"))
    api = kube.api_client(kc)
    kube.client.CoreV1Api(api).create_namespace({"metadata": {"name": "kubedr-system"}})
    code, rows = status_json("--primary-kubeconfig", kc)
    assert rows["exporter"]["state"] == "no lease"
    stop = threading.Event()
    timing = leader.Timing(2, 1.5, 0.2)
    elected = threading.Event()

    def lead() -> None:
        with leader.elected(api, "kubedr-system", "kubedr-exporter", "exporter-7d9f-abc", timing):
            elected.set()
            stop.wait()

    t = threading.Thread(target=lead, daemon=True)
    t.start()
    wait_until(elected.is_set, what="the exporter leads")
    code, rows = status_json("--primary-kubeconfig", kc)
    assert code == 0
    assert rows["exporter"]["state"] == "leading" and "exporter-7d9f-abc" in rows["exporter"]["detail"]
    stop.set()
    t.join(5)
    code, rows = status_json("--primary-kubeconfig", kc)
    assert rows["exporter"]["state"] == "no leader" and code == 1    # released: nobody exports now


def test_last_snapshot_from_the_store(tmp_path: Path) -> None:
    from kubedr.snapshot import manifest
    from kubedr.snapshot.store import open_store

    store = open_store(str(tmp_path / "snaps"))
    now = datetime.now(UTC)
    for age, rev in ((timedelta(hours=2), 100), (timedelta(minutes=5), 250)):
        m = manifest.Manifest(id=manifest.new_id(now - age), cluster="prod", node="cp-1",
                              created=(now - age).isoformat(), bundle=manifest.BundleInfo(size=3 * 1024 * 1024),
                              snapshot=manifest.EtcdSnapshot(revision=rev))
        manifest.write(store, m)
    code, rows = status_json("--snapshot-store", str(tmp_path / "snaps"), "--snapshot-cluster", "prod")
    assert code == 0
    snap = rows["snapshot"]
    assert snap["state"] == "2 stored" and snap["lag"] == "5m" and snap["data"]["revision"] == 250
    assert "3.0 MiB" in snap["detail"] and "cp-1" in snap["detail"]
    code, rows = status_json("--snapshot-store", str(tmp_path / "snaps"), "--snapshot-cluster", "other")
    assert code == 1 and rows["snapshot"]["state"] == "none"


def test_one_unreachable_side_does_not_hide_the_others(tmp_path: Path, repo: tuple[Path, Path]) -> None:
    remote, _ = repo
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    proc = kubedr("status", "--repo", str(remote), "--secondary-kubeconfig", str(dead))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(line.split()[:3] == ["repo", "git", "main"] for line in lines if line.strip()), proc.stdout
    assert any("secondary" in line and "unreachable" in line for line in lines), proc.stdout


def test_status_without_any_source_is_a_usage_error() -> None:
    proc = kubedr("status")
    assert proc.returncode == 2 and "--repo" in proc.stderr


def test_applier_lease_is_shown_next_to_its_record(emulator: Any, tmp_path: Path, repo: tuple[Path, Path]) -> None:
    remote, _ = repo
    kc = str(emulator.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    kube.client.CoreV1Api(kube.api_client(kc)).create_namespace({"metadata": {"name": "kubedr-system"}})
    applied = kubedr("apply", "--once", "--leader-elect", "--leader-election-identity", "applier-0",
                     "--leader-election-namespace", "kubedr-system", "--kubeconfig", kc, "--repo", str(remote),
                     "--workdir", str(tmp_path / "aw"))
    assert applied.returncode == 0, applied.stderr
    code, rows = status_json("--secondary-kubeconfig", kc)
    # a clean exit released the Lease, so nobody applies now: the table says so
    assert "Lease no leader" in rows["applier"]["detail"], rows["applier"]


def test_a_root_entry_named_like_the_role_file_does_not_stand_in_for_it(git_remote: Path) -> None:
    """Someone pushed a root entry `.kubedr/writer.yaml` (slash in its name) naming mallory, sorted before the
    `.kubedr` directory: status reads the real role file, entry by entry."""
    from kubedr.commands import repo_init
    from tests import hostile

    repo_init.init_repo(str(git_remote), writer="prod")
    forged = hostile.blob(git_remote, b"cluster: mallory\nepoch: 9\n")
    head = run_git("--git-dir", str(git_remote), "rev-parse", "main").strip()
    root = hostile.entries_of(git_remote, f"{head}^{{tree}}")
    hostile.commit(git_remote, hostile.tree(git_remote, [("100644", b".kubedr/writer.yaml", forged), *root]),
                   "a forged role entry first in the root", head)
    assert "mallory" in run_git("--git-dir", str(git_remote), "show", "main:.kubedr/writer.yaml")  # git is fooled
    code, rows = status_json("--repo", str(git_remote))
    detail = rows["git"]["detail"]
    assert "writer prod (epoch 1)" in detail and "mallory" not in detail, rows
