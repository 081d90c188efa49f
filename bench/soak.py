"""The soak: lookups and export jobs at a steady rate for minutes, watched in 10 s slices.

wrk runs `buscar` in consecutive slices at a steady pace: LOOKUP_CONNECTIONS connections, each
pausing between an answer and its next request; after every slice the pause is re-aimed from the
latency just measured, so that each slice meets LOOKUP_RATE while the latency leaves room for it
(and never runs above LOOKUP_OVERSHOOT times it). Meanwhile a thread POSTs an export job every
1/JOB_RATE s. After each slice: its rate, p50/p99 and errors, the jobs accepted and succeeded
(their rows in PostgreSQL, the API's own truth about a job), and the resident memory of the API
and of each Celery worker, process trees summed. The first slice is a warm-up: the RSS at its
end is the start figure, the RSS after the last slice the end figure.
When the stream stops, every accepted job has GRACE_SECONDS to end `succeeded`; the rest are lost.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from bench import dataset as datasets
from bench import jobs, probe, services, wrk
from bench.report import Column, Figure, Table, Target, not_measured
from shared.jobs import TERMINAL, Status

SLICE_SECONDS = 10
# About 40% of what two API processes answer flat out on 2 shared cores today (bench `buscar`):
# a sustained load with room left, so that the latency measures the service, not a queue.
LOOKUP_RATE = 400
LOOKUP_CONNECTIONS = 16
# The pause never gets shorter than this allows, even when a slow slice asks for no pause at all:
# otherwise the slice after it runs flat out as soon as the latency drops again.
LOOKUP_OVERSHOOT = 1.25
JOB_RATE = 10  # export jobs a second: a third of one worker's throughput
# Long enough for a job whose worker died to be handed back (JOB_STALE_AFTER_SECONDS 60 plus a
# scheduler pass of 30 s) and run; it only runs out when something is wrong.
GRACE_SECONDS = 120
# Growth allowed per process tree, as a ratio so that it fits any WEB_CONCURRENCY or pool size.
# A leak grows with the work: a kilobyte kept per lookup is 70 MB after 180 s at 400 req/s, near
# a quarter of the API tree's ~300 MB; what still warms up after the first slice (allocator
# arenas, statement caches) measured under 1%.
RSS_GROWTH_RATIO = 1.10
LOST_LISTED = 10  # in the markdown; the JSON lists them all

STATUSES = "SELECT id::text, status FROM jobs WHERE id = ANY(%s::uuid[])"


@dataclass(frozen=True, slots=True)
class Setup:
    url: str
    key: str
    dataset: datasets.Dataset
    work_dir: Path
    log: Path
    api: services.BenchProcess
    workers: list[services.BenchProcess]
    seconds: int
    others: list[services.BenchProcess]  # the scheduler: its CPU counts with the workers'


@dataclass(frozen=True, slots=True)
class Slice:
    label: str
    load: wrk.Load
    job_post_errors: int
    jobs_accepted: int
    jobs_succeeded: int
    backlog: int  # accepted so far and not yet in a terminal status
    rss_mb: dict[str, float]  # process name → RSS of its tree
    interval: probe.Interval  # the machine and the stores meanwhile


@dataclass(frozen=True, slots=True)
class Outcome:
    warm_up: Slice
    slices: list[Slice]
    accepted: int
    post_failures: list[str]
    stream_seconds: float
    lost: list[tuple[str, str]]  # job id, status
    drain_seconds: float  # stream stopped → every accepted job terminal (or the grace spent)
    exited: list[str]  # processes that were no longer running after the last slice


class JobStream:
    """Export jobs POSTed at a steady rate from a thread until stopped. A POST without an answer
    is counted, not retried: retrying could make a second job."""

    def __init__(self, url: str, key: str, cliente_id: int, rate: float = JOB_RATE) -> None:
        self.url = url
        self.key = key
        self.cliente_id = cliente_id
        self.rate = rate  # POSTs a second
        # Appended by the thread, read by the soak's loop: list appends and copies are atomic.
        self.accepted: list[str] = []
        self.failures: list[str] = []
        self.error: Exception | None = None
        self.seconds = 0.0  # started → stopped
        self._started = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-jobs", daemon=True)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self.seconds = time.monotonic() - self._started

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
                for sent in itertools.count():
                    # On schedule, not a fixed sleep: a slow POST is caught up, not dropped.
                    due = self._started + sent / self.rate
                    if self._stopping.wait(max(0.0, due - time.monotonic())):
                        return
                    self._post(client)
        except Exception as error:  # handed to the soak, which stops with it
            self.error = error

    def _post(self, client: httpx.Client) -> None:
        try:
            response = client.post(jobs.export_path(self.cliente_id))
        except httpx.TransportError as error:
            self.failures.append(f"no answer ({type(error).__name__})")
            return
        if response.status_code == 202:
            self.accepted.append(response.json()["id"])
        else:
            self.failures.append(f"{response.status_code} {response.text[:200]}")


def measure(setup: Setup, say: Callable[[str], None]) -> tuple[list[Figure], list[Table]]:
    outcome = run(setup, say)
    return figures(setup, outcome), tables(setup, outcome)


def run(setup: Setup, say: Callable[[str], None]) -> Outcome:
    sample = datasets.documents(setup.dataset.url)
    requests = datasets.buscar_requests(setup.work_dir / "soak.lua", sample)
    stream = JobStream(setup.url, setup.key, setup.dataset.export_cliente_id)
    with psycopg.connect(setup.dataset.url, autocommit=True) as database:
        slice_runner = SliceRunner(setup, requests, stream, database)
        stream.start()
        try:
            warm_up = slice_runner.slice("warm-up", SLICE_SECONDS)
            say(f"soak: warm-up done, {_progress(warm_up)}")
            slices = []
            started = time.monotonic()
            for seconds in _plan(setup.seconds):
                begin = time.monotonic() - started
                slices.append(slice_runner.slice(f"{begin:.0f}–{begin + seconds:.0f} s", seconds))
                say(f"soak {slices[-1].label}: {_progress(slices[-1])}")
        finally:
            stream.stop()
        exited = [p.name for p in [setup.api, *setup.workers] if not p.alive()]
        if stream.error:
            raise RuntimeError("the export job stream failed") from stream.error
        say(f"soak: stream stopped, waiting up to {GRACE_SECONDS} s for the last jobs")
        stopped = time.monotonic()
        statuses = slice_runner.statuses()
        while pending(statuses) and time.monotonic() - stopped < GRACE_SECONDS:
            time.sleep(0.5)
            statuses = slice_runner.statuses()
        drain_seconds = time.monotonic() - stopped
    lost = [(job, statuses.get(job, "no row")) for job in stream.accepted]
    return Outcome(
        warm_up=warm_up,
        slices=slices,
        accepted=len(stream.accepted),
        post_failures=list(stream.failures),
        stream_seconds=stream.seconds,
        lost=[(job, status) for job, status in lost if status != Status.SUCCEEDED],
        drain_seconds=drain_seconds,
        exited=exited,
    )


class SliceRunner:
    """Runs the slices and reads, after each, what the jobs and the processes have become."""

    def __init__(
        self, setup: Setup, requests: Path, stream: JobStream, database: psycopg.Connection
    ) -> None:
        self.setup = setup
        self.requests = requests
        self.stream = stream
        self.database = database
        self.delay_ms = LOOKUP_CONNECTIONS * 1000 / LOOKUP_RATE
        background = [*setup.workers, *setup.others]
        self.probe = probe.Probe(setup.api, setup.url, background, setup.work_dir, database)
        self.snapshot = self.probe.snapshot()
        self.failures_before = 0
        self.accepted_before = 0
        self.succeeded_before = 0

    def slice(self, label: str, seconds: int) -> Slice:
        authorization = f"Bearer {self.setup.key}"
        load = wrk.run(
            self.setup.url,
            self.requests,
            authorization,
            seconds,
            self.setup.log,
            connections=LOOKUP_CONNECTIONS,
            delay_ms=self.delay_ms,
        )
        self.delay_ms = _next_delay(load, self.delay_ms)
        snapshot = self.probe.snapshot()
        interval = probe.Interval(self.snapshot, snapshot)
        self.snapshot = snapshot
        failures = len(self.stream.failures)
        statuses = self.statuses()
        succeeded = sum(status == Status.SUCCEEDED for status in statuses.values())
        processes = [self.setup.api, *self.setup.workers]
        done = Slice(
            label=label,
            load=load,
            job_post_errors=failures - self.failures_before,
            jobs_accepted=len(statuses) - self.accepted_before,
            jobs_succeeded=succeeded - self.succeeded_before,
            backlog=pending(statuses),
            rss_mb={process.name: services.tree_rss_mb(process) for process in processes},
            interval=interval,
        )
        self.failures_before, self.accepted_before = failures, len(statuses)
        self.succeeded_before = succeeded
        return done

    def statuses(self) -> dict[str, str]:
        return job_statuses(self.database, list(self.stream.accepted))


def job_statuses(database: psycopg.Connection, accepted: list[str]) -> dict[str, str]:
    """Every accepted job's status; an accepted job without a row shows as `no row`."""
    rows = database.execute(STATUSES, [accepted]).fetchall()
    found = {str(job): str(status) for job, status in rows}
    return {job: found.get(job, "no row") for job in accepted}


def _plan(seconds: int) -> list[int]:
    whole, rest = divmod(seconds, SLICE_SECONDS)
    return [SLICE_SECONDS] * whole + ([rest] if rest else [])


def _next_delay(load: wrk.Load, delay_ms: float) -> float:
    """The pause that makes the next slice meet LOOKUP_RATE: a connection's cycle is its pause
    plus the latency and wrk's own overhead, and this slice measured that sum. When the answers
    are slower than the pace allows, the rate falls short and the table shows it."""
    cycle_ms = LOOKUP_CONNECTIONS * load.seconds * 1000 / load.requests
    overhead_ms = cycle_ms - delay_ms
    shortest_ms = LOOKUP_CONNECTIONS * 1000 / (LOOKUP_RATE * LOOKUP_OVERSHOOT)
    return max(shortest_ms, LOOKUP_CONNECTIONS * 1000 / LOOKUP_RATE - overhead_ms)


def pending(statuses: dict[str, str]) -> int:
    return sum(status not in TERMINAL for status in statuses.values())


def _progress(done: Slice) -> str:
    return (
        f"{done.load.requests_per_second:,.0f} req/s, p99 {done.load.p99_ms:.1f} ms, "
        f"{done.load.errors + done.job_post_errors} errors, {done.jobs_accepted} jobs accepted, "
        f"backlog {done.backlog}"
    )


def figures(setup: Setup, outcome: Outcome) -> list[Figure]:
    everything = [outcome.warm_up, *outcome.slices]
    loads = [done.load for done in outcome.slices]
    lookups = sum(done.load.requests for done in everything)
    non_2xx = sum(done.load.non_2xx for done in everything)
    socket_errors = sum(done.load.socket_errors for done in everything)
    posts = outcome.accepted + len(outcome.post_failures)
    first_failure = f" (first: {outcome.post_failures[0]})" if outcome.post_failures else ""
    rates = [load.requests_per_second for load in loads]
    worst = max(loads, key=lambda load: load.p99_ms)
    succeeded = outcome.accepted - len(outcome.lost)
    result = [
        Figure(
            "soak_errors",
            f"soak ({setup.seconds} s): errors, lookups and export POSTs",
            "",
            non_2xx + socket_errors + len(outcome.post_failures),
            target=Target("0", at_most=0),
            note=f"{lookups:,} lookups: {non_2xx} non-2xx, {socket_errors} socket errors; "
            f"{posts:,} export POSTs: {len(outcome.post_failures)} without a 202{first_failure}",
        ),
        Figure(
            "soak_jobs_lost",
            "soak: export jobs accepted but not `succeeded`",
            "",
            len(outcome.lost),
            target=Target("0", at_most=0),
            note=f"{outcome.accepted:,} accepted, {succeeded:,} succeeded; {_lost_text(outcome)}",
        ),
        Figure(
            "soak_rps",
            f"soak: `buscar` rate, {LOOKUP_CONNECTIONS} paced connections",
            "req/s",
            sum(load.requests for load in loads) / sum(load.seconds for load in loads),
            LOOKUP_RATE,
            "the pace aimed at",
            note=f"slices from {min(rates):,.0f} to {max(rates):,.0f} req/s; meanwhile {posts:,} "
            f"export POSTs in {outcome.stream_seconds:.0f} s "
            f"({posts / outcome.stream_seconds:.1f}/s, aimed at {JOB_RATE}/s)",
        ),
        Figure(
            "soak_p99_last",
            "soak: `buscar` p99, last slice",
            "ms",
            loads[-1].p99_ms,
            loads[0].p99_ms,
            "first slice after the warm-up",
            note=f"worst slice {worst.p99_ms:.1f} ms; p50 from "
            f"{min(load.p50_ms for load in loads):.1f} to "
            f"{max(load.p50_ms for load in loads):.1f} ms, median slice "
            f"{statistics.median(load.p50_ms for load in loads):.1f} ms",
        ),
    ]
    for process in [setup.api, *setup.workers]:
        key = f"soak_rss_{process.name.replace('-', '_')}"
        name = f"soak: {process.name} RSS (process tree) at the end"
        target = Target(f"≤ {RSS_GROWTH_RATIO:.2f}× start", ratio_at_most=RSS_GROWTH_RATIO)
        if process.name in outcome.exited:
            result.append(not_measured(key, name, "MB", target, "it exited during the soak"))
            continue
        start = outcome.warm_up.rss_mb[process.name]
        end = outcome.slices[-1].rss_mb[process.name]
        result.append(
            Figure(
                key,
                name,
                "MB",
                end,
                start,
                "at the start (after the warm-up slice)",
                target,
                f"growth {end - start:+.1f} MB",
            )
        )
    return result


def _lost_text(outcome: Outcome) -> str:
    if not outcome.lost:
        return f"all done {outcome.drain_seconds:.1f} s after the stream stopped"
    listed = ", ".join(f"{job} {status}" for job, status in outcome.lost[:LOST_LISTED])
    more = f" and {len(outcome.lost) - LOST_LISTED} more" if len(outcome.lost) > LOST_LISTED else ""
    return (
        f"after {GRACE_SECONDS} s of grace: {listed}{more} "
        "(all of them under tables.soak.lost_jobs in the JSON)"
    )


def tables(setup: Setup, outcome: Outcome) -> list[Table]:
    processes = [setup.api, *setup.workers]
    columns = [
        Column("slice", "slice"),
        Column("requests_per_second", "req/s", "req/s"),
        Column("p50_ms", "p50 ms", "ms"),
        Column("p99_ms", "p99 ms", "ms"),
        Column("lookup_errors", "lookup errors"),
        Column("job_post_errors", "job POST errors"),
        Column("jobs_accepted", "jobs accepted"),
        Column("jobs_succeeded", "jobs succeeded"),
        Column("jobs_backlog", "jobs backlog"),
        *(Column(_rss_key(p), f"{p.name} RSS MB", "MB") for p in processes),
    ]
    rows = [
        {
            "slice": done.label,
            "requests_per_second": done.load.requests_per_second,
            "p50_ms": done.load.p50_ms,
            "p99_ms": done.load.p99_ms,
            "lookup_errors": done.load.errors,
            "job_post_errors": done.job_post_errors,
            "jobs_accepted": done.jobs_accepted,
            "jobs_succeeded": done.jobs_succeeded,
            "jobs_backlog": done.backlog,
            **{_rss_key(p): done.rss_mb[p.name] for p in processes},
        }
        for done in [outcome.warm_up, *outcome.slices]
    ]
    note = (
        f"`buscar` paced at {LOOKUP_RATE} req/s over {LOOKUP_CONNECTIONS} connections (wrk, "
        f"{SLICE_SECONDS} s slices) and an export job POSTed every {1000 // JOB_RATE} ms, both "
        "from the warm-up to the last slice. Jobs are counted from their rows in PostgreSQL; "
        "RSS is VmRSS summed over each process tree."
    )
    details = {
        "settings": {
            "lookup_rate": LOOKUP_RATE,
            "lookup_connections": LOOKUP_CONNECTIONS,
            "job_rate": JOB_RATE,
            "slice_seconds": SLICE_SECONDS,
            "grace_seconds": GRACE_SECONDS,
        },
        "jobs_accepted": outcome.accepted,
        "export_posts_per_second": (outcome.accepted + len(outcome.post_failures))
        / outcome.stream_seconds,
        "drain_seconds": outcome.drain_seconds,
        "lost_jobs": [{"id": job, "status": status} for job, status in outcome.lost],
        "export_post_failures": outcome.post_failures,
        "exited_processes": outcome.exited,
    }
    evidence = [
        {"slice": done.label, **probe.row(done.interval, done.load.requests + done.jobs_accepted)}
        for done in [outcome.warm_up, *outcome.slices]
    ]
    return [
        Table("soak", f"Soak, {setup.seconds} s", columns, rows, note, details),
        Table(
            "soak_evidence",
            "Soak: the machine and the stores in each slice",
            [Column("slice", "slice"), *probe.COLUMNS],
            evidence,
            probe.NOTE,
        ),
    ]


def _rss_key(process: services.BenchProcess) -> str:
    return f"rss_{process.name.replace('-', '_')}_mb"
