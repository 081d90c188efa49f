"""Webhooks through the real processes and a real receiver in this process (harness/receiver.py).

- latency: export jobs one after the other, each pushed to one endpoint; event recorded (the job's
  final transition) → the receiver has the request, beside the job's own created → succeeded.
- no loss: 1,000 events (250 jobs × 4 endpoints) while the receiver fails one request in three;
  every event must end delivered, each one answered 2xx at least once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
import psycopg

from bench import jobs
from harness import receiver
from harness.receiver import Received, Receiver

LATENCY_JOBS = 100
LOSS_JOBS = 250
LOSS_ENDPOINTS = 4
FAIL_ONE_IN = 3
DELIVERY_DEADLINE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Latency:
    event_ms: list[float]  # event recorded → received, per job
    job_ms: list[float]  # the job's created_at → finished_at, per job


@dataclass(frozen=True, slots=True)
class NoLoss:
    events: int  # recorded for the endpoints
    delivered: int  # status delivered in the database
    answered_2xx: int  # distinct events the receiver answered 2xx
    requests: int  # every POST the receiver got (retries included)
    seconds: float  # first POST of a job → the last event delivered

    @property
    def lost(self) -> int:
        return self.events - min(self.delivered, self.answered_2xx)


def _moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _register(client: httpx.Client, url: str) -> str:
    response = client.post("/api/webhooks/", json={"url": url})
    response.raise_for_status()
    endpoint_id: str = response.json()["id"]
    return endpoint_id


def latency(client: httpx.Client, cliente_id: int) -> Latency:
    with Receiver() as hook:
        endpoint_id = _register(client, hook.url)
        try:
            done = jobs.export_latencies(client, cliente_id, LATENCY_JOBS)
            hook.wait_for(LATENCY_JOBS, timeout=60)
        finally:
            client.delete(f"/api/webhooks/{endpoint_id}")
        events = {json.loads(r.body)["data"]["id"]: r for r in hook.events()}
    event_ms, job_ms = [], []
    for timed in done:
        job = timed.job
        received = events[job["id"]]
        event = json.loads(received.body)
        event_ms.append((received.at - _moment(event["created_at"])) * 1000)
        job_ms.append((_moment(job["finished_at"]) - _moment(job["created_at"])) * 1000)
    return Latency(event_ms, job_ms)


def no_loss(client: httpx.Client, database_url: str, cliente_id: int) -> NoLoss:
    failing = receiver.fail_one_in(FAIL_ONE_IN)
    answered: set[str] = set()
    lock = threading.Lock()

    def behaviour(request: Received) -> tuple[int, float, dict[str, str]]:
        status, delay, headers = failing(request)
        if status < 300:
            with lock:
                answered.add(request.event_id)
        return status, delay, headers

    with Receiver(behaviour) as hook:
        endpoint_ids = [_register(client, f"{hook.url}/{n}") for n in range(LOSS_ENDPOINTS)]
        started = time.perf_counter()
        try:
            # One after the other: the point is the receiver's failures, not the API's burst.
            jobs.export_latencies(client, cliente_id, LOSS_JOBS)
            expected = LOSS_JOBS * LOSS_ENDPOINTS
            deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
            while time.monotonic() < deadline:
                events, delivered = _counts(database_url, endpoint_ids)
                if delivered >= expected:
                    break
                time.sleep(0.05)
            seconds = time.perf_counter() - started
        finally:
            for endpoint_id in endpoint_ids:
                client.delete(f"/api/webhooks/{endpoint_id}")
        return NoLoss(events, delivered, len(answered), len(hook.events()), seconds)


def _counts(database_url: str, endpoint_ids: list[str]) -> tuple[int, int]:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'delivered')"
            " FROM webhook_events WHERE endpoint_id = ANY(%s::uuid[])",
            (endpoint_ids,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
