"""Commit signatures checked in this process, with git's verdicts: what `git log %G? %GS %GF` says through
`ssh-keygen -Y find-principals / verify / check-novalidate`, without the two ssh-keygen processes per commit.

Handled here: ed25519 SSHSIG signatures (PROTOCOL.sshsig) against an allowed-signers file whose lines name one
literal principal each, with no option besides namespaces="..." (git's own format). Anything else - another key
type, certificates, valid-after/valid-before, principal patterns, an armour or a blob that does not parse cleanly,
a commit with other signature headers - is left to the real tools (verdict() returns None), so the verdict is
always the one git would give.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

NAMESPACE = b"git"
BEGIN, END = b"-----BEGIN SSH SIGNATURE-----", b"-----END SSH SIGNATURE-----"
SIG_HEADER = b"gpgsig"  # a sha1 repository's signature header (gpgsig-sha256 belongs to sha256 ones)
ED25519 = b"ssh-ed25519"
HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
_KEY_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-")


class _Unhandled(Exception):
    """Not something this module judges: the real tools do."""


@dataclass(frozen=True)
class Signer:
    """One allowed-signers line: its principal, the namespaces it may sign (None: any), the public key blob."""

    principal: str
    namespaces: tuple[str, ...] | None
    key: bytes


def parse_allowed_signers(text: str) -> list[Signer] | None:
    """The lines of an allowed-signers file; None when one uses what this module leaves to ssh-keygen."""
    try:
        return [s for line in text.splitlines() if (s := _line(line)) is not None]
    except _Unhandled:
        return None


def _line(line: str) -> Signer | None:
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    principal, _, rest = line.partition(" ")
    rest = rest.lstrip()
    if not principal or any(c in principal for c in ',*?!"\t'):
        raise _Unhandled
    namespaces: tuple[str, ...] | None = None
    if not rest.startswith(_KEY_PREFIXES):
        options, rest = _options(rest)
        for option in options:
            name, eq, value = option.partition("=")
            if name != "namespaces" or not eq or len(value) < 2 or value[0] != '"' or value[-1] != '"':
                raise _Unhandled
            found = tuple(value[1:-1].split(","))
            if any(c in "".join(found) for c in '*?!" '):
                raise _Unhandled
            namespaces = found if namespaces is None else namespaces + found
    kind, _, rest = rest.partition(" ")
    blob64 = rest.split()[0] if rest.split() else ""
    if kind != ED25519.decode() or not blob64:
        if kind.startswith(_KEY_PREFIXES) and "-cert-" not in kind:
            return None  # another key type: it never matches an ed25519 signature (whose verdict is judged here)
        raise _Unhandled
    try:
        key = base64.b64decode(blob64, validate=True)
    except binascii.Error:
        raise _Unhandled from None
    if _fields(key, 2) != [ED25519, key[-32:]] or len(key) != 4 + len(ED25519) + 4 + 32:
        raise _Unhandled
    return Signer(principal, namespaces, key)


def _options(text: str) -> tuple[list[str], str]:
    """The comma-separated options before the key (quotes keep commas and spaces), and what follows them."""
    options, current, quoted, i = [], "", False, 0
    while i < len(text) and (quoted or text[i] not in " \t"):
        c = text[i]
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            options.append(current)
            current = ""
        else:
            current += c
        i += 1
    if quoted:
        raise _Unhandled
    options.append(current)
    return options, text[i:].lstrip()


def _fields(data: bytes, count: int) -> list[bytes]:
    """count SSH strings (uint32 length, bytes) from the start of data."""
    out, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(data):
            raise _Unhandled
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        if pos + 4 + n > len(data):
            raise _Unhandled
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def split_commit(raw: bytes) -> tuple[bytes, bytes, bool]:
    """(payload, signature, other) of a commit object as git reads it: the gpgsig header (continuation lines
    included) is the signature, the rest the signed payload; other: it also carries another signature header."""
    payload, sig = bytearray(), bytearray()
    in_sig = other = other_seen = False
    pos = 0
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        end = len(raw) if nl < 0 else nl + 1
        line = raw[pos:end]
        if line.startswith(b"\n"):
            payload += raw[pos:]
            break
        if in_sig and line.startswith(b" "):
            sig += line[1:]
        elif line.startswith(SIG_HEADER + b" "):
            sig += line[len(SIG_HEADER) + 1:]
            in_sig, other = True, False
        else:
            in_sig = False
            if line.startswith(b"gpgsig"):
                other = other_seen = True
            elif other and not line.startswith(b" "):
                other = False
            if not other:
                payload += line
        pos = end
    return bytes(payload), bytes(sig), other_seen


def _dearmor(sig: bytes) -> bytes:
    lines = sig.rstrip(b"\n").split(b"\n")
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise _Unhandled
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise _Unhandled from None


def fingerprint(key: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob, as git's %GF shows it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key).digest()).decode().rstrip("=")


def _valid(blob: bytes, payload: bytes) -> tuple[bytes, bool]:
    """(the signing key, whether the signature is good in git's namespace)."""
    if not blob.startswith(b"SSHSIG") or blob[6:10] != b"\0\0\0\1":
        raise _Unhandled
    key, namespace, reserved, hash_name, signature = _fields(blob[10:], 5)
    if len(blob) != 10 + sum(4 + len(f) for f in (key, namespace, reserved, hash_name, signature)):
        raise _Unhandled
    if _fields(key, 1)[0] != ED25519 or len(key) != 4 + len(ED25519) + 4 + 32 or hash_name not in HASHES:
        raise _Unhandled
    kind, raw = _fields(signature, 2)
    if kind != ED25519 or len(raw) != 64 or len(signature) != 8 + len(kind) + len(raw):
        raise _Unhandled
    if namespace != NAMESPACE:
        return key, False
    signed = (b"SSHSIG" + _string(namespace) + _string(reserved) + _string(hash_name)
              + _string(HASHES[hash_name](payload).digest()))
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(key[-32:]).verify(raw, signed)
    except InvalidSignature:
        return key, False
    return key, True


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def verdict(raw: bytes, signers: list[Signer]) -> tuple[str, str] | None:
    """(git's %G? letter, the principal or else the key fingerprint) of one commit; None when left to git."""
    payload, sig, other = split_commit(raw)
    if other:
        return None
    if not sig:
        return "N", ""
    if not sig.startswith(BEGIN):
        return None  # another format (OpenPGP, X.509) or none git knows
    try:
        key, good = _valid(_dearmor(sig), payload)
    except _Unhandled:
        return None
    listed = [s for s in signers if s.key == key]
    if not listed:  # check-novalidate: a good signature by a key nobody listed
        return ("U", fingerprint(key)) if good else ("B", "")
    for principal in dict.fromkeys(s.principal for s in listed):
        if good and any(s.principal == principal and (s.namespaces is None or "git" in s.namespaces)
                        for s in listed):
            return "G", principal
    return "B", ""
