"""Small pure pieces: durations, the diff's normalization and rendering, status round trip."""

from __future__ import annotations

import pytest

from kubedr.applier.diff import normalize, unified
from kubedr.applier.status import Failure, Status
from kubedr.durations import DurationError, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("2m", 120.0), ("1.5", 1.5)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(DurationError, match="--interval 'soon': not a duration"):
        parse_duration("soon", "--interval")


def test_normalize_drops_volatile_fields_only() -> None:
    live = {"apiVersion": "v1", "kind": "ConfigMap", "status": {"x": 1},
            "metadata": {"name": "a", "resourceVersion": "7", "managedFields": [], "uid": "u", "labels": {"l": "1"}},
            "data": {"k": "v"}}
    assert normalize(live) == {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "a", "labels": {"l": "1"}}, "data": {"k": "v"}}
    assert normalize(None) is None


def test_unified_diff_headers_and_equal_objects() -> None:
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "old"}}
    b = {**a, "data": {"k": "new"}}
    out = unified("shop/ConfigMap/a.yaml", a, b)
    assert out.startswith("--- live/shop/ConfigMap/a.yaml\n+++ repo/shop/ConfigMap/a.yaml\n")
    assert "-  k: old\n" in out and "+  k: new\n" in out
    assert unified("p", a, dict(a)) == ""
    assert "+kind: ConfigMap" in unified("p", None, a)


def test_status_round_trip() -> None:
    st = Status(commit="c" * 40, commit_time=1700000000, fully_applied="b" * 40, fully_applied_time=1690000000,
                applied_at=1700000005, failures=[Failure("shop/x.yaml", "bad: thing")], settings="s", mode="standby",
                lag=0.25)
    back = Status.from_data(st.to_data())
    assert back == st


def test_status_keeps_every_failed_path_for_retry_but_reasons_only_for_the_first() -> None:
    from kubedr.applier.status import MAX_FAILURES_KEPT

    st = Status(commit="c", failures=[Failure(f"ns/ConfigMap/c{i}.yaml", "boom") for i in range(MAX_FAILURES_KEPT + 50)])
    data = st.to_data()
    assert len(data["failures"]) < 100_000
    back = Status.from_data(data)
    assert [f.path for f in back.failures] == [f.path for f in st.failures]


def test_validation_errors_never_quote_a_secret_value() -> None:
    from kubedr.applier.decode import DecodeError, Validator

    check = Validator("1.30").check
    for field in ("data", "stringData"):
        with pytest.raises(DecodeError) as info:
            check({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, field: {"pw": 987654321}})
        assert f"{field}.pw" in str(info.value) and "987654321" not in str(info.value)
    with pytest.raises(DecodeError, match="987654321"):  # other kinds keep the schema's own words
        check({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 987654321}})
