"""A real sshd on loopback serving bare repos to one key, as a Git host does over SSH.

A Git host runs git-shell (or its own handler), never the account's shell start-up files; bash reads ~/.bashrc
for every command sshd runs (it sees SSH_CLIENT), so the sshd here sets SHLVL, which makes bash skip it: a
~/.bashrc that starts slow tools would otherwise add its time to every git command over SSH.
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import free_port, port_open, wait_until

SSHD = "/usr/sbin/sshd"


def available() -> str | None:
    """Why an sshd cannot run here, or None. (Run as root, sshd wants /run/sshd, which `start` makes; run as
    anyone else it chroots nowhere and needs none.)"""
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing (scripts/test installs Debian's openssh-server)"
    return None


class GitSSH:
    """sshd with a fresh host key; `client_env()` is the GIT_SSH_COMMAND the manifests use, for the client key."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "ssh"
        self.dir.mkdir()
        self.port = free_port()
        self.user = getpass.getuser()
        for name in ("host_key", "client_key", "impostor_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)], check=True)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        (self.dir / "authorized_keys").chmod(0o600)
        (self.dir / "known_hosts").write_text(self._known("host_key"))
        (self.dir / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.dir / 'host_key'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
            "PidFile none", "SetEnv SHLVL=5", ""]))
        self.proc: subprocess.Popen | None = None

    def _known(self, key: str, port: int | None = None) -> str:
        kind, blob = (self.dir / f"{key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{port or self.port} {kind} {blob}\n"

    def reached_at(self, port: int) -> None:
        """Trust this host's key on another port too (a proxy in front of it)."""
        with (self.dir / "known_hosts").open("a") as fh:
            fh.write(self._known("host_key", port))

    def start(self) -> GitSSH:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # its privilege separation directory, root's only
        with (self.dir / "sshd.log").open("ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_until(lambda: port_open(self.port), what="sshd listening")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def drop(self) -> None:
        """Stop sshd with every connection it serves, as a host that reboots or fails over (start() again)."""
        assert self.proc is not None
        sessions = _descendants(self.proc.pid)
        self.stop()
        for pid in sessions:  # each connection's sshd is a session of its own: the listener's end does not end it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def restart(self) -> None:
        """drop() and start(): every connection is gone, new ones are served."""
        self.drop()
        self.start()

    def handshakes(self) -> int:
        """Connections that authenticated so far (each one a full key exchange)."""
        return (self.dir / "sshd.log").read_text(errors="replace").count("Accepted publickey")

    def url(self, bare: Path, port: int | None = None) -> str:
        return f"ssh://{self.user}@127.0.0.1:{port or self.port}{bare}"

    def client_env(self, known_hosts: str | None = None) -> dict[str, str]:
        """The environment the exporter and applier Deployments set (pinned host key, one identity)."""
        if known_hosts is not None:
            (self.dir / "known_hosts").write_text(known_hosts)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBEDR_", "SSH_"))}
        env["GIT_SSH_COMMAND"] = (f"ssh -i {self.dir / 'client_key'} -o IdentitiesOnly=yes "
                                  f"-o UserKnownHostsFile={self.dir / 'known_hosts'} -o StrictHostKeyChecking=yes "
                                  "-o BatchMode=yes")
        return env

    def impostor_known_hosts(self) -> str:
        """A known_hosts that pins another key: what a man in the middle would look like."""
        return self._known("impostor_key")


def _descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            parents[int(entry)] = int(stat[1])
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def masters(directory: Path) -> list[int]:
    """The ssh master connections whose control sockets live below directory (a kubedr process's $TMPDIR)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if entry.isdigit() and str(directory).encode() in cmdline and b"[mux]" in cmdline:
            found.append(int(entry))
    return found
