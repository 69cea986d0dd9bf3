"""Two exporters of one cluster on one remote without leader election: the cluster is the truth, so neither ever
stops on the other's commits; both keep running, nothing is force-pushed, and the remote ends equal to the cluster.

The conflict a rebase could not resolve is made on purpose: exporter A's pushes are cut off (its remote path is a
link, removed) while it commits x=2 then x=3, and B, stopped meanwhile, comes back and pushes x=3 in one commit."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from exporter_harness import expected_configmaps, remote_files, spawn

from tests.conftest import run_git, wait_until

FLAGS = ("--namespaces", "shop", "--remote-check-interval", "0.2s")


def cm(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
            "data": {"v": value}}


def _set(api, name: str, value: str) -> None:
    live = api.get("v1", "ConfigMap", name, "shop")
    live["data"] = {"v": value}
    api.update(live)


def _local(clone: Path, path: str) -> str:
    """The file at path in an exporter's own clone (its commits, pushed or not)."""
    return subprocess.run(["git", "--git-dir", str(clone / ".git"), "show", f"main:{path}"], capture_output=True,
                          text=True).stdout


class Pair:
    """Exporter A reaches the remote through a link that can be cut; exporter B reaches it directly."""

    def __init__(self, primary, remote: Path, tmp_path: Path, a_sees: Path | None = None) -> None:
        self.primary, self.remote, self.tmp = primary, remote, tmp_path
        self.link = tmp_path / "via-link.git"
        self.link.symlink_to(a_sees or remote)
        self.logs = {"a": tmp_path / "a.log", "b": tmp_path / "b.log"}
        self.procs: dict[str, subprocess.Popen] = {}
        self.heads: list[str] = []  # the remote's branch as seen along the way

    def start(self, name: str) -> None:
        target = self.link if name == "a" else self.remote
        self.procs[name] = spawn(self.primary, target, self.tmp / f"clone-{name}", self.logs[name], *FLAGS)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(30)

    def running(self, cond):
        def probe() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"exporter {name} exited with {proc.returncode}:\n"
                                         f"{self.logs[name].read_text()[-3000:]}")
            return bool(cond())
        return probe

    def converged(self) -> bool:
        files = {p: t for p, t in remote_files(self.remote).items() if p.startswith("shop/ConfigMap/")}
        if files != expected_configmaps(self.primary.api):
            return False
        self.heads.append(run_git("rev-parse", "main", cwd=self.remote).strip())
        return True

    def wait_converged(self, what: str) -> None:
        wait_until(self.running(self.converged), timeout=60, what=what)

    def a_commits(self, path: str, text: str) -> None:
        wait_until(self.running(lambda: text in _local(self.tmp / "clone-a", path)), timeout=30,
                   what=f"exporter A committing {text!r} to {path} locally")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_two_exporters_keep_running_and_the_remote_ends_equal_to_the_cluster(primary, git_remote: Path,
                                                                             tmp_path: Path) -> None:
    api = primary.api
    for i in range(5):
        api.create(cm(f"x{i}", "1"))
    pair = Pair(primary, git_remote, tmp_path)
    try:
        pair.start("a")
        pair.wait_converged("A's first export")
        pair.start("b")  # after A's first push: B takes A's history (first commits of both: the next test)
        wait_until(pair.running(lambda: "exporting to" in pair.logs["b"].read_text()), timeout=30, what="B started")

        # 1. A, cut off, commits x0=2 and x0=3; B, restarted meanwhile, pushes x0=3 (and x1's deletion) in one
        pair.link.unlink()
        pair.stop("b")
        _set(api, "x0", "2")
        pair.a_commits("shop/ConfigMap/x0.yaml", "v: '2'")
        _set(api, "x0", "3")
        api.delete("v1", "ConfigMap", "x1", "shop")
        pair.a_commits("shop/ConfigMap/x0.yaml", "v: '3'")
        pair.start("b")
        wait_until(pair.running(lambda: "v: '3'" in remote_files(git_remote).get("shop/ConfigMap/x0.yaml", "")),
                   timeout=30, what="B's resync on the remote")
        pair.link.symlink_to(git_remote)  # A's pusher meets commits its own conflict with
        wait_until(pair.running(lambda: "made 2 unpushed local commit(s) again" in pair.logs["a"].read_text()),
                   timeout=30, what="A making its commits again on B's")
        pair.wait_converged("the remote equal to the cluster after A's push")

        # 2. the same conflict left in A's clone by a kill: A starts (it used to exit 1 here, a restart loop)
        pair.link.unlink()
        pair.stop("b")
        _set(api, "x2", "2")
        pair.a_commits("shop/ConfigMap/x2.yaml", "v: '2'")
        _set(api, "x2", "3")
        pair.a_commits("shop/ConfigMap/x2.yaml", "v: '3'")
        pair.stop("a", signal.SIGKILL)
        pair.start("b")
        wait_until(pair.running(lambda: "v: '3'" in remote_files(git_remote).get("shop/ConfigMap/x2.yaml", "")),
                   timeout=30, what="B's resync on the remote")
        pair.link.symlink_to(git_remote)
        pair.start("a")
        api.create(cm("after-restart", "1"))
        pair.wait_converged("the remote equal to the cluster after A's restart")

        # 3. both running, both pushing: the remote follows the cluster through a burst of changes
        for i in range(60):
            _set(api, f"x{i % 5}" if i % 5 != 1 else "x0", str(100 + i))
        pair.wait_converged("the remote equal to the cluster after the burst")
        for name in ("a", "b"):
            assert pair.procs[name].poll() is None, f"exporter {name} stopped"
    finally:
        pair.close()
    final = pair.heads[-1]
    for head in pair.heads:  # never a force-push: every head the remote showed is in the final history
        assert subprocess.run(["git", "merge-base", "--is-ancestor", head, final], cwd=git_remote).returncode == 0
    for log in pair.logs.values():
        text = log.read_text()
        assert "resolve by hand" not in text and "Traceback" not in text


def test_an_exporter_whose_history_is_unrelated_to_the_remotes_takes_the_remotes(primary, git_remote: Path,
                                                                                  tmp_path: Path) -> None:
    """Both made a first commit (a race on an empty remote, or the remote re-created under one of them): the
    one whose push is refused takes the remote's history and writes the cluster's state onto it."""
    api = primary.api
    api.create(cm("x0", "1"))
    elsewhere = tmp_path / "elsewhere.git"
    run_git("init", "--bare", "-q", "-b", "main", str(elsewhere))
    pair = Pair(primary, git_remote, tmp_path, a_sees=elsewhere)
    try:
        pair.start("a")
        wait_until(pair.running(lambda: "shop/ConfigMap/x0.yaml" in remote_files(elsewhere)), timeout=30,
                   what="A's first commit, elsewhere")
        pair.start("b")
        pair.wait_converged("B's first commit")
        pair.link.unlink()
        pair.link.symlink_to(git_remote)
        _set(api, "x0", "2")
        api.create(cm("x1", "1"))
        wait_until(pair.running(lambda: "holds history unrelated" in pair.logs["a"].read_text()), timeout=30,
                   what="A meeting B's history")
        pair.wait_converged("the remote equal to the cluster")
        assert all(proc.poll() is None for proc in pair.procs.values())
    finally:
        pair.close()
    assert subprocess.run(["git", "merge-base", "--is-ancestor", pair.heads[0], pair.heads[-1]],
                          cwd=git_remote).returncode == 0  # B's history kept: nothing force-pushed
