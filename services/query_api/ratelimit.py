"""Per-API-key rate limiting in Redis: a fixed one-minute window, counted in Redis, taken by each
API process a lease at a time.

A process reserves the next `n` requests of a key's window in one atomic round trip (INCRBY, with
EXPIRE for the window's first) and answers that key's next `n` requests from memory, each with
its own place in the window's count: a request is over the quota when its place is past the limit,
whichever process holds it, so a key never gets more than its quota. A lease is long only while
the quota is far: at most a LEASE_SHARE-th of what the window had left as far as the process
knows, never over LEASE_MAX; the window's first request in a process, and every request once fewer
than 2 × LEASE_SHARE are left, is counted alone. So the last requests of a window are exact, and
what one process reserved and another could have used is at most a sixteenth of what was left.

Why: under a steady load the round trip to Redis on every request was a fifth to a quarter of a
lookup's API CPU, and with it off the paced benchmark's p99 fell by half (README, benchmarks).

Answers carry the IETF `RateLimit-Policy` / `RateLimit` headers; over the quota the request gets
429 problem+json with `Retry-After`. If Redis is unreachable the limiter fails open once the
process's lease of that key is used up: lookups must keep working while the broker is down, and
the outage shows in `/ready` and the logs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
LEASE_MAX = 64
LEASE_SHARE = 16


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"default";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"default";r={max(self.remaining, 0)};t={self.reset_seconds}',
        }


def window_at(moment: float) -> int:
    """The number of the window that `moment` (a `time.time()`) falls in."""
    return int(moment // WINDOW_SECONDS)


def counter_key(key_id: str, window: int) -> str:
    """The Redis key that counts the places of `key_id`'s `window`."""
    return f"ratelimit:{key_id}:{window}"


# INCRBY and, for a window's first reservation, EXPIRE: atomic inside Redis, one round trip.
# Returns the window's count after the reservation: its places are (count - n, count].
_RESERVE = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count
"""


@dataclass(slots=True)
class _Lease:
    """A key's reserved places in the window's count, in order: [first, last] ranges (two when
    two requests of this process reserved at once)."""

    ranges: list[list[int]]
    reserved_up_to: int  # the window's count after this process's latest reservation

    def take(self) -> int | None:
        """The next reserved place, or None when none is left."""
        while self.ranges:
            place_range = self.ranges[0]
            if place_range[0] <= place_range[1]:
                place_range[0] += 1
                return place_range[0] - 1
            self.ranges.pop(0)
        return None


class RateLimiter:
    def __init__(self, redis: Redis, default_per_minute: int) -> None:
        self._default = default_per_minute
        # EVALSHA; redis-py sends the script again by itself after a Redis restart (NOSCRIPT).
        self._reserve = redis.register_script(_RESERVE)
        self._window = 0
        self._leases: dict[str, _Lease] = {}  # this window's, by key id

    async def consume(self, key_id: str, limit: int | None) -> Quota | None:
        limit = limit or self._default
        now = time.time()
        window = window_at(now)
        if window != self._window:  # a window's places mean nothing in the next one
            self._window = window
            self._leases.clear()
        reset = int((window + 1) * WINDOW_SECONDS - now) + 1
        lease = self._leases.get(key_id)
        place = lease.take() if lease else None
        if place is None:
            place = await self._reserve_places(key_id, window, limit, lease)
            if place is None:
                return None
        return Quota(limit=limit, remaining=limit - place, reset_seconds=reset)

    async def _reserve_places(
        self, key_id: str, window: int, limit: int, lease: _Lease | None
    ) -> int | None:
        """Reserve the key's next places in Redis; the first is this request's, the rest stay
        in the process's lease. None when Redis cannot be reached."""
        left = limit - lease.reserved_up_to if lease else 0  # unknown before the first
        size = max(1, min(LEASE_MAX, left // LEASE_SHARE))
        counter = counter_key(key_id, window)
        try:
            count = int(await self._reserve(keys=[counter], args=[size, WINDOW_SECONDS + 1]))
        except (RedisError, OSError) as error:
            log.warning("rate limiter unavailable, not limiting: %s", type(error).__name__)
            return None
        first = count - size + 1
        if window != self._window:  # the window ended while the reservation was under way
            return first
        current = self._leases.get(key_id)
        if current is None:
            current = self._leases[key_id] = _Lease([], count)
        # Another request of this process may have reserved meanwhile: its places stay usable.
        current.ranges.append([first + 1, count])
        current.reserved_up_to = max(current.reserved_up_to, count)
        return first
