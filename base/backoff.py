"""How long to wait before trying again while failures repeat: one rule for every retry and poll loop.

The wait starts at `first` and doubles after each failure up to `longest`; a success resets it. A wait given a
stop event ends as soon as the event is set (a daemon's SIGTERM never waits for a backoff to run out).
"""

from __future__ import annotations

import math
import threading


class Backoff:
    """Doubling waits from first up to longest; reset() after a success."""

    def __init__(self, first: float, longest: float = math.inf) -> None:
        self.first = first
        self.longest = longest
        self.failures = 0

    def after(self, failures: int) -> float:
        """The wait after this many failures in a row (the first failure waits `first`)."""
        return min(self.longest, self.first * 2.0 ** max(0, failures - 1))

    @property
    def delay(self) -> float:
        """The wait the next failure brings."""
        return self.after(self.failures + 1)

    def failed(self) -> float:
        """Count a failure; the seconds to wait before the next try."""
        self.failures += 1
        return self.after(self.failures)

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Count a failure and wait its delay, or until stop is set; True when stopped."""
        delay = self.failed()
        return (stop or threading.Event()).wait(delay)

    def reset(self) -> None:
        """A success: the next failure waits `first` again."""
        self.failures = 0
