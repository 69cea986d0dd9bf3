"""Every git process kubedr starts goes through here: one error, one timeout policy, no credential ever shown.

A command that fails raises GitError with git's telling stderr line; one that outlives its timeout is killed
with everything it started (ssh, git-remote-https) and raises GitError too. The transport settings bound every
network step besides the overall timeout: ssh gives up on a host that does not answer within CONNECT_TIMEOUT and
on a connection silent for SERVER_ALIVE_SECONDS * 3; HTTP(S) on one slower than 1 KB/s for LOW_SPEED_SECONDS.
Network commands to an SSH remote share one connection per remote while the process runs (kubedr.sshmux); over
HTTP(S) each git process makes its own (curl keeps it only for that process's requests), which is why the
exporter's pushes go over kubedr.smarthttp's kept connection (talk() runs its git send-pack).
stop_all() ends every running git process at once (a daemon's SIGTERM must not wait for a hung fetch).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kubedr import sshmux
from kubedr.remote import is_ssh, scrub

LOCAL_TIMEOUT = 600.0  # a command that reads or writes only this machine's repositories
NETWORK_TIMEOUT = 120.0  # fetch, push, ls-remote, clone: the whole command
CONNECT_TIMEOUT = 10  # seconds for ssh to reach the host and finish the handshake
SERVER_ALIVE_SECONDS = 10  # ssh keepalive probe interval; three unanswered probes end the connection
LOW_SPEED_SECONDS = 30  # HTTP(S): below 1 KB/s for this long ends the transfer
SSH_OPTIONS = (f"-o BatchMode=yes -o ConnectTimeout={CONNECT_TIMEOUT} -o ServerAliveInterval={SERVER_ALIVE_SECONDS} "
               "-o ServerAliveCountMax=3")
NETWORK_COMMANDS = frozenset({"fetch", "push", "ls-remote", "clone", "pull"})
# Settings every command gets, so the repo's content does not steer git: a bare repo reads HEAD:.mailmap by default,
# and a hostile tree at HEAD would fail every `git log` (a .mailmap would also rename authors in what kubedr shows).
FIXED_CONFIG = {"mailmap.blob": "", "log.mailmap": "false"}
TELLING = ("fatal:", "error:", "ssh:", "remote: error", "! [rejected]", "! [remote rejected]")

_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


class GitError(RuntimeError):
    """A git command failed or timed out: `git <command>: <git's telling stderr line>` (credentials masked)."""

    def __init__(self, command: str, reason: str, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(f"git {command}: {reason}")
        self.command = command
        self.reason = reason
        self.returncode = returncode  # None: killed at its timeout
        self.stderr = stderr  # all of it, credentials masked

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


@dataclass(frozen=True)
class Result:
    """What a git command printed; returncode 0 unless run with check=False."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


_configured_ssh: list[str] = []  # core.sshCommand of the user's git config, read once


def _ssh_command(env: Mapping[str, str], multiplex: bool = False) -> str | None:
    """The ssh command git would use, with kubedr's time bounds (and with multiplex, this process's shared
    connection: kubedr.sshmux) after the operator's own options (ssh takes the first value it is given, so an
    operator's -o ConnectTimeout or -o ControlPath=none wins); None for a GIT_SSH program (no options)."""
    if "GIT_SSH" in env and "GIT_SSH_COMMAND" not in env:
        return None
    command = env.get("GIT_SSH_COMMAND")
    if command is None:
        if not _configured_ssh:
            got = subprocess.run(["git", "config", "--get", "core.sshCommand"], capture_output=True, text=True,
                                 env=dict(env), cwd="/", timeout=30)
            _configured_ssh.append(got.stdout.strip() or "ssh")
        command = _configured_ssh[0]
    shared = sshmux.options(command) if multiplex else ""
    return f"{command} {SSH_OPTIONS}{' ' if shared else ''}{shared}"


def environment(extra: Mapping[str, str] | None = None, multiplex: bool = False) -> dict[str, str]:
    """The environment git runs with: never a prompt, messages in English, every transport step bounded; with
    multiplex, ssh goes through this process's one connection per remote."""
    env = {**os.environ, **(extra or {})}
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    env.setdefault("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
    env.setdefault("GIT_HTTP_LOW_SPEED_TIME", str(LOW_SPEED_SECONDS))
    ssh = _ssh_command(env, multiplex)
    if ssh is not None:
        env["GIT_SSH_COMMAND"] = ssh
    count = int(env.get("GIT_CONFIG_COUNT") or 0)  # after whatever the caller adds (signing keys)
    for key, value in FIXED_CONFIG.items():
        env[f"GIT_CONFIG_KEY_{count}"], env[f"GIT_CONFIG_VALUE_{count}"] = key, value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    return env


def _command(args: Sequence[str]) -> str:
    """The subcommand named in args (after -C/--git-dir/-c options), for messages."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-C", "-c", "--git-dir", "--work-tree") else 1
    return args[i] if i < len(args) else "git"


def reason(stderr: str, returncode: int) -> str:
    """git's telling line: the first fatal/error line, else the last line, else the exit code."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    telling = [ln for ln in lines if ln.startswith(TELLING)]
    return (telling or lines or [f"exit {returncode}"])[0 if telling else -1]


def run(args: Sequence[str], *, cwd: str | Path | None = None, git_dir: str | Path | None = None,
        stdin: bytes | None = None, env: Mapping[str, str] | None = None, timeout: float | None = None,
        check: bool = True, remote: str | None = None) -> Result:
    """Run `git [--git-dir D] args`; GitError when it fails (check) or outlives timeout (always).

    The default timeout is NETWORK_TIMEOUT for commands that reach a remote, LOCAL_TIMEOUT otherwise; remote
    (a URL) is masked in every message besides whatever URL git itself prints. A network command to an SSH remote
    (or to a remote not named) shares this process's connection to it (kubedr.sshmux).
    """
    argv = ["git", *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    name = _command(args)
    network = name in NETWORK_COMMANDS
    limit = timeout if timeout is not None else NETWORK_TIMEOUT if network else LOCAL_TIMEOUT
    multiplex = network and (remote is None or is_ssh(remote))
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=environment(env, multiplex), stdin=subprocess.PIPE if stdin is not None
                                else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:  # no git on PATH, cwd gone
        raise GitError(name, scrub(str(exc), remote)) from None
    with _running_lock:
        _running.add(proc)
    try:
        out, err = proc.communicate(stdin, timeout=limit)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        raise GitError(name, f"no answer within {limit:g} s (killed)") from None
    finally:
        with _running_lock:
            _running.discard(proc)
    if proc.returncode < 0 and proc.returncode != -signal.SIGPIPE:
        raise GitError(name, f"stopped by signal {-proc.returncode}", proc.returncode)
    if check and proc.returncode != 0:
        text = scrub(err.decode(errors="replace"), remote)
        raise GitError(name, reason(text, proc.returncode), proc.returncode, text)
    return Result(proc.returncode, out, err)


@contextmanager
def talk(args: Sequence[str], *, git_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
         stderr: IO[bytes] | None = None, timeout: float = NETWORK_TIMEOUT,
         on_timeout: Callable[[], None] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A git process to converse with through its pipes (send-pack --stateless-rpc): killed with what it started
    after timeout (on_timeout then runs too, to unblock the other side of the conversation), on stop_all(), or
    when the block leaves early."""
    argv = ["git", *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    name = _command(args)
    try:
        proc = subprocess.Popen(argv, env=environment(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr if stderr is not None else subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise GitError(name, str(exc)) from None
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _kill(proc)
        if on_timeout is not None:
            on_timeout()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    with _running_lock:
        _running.add(proc)
    timer.start()
    try:
        yield proc
    except (OSError, ValueError) as exc:  # its pipes closed under us: killed at its timeout or by stop_all()
        raise GitError(name, f"no answer within {timeout:g} s (killed)" if expired.is_set() else str(exc)) from None
    finally:
        timer.cancel()
        if proc.poll() is None:
            _kill(proc)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        proc.wait()
        with _running_lock:
            _running.discard(proc)
    if expired.is_set():
        raise GitError(name, f"no answer within {timeout:g} s (killed)")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # git and whatever it started: ssh, remote helpers
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Kill every git command this process is running (their callers get GitError): for a prompt shutdown."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _kill(proc)


LOG_FIELDS = ("%H", "%ct", "%s")  # sha, committer time, subject
SIGNATURE_FIELDS = ("%G?", "%GS", "%GF")  # git's verdict on a signature, the allowed-signers principal, the key
TRAILERS = "%(trailers:only,unfold)"


def log_format(signatures: bool = False) -> str:
    """The --format of `git log` that parse_log reads: NUL between fields, RS after each commit."""
    return "%x00".join([*LOG_FIELDS, *(SIGNATURE_FIELDS if signatures else ()), TRAILERS]) + "%x1e"


@dataclass(frozen=True)
class Commit:
    """One commit as `git log` tells it: sha, committer time, subject, trailers (key -> values, in order); read with
    signatures, git's %G? letter (G good, N none, B bad, ...) and the signer (principal, else key fingerprint)."""

    sha: str
    time: int
    subject: str
    trailers: dict[str, list[str]] = field(default_factory=dict)
    signature: str = ""
    signer: str = ""

    def trailer(self, key: str) -> list[str]:
        """The values of one trailer key (git compares keys case-insensitively)."""
        low = key.lower()
        return [v for k, vs in self.trailers.items() if k.lower() == low for v in vs]


def parse_log(out: bytes, signatures: bool = False) -> Iterator[Commit]:
    """Commits from `git log --format=<log_format(signatures)>` output."""
    count = len(LOG_FIELDS) + (len(SIGNATURE_FIELDS) if signatures else 0) + 1
    for record in out.decode(errors="replace").split("\x1e"):
        record = record.lstrip("\n")
        if not record:
            continue
        sha, when, subject, *signed, block = (record.split("\x00", count - 1) + [""] * count)[:count]
        status, principal, fingerprint = signed or ("", "", "")
        trailers: dict[str, list[str]] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip():
                trailers.setdefault(key.strip(), []).append(value.strip())
        yield Commit(sha, int(when or 0), subject, trailers, status, principal or fingerprint)


def log(revs: Sequence[str], *, cwd: str | Path | None = None, git_dir: str | Path | None = None,
        no_walk: bool = False, paths: Sequence[str] = (), env: Mapping[str, str] | None = None,
        signatures: bool = False, config: Mapping[str, str] | None = None) -> list[Commit]:
    """The commits of revs (newest first; no_walk: only the named ones, read from stdin however many), with their
    trailers and, with signatures, git's verdict on each; config adds `-c` settings (the allowed signers)."""
    settings = [a for k, v in (config or {}).items() for a in ("-c", f"{k}={v}")]
    args = [*settings, "log", f"--format={log_format(signatures)}",
            *(["--no-walk=unsorted", "--stdin"] if no_walk else revs), "--", *paths]
    stdin = ("\n".join(revs) + "\n").encode() if no_walk else None
    return list(parse_log(run(args, cwd=cwd, git_dir=git_dir, env=env, stdin=stdin).stdout, signatures))
