"""kombu's Redis transport with one fix, a worker must outlive Redis going away mid-job, and
one saving: a Redis client per connection pool rather than one per message handled.

When the broker connection drops while a message is delivered and not yet acknowledged (a task
under way: acks_late), Celery's consumer closes the transport and then closes the channel again;
that close tries to put the unacknowledged message back, builds a Redis client from the closed
transport, and kombu fails with AttributeError ('NoneType' object has no attribute 'hostname').
That is not a connection error, so it escapes Celery's handling and the worker exits
("Unrecoverable error") instead of reconnecting: tests/faults/test_faults_redis.py saw it
every time.

Here it is a connection error, which Celery ignores as it should: with no server there is
nothing to put the message back into, and the job is safe in PostgreSQL anyway (its attempt
finishes; a message lost with an empty Redis is published again by the scheduler).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu builds a new Redis client for every delivery's and every ack's bookkeeping
        (11% of a busy exports worker's CPU); one per connection pool does the same work. A
        client shares its pool's connections between threads, as the ones it replaces did."""
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool  # raises, as below, once the transport is closed
        if self._sync_client is None or self._sync_client.connection_pool is not pool:
            self._sync_client = super()._create_client()  # type: ignore[no-untyped-call]
        return self._sync_client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # the transport was closed after a lost connection
            raise RedisConnectionError("the broker connection is closed")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


# For `broker_transport`: kombu resolves "module:Class" paths.
TRANSPORT = f"{__name__}:Transport"
