"""Push access is not this machine: a hostile commit never makes the exporter publish a local file, adopt a host
file as its policy, or stop. Symbolic links and names git refuses are named once, never read, and dropped by the
exporter's next (signed) commit, while it goes on exporting: the real exporter process, real git, ssh-keygen, age."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from exporter_harness import alive, all_objects, remote_files, spawn

from kubedr.commands.cli import main
from tests.conftest import run_git, wait_until
from tests.sshkeys import allowed_signers, make_key, verify_commit

LINK, FILE, DIR = "120000", "100644", "040000"


def cm(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
            "data": {"v": value}}


def _entries(remote: Path, tree: str) -> list[tuple[str, str, bytes]]:
    """(mode, id, raw name) of one tree, as git stores it."""
    out = subprocess.run(["git", "ls-tree", "-z", tree], cwd=remote, capture_output=True, check=True).stdout
    rows = []
    for record in out.split(b"\0"):
        if record:
            meta, name = record.split(b"\t", 1)
            mode, _, oid = meta.decode().split()
            rows.append((mode, oid, name))
    return rows


def _tree(remote: Path, entries: list[tuple[str, str, bytes]]) -> str:
    """A tree object exactly as given, whatever git's rules say (as `git hash-object --literally` lets anyone)."""
    def key(e: tuple[str, str, bytes]) -> bytes:
        return e[2] + (b"/" if e[0] == DIR else b"")
    raw = b"".join(f"{int(m, 8):o} ".encode() + n + b"\0" + bytes.fromhex(o) for m, o, n in sorted(entries, key=key))
    return subprocess.run(["git", "hash-object", "-t", "tree", "-w", "--literally", "--stdin"], cwd=remote,
                          input=raw, capture_output=True, check=True).stdout.decode().strip()


def _with(remote: Path, tree: str, folder: list[bytes], add: list[tuple[str, bytes, bytes]]) -> str:
    """tree with (mode, name, content) entries added (replacing same names) in the directory folder."""
    rows = _entries(remote, tree)
    if folder:
        sub = next(o for m, o, n in rows if n == folder[0] and m == DIR)
        rows = [r for r in rows if r[2] != folder[0]] + [(DIR, _with(remote, sub, folder[1:], add), folder[0])]
        return _tree(remote, rows)
    names = {name for _, name, _ in add}
    blobs = [(mode, subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=remote, input=content,
                                   capture_output=True, check=True).stdout.decode().strip(), name)
             for mode, name, content in add]
    return _tree(remote, [r for r in rows if r[2] not in names] + blobs)


def push_hostile(remote: Path, changes: dict[str, list[tuple[str, bytes, bytes]]], message: str) -> str:
    """A commit on the branch (made in the remote itself, as a push would land it) adding these entries per folder."""
    head = run_git("rev-parse", "main", cwd=remote).strip()
    tree = run_git("rev-parse", f"{head}^{{tree}}", cwd=remote).strip()
    for folder, add in changes.items():
        tree = _with(remote, tree, [p.encode() for p in folder.split("/") if p], add)
    sha = subprocess.run(["git", "-c", "user.name=intruder", "-c", "user.email=i@example.com", "commit-tree", tree,
                          "-p", head, "-m", message], cwd=remote, capture_output=True, check=True).stdout.decode().strip()
    run_git("update-ref", "refs/heads/main", sha, head, cwd=remote)
    return sha


def _hostile_paths(remote: Path) -> list[str]:
    """Entries of the branch's tree that are links or submodules, or whose name is '..' (git's own listing)."""
    out = subprocess.run(["git", "ls-tree", "-r", "-t", "-z", "main"], cwd=remote, capture_output=True,
                         check=True).stdout.decode(errors="replace")
    bad = []
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        if meta.split()[0] in (LINK, "160000") or ".." in path.split("/"):
            bad.append(path)
    return bad


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def _dropped_and_going_on(primary, remote: Path, proc: subprocess.Popen, log: Path,
                          attack: dict[str, list[tuple[str, bytes, bytes]]], name: str) -> str:
    """Push the attack; wait until the branch holds none of it and a new ConfigMap was exported: its sha."""
    running = alive(proc, log)
    wait_until(running(lambda: "shop/ConfigMap/a.yaml" in remote_files(remote)), timeout=30, what="first export")
    bad = push_hostile(remote, attack, f"hostile {name}")
    wait_until(running(lambda: not _hostile_paths(remote)), timeout=30, what="the entries dropped from the branch")
    primary.api.create(cm(name, "1"))
    wait_until(running(lambda: f"shop/ConfigMap/{name}.yaml" in remote_files(remote)), timeout=30,
               what=f"exporting goes on ({name})")
    return bad


def test_symlinks_to_the_exporters_keys_and_a_host_policy_publish_nothing(primary, git_remote: Path,
                                                                         tmp_path: Path) -> None:
    key = make_key(tmp_path, "exporter")
    subprocess.run(["age-keygen", "-o", str(tmp_path / "age.key")], check=True, capture_output=True)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(subprocess.run(["age-keygen", "-y", str(tmp_path / "age.key")], check=True,
                                         capture_output=True, text=True).stdout)
    digest = tmp_path / "digest.key"
    digest.write_text("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n")
    host_policy = tmp_path / "host-policy.yaml"
    host_policy.write_text("export:\n  exclude_kinds: [ConfigMap]  # host-policy-marker\n")
    assert main(["init", "--repo", str(git_remote)]) == 0
    primary.api.create(cm("a", "1"))
    log = tmp_path / "exporter.log"
    flags = ("--namespaces", "shop", "--signing-key", str(key), "--recipients-file", str(recipients),
             "--digest-key-file", str(digest), "--remote-check-interval", "0.2s")
    secrets = [ln for ln in key.read_text().splitlines() if not ln.startswith("-----")]
    secrets += [digest.read_text().strip(), "host-policy-marker"]
    attack = {"": [(LINK, b"README.md", str(key).encode()), (LINK, b".gitattributes", str(digest).encode())],
              ".kubedr": [(LINK, b"policy.yaml", str(host_policy).encode())],
              "shop/ConfigMap": [(LINK, b"a.yaml", str(key).encode())]}
    refused = ["README.md", ".gitattributes", ".kubedr/policy.yaml", "shop/ConfigMap/a.yaml"]
    proc = spawn(primary, git_remote, tmp_path / "clone", log, *flags)
    try:
        bad = _dropped_and_going_on(primary, git_remote, proc, log, attack, "b")
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    for path in refused:
        assert len(re.findall(rf"refused {re.escape(path)} in main at {bad[:12]}: a symbolic link; never read", text)) == 1

    # the same attack again while it is down: the restart's resync (where the keys leaked) drops it as well
    again = push_hostile(git_remote, attack, "docs again")
    assert main(["--log-level", "INFO", "export", "--kubeconfig", str(primary.kubeconfig_path), "--repo",
                 str(git_remote), "--workdir", str(tmp_path / "clone"), "--cluster-name", "prod", *flags, "--once"]) == 0
    files = remote_files(git_remote)
    assert not _hostile_paths(git_remote) and {"README.md", ".gitattributes", ".kubedr/policy.yaml"}.isdisjoint(files)
    assert "v: '1'" in files["shop/ConfigMap/a.yaml"] and "shop/ConfigMap/b.yaml" in files  # no host policy adopted
    everything = all_objects(git_remote)
    assert [s for s in secrets if s.encode() in everything] == []
    signers = allowed_signers(tmp_path / "allowed_signers", exporter=key)
    for sha in run_git("rev-list", f"{again}..main", cwd=git_remote).split() + [run_git("rev-parse", "main",
                                                                                          cwd=git_remote).strip()]:
        assert verify_commit(git_remote, sha, signers).returncode == 0, sha


def test_an_entry_named_dotdot_is_refused_and_the_exporter_keeps_running(primary, git_remote: Path,
                                                                         tmp_path: Path) -> None:
    primary.api.create(cm("a", "1"))
    log = tmp_path / "exporter.log"
    flags = ("--namespaces", "shop", "--remote-check-interval", "0.2s")
    proc = spawn(primary, git_remote, tmp_path / "clone", log, *flags)
    attack = {"": [(FILE, b"..", b"x\n")], "shop/ConfigMap": [(FILE, b"..", b"y\n")]}
    try:
        bad = _dropped_and_going_on(primary, git_remote, proc, log, attack, "c")
        assert _stop(proc) == 0
        push_hostile(git_remote, attack, "dots while it is down")
        proc = spawn(primary, git_remote, tmp_path / "clone", log, *flags)  # it used to stop here, at start
        wait_until(alive(proc, log)(lambda: not _hostile_paths(git_remote)), timeout=30, what="dropped at start")
        _dropped_and_going_on(primary, git_remote, proc, log, attack, "d")  # and while running once more
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert f"refused .. in main at {bad[:12]}: the name '..', which git refuses; never read" in text
    assert f"refused shop/ConfigMap/.. in main at {bad[:12]}" in text
    assert "resolve by hand" not in text and "Traceback" not in text
