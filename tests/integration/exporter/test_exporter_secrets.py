"""Secrets: skipped without a recipient, sealed with one; unchanged values keep their ciphertext."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from exporter_harness import all_objects, export_args, remote_files, subjects

from kubedr.commands.cli import main
from tests.conftest import wait_until

SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "db", "namespace": "shop"}, "stringData": {"password": "hunter2-xyzzy"}}
PATH = "shop/Secret/db.yaml"


def test_without_recipient_secrets_are_skipped(primary, git_remote: Path, tmp_path: Path, capfd) -> None:
    primary.api.create(SECRET)
    argv = export_args(primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--once")
    assert main(argv) == 0
    assert PATH not in remote_files(git_remote)
    assert "Secrets are not exported: no --recipient" in capfd.readouterr().err


def test_sealed_secret_opens_with_age_and_is_stable(primary, git_remote: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = next(ln.split(": ")[1] for ln in key.read_text().splitlines() if "public key" in ln)
    digest_key = tmp_path / "digest.key"
    digest_key.write_bytes(b"0123456789abcdef0123456789abcdef")
    api = primary.api
    api.create(SECRET)
    argv = export_args(primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--once",
                       "--recipient", recipient, "--digest-key-file", str(digest_key))
    assert main(argv) == 0
    doc = yaml.safe_load(remote_files(git_remote)[PATH])
    armored = doc["sealed"]["values"]["password"]["age"]
    plain = subprocess.run(["age", "-d", "-i", str(key)], input=armored.encode(), capture_output=True, check=True)
    assert plain.stdout == b"hunter2-xyzzy"
    live = api.get("v1", "Secret", "db", "shop")
    live["metadata"]["labels"] = {"tier": "db"}
    api.update(live)
    assert main(argv) == 0
    after = yaml.safe_load(remote_files(git_remote)[PATH])
    assert after["metadata"]["labels"] == {"tier": "db"}
    assert after["sealed"]["values"]["password"]["age"] == armored  # unchanged value, unchanged ciphertext
    assert subjects(git_remote)[0].startswith("resync 1 object: 1 update")
    wait_until(lambda: b"hunter2-xyzzy" not in all_objects(git_remote), what="no clear text in any blob")


def test_digest_key_file_is_the_seal_format_and_made_on_first_start(primary, git_remote: Path, tmp_path: Path,
                                                                    capfd) -> None:
    from kubedr import sealing

    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = next(ln.split(": ")[1] for ln in key.read_text().splitlines() if "public key" in ln)
    digest_key = tmp_path / "keys" / "digest.key"
    digest_key.parent.mkdir()
    primary.api.create(SECRET)
    argv = export_args(primary, git_remote, tmp_path / "clone", "--namespaces", "shop", "--once",
                       "--recipient", recipient, "--digest-key-file", str(digest_key))
    assert main(argv) == 0
    assert digest_key.stat().st_mode & 0o777 == 0o600
    # the digests are the ones `kubedr seal/reseal` compute from the same file (hex line, comment allowed)
    sealer = sealing.Sealer([recipient], sealing.load_digest_key(str(digest_key)))
    doc = yaml.safe_load(remote_files(git_remote)[PATH])
    assert doc["sealed"]["values"]["password"]["hmac"] == sealer.digest(SECRET, "password", b"hunter2-xyzzy")

    capfd.readouterr()
    digest_key.write_text("not a key\n")
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert f"digest key {digest_key}: expected one line" in err and "Traceback" not in err


def test_without_digest_key_file_a_killed_exporter_restarts_without_resealing(primary, git_remote: Path,
                                                                              tmp_path: Path) -> None:
    """The key is made in the clone's .git on first start and reused: no re-encryption, no commit."""
    import os
    import signal
    import sys

    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = next(ln.split(": ")[1] for ln in key.read_text().splitlines() if "public key" in ln)
    for name in ("db", "api", "cache"):
        primary.api.create({**SECRET, "metadata": {"name": name, "namespace": "shop"}})
    workdir, log = tmp_path / "clone", tmp_path / "exporter.log"
    argv = export_args(primary, git_remote, workdir, "--namespaces", "shop", "--recipient", recipient)

    def spawn() -> subprocess.Popen:
        with log.open("ab") as err:
            return subprocess.Popen([sys.executable, "-m", "kubedr", *argv], stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)

    proc = spawn()
    try:
        wait_until(lambda: {f"shop/Secret/{n}.yaml" for n in ("db", "api", "cache")} <= set(remote_files(git_remote)),
                   timeout=30, what="the sealed Secrets pushed")
        digest_file = workdir / ".git" / "kubedr-digest-key"
        assert digest_file.stat().st_mode & 0o777 == 0o600
        head = subjects(git_remote)
        sealed = remote_files(git_remote)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        mark = log.stat().st_size
        proc = spawn()
        wait_until(lambda: "startup reconcile" in log.read_bytes()[mark:].decode(errors="replace"), timeout=30,
                   what="the restarted exporter's startup reconcile")
        assert "repo already up to date" in log.read_bytes()[mark:].decode(errors="replace")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert subjects(git_remote) == head, "a restart on an unchanged cluster made a commit"
        assert remote_files(git_remote) == sealed, "the ciphertext changed across the restart"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
