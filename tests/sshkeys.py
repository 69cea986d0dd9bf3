"""SSH keys made with the real ssh-keygen, and allowed-signers files in git's format, for signing tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_key(directory: Path, name: str, kind: str = "ed25519") -> Path:
    """A fresh unencrypted private key (mode 0600, as ssh-keygen wants it); its public key beside it (.pub)."""
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)], check=True)
    return path


def allowed_signers(path: Path, **keys: Path) -> Path:
    """An allowed-signers file: principal -> private key path (its .pub is read)."""
    lines = [f'{principal} namespaces="git" {Path(str(key) + ".pub").read_text().strip()}'
             for principal, key in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def verify_commit(repo: Path, sha: str, signers: Path) -> subprocess.CompletedProcess[str]:
    """Plain `git verify-commit` with gpg.ssh.allowedSignersFile, as an auditor runs it."""
    return subprocess.run(["git", "-C", str(repo), "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit",
                           sha], capture_output=True, text=True)
