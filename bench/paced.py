"""Tail latency under a steady load, open loop (issue 16): `buscar` at half the rate this run
measured at saturation, per-customer exports POSTed at 10/s meanwhile, for 5 minutes, reported
in 30 s slices with p50, p99 and p99.9 (target p99 ≤ 10 ms in every slice). Saturation is
measured under the same mix (wrk -c64 while the exports are POSTed at 10/s): half of `buscar`
alone's rate was not below saturation once the exports, their workers and the generator shared
the two cores (the quiet run of 2 Dec 2026, README).

The load comes from bench/paced_client.py, a process of its own that sends on a fixed schedule
and counts each latency from the request's scheduled time (no coordinated omission), and reports
its own lag and CPU so that a reader can tell the generator was not the bottleneck. Closed-loop
wrk (the `buscar` group) measures saturation; this measures latency at a load the service should
carry with room to spare.

At each slice's end the bench samples what could explain a slow slice, beside it in a second
table: the machine (load average, busy cores, and the CPU of each of our processes, of
PostgreSQL and Redis, and of everything else on the machine), the jobs table (rows, dead rows,
autovacuum and autoanalyze runs, size), PostgreSQL's sessions, and Redis (memory, keys).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import dataset as datasets
from bench import jobs, probe, services, soak, wrk
from bench.report import Column, Figure, Table, Target

SHARE_OF_SATURATION = 0.5
POST_RATE = 10  # export jobs a second
SLICE_SECONDS = 30
WARM_UP_SECONDS = 10  # its figures are shown, not judged: pools and caches fill
P99_TARGET_MS = 10
CONNECTIONS = 256  # enough that a stall queues requests on the server, not in the generator
TIMEOUT_SECONDS = 10
GRACE_SECONDS = soak.GRACE_SECONDS


@dataclass(frozen=True, slots=True)
class Setup:
    url: str
    key: str
    dataset: datasets.Dataset
    work_dir: Path
    api: services.BenchProcess
    workers: list[services.BenchProcess]  # the Celery workers and the scheduler
    seconds: int
    saturation: wrk.Load  # this run's closed-loop `buscar` (wrk -c64), export POSTs meanwhile
    saturation_alone: wrk.Load  # the same with nothing else (the `buscar` group's figure)
    env: dict[str, str]  # the API's environment


@dataclass(frozen=True, slots=True)
class Slice:
    label: str
    warm_up: bool
    result: dict[str, Any]  # the generator's line
    interval: probe.Interval

    def stream(self, name: str) -> dict[str, Any]:
        stream: dict[str, Any] = self.result[name]
        return stream

    def latency(self, name: str, percentile: str) -> float | None:
        value: float | None = self.stream(name)["latency_ms"][percentile]
        return value

    def errors(self, name: str) -> int:
        stream = self.stream(name)
        statuses: dict[str, int] = stream["statuses"]
        no_answer: dict[str, int] = stream["errors"]
        answered_badly = sum(count for status, count in statuses.items() if status[0] != "2")
        return answered_badly + sum(no_answer.values())

    @property
    def seconds(self) -> float:
        return self.interval.seconds

    @property
    def requests(self) -> int:
        return int(self.stream("lookups")["scheduled"]) + int(self.stream("posts")["scheduled"])

    def generator_cpu_us_per_request(self) -> float | None:
        cpu_seconds = float(self.result["generator_cpu_seconds"])
        return cpu_seconds * 1e6 / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class Outcome:
    rate: float  # lookups a second aimed at
    slices: list[Slice]
    accepted: list[str]
    lost: list[tuple[str, str]]
    drain_seconds: float
    gc_cost: dict[str, float]  # bench/gc_cost.py's line


def gc_cost(env: dict[str, str]) -> dict[str, float]:
    """One full collection of an API process's objects, frozen and not (bench/gc_cost.py)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.gc_cost"],
        env=env,
        cwd=services.ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    cost: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return cost


def measure(setup: Setup, say: Callable[[str], None]) -> tuple[list[Figure], list[Table]]:
    outcome = run(setup, say)
    return figures(setup, outcome), tables(setup, outcome)


def run(setup: Setup, say: Callable[[str], None]) -> Outcome:
    rate = setup.saturation.ok_per_second * SHARE_OF_SATURATION
    plan = [WARM_UP_SECONDS, *_plan(setup.seconds)]
    sample = datasets.documents(setup.dataset.url)
    config = {
        "host": "127.0.0.1",
        "port": int(setup.url.rsplit(":", 1)[1]),
        "authorization": f"Bearer {setup.key}",
        "lookup_paths": [datasets.buscar_path(codigo, numero) for codigo, numero in sample],
        "lookup_rate": rate,
        "post_path": jobs.export_path(setup.dataset.export_cliente_id),
        "post_rate": POST_RATE,
        "slices": plan,
        "connections": CONNECTIONS,
        "timeout": TIMEOUT_SECONDS,
    }
    config_path = setup.work_dir / "paced.json"
    config_path.write_text(json.dumps(config))
    say(
        f"paced: {rate:,.0f} lookups/s (half of {setup.saturation.ok_per_second:,.0f}, "
        f"{setup.saturation_alone.ok_per_second:,.0f} without the exports) and "
        f"{POST_RATE} exports/s for {WARM_UP_SECONDS} + {setup.seconds} s"
    )
    argv = [sys.executable, "-m", "bench.paced_client", str(config_path)]
    log = (services.LOG_DIR / "paced-client.log").open("ab")
    with psycopg.connect(setup.dataset.url, autocommit=True) as database:
        generator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            slices = _follow(setup, generator, database, plan, say)
        finally:
            if generator.poll() is None:
                generator.kill()
            generator.wait()
            log.close()
        accepted = [job for done in slices for job in done.stream("posts")["accepted"]]
        stopped = time.monotonic()
        statuses = soak.job_statuses(database, accepted)
        while soak.pending(statuses) and time.monotonic() - stopped < GRACE_SECONDS:
            time.sleep(0.5)
            statuses = soak.job_statuses(database, accepted)
    return Outcome(
        gc_cost=gc_cost(setup.env),
        rate=rate,
        slices=slices,
        accepted=accepted,
        lost=[(job, status) for job, status in statuses.items() if status != "succeeded"],
        drain_seconds=time.monotonic() - stopped,
    )


def _follow(
    setup: Setup,
    generator: subprocess.Popen[str],
    database: psycopg.Connection,
    plan: list[int],
    say: Callable[[str], None],
) -> list[Slice]:
    """Reads the generator's lines: a snapshot at each tick, a Slice once its figures come."""
    assert generator.stdout is not None
    watch = probe.Probe(setup.api, setup.url, setup.workers, setup.work_dir, database)
    snapshots = [watch.snapshot()]
    slices = []
    begin = 0
    for line in generator.stdout:
        message = json.loads(line)
        if message["kind"] == "tick":
            snapshots.append(watch.snapshot())
            continue
        index = message["slice"]
        seconds = plan[index]
        label = "warm-up" if index == 0 else f"{begin}–{begin + seconds} s"
        begin += 0 if index == 0 else seconds
        interval = probe.Interval(snapshots[index], snapshots[index + 1])
        done = Slice(label, index == 0, message, interval)
        slices.append(done)
        say(f"paced {label}: {_progress(done)}")
    if generator.wait() != 0 or len(slices) != len(plan):
        raise RuntimeError(
            f"the load generator exited with {generator.returncode} after {len(slices)} of "
            f"{len(plan)} slices; see {services.LOG_DIR / 'paced-client.log'}"
        )
    return slices


def _plan(seconds: int) -> list[int]:
    whole, rest = divmod(seconds, SLICE_SECONDS)
    return [SLICE_SECONDS] * whole + ([rest] if rest else [])


def _progress(done: Slice) -> str:
    lookups = done.stream("lookups")
    return (
        f"{lookups['ok'] / done.seconds:,.0f} lookups/s, p50 {_ms(done.latency('lookups', 'p50'))}"
        f", p99 {_ms(done.latency('lookups', 'p99'))}, p99.9 "
        f"{_ms(done.latency('lookups', 'p999'))} ms, {done.errors('lookups')} errors; "
        f"generator lag p99 {_ms(lookups['lag_ms']['p99'])} ms; load average "
        f"{done.interval.after.load_average:.1f}, not ours {done.interval.other_cores:.2f} cores, "
        f"stolen by the hypervisor {done.interval.steal_cores:.2f} cores"
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def figures(setup: Setup, outcome: Outcome) -> list[Figure]:
    measured = [done for done in outcome.slices if not done.warm_up]
    p99s = [done.latency("lookups", "p99") or 0.0 for done in measured]
    worst = max(measured, key=lambda done: done.latency("lookups", "p99") or 0.0)
    best = min(measured, key=lambda done: done.latency("lookups", "p99") or 0.0)
    over = sum(p99 > P99_TARGET_MS for p99 in p99s)
    ok = sum(done.stream("lookups")["ok"] for done in measured)
    seconds = sum(done.seconds for done in measured)
    errors = sum(done.errors("lookups") + done.errors("posts") for done in outcome.slices)
    lags = [done.stream("lookups")["lag_ms"]["p99"] or 0.0 for done in measured]
    generator_us = [done.generator_cpu_us_per_request() or 0.0 for done in measured]
    what = (
        f"{len(measured)} slices of {SLICE_SECONDS} s after a {WARM_UP_SECONDS} s warm-up; "
        f"load average {measured[0].interval.before.load_average:.1f} → "
        f"{measured[-1].interval.after.load_average:.1f}"
    )
    return [
        Figure(
            "paced_rate",
            "paced `buscar` (open loop): rate",
            "req/s",
            ok / seconds,
            setup.saturation.ok_per_second,
            f"the same run's saturation (wrk -t2 -c64, closed loop) with {POST_RATE} export "
            "POSTs a second meanwhile",
            Target("0.50× saturation", ratio_at_least=SHARE_OF_SATURATION * 0.97),
            f"aimed at {outcome.rate:,.0f} req/s; meanwhile {POST_RATE} export POSTs a second",
        ),
        Figure(
            "paced_saturation",
            "`buscar` at saturation with the export POSTs (wrk -t2 -c64)",
            "req/s",
            setup.saturation.ok_per_second,
            setup.saturation_alone.ok_per_second,
            "`buscar` alone at saturation, same run (the buscar group's figure)",
            note=f"p50 {setup.saturation.p50_ms:.1f} ms, p99 {setup.saturation.p99_ms:.1f} ms "
            f"(alone: {setup.saturation_alone.p50_ms:.1f}, "
            f"{setup.saturation_alone.p99_ms:.1f})",
        ),
        Figure(
            "paced_p99_worst",
            "paced `buscar`: p99 of the worst 30 s slice",
            "ms",
            worst.latency("lookups", "p99"),
            best.latency("lookups", "p99"),
            "p99 of the best slice",
            Target(f"≤ {P99_TARGET_MS} ms in every slice", at_most=P99_TARGET_MS),
            f"{over} of {len(measured)} slices over {P99_TARGET_MS} ms (worst: {worst.label}, "
            f"load average {worst.interval.after.load_average:.1f}, processes not ours "
            f"{worst.interval.other_cores:.2f} cores, stolen by the hypervisor "
            f"{worst.interval.steal_cores:.2f} cores); {what}",
        ),
        Figure(
            "paced_p50",
            "paced `buscar`: p50, median slice",
            "ms",
            statistics.median(done.latency("lookups", "p50") or 0.0 for done in measured),
            setup.saturation.p50_ms,
            "p50 at saturation (wrk -c64, with the exports)",
        ),
        Figure(
            "paced_p999_worst",
            "paced `buscar`: p99.9 of the worst slice",
            "ms",
            max(done.latency("lookups", "p999") or 0.0 for done in measured),
            setup.saturation.p99_ms,
            "p99 at saturation (wrk -c64, with the exports)",
        ),
        Figure(
            "paced_generator_lag",
            "paced load generator: its own lag, p99 of the worst slice",
            "ms",
            max(lags),
            worst.latency("lookups", "p99"),
            "`buscar` p99 of the worst slice",
            note="scheduled time → the request's task running in the generator (Python, uvloop); "
            f"its CPU {min(generator_us):.0f}–{max(generator_us):.0f} µs a request",
        ),
        Figure(
            "paced_api_full_gc_ms",
            "API process: CPU of one full garbage collection, start-up objects frozen (now)",
            "ms",
            outcome.gc_cost["frozen_ms"],
            outcome.gc_cost["unfrozen_ms"],
            "the same objects not frozen (before)",
            note=f"{outcome.gc_cost['objects']:,.0f} objects tracked after create_app; "
            "time.thread_time() around gc.collect(), median of 5 (bench/gc_cost.py)",
        ),
        Figure(
            "paced_errors",
            "paced: errors (non-2xx, no answer in 10 s), lookups and export POSTs",
            "",
            errors,
            target=Target("0", at_most=0),
        ),
        Figure(
            "paced_jobs_lost",
            "paced: export jobs accepted but not `succeeded`",
            "",
            len(outcome.lost),
            len(outcome.accepted),
            "accepted",
            Target("0", at_most=0),
            f"all terminal {outcome.drain_seconds:.1f} s after the stream stopped"
            if not outcome.lost
            else f"first: {outcome.lost[0][0]} {outcome.lost[0][1]}",
        ),
    ]


def tables(setup: Setup, outcome: Outcome) -> list[Table]:
    latency_columns = [
        Column("slice", "slice"),
        Column("lookups_per_second", "lookups/s", "req/s"),
        Column("p50_ms", "p50 ms", "ms"),
        Column("p99_ms", "p99 ms", "ms"),
        Column("p999_ms", "p99.9 ms", "ms"),
        Column("max_ms", "max ms", "ms"),
        Column("lookup_errors", "lookup errors"),
        Column("export_p99_ms", "export POST p99 ms", "ms"),
        Column("export_errors", "export errors"),
        Column("lag_p99_ms", "generator lag p99 ms", "ms"),
        Column("generator_us", "generator µs/req", "µs"),
        Column("load_average", "load avg", "×"),
        Column("other_cores", "not ours, cores", "×"),
        Column("steal_cores", "stolen, cores", "×"),
    ]
    latency_rows = [
        {
            "slice": done.label,
            "lookups_per_second": done.stream("lookups")["ok"] / done.seconds,
            "p50_ms": done.latency("lookups", "p50"),
            "p99_ms": done.latency("lookups", "p99"),
            "p999_ms": done.latency("lookups", "p999"),
            "max_ms": done.latency("lookups", "max"),
            "lookup_errors": done.errors("lookups"),
            "export_p99_ms": done.latency("posts", "p99"),
            "export_errors": done.errors("posts"),
            "lag_p99_ms": done.stream("lookups")["lag_ms"]["p99"],
            "generator_us": done.generator_cpu_us_per_request(),
            "load_average": done.interval.after.load_average,
            "other_cores": done.interval.other_cores,
            "steal_cores": done.interval.steal_cores,
        }
        for done in outcome.slices
    ]
    note = (
        f"`buscar` at {outcome.rate:,.0f} req/s (open loop: latency from each request's "
        f"scheduled time) and an export POST every {1000 // POST_RATE} ms, from "
        f"bench/paced_client.py over up to {CONNECTIONS} keep-alive connections. Generator lag: "
        "scheduled time → the request's task running. Not ours: the machine's busy cores less "
        "our processes, PostgreSQL and Redis; stolen: the time the hypervisor gave these cores to "
        "another machine while ours were ready to run (load average: 1 min)."
    )
    evidence_rows = [
        {"slice": done.label, **probe.row(done.interval, done.requests)} for done in outcome.slices
    ]
    details = {
        "settings": {
            "share_of_saturation": SHARE_OF_SATURATION,
            "saturation_with_exports": setup.saturation.ok_per_second,
            "saturation_alone": setup.saturation_alone.ok_per_second,
            "lookup_rate": outcome.rate,
            "post_rate": POST_RATE,
            "slice_seconds": SLICE_SECONDS,
            "warm_up_seconds": WARM_UP_SECONDS,
            "connections": CONNECTIONS,
        },
        "generator_lines": [
            done.result
            | {"posts": {**done.stream("posts"), "accepted": len(done.stream("posts")["accepted"])}}
            for done in outcome.slices
        ],
        "lost_jobs": [{"id": job, "status": status} for job, status in outcome.lost],
    }
    title = f"Paced `buscar` (open loop), {setup.seconds} s"
    return [
        Table("paced", title, latency_columns, latency_rows, note, details),
        Table(
            "paced_evidence",
            "Paced: the machine and the stores in each slice",
            [Column("slice", "slice"), *probe.COLUMNS],
            evidence_rows,
            probe.NOTE,
        ),
    ]
