"""Signed commits end to end, with real git and ssh-keygen: the exporter signs, the applier applies only what
verifies, a hand edit is held back until a person acknowledges it, and the exporter writes the file back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from exporter_harness import export_args, hand_push, remote_files, subjects

from kubedr import metrics, signing
from kubedr.commands.cli import build_parser, main
from kubedr.exporter.cli import export_options, exporter_for
from tests.conftest import wait_until
from tests.sshkeys import allowed_signers, make_key, verify_commit


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def cm(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
            "data": {"v": value}}


@pytest.fixture
def secondary(tmp_path: Path) -> Iterator:
    from kubedr.emulator.server import Emulator

    emu = Emulator().start()
    emu.kubeconfig_path = str(emu.write_kubeconfig(tmp_path / "secondary.kubeconfig"))
    yield emu
    emu.stop()


def untrusted_metric() -> dict[str, str]:
    for metric in metrics.APPLY_UNTRUSTED.collect():
        for sample in metric.samples:
            if sample.value == 1:
                return dict(sample.labels)
    return {}


def test_applier_holds_at_unsigned_and_unknown_commits_until_acknowledged(primary, secondary, git_remote: Path,
                                                                         tmp_path: Path, capsys) -> None:
    exporter_key, admin_key, stranger_key = (make_key(tmp_path, n) for n in ("exporter", "admin", "stranger"))
    signers = allowed_signers(tmp_path / "allowed_signers", exporter=exporter_key, admin=admin_key)
    assert main(["init", "--repo", str(git_remote), "--signing-key", str(admin_key)]) == 0
    api = primary.api
    api.create(cm("a", "1"))
    args = build_parser("export").parse_args(export_args(
        primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--signing-key", str(exporter_key),
        "--remote-check-interval", "0.2s", "--push-backoff-max", "0.5s"))
    exporter = exporter_for(export_options(args))
    exporter.start()
    applier = ["apply", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(git_remote), "--once",
               "--workdir", str(tmp_path / "applier"), "--allowed-signers", str(signers), "--no-validate"]
    try:
        wait_until(lambda: "shop/ConfigMap/a.yaml" in remote_files(git_remote), what="first export")
        for sha in git("rev-list", "main", cwd=git_remote).split():  # init (admin) and every exporter commit
            assert verify_commit(git_remote, sha, signers).returncode == 0, sha
        assert main(applier) == 0
        assert secondary.api.get("v1", "ConfigMap", "a", "shop")["data"] == {"v": "1"}

        # an unsigned hand edit, then the exporter's signed commits on top of it
        hacked = remote_files(git_remote)["shop/ConfigMap/a.yaml"].replace("v: '1'", "v: hacked")
        bad = hand_push(git_remote, tmp_path / "hand", "shop/ConfigMap/a.yaml", hacked, "quick fix")
        api.create(cm("b", "1"))
        wait_until(lambda: "shop/ConfigMap/b.yaml" in remote_files(git_remote), what="export after the hand edit")
        # the exporter saw a commit it did not make and wrote the cluster's state back, signed
        wait_until(lambda: "v: '1'" in remote_files(git_remote)["shop/ConfigMap/a.yaml"], what="hand edit reverted")
        assert any(s.startswith("resync ") for s in subjects(git_remote)[:3])
        after_bad = git("rev-list", f"{bad}..main", cwd=git_remote).split()
        assert after_bad and all(verify_commit(git_remote, s, signers).returncode == 0 for s in after_bad)

        capsys.readouterr()
        assert main([*applier, "--dry-run"]) == 1  # the plan says so too, and exits as --once does
        assert f"held at untrusted commit {bad[:12]} (not signed)" in capsys.readouterr().out
        assert main(applier) == 1  # held: nothing past the bad commit
        assert secondary.api.get("v1", "ConfigMap", "a", "shop")["data"] == {"v": "1"}
        assert not _exists(secondary, "b")
        assert untrusted_metric() == {"commit": bad, "signer": ""}
        status = _status(secondary, git_remote)
        row = next(r for r in status if r["component"] == "applier")
        assert row["problem"] and f"untrusted commit {bad[:12]} (not signed)" in row["detail"]

        # a commit signed by a key that is not allowed is refused too
        stranger = hand_push(git_remote, tmp_path / "hand", "notes.txt", "hi\n", "signed by a stranger", stranger_key)
        api.create(cm("e", "1"))
        wait_until(lambda: "shop/ConfigMap/e.yaml" in remote_files(git_remote), what="export after the stranger")
        ack = ["--repo", str(git_remote), "--signing-key", str(admin_key), "--message", "reviewed",
               "--allowed-signers", str(signers)]
        assert main(["trust", "ack", bad, *ack]) == 0
        assert main(applier) == 1  # the signed commits between the two bad ones apply; nothing past the second
        assert untrusted_metric()["commit"] == stranger
        assert untrusted_metric()["signer"].startswith("SHA256:")
        assert _exists(secondary, "b") and not _exists(secondary, "e")

        # `trust ack` refuses a key that is not allowed; one pushed by hand counts for nothing (and needs one itself)
        tip = git("rev-parse", "main", cwd=git_remote)
        assert main(["trust", "ack", stranger, "--repo", str(git_remote), "--signing-key", str(stranger_key),
                     "--allowed-signers", str(signers)]) == 2
        assert git("rev-parse", "main", cwd=git_remote) == tip
        stranger_ack = hand_push(git_remote, tmp_path / "hand", "notes.txt", "ack\n",
                                 f"acknowledge\n\n{signing.ACK_TRAILER}: {stranger}", stranger_key)
        assert main(applier) == 1
        assert untrusted_metric()["commit"] == stranger
        assert main(["trust", "ack", stranger, stranger_ack, *ack]) == 0
        api.create(cm("c", "1"))
        wait_until(lambda: "shop/ConfigMap/c.yaml" in remote_files(git_remote), what="export after the acks")
        assert main(applier) == 0
        assert _exists(secondary, "e") and _exists(secondary, "c")
        assert secondary.api.get("v1", "ConfigMap", "a", "shop")["data"] == {"v": "1"}  # never the hacked value
        assert untrusted_metric() == {}
        assert main(["trust", "verify", "--repo", str(git_remote), "--allowed-signers", str(signers)]) == 0
    finally:
        exporter.stop(drain=1)
        exporter.store.close()

    # a restarted exporter (same clone) signs as before
    exporter = exporter_for(export_options(args))
    exporter.start()
    try:
        api.create(cm("d", "1"))
        wait_until(lambda: "shop/ConfigMap/d.yaml" in remote_files(git_remote), what="export after restart")
        head = git("rev-parse", "main", cwd=git_remote)
        assert verify_commit(git_remote, head, signers).returncode == 0
    finally:
        exporter.stop(drain=1)
    assert main(applier) == 0 and _exists(secondary, "d")


def test_restart_resync_writes_back_a_hand_edit(primary, git_remote: Path, tmp_path: Path) -> None:
    key = make_key(tmp_path, "exporter")
    signers = allowed_signers(tmp_path / "allowed_signers", exporter=key)
    primary.api.create(cm("a", "1"))
    argv = export_args(primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--once",
                       "--signing-key", str(key))
    assert main(argv) == 0
    text = remote_files(git_remote)["shop/ConfigMap/a.yaml"]
    bad = hand_push(git_remote, tmp_path / "hand", "shop/ConfigMap/a.yaml", text.replace("v: '1'", "v: x"), "edit")
    hand_push(git_remote, tmp_path / "hand", "shop/ConfigMap/planted.yaml", text.replace("name: a", "name: planted"),
              "plant")
    assert main(argv) == 0
    files = remote_files(git_remote)
    assert files["shop/ConfigMap/a.yaml"] == text and "shop/ConfigMap/planted.yaml" not in files
    head = git("rev-parse", "main", cwd=git_remote)
    assert verify_commit(git_remote, head, signers).returncode == 0
    assert git("merge-base", "--is-ancestor", bad, head, cwd=git_remote) == ""  # history kept, not rewritten


def test_trust_ack_refuses_a_key_the_allowed_signers_in_force_do_not_hold(git_remote: Path, tmp_path: Path) -> None:
    admin_key, stranger_key = make_key(tmp_path, "admin"), make_key(tmp_path, "stranger")
    signers = allowed_signers(tmp_path / "allowed_signers", admin=admin_key)
    assert main(["init", "--repo", str(git_remote), "--signing-key", str(admin_key)]) == 0
    bad = hand_push(git_remote, tmp_path / "hand", "notes.txt", "hi\n", "unsigned")

    def ack(key: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kubedr", "trust", "ack", bad, "--repo", str(git_remote),
                               "--signing-key", str(key), *extra], capture_output=True, text=True, timeout=60)

    for extra in (["--allowed-signers", str(signers)], []):  # the file given; the policy's list (none yet)
        refused = ack(stranger_key, *extra)
        assert refused.returncode == 2 and git("rev-parse", "main", cwd=git_remote) == bad
        [line] = refused.stderr.splitlines()
        assert ("not an allowed signer" if extra else "no allowed signers in force") in line
    policy = (git_remote.parent / "hand" / ".kubedr" / "policy.yaml").read_text()
    admin = (tmp_path / "allowed_signers").read_text().strip()
    signed = hand_push(git_remote, tmp_path / "hand", ".kubedr/policy.yaml",
                       policy.replace("allowed_signers: []", f"allowed_signers:\n    - '{admin}'"), "trust admin",
                       admin_key)
    refused = ack(stranger_key)
    assert refused.returncode == 2 and "the policy's trust.allowed_signers" in refused.stderr
    assert git("rev-parse", "main", cwd=git_remote) == signed
    done = ack(admin_key)
    assert done.returncode == 0, done.stderr
    assert verify_commit(git_remote, git("rev-parse", "main", cwd=git_remote), signers).returncode == 0


def _exists(emu, name: str) -> bool:
    from kubedr.apierrors import NotFound

    try:
        emu.api.get("v1", "ConfigMap", name, "shop")
        return True
    except NotFound:
        return False


def _status(secondary, remote: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "kubedr", "status", "--secondary-kubeconfig", secondary.kubeconfig_path, "--repo",
                           str(remote), "-o", "json"], capture_output=True, text=True)
    return json.loads(proc.stdout)
