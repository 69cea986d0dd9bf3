"""`kubedr apply --webhook-listen`: the Git host's push webhook starts a fetch at once; a call that is not verified,
or names another branch, starts nothing; with no webhook arriving, polling still converges."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from kubedr.leader import micro_time as leader_time
from tests.conftest import free_port, wait_until
from tests.githook import Announcer, announce
from tests.integration.applier.conftest import cli_env, git
from tests.integration.applier.idle import counting_git, seed_repo

SECRET = b"kubedr-webhook-secret"


class Follower:
    """`kubedr apply` following a git:// remote, its webhook on a loopback port, every git it runs logged."""

    def __init__(self, secondary: Any, url: str, tmp: Path, *extra: str) -> None:
        (tmp / "webhook-secret").write_bytes(SECRET + b"\n")
        self.gits = tmp / "git-calls.log"
        self.webhook, self.metrics = free_port(), free_port()
        self.log = tmp / "apply.log"
        env = {**cli_env(), "PATH": counting_git(tmp / "bin", self.gits, timestamps=True)}  # and POD_* if set
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", secondary.kubeconfig_path, "--repo", url,
                 "--workdir", str(tmp / "applier-work"), "--webhook-listen", f"127.0.0.1:{self.webhook}",
                 "--webhook-secret-file", str(tmp / "webhook-secret"), "--metrics-listen",
                 f"127.0.0.1:{self.metrics}", "--no-drift", *extra], stdout=subprocess.DEVNULL, stderr=log, env=env)
        self.url = f"http://127.0.0.1:{self.webhook}/webhook"

    def timed_calls(self) -> list[tuple[float, str]]:
        """The network commands git ran (fetch, ls-remote) with their start (Unix time), in order."""
        lines = self.gits.read_text().splitlines() if self.gits.exists() else []
        return [(float(line.split()[0]), w) for line in lines for w in line.split()[1:4] if w in ("fetch", "ls-remote")]

    def calls(self) -> list[str]:
        return [w for _, w in self.timed_calls()]

    def counted(self) -> dict[str, float]:
        """kubedr_applier_webhook_requests_total by outcome, summed over senders."""
        text = urllib3.request("GET", f"http://127.0.0.1:{self.metrics}/metrics").data.decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("kubedr_applier_webhook_requests_total{"):
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                out[outcome] = out.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture
def remote(git_daemon, tmp_path: Path) -> tuple[Path, str, Path]:
    """A git:// remote with one commit (Namespace idle, ConfigMap c): (bare repo, URL, a clone to push from)."""
    bare, url = git_daemon("config.git")
    seed_repo(bare, tmp_path / "seed")
    return bare, url, tmp_path / "seed"


@pytest.fixture
def follower(secondary: Any, remote, tmp_path: Path) -> Iterator[Any]:
    started: list[Follower] = []

    def start(*extra: str) -> Follower:
        f = Follower(secondary, remote[1], tmp_path, *extra)
        started.append(f)
        value = lambda: (secondary.api.get("v1", "ConfigMap", "c", "idle") or {}).get("data")  # noqa: E731
        wait_until(lambda: f.proc.poll() is None and _present(value), timeout=60,
                   what=f"the first round; log:\n{f.log.read_text() if f.log.exists() else ''}")
        return f

    yield start
    for f in started:
        f.stop()


def _present(read: Any) -> bool:
    from kubedr.apierrors import NotFound

    try:
        return bool(read())
    except NotFound:
        return False


def _running_git(pid: int) -> bool:
    """Whether process pid has a git child running now."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if entry.name.isdigit() and stat.startswith(f"{entry.name} (git)") and \
                int(stat.rpartition(")")[2].split()[1]) == pid:
            return True
    return False


def _push(work: Path, value: str) -> str:
    (work / "idle" / "ConfigMap" / "c.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: idle\ndata:\n  k: {value}\n")
    git("commit", "-qam", f"k: {value}", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def _value(secondary: Any) -> str:
    return secondary.api.get("v1", "ConfigMap", "c", "idle")["data"]["k"]


def test_a_call_not_verified_or_for_another_branch_starts_nothing(secondary, remote, follower) -> None:
    f = follower("--interval", "2s")
    polls = len(f.calls())
    wait_until(lambda: len(f.calls()) > polls, timeout=10, what="a poll")  # the next one is 2 s away
    polled = f.timed_calls()[-1][0]
    wait_until(lambda: not _running_git(f.proc.pid), timeout=10, what="the poll's ls-remote done")
    sha = _push(remote[2], "pushed")
    assert announce(f.url, SECRET, "github", after=sha, wrong=True)[0] == 401
    assert announce(f.url, SECRET, "gitlab", after=sha, wrong=True)[0] == 401
    assert announce(f.url, SECRET, "gitea", after=sha, wrong=True)[0] == 401
    assert announce(f.url, SECRET, "github", ref="refs/heads/other", after=sha) == (200, "ignored: refs/heads/other"
                                                                                    " is not the followed branch\n")
    assert f.counted() == {"refused": 3, "ignored": 1}
    wait_until(lambda: _value(secondary) == "pushed", timeout=20, what="the push applied by the next poll")
    after = [(t, w) for t, w in f.timed_calls() if t > polled]
    assert after[0][1] == "ls-remote" and after[0][0] - polled > 1.5, after  # the next poll fetched it, no call did


def test_a_verified_push_to_the_followed_branch_is_fetched_at_once(secondary, remote, follower,
                                                                   tmp_path: Path) -> None:
    f = follower("--interval", "1h")  # polling out of the way: only the webhook starts a fetch
    before = len(f.calls())
    announcer = Announcer(remote[0], tmp_path, f.url, SECRET)
    try:
        for i in range(3):
            _push(remote[2], f"n{i}")
            wait_until(lambda i=i: _value(secondary) == f"n{i}", timeout=20, what=f"push {i} applied")
    finally:
        announcer.stop()
    assert announcer.answers == [202, 202, 202]
    assert f.calls()[before:] == ["fetch"] * 3  # one fetch per push, no ls-remote first
    assert f.counted() == {"fetch": 3}


def test_with_webhooks_down_polling_still_converges(secondary, remote, follower) -> None:
    f = follower("--interval", "300ms")
    _push(remote[2], "polled")
    wait_until(lambda: _value(secondary) == "polled", timeout=20, what="the push applied by polling")
    assert f.counted() == {}


def test_the_endpoint_bounds_what_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubedr import webhook

    monkeypatch.setattr(webhook._Handler, "timeout", 0.5)
    pushes: list[str] = []
    server = webhook.serve("127.0.0.1:0", webhook.Receiver(SECRET, "main", pushes.append))
    port = server.server_address[1]
    try:
        http = urllib3.PoolManager(retries=False)
        base = f"http://127.0.0.1:{port}"
        assert http.request("GET", f"{base}/healthz").status == 200
        assert http.request("POST", f"{base}/other", body=b"{}").status == 404
        big = http.request("POST", f"{base}/webhook", body=b"x", headers={
            "Content-Length": str(webhook.MAX_BODY + 1)}, preload_content=True)
        assert big.status == 413
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:  # headers, then nothing
            slow.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert slow.recv(100) == b""  # dropped after the read timeout, nothing answered or started
        assert pushes == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_taken_webhook_port_is_one_line_and_exit_2(secondary, remote, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = subprocess.run(
            [sys.executable, "-m", "kubedr", "apply", "--kubeconfig", secondary.kubeconfig_path, "--repo",
             remote[1], "--workdir", str(tmp_path / "w"), "--webhook-listen", f"127.0.0.1:{taken.getsockname()[1]}",
             "--webhook-secret-file", str(tmp_path / "secret")], capture_output=True, text=True, timeout=60,
            env=cli_env())
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].endswith("the port is taken by another process (give each kubedr process its own port)")


def test_the_webhook_service_routes_to_the_replica_that_leads(secondary, remote, tmp_path: Path, monkeypatch) -> None:
    """The leader labels its pod for the webhook Service; a spare (a stale label from a crash too) does not."""
    from kubedr.applier.routing import LABEL, VALUE

    api = secondary.api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubedr-system"}})
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "applier-0", "namespace": "kubedr-system",
                                                               "labels": {LABEL: VALUE}},  # left by a crashed leader
                "spec": {"containers": [{"name": "applier", "image": "kubedr"}]}})
    api.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "kubedr-applier", "namespace": "kubedr-system"},
                "spec": {"holderIdentity": "applier-1", "leaseDurationSeconds": 3600,
                         "renewTime": leader_time()}})

    def labels() -> dict[str, str]:
        return api.get("v1", "Pod", "applier-0", "kubedr-system")["metadata"].get("labels") or {}

    monkeypatch.setenv("POD_NAME", "applier-0")
    monkeypatch.setenv("POD_NAMESPACE", "kubedr-system")
    f = Follower(secondary, remote[1], tmp_path, "--leader-elect",
                 "--leader-election-identity", "applier-0", "--leader-election-namespace", "kubedr-system")
    try:
        wait_until(lambda: LABEL not in labels(), timeout=30, what="the stale label removed by the spare")
        lease = api.get("coordination.k8s.io/v1", "Lease", "kubedr-applier", "kubedr-system")
        lease["spec"] = {"holderIdentity": "", "leaseDurationSeconds": 1}  # the other replica released it
        api.update(lease)
        wait_until(lambda: labels().get(LABEL) == VALUE, timeout=30, what="the leader's label")
    finally:
        f.stop()
    assert LABEL not in labels()  # stopped: no longer routed here
