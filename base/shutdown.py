"""SIGTERM, as the kubelet sends it to stop a pod: the work's stop event is set and running git commands are
killed at once; work still blocked GRACE seconds later (a request waiting out its timeout) does not hold the
process: it exits with one line saying so."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from kubedr import git

log = logging.getLogger("kubedr")

GRACE = 4.0  # seconds from SIGTERM to the forced exit: the process is gone within 5 s
EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


@contextmanager
def on_sigterm(stop: threading.Event, grace: float = GRACE) -> Iterator[None]:
    """While the block runs, SIGTERM sets stop, kills running git commands, and bounds the wind-down to grace."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[float] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        git.stop_all()
        if not received:
            received.append(time.monotonic())
            threading.Thread(target=_deadline, args=(grace,), name="sigterm-deadline", daemon=True).start()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _deadline(grace: float) -> None:
    time.sleep(grace)
    log.error("still busy %g s after SIGTERM (in %s): exiting", grace, _waiting_in())
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    os._exit(EXIT_CODE)


def _waiting_in() -> str:
    """The innermost kubedr function the main thread is in (kubedr.kubeapi.request, say)."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("kubedr.") and module != __name__:
            return f"{module}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "a call that has not returned"
