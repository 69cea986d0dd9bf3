"""One SSH connection per remote for all of this process's git commands (OpenSSH connection multiplexing).

The first git command that reaches a host over SSH starts a master connection (ControlMaster=auto) that stays in
the background (ControlPersist) and carries every later command to that host as one more channel: one key exchange
per remote while the process runs, not one per fetch or push. The control sockets live in a directory of this
process alone (mkdtemp: mode 0700, a fresh name), so no other user, nor another process, can reach or replace the
connection; the socket's name hashes the ssh command too, so two identities for one host never share one. A
connection that drops (the host restarted, the network went away) ends its master, and the next command opens a
new one. close() ends every master (`ssh -O exit`) and removes the directory, at exit; a master a killed process
left ends itself PERSIST_SECONDS after its last command.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading

log = logging.getLogger("kubedr.git")

PERSIST_SECONDS = 300  # an unused master closes itself this long after its last command
SOCKET_LIMIT = 104  # bytes of a Unix socket path, NUL included, on BSD and macOS (108 on Linux)
# ssh first binds "<path>.<16 random characters>", then renames it; the name is "<8 hex>-%C" (%C: 40 hex)
SOCKET_NAME_LENGTH = 8 + 1 + 40 + 17
PREFIX = "kubedr-ssh-"
DIRECTORY_LENGTH = len(PREFIX) + 8  # mkdtemp's 8 random characters
PLAIN_PATH = re.compile(r"[A-Za-z0-9/._-]+")  # ssh reads -o values as config lines: no spaces, no quotes
EXIT_TIMEOUT = 5.0

_lock = threading.Lock()
_made: dict[str, str | None] = {}  # "dir": this process's socket directory, None when none could be made
_owner: list[int] = []  # the pid that made it (a forked child never closes its parent's connections)


def _bases() -> list[str]:
    """Where the directory may go: the temporary directory, else /tmp, if the socket paths fit."""
    out = []
    for base in dict.fromkeys([tempfile.gettempdir(), "/tmp"]):
        if PLAIN_PATH.fullmatch(base) and len(base) + 1 + DIRECTORY_LENGTH + 1 + SOCKET_NAME_LENGTH < SOCKET_LIMIT:
            out.append(base)
    return out


def directory() -> str | None:
    """This process's private directory of control sockets, made on first use; None when none can be made."""
    with _lock:
        if "dir" in _made and _owner == [os.getpid()]:
            return _made["dir"]
        _made["dir"], _owner[:] = None, [os.getpid()]
        problems = []
        for base in _bases():
            try:
                _made["dir"] = tempfile.mkdtemp(prefix=PREFIX, dir=base)
                break
            except OSError as exc:
                problems.append(f"{base}: {exc.strerror or exc}")
        if _made["dir"] is None:
            log.warning("ssh connections are not reused (one per git command): no private directory for their "
                        "sockets (%s)", "; ".join(problems) or f"{tempfile.gettempdir()}: path too long or not plain")
        else:
            atexit.register(close)
        return _made["dir"]


def options(command: str) -> str:
    """The ssh options that route a command through this process's master connection for its remote."""
    where = directory()
    if where is None:
        return ""
    tag = hashlib.sha256(command.encode()).hexdigest()[:8]
    return f"-o ControlMaster=auto -o ControlPath={where}/{tag}-%C -o ControlPersist={PERSIST_SECONDS}"


def sockets() -> list[str]:
    """The control sockets of this process's open connections."""
    where = _made.get("dir") if _owner == [os.getpid()] else None
    try:
        return sorted(os.path.join(where, n) for n in os.listdir(where)) if where else []
    except FileNotFoundError:
        return []


def close() -> None:
    """End this process's master connections (`ssh -O exit`) and remove their directory."""
    with _lock:
        found = sockets()
        where = _made.pop("dir", None) if _owner == [os.getpid()] else None
    for path in found:
        try:
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={path}", "kubedr-control"], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=EXIT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("ssh -O exit %s: %s", path, exc)
    if where:
        shutil.rmtree(where, ignore_errors=True)
