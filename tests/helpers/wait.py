"""Waiting on a condition instead of sleeping: poll it, with a tiny back-off, until it holds or time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Call `predicate` until it returns something truthy and return that; fail naming `what` after `timeout` s.

    The pause between calls starts at `interval` and doubles up to 0.2 s, so a quick condition costs little
    and a slow one does not hammer what it polls."""
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.2)
