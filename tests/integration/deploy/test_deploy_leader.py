"""Leader election on a Lease, against the API emulator over HTTP: one leader, takeover, release, step-down."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY

from kubedr import kube, leader
from tests.conftest import wait_until

FAST = leader.Timing(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)
NS, NAME = "default", "kubedr-test"


@pytest.fixture
def kubeconfig(emulator: Any, tmp_path: Path) -> str:
    return str(emulator.write_kubeconfig(tmp_path / "leader-kubeconfig"))


def read_lease(kubeconfig: str, name: str = NAME) -> dict[str, Any]:
    api = kube.api_client(kubeconfig)
    resp = leader.client.CoordinationV1Api(api).read_namespaced_lease(name, NS, _preload_content=False)
    return json.loads(resp.data)


class Candidate:
    """A process-like candidate: acquire, then renew until told to stop (optionally without releasing)."""

    def __init__(self, kubeconfig: str, identity: str, timing: leader.Timing = FAST) -> None:
        self.elector = leader.LeaderElector(kube.api_client(kubeconfig), NS, NAME, identity, timing)
        self.stop = threading.Event()
        self.leading = threading.Event()
        self.lost = threading.Event()
        self.release = True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if not self.elector.acquire(self.stop):
            return
        self.leading.set()
        if not self.elector.renew(self.stop):
            self.lost.set()
        self.leading.clear()
        if self.release and not self.lost.is_set():
            self.elector.release()

    def __enter__(self) -> Candidate:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def two(kubeconfig: str) -> Iterator[tuple[Candidate, Candidate]]:
    with Candidate(kubeconfig, "pod-a") as a, Candidate(kubeconfig, "pod-b") as b:
        yield a, b


def test_one_of_two_leads_and_the_lease_says_so(kubeconfig: str, two) -> None:
    a, b = two
    wait_until(lambda: a.leading.is_set() or b.leading.is_set(), what="a leader")
    first, second = (a, b) if a.leading.is_set() else (b, a)
    # several renewals later the other one still waits
    renewed = read_lease(kubeconfig)["spec"]["renewTime"]
    wait_until(lambda: read_lease(kubeconfig)["spec"]["renewTime"] != renewed, what="a renewal")
    assert not second.leading.is_set()
    spec = read_lease(kubeconfig)["spec"]
    assert spec["holderIdentity"] == first.elector.identity
    assert spec["leaseDurationSeconds"] == 2
    assert spec["leaseTransitions"] == 0
    assert leader.parse_micro_time(spec["renewTime"]) >= leader.parse_micro_time(spec["acquireTime"])
    assert second.elector.leader == first.elector.identity


def test_the_spare_takes_over_when_the_leader_stops_renewing(kubeconfig: str, two) -> None:
    a, b = two
    wait_until(lambda: a.leading.is_set() or b.leading.is_set(), what="a leader")
    first, second = (a, b) if a.leading.is_set() else (b, a)
    before = read_lease(kubeconfig)["spec"]
    first.release = False          # a crash: no release, the lease must expire
    first.stop.set()
    first.thread.join(5)
    stopped = time.monotonic()
    wait_until(second.leading.is_set, timeout=10, what="takeover")
    took = time.monotonic() - stopped
    # not before the lease expired on the spare's clock, and promptly after
    assert 0.5 < took < FAST.lease_duration + 4 * FAST.retry_period + 1, took
    after = read_lease(kubeconfig)["spec"]
    assert after["holderIdentity"] == second.elector.identity
    assert after["leaseTransitions"] == before["leaseTransitions"] + 1
    assert after["acquireTime"] != before["acquireTime"]


def test_release_hands_over_at_once(kubeconfig: str, two) -> None:
    a, b = two
    wait_until(lambda: a.leading.is_set() or b.leading.is_set(), what="a leader")
    first, second = (a, b) if a.leading.is_set() else (b, a)
    first.stop.set()
    first.thread.join(5)
    released = time.monotonic()
    wait_until(second.leading.is_set, timeout=10, what="takeover after release")
    assert time.monotonic() - released < FAST.lease_duration - 0.5   # faster than waiting for expiry
    assert read_lease(kubeconfig)["spec"]["holderIdentity"] == second.elector.identity


def test_leader_steps_down_when_another_holder_appears(kubeconfig: str) -> None:
    lost = threading.Event()
    api = kube.api_client(kubeconfig)
    with leader.elected(api, NS, NAME, "pod-a", FAST, on_lost=lost.set) as lead:
        lease = read_lease(kubeconfig)
        lease["spec"]["holderIdentity"] = "intruder"
        leader.client.CoordinationV1Api(api).replace_namespaced_lease(NAME, NS, lease)
        wait_until(lead.lost.is_set, timeout=5, what="step-down")
        assert lost.is_set()
    assert read_lease(kubeconfig)["spec"]["holderIdentity"] == "intruder"   # no release of a lost lease


class Partition:
    """A TCP relay in front of the API server; cut() drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.cut_off = False
        self.frozen = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_off:
            try:
                client_sock, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client_sock, upstream]
            for a, b in ((client_sock, upstream), (upstream, client_sock)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.frozen:          # frozen: bytes vanish, connections stay open (a black hole)
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept()
        self.listener.close()
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def through_relay(kubeconfig: str, tmp_path: Path) -> tuple[Partition, str]:
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    server = urlsplit(cfg["clusters"][0]["cluster"]["server"])
    relay = Partition((server.hostname, server.port))
    cfg["clusters"][0]["cluster"]["server"] = f"{server.scheme}://{server.hostname}:{relay.port}"
    via_relay = tmp_path / "relay-kubeconfig"
    via_relay.write_text(yaml.safe_dump(cfg))
    return relay, str(via_relay)


def test_leader_steps_down_before_the_lease_expires_when_the_api_hangs(kubeconfig: str, tmp_path: Path) -> None:
    """Requests that never answer must not hold the leader past the renew deadline (timeouts are bounded)."""
    relay, via_relay = through_relay(kubeconfig, tmp_path)
    with leader.elected(kube.api_client(via_relay), NS, NAME, "pod-a", FAST) as lead:
        relay.frozen = True
        frozen = time.monotonic()
        wait_until(lead.lost.is_set, timeout=10, what="step-down")
        assert time.monotonic() - frozen < FAST.lease_duration
    relay.cut()


def test_leader_steps_down_within_the_renew_deadline_when_the_api_is_gone(kubeconfig: str, tmp_path: Path) -> None:
    relay, via_relay = through_relay(kubeconfig, tmp_path)
    with leader.elected(kube.api_client(via_relay), NS, NAME, "pod-a", FAST) as lead:
        relay.cut()
        gone = time.monotonic()
        wait_until(lead.lost.is_set, timeout=10, what="step-down")
        # stepped down before the lease could have expired for anyone else
        assert time.monotonic() - gone < FAST.lease_duration
    assert read_lease(kubeconfig)["spec"]["holderIdentity"] == "pod-a"   # nobody could release it


def test_stop_while_waiting_raises_not_elected(kubeconfig: str) -> None:
    with Candidate(kubeconfig, "pod-a") as a:
        wait_until(a.leading.is_set, what="a leads")
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        with pytest.raises(leader.NotElected):
            with leader.elected(kube.api_client(kubeconfig), NS, NAME, "pod-b", FAST, stop=stop):
                pytest.fail("pod-b must not lead while pod-a renews")


def test_kubectl_sees_the_lease(kubeconfig: str, kubectl: str) -> None:
    with Candidate(kubeconfig, "pod-a") as a:
        wait_until(a.leading.is_set, what="a leads")
        out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "-n", NS, "get", "lease", NAME, "-o", "json"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        assert json.loads(out)["spec"]["holderIdentity"] == "pod-a"


def test_run_elected_from_cli_flags_and_env(kubeconfig: str, monkeypatch) -> None:
    from kubedr import config

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("export")
    leader.add_arguments(p, "kubedr-exporter")
    monkeypatch.setenv("KUBEDR_LEADER_ELECT", "true")
    monkeypatch.setenv("KUBEDR_LEADER_ELECTION_NAMESPACE", NS)
    monkeypatch.setenv("KUBEDR_LEADER_ELECTION_IDENTITY", "pod-x")
    argv = ["export", "--leader-election-lease-duration", "2", "--leader-election-renew-deadline", "1.5",
            "--leader-election-retry-period", "0.2"]
    args = parser.parse_args(argv)
    args.config = None
    config.apply_defaults(parser, args, argv)
    assert args.leader_elect is True and args.leader_election_name == "kubedr-exporter"

    seen: list[Any] = []
    label = {"lease": f"{NS}/kubedr-exporter"}
    released = REGISTRY.get_sample_value("kubedr_leader_transitions_total", {**label, "event": "released"}) or 0

    def work(stop: threading.Event) -> int:
        seen.append(read_lease(kubeconfig, "kubedr-exporter")["spec"]["holderIdentity"])
        seen.append(REGISTRY.get_sample_value("kubedr_leader_is_leader", label))
        return 7

    assert leader.run_elected(leader.options_from(args), lambda: kube.api_client(kubeconfig), work) == 7
    assert seen == ["pod-x", 1.0]
    assert REGISTRY.get_sample_value("kubedr_leader_is_leader", label) == 0
    assert REGISTRY.get_sample_value("kubedr_leader_transitions_total", {**label, "event": "released"}) == released + 1
    # released on the way out: the next candidate need not wait for expiry
    spec = read_lease(kubeconfig, "kubedr-exporter")["spec"]
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1


def test_without_leader_elect_work_just_runs() -> None:
    assert leader.run_elected(leader.Options(), lambda: pytest.fail("no API needed"), lambda stop: 3) == 3


def test_micro_time_round_trips() -> None:
    text = leader.micro_time(1700000000.123456)
    assert text == "2023-11-14T22:13:20.123456Z"
    assert abs(leader.parse_micro_time(text) - 1700000000.123456) < 1e-6
    with pytest.raises(ValueError):
        leader.Timing(lease_duration=1, renew_deadline=2, retry_period=0.5)


def test_a_waiting_spare_is_ready_and_the_leader_is_ready_when_its_work_is(kubeconfig: str) -> None:
    """/readyz wrapped with leader.readiness: a rollout or drain is never blocked by the spare."""
    check = leader.readiness(lambda: False)            # the work itself never becomes ready in this test
    assert check() is False                            # no election in this process: the work decides
    args = argparse.Namespace(leader_elect=True, leader_election_namespace=NS, leader_election_name=NAME,
                              leader_election_identity="pod-b", leader_election_lease_duration=2.0,
                              leader_election_renew_deadline=1.5, leader_election_retry_period=0.2)
    seen: list[bool] = []

    def work(stop: threading.Event) -> int:
        seen.append(check())
        return 0

    with Candidate(kubeconfig, "pod-a") as a:
        wait_until(a.leading.is_set, what="pod-a leads")
        spare = threading.Thread(target=leader.run_elected, args=(leader.options_from(args), lambda: kube.api_client(kubeconfig), work))
        spare.start()
        wait_until(check, what="the waiting spare reports ready")
        assert not seen                                 # still waiting: pod-a holds the Lease
    spare.join(10)                                      # pod-a released; pod-b led, ran its work, released
    assert seen == [False]                              # as leader, readiness is the work's own
    assert check() is False

