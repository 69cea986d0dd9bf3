"""Repo remote URLs may carry a token (https://user:token@host/...): logs and errors show them without it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO_PASSWORD = re.compile(r"(\w+://[^/:@\s]+):[^@/\s]+@")


def redact(url: str) -> str:
    """The URL with the password of its userinfo replaced by ***; anything else is returned as it is."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def scrub(text: str, url: str | None = None) -> str:
    """text (a git error, a log line) without the password of any URL in it, nor that of url if given."""
    text = _USERINFO_PASSWORD.sub(r"\1:***@", text)
    if not url or "://" not in url:
        return text
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text
