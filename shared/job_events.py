""" "A job changed" announcements on Redis pub/sub.

The process that commits a job's transition (a worker, the scheduler, or the API when the owner
deletes the job) then PUBLISHes the new status on the job's channel (every transition but the
claim, which ends no wait); API requests waiting on the job (`GET /api/jobs/{id}?wait=N`,
services/query_api/jobs/events.py) SUBSCRIBE to it and answer the moment it ends. Best effort:
a lost announcement only sends the waiter back to polling.
"""

from __future__ import annotations

import functools
import logging
import uuid

import redis

from shared.jobs import TERMINAL
from shared.settings import get_settings

log = logging.getLogger(__name__)


def channel(job_id: uuid.UUID | str) -> str:
    return f"job:{job_id}"


@functools.cache
def _redis(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)


def is_final(announced: bytes) -> bool:
    """Whether an announcement (its message's data) says the job reached a terminal status."""
    return announced.decode(errors="replace") in TERMINAL


def announce(job_id: uuid.UUID | str, status: str) -> None:
    """Publish the job's new status (after its commit). Never raises."""
    try:
        _redis(get_settings().redis_url).publish(channel(job_id), str(status))
    except (redis.RedisError, OSError) as error:
        log.warning("could not announce job %s: %s", job_id, type(error).__name__)
