"""SSH commit signatures made in-process verify with plain git and ssh-keygen; verdicts come from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubedr import signing
from tests.sshkeys import allowed_signers, make_key, verify_commit


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          check=True).stdout.decode().strip()


def _signed_commit(repo: Path, signer: signing.Signer, message: str) -> str:
    parent = _git(repo, "rev-parse", "HEAD")
    body = (f"tree {_git(repo, 'rev-parse', 'HEAD^{tree}')}\nparent {parent}\n"
            f"author a <a@example.com> 1700000000 +0000\ncommitter a <a@example.com> 1700000000 +0000\n\n{message}\n")
    sha = _git(repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=signer.sign_commit(body.encode()))
    _git(repo, "update-ref", "HEAD", sha)
    return sha


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    _git(path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "root")
    return path


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_in_process_signature_verifies_with_git_verify_commit(repo: Path, tmp_path: Path, kind: str) -> None:
    key = make_key(tmp_path, f"k-{kind}", kind)
    sha = _signed_commit(repo, signing.Signer(key), f"signed with {kind}")
    ok = verify_commit(repo, sha, allowed_signers(tmp_path / "allowed", exporter=key))
    assert ok.returncode == 0, ok.stderr
    assert 'Good "git" signature for exporter' in ok.stderr
    other = make_key(tmp_path, "other")
    refused = verify_commit(repo, sha, allowed_signers(tmp_path / "others", someone=other))
    assert refused.returncode != 0


def test_the_signature_covers_the_commit(repo: Path, tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    sha = _signed_commit(repo, signing.Signer(key), "original")
    raw = subprocess.run(["git", "-C", str(repo), "cat-file", "commit", sha], capture_output=True, check=True).stdout
    forged = _git(repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=raw.replace(b"original", b"forged!!"))
    assert verify_commit(repo, forged, allowed_signers(tmp_path / "allowed", exporter=key)).returncode != 0


def test_verdicts_name_good_unknown_and_unsigned_commits_and_acknowledgements(repo: Path, tmp_path: Path) -> None:
    good, stranger = make_key(tmp_path, "good"), make_key(tmp_path, "stranger")
    signers = allowed_signers(tmp_path / "allowed", exporter=good)
    unsigned = _git(repo, "rev-parse", "HEAD")
    unknown = _signed_commit(repo, signing.Signer(stranger), "by a stranger")
    ack = _signed_commit(repo, signing.Signer(good), f"ack\n\n{signing.ACK_TRAILER}: {unknown}")
    verdicts = signing.verify([unsigned, unknown, ack], str(signers), cwd=repo)
    assert verdicts[unsigned].status == "N" and not verdicts[unsigned].good
    assert verdicts[unknown].status in ("U", "E") and verdicts[unknown].signer.startswith("SHA256:")
    assert verdicts[ack].good and verdicts[ack].signer == "exporter" and verdicts[ack].acknowledges == (unknown,)


def test_git_itself_signs_with_the_same_key_when_it_rewrites_commits(repo: Path, tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    env = {**__import__("os").environ, **signing.Signer(key).git_config()}
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q",
                    "--allow-empty", "-m", "by git"], env=env, check=True)
    assert verify_commit(repo, "HEAD", allowed_signers(tmp_path / "allowed", exporter=key)).returncode == 0


def test_bad_keys_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("not a key\n")
    with pytest.raises(signing.SigningError, match="junk"):
        signing.Signer(tmp_path / "junk")
    with pytest.raises(signing.SigningError, match="missing"):
        signing.Signer(tmp_path / "missing")
    (tmp_path / "empty").write_text("# nobody\n")
    with pytest.raises(signing.SigningError, match="no key"):
        signing.check_allowed_signers(str(tmp_path / "empty"))
