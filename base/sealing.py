"""Secrets sealed with age: readable keys and metadata, every value encrypted, no diff when nothing changed.

Keys (README guidance for operators)
------------------------------------
Create one age identity per secondary cluster (and one break-glass key kept offline)::

    age-keygen -o applier.key          # prints "Public key: age1..."; the file is the identity: keep it secret
    age-keygen -y applier.key          # prints the public key (recipient) again

Give the exporter only public keys (``--recipient age1...`` or ``--recipients-file recipients.txt``, one
recipient per line, ``#`` comments), and the applier only its identity file (``--identity applier.key``,
mounted from a Kubernetes Secret). Any single sealed value opens with the standard tool::

    yq -r '.sealed.values.password.age' shop/Secret/db.yaml | age -d -i applier.key

To rotate recipients (a new secondary, a retired key): ``kubedr reseal --repo . --identity old.key
--recipient age1new... --recipient age1breakglass...`` re-encrypts every Secret in one commit.

Sealed file format
------------------
The object stays ``apiVersion: v1, kind: Secret`` (so it keeps its path and identity in the repo) with
``metadata``, ``type`` and ``immutable`` readable, but ``data``/``stringData`` are replaced by::

    sealed:
      format: kubedr.io/age/v1
      recipients: [age1..., age1...]        # sorted; public keys only
      values:
        <key>:
          age: |                             # ASCII-armored age file of the raw value (not base64)
            -----BEGIN AGE ENCRYPTED FILE-----
            ...
          hmac: hmac-sha256:<hex>            # keyed digest of namespace, name, key and value

A file without ``data`` but with ``sealed`` is plainly not a usable Secret: ``kubectl apply`` of it cannot
create a Secret with values. The applier calls ``unseal`` first.

Stable ciphertext: age encryption is randomized, so the exporter keeps the previous ciphertext of a key when
the HMAC of the new value (under a digest key only the exporter holds) equals the stored one and the
recipients did not change. The HMAC binds namespace/name/key so equal values in two Secrets do not show as
equal; without the digest key it reveals nothing (a bare hash would allow guessing short values). Losing the
digest key costs one re-encryption of every Secret, never plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyrage

from kubedr.contract import ref_of

FORMAT = "kubedr.io/age/v1"
HMAC_PREFIX = "hmac-sha256:"
DIGEST_KEY_BYTES = 32
log = logging.getLogger("kubedr.sealing")

Identity = pyrage.x25519.Identity


class SealingError(ValueError):
    """Bad sealing input (recipient, identity file, digest key, not a Secret); one line."""


class UnsealError(Exception):
    """A sealed Secret cannot be opened; the message names the Secret and the key."""


def _name(obj: dict[str, Any]) -> str:
    try:
        return ref_of(obj).display
    except ValueError:
        return "Secret (unnamed)"


def is_sealed(obj: dict[str, Any]) -> bool:
    """True for a Secret in kubedr's sealed form (values are age ciphertext, not data)."""
    return obj.get("kind") == "Secret" and isinstance(obj.get("sealed"), dict)


# ---- keys -------------------------------------------------------------------------------------------

def _lines(text: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def parse_recipient(value: str, where: str = "recipient") -> str:
    """Validate one age X25519 recipient (`age1...`) and return its canonical text."""
    try:
        return str(pyrage.x25519.Recipient.from_str(value.strip()))
    except Exception as exc:  # pyrage raises its own RecipientError / ValueError
        raise SealingError(f"{where}: not an age X25519 recipient: {value.strip()[:20]!r}") from exc


def recipient_lines(values: Iterable[str] = (), files: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(recipient text, where it came from) of flags and recipients files (one per line, # comments), as the
    age CLI reads -r and -R; the one reader behind every command that takes --recipient/--recipients-file."""
    out = [(v.strip(), "recipient") for v in values if v.strip()]
    for file in files:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SealingError(f"recipients file {file}: {exc.strerror or exc}") from exc
        out.extend((line, f"{file}:{number}") for number, line in _lines(text))
    return out


def load_recipients(values: Iterable[str] = (), files: Iterable[str] = ()) -> list[str]:
    """X25519 recipients from flags and recipients files, validated, de-duplicated."""
    return sorted({parse_recipient(text, where) for text, where in recipient_lines(values, files)})


def parse_identities(text: str, where: str) -> list[Identity]:
    """age X25519 identities from an age-keygen file's text (`AGE-SECRET-KEY-1...` lines, # comments)."""
    out: list[Identity] = []
    for number, line in _lines(text):
        try:
            out.append(pyrage.x25519.Identity.from_str(line))
        except Exception as exc:
            raise SealingError(f"{where}:{number}: not an age X25519 identity") from exc
    return out


def load_identities(files: str | Iterable[str]) -> list[Identity]:
    """age X25519 identities from age-keygen files (`AGE-SECRET-KEY-1...` lines, # comments)."""
    out: list[Identity] = []
    for file in [files] if isinstance(files, str) else files:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SealingError(f"identity file {file}: {exc.strerror or exc}") from exc
        out += parse_identities(text, f"identity file {file}")
    if not out:
        raise SealingError(f"identity file {', '.join([files] if isinstance(files, str) else files)}: no identity")
    return out


def new_identity_file() -> str:
    """A new identity as age-keygen writes it (its public key in a comment): for a key kept outside a file."""
    identity = pyrage.x25519.Identity.generate()
    return f"# public key: {identity.to_public()}\n{identity}\n"


def generate_digest_key() -> bytes:
    """A fresh random digest key."""
    return secrets.token_bytes(DIGEST_KEY_BYTES)


def digest_key_file() -> str:
    """A new digest key file's text: a comment saying what it is, then the key in hex."""
    return ("# kubedr digest key: keeps sealed Secrets stable. Exporter only; never commit it.\n"
            + generate_digest_key().hex() + "\n")


def _create_digest_key(file: Path) -> None:
    """Write a new key whole or not at all: a kill half-way must not leave an empty key behind."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(digest_key_file())
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, file)  # never replaces a key another process made first
        log.info("created digest key %s (mode 0600)", file)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def load_digest_key(path: str, create: bool = False) -> bytes:
    """Read the exporter's digest key (64 hex chars); with create, make a new one with mode 0600 if missing."""
    file = Path(path)
    if create and not file.exists():
        _create_digest_key(file)
    try:
        text = file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SealingError(f"digest key {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    key = parse_digest_key(text, f"digest key {path}")
    if file.stat().st_mode & 0o077:
        log.warning("digest key %s is readable by group/others; chmod 600 it", path)
    return key


def parse_digest_key(text: str, where: str) -> bytes:
    """The key of a digest key file's text: one line of at least 32 hex characters (# comments)."""
    lines = [line for _, line in _lines(text)]
    try:
        key = bytes.fromhex(lines[0]) if len(lines) == 1 else b""
    except ValueError:
        key = b""
    if len(key) < 16:
        raise SealingError(f"{where}: expected one line of at least 32 hex characters")
    return key


# ---- seal / unseal ----------------------------------------------------------------------------------

def _plaintexts(secret: dict[str, Any]) -> dict[str, bytes]:
    """The Secret's values as bytes: data (base64) overlaid with stringData, as the API server does."""
    out: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value or "", validate=True)
        except (ValueError, TypeError) as exc:
            raise SealingError(f"{_name(secret)}: data.{key} is not base64") from exc
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = str(value).encode("utf-8")
    return out


class Sealer:
    """Seals Secrets for a fixed set of recipients, reusing ciphertext of unchanged values."""

    def __init__(self, recipients: Iterable[str], digest_key: bytes | None) -> None:
        """digest_key None: a random key for this process only (every restart re-encrypts every value)."""
        self.recipients = sorted({parse_recipient(r) for r in recipients})
        if not self.recipients:
            raise SealingError("sealing needs at least one age recipient")
        if digest_key is None:
            log.warning("no digest key: sealed Secrets get new ciphertext after every restart (--digest-key-file)")
            digest_key = generate_digest_key()
        if len(digest_key) < 16:
            raise SealingError("digest key must be at least 16 bytes")
        self._recipients = [pyrage.x25519.Recipient.from_str(r) for r in self.recipients]
        self._key = digest_key

    def digest(self, secret: dict[str, Any], key: str, value: bytes) -> str:
        """Keyed digest of one value, bound to the Secret's namespace, name and key."""
        meta = secret.get("metadata") or {}
        context = "\0".join(["kubedr-seal-v1", meta.get("namespace") or "", meta.get("name") or "", key, ""])
        return HMAC_PREFIX + hmac.new(self._key, context.encode("utf-8") + value, hashlib.sha256).hexdigest()

    def encrypt(self, value: bytes) -> str:
        """ASCII-armored age ciphertext of one value for all recipients."""
        return pyrage.encrypt(value, self._recipients, armored=True).decode("ascii")

    def seal(self, secret: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """The sealed form of a plain Secret; values unchanged since `previous` keep their ciphertext."""
        if secret.get("kind") != "Secret":
            raise SealingError(f"{_name(secret)}: only Secrets are sealed")
        if is_sealed(secret):
            raise SealingError(f"{_name(secret)}: already sealed")
        old: dict[str, Any] = {}
        if previous is not None and is_sealed(previous):
            sealed_before = previous["sealed"]
            if sealed_before.get("format") == FORMAT and sealed_before.get("recipients") == self.recipients:
                old = sealed_before.get("values") or {}
        data: dict[str, dict[str, str]] = {}
        for key, value in sorted(_plaintexts(secret).items()):
            mac = self.digest(secret, key, value)
            before = old.get(key)
            if isinstance(before, dict) and hmac.compare_digest(str(before.get("hmac", "")), mac) \
                    and isinstance(before.get("age"), str):
                data[key] = {"age": before["age"], "hmac": mac}
            else:
                data[key] = {"age": self.encrypt(value), "hmac": mac}
        out = {k: v for k, v in secret.items() if k not in ("data", "stringData")}
        out["sealed"] = {"format": FORMAT, "recipients": list(self.recipients), "values": data}
        return out


def _open(sealed: dict[str, Any], key: str, entry: Any, identities: list[Identity]) -> bytes:
    if not isinstance(entry, dict) or not isinstance(entry.get("age"), str):
        raise UnsealError(f"{_name(sealed)}: sealed.values.{key} has no age ciphertext")
    try:
        return pyrage.decrypt(entry["age"].encode("ascii"), identities)
    except Exception as exc:
        count = len(sealed["sealed"].get("recipients") or [])
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UnsealError(f"{_name(sealed)}: cannot unseal key {key!r} with the given identity "
                          f"(sealed for {count} recipient(s)): {reason}") from exc


def _check_format(sealed: dict[str, Any]) -> None:
    fmt = sealed["sealed"].get("format")
    if fmt != FORMAT:
        raise UnsealError(f"{_name(sealed)}: unknown sealed format {fmt!r} (expected {FORMAT})")


def unseal(sealed: dict[str, Any], identities: list[Identity]) -> dict[str, Any]:
    """The plain Secret (base64 data) of a sealed one; a plain object is returned as a copy, unchanged."""
    if not is_sealed(sealed):
        return dict(sealed)
    if not identities:
        raise UnsealError(f"{_name(sealed)}: sealed, but no identity was given (--identity)")
    _check_format(sealed)
    data = {key: base64.b64encode(_open(sealed, key, entry, identities)).decode("ascii")
            for key, entry in sorted((sealed["sealed"].get("values") or {}).items())}
    out = {k: v for k, v in sealed.items() if k != "sealed"}
    if data:
        out["data"] = data
    return out


def reseal(sealed: dict[str, Any], identities: list[Identity], recipients: Iterable[str]) -> dict[str, Any]:
    """Re-encrypt a sealed Secret for new recipients; the exporter's digests stay valid (same plaintext)."""
    if not is_sealed(sealed):
        raise SealingError(f"{_name(sealed)}: not sealed")
    _check_format(sealed)
    wanted = sorted({parse_recipient(r) for r in recipients})
    if not wanted:
        raise SealingError("reseal needs at least one age recipient")
    if sealed["sealed"].get("recipients") == wanted:
        return sealed
    targets = [pyrage.x25519.Recipient.from_str(r) for r in wanted]
    data = {}
    for key, entry in sorted((sealed["sealed"].get("values") or {}).items()):
        value = _open(sealed, key, entry, identities)
        data[key] = {"age": pyrage.encrypt(value, targets, armored=True).decode("ascii"), "hmac": entry.get("hmac", "")}
    return {**sealed, "sealed": {"format": FORMAT, "recipients": wanted, "values": data}}
