"""Failed-login limiter: per username and per client address, in a sliding window, in memory.

Per username (default 5 failures in 15 minutes) stops guessing one account's password from many addresses;
per address (default 20) stops one client from trying many accounts. When either is full the attempt is
refused before the password is checked, with `retry_after` seconds until the oldest failure leaves the window
— a refusal rather than a sleep, so no worker thread is held. A success clears its username, not its address
(one known account must not reset the address's count).

It lives in each process's memory (thread-safe; bounded by `max_keys`), so with N app processes an attacker
gets at most N times the budget — still a few hundred guesses a day against argon2-hashed passwords. The
clock is injected, so tests step time by hand.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

Clock = Callable[[], float]


class LoginThrottle:
    def __init__(self, max_per_user: int = 5, max_per_address: int = 20, window_seconds: float = 900.0,
                 clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        if max_per_user < 1 or max_per_address < 1 or window_seconds <= 0:
            raise ValueError("throttle limits and window must be positive")
        self.max_per_user = max_per_user
        self.max_per_address = max_per_address
        self.window = window_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _user_key(username: str) -> str:
        return "u:" + (username or "").strip().lower()

    @staticmethod
    def _address_key(address: str | None) -> str | None:
        return ("a:" + address) if address else None

    def _recent(self, key: str, now: float) -> deque[float]:
        """The failures of `key` still in the window (caller holds the lock)."""
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _wait(self, key: str | None, limit: int, now: float) -> float:
        if key is None:
            return 0.0
        times = self._recent(key, now)
        if len(times) < limit:
            return 0.0
        return times[-limit] + self.window - now

    def retry_after(self, username: str, address: str | None = None) -> int | None:
        """Seconds to wait (rounded up, at least 1) when this attempt must be refused now; None to go ahead."""
        with self._lock:
            now = self._clock()
            wait = max(self._wait(self._user_key(username), self.max_per_user, now),
                       self._wait(self._address_key(address), self.max_per_address, now))
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failure(self, username: str, address: str | None = None) -> None:
        """Count one failed attempt against the username and the address."""
        with self._lock:
            now = self._clock()
            for key in (self._user_key(username), self._address_key(address)):
                if key is None:
                    continue
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:  # forget the least recently failing keys first
                self._failures.popitem(last=False)

    def success(self, username: str) -> None:
        """A right password: the username's failures are forgiven (the address's are not)."""
        with self._lock:
            self._failures.pop(self._user_key(username), None)
