"""Repo remote URLs may carry a token (https://user:token@host/...): logs and errors show them without it."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO_PASSWORD = re.compile(r"(\w+://[^/:@\s]+):[^@/\s]+@")
DEFAULT_PORTS = frozenset({22, 80, 443, 9418})  # ssh, http, https, git: the same repo with or without them


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


def _scp_like(url: str) -> bool:
    """[user@]host:path, as git reads it: a colon before the first slash, and no such path on this machine."""
    return ":" in url.split("/", 1)[0] and not os.path.exists(url)


def is_ssh(url: str) -> bool:
    """Whether git reaches the remote over SSH: ssh:// (git+ssh://, ssh+git://) or scp-like."""
    if "://" in url:
        return url.split("://", 1)[0].lower() in ("ssh", "git+ssh", "ssh+git")
    return _scp_like(url)


def identity(url: str) -> str:
    """Which repo a URL names, so a new spelling of one remote is not taken for another repo: host and path
    (no scheme, user, password or default port, no trailing `/` or `.git`); a local path absolute and resolved."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return url
        host, path = (parts.hostname or "").lower(), parts.path
        if port is not None and port not in DEFAULT_PORTS:
            host += f":{port}"
    elif _scp_like(url):
        host, _, path = url.partition(":")
        host = host.rpartition("@")[2].lower()
    else:
        return os.path.realpath(os.path.expanduser(url))
    path = path.strip("/")
    return f"{host}/{path.removesuffix('.git').rstrip('/')}"
