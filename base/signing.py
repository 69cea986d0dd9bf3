"""SSH commit signatures as git makes them (gpg.format=ssh): signed in-process, checked with git and ssh-keygen.

Signing happens in the process (the `cryptography` library, no subprocess per commit), in OpenSSH's SSHSIG
format (PROTOCOL.sshsig) with git's namespace, so plain `git verify-commit` with an allowed-signers file
accepts the exporter's commits. Verifying gives git's verdicts: in this process where kubedr.sshsig judges the
signature and the signers file, else through `git log %G?`, which runs ssh-keygen -Y verify.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from kubedr import git, sshsig
from kubedr.commits import CommitReader

NAMESPACE = b"git"  # what git passes to ssh-keygen -Y sign/verify -n
ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
ACK_TRAILER = "Kubedr-Acknowledges"  # a signed commit naming an untrusted commit a person reviewed


class SigningError(Exception):
    """The signing key or the allowed-signers file is unusable; one line naming it."""


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big") if n else b""
    return _string(raw)


# ECDSA curve -> (ssh name, hash): RFC 5656 section 6.2.1
_CURVES = {"secp256r1": ("nistp256", hashes.SHA256()), "secp384r1": ("nistp384", hashes.SHA384()),
           "secp521r1": ("nistp521", hashes.SHA512())}


PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def parse_private_key(data: bytes, where: str) -> PrivateKey:
    """An unencrypted OpenSSH private key (ed25519, ecdsa or rsa); SigningError names where it came from."""
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{where}: not an unencrypted OpenSSH private key ({exc})") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningError(f"{where}: use an ed25519, ecdsa or rsa key")
    return key


def public_key(key: PrivateKey) -> str:
    """The key's public half as an OpenSSH line (`ssh-ed25519 AAAA...`), as allowed signers list it."""
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def new_private_key() -> bytes:
    """A new ed25519 key in OpenSSH's format (what `ssh-keygen -t ed25519 -N ""` writes)."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())


class Signer:
    """An SSH private key (ed25519, ecdsa or rsa, unencrypted) that signs git commit payloads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SigningError(f"signing key {path}: {exc.strerror or exc}") from exc
        self.key = parse_private_key(data, f"signing key {path}")
        self.public = public_key(self.key)
        self._blob = base64.b64decode(self.public.split()[1])

    def _raw_signature(self, data: bytes) -> bytes:
        key = self.key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return _string(b"ssh-ed25519") + _string(key.sign(data))
        if isinstance(key, rsa.RSAPrivateKey):
            return _string(b"rsa-sha2-512") + _string(key.sign(data, padding.PKCS1v15(), hashes.SHA512()))
        assert isinstance(key, ec.EllipticCurvePrivateKey)  # __init__ accepts these three kinds only
        name, digest = _CURVES[key.curve.name]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return _string(f"ecdsa-sha2-{name}".encode()) + _string(_mpint(r) + _mpint(s))

    def sign(self, payload: bytes) -> str:
        """The armored SSHSIG signature of payload, as `ssh-keygen -Y sign -n git` writes it."""
        digest = hashlib.sha512(payload).digest()
        signed = b"SSHSIG" + _string(NAMESPACE) + _string(b"") + _string(b"sha512") + _string(digest)
        blob = (b"SSHSIG" + struct.pack(">I", 1) + _string(self._blob) + _string(NAMESPACE) + _string(b"")
                + _string(b"sha512") + _string(self._raw_signature(signed)))
        text = base64.b64encode(blob).decode()
        lines = [text[i:i + 70] for i in range(0, len(text), 70)]
        return "\n".join([ARMOR[0], *lines, ARMOR[1]]) + "\n"

    def sign_commit(self, commit: bytes) -> bytes:
        """The commit object with a gpgsig header over its unsigned bytes (git's own layout)."""
        headers, _, message = commit.partition(b"\n\n")
        sig = self.sign(commit).rstrip("\n").replace("\n", "\n ")
        return headers + b"\ngpgsig " + sig.encode() + b"\n\n" + message

    def git_config(self) -> dict[str, str]:
        """Environment that makes git itself sign (a rebase, `git commit`) with this key, via ssh-keygen."""
        return git_config_env({"gpg.format": "ssh", "user.signingkey": os.path.abspath(self.path),
                               "commit.gpgsign": "true"})


def git_config_env(settings: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """GIT_CONFIG_COUNT/KEY/VALUE variables (git >= 2.31) adding settings to whatever base already sets."""
    env = dict(base if base is not None else os.environ)
    n = int(env.get("GIT_CONFIG_COUNT") or 0)
    for key, value in settings.items():
        env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"] = key, value
        n += 1
    env["GIT_CONFIG_COUNT"] = str(n)
    return {k: v for k, v in env.items() if k.startswith("GIT_CONFIG_")}


# ---- verification -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """One commit's signature as git judged it: status is git's %G? letter (G good, N none, B bad, ...)."""

    sha: str
    status: str
    signer: str  # the allowed-signers principal (%GS), else the key fingerprint (%GF), else ''
    acknowledges: tuple[str, ...] = ()

    @property
    def good(self) -> bool:
        return self.status == "G"

    @property
    def reason(self) -> str:
        return STATUS_TEXT.get(self.status, f"signature status {self.status}")


# git's %G? letters for SSH signatures (git-log PRETTY FORMATS)
STATUS_TEXT = {"G": "good signature by an allowed signer", "B": "bad signature",
               "U": "signed by a key that is not in the allowed signers", "X": "signature expired",
               "Y": "signed by an expired key", "R": "signed by a revoked key",
               "E": "signed by a key that is not in the allowed signers", "N": "not signed"}


def check_allowed_signers(path: str) -> None:
    """Fail early with one line when the allowed-signers file is missing or has no key."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SigningError(f"allowed signers {path}: {exc.strerror or exc}") from exc
    if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SigningError(f"allowed signers {path}: no key in it (git's allowed-signers format: "
                           f"'principal namespaces=\"git\" ssh-ed25519 AAAA...')")


def verify(shas: list[str], allowed_signers: str, *, cwd: str | Path | None = None,
           git_dir: str | Path | None = None, reader: CommitReader | None = None) -> dict[str, Verdict]:
    """Each commit's verdict, with what it acknowledges: judged in this process (kubedr.sshsig) where it can be,
    else by git, which runs ssh-keygen -Y verify per signed commit. reader: the repository's, kept open."""
    if not shas:
        return {}
    signers = sshsig.parse_allowed_signers(Path(allowed_signers).read_text(errors="replace"))
    reader = reader or CommitReader(str(git_dir if git_dir is not None else cwd or "."))
    out: dict[str, Verdict] = {}
    by_git, trailers = [], []
    for sha in shas:
        raw = reader.raw(sha) if signers is not None else None
        found = sshsig.verdict(raw, signers) if raw is not None and signers is not None else None
        if raw is None or found is None:
            by_git.append(sha)
            continue
        out[sha] = Verdict(sha, *found)
        if found[0] == "G" and ACK_TRAILER.lower().encode() in raw.lower():  # its trailers as git reads them
            trailers.append(sha)
    if trailers:
        for c in git.log(trailers, cwd=cwd, git_dir=git_dir, no_walk=True):
            out[c.sha] = Verdict(c.sha, out[c.sha].status, out[c.sha].signer, _acknowledged(c))
    if by_git:
        commits = git.log(by_git, cwd=cwd, git_dir=git_dir, no_walk=True, signatures=True,
                          config={"gpg.ssh.allowedSignersFile": os.path.abspath(allowed_signers)})
        out.update({c.sha: Verdict(c.sha, c.signature or "N", c.signer, _acknowledged(c)) for c in commits})
    return out


def _acknowledged(commit: git.Commit) -> tuple[str, ...]:
    return tuple(a for value in commit.trailer(ACK_TRAILER) for a in value.split())
