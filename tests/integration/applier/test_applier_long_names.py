"""Names too long for a file name (issue 24.9): exported under a prefix, `~` and a hash, checked out by a plain
`git clone`, applied under the real name; a file written under the whole name before the rule moves."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubedr import contract
from kubedr.commands.cli import main
from tests import hostile
from tests.integration.applier.conftest import apply, configmap, live, namespace
from tests.integration.exporter.exporter_harness import export_args, remote_files

LONG = ("a" * 62 + ".") * 3 + "b" * 64  # 253 characters: the longest DNS subdomain, a legal ConfigMap name


def export(primary: Any, remote: Path, tmp_path: Path) -> None:
    assert main(export_args(primary, remote, tmp_path / "exporter", "--namespaces", "shop", "--once")) == 0


def test_a_253_character_name_round_trips_through_export_git_clone_and_apply(primary: Any, secondary: Any,
                                                                            git_remote: Path, tmp_path: Path) -> None:
    assert len(LONG) == 253
    primary.api.create(namespace("shop"))
    primary.api.create(configmap(LONG, color="blue"))
    export(primary, git_remote, tmp_path)

    clone = tmp_path / "auditor"
    subprocess.run(["git", "clone", "-q", str(git_remote), str(clone)], check=True)  # checks every file out
    [file] = (clone / "shop" / "ConfigMap").iterdir()
    assert len(file.name.encode()) <= 255 and "~" in file.name and LONG.startswith(file.name.partition("~")[0])
    assert yaml.safe_load(file.read_text())["metadata"]["name"] == LONG

    assert apply(secondary, git_remote, "--prune") == 0
    assert live(secondary, "v1", "ConfigMap", LONG, "shop")["data"] == {"color": "blue"}

    primary.api.patch("v1", "ConfigMap", LONG, {"data": {"color": "green"}}, "merge", namespace="shop")
    export(primary, git_remote, tmp_path)
    assert apply(secondary, git_remote, "--prune") == 0
    assert live(secondary, "v1", "ConfigMap", LONG, "shop")["data"] == {"color": "green"}

    for i in range(4):  # the prune guard allows deleting one of six
        primary.api.create(configmap(f"keep-{i}"))
    primary.api.delete("v1", "ConfigMap", LONG, "shop")
    export(primary, git_remote, tmp_path)
    assert not [p for p in remote_files(git_remote) if "~" in p]
    assert apply(secondary, git_remote, "--prune") == 0
    assert live(secondary, "v1", "ConfigMap", LONG, "shop") is None


def test_a_file_under_the_whole_long_name_is_still_read_and_the_exporter_moves_it(primary: Any, secondary: Any,
                                                                                  git_remote: Path,
                                                                                  tmp_path: Path) -> None:
    obj = configmap(LONG, color="blue")
    legacy = f"shop/ConfigMap/{LONG}.yaml"  # what the exporter wrote before the rule: a 258-byte file name
    ns = hostile.blob(git_remote, contract.dump(namespace("shop")))
    kinds = hostile.tree(git_remote, [
        ("40000", b"ConfigMap", hostile.tree(git_remote, [("100644", f"{LONG}.yaml".encode(),
                                                           hostile.blob(git_remote, contract.dump(obj)))]))])
    cluster = hostile.tree(git_remote, [("40000", b"Namespace", hostile.tree(git_remote, [("100644", b"shop.yaml", ns)]))])
    hostile.commit(git_remote, hostile.tree(git_remote, [("40000", b"_cluster", cluster), ("40000", b"shop", kinds)]),
                   "written before the long-name rule")
    assert legacy in remote_files(git_remote)
    assert apply(secondary, git_remote) == 0
    assert live(secondary, "v1", "ConfigMap", LONG, "shop")["data"] == {"color": "blue"}

    primary.api.create(namespace("shop"))
    primary.api.create(obj)
    export(primary, git_remote, tmp_path)
    files = remote_files(git_remote)
    assert legacy not in files and contract.ObjectRef("", "ConfigMap", "shop", LONG).path in files
    assert apply(secondary, git_remote, "--prune") == 0  # the same object: nothing pruned
    assert live(secondary, "v1", "ConfigMap", LONG, "shop")["data"] == {"color": "blue"}
