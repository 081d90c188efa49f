"""The open-loop load generator of the paced bench (bench/paced.py), a process of its own:

    python -m bench.paced_client CONFIG.json

Requests are sent on a fixed schedule (request i of a stream at start + i / rate), whatever the
server does: a slow answer never delays the next request, as it would in a closed loop (wrk), and
every latency is counted from the request's scheduled time, not from when it was finally written,
so a stall shows in full in every request it held up (no coordinated omission). A request that
finds every connection busy waits for one, and that wait is part of its latency.

Two streams run at once: GETs drawn at random from a list, and POSTs (the export jobs) at a rate of
their own. HTTP/1.1 keep-alive over raw asyncio on uvloop, so that the generator costs tens of
microseconds a request, not the hundreds an HTTP library takes. The generator measures its own
lag (scheduled time → the request's task running) and CPU, and prints JSON lines on stdout:

    {"kind": "tick", "slice": k}        at the end of slice k's schedule, on time (the bench
                                         samples the machine then)
    {"kind": "slice", "slice": k, ...}   once every request scheduled in slice k has ended
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import uvloop

# Closed by us before uvicorn's keep-alive (5 s) can close it under a request being written.
IDLE_SECONDS = 2.0
HEADER_END = b"\r\n\r\n"
# uvloop's loop.time() moves in whole milliseconds: every time here is taken from this instead.
now = time.perf_counter


@dataclass(frozen=True, slots=True)
class Config:
    host: str
    port: int
    authorization: str
    lookup_paths: list[str]
    lookup_rate: float
    post_path: str
    post_rate: float
    slices: list[float]  # seconds of each slice, in order
    connections: int  # at most this many open at once (and so requests in flight)
    timeout: float  # seconds from a request's scheduled time to its answer, then an error

    @classmethod
    def load(cls, path: Path) -> Config:
        return cls(**json.loads(path.read_text()))


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, the answer read by its
    Content-Length (every answer of the API has one)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_used = now()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(HEADER_END)
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip() == b"close":
                self.closed = True
        body_start = end + len(HEADER_END)
        if len(self._buffer) < body_start + length:
            return
        status = int(head[9:12])
        body = bytes(self._buffer[body_start : body_start + length])
        del self._buffer[: body_start + length]
        if self._timer:
            self._timer.cancel()
        if self._waiter and not self._waiter.done():
            self._waiter.set_result((status, body))

    def exchange(self, request: bytes, timeout: float) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._waiter = self.loop.create_future()
        self._timer = self.loop.call_later(timeout, self._fail, TimeoutError("no answer in time"))
        self.transport.write(request)
        return self._waiter

    def _fail(self, error: Exception) -> None:
        if self._waiter and not self._waiter.done():
            self._waiter.set_exception(error)
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport:
            self.transport.close()


class Pool:
    """Connections reused most-recently-used first, so the busy ones stay warm and the idle ones
    age out; at most `limit` in use, the requests beyond it queued in order."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port = host, port
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[Connection] = []
        self.opened = 0

    async def acquire(self) -> Connection:
        await self.slots.acquire()
        try:
            while self.idle:
                connection = self.idle.pop()
                if not connection.closed and now() - connection.last_used < IDLE_SECONDS:
                    return connection
                connection.close()
            _, connection = await asyncio.get_running_loop().create_connection(
                Connection, self.host, self.port
            )
            self.opened += 1
            return connection
        except BaseException:
            self.slots.release()
            raise

    def release(self, connection: Connection) -> None:
        if not connection.closed:
            connection.last_used = now()
            self.idle.append(connection)
        self.slots.release()


@dataclass
class Tally:
    """What one stream saw of the requests scheduled in one slice."""

    latencies_ms: list[float] = field(default_factory=list)  # scheduled → answered, 2xx only
    lags_ms: list[float] = field(default_factory=list)  # scheduled → the request's task running
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # no answer: why
    accepted: list[str] = field(default_factory=list)  # job ids from 202 answers (POSTs)
    pending: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # set when pending drops to 0

    def started(self) -> None:
        self.pending += 1
        self.drained.clear()

    def ended(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.drained.set()

    def summary(self) -> dict[str, Any]:
        return {
            "scheduled": len(self.lags_ms),
            "ok": len(self.latencies_ms),
            "latency_ms": percentiles(self.latencies_ms),
            "lag_ms": percentiles(self.lags_ms),
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "accepted": self.accepted,
        }


def percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def at(fraction: float) -> float | None:
        # Nearest rank: the smallest value with at least `fraction` of them at or below it.
        return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)] if ordered else None

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1] if ordered else None,
    }


class Generator:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pool = Pool(config.host, config.port, config.connections)
        self.loop = asyncio.get_running_loop()
        self.start = 0.0
        self.bounds: list[float] = []  # end of each slice, loop time
        self.tallies: dict[str, list[Tally]] = {
            "lookups": [Tally() for _ in config.slices],
            "posts": [Tally() for _ in config.slices],
        }
        self.tasks: set[asyncio.Task[None]] = set()
        self.cpu_at_tick: list[float] = []
        self.random = random.Random(os.getpid())

    def request(self, method: str, path: str) -> bytes:
        return (
            f"{method} {path} HTTP/1.1\r\nHost: {self.config.host}:{self.config.port}\r\n"
            f"Authorization: {self.config.authorization}\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    async def run(self) -> None:
        lookups = [self.request("GET", path) for path in self.config.lookup_paths]
        post = self.request("POST", self.config.post_path)
        self.start = now() + 0.1
        end = self.start
        for seconds in self.config.slices:
            end += seconds
            self.bounds.append(end)
        ticks = self.loop.create_task(self.ticks())
        await asyncio.gather(
            self.stream("lookups", self.config.lookup_rate, lambda: self.random.choice(lookups)),
            self.stream("posts", self.config.post_rate, lambda: post),
        )
        await ticks

    async def stream(self, name: str, rate: float, pick: Callable[[], bytes]) -> None:
        """Request i at start + i / rate, until the last slice's end: sleeping until the next one
        is due, and sending every one already due at once when the loop was late."""
        for sent in range(int((self.bounds[-1] - self.start) * rate)):
            due = self.start + sent / rate
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            tally = self.tallies[name][self.slice_of(due)]
            tally.started()
            task = self.loop.create_task(self.one(pick(), due, tally, name == "posts"))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def slice_of(self, due: float) -> int:
        for index, bound in enumerate(self.bounds):
            if due < bound:
                return index
        return len(self.bounds) - 1

    async def one(self, request: bytes, due: float, tally: Tally, keep_id: bool) -> None:
        """One request, given `timeout` seconds from its scheduled time to be answered: waiting
        for a free connection counts, so a stalled server shows as errors in its own slice
        instead of a queue that outlives the run."""
        tally.lags_ms.append((now() - due) * 1000)
        deadline = due + self.config.timeout
        try:
            if self.pool.slots.locked():  # every connection busy: wait, but not forever
                connection = await asyncio.wait_for(self.pool.acquire(), deadline - now())
            else:
                connection = await self.pool.acquire()
        except TimeoutError:
            tally.errors["no free connection in time"] += 1
            tally.ended()
            return
        except OSError as error:
            tally.errors[f"connect: {type(error).__name__}"] += 1
            tally.ended()
            return
        try:
            remaining = max(0.001, deadline - now())
            status, body = await connection.exchange(request, remaining)
        except (ConnectionError, TimeoutError) as error:
            tally.errors[type(error).__name__] += 1
            return
        else:
            tally.statuses[status] += 1
            if 200 <= status < 300:
                tally.latencies_ms.append((now() - due) * 1000)
            if keep_id and status == 202:
                tally.accepted.append(json.loads(body)["id"])
        finally:
            self.pool.release(connection)
            tally.ended()

    async def ticks(self) -> None:
        """A tick as each slice's schedule ends, then the slice's figures once its last request
        has ended (or timed out)."""
        cpu_before = _cpu_seconds()
        reports = []
        for index, bound in enumerate(self.bounds):
            await asyncio.sleep(max(0.0, bound - now()))
            cpu = _cpu_seconds()
            emit({"kind": "tick", "slice": index})
            reports.append(self.loop.create_task(self.report(index, cpu - cpu_before)))
            cpu_before = cpu
        await asyncio.gather(*reports)

    async def report(self, index: int, cpu_seconds: float) -> None:
        tallies = {name: slices[index] for name, slices in self.tallies.items()}
        # Every request of the slice is scheduled by now; each ends within its timeout.
        for tally in tallies.values():
            if tally.pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tally.drained.wait(), self.config.timeout + 5)
        emit(
            {
                "kind": "slice",
                "slice": index,
                "seconds": self.config.slices[index],
                "generator_cpu_seconds": cpu_seconds,
                "connections_opened": self.pool.opened,
                **{name: tally.summary() for name, tally in tallies.items()},
            }
        )


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main() -> None:
    config = Config.load(Path(sys.argv[1]))
    if config.host != "127.0.0.1":
        raise SystemExit(f"the load generator only targets loopback, not {config.host}")

    async def run() -> None:
        await Generator(config).run()

    uvloop.run(run())


if __name__ == "__main__":
    main()
