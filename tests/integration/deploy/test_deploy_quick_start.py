"""The README's quick start, run as written (its marked blocks), on two emulators: a signed pair with roles.

Only what must differ on a shared test machine is changed: HOME (so `~/.kube/primary` is the emulator's
kubeconfig and `~/.cache` is the test's) and the metrics ports (`:9090` -> a free loopback port).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, wait_until

MARK = "<!-- quick-start -->"
ASSIGNMENT = re.compile(r"^([A-Z_]+)=(\S+)$")


def blocks(text: str) -> list[list[str]]:
    """The commands of each bash block after a quick-start mark: continuations joined, comments dropped."""
    out = []
    for part in text.split(MARK)[1:]:
        body = part.split("```bash\n", 1)[1].split("```", 1)[0]
        commands, pending = [], ""
        for raw in body.splitlines():
            line = re.sub(r"\s+#\s.*$", "", raw).rstrip()  # a trailing comment
            pending += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\") and pending.strip():
                commands.append(" ".join(pending.split()))
                pending = ""
        out.append(commands)
    return out


def test_the_blocks_are_found_and_read_as_commands() -> None:
    found = blocks((ROOT / "README.md").read_text())
    assert [len(b) for b in found] == [7, 3, 2, 5]
    assert found[0][5] == 'echo "exporter@kubedr namespaces=\\"git\\" $(cat signing_key.pub)" > allowed_signers'
    assert found[1][0] == "git init -q --bare -b main cluster-config.git"
    assert found[2][1].endswith("--signing-key signing_key --metrics-listen :9090 &")


@pytest.fixture
def clusters(tmp_path: Path) -> Any:
    """Two emulators whose kubeconfigs are where the quick start reads them (HOME is the test's)."""
    from kubedr.emulator.server import Emulator

    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    emus = {name: Emulator().start() for name in ("primary", "secondary")}
    for name, emu in emus.items():
        emu.write_kubeconfig(home / ".kube" / name)
    api = emus["primary"].api
    for ns in ("shop", "payments"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
                "data": {"color": "blue"}})
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "payments"},
                "type": "Opaque", "data": {"password": base64.b64encode(b"s3cret").decode()}})
    yield home, emus
    for emu in emus.values():
        emu.stop()


def _get(emu: Any, api_version: str, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return emu.api.get(api_version, kind, name, ns)
    except Exception:  # noqa: BLE001 - not there yet
        return None


def test_the_quick_start_gives_a_signed_pair_with_roles(clusters: Any, tmp_path: Path) -> None:
    home, emus = clusters
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEDR_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", PYTHONUNBUFFERED="1")
    ports = {p: free_port() for p in (":9090", ":9091", ":9092")}
    daemons: list[tuple[subprocess.Popen, Path]] = []
    ran = []
    try:
        for command in (c for block in blocks((ROOT / "README.md").read_text()) for c in block):
            for port, free in ports.items():
                command = command.replace(f"--metrics-listen {port}", f"--metrics-listen 127.0.0.1:{free}")
            assigned = ASSIGNMENT.match(command)
            if assigned:  # R=$PWD/...: later commands see it, as in the operator's shell
                env[assigned[1]] = subprocess.run(["bash", "-c", f'printf %s "{assigned[2]}"'], cwd=work, env=env,
                                                  capture_output=True, text=True, check=True).stdout
                continue
            if command.endswith("&"):
                log = tmp_path / f"daemon-{len(daemons)}.log"
                with open(log, "wb") as out:
                    daemons.append((subprocess.Popen(["bash", "-c", "exec " + command[:-1]], cwd=work, env=env,
                                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True),
                                    log))
                continue
            done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=180)
            allowed = {0, 1} if command.startswith("kubedr diff") else {0}  # diff: 1 means "there are changes"
            assert done.returncode in allowed, f"{command}\n{done.stdout}\n{done.stderr}"
            ran.append((command, done))
        primary, secondary = emus["primary"], emus["secondary"]
        assert _get(secondary, "v1", "ConfigMap", "settings", "shop")["data"] == {"color": "blue"}
        secret = _get(secondary, "v1", "Secret", "db", "payments")
        assert secret is not None and base64.b64decode(secret["data"]["password"]) == b"s3cret"

        # a change flows through the running exporter and applier
        primary.api.patch("v1", "ConfigMap", "settings", {"data": {"color": "green"}}, namespace="shop")
        wait_until(lambda: (_get(secondary, "v1", "ConfigMap", "settings", "shop") or {}).get("data") ==
                   {"color": "green"}, timeout=60, what="the change on the secondary")

        # every commit verifies against the quick start's allowed_signers: the init commit with the operator's key
        repo = work / "cluster-config.git"
        signers = f"gpg.ssh.allowedSignersFile={work / 'allowed_signers'}"
        commits = subprocess.run(["git", "--git-dir", str(repo), "rev-list", "--reverse", "main"],
                                 capture_output=True, text=True, check=True).stdout.split()
        for i, sha in enumerate(commits):
            checked = subprocess.run(["git", "--git-dir", str(repo), "-c", signers, "verify-commit", sha],
                                     capture_output=True, text=True)
            assert checked.returncode == 0, (sha, checked.stderr)
            assert f"signature for {'operator' if i == 0 else 'exporter'}@kubedr " in checked.stderr, checked.stderr
        clone = subprocess.run(["git", "clone", "-q", str(repo), str(tmp_path / "clone")], capture_output=True,
                               text=True)
        assert clone.returncode == 0 and "warning" not in clone.stderr, clone.stderr  # the host's HEAD is main

        # the secondary's exporter waits fenced; status reads the roles, fits 120 columns, exits 0
        fenced = daemons[2][1]
        wait_until(lambda: "fenced: the writer is prod-eu-1 (epoch 1), not prod-us-1" in fenced.read_text(),
                   timeout=30, what="the secondary's exporter fenced")
        status = next(done for command, done in ran if command.startswith("kubedr status"))
        assert max(len(line) for line in status.stdout.splitlines()) <= 120, status.stdout
        assert re.search(r"primary +role +writer", status.stdout) and re.search(r"secondary +role +standby",
                                                                               status.stdout), status.stdout
        for proc, log in daemons:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert "Traceback" not in log.read_text()
    finally:
        for proc, _ in daemons:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


# what each runbook command needs on the quick start's signed pair with roles
RUNBOOK_FLAGS = {
    "promote": {"--kubeconfig", "--repo", "--cluster-name", "--identity", "--allowed-signers", "--signing-key",
                "--workdir"},
    "demote": {"--kubeconfig", "--repo", "--cluster-name", "--namespaces", "--recipients-file", "--digest-key-file",
               "--signing-key", "--identity", "--allowed-signers", "--apply-workdir"},
}


def test_the_runbook_promote_and_demote_commands_parse_and_carry_every_flag() -> None:
    import shlex

    from kubedr.commands.cli import build_parser

    text = (ROOT / "docs" / "runbooks.md").read_text()
    commands = [c for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                for c in (" ".join(ln.strip().rstrip("\\") for ln in chunk.splitlines())
                          for chunk in re.split(r"(?<!\\)\n", block))
                if re.match(r"kubedr (promote|demote) --", c)]
    assert len(commands) == 4, commands
    for command in commands:
        argv = shlex.split(re.sub(r"\s+#\s.*$", "", command))[1:]
        name = argv[0]
        build_parser(name).parse_args(argv)  # every flag exists (argparse exits 2 on one that does not)
        assert RUNBOOK_FLAGS[name] <= set(argv), (command, RUNBOOK_FLAGS[name] - set(argv))
