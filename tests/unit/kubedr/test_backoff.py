"""The one backoff: doubling waits up to a cap, reset by a success, cut short by a stop event."""

from __future__ import annotations

import threading
import time

from kubedr.backoff import Backoff


def test_waits_double_up_to_the_cap_and_a_success_resets_them() -> None:
    backoff = Backoff(0.5, 3.0)
    assert backoff.delay == 0.5
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert (backoff.delay, backoff.failed()) == (0.5, 0.5)
    assert [backoff.after(n) for n in (0, 1, 2, 3)] == [0.5, 0.5, 1.0, 2.0]


def test_a_stop_event_ends_the_wait() -> None:
    backoff, stop = Backoff(3600.0), threading.Event()
    waiting = threading.Thread(target=lambda: results.append(backoff.wait(stop)))
    results: list[bool] = []
    waiting.start()
    stop.set()
    waiting.join(5)  # an hour's wait: only the event can end it
    assert results == [True] and backoff.failures == 1


def test_a_wait_runs_its_delay_when_not_stopped() -> None:
    backoff = Backoff(0.01)
    started = time.monotonic()
    assert backoff.wait(threading.Event()) is False and backoff.wait() is False
    assert time.monotonic() - started >= 0.03  # 0.01 then 0.02: it did wait, and the second wait was longer
