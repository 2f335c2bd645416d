"""The login throttle, stepped with a fake clock: per username, per address, sliding window, success."""

from __future__ import annotations

import threading

import pytest

from app.accounts.throttle import LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_per_user_limit_then_sliding_window(clock):
    t = LoginThrottle(max_per_user=3, max_per_address=100, window_seconds=60, clock=clock)
    for step in range(3):
        assert t.retry_after("ann", f"10.0.0.{step}") is None  # new addresses do not help against one name
        t.failure("ann", f"10.0.0.{step}")
        clock.now += 10
    assert t.retry_after("ANN", "10.0.0.9") == 30  # first failure at 1000 leaves the window at 1060; now 1030
    assert t.retry_after("bob", "10.0.0.9") is None  # other names are not locked
    clock.now = 1060.5
    assert t.retry_after("ann", "10.0.0.9") is None  # one failure has left the window: one more try
    t.failure("ann", "10.0.0.9")
    assert t.retry_after("ann", None) == 10  # locked again until the failure at 1010 leaves (at 1070)


def test_per_address_limit_across_names(clock):
    t = LoginThrottle(max_per_user=100, max_per_address=4, window_seconds=900, clock=clock)
    for n in range(4):
        t.failure(f"user{n}", "192.0.2.7")
    assert t.retry_after("someone-else", "192.0.2.7") == 900
    assert t.retry_after("someone-else", "192.0.2.8") is None
    clock.now += 900
    assert t.retry_after("someone-else", "192.0.2.7") is None


def test_success_clears_the_user_not_the_address(clock):
    t = LoginThrottle(max_per_user=2, max_per_address=3, window_seconds=60, clock=clock)
    t.failure("ann", "a")
    t.failure("ann", "a")
    assert t.retry_after("ann", "b") is not None
    t.success("ann")
    assert t.retry_after("ann", "b") is None
    t.failure("eve", "a")
    assert t.retry_after("ann", "a") == 60  # the address's three failures still count


def test_retry_after_is_at_least_one_second(clock):
    t = LoginThrottle(max_per_user=1, window_seconds=60, clock=clock)
    t.failure("ann")
    clock.now += 59.9
    assert t.retry_after("ann") == 1


def test_memory_is_bounded(clock):
    t = LoginThrottle(max_per_user=1, max_per_address=1, window_seconds=60, clock=clock, max_keys=10)
    for n in range(50):
        t.failure(f"u{n}", f"a{n}")
    assert len(t._failures) <= 10
    assert t.retry_after("u49") is not None  # the newest are kept


def test_thread_safe_counting(clock):
    t = LoginThrottle(max_per_user=10_000, max_per_address=10_000, window_seconds=60, clock=clock)
    threads = [threading.Thread(target=lambda: [t.failure("ann", "a") for _ in range(500)]) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(t._failures["u:ann"]) == 2000 and len(t._failures["a:a"]) == 2000


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        LoginThrottle(max_per_user=0)
