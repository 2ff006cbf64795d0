"""remit.throttle: a burst of failures per key, then a wait until the window passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remit.clock import FixedClock
from remit.throttle import FailureLimiter, client_key


def limiter(
    limit: int = 3, window: float = 60, max_keys: int = 100
) -> tuple[FailureLimiter, FixedClock]:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    return FailureLimiter(limit, window, clock=clock, max_keys=max_keys), clock


def test_a_burst_is_counted_then_refused_until_the_window_passes() -> None:
    limits, clock = limiter()
    assert [limits.fail("a") for _ in range(3)] == [None, None, None]
    assert limits.wait("a") == 60
    clock.now += timedelta(seconds=20)
    assert limits.fail("a") == 40
    assert limits.wait("a") == 40
    clock.now += timedelta(seconds=40)
    assert limits.wait("a") is None
    assert limits.fail("a") is None  # a new window


def test_keys_are_independent() -> None:
    limits, _ = limiter(limit=1)
    assert limits.fail("a") is None
    assert limits.fail("a") == 60
    assert limits.fail("b") is None
    assert limits.wait("b") == 60
    assert limits.wait("c") is None


def test_memory_is_bounded_by_forgetting_the_oldest_windows() -> None:
    limits, clock = limiter(limit=1, max_keys=10)
    for i in range(25):
        clock.now += timedelta(seconds=1)
        limits.fail(f"10.0.0.{i}")
    assert len(limits._windows) == 10
    assert limits.wait("10.0.0.24") is not None  # the newest are held
    assert limits.wait("10.0.0.0") is None  # the oldest forgotten
    clock.now += timedelta(seconds=61)
    limits.fail("10.0.1.1")
    assert len(limits._windows) == 1  # passed windows go as soon as anyone fails


def test_an_ipv6_client_counts_by_its_64() -> None:
    """Addresses of one /64 share a key (a host usually holds the whole /64); IPv4 and
    IPv4-mapped addresses count one by one."""
    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.1.2.3") == client_key("10.1.2.3") == "10.1.2.3"
    assert client_key("10.1.2.4") != client_key("10.1.2.3")
