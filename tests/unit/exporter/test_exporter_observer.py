"""A watch that keeps getting 410 Gone re-lists with a growing pause, not in a tight loop."""

from __future__ import annotations

import threading
import time

from kubedr.apierrors import api_error
from kubedr.exporter.observer import Observer
from kubedr.exporter.selection import Selection
from kubedr.kubeapi import Resource

CMS = Resource("", "v1", "configmaps", "ConfigMap", True)


class AlwaysGone(Observer):
    """Every list succeeds and every watch from its resourceVersion is already compacted away."""

    def __init__(self) -> None:
        super().__init__(http=None, selection=Selection(namespaces=["shop"]))  # type: ignore[arg-type]
        self.lists: list[float] = []

    def list(self, rtype, emit):  # noqa: A003 - the Observer's own name
        self.lists.append(time.monotonic())
        return str(len(self.lists))

    def _watch(self, rtype, rv, stop):
        raise api_error(410, {"reason": "Expired", "message": "too old resource version"}, rtype.path())


def test_repeated_410_backs_off() -> None:
    obs, stop = AlwaysGone(), threading.Event()
    loop = threading.Thread(target=obs._watch_loop, args=(CMS, None, stop), daemon=True)
    loop.start()
    started = time.monotonic()
    while time.monotonic() - started < 2.0 and not stop.wait(0.05):
        pass
    stop.set()
    loop.join(40)
    # without the backoff this loop re-lists thousands of times; with it: 0, 0.5, 1.0, 2.0 s pauses
    assert 2 <= len(obs.lists) <= 5, len(obs.lists)
    gaps = [b - a for a, b in zip(obs.lists, obs.lists[1:], strict=False)]
    assert all(b >= a for a, b in zip(gaps[1:], gaps[2:], strict=False))
