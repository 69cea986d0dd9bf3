"""Retention: which snapshots to delete, by count and age; the newest complete one is never deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from kubedr.durations import parse_duration as seconds
from kubedr.snapshot.manifest import Manifest

INCOMPLETE_AFTER = timedelta(hours=24)  # a save without a manifest this old was interrupted


def parse_duration(text: str, flag: str = "duration") -> timedelta:
    """'90m', '36h', '7d', '2w' (or a sum like '1d12h') -> timedelta; a unit is required (7 is not 7 days)."""
    return timedelta(seconds=seconds(text, flag, bare_seconds=False))


def select(manifests: Sequence[Manifest], now: datetime, keep_last: int | None = None,
           max_age: timedelta | None = None) -> list[Manifest]:
    """Those to delete: a snapshot stays if any given rule keeps it, and the newest always stays."""
    if keep_last is None and max_age is None:
        return []
    ordered = sorted(manifests, key=lambda m: m.id, reverse=True)
    doomed = []
    for index, m in enumerate(ordered):
        kept_by_count = keep_last is not None and index < keep_last
        kept_by_age = max_age is not None and now - m.created_at <= max_age
        if index == 0 or kept_by_count or kept_by_age:
            continue
        doomed.append(m)
    return doomed
