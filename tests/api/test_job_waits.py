"""A wait on a job (`?wait=N`, services/query_api/jobs/events.py) against the test run's Redis:
it reads the job when it starts and again only on an announcement that may end the wait."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from services.query_api.jobs import events
from shared import job_events
from shared.jobs import TERMINAL, Status

WAIT_SECONDS = 2.0  # long enough for every announcement to arrive


async def reads_of_a_wait(redis_url: str, announced: list[Status]) -> int:
    """How many times a wait on a job reads it while `announced` are published, the job itself
    staying queued (so that the wait lasts its whole length, whatever it was told)."""
    channel = job_events.channel(uuid.uuid4())
    subscribed = asyncio.Event()  # the wait reads first once it has subscribed
    reads = 0

    async def read() -> Status:
        nonlocal reads
        reads += 1
        subscribed.set()
        return Status.QUEUED

    async def announce(publisher: Redis) -> None:
        await subscribed.wait()
        for status in announced:
            await publisher.publish(channel, str(status))

    async with Redis.from_url(redis_url) as waiting, Redis.from_url(redis_url) as publisher:
        wait = events.wait_until(
            waiting,
            channel,
            read,
            lambda status: status in TERMINAL,
            WAIT_SECONDS,
            worth_reading=job_events.is_final,
        )
        await asyncio.gather(wait, announce(publisher))
    return reads


def test_a_wait_reads_again_only_on_an_announcement_that_may_end_it(redis_url: str) -> None:
    # Handed back to the queue twice, then an end: one read to start, one for the end.
    announced = [Status.QUEUED, Status.QUEUED, Status.SUCCEEDED]
    assert asyncio.run(reads_of_a_wait(redis_url, announced)) == 2
