"""One bench run: dataset, processes, every figure beside its same-run baseline, results.

Each group of figures is measured on its own: a group that fails (an endpoint missing, a job
failing) is reported as not measured with the reason, and the others still run.
"""

from __future__ import annotations

import filecmp
import os
import platform
import statistics
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg

from bench import (
    bulk,
    copy_baseline,
    drain,
    drivers,
    fast_lane,
    jobs,
    layers,
    layers_app,
    paced,
    pgbench,
    probe,
    report_split,
    services,
    soak,
    turns,
    webhooks,
    writers,
    wrk,
    xlsx_writers,
)
from bench import dataset as datasets
from bench.report import Column, Figure, Results, Table, Target, not_measured
from bench.sizes import PUBLIC_SIZES, Size
from harness import servers

RESULTS_DIR = Path(__file__).with_name("results")
WARM_UP_SECONDS = 3
EXPORT_SEQUENTIAL = 200
EXPORT_CONCURRENT = 600
DRAIN_QUEUED = 1000
DRAIN_ROUNDS = 2  # each design in turn, twice: the median of each is shown
# The exports worker as it was before issue 16 (prefork, two processes), against the Procfile's.
DRAIN_BASELINE_OPTIONS = {"--concurrency": "2"}
REPORT_RUNS = 3
BODY_SAMPLE = 51
# Every customer with a completed purchase: a window that starts before any seeded purchase.
# Every purchase the seed makes (the last 90 days) within the longest window a report may span
# (REPORT_MAX_DAYS, 366 by default): the API refuses a wider one.
EVERY_CUSTOMER = {"desde": (date.today() - timedelta(days=365)).isoformat(), "monto_minimo": "0"}
EMPTY_REPORT = {"desde": "2000-01-01", "hasta": "2000-01-02", "formato": "csv"}
EXPORTS_WORKER = "worker-exports"
REPORTS_WORKER = "worker-reports"
BULK_WORKER = "worker-bulk"
API = "api"
# A 1M-row csv report in 10 s, and a 1M-customer seed in 3 min, as rates that apply to any size.
CSV_ROWS_PER_SECOND = 1_000_000 / 10
SEED_SECONDS_PER_MILLION = 180
RSS_GROWTH_MB = 64

T = TypeVar("T")


@dataclass
class Context:
    size: Size
    dataset: datasets.Dataset
    work_dir: Path
    url: str
    key: str
    env: dict[str, str]
    processes: list[services.BenchProcess]
    client: httpx.Client
    seconds: int
    buscar: wrk.Load | None = None
    idle_rss_mb: float | None = None
    soak_seconds: int = 0
    paced_seconds: int = 0
    tables: list[Table] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return services.LOG_DIR / "load.log"

    def process(self, name: str) -> services.BenchProcess:
        for process in self.processes:
            if process.name == name:
                return process
        raise RuntimeError(f"no process {name!r} in the Procfile")


def say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run(
    size: Size,
    seconds: int,
    only: frozenset[str] | None = None,
    soak_seconds: int | None = None,
    paced_seconds: int | None = None,
) -> Results:
    """Every group of figures, or those named in `only`; the soak for `soak_seconds` and the
    paced run for `paced_seconds` (the size's defaults when None)."""
    started = datetime.now(UTC)
    load_at_start = os.getloadavg()[0]
    work_dir = services.fresh_work_dir(size.name)
    say(f"dataset {size.database} ({size.marker})")
    dataset = datasets.prepare(size, services.LOG_DIR / "seed_data.log")
    built = f"seeded in {dataset.seed_seconds:.1f} s" if dataset.rebuilt else "reused"
    say(f"dataset ready ({built})")
    key = services.create_key(dataset.url)
    port = servers.free_port()
    env = services.environment(dataset.url, key, port, work_dir)
    url = f"http://127.0.0.1:{port}"
    figures: list[Figure] = []
    tables: list[Table] = []
    with services.running(services.procfile_processes(env, work_dir)) as processes:
        # Up to 3 min: on a machine shared with busy runs the API takes a while to import.
        services.wait_ready(url, "/ready", processes, timeout=180)
        say(f"processes up: {', '.join(p.name for p in processes)}; API at {url}")
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=auth, timeout=jobs.WAIT_SECONDS + 30) as client:
            context = Context(size, dataset, work_dir, url, key, env, processes, client, seconds)
            context.soak_seconds = soak_seconds or size.soak_seconds
            context.paced_seconds = paced_seconds or size.paced_seconds
            for name, title, measure in GROUPS:
                if only is None or name in only:
                    say(title)
                    figures += _guarded(title, measure, context)
            tables = context.tables
    if only is None or SEED in only:
        figures += _guarded("seed_data", seed_figures, dataset)
    compras = _purchases(dataset.url)
    load_at_end = os.getloadavg()[0]
    seconds_taken = (datetime.now(UTC) - started).total_seconds()
    commit = _commit()
    meta = {
        "dataset": {
            "clientes": size.clientes,
            "compras": compras,
            "seed": size.seed,
            "built_at": dataset.built_at,
        },
        "commit": commit,
        "machine": {
            "cores": os.cpu_count(),
            "load_average_start": load_at_start,
            "load_average_end": load_at_end,
        },
        "started": started.isoformat(timespec="seconds"),
        "duration_seconds": round(seconds_taken),
        "python": platform.python_version(),
    }
    summary = [
        f"dataset: {size.clientes:,} customers, {compras:,} purchases, seed {size.seed} "
        f"(built {dataset.built_at[:19]})",
        f"commit: {commit}; started {meta['started']}, took {seconds_taken:.0f} s",
        f"machine: {os.cpu_count()} cores shared by servers and load generators; load average "
        f"{load_at_start:.2f} at start, {load_at_end:.2f} at end (figures drift with it: "
        "compare ratios)",
    ]
    return Results(size.name, meta, summary, figures, tables)


def results_dir(size: Size, only: frozenset[str] | None = None) -> Path:
    # The development size, and a run of some groups only, never replace the committed results.
    committed = size.name in PUBLIC_SIZES and only is None
    return RESULTS_DIR if committed else services.WORK_DIR / "results"


def _guarded(title: str, measure: Callable[[T], list[Figure]], context: T) -> list[Figure]:
    try:
        return measure(context)
    except Exception as error:
        with (services.LOG_DIR / "errors.log").open("a") as log:
            log.write(f"--- {title}\n{traceback.format_exc()}\n")
        why = _describe(error)
        say(f"{title}: not measured ({why})")
        return [not_measured(title, title, "", None, why)]


def _describe(error: BaseException) -> str:
    """One line: the error, or the low-level one under it when it says nothing itself."""
    cause = error.__cause__ or error.__context__
    text = str(error).strip() or (repr(cause) if cause else "")
    return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else '(no message)'}"


# 1. The lookup, beside the HTTP and the database ceilings.


def lookup_figures(context: Context) -> list[Figure]:
    sample = datasets.documents(context.dataset.url)
    requests = datasets.buscar_requests(context.work_dir / "buscar.lua", sample)
    load = _load(context, context.url, requests)
    context.buscar = load
    ceiling, ceiling_note = _attempt(lambda: _http_ceiling(context, sample, "fastapi"))
    bare, bare_note = _attempt(lambda: _http_ceiling(context, sample, "asgi"))
    database, database_note = _attempt(lambda: _database_ceiling(context))
    ceiling_name = (
        "HTTP ceiling: FastAPI route sending a constant JSON of the same size, same server settings"
    )
    return [
        Figure(
            "buscar_rps",
            "`buscar` full detail, wrk -t2 -c64: rate",
            "req/s",
            load.requests_per_second,
            ceiling.requests_per_second if ceiling else None,
            ceiling_name,
            Target("≥ 4,000 req/s and ≥ 0.25× HTTP ceiling", at_least=4000, ratio_at_least=0.25),
            ceiling_note,
        ),
        Figure(
            "buscar_rps_vs_bare_asgi",
            "`buscar` rate vs the bare server",
            "req/s",
            load.requests_per_second,
            bare.requests_per_second if bare else None,
            "bare ASGI callable sending the same constant JSON, same server settings",
            note=bare_note,
        ),
        Figure(
            "buscar_rps_vs_database",
            "`buscar` rate vs the database ceiling",
            "req/s",
            load.requests_per_second,
            database.transactions_per_second if database else None,
            "pgbench -M prepared -c8 -j2, the API's own lookup SQL (TPS)",
            Target("≥ 0.20× pgbench", ratio_at_least=0.20),
            database_note,
        ),
        Figure(
            "buscar_p50",
            "`buscar` latency p50",
            "ms",
            load.p50_ms,
            ceiling.p50_ms if ceiling else None,
            "HTTP ceiling p50",
        ),
        Figure(
            "buscar_p99",
            "`buscar` latency p99",
            "ms",
            load.p99_ms,
            ceiling.p99_ms if ceiling else None,
            "HTTP ceiling p99",
            Target("≤ 30 ms", at_most=30),
        ),
        Figure(
            "buscar_errors",
            "`buscar` errors (non-2xx + socket)",
            "",
            load.errors,
            ceiling.errors if ceiling else None,
            "HTTP ceiling errors",
            Target("0", at_most=0),
            f"{load.non_2xx} non-2xx, {load.socket_errors} socket errors" if load.errors else "",
        ),
    ]


def lane_figures(context: Context) -> list[Figure]:
    """The fast lane on against off (bench/fast_lane.py): the lane stays only if it saves at
    least 15% of the API's CPU per request (issue 11)."""
    requests = _buscar_requests(context)
    authorization = f"Bearer {context.key}"
    lanes = fast_lane.measure(
        context.env, requests, authorization, context.seconds, context.log, say
    )
    route = f"{fast_lane.SETTING}=false (the FastAPI route), same load, in turns"
    how = f"{fast_lane.ROUNDS} rounds of {context.seconds} s each way, the order swapped each round"
    errors = sum(turn.load.errors for turn in lanes.on + lanes.off)

    def per_round(measure: Callable[[turns.Turn], float]) -> str:
        return ", ".join(f"{ratio:.2f}" for ratio in lanes.round_ratios(measure))

    return [
        Figure(
            "lane_cpu_us",
            "`buscar` fast lane on: API CPU per request (/proc, process tree)",
            "µs",
            turns.cpu_us_per_request(lanes.on),
            turns.cpu_us_per_request(lanes.off),
            route,
            Target("≤ 0.85× the route (saves ≥ 15%: keep the lane)", ratio_at_most=0.85),
            f"{how}; on ÷ off per round: {per_round(lambda turn: turn.cpu_us_per_request)}",
        ),
        Figure(
            "lane_rps",
            "`buscar` fast lane on: rate",
            "req/s",
            turns.requests_per_second(lanes.on),
            turns.requests_per_second(lanes.off),
            route,
            None,
            f"on ÷ off per round: {per_round(lambda turn: turn.load.requests_per_second)}"
            + (f"; {errors} errors (non-2xx + socket)" if errors else ""),
        ),
    ]


def layer_figures(context: Context) -> list[Figure]:
    """What each layer costs (bench/layers.py): the API with each layer off in turn and the bare
    floor, one process each, the same load in turns; and the server A/B, uvicorn against
    granian. Target: the API as deployed ≤ 1.10× the floor (issue 16)."""
    requests = _buscar_requests(context)
    seconds = max(5, context.seconds * 2 // 5)
    taken = layers.measure(
        context.env, requests, f"Bearer {context.key}", seconds, context.log, say
    )
    floor = taken[layers.FLOOR]
    full = taken[layers.FULL]
    floor_us = turns.cpu_us_per_request(floor)
    how = f"{layers.ROUNDS} rounds of {seconds} s per server, the order rotated each round"

    def per_round(variant_turns: list[turns.Turn], baseline: list[turns.Turn]) -> str:
        ratios = turns.round_ratios(variant_turns, baseline, lambda t: t.cpu_us_per_request)
        return ", ".join(f"{ratio:.2f}" for ratio in ratios)

    rows = []
    for variant, variant_turns in taken.items():
        cpu = turns.cpu_us_per_request(variant_turns)
        errors = sum(turn.load.errors for turn in variant_turns)
        rows.append(
            {
                "variant": variant.label,
                "off": layers_app.DESCRIPTIONS[variant.name],
                "cpu_us": cpu,
                "ratio": cpu / floor_us,
                "saves_us": turns.cpu_us_per_request(full) - cpu,
                "per_round": per_round(variant_turns, floor),
                "rps": turns.requests_per_second(variant_turns),
                "errors": errors,
            }
        )
    columns = [
        Column("variant", "server"),
        Column("off", "switched off"),
        Column("cpu_us", "CPU/request", "µs"),
        Column("ratio", "÷ floor", "×"),
        Column("saves_us", "full − this", "µs"),
        Column("per_round", "÷ floor per round"),
        Column("rps", "rate", "req/s"),
        Column("errors", "errors"),
    ]
    note = (
        f"`buscar` requests, wrk -t2 -c{wrk.CONNECTIONS}; {how}. CPU: the server's process tree "
        "user + system time (/proc) over the requests completed. Unmarked rows: uvicorn + "
        "httptools with the API's server settings (services/query_api/__main__.py)."
    )
    context.tables.append(Table("layers", "What each layer costs", columns, rows, note))
    granian = taken[layers.GRANIAN_FULL]
    return [
        Figure(
            "layers_full_cpu_us",
            "`buscar`, the API as deployed: CPU per request, one process",
            "µs",
            turns.cpu_us_per_request(full),
            floor_us,
            "bare ASGI app doing the same rate limiter and pool query",
            Target("≤ 1.10× the floor", ratio_at_most=1.10),
            f"{how}; ÷ floor per round: {per_round(full, floor)}",
        ),
        Figure(
            "granian_cpu_us",
            "`buscar`, the API served by granian: CPU per request",
            "µs",
            turns.cpu_us_per_request(granian),
            turns.cpu_us_per_request(full),
            "the same app on uvicorn + httptools",
            Target("≤ 0.90× uvicorn (saves ≥ 10%: worth adopting)", ratio_at_most=0.90),
            f"÷ uvicorn per round: {per_round(granian, full)}",
        ),
        Figure(
            "granian_rps",
            "`buscar`, the API served by granian: rate",
            "req/s",
            turns.requests_per_second(granian),
            turns.requests_per_second(full),
            "the same app on uvicorn + httptools",
        ),
    ]


def _attempt(measure: Callable[[], T]) -> tuple[T | None, str]:
    """A baseline that may fail without taking its figure with it."""
    try:
        return measure(), ""
    except Exception as error:
        with (services.LOG_DIR / "errors.log").open("a") as log:
            log.write(traceback.format_exc() + "\n")
        return None, f"baseline not measured: {_describe(error)}"


def _buscar_requests(context: Context) -> Path:
    """wrk's `buscar` requests over the dataset's sample of documents."""
    sample = datasets.documents(context.dataset.url)
    return datasets.buscar_requests(context.work_dir / "buscar.lua", sample)


def _load(context: Context, url: str, requests: Path) -> wrk.Load:
    """A short warm-up (pools, caches, prepared statements), then the measured run."""
    authorization = f"Bearer {context.key}"
    wrk.run(url, requests, authorization, WARM_UP_SECONDS, context.log)
    return wrk.run(url, requests, authorization, context.seconds, context.log)


def _http_ceiling(context: Context, sample: list[tuple[str, str]], app: str) -> wrk.Load:
    body = _typical_body(context, sample)
    port = servers.free_port()
    server = services.constant_server(context.env, port, body, app)
    with services.running([server]):
        url = f"http://127.0.0.1:{port}"
        services.wait_ready(url, "/", [server])
        requests = datasets.write_requests(context.work_dir / "constant.lua", "GET", [("/", None)])
        return _load(context, url, requests)


def _typical_body(context: Context, sample: list[tuple[str, str]]) -> Path:
    """A real `buscar` answer of median size, saved for the constant server to send."""
    bodies = []
    for codigo, numero in sample[:BODY_SAMPLE]:
        response = context.client.get(datasets.buscar_path(codigo, numero))
        response.raise_for_status()
        bodies.append(response.content)
    bodies.sort(key=len)
    path = context.work_dir / "constant-body.json"
    path.write_bytes(bodies[len(bodies) // 2])
    return path


def _database_ceiling(context: Context) -> pgbench.Ceiling:
    script = pgbench.script(pgbench.lookup_statement(), context.dataset.documents)
    path = context.work_dir / "lookup.pgbench"
    path.write_text(script)
    ceiling = pgbench.run(context.dataset.url, path, context.seconds, context.log)
    if ceiling.failed:
        raise RuntimeError(f"{ceiling.failed} pgbench transactions failed")
    return ceiling


# 2. Batch lookups.


def driver_figures(context: Context) -> list[Figure]:
    """SQLAlchemy's async engine against psycopg's pool for the lookup SQL (bench/drivers.py);
    the API is idle meanwhile."""
    documents = datasets.documents(context.dataset.url)
    measured = drivers.compare(context.dataset.url, documents, context.seconds / 2)
    alchemy, plain = measured.sqlalchemy, measured.psycopg
    what = (
        f"{drivers.CONCURRENCY} concurrent lookups in one process, {context.seconds / 2:.0f} s each"
    )
    return [
        Figure(
            "driver_cpu_us",
            "lookup SQL via psycopg's async pool: CPU per query",
            "µs",
            plain.cpu_us_per_query,
            alchemy.cpu_us_per_query,
            "the same SQL via SQLAlchemy's async engine",
            note=what,
        ),
        Figure(
            "driver_qps",
            "lookup SQL via psycopg's async pool: rate",
            "queries/s",
            plain.queries_per_second,
            alchemy.queries_per_second,
            "the same SQL via SQLAlchemy's async engine",
        ),
    ]


def lote_figures(context: Context) -> list[Figure]:
    sample = datasets.documents(context.dataset.url)
    requests = datasets.lote_requests(context.work_dir / "lote.lua", sample)
    load = _load(context, context.url, requests)
    single = context.buscar.ok_per_second if context.buscar else None
    errors = f"; {load.non_2xx} non-2xx, {load.socket_errors} socket errors" if load.errors else ""
    return [
        Figure(
            "lote_customers_per_s",
            f"`buscar/lote`, {datasets.LOTE_SIZE} documents a request",
            "customers/s",
            load.ok_per_second * datasets.LOTE_SIZE,
            single,
            "single `buscar` customers/s",
            Target("≥ 40,000 customers/s", at_least=40_000),
            f"{load.requests_per_second:,.0f} req/s, p99 {load.p99_ms:.1f} ms{errors}",
        )
    ]


# 3. Export jobs.


def export_figures(context: Context) -> list[Figure]:
    cliente_id = context.dataset.export_cliente_id
    jobs.export_latencies(context.client, cliente_id, 5)  # warm-up: imports, pools, queues
    sequential = jobs.export_latencies(context.client, cliente_id, EXPORT_SEQUENTIAL)
    total = [timed.seconds * 1000 for timed in sequential]
    created = [timed.created_seconds * 1000 for timed in sequential]
    one_call = [s * 1000 for s in jobs.one_call_latencies(context.client, cliente_id, 20)]
    burst, burst_cpu = _with_cpu_split(
        context,
        lambda: jobs.export_throughput(context.url, context.key, cliente_id, EXPORT_CONCURRENT),
    )
    purchases = datasets.purchases_of(context.dataset.url, cliente_id)
    what = (
        f"{EXPORT_SEQUENTIAL} sequential {jobs.EXPORT_FORMAT} exports of customer {cliente_id} "
        f"({purchases} purchases)"
    )
    return [
        Figure(
            "export_p50",
            "export job, 10-purchase customer: POST → `succeeded` median",
            "ms",
            statistics.median(total),
            statistics.median(created),
            "POST → 202 alone (median)",
            Target("≤ 15 ms", at_most=15),
            what,
        ),
        Figure(
            "one_call_p50",
            "one-call export, 10-purchase customer: `GET exportar?wait=10` → file received median",
            "ms",
            statistics.median(one_call),
            statistics.median(created),
            "POST → 202 alone (median)",
            Target("≤ 2× POST → 202", ratio_at_most=2),
            "20 sequential requests following the 303 to the download with the same key",
        ),
        Figure(
            "export_p99",
            "export job: POST → `succeeded` p99",
            "ms",
            _percentile(total, 99),
            _percentile(created, 99),
            "POST → 202 alone (p99)",
            Target("≤ 50 ms", at_most=50),
        ),
        Figure(
            "export_jobs_per_s",
            "export jobs end to end: POSTed at once, followed to `succeeded`",
            "jobs/s",
            burst.jobs_per_second,
            burst.created_per_second,
            "jobs accepted/s (POST → 202)",
            Target("≥ 300 jobs/s", at_least=300),
            f"{EXPORT_CONCURRENT} jobs fired at once over {jobs.CONCURRENT_CONNECTIONS} "
            f"connections, then followed (`?wait=`) until succeeded; {burst.errors} POSTs "
            "without an answer; CPU a job (ms): "
            + ", ".join(
                f"{group} {seconds * 1000 / burst.jobs:.1f}" for group, seconds in burst_cpu.items()
            ),
        ),
        *drain_figures(context),
    ]


def _with_cpu_split(context: Context, measure: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """`measure()`, and the CPU seconds each group of processes (probe.GROUPS) used meanwhile."""
    api = context.process(API)
    workers = [process for process in context.processes if process is not api]
    with psycopg.connect(context.dataset.url, autocommit=True) as database:
        watch = probe.Probe(api, context.url, workers, context.work_dir, database)
        before = watch.snapshot()
        measured = measure()
        interval = probe.Interval(before, watch.snapshot())
    return measured, {group: interval.cores(group) * interval.seconds for group in probe.GROUPS}


def drain_figures(context: Context) -> list[Figure]:
    """The Procfile's exports worker against the design before it (DRAIN_BASELINE_OPTIONS),
    each draining DRAIN_QUEUED exports made while no worker consumed (bench/drain.py)."""
    cliente_id = context.dataset.export_cliente_id
    worker = context.process(EXPORTS_WORKER)
    baseline_argv = servers.replace_options(worker.argv, DRAIN_BASELINE_OPTIONS)
    designs = {
        "baseline": services.BenchProcess(f"{EXPORTS_WORKER}-before", baseline_argv, context.env),
        "procfile": services.BenchProcess(f"{EXPORTS_WORKER}-drain", worker.argv, context.env),
    }
    drains: dict[str, list[drain.Drain]] = {name: [] for name in designs}
    worker.stop()
    try:
        for _ in range(DRAIN_ROUNDS):
            for name, process in designs.items():
                queued = jobs.create_exports(context.url, context.key, cliente_id, DRAIN_QUEUED)
                drains[name].append(drain.run(context.dataset.url, queued, process))
    finally:
        worker.start()
    jobs.export_latencies(context.client, cliente_id, 2)  # the Procfile's worker is back

    def median(name: str, value: Callable[[drain.Drain], float]) -> float:
        return statistics.median(value(run) for run in drains[name])

    def rates(name: str) -> str:
        return "/".join(f"{run.jobs_per_second:.0f}" for run in drains[name])

    def option(argv: list[str]) -> str:
        return f"--concurrency {servers.option_value(argv, '--concurrency')}"

    return [
        Figure(
            "export_drain_per_s",
            f"export jobs drained by one exports worker ({option(worker.argv)})",
            "jobs/s",
            median("procfile", lambda run: run.jobs_per_second),
            median("baseline", lambda run: run.jobs_per_second),
            f"the worker before issue 16 ({option(baseline_argv)}), same queue",
            Target("≥ 100 jobs/s", at_least=100),
            f"{DRAIN_QUEUED} exports queued first, then run by the worker alone, timed from the "
            f"first claim to the last success; median of {DRAIN_ROUNDS} rounds taken in turn "
            f"({rates('procfile')} against {rates('baseline')} jobs/s); worker CPU a job "
            f"{median('procfile', lambda run: run.cpu_ms_per_job):.1f} ms against "
            f"{median('baseline', lambda run: run.cpu_ms_per_job):.1f} ms",
        )
    ]


def _percentile(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


# 4. The loyalty report, beside PostgreSQL alone running the same aggregate.


def loyalty_figures(context: Context) -> list[Figure]:
    worker = context.process(REPORTS_WORKER)
    jobs.report(context.client, EMPTY_REPORT)  # warm-up: the worker has imported everything
    context.idle_rss_mb = services.peak_rss_mb(worker)
    runs = [jobs.report(context.client) for _ in range(REPORT_RUNS)]
    copies = [
        copy_baseline.seconds(context.dataset.url, run.job["params"], context.log) for run in runs
    ]
    peak = services.peak_rss_mb(worker)
    limit = 10.0 if context.size.clientes >= 1_000_000 else 1.0
    result = runs[-1].job["result"] or {}
    return [
        Figure(
            "loyalty_seconds",
            "loyalty report (default parameters): POST → `succeeded`",
            "s",
            statistics.median(run.seconds for run in runs),
            statistics.median(copies),
            "psql COPY of the worker's aggregate to /dev/null",
            Target(f"≤ {limit:g} s and ≤ 2.5× COPY", at_most=limit, ratio_at_most=2.5),
            f"median of {REPORT_RUNS}; {result.get('row_count', '?')} rows, "
            f"{result.get('content_type', '?')}",
        ),
        Figure(
            "loyalty_worker_rss",
            "reports worker peak RSS (VmHWM) after the loyalty reports",
            "MB",
            peak,
            context.idle_rss_mb,
            "same worker after a warm-up job",
            Target("≤ 150 MB", at_most=150),
        ),
    ]


# 5. A report of every customer: the csv job beside PostgreSQL alone, its split, and the xlsx.


def every_customer_figures(context: Context) -> list[Figure]:
    csv_run = jobs.report(context.client, {**EVERY_CUSTOMER, "formato": "csv"})
    xlsx_run = jobs.report(context.client, {**EVERY_CUSTOMER, "formato": "excel"})
    peak = services.peak_rss_mb(context.process(REPORTS_WORKER))
    rows = int(csv_run.job["result"]["row_count"])
    params = csv_run.job["params"]
    copy = copy_baseline.seconds(context.dataset.url, params, context.log)
    files = {path: context.work_dir / f"split-{path}.csv" for path in report_split.PATHS}
    splits = {
        path: report_split.measure(context.dataset.url, params, path, file)
        for path, file in files.items()
    }
    same = filecmp.cmp(files["postgresql_records"], files["python_values"], shallow=False)
    plan = report_split.explain(context.dataset.url, params)
    (services.LOG_DIR / "every-customer-plan.txt").write_text(plan.text + "\n")
    people = writers.sample_people(context.dataset.url)
    xlsx_seconds = writers.xlsx_seconds(people, rows)
    idle = context.idle_rss_mb
    claimed_to_stored = _job_seconds(csv_run.job, "started_at", "finished_at")
    # 1M rows in 10 s (issue 16 item 5), as a rate that applies to any size.
    limit = rows / CSV_ROWS_PER_SECOND
    return [
        Figure(
            "every_customer_csv_seconds",
            "report of every customer (`monto_minimo=0`), csv: job claimed → file stored",
            "s",
            claimed_to_stored,
            copy,
            "psql COPY of the worker's aggregate to /dev/null",
            Target(f"≤ {limit:.2f} s ({rows:,} rows; 1M rows ≤ 10 s)", at_most=limit),
            f"{rows:,} rows, {int(csv_run.job['result']['size_bytes']) / 1e6:,.0f} MB, "
            f"{rows / claimed_to_stored:,.0f} rows/s; POST → `succeeded` {csv_run.seconds:.2f} s",
        ),
        *_split_figures(splits, plan, same),
        Figure(
            "every_customer_xlsx_seconds",
            "report of every customer, xlsx",
            "s",
            xlsx_run.seconds,
            xlsx_seconds,
            "XlsxWriter constant_memory, same rows, no formatting",
            Target("≤ 1.2× the bare writer", ratio_at_most=1.2),
            f"{int(xlsx_run.job['result']['row_count']):,} rows, "
            f"{rows / xlsx_run.seconds:,.0f} rows/s",
        ),
        Figure(
            "every_customer_worker_rss",
            "reports worker peak RSS after the every-customer reports",
            "MB",
            peak,
            idle,
            "same worker after a warm-up job",
            Target(f"flat: ≤ idle + {RSS_GROWTH_MB} MB", at_most=idle + RSS_GROWTH_MB)
            if idle is not None
            else None,
        ),
    ]


def _split_figures(
    splits: dict[str, report_split.Split], plan: report_split.Plan, same: bool
) -> list[Figure]:
    """The worker's csv path (PostgreSQL writes the records) beside the path before it (Python
    values through the csv module), part by part, rendered in the bench process."""
    new, old = splits["postgresql_records"], splits["python_values"]
    before = "Python values + csv module (the path before)"
    parts = [
        (
            "first_rows",
            "PostgreSQL: statement → first rows (aggregate, join, sort)",
            new.first_rows,
            old.first_rows,
            f"EXPLAIN ANALYZE of the records statement: {plan.execution_seconds:.2f} s; "
            f"{plan.summary}",
        ),
        (
            "fetch",
            "fetch: the other rows into Python (psycopg, binary)",
            new.fetch,
            old.fetch,
            f"{new.rows:,} rows: {new.fetch / max(new.rows, 1) * 1e6:.2f} µs a row against "
            f"{old.fetch / max(old.rows, 1) * 1e6:.2f}",
        ),
        (
            "write",
            "write: header + records joined into the file",
            new.write,
            old.write,
            f"{new.write / max(new.rows, 1) * 1e6:.2f} µs a row against "
            f"{old.write / max(old.rows, 1) * 1e6:.2f} (csv module, formula check per value)",
        ),
        (
            "total",
            "whole render in one process",
            new.total,
            old.total,
            f"the same {new.size_bytes:,} bytes both ways"
            if same
            else f"THE FILES DIFFER: {new.size_bytes:,} against {old.size_bytes:,} bytes",
        ),
    ]
    return [
        Figure(
            f"every_customer_csv_split_{key}",
            f"every-customer csv, split: {name}",
            "s",
            measured,
            baseline,
            before,
            None,
            note,
        )
        for key, name, measured, baseline, note in parts
    ]


def _job_seconds(job: jobs.Job, start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


# 6. The soak: lookups and export jobs at a steady rate for minutes (bench/soak.py).


def soak_figures(context: Context) -> list[Figure]:
    setup = soak.Setup(
        url=context.url,
        key=context.key,
        dataset=context.dataset,
        work_dir=context.work_dir,
        log=context.log,
        api=context.process(API),
        workers=[process for process in context.processes if "worker" in process.argv],
        seconds=context.soak_seconds,
        others=[p for p in context.processes if p.name != API and "worker" not in p.argv],
    )
    figures, tables = soak.measure(setup, say)
    context.tables += tables
    return figures


# 6b. Tail latency under a steady load, open loop (bench/paced.py).


def paced_figures(context: Context) -> list[Figure]:
    """Half the rate at which this run saturates under the paced run's own mix: wrk -t2 -c64
    as the `buscar` group, while export jobs are POSTed as in the paced run. The `buscar`
    group's figure alone (measured here when that group did not run) is shown beside it."""
    requests = _buscar_requests(context)
    if context.buscar is None:
        say("paced: measuring saturation first (wrk -t2 -c64, as the buscar group)")
        context.buscar = _load(context, context.url, requests)
    say(f"paced: saturation with {paced.POST_RATE} export POSTs a second meanwhile (wrk -c64)")
    exports = soak.JobStream(
        context.url, context.key, context.dataset.export_cliente_id, paced.POST_RATE
    )
    exports.start()
    try:
        with_exports = _load(context, context.url, requests)
    finally:
        exports.stop()
    if exports.error is not None or exports.failures:
        raise RuntimeError(f"export POSTs failed: {exports.error or exports.failures[:3]}")
    setup = paced.Setup(
        url=context.url,
        key=context.key,
        dataset=context.dataset,
        work_dir=context.work_dir,
        api=context.process(API),
        workers=[process for process in context.processes if process.name != API],
        seconds=context.paced_seconds,
        saturation=with_exports,
        saturation_alone=context.buscar,
        env=context.env,
    )
    figures, tables = paced.measure(setup, say)
    context.tables += tables
    return figures


# 7. Webhooks (bench/webhooks.py): push latency beside the job's own time; no loss under failures.


def webhook_figures(context: Context) -> list[Figure]:
    cliente_id = context.dataset.export_cliente_id
    jobs.export_latencies(context.client, cliente_id, 5)  # warm-up
    pushed = webhooks.latency(context.client, cliente_id)
    loss = webhooks.no_loss(context.client, context.dataset.url, cliente_id)
    what = f"{webhooks.LATENCY_JOBS} sequential exports, a receiver in the bench process"
    return [
        Figure(
            "webhook_p50",
            "webhook: event recorded → receiver has it, median",
            "ms",
            statistics.median(pushed.event_ms),
            statistics.median(pushed.job_ms),
            "the same jobs' created → succeeded (median)",
            note=what,
        ),
        Figure(
            "webhook_p99",
            "webhook: event recorded → receiver has it, p99",
            "ms",
            _percentile(pushed.event_ms, 99),
            _percentile(pushed.job_ms, 99),
            "the same jobs' created → succeeded (p99)",
        ),
        Figure(
            "webhook_lost",
            f"webhook events lost, receiver failing 1 request in {webhooks.FAIL_ONE_IN}",
            "events",
            loss.lost,
            loss.events,
            "recorded",
            Target("0", at_most=0),
            f"{webhooks.LOSS_JOBS} jobs × {webhooks.LOSS_ENDPOINTS} endpoints; {loss.delivered} "
            f"delivered, {loss.answered_2xx} answered 2xx, {loss.requests} POSTs in all, "
            f"{loss.seconds:.1f} s from the first job to the last delivery",
        ),
    ]


# 8. Bulk exports (bench/bulk.py), beside the csv module and orjson writing the same rows.


def bulk_figures(context: Context) -> list[Figure]:
    worker = context.process(BULK_WORKER)
    cliente_id = context.dataset.export_cliente_id
    bulk.export(context.client, {"filtro": {"ids": [cliente_id]}})  # warm-up: imports, pools
    idle = services.peak_rss_mb(worker)
    every = bulk.export(context.client, {"formato": "csv"})
    peak = services.peak_rss_mb(worker)
    rows = int(every.job["result"]["row_count"])
    header, sample = bulk.csv_sample(context.client, every.job)
    csv_seconds = bulk.csv_seconds(header, sample, rows)
    documentos = bulk.documents(context.dataset.url)
    by_documents = bulk.export(context.client, {"filtro": {"documentos": documentos}})
    lote = _load(
        context,
        context.url,
        datasets.lote_requests(
            context.work_dir / "lote.lua", datasets.documents(context.dataset.url)
        ),
    )
    jsonl = bulk.export(context.client, {"formato": "jsonl", "incluir_compras": True})
    customers = int(jsonl.job["result"]["row_count"])
    objects = bulk.jsonl_sample(context.client, jsonl.job)
    orjson_seconds = bulk.orjson_seconds(objects, customers)
    found = len(documentos) - int(by_documents.job["result"]["not_found"])
    return [
        Figure(
            "bulk_csv_rows_per_s",
            "bulk export of every customer, csv, one row per customer",
            "rows/s",
            rows / every.seconds,
            rows / csv_seconds,
            "csv module writing the same rows (read back from the file) in one process",
            Target("≥ 0.5× the csv module", ratio_at_least=0.5),
            f"{rows:,} rows, {every.job['result']['size_bytes'] / 1e6:,.1f} MB in "
            f"{every.seconds:.2f} s (POST → `succeeded`)",
        ),
        Figure(
            "bulk_worker_rss",
            "bulk worker peak RSS (VmHWM) after the every-customer export",
            "MB",
            peak,
            idle,
            "same worker after a warm-up job",
            Target(f"flat: ≤ idle + {RSS_GROWTH_MB} MB", at_most=idle + RSS_GROWTH_MB),
        ),
        Figure(
            "bulk_documents_per_s",
            f"bulk export by {len(documentos):,} documents, csv: documents resolved",
            "documents/s",
            len(documentos) / by_documents.seconds,
            lote.ok_per_second * datasets.LOTE_SIZE,
            f"`buscar/lote` customers/s ({datasets.LOTE_SIZE} documents a request, same run)",
            Target("≥ 100,000 documents/s", at_least=100_000),
            f"POST (a {by_documents.job['result']['size_bytes'] / 1e6:.1f} MB file) → "
            f"`succeeded` in {by_documents.seconds:.2f} s, of which POST → 202 (the list "
            f"received, checked, stored) {by_documents.created_seconds:.2f} s; {found:,} found",
        ),
        Figure(
            "bulk_jsonl_rows_per_s",
            "bulk export of every customer, jsonl, purchases inline",
            "customers/s",
            customers / jsonl.seconds,
            customers / orjson_seconds,
            "orjson writing the same objects (read back from the file) in one process",
            Target("≥ 0.5× orjson", ratio_at_least=0.5),
            f"{customers:,} lines, {jsonl.job['result']['size_bytes'] / 1e6:,.1f} MB in "
            f"{jsonl.seconds:.2f} s",
        ),
    ]


# 9. Seeding.


def seed_figures(dataset: datasets.Dataset) -> list[Figure]:
    clientes = dataset.size.clientes
    limit = SEED_SECONDS_PER_MILLION * clientes / 1_000_000
    when = "this run" if dataset.rebuilt else f"the build of {dataset.built_at[:19]}"
    return [
        Figure(
            "seed_seconds",
            f"`seed_data --clientes {clientes:,}` with purchases and indexes",
            "s",
            dataset.seed_seconds,
            dataset.faker_seconds,
            "Faker es_CO one customer at a time, customers only (projected)",
            Target(f"≤ {limit:g} s (3 min per 1M customers)", at_most=limit),
            f"both measured in {when}",
        )
    ]


# 10. Excel writers (bench/xlsx_writers.py): in spawned processes, no server involved.


def xlsx_figures(context: Context) -> list[Figure]:
    return xlsx_writers.figures()


# (name for --only, title, measure), in the order they run.
GROUPS: list[tuple[str, str, Callable[[Context], list[Figure]]]] = [
    ("buscar", "buscar", lookup_figures),
    ("lane", "buscar fast lane on and off", lane_figures),
    ("layers", "buscar: what each layer costs, uvicorn against granian", layer_figures),
    ("drivers", "lookup SQL: SQLAlchemy async against psycopg", driver_figures),
    ("lote", "buscar/lote", lote_figures),
    ("exports", "export jobs", export_figures),
    ("loyalty", "loyalty report", loyalty_figures),
    ("every-customer", "every-customer reports", every_customer_figures),
    ("paced", "buscar paced (open loop) at half the saturation rate", paced_figures),
    ("soak", "soak", soak_figures),
    ("webhooks", "webhooks", webhook_figures),
    ("bulk", "bulk exports", bulk_figures),
    ("xlsx", "xlsx writers against XlsxWriter", xlsx_figures),
]
SEED = "seed"  # measured when the dataset is built: no process needed
GROUP_NAMES = (*(name for name, _, _ in GROUPS), SEED)


def _purchases(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM compras").fetchone()
    return int(row[0]) if row else 0


def _commit() -> str:
    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=services.ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    dirty = (
        " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )
    return f"{git('rev-parse', '--short', 'HEAD')}{dirty}"
