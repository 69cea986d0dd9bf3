"""Push access without a key, against the real applier process and real git: entries git refuses, a YAML bomb.

What an auditor sees (`git show HEAD:path`) is what gets applied; every entry the contract refuses is named in one
line and never read; a bomb costs one failed file, not the applier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract, signing
from tests import hostile
from tests.conftest import stop_process, wait_until
from tests.integration.applier.conftest import Repo, configmap, live, namespace, status_of
from tests.sshkeys import allowed_signers, make_key

RSS_LIMIT_KB = 300 * 1024


def kubedr_apply(secondary: Any, repo: Repo, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", secondary.kubeconfig_path, "--repo",
            str(repo.remote), "--workdir", str(Path(secondary.kubeconfig_path).parent / "applier-work"),
            "--no-validate", *extra]


def apply_once(secondary: Any, repo: Repo, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kubedr_apply(secondary, repo, "--once", *extra), capture_output=True, text=True,
                          timeout=120)


def settings(color: str, name: str = "settings") -> bytes:
    return contract.dump(configmap(name, color=color))


def shown(repo: Repo, path: str) -> str:
    """What an auditor sees at a path of the branch."""
    return subprocess.run(["git", "-C", str(repo.remote), "show", f"main:{path}"], capture_output=True, text=True,
                          check=True).stdout


def _evil_tree(repo: Repo) -> str:
    """A directory holding ConfigMap/settings.yaml with the attacker's value."""
    inner = hostile.tree(repo.remote, [("100644", b"settings.yaml", hostile.blob(repo.remote, settings("HACKED")))])
    return hostile.tree(repo.remote, [("40000", b"ConfigMap", inner)])


HOSTILE = {  # case -> (directory, entry: (mode, name, object) made from the repo, how the entry is named)
    "slash in a name": ("", lambda r: ("100644", b"shop/ConfigMap/settings.yaml",
                                       hostile.blob(r.remote, settings("HACKED-shadow"))),
                        "'shop/ConfigMap/settings.yaml'"),
    "dot-dot": ("shop", lambda r: ("40000", b"..", _evil_tree(r)), "shop/'..'"),
    "dot-dot at the root": ("", lambda r: ("100644", b"..", hostile.blob(r.remote, settings("HACKED"))), "'..'"),
    "symlink": ("", lambda r: ("120000", b"README.md", hostile.blob(r.remote, b"/etc/passwd")), "'README.md'"),
    "submodule": ("shop", lambda r: ("160000", b"ConfigMap.example.com", "1" * 40), "shop/'ConfigMap.example.com'"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_an_entry_git_refuses_is_named_never_read_and_the_real_file_applies(secondary: Any, repo: Repo,
                                                                           case: str) -> None:
    where, entry, named = HOSTILE[case]
    repo.put(namespace("shop"))
    repo.write("shop/ConfigMap/settings.yaml", settings("blue"))
    repo.commit("start")
    hostile.add(repo.remote, "main", where, entry(repo))
    after = hostile.blob(repo.remote, settings("green", "after"))  # a later, ordinary commit on top
    head = hostile.add(repo.remote, "main", "shop/ConfigMap", ("100644", b"after.yaml", after))
    assert "color: blue" in shown(repo, "shop/ConfigMap/settings.yaml")

    done = apply_once(secondary, repo)
    assert done.returncode == 1, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if named in ln]
    assert len(lines) == 1 and "tree entry refused" in lines[0] and "not read" in lines[0], done.stderr
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"color": "blue"}
    assert live(secondary, "v1", "ConfigMap", "after", "shop")["data"] == {"color": "green"}
    status = status_of(secondary)
    assert status["commit"] == head
    assert [f["path"] for f in status["failures"]] == [named]


def test_a_yaml_bomb_is_one_failed_file_and_the_applier_stays_small(secondary: Any, repo: Repo) -> None:
    repo.put(namespace("shop"))
    for i in range(3):
        repo.put(configmap(f"cm-{i}"))
    levels = "abcdefghi"  # 9 levels of 9 aliases each: 9^9 = 387,420,489 strings once expanded
    bomb = (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: shop\ndata:\n"
            + b"  a: &a [" + b", ".join([b'"lol"'] * 9) + b"]\n"
            + b"".join(b"  %s: &%s [%s]\n" % (x.encode(), x.encode(), b", ".join([b"*" + p.encode()] * 9))
                       for p, x in zip(levels, levels[1:], strict=False)))
    repo.write("shop/ConfigMap/bomb.yaml", bomb)
    head = repo.commit("a bomb among ordinary files")
    log = Path(secondary.kubeconfig_path).parent / "applier.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(kubedr_apply(secondary, repo, "--interval", "0.2s", "--no-drift"), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: status_of(secondary).get("commit") == head or proc.poll() is not None, timeout=60,
                   what="the round over the bomb's commit")
        assert proc.poll() is None, log.read_text()
        peak_kb = int(Path(f"/proc/{proc.pid}/status").read_text().split("VmHWM:")[1].split()[0])
    finally:
        stop_process(proc)
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb // 1024} MB"
    [failure] = status_of(secondary)["failures"]
    assert failure["path"] == "shop/ConfigMap/bomb.yaml" and "anchor or alias" in failure["reason"]
    assert all(live(secondary, "v1", "ConfigMap", f"cm-{i}", "shop") for i in range(3))
    assert live(secondary, "v1", "ConfigMap", "bomb", "shop") is None
    assert sum("bomb.yaml" in ln for ln in log.read_text().splitlines()) >= 1


def test_with_the_trust_gate_a_hostile_tree_is_held_unsigned_and_never_stops_the_applier(secondary: Any, repo: Repo,
                                                                                         tmp_path: Path) -> None:
    key = make_key(tmp_path, "admin")
    signers = allowed_signers(tmp_path / "allowed_signers", admin=key)
    repo.put(namespace("shop"))
    repo.write("shop/ConfigMap/settings.yaml", settings("blue"))
    env = {**os.environ, **signing.Signer(key).git_config()}
    subprocess.run(["git", "add", "-A"], cwd=repo.work, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "signed start"], cwd=repo.work, env=env, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=repo.work, check=True)
    gated = ("--allowed-signers", str(signers))
    assert subprocess.run(kubedr_apply(secondary, repo, "--once", *gated), timeout=120).returncode == 0

    shadow = hostile.blob(repo.remote, settings("HACKED-shadow"))
    bad = hostile.add(repo.remote, "main", "", ("100644", b"", shadow),  # an empty name: `git show` dies on it
                      ("100644", b"shop/ConfigMap/settings.yaml", shadow))
    held = apply_once(secondary, repo, *gated)
    assert held.returncode == 1 and "round failed" not in held.stderr, held.stderr
    assert status_of(secondary)["untrusted"]["commit"] == bad
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"color": "blue"}

    # acknowledged by a signed commit made in place (git cannot send this tree: upload-pack dies on the empty name)
    ack = subprocess.run(["git", "-C", str(repo.remote), "commit-tree", "-S", f"{bad}^{{tree}}", "-p", bad, "-m",
                          f"reviewed\n\n{signing.ACK_TRAILER}: {bad}"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    subprocess.run(["git", "-C", str(repo.remote), "update-ref", "refs/heads/main", ack], check=True)
    done = apply_once(secondary, repo, *gated)
    assert done.returncode == 1 and "round failed" not in done.stderr, done.stderr
    assert status_of(secondary)["untrusted"] == {}
    assert sorted(f["path"] for f in status_of(secondary)["failures"]) == ["''", "'shop/ConfigMap/settings.yaml'"]
    assert live(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"color": "blue"}
