"""Export and report jobs through the real API: POST → `succeeded`, timed from the client.

A job that ends in any other status stops the figure with its error: a fast failure is not a
result. Every loop has a fixed count and every wait a deadline.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from shared.jobs import TERMINAL, Status

Job = dict[str, Any]

EXPORT_FORMAT = "csv"
WAIT_SECONDS = 10  # per long poll (`?wait=`); the API allows up to 30
EXPORT_DEADLINE_SECONDS = 120
REPORT_DEADLINE_SECONDS = 3600
CONCURRENT_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float  # POST sent → the job seen `succeeded`
    created_seconds: float  # POST sent → 202 received
    job: Job


@dataclass(frozen=True, slots=True)
class Throughput:
    jobs: int  # accepted and succeeded
    errors: int  # POSTs that got no answer (connection reset or timed out)
    seconds: float  # first POST → the last job seen `succeeded`
    created_seconds: float  # first POST → the last 202

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def created_per_second(self) -> float:
        return self.jobs / self.created_seconds


def export_path(cliente_id: int) -> str:
    return f"/api/clientes/{cliente_id}/exportar/?formato={EXPORT_FORMAT}"


REPORT_PATH = "/api/reporte-fidelizacion/generar/"
JSON = {"Content-Type": "application/json"}


def _accepted(response: httpx.Response) -> Job:
    if response.status_code != 202:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    job: Job = response.json()
    return job


def _succeeded(job: Job) -> Job:
    if job["status"] != Status.SUCCEEDED:
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    return job


def _job_url(job: Job) -> str:
    return f"/api/jobs/{job['id']}?wait={WAIT_SECONDS}"


def wait(client: httpx.Client, job: Job, deadline_seconds: float) -> Job:
    deadline = time.monotonic() + deadline_seconds
    while job["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} still {job['status']} after {deadline_seconds}s")
        response = client.get(_job_url(job))
        response.raise_for_status()
        job = response.json()
    return _succeeded(job)


def timed(
    client: httpx.Client,
    path: str,
    deadline_seconds: float,
    params: dict[str, Any] | None = None,
) -> Timed:
    # Encoded before the clock starts: the client's JSON encoding is not the server's time
    # (100,000 documents take httpx's json.dumps 0.12 s).
    content = orjson.dumps(params) if params else None
    started = time.perf_counter()
    job = _accepted(
        client.post(path, content=content, headers=JSON) if content else client.post(path)
    )
    created = time.perf_counter() - started
    job = wait(client, job, deadline_seconds)
    return Timed(time.perf_counter() - started, created, job)


def export_latencies(client: httpx.Client, cliente_id: int, count: int) -> list[Timed]:
    """`count` exports one after the other: the latency a lone client sees."""
    return [timed(client, export_path(cliente_id), EXPORT_DEADLINE_SECONDS) for _ in range(count)]


def one_call_latencies(client: httpx.Client, cliente_id: int, count: int) -> list[float]:
    """`count` one-call exports (SPEC §9), one after the other: `GET exportar?wait=N` following
    its 303 to the file; seconds from the request sent to the whole file received."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(
            f"{export_path(cliente_id)}&wait={WAIT_SECONDS}", follow_redirects=True
        )
        if response.status_code != 200 or [r.status_code for r in response.history] != [303]:
            raise RuntimeError(f"one-call export answered {response.status_code}, not a file")
        seconds.append(time.perf_counter() - started)
    return seconds


def _async_client(url: str, key: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=CONCURRENT_CONNECTIONS)
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=WAIT_SECONDS + 30
    )


def create_exports(url: str, key: str, cliente_id: int, count: int) -> list[str]:
    """`count` exports made through the API, CONCURRENT_CONNECTIONS at a time; their job ids.
    Any answer but 202 stops the figure."""

    async def create_all() -> list[str]:
        async with _async_client(url, key) as client:
            slots = asyncio.Semaphore(CONCURRENT_CONNECTIONS)

            async def create() -> str:
                async with slots:
                    return str(_accepted(await client.post(export_path(cliente_id)))["id"])

            return await asyncio.gather(*(create() for _ in range(count)))

    return asyncio.run(create_all())


def export_throughput(url: str, key: str, cliente_id: int, count: int) -> Throughput:
    return asyncio.run(_export_throughput(url, key, cliente_id, count))


async def _export_throughput(url: str, key: str, cliente_id: int, count: int) -> Throughput:
    """`count` exports fired at once, then followed until every one has succeeded. A POST
    without an answer is counted, not retried: retrying could make a second job."""
    async with _async_client(url, key) as client:

        async def create() -> Job | None:
            try:
                return _accepted(await client.post(export_path(cliente_id)))
            except httpx.TransportError:
                return None

        async def follow(job: Job) -> Job:
            deadline = time.monotonic() + EXPORT_DEADLINE_SECONDS
            while job["status"] not in TERMINAL and time.monotonic() < deadline:
                try:
                    response = await client.get(_job_url(job))
                except httpx.TransportError:
                    continue  # reading a job is safe to repeat
                response.raise_for_status()
                job = response.json()
            return _succeeded(job)

        started = time.perf_counter()
        created = await asyncio.gather(*(create() for _ in range(count)))
        created_seconds = time.perf_counter() - started
        accepted = [job for job in created if job is not None]
        await asyncio.gather(*(follow(job) for job in accepted))
        return Throughput(
            jobs=len(accepted),
            errors=count - len(accepted),
            seconds=time.perf_counter() - started,
            created_seconds=created_seconds,
        )


def report(client: httpx.Client, params: dict[str, str] | None = None) -> Timed:
    return timed(client, REPORT_PATH, REPORT_DEADLINE_SECONDS, params)
