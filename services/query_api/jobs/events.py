"""Waiting for a job to end (`?wait=N`) without polling the database.

Workers and the scheduler PUBLISH `job:{id}` after every committed transition. A waiting request
SUBSCRIBEs first and only then reads the row, so a transition committed in between is either
already in what it read or on its way as a message; it re-reads the row on each message and
answers as soon as the job is terminal or the time is up. Without Redis it falls back to a slow,
bounded poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0

T = TypeVar("T")


async def wait_until(
    redis: Redis,
    channel: str,
    read: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    seconds: float,
) -> T:
    """Read with `read()` until `done(value)` or `seconds` pass; return the last value."""
    deadline = time.monotonic() + seconds
    value: T | None = None
    try:
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            value = await read()
            while not done(value) and (remaining := deadline - time.monotonic()) > 0:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=remaining
                )
                if message is not None:
                    value = await read()
            return value
    except (RedisError, OSError) as error:
        log.warning("job events unavailable (%s): polling instead", type(error).__name__)
    if value is None:
        value = await read()
    while not done(value) and (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(POLL_SECONDS, remaining))
        value = await read()
    return value
