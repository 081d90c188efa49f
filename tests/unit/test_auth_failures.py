"""The per-address limiter of failed authentication: counts, window, bounded memory."""

from __future__ import annotations

from services.query_api import auth_failures
from services.query_api.auth_failures import AuthFailureLimiter


def test_an_address_is_refused_past_its_failures_and_others_are_not() -> None:
    limiter = AuthFailureLimiter(per_minute=3)
    for _ in range(3):
        assert limiter.retry_after("203.0.113.1") is None
        limiter.failed("203.0.113.1")
    wait = limiter.retry_after("203.0.113.1")
    assert wait is not None and 1 <= wait <= 61
    assert limiter.retry_after("203.0.113.2") is None


def test_memory_stays_bounded_under_many_addresses() -> None:
    limiter = AuthFailureLimiter(per_minute=1)
    for number in range(auth_failures.MAX_ADDRESSES + 500):
        limiter.failed(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
    assert len(limiter._by_address) <= auth_failures.MAX_ADDRESSES
    newest = auth_failures.MAX_ADDRESSES + 499
    assert limiter.retry_after(f"10.{newest // 65536}.{newest // 256 % 256}.{newest % 256}")
