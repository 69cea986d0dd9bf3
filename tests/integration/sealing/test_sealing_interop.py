"""Sealing against the real `age` CLI, the real `kubedr` command line and a real git repository."""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubedr import contract, sealing
from kubedr.sanitize import sanitize
from tests.conftest import load_fixture, run_git
from tests.sshkeys import allowed_signers, make_key, verify_commit

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")


@pytest.fixture(autouse=True)
def _age_is_installed() -> None:
    """scripts/test installs Debian's age: without it these tests fail, they never skip."""
    assert AGE and AGE_KEYGEN, "Debian's age and age-keygen are not on PATH (bash scripts/test installs them)"

PLAINTEXTS = [b"not-a-real-password", b"s3cr3t-v2-\xe2\x9c\x93", b"second-secret-in-ns-b", b"stringdata-token-XYZ"]


def keygen(path: Path) -> str:
    """A new identity file made by age-keygen; returns its public key."""
    subprocess.run([AGE_KEYGEN, "-o", str(path)], check=True, capture_output=True)
    return subprocess.run([AGE_KEYGEN, "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def kubedr(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubedr", *args], input=stdin, capture_output=True, cwd=cwd,
                          timeout=60)


def secret(name: str = "db-credentials", **values: bytes) -> dict:
    items = load_fixture("objects/namespaced-secret.json")["items"]
    obj = sanitize(copy.deepcopy(next(i for i in items if i["metadata"]["name"] == "db-credentials")))
    obj["metadata"]["name"] = name
    if values:
        obj["data"] = {k: base64.b64encode(v).decode() for k, v in values.items()}
    return obj


def test_sealing_age_cli_opens_what_kubedr_sealed(tmp_path: Path) -> None:
    one, two = tmp_path / "one.key", tmp_path / "two.key"
    sealed = sealing.Sealer([keygen(one), keygen(two)], b"k" * 32).seal(secret(password=PLAINTEXTS[0]))
    armor = sealed["sealed"]["values"]["password"]["age"].encode()
    for key in (one, two):
        out = subprocess.run([AGE, "-d", "-i", str(key)], input=armor, capture_output=True, check=True)
        assert out.stdout == PLAINTEXTS[0]


def test_sealing_kubedr_opens_what_age_cli_sealed(tmp_path: Path) -> None:
    key = tmp_path / "applier.key"
    recipient = keygen(key)
    armor = subprocess.run([AGE, "-e", "-a", "-r", recipient], input=PLAINTEXTS[1], capture_output=True,
                           check=True).stdout.decode()
    obj = secret()
    del obj["data"]
    obj["sealed"] = {"format": sealing.FORMAT, "recipients": [recipient],
                     "values": {"password": {"age": armor, "hmac": ""}}}
    out = sealing.unseal(obj, sealing.load_identities(str(key)))
    assert base64.b64decode(out["data"]["password"]) == PLAINTEXTS[1]


def test_sealing_cli_seal_unseal_files_and_pipes(tmp_path: Path) -> None:
    key = tmp_path / "applier.key"
    recipient = keygen(key)
    digest = tmp_path / "digest.key"
    sealing.load_digest_key(str(digest), create=True)
    plain = secret(password=PLAINTEXTS[0])
    plain_file = tmp_path / "plain.yaml"
    plain_file.write_bytes(contract.dump(plain))
    sealed_file = tmp_path / "sealed.yaml"
    args = ["seal", str(plain_file), "-o", str(sealed_file), "--recipient", recipient, "--digest-key-file", str(digest)]
    assert kubedr(*args).returncode == 0
    first = sealed_file.read_bytes()
    assert PLAINTEXTS[0] not in first and b"sealed:" in first
    assert kubedr(*args).returncode == 0
    assert sealed_file.read_bytes() == first, "re-sealing an unchanged Secret into the same file changes nothing"
    piped = kubedr("unseal", "-", "--identity", str(key), stdin=first)
    assert piped.returncode == 0, piped.stderr
    assert yaml.safe_load(piped.stdout) == plain
    out_file = tmp_path / "out.yaml"
    assert kubedr("unseal", str(sealed_file), "-o", str(out_file), "--identity", str(key)).returncode == 0
    assert out_file.stat().st_mode & 0o077 == 0, "plaintext output is private"
    wrong = tmp_path / "wrong.key"
    keygen(wrong)
    failed = kubedr("unseal", str(sealed_file), "--identity", str(wrong))
    assert failed.returncode == 1 and failed.stdout == b""
    assert b"Secret fixtures/db-credentials: cannot unseal key 'password'" in failed.stderr
    missing = kubedr("seal", str(plain_file))
    assert missing.returncode == 2 and b"--recipient" in missing.stderr


def _all_blobs(repo: Path) -> list[bytes]:
    """Every blob reachable from any commit, via git itself."""
    objects = run_git("rev-list", "--all", "--objects", cwd=repo).split("\n")
    shas = [line.split(" ")[0] for line in objects if line]
    batch = subprocess.run(["git", "cat-file", "--batch"], input="\n".join(shas).encode() + b"\n", cwd=repo,
                           capture_output=True, check=True).stdout
    blobs, pos = [], 0
    while pos < len(batch):
        header_end = batch.index(b"\n", pos)
        _sha, kind, size = batch[pos:header_end].split(b" ")
        body = batch[header_end + 1: header_end + 1 + int(size)]
        if kind == b"blob":
            blobs.append(body)
        pos = header_end + 1 + int(size) + 1
    return blobs


def test_sealing_repo_history_never_holds_plaintext_and_reseal_rotates(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_git("init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("config repo\n")
    old_key, new_key, breakglass = tmp_path / "old.key", tmp_path / "new.key", tmp_path / "bg.key"
    old_r, new_r, bg_r = keygen(old_key), keygen(new_key), keygen(breakglass)
    digest_file = tmp_path / "digest.key"
    digest = sealing.load_digest_key(str(digest_file), create=True)

    def export(obj: dict, message: str) -> None:  # what the exporter does for a Secret
        ref = contract.ref_of(obj)
        target = repo / ref.path
        previous = contract.load(target.read_bytes(), ref.path) if target.exists() else None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contract.dump(sealing.Sealer([old_r], digest).seal(obj, previous)))
        run_git("add", "-A", cwd=repo)
        run_git("commit", "-q", "--allow-empty", "-m", message, cwd=repo)

    export(secret(password=PLAINTEXTS[0], username=b"shop"), "create")
    export(secret(password=PLAINTEXTS[1], username=b"shop"), "update")
    b = secret("api", token=PLAINTEXTS[2])
    b["metadata"]["namespace"] = "other"
    export(b, "create b")
    with_string = secret("strings")
    with_string["stringData"] = {"token": PLAINTEXTS[3].decode()}
    export(with_string, "create strings")
    head = run_git("rev-parse", "HEAD", cwd=repo).strip()
    export(secret(password=PLAINTEXTS[1], username=b"shop"), "unchanged")
    assert run_git("diff", "--stat", head, "HEAD", cwd=repo) == "", "unchanged Secret: no diff"

    before = run_git("rev-list", "--count", "HEAD", cwd=repo).strip()
    signing_key = make_key(tmp_path, "operator")
    done = kubedr("reseal", "--repo", str(repo), "--identity", str(old_key), "--recipient", new_r,
                  "--recipient", bg_r, "--signing-key", str(signing_key))
    assert done.returncode == 0, done.stderr
    assert verify_commit(repo, "HEAD", allowed_signers(tmp_path / "allowed", operator=signing_key)).returncode == 0
    assert int(run_git("rev-list", "--count", "HEAD", cwd=repo)) == int(before) + 1, "one commit"
    changed = run_git("show", "--name-only", "--format=%s", "HEAD", cwd=repo).split()
    assert "fixtures/Secret/db-credentials.yaml" in changed and "other/Secret/api.yaml" in changed
    assert run_git("status", "--porcelain", cwd=repo) == ""
    again = kubedr("reseal", "--repo", str(repo), "--identity", str(new_key), "--recipient", new_r,
                   "--recipient", bg_r)
    assert again.returncode == 0 and int(run_git("rev-list", "--count", "HEAD", cwd=repo)) == int(before) + 1

    for rel in ("fixtures/Secret/db-credentials.yaml", "other/Secret/api.yaml", "fixtures/Secret/strings.yaml"):
        obj = contract.load((repo / rel).read_bytes(), rel)
        assert obj["sealed"]["recipients"] == sorted([new_r, bg_r])
        for good in (new_key, breakglass):
            sealing.unseal(obj, sealing.load_identities(str(good)))
        with pytest.raises(sealing.UnsealError):
            sealing.unseal(obj, sealing.load_identities(str(old_key)))
        armor = next(iter(obj["sealed"]["values"].values()))["age"].encode()
        assert subprocess.run([AGE, "-d", "-i", str(new_key)], input=armor, capture_output=True).returncode == 0
        assert subprocess.run([AGE, "-d", "-i", str(old_key)], input=armor, capture_output=True).returncode != 0

    # the exporter (digest key unchanged) keeps the resealed ciphertext once it knows the new recipients
    target = repo / "fixtures/Secret/db-credentials.yaml"
    current = target.read_bytes()
    kept = sealing.Sealer([new_r, bg_r], digest).seal(secret(password=PLAINTEXTS[1], username=b"shop"),
                                                      contract.load(current, "-"))
    assert contract.dump(kept) == current

    blobs = _all_blobs(repo)
    assert len(blobs) >= 6
    for value in PLAINTEXTS + [b"shop"]:
        for form in (value, base64.b64encode(value)):
            assert not any(form in blob for blob in blobs), f"{form!r} found in the repository history"


def test_sealing_reseal_refuses_when_a_secret_does_not_open(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_git("init", "-q", "-b", "main", str(repo))
    a_key, b_key = tmp_path / "a.key", tmp_path / "b.key"
    a_r, b_r, c_r = keygen(a_key), keygen(b_key), keygen(tmp_path / "c.key")
    for name, recipient in (("one", a_r), ("two", b_r)):
        path = repo / "fixtures" / "Secret" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contract.dump(sealing.Sealer([recipient], b"k" * 32).seal(secret(name, v=b"x"))))
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", "init", cwd=repo)
    done = kubedr("reseal", "--repo", str(repo), "--identity", str(a_key), "--recipient", c_r)
    assert done.returncode == 1
    assert b"Secret fixtures/two: cannot unseal key 'v'" in done.stderr and b"nothing written" in done.stderr
    assert run_git("status", "--porcelain", cwd=repo) == "" and run_git("rev-list", "--count", "HEAD", cwd=repo).strip() == "1"


def test_sealing_reseal_seals_plain_secrets_and_refuses_dirty_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_git("init", "-q", "-b", "main", str(repo))
    key = tmp_path / "a.key"
    recipient = keygen(key)
    plain = repo / "fixtures" / "Secret" / "plain.yaml"
    plain.parent.mkdir(parents=True)
    plain.write_bytes(contract.dump(secret("plain", v=PLAINTEXTS[2])))  # as --secrets=plaintext left it
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", "init", cwd=repo)
    left = kubedr("reseal", "--repo", str(repo), "--identity", str(key), "--recipient", recipient)
    assert left.returncode == 0 and b"plain Secret left as is" in left.stderr
    digest = tmp_path / "digest.key"
    sealing.load_digest_key(str(digest), create=True)
    plain.write_bytes(plain.read_bytes() + b"# local edit\n")
    dirty = kubedr("reseal", "--repo", str(repo), "--identity", str(key), "--recipient", recipient,
                   "--digest-key-file", str(digest))
    assert dirty.returncode == 1 and b"fixtures/Secret/plain.yaml: has uncommitted changes" in dirty.stderr
    run_git("checkout", "--", ".", cwd=repo)
    done = kubedr("reseal", "--repo", str(repo), "--identity", str(key), "--recipient", recipient,
                  "--digest-key-file", str(digest))
    assert done.returncode == 0, done.stderr
    obj = contract.load(plain.read_bytes(), "fixtures/Secret/plain.yaml")
    assert sealing.is_sealed(obj) and PLAINTEXTS[2] not in plain.read_bytes()
    assert base64.b64decode(sealing.unseal(obj, sealing.load_identities(str(key)))["data"]["v"]) == PLAINTEXTS[2]


def test_sealing_reseal_reads_the_repo_from_git_objects_and_never_writes_through_a_link(tmp_path: Path) -> None:
    """Committed symlinks where Secrets live (a file, a whole Secret directory) point at sealed files of this
    machine: reseal names them and leaves them, and the host files stay as they were."""
    repo, host = tmp_path / "repo", tmp_path / "host"
    run_git("init", "-q", "-b", "main", str(repo))
    old_key, new_key = tmp_path / "old.key", tmp_path / "new.key"
    old_r, new_r = keygen(old_key), keygen(new_key)
    sealer = sealing.Sealer([old_r], b"k" * 32)
    sealed = contract.dump(sealer.seal(secret("real", v=b"x")))
    linked = secret("x", v=b"y")
    linked["metadata"]["namespace"] = "linked"
    (host / "dir").mkdir(parents=True)
    (host / "file.yaml").write_bytes(contract.dump(sealer.seal(secret("evil", v=b"z"))))  # as its path says
    (host / "dir" / "x.yaml").write_bytes(contract.dump(sealer.seal(linked)))
    originals = {p: p.read_bytes() for p in (host / "file.yaml", host / "dir" / "x.yaml")}
    real = repo / "fixtures" / "Secret" / "real.yaml"
    real.parent.mkdir(parents=True)
    real.write_bytes(sealed)
    real.parent.joinpath("evil.yaml").symlink_to(host / "file.yaml")
    (repo / "linked").mkdir()
    (repo / "linked" / "Secret").symlink_to(host / "dir")
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", "init", cwd=repo)
    done = kubedr("reseal", "--repo", str(repo), "--identity", str(old_key), "--recipient", new_r)
    assert done.returncode == 0, done.stderr
    assert b"fixtures/Secret/evil.yaml: a symbolic link; not read" in done.stderr
    assert b"linked/Secret: a symbolic link; not read" in done.stderr
    assert {p: p.read_bytes() for p in originals} == originals
    assert run_git("show", "--name-only", "--format=", "HEAD", cwd=repo).split() == ["fixtures/Secret/real.yaml"]
    sealing.unseal(contract.load(real.read_bytes(), "real"), sealing.load_identities(str(new_key)))

    # a link made in the working tree only, on the way to a committed Secret: refused, nothing written
    shutil.move(str(repo / "fixtures"), str(host / "moved"))
    (repo / "fixtures").symlink_to(host / "moved")
    before = (host / "moved" / "Secret" / "real.yaml").read_bytes()
    again = kubedr("reseal", "--repo", str(repo), "--identity", str(new_key), "--recipient", old_r)
    assert again.returncode == 1 and b"nothing written" in again.stderr, again.stderr
    assert (host / "moved" / "Secret" / "real.yaml").read_bytes() == before
