"""Per-API-key rate limiting in Redis: a fixed one-minute window, one atomic round trip a request.

Answers carry the IETF `RateLimit-Policy` / `RateLimit` headers; over the quota the request gets
429 problem+json with `Retry-After`. If Redis is unreachable the limiter fails open: lookups must
keep working while the broker is down, and the outage shows in `/ready` and the logs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60


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


# INCR and, for a window's first request, EXPIRE: atomic inside Redis, one round trip.
_CONSUME = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return used
"""


class RateLimiter:
    def __init__(self, redis: Redis, default_per_minute: int) -> None:
        self._default = default_per_minute
        # EVALSHA; redis-py sends the script again by itself after a Redis restart (NOSCRIPT).
        self._consume = redis.register_script(_CONSUME)

    async def consume(self, key_id: str, limit: int | None) -> Quota | None:
        limit = limit or self._default
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        counter = f"ratelimit:{key_id}:{window}"
        try:
            used = await self._consume(keys=[counter], args=[WINDOW_SECONDS + 1])
        except (RedisError, OSError) as error:
            log.warning("rate limiter unavailable, not limiting: %s", type(error).__name__)
            return None
        reset = int((window + 1) * WINDOW_SECONDS - now) + 1
        return Quota(limit=limit, remaining=limit - int(used), reset_seconds=reset)
