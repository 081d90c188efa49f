"""Waiting for a job to end (`?wait=N`) without polling the database.

Workers and the scheduler PUBLISH `job:{id}` after every committed transition but the claim. A
waiting request SUBSCRIBEs first and only then reads the row, so a transition committed in
between is either already in what it read or on its way as a message; it re-reads the row on
each message that may end the wait (the message says what the job became: back to `queued`
cannot) and answers as soon as the job is terminal or the time is up. Without Redis it falls back
to a slow, bounded poll.

Each wait holds a Redis connection for its whole length, so waits get a pool of their own
(main.py), never the rate limiter's, and `LongPolls` bounds them per API key and per process:
a wait beyond either bound is answered at once, as the job is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0

T = TypeVar("T")


class LongPolls:
    """How many waits are under way, per API key and in all (this process)."""

    def __init__(self, per_key: int, total: int) -> None:
        self._per_key = per_key
        self._total = total
        self._by_key: Counter[uuid.UUID] = Counter()

    @contextlib.contextmanager
    def slot(self, key_id: uuid.UUID) -> Iterator[bool]:
        """True (and a slot held until the block ends) if this key may wait now."""
        if self._by_key[key_id] >= self._per_key or self._by_key.total() >= self._total:
            yield False
            return
        self._by_key[key_id] += 1
        try:
            yield True
        finally:
            self._by_key[key_id] -= 1
            if not self._by_key[key_id]:
                del self._by_key[key_id]


async def wait_until(
    redis: Redis,
    channel: str,
    read: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    seconds: float,
    worth_reading: Callable[[bytes], bool],
) -> T:
    """Read with `read()` until `done(value)` or `seconds` pass; return the last value. A
    message on `channel` makes it read again if `worth_reading(its data)`."""
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
                if message is not None and worth_reading(message["data"]):
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
