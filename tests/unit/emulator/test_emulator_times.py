"""Time and MicroTime fields stored as the Go types encode them back; a MicroTime without six digits is a 400."""

from __future__ import annotations

import pytest

from kubedr.emulator import times
from kubedr.emulator.errors import ApiError
from kubedr.emulator.server import bootstrap
from kubedr.emulator.store import ClusterStore


@pytest.fixture
def store() -> ClusterStore:
    s = ClusterStore(history=50)
    bootstrap(s)
    return s


def _lease(name: str, **spec: str) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"holderIdentity": "a", **spec}}


@pytest.mark.parametrize("sent,stored", [
    ("2026-11-24T19:50:21.123456Z", "2026-11-24T19:50:21.123456Z"),
    ("2026-11-24T19:50:21.123456+00:00", "2026-11-24T19:50:21.123456Z"),
    ("2026-11-24T21:50:21.000001+02:00", "2026-11-24T19:50:21.000001Z"),
    ("2026-11-25T00:20:21.500000+04:30", "2026-11-24T19:50:21.500000Z"),
])
def test_micro_time_normalised_to_utc_with_six_digits(sent, stored):
    assert times.normalise(sent, "micro") == stored


@pytest.mark.parametrize("sent", ["2026-11-24T19:50:21Z", "2026-11-24T19:50:21+00:00", "2026-11-24T19:50:21.123Z",
                                  "2026-11-24T19:50:21.1234567Z", "2026-11-24 19:50:21.123456Z", "yesterday"])
def test_micro_time_go_would_not_parse(sent):
    assert times.normalise(sent, "micro") is None


def test_time_drops_fractions_and_offsets():
    assert times.normalise("2026-11-24T20:50:21.987+01:00", "time") == "2026-11-24T19:50:21Z"
    assert times.normalise("2026-11-24T19:50:21Z", "time") == "2026-11-24T19:50:21Z"
    assert times.normalise("2026-11-24", "time") is None


def test_paths_come_from_the_schema():
    assert dict(times.time_paths("coordination.k8s.io/v1", "Lease")) == {
        ("spec", "acquireTime"): "micro", ("spec", "renewTime"): "micro"}
    deployment = dict(times.time_paths("apps/v1", "Deployment"))
    assert deployment[("status", "conditions", "[]", "lastTransitionTime")] == "time"
    assert times.time_paths("example.com/v1", "Widget") == ()


def test_lease_writes_store_what_the_real_server_stores(store):
    lease = store.create(_lease("l", acquireTime="2026-11-24T19:50:21.123456+00:00",
                                renewTime="2026-11-24T19:50:21.123456+00:00"))
    assert lease["spec"]["renewTime"] == "2026-11-24T19:50:21.123456Z"
    # the same instant in another spelling is no change at all
    same = store.patch("coordination.k8s.io/v1", "Lease", "l",
                       {"spec": {"renewTime": "2026-11-24T20:50:21.123456+01:00"}}, namespace="default")
    assert same["metadata"]["resourceVersion"] == lease["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as exc:
        store.patch("coordination.k8s.io/v1", "Lease", "l", {"spec": {"renewTime": "2026-11-24T19:50:22+00:00"}},
                    namespace="default")
    assert exc.value.status == 400 and 'cannot be handled as a Lease: parsing time "2026-11-24T19:50:22+00:00"' \
        in exc.value.message
    with pytest.raises(ApiError):
        store.create(_lease("bad", renewTime="2026-11-24T19:50:21Z"))
    assert store.get("coordination.k8s.io/v1", "Lease", "l", "default")["spec"]["renewTime"] == \
        "2026-11-24T19:50:21.123456Z"
