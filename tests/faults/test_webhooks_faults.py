"""A recorded webhook event is never lost: the receiver down and back, the webhooks worker killed
in the middle of a POST, Redis emptied of the delivery messages. Real receiver, real processes."""

from __future__ import annotations

import time

import httpx
import redis
from sqlalchemy import Engine

from harness import receiver
from harness.receiver import Receiver
from harness.servers import wait_until
from shared import job_queue
from tests.conftest import Api, Workers
from tests.webhooks import (
    deliveries,
    finished_export,
    own_key,
    register,
    signed_event,
    wait_for_status,
)


def _attempts(http: httpx.Client, endpoint_id: str) -> int:
    found = deliveries(http, endpoint_id)
    return len(found[0]["attempts"]) if found else 0


def test_the_event_arrives_once_a_receiver_that_was_down_is_back(
    api: Api, engine: Engine, fault_workers: Workers
) -> None:
    hook = Receiver()  # not started: connections to its port are refused
    with own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        job = finished_export(http, engine)
        wait_until(lambda: _attempts(http, endpoint["id"]) >= 2, 30, "two refused attempts")
        refused = deliveries(http, endpoint["id"])[0]
        assert refused["status"] == "pending"
        assert all("ConnectionRefusedError" in a["error"] for a in refused["attempts"])
        with hook:  # back, on the same port
            (received,) = hook.wait_for(1, timeout=30)
            delivered = wait_for_status(http, endpoint["id"], "delivered")
        event = signed_event(received, endpoint["secret"])
        assert event["data"]["id"] == job["id"]
        assert delivered["attempts"][-1]["status_code"] == 204


def test_the_event_arrives_after_its_worker_is_killed_mid_delivery(
    api: Api, engine: Engine, fault_workers: Workers
) -> None:
    with Receiver(receiver.hang(60)) as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        (first,) = hook.wait_for(1)  # the POST is under way, its answer held back
        fault_workers.webhooks.kill()
        hook.behaviour = receiver.succeed
        fault_workers.start()
        # Its lease (15 s) passes, the sweep sends the event again, a new worker delivers it.
        delivered = wait_for_status(http, endpoint["id"], "delivered", timeout=60)
        again = hook.events()[-1]
    assert again.event_id == first.event_id == delivered["event_id"], "at least once: same id"
    signed_event(again, endpoint["secret"])
    # The killed attempt left no record, only its lease; the attempt that delivered is the 2nd.
    assert [a["attempt"] for a in delivered["attempts"]] == [2]


def test_the_event_arrives_though_redis_was_emptied_of_its_message(
    api: Api, engine: Engine, fault_workers: Workers, redis_url: str
) -> None:
    broker = redis.Redis.from_url(redis_url)
    fault_workers.webhooks.stop()  # nobody takes the delivery message
    with Receiver() as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        wait_until(lambda: broker.llen(job_queue.WEBHOOKS_QUEUE) >= 1, 10, "the message queued")
        broker.flushall()
        assert broker.llen(job_queue.WEBHOOKS_QUEUE) == 0
        time.sleep(0.5)
        fault_workers.start()
        (received,) = hook.wait_for(1, timeout=60)
        signed_event(received, endpoint["secret"])
        wait_for_status(http, endpoint["id"], "delivered")
