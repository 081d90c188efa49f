"""What could explain a slow slice of a steady load, sampled at each slice's end (bench/paced.py,
bench/soak.py): the machine (load average, busy cores, and the CPU of each of our processes, of
PostgreSQL and Redis, and of everything else running here), the jobs table (rows, dead rows,
HOT updates, autovacuum and autoanalyze runs, size), PostgreSQL's sessions on the bench
database, Redis (memory, keys, commands), and the API's garbage collections
(bench/gc_probe/sitecustomize.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench import services
from bench.report import Column

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
API, WORKERS, BENCH, POSTGRES, REDIS = "api", "workers", "bench", "postgres", "redis"
GROUPS = (API, WORKERS, BENCH, POSTGRES, REDIS)

JOBS_TABLE = """
SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, n_tup_upd, n_tup_hot_upd,
       pg_total_relation_size(relid)
FROM pg_stat_user_tables WHERE relname = 'jobs'
"""
SESSIONS = """
SELECT count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE state LIKE 'idle in%%'),
       count(*)
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
# The API's own timing of `buscar` (services/query_api/metrics.py): its histogram's samples.
LOOKUP_LATENCY = "clientes_http_request_duration_seconds"
LOOKUP_LABELS = {"method": "GET", "route": "/api/clientes/buscar"}
WITHIN = "0.01"  # the bucket's upper bound, seconds


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The machine and the stores at one instant."""

    at: float  # time.monotonic(): CLOCK_MONOTONIC, the clock of the GC probe's pause times too
    load_average: float
    machine_busy: float  # CPU seconds, every core, since boot
    machine_steal: float  # CPU seconds the hypervisor gave to others while ours waited, since boot
    cpu: dict[int, tuple[str, float]]  # pid → (group, CPU seconds) of the processes we count
    jobs: tuple[int, ...]  # JOBS_TABLE's columns (none when the table has no statistics yet)
    sessions: tuple[int, ...]  # SESSIONS' columns
    redis_memory: int
    redis_keys: int
    redis_commands: int
    gc_counts: tuple[int, int, int]  # the API processes' collections so far, by generation
    gc_seconds: float  # their pauses so far, summed
    gc_cpu_seconds: float  # the CPU time of those pauses
    # Pauses ≥ 1 ms: (ended at, generation, seconds, CPU seconds).
    gc_long: list[tuple[float, int, float, float]]
    lookups_timed: tuple[float, float]  # by the API itself so far: all, and within 10 ms


class Probe:
    """Takes Snapshots: /proc for CPU, PostgreSQL's statistics views, Redis INFO, the GC files."""

    def __init__(
        self,
        api: services.BenchProcess,
        api_url: str,
        workers: list[services.BenchProcess],
        work_dir: Path,
        database: psycopg.Connection,
    ) -> None:
        # In this order, each process counted once: the API and the workers are children of
        # the bench process too, whose own group is what is left of its tree (the load
        # generator: wrk or bench/paced_client.py).
        self.roots = [(API, [api.pid]), (WORKERS, [worker.pid for worker in workers])]
        self.database = database
        self.api_url = api_url
        self.redis = redis.Redis.from_url(services.REDIS_URL)
        self.gc_dir = services.gc_directory(work_dir)

    def snapshot(self) -> Snapshot:
        cpu = self._cpu()
        machine_busy, machine_steal = _machine_seconds()
        self.database.execute("SELECT pg_stat_clear_snapshot()")
        jobs_row = self.database.execute(JOBS_TABLE).fetchone() or ()
        sessions = self.database.execute(SESSIONS).fetchone() or ()
        memory = self.redis.info("memory")
        stats = self.redis.info("stats")
        api_pids = [pid for pid, (group, _) in cpu.items() if group == API]
        states = [services.gc_state(self.gc_dir, pid) for pid in api_pids]
        collected = [state for state in states if state]
        return Snapshot(
            at=time.monotonic(),
            load_average=os.getloadavg()[0],
            machine_busy=machine_busy,
            machine_steal=machine_steal,
            cpu=cpu,
            jobs=tuple(int(value) for value in jobs_row),
            sessions=tuple(int(value) for value in sessions),
            redis_memory=int(memory["used_memory"]),
            redis_keys=int(self.redis.dbsize()),
            redis_commands=int(stats["total_commands_processed"]),
            gc_counts=(
                sum(state["counts"][0] for state in collected),
                sum(state["counts"][1] for state in collected),
                sum(state["counts"][2] for state in collected),
            ),
            gc_seconds=sum(sum(state["seconds"]) for state in collected),
            gc_cpu_seconds=sum(sum(state["cpu_seconds"]) for state in collected),
            gc_long=[tuple(pause) for state in collected for pause in state["long"]],
            lookups_timed=self._lookups_timed(),
        )

    def _lookups_timed(self) -> tuple[float, float]:
        text = httpx.get(f"{self.api_url}/metrics", timeout=10).raise_for_status().text
        count = within = 0.0  # no lookup yet: no series
        for family in text_string_to_metric_families(text):
            if family.name != LOOKUP_LATENCY:
                continue
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k != "le"}
                if labels != LOOKUP_LABELS:
                    continue
                if sample.name == f"{LOOKUP_LATENCY}_count":
                    count = sample.value
                elif sample.labels.get("le") == WITHIN:
                    within = sample.value
        return (count, within)

    def _cpu(self) -> dict[int, tuple[str, float]]:
        processes = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in processes.items():
            children.setdefault(ppid, []).append(pid)
        groups: dict[int, str] = {}
        for group, roots in [*self.roots, (BENCH, [os.getpid()])]:
            pids = list(roots)
            for pid in pids:  # grows as it goes: every descendant is visited
                pids += children.get(pid, [])
            for pid in pids:
                groups.setdefault(pid, group)
        for pid, (_, name, _) in processes.items():
            if name == "postgres":
                groups.setdefault(pid, POSTGRES)
            elif name == "redis-server":
                groups.setdefault(pid, REDIS)
        return {
            pid: (group, processes[pid][2]) for pid, group in groups.items() if pid in processes
        }


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command name, CPU seconds) for every process alive now."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        ticks = int(fields[services.STAT_UTIME]) + int(fields[services.STAT_STIME])
        found[int(stat.parent.name)] = (int(fields[services.STAT_PPID]), name, ticks / CLOCK_TICKS)
    return found


def _machine_seconds() -> tuple[float, float]:
    """The machine's busy and stolen CPU seconds since boot, every core. Steal is time a virtual
    machine's cores were ready to run but the hypervisor ran something else: no process here
    shows it, yet every process waits through it."""
    # /proc/stat's first line: user nice system idle iowait irq softirq steal … (clock ticks).
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Interval:
    """Two snapshots: what happened between them."""

    before: Snapshot
    after: Snapshot

    @property
    def seconds(self) -> float:
        return self.after.at - self.before.at

    def cores(self, group: str) -> float:
        """CPU of the group's processes over the interval, in cores: a process that started
        meanwhile counts whole, one that ended meanwhile is missed (its last figures are gone)."""
        used = 0.0
        for pid, (name, seconds) in self.after.cpu.items():
            if name == group:
                earlier = self.before.cpu.get(pid)
                used += seconds - (earlier[1] if earlier and earlier[0] == group else 0.0)
        return used / self.seconds

    @property
    def machine_cores(self) -> float:
        return (self.after.machine_busy - self.before.machine_busy) / self.seconds

    @property
    def steal_cores(self) -> float:
        return (self.after.machine_steal - self.before.machine_steal) / self.seconds

    @property
    def other_cores(self) -> float:
        """Busy cores not ours: the machine's busy time less our processes, PostgreSQL and Redis
        (which serve whatever else runs here too, and are counted whole)."""
        return max(0.0, self.machine_cores - sum(self.cores(group) for group in GROUPS))

    @property
    def gc_ms_per_second(self) -> float:
        return (self.after.gc_seconds - self.before.gc_seconds) * 1000 / self.seconds

    @property
    def gc_cpu_ms_per_second(self) -> float:
        return (self.after.gc_cpu_seconds - self.before.gc_cpu_seconds) * 1000 / self.seconds

    @property
    def lookups_over_10_ms_percent(self) -> float | None:
        """Of the lookups the API answered in the interval, the share it timed over 10 ms."""
        answered = self.after.lookups_timed[0] - self.before.lookups_timed[0]
        within = self.after.lookups_timed[1] - self.before.lookups_timed[1]
        return 100 * (answered - within) / answered if answered else None

    @property
    def gc_long_pauses(self) -> list[tuple[int, float, float]]:
        """The API's collection pauses of 1 ms or more that ended in this interval:
        (generation, ms, CPU ms)."""
        return [
            (generation, seconds * 1000, cpu_seconds * 1000)
            for ended, generation, seconds, cpu_seconds in self.after.gc_long
            if self.before.at < ended <= self.after.at
        ]


COLUMNS = [
    Column("load_average", "load avg", "×"),
    Column("machine_cores", "machine busy cores", "×"),
    Column("other_cores", "not ours, cores", "×"),
    Column("steal_cores", "stolen by the hypervisor, cores", "×"),
    Column("api_cores", "api cores", "×"),
    Column("api_us", "api µs/request", "µs"),
    Column("workers_cores", "workers cores", "×"),
    Column("postgres_cores", "postgres cores", "×"),
    Column("redis_cores", "redis cores", "×"),
    Column("bench_cores", "load generator cores", "×"),
    Column("jobs_live", "jobs rows"),
    Column("jobs_dead", "jobs dead rows"),
    Column("jobs_hot", "jobs HOT updates %"),
    Column("autovacuums", "jobs autovacuums"),
    Column("jobs_kb", "jobs kB (with indexes)"),
    Column("sessions", "pg sessions active/idle-in-tx/all"),
    Column("redis_kb", "redis kB"),
    Column("redis_keys", "redis keys"),
    Column("redis_commands", "redis commands/s"),
    Column("gc_full", "api full GCs"),
    Column("gc_ms", "api GC ms/s (CPU ms/s)"),
    Column("gc_long", "api GC pauses ≥ 1 ms"),
    Column("gc_max_ms", "api longest GC ms (its CPU ms)"),
    Column("api_slow", "lookups the API timed over 10 ms, %", "%"),
]
NOTE = (
    "Sampled at each slice's end. CPU from /proc, in cores: process trees (the load generator "
    "is the bench process's own tree: wrk or bench/paced_client.py); PostgreSQL and Redis are "
    "every process of that name, serving whatever else runs here too; `not ours` is the "
    "machine's busy time less all of these; stolen is the time the hypervisor ran another "
    "machine's work while these cores were ready to run ours (/proc/stat's steal), which no "
    "process here shows and every process waits through. The jobs table from pg_stat_user_tables "
    "(PostgreSQL's estimates), sessions from pg_stat_activity on the bench database, Redis from "
    "INFO and DBSIZE, the API's garbage collections from gc.callbacks in each of its processes "
    "(bench/gc_probe/sitecustomize.py): wall-clock pauses, and in brackets the CPU time of the "
    "collecting thread (on a busy machine the wall clock also counts waiting for a core). The "
    "lookups over 10 ms are those the API's own histogram timed so (from its middleware's start "
    "to the response's end): the client's p99 over 10 ms with ~1% here is the API's handling; "
    "with far fewer here, time outside it (the kernel, the network, waiting for a core, the "
    "client)."
)


def row(interval: Interval, requests: int) -> dict[str, Any]:
    """COLUMNS' values for one slice; `requests` answered by the API in it (for µs/request)."""
    before, after = interval.before, interval.after
    jobs = after.jobs
    updates = jobs[4] - before.jobs[4] if jobs and before.jobs else 0
    api_cores = interval.cores(API)
    pauses = interval.gc_long_pauses
    longest = max(pauses, key=lambda pause: pause[1], default=None)
    return {
        "load_average": after.load_average,
        "machine_cores": interval.machine_cores,
        "other_cores": interval.other_cores,
        "steal_cores": interval.steal_cores,
        "api_cores": api_cores,
        "api_us": api_cores * interval.seconds * 1e6 / requests if requests else None,
        "workers_cores": interval.cores(WORKERS),
        "postgres_cores": interval.cores(POSTGRES),
        "redis_cores": interval.cores(REDIS),
        "bench_cores": interval.cores(BENCH),
        "jobs_live": jobs[0] if jobs else None,
        "jobs_dead": jobs[1] if jobs else None,
        "jobs_hot": 100 * (jobs[5] - before.jobs[5]) / updates if updates else None,
        "autovacuums": jobs[2] if jobs else None,
        "jobs_kb": jobs[6] // 1024 if jobs else None,
        "sessions": "/".join(str(value) for value in after.sessions),
        "redis_kb": after.redis_memory // 1024,
        "redis_keys": after.redis_keys,
        "redis_commands": (after.redis_commands - before.redis_commands) / interval.seconds,
        "gc_full": after.gc_counts[2] - before.gc_counts[2],
        "gc_ms": f"{interval.gc_ms_per_second:.1f} ({interval.gc_cpu_ms_per_second:.1f})",
        "gc_long": len(pauses),
        "gc_max_ms": f"{longest[1]:.1f} ({longest[2]:.1f}), gen {longest[0]}" if longest else None,
        "api_slow": interval.lookups_over_10_ms_percent,
    }
