"""The prune guard refuses mass deletions unless forced, and says why in one line."""

from __future__ import annotations

from kubedr.applier.inventory import BUCKETS, bucket_of, guard
from kubedr.contract import ObjectRef


def test_small_prunes_pass() -> None:
    assert guard(0, 0).allowed
    assert guard(1, 10).allowed
    assert guard(25, 100).allowed
    assert guard(50, 1000).allowed


def test_more_than_a_quarter_is_refused_with_reason() -> None:
    v = guard(3, 10)
    assert not v.allowed
    assert "3 of 10" in v.reason and "--force-prune" in v.reason and "\n" not in v.reason


def test_more_than_fifty_is_refused_even_in_a_big_inventory() -> None:
    v = guard(51, 10_000)
    assert not v.allowed and "51 objects" in v.reason


def test_emptied_repo_is_refused() -> None:
    assert not guard(40, 40).allowed


def test_one_deletion_counts_like_any_other() -> None:
    """No free first deletion: one of three objects is a third of what kubedr applied."""
    assert not guard(1, 3).allowed
    assert not guard(1, 1, max_fraction=0.9).allowed  # the whole of a one-object inventory
    assert guard(1, 1, max_fraction=1.0).allowed


def test_force_overrides() -> None:
    assert guard(10_000, 10_000, force=True).allowed


def test_buckets_are_stable_and_spread() -> None:
    refs = [ObjectRef("", "ConfigMap", "ns", f"cm-{i}") for i in range(400)]
    buckets = {bucket_of(r) for r in refs}
    assert len(buckets) == BUCKETS
    assert bucket_of(refs[0]) == bucket_of(ObjectRef("", "ConfigMap", "ns", "cm-0"))
