"""The real processes, started as `make run` starts them: the Procfile's commands.

Everything listens on loopback, talks to the bench database and to a Redis database of its own
(flushed at start), and runs as a user would run it: production settings, auth, rate limiting,
metrics and INFO logging on. Logs go to var/bench/logs/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, delete, text

from harness import servers
from shared import api_keys
from shared.models import ApiKey
from shared.settings import to_psycopg_url

ROOT = servers.ROOT
WORK_DIR = ROOT / "var" / "bench"
LOG_DIR = WORK_DIR / "logs"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
WEB_CONCURRENCY = "2"
KEY_NAME = "bench"
GC_PROBE = Path(__file__).with_name("gc_probe")  # its sitecustomize counts collections
# The bench key is a high-volume consumer's key: the limiter still counts every request in
# Redis, but this quota is never what the figures measure.
KEY_RATE_LIMIT_PER_MINUTE = 100_000_000
# Positions in /proc/<pid>/stat counted from the state (field 3 of proc(5)).
STAT_PPID, STAT_UTIME, STAT_STIME = 1, 11, 12


class BenchProcess(servers.Process):
    """harness.servers.Process, logging under var/bench/logs/ instead of test-output/."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(name, argv, env)
        self.log_path = LOG_DIR / f"{name}.log"


def fresh_work_dir(size_name: str) -> Path:
    """var/bench/<size>/ emptied, and the logs of the previous run gone."""
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    LOG_DIR.mkdir(parents=True)
    directory = WORK_DIR / size_name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def create_key(database_url: str) -> str:
    """A new key with every scope and a high-volume quota. Earlier runs' keys and jobs go first
    so each run starts from the same jobs table."""
    new_key = api_keys.generate_key()
    engine = create_engine(to_psycopg_url(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE jobs, job_inputs"))  # the lists of bulk exports
            connection.execute(delete(ApiKey).where(ApiKey.name == KEY_NAME))
            connection.execute(
                api_keys.insert_key(KEY_NAME, api_keys.SCOPES, new_key).values(
                    rate_limit_per_minute=KEY_RATE_LIMIT_PER_MINUTE
                )
            )
    finally:
        engine.dispose()
    return new_key.key


def environment(database_url: str, key: str, port: int, work_dir: Path) -> dict[str, str]:
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).flushdb()
    gc_dir = gc_directory(work_dir)
    gc_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": WEB_CONCURRENCY,
        # The bench key doubles as the bootstrap key: its row (with the quota) exists already.
        "API_BOOTSTRAP_KEY": key,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ADMIN_PASSWORD": secrets.token_urlsafe(32),
        # One key stands for many clients here (like its rate limit): SPEC §12's per-key bounds
        # would refuse the export burst and turn the followers' long polls into a busy loop.
        "JOB_MAX_ACTIVE_PER_KEY": "100000",
        "LONG_POLLS_PER_KEY": "1000",
        "STORAGE_BACKEND": "local",
        "STORAGE_DIR": str(work_dir / "exports"),
        "LOG_LEVEL": "INFO",
        "LONG_POLLS_MAX": "1000",
        # The webhook receiver is in the bench process, on 127.0.0.1; retries within seconds.
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_RETRY_SECONDS": "0.5,1,2,4,8,15,30",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Every process's garbage collections, per process (bench/gc_probe/sitecustomize.py).
        "PYTHONPATH": os.pathsep.join(filter(None, [str(GC_PROBE), os.environ.get("PYTHONPATH")])),
        "BENCH_GC_DIR": str(gc_dir),
    }


def gc_directory(work_dir: Path) -> Path:
    return work_dir / "gc"


def gc_state(directory: Path, pid: int) -> dict[str, Any] | None:
    """What bench/gc_probe/sitecustomize.py last wrote for process `pid`, if anything."""
    try:
        state: dict[str, Any] = json.loads((directory / f"{pid}.json").read_text())
    except (OSError, ValueError):  # none yet, or being replaced
        return None
    return state


@contextmanager
def running(processes: list[BenchProcess]) -> Iterator[list[BenchProcess]]:
    """Start them all; stop every one on the way out, whatever happened."""
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


def procfile_processes(env: dict[str, str], work_dir: Path) -> list[BenchProcess]:
    return [
        BenchProcess(name, _own_files_and_ports(servers.procfile_argv(name), work_dir), env)
        for name in servers.procfile()
    ]


def _own_files_and_ports(argv: list[str], work_dir: Path) -> list[str]:
    """The scheduler's state file in the bench's directory and the workers' metrics on free
    ports, so that a `make run` or a test run never shares them; nothing else changes."""
    own = {"--schedule": str(work_dir / "celerybeat-schedule")}
    if "--metrics-port" in argv:
        own["--metrics-port"] = str(servers.free_port())
    return servers.replace_options(argv, own)


def constant_server(env: dict[str, str], port: int, body: Path, app: str) -> BenchProcess:
    """bench.constant_app: `app` is "fastapi" or "asgi"."""
    argv = [sys.executable, "-m", "bench.constant_app"]
    own = {"PORT": str(port), "BENCH_CONSTANT_BODY": str(body), "BENCH_CONSTANT_APP": app}
    return BenchProcess(f"http-ceiling-{app}", argv, {**env, **own})


def wait_ready(url: str, path: str, processes: list[BenchProcess], timeout: float = 60) -> None:
    def ready() -> bool:
        for process in processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log()[-2000:]}")
        return httpx.get(f"{url}{path}", timeout=2).status_code == 200

    deadline_error = f"{url}{path}"
    try:
        servers.wait_until(ready, timeout, deadline_error)
    except TimeoutError:
        logs = "\n".join(f"--- {p.name}\n{p.log()[-1500:]}" for p in processes)
        raise RuntimeError(f"{deadline_error} not ready after {timeout}s\n{logs}") from None


def peak_rss_mb(process: BenchProcess) -> float:
    """The highest peak resident set (VmHWM) among a Celery worker's pool processes."""
    peaks = [_vm_hwm_kb(pid) for pid in _children(process.pid)]
    if not peaks:
        raise RuntimeError(f"{process.name} has no pool process")
    return max(peaks) / 1024


def tree_rss_mb(process: BenchProcess) -> float:
    """Resident memory (VmRSS) of a process and all its descendants: the API's uvicorn master
    and its workers, a Celery worker and its pool processes."""
    kilobytes = 0
    for pid in _tree(process.pid):
        for line in _status(pid):
            if line.startswith("VmRSS:"):
                kilobytes += int(line.split()[1])
    return kilobytes / 1024


def tree_cpu_seconds(process: BenchProcess) -> float:
    """CPU time (user + system) used so far by a process and its living descendants."""
    ticks = 0
    for pid in _tree(process.pid):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[STAT_UTIME]) + int(fields[STAT_STIME])
    return ticks / os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    pids = [root]
    for pid in pids:  # the list grows as children are found: every level is visited
        pids += _children(pid)
    return pids


def _status(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # the process ended meanwhile (a recycled pool process): nothing to count
        return []


def _children(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields and int(fields[STAT_PPID]) == parent:
            children.append(int(stat.parent.name))
    return children


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): the state first."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the process ended meanwhile
        return []


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")
