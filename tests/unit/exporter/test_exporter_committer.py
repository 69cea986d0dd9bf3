"""Commit messages and trailers, and the group-commit path through real git (no cluster needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubedr.contract import ObjectRef
from kubedr.exporter.committer import Committer, format_message
from kubedr.exporter.events import Event
from kubedr.exporter.gitstore import GitStore
from kubedr.exporter.pusher import Pusher
from kubedr.exporter.recorder import Pending, Recorder, field_managers
from kubedr.exporter.selection import Selection
from kubedr.kubeapi import Resource

DEPLOY = ObjectRef("apps", "Deployment", "shop", "web")
CM = ObjectRef("", "ConfigMap", "shop", "settings")
CMS = Resource("", "v1", "configmaps", "ConfigMap", True)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_single_object_message_names_verb_and_object_with_trailers() -> None:
    msg = format_message([("update", Pending(DEPLOY, "1234", ("kubectl", "kube-controller-manager")))], "prod")
    assert msg == ("update apps/Deployment shop/web\n\n"
                   "Source-Cluster: prod\nResource-Version: 1234\n"
                   "Field-Managers: kubectl, kube-controller-manager\n")


def test_several_objects_get_a_summary_and_one_line_each() -> None:
    msg = format_message([("update", Pending(DEPLOY, "7", ("kubectl",))), ("create", Pending(CM, "8", ())),
                          ("delete", Pending(ObjectRef("", "Namespace", "", "old"), "9", ()))], "prod")
    lines = msg.splitlines()
    assert lines[0] == "export 3 objects: 1 create, 1 update, 1 delete"
    assert lines[2:5] == ["delete Namespace old", "create ConfigMap shop/settings", "update apps/Deployment shop/web"]
    assert "Resource-Version: apps/Deployment shop/web=7" in lines
    assert "Field-Managers: apps/Deployment shop/web=kubectl" in lines
    assert lines[-1].startswith("Field-Managers:") and "Source-Cluster: prod" in lines


def test_resync_message_is_a_summary_even_for_one_object() -> None:
    assert format_message([("delete", Pending(CM))], "c", "resync").startswith("resync 1 object: 1 delete\n")


def test_field_managers_most_recent_first_unique() -> None:
    obj = {"metadata": {"managedFields": [
        {"manager": "kubectl", "time": "2026-01-01T00:00:00Z"},
        {"manager": "helm", "time": "2026-03-01T00:00:00Z"},
        {"manager": "kubectl", "time": "2026-02-01T00:00:00Z"}]}}
    assert field_managers(obj) == ("helm", "kubectl")


def _cm(name: str, value: str, rv: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": value},
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv, "uid": "u-" + name,
                         "managedFields": [{"manager": "kubectl", "operation": "Apply", "time": "2026-01-01T00:00:00Z"}]}}


def test_group_commit_writes_commits_and_pushes_with_git_trailers(tmp_path: Path, git_remote: Path) -> None:
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    committer = Committer(store, Recorder(store, "skip"), Selection(["shop"]), "prod")
    committer.handle(Event("ADDED", CMS, _cm("a", "1", "10"), 0.0))
    assert committer.commit() is not None
    committer.handle(Event("MODIFIED", CMS, _cm("a", "1", "11"), 0.0))  # same content: no commit
    assert committer.commit() is None
    committer.handle(Event("ADDED", CMS, _cm("other-ns", "1") | {"metadata": {"name": "x", "namespace": "kube-system"}}, 0.0))
    assert committer.commit() is None
    committer.handle(Event("MODIFIED", CMS, _cm("a", "2", "12"), 0.0))
    committer.handle(Event("ADDED", CMS, _cm("b", "1", "13"), 0.0))
    committer.commit()
    committer.handle(Event("DELETED", CMS, _cm("b", "1", "14"), 0.0))
    committer.commit()
    assert Pusher(store).push_once()
    log = git("log", "--format=%s", cwd=git_remote).splitlines()
    assert log == ["delete ConfigMap shop/b", "export 2 objects: 1 create, 1 update", "create ConfigMap shop/a"]
    trailers = git("log", "-1", "--skip=2", "--format=%(trailers:only,unfold)", cwd=git_remote)
    *trailers, committed = trailers.strip().splitlines()
    assert trailers == ["Source-Cluster: prod", "Resource-Version: 10", "Field-Managers: kubectl"]
    assert committed.startswith("Kubedr-Committed-At: 20")
    assert git("ls-tree", "-r", "--name-only", "main", cwd=git_remote).split() == ["shop/ConfigMap/a.yaml"]
    assert "k: '2'" in git("show", "main:shop/ConfigMap/a.yaml", cwd=git_remote)
    git("fsck", "--strict", "--no-dangling", cwd=store.workdir)  # objects written without git are valid
    git("fsck", "--strict", cwd=git_remote)
    assert sorted(p.name for p in store.workdir.iterdir()) == [".git"]  # no work tree: nothing but git objects


def test_repair_after_crash_removes_stale_locks_and_half_written_objects(tmp_path: Path, git_remote: Path) -> None:
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    (store.workdir / ".git" / "HEAD.lock").write_text("")
    (store.workdir / ".git" / "objects" / "pack" / "tmp_kubedr_1_x.pack").write_bytes(b"PACK")
    store.open()
    assert not (store.workdir / ".git" / "HEAD.lock").exists()
    assert not (store.workdir / ".git" / "objects" / "pack" / "tmp_kubedr_1_x.pack").exists()


def test_huge_commits_list_every_object_but_skip_per_object_trailers() -> None:
    changes = [("create", Pending(ObjectRef("", "ConfigMap", "big", f"cm-{i}"), str(i), ("kubectl",)))
               for i in range(600)]
    msg = format_message(changes, "prod", "resync")
    assert msg.count("\ncreate ConfigMap big/") == 600
    assert "Resource-Version:" not in msg and msg.endswith("Source-Cluster: prod\n")
