"""Signatures judged in-process (kubedr.sshsig) give git's verdict, as git gets it from the real ssh-keygen -Y:
good, tampered payload, wrong key, a key nobody listed, the wrong namespace on either side, malformed armour."""

from __future__ import annotations

import base64
import hashlib
import signal
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubedr import git, signing, sshsig
from kubedr.commits import CommitReader
from tests.sshkeys import make_key

CASES = ("good", "tampered", "unlisted", "other-principal-key", "sig-namespace", "line-namespace", "unsigned",
         "armour-end", "armour-base64", "armour-truncated", "armour-pgp", "armour-trailing")
HANDLED = {"good", "tampered", "unlisted", "other-principal-key", "sig-namespace", "line-namespace", "unsigned"}


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          check=True).stdout.decode().strip()


def _s(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _armoured(key: ed25519.Ed25519PrivateKey, payload: bytes, namespace: bytes, hash_name: bytes) -> bytes:
    """An SSHSIG signature of payload, built here so the namespace and hash can be any."""
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    blob_key = _s(b"ssh-ed25519") + _s(pub)
    digest = (hashlib.sha512 if hash_name == b"sha512" else hashlib.sha256)(payload).digest()
    signed = b"SSHSIG" + _s(namespace) + _s(b"") + _s(hash_name) + _s(digest)
    blob = (b"SSHSIG" + struct.pack(">I", 1) + _s(blob_key) + _s(namespace) + _s(b"") + _s(hash_name)
            + _s(_s(b"ssh-ed25519") + _s(key.sign(signed))))
    text = base64.b64encode(blob)
    return b"\n".join([sshsig.BEGIN, *(text[i:i + 70] for i in range(0, len(text), 70)), sshsig.END]) + b"\n"


def _load(path: Path) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("sshsig")
    repo = tmp / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "root")
    keys = {name: make_key(tmp, name) for name in ("exporter", "stranger", "person")}
    return {"repo": repo, "tmp": tmp, "keys": keys, "tree": _git(repo, "rev-parse", "HEAD^{tree}"),
            "parent": _git(repo, "rev-parse", "HEAD")}


def _commit(world: dict[str, object], case: str, message: str, hash_name: bytes) -> str:
    repo, keys = world["repo"], world["keys"]
    assert isinstance(repo, Path) and isinstance(keys, dict)
    body = (f"tree {world['tree']}\nparent {world['parent']}\nauthor a <a@example.com> 1700000000 +0000\n"
            f"committer a <a@example.com> 1700000000 +0000\n\n{message}\n").encode()
    signer = keys["stranger" if case == "unlisted" else "person" if case == "other-principal-key" else "exporter"]
    sig = _armoured(_load(signer), body, b"file" if case == "sig-namespace" else b"git", hash_name)
    if case == "armour-end":
        sig = sig.replace(sshsig.END, b"-----END SSH SIG-----")
    elif case == "armour-base64":
        sig = sig.replace(sig.split(b"\n")[1][:8], b"!!??%%**", 1)
    elif case == "armour-truncated":
        lines = sig.split(b"\n")
        sig = b"\n".join([lines[0], lines[1][:40], *lines[-2:]])
    elif case == "armour-pgp":
        sig = sig.replace(b"SSH SIGNATURE", b"PGP SIGNATURE")
    elif case == "armour-trailing":
        sig = sig.replace(sshsig.END, sshsig.END + b"\nextra")
    headers, _, rest = body.partition(b"\n\n")
    signed = headers + b"\ngpgsig " + sig.rstrip(b"\n").replace(b"\n", b"\n ") + b"\n\n" + rest
    if case == "tampered":
        signed += b"tampered\n"
    if case == "unsigned":
        signed = body
    return _git(repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=signed)


def _signers(world: dict[str, object], case: str, principal: str, comment: bool, namespaces: str) -> Path:
    keys, tmp = world["keys"], world["tmp"]
    assert isinstance(keys, dict) and isinstance(tmp, Path)
    pub = {n: Path(f"{k}.pub").read_text().strip() for n, k in keys.items()}
    ns = 'namespaces="file" ' if case == "line-namespace" else namespaces
    lines = [f"{principal} {ns}{pub['exporter']}", f"person-{principal} {namespaces}{pub['person']}"
             if case != "other-principal-key" else f"# {pub['person']}"]
    if comment:
        lines.insert(0, "# the exporters of this repo")
    path = tmp / f"allowed-{abs(hash((case, principal, comment, namespaces)))}"
    path.write_text("\n".join(lines) + "\n")
    return path


def _git_verdict(repo: Path, sha: str, signers: Path) -> tuple[str, str]:
    """git's verdict, asked again when git died of SIGPIPE: ssh-keygen quits on armour it cannot read before git
    has written it the commit (git 2.39 does not ignore SIGPIPE there), a race in the oracle, not a verdict."""
    for _ in range(20):
        try:
            [c] = git.log([sha], cwd=repo, no_walk=True, signatures=True,
                          config={"gpg.ssh.allowedSignersFile": str(signers)})
            return c.signature or "N", c.signer
        except git.GitError as exc:
            if exc.returncode != -signal.SIGPIPE:
                raise
    raise AssertionError("git log died of SIGPIPE 20 times in a row")


principals = st.from_regex(r"[a-z][a-z0-9._@-]{0,20}", fullmatch=True)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), message=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60),
       principal=principals, comment=st.booleans(), hash_name=st.sampled_from([b"sha512", b"sha256"]),
       namespaces=st.sampled_from(["", 'namespaces="git" ', 'namespaces="file,git" ']))
def test_in_process_verdicts_are_git_and_ssh_keygens(world: dict[str, object], case: str, message: str,
                                                     principal: str, comment: bool, hash_name: bytes,
                                                     namespaces: str) -> None:
    repo = world["repo"]
    assert isinstance(repo, Path)
    sha = _commit(world, case, message, hash_name)
    signers = _signers(world, case, principal, comment, namespaces)
    expected = _git_verdict(repo, sha, signers)
    parsed = sshsig.parse_allowed_signers(signers.read_text())
    assert parsed is not None
    raw = CommitReader(str(repo)).raw(sha)
    assert raw is not None
    mine = sshsig.verdict(raw, parsed)
    if case in HANDLED:
        assert mine == expected, (case, mine, expected)
    else:
        assert mine is None or mine == expected, (case, mine, expected)
    verdict = signing.verify([sha], str(signers), cwd=repo)[sha]  # the gate's call, whichever way it went
    assert (verdict.status, verdict.signer) == expected


@pytest.mark.parametrize("line", [
    'exporter valid-after="20240101" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGh1Q4cRJ0m7M5w6Jk3l0p3o0c5e2s8m1nWwYb8yZk7a',
    "*@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGh1Q4cRJ0m7M5w6Jk3l0p3o0c5e2s8m1nWwYb8yZk7a",
    "a,b ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGh1Q4cRJ0m7M5w6Jk3l0p3o0c5e2s8m1nWwYb8yZk7a",
    "ca cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGh1Q4cRJ0m7M5w6Jk3l0p3o0c5e2s8m1nWwYb8yZk7a",
])
def test_what_ssh_keygen_alone_judges_is_left_to_it(line: str) -> None:
    assert sshsig.parse_allowed_signers(line + "\n") is None
