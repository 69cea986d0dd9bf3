"""Fixtures for the snapshot tests: real etcd per test, age keys, and an S3 endpoint (moto) per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from snapshot_harness import RELEASES, AgeKeys, Etcd, make_age_keys, release_path, start_etcd

from tests.conftest import free_port


@pytest.fixture(params=sorted(RELEASES))
def etcd_release(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per etcd release (3.4: etcdctl restores, 3.5: etcdutl): only its tools on PATH.
    List it before the fixtures that start etcd."""
    monkeypatch.setenv("PATH", release_path(request.param, tmp_path / f"etcd-{request.param}"))
    return str(request.param)


@pytest.fixture
def etcd_factory(tmp_path: Path) -> Iterator[Callable[..., Etcd]]:
    """Start as many etcd members as a test needs; all are stopped at the end."""
    started: list[Etcd] = []

    def make(**kw: object) -> Etcd:
        e = start_etcd(tmp_path, **kw)  # type: ignore[arg-type]
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def etcd_server(etcd_factory: Callable[..., Etcd]) -> Etcd:
    return etcd_factory()


@pytest.fixture
def age_keys(tmp_path: Path) -> AgeKeys:
    return make_age_keys(tmp_path / "age-identity.txt")


@pytest.fixture
def other_age_keys(tmp_path: Path) -> AgeKeys:
    return make_age_keys(tmp_path / "other-identity.txt")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server over HTTP on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
