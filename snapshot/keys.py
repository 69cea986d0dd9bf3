"""age recipients and identities, read the way the age CLI reads them (so keys work with both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyrage import ssh, x25519

from kubedr import sealing


class KeyFileError(ValueError):
    """A recipient or identity is missing or unreadable; str() names the flag or file."""


def parse_recipient(text: str, where: str = "--recipient") -> Any:
    """One recipient: an age1... X25519 key or an ssh-ed25519/ssh-rsa public key."""
    text = text.strip()
    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith("ssh-"):
            return ssh.Recipient.from_str(text)
    except Exception as exc:  # pyrage raises its own RecipientError and ValueError
        raise KeyFileError(f"{where}: invalid age recipient {text[:24]!r}: {exc}") from exc
    raise KeyFileError(f"{where}: not an age recipient: {text[:24]!r} (expected age1... or ssh-...)")


def load_recipients(values: list[str] | None, files: list[str] | None) -> list[Any]:
    """Recipients (age or SSH) from flags and recipients files, read as kubedr.sealing reads them; at least one."""
    try:
        lines = sealing.recipient_lines(values or [], files or [])
    except sealing.SealingError as exc:
        raise KeyFileError(str(exc)) from exc
    out = [parse_recipient(text, "--recipient" if where == "recipient" else f"recipients file {where}")
           for text, where in lines]
    if not out:
        raise KeyFileError("snapshot save needs at least one --recipient or --recipients-file: bundles are "
                         "always encrypted")
    return out


def load_identities(files: list[str] | None) -> list[Any]:
    """Identities from age identity files (AGE-SECRET-KEY-1... lines) or SSH private keys."""
    if not files:
        raise KeyFileError("an --identity FILE is needed to decrypt the bundle")
    out: list[Any] = []
    for name in files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"identity file {name}: {exc.strerror or exc}") from exc
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                out.append(ssh.Identity.from_buffer(data))
                continue
            keys = [line.strip() for line in data.decode().splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
            out += [x25519.Identity.from_str(k) for k in keys]
        except Exception as exc:
            raise KeyFileError(f"identity file {name}: {exc}") from exc
        if not out:
            raise KeyFileError(f"identity file {name}: no AGE-SECRET-KEY-1... line found")
    return out
