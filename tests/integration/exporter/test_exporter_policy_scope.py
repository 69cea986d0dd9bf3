"""Scope rules (label selector, excluded kinds and objects, extra kinds) from flags and from the repo policy,
a policy change taking effect without a restart in one commit, and ignore rules against a noisy operator."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import yaml
from exporter_harness import git, hand_push, remote_files, subjects

from kubedr.commands.cli import main
from tests.conftest import wait_until

RBAC = "rbac.authorization.k8s.io/v1"


def cm(name: str, labels: dict | None = None, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop", **({"labels": labels} if labels else {})},
            "data": data or {"v": "1"}}


def set_policy(remote: Path, work: Path, **export: object) -> str:
    """Push a policy whose export section has these settings (on top of the template's)."""
    text = (Path(__file__).resolve().parents[3] / "repo-template" / ".kubedr" / "policy.yaml").read_text()
    doc = yaml.safe_load(text)
    doc["export"].update(export)
    return hand_push(remote, work, ".kubedr/policy.yaml", yaml.safe_dump(doc, sort_keys=False), "policy: scope")


def test_scope_flags_select_by_label_and_exclude_kinds_and_objects(primary, start_exporter, git_remote: Path) -> None:
    api = primary.api
    api.create(cm("keep"))
    api.create(cm("skip", {"backup": "no"}))
    api.create(cm("tmp-1"))
    api.create({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "r", "namespace": "shop"}, "rules": []})
    start_exporter(git_remote, "--namespaces", "shop", "--label-selector", "backup!=no", "--exclude-kinds",
                   "Role.rbac.authorization.k8s.io", "--exclude-objects", "shop/ConfigMap/tmp-*")
    wait_until(lambda: "shop/ConfigMap/keep.yaml" in remote_files(git_remote), what="first export")
    files = remote_files(git_remote)
    assert "_cluster/Namespace/shop.yaml" in files  # the selector applies to namespaced objects
    assert not {"shop/ConfigMap/skip.yaml", "shop/ConfigMap/tmp-1.yaml"} & set(files)
    assert not any("/Role." in p for p in files)

    keep = api.get("v1", "ConfigMap", "keep", "shop")
    keep["metadata"]["labels"] = {"backup": "no"}
    api.update(keep)
    skip = api.get("v1", "ConfigMap", "skip", "shop")
    skip["metadata"]["labels"] = {"backup": "yes"}
    api.update(skip)
    wait_until(lambda: "shop/ConfigMap/skip.yaml" in remote_files(git_remote)
               and "shop/ConfigMap/keep.yaml" not in remote_files(git_remote), what="labels changed")
    api.create(cm("tmp-2"))
    api.create(cm("other"))
    wait_until(lambda: "shop/ConfigMap/other.yaml" in remote_files(git_remote), what="later object")
    assert "shop/ConfigMap/tmp-2.yaml" not in remote_files(git_remote)


def test_a_policy_change_takes_effect_without_restart_in_one_commit(primary, start_exporter, git_remote: Path,
                                                                    tmp_path: Path) -> None:
    api = primary.api
    assert main(["init", "--repo", str(git_remote)]) == 0
    set_policy(git_remote, tmp_path / "hand", namespaces=["shop"])
    for obj in (cm("a"), cm("b", {"tier": "cache"}), cm("tmp-x")):
        api.create(obj)
    api.create({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "r", "namespace": "shop"}, "rules": []})
    api.create({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "extra"}, "rules": []})
    start_exporter(git_remote, "--remote-check-interval", "0.2s")  # namespaces come from the policy
    wait_until(lambda: "shop/ConfigMap/tmp-x.yaml" in remote_files(git_remote), what="first export")
    files = remote_files(git_remote)
    assert {"shop/ConfigMap/b.yaml", "shop/Role.rbac.authorization.k8s.io/r.yaml"} <= set(files)
    assert "_cluster/ClusterRole.rbac.authorization.k8s.io/extra.yaml" not in files
    assert "namespaces:\n  - shop" in files[".kubedr/export-scope.yaml"]

    set_policy(git_remote, tmp_path / "hand", namespaces=["shop"], label_selector="tier!=cache",
               exclude_kinds=["Role.rbac.authorization.k8s.io"], exclude_objects=["shop/ConfigMap/tmp-*"],
               cluster_scoped_kinds=["ClusterRole"])
    gone = {"shop/ConfigMap/b.yaml", "shop/ConfigMap/tmp-x.yaml", "shop/Role.rbac.authorization.k8s.io/r.yaml"}
    added = "_cluster/ClusterRole.rbac.authorization.k8s.io/extra.yaml"
    wait_until(lambda: not gone & set(remote_files(git_remote)) and added in remote_files(git_remote),
               timeout=20, what="the new scope applied")
    assert "shop/ConfigMap/a.yaml" in remote_files(git_remote)
    # one commit holds the whole change, and says what the scope now is
    sha = git(git_remote, "log", "-1", "--format=%H", "--grep=^Kubedr-Scope: ", "main").strip()
    changed = set(git(git_remote, "show", "--name-only", "--no-renames", "--format=", sha).split())
    assert gone | {added, ".kubedr/export-scope.yaml"} <= changed
    assert git(git_remote, "log", "-1", "--format=%s", sha).startswith("scope 4 objects: 1 create, 3 delete")
    status = subprocess.run([sys.executable, "-m", "kubedr", "status", "--repo", str(git_remote), "-o", "json"],
                            capture_output=True, text=True)
    scope_row = next(r for r in json.loads(status.stdout) if r["component"] == "export scope")
    assert scope_row["data"]["scope"]["label_selector"] == "tier!=cache"


def test_flags_win_over_the_policy(primary, start_exporter, git_remote: Path, tmp_path: Path) -> None:
    assert main(["init", "--repo", str(git_remote)]) == 0
    set_policy(git_remote, tmp_path / "hand", namespaces=["other"], exclude_kinds=["ConfigMap"])
    primary.api.create(cm("a"))
    start_exporter(git_remote, "--namespaces", "shop", "--exclude-kinds", "Role")
    wait_until(lambda: "shop/ConfigMap/a.yaml" in remote_files(git_remote), what="flags win")
    scope = yaml.safe_load(remote_files(git_remote)[".kubedr/export-scope.yaml"])
    assert scope["export"]["exclude_kinds"] == ["Role"] and scope["origin"]["exclude_kinds"] == "flag"
    assert scope["export"]["exclude_namespaces"] == ["kube-system", "kube-public", "kube-node-lease", "kubedr-system"]
    assert scope["origin"]["exclude_namespaces"] == "policy"


def test_ignored_field_stamped_every_100ms_makes_no_commit(primary, start_exporter, git_remote: Path,
                                                           tmp_path: Path) -> None:
    api = primary.api
    assert main(["init", "--repo", str(git_remote)]) == 0
    set_policy(git_remote, tmp_path / "hand", namespaces=["shop"], ignore=[
        {"kind": "ConfigMap", "name": "stamped*",
         "paths": ["/metadata/annotations/operator.example.com~1stamp", 'data["counter"]']}])
    api.create(cm("stamped", v="1", counter="0"))
    start_exporter(git_remote)
    wait_until(lambda: "shop/ConfigMap/stamped.yaml" in remote_files(git_remote), what="first export")
    assert "counter" not in remote_files(git_remote)["shop/ConfigMap/stamped.yaml"]
    head = git(git_remote, "rev-parse", "main").strip()
    stamps = 0
    stop = threading.Event()

    def operator() -> None:
        nonlocal stamps
        while not stop.wait(0.1):
            obj = api.get("v1", "ConfigMap", "stamped", "shop")
            obj["metadata"].setdefault("annotations", {})["operator.example.com/stamp"] = str(stamps)
            obj["data"]["counter"] = str(stamps)
            api.update(obj)
            stamps += 1

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    try:
        # 100 stamps at 100 ms: 10 s of churn, and the remote head never moves
        wait_until(lambda: stamps >= 100 or git(git_remote, "rev-parse", "main").strip() != head, timeout=60,
                   interval=0.1, what="100 stamps")
        assert git(git_remote, "rev-parse", "main").strip() == head, subjects(git_remote)[:3]
    finally:
        stop.set()
        thread.join(5)
    # a field no rule names still makes its commit
    obj = api.get("v1", "ConfigMap", "stamped", "shop")
    obj["data"]["v"] = "2"
    api.update(obj)
    wait_until(lambda: "v: '2'" in remote_files(git_remote)["shop/ConfigMap/stamped.yaml"], what="real change")
    assert "stamp" not in remote_files(git_remote)["shop/ConfigMap/stamped.yaml"].replace("stamped", "")


def test_a_broken_policy_is_named_and_never_widens_the_scope(primary, git_remote: Path, tmp_path: Path,
                                                             capsys) -> None:
    from exporter_harness import export_args

    assert main(["init", "--repo", str(git_remote)]) == 0
    hand_push(git_remote, tmp_path / "hand", ".kubedr/policy.yaml", "export:\n  label_selector: 'a in (b'\n", "bad")
    primary.api.create(cm("a"))
    base = export_args(primary, git_remote, tmp_path / "clone", "--once")
    assert main(base) == 2  # no namespaces anywhere else: refuse rather than guess
    err = capsys.readouterr().err
    assert ".kubedr/policy.yaml: export.label_selector" in err
    assert main([*base, "--namespaces", "shop"]) == 0  # the flags alone still say what to export
    assert "shop/ConfigMap/a.yaml" in remote_files(git_remote)
