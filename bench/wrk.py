"""wrk, the HTTP load generator: run it with bench/lua/random_requests.lua and read its figures."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("lua") / "random_requests.lua"
THREADS = 2
CONNECTIONS = 64
RESULT_PREFIX = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class Load:
    requests: int
    seconds: float
    bytes: int
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk's "Non-2xx or 3xx responses": every status ≥ 400
    socket_errors: int  # connect, read, write and timeout errors

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def ok_per_second(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds


def run(
    url: str,
    requests_file: Path,
    authorization: str,
    seconds: int,
    log: Path,
    connections: int = CONNECTIONS,
    delay_ms: float | None = None,
) -> Load:
    """`wrk -t2 -c<connections> -d<seconds>s --latency` against `url` (loopback only). With
    `delay_ms`, each connection waits about that long between an answer and its next request:
    a paced load instead of as fast as the server answers."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the load generator only targets loopback addresses, not {url}")
    argv = [
        "wrk",
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
    ]
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(requests_file),
        "BENCH_AUTHORIZATION": authorization,
    }
    if delay_ms is not None:
        env["BENCH_DELAY_MS"] = f"{delay_ms:.1f}"
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    with log.open("a") as output:
        paced = f", delay {delay_ms:.1f} ms" if delay_ms is not None else ""
        output.write(
            f"$ {' '.join(argv)}  # {requests_file.name}{paced}\n{done.stdout}{done.stderr}\n"
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return parse(done.stdout)


def parse(output: str) -> Load:
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            figures = json.loads(line.removeprefix(RESULT_PREFIX))
            break
    else:
        raise RuntimeError(f"wrk printed no result line:\n{output[-1000:]}")
    if figures["requests"] == 0:
        raise RuntimeError("wrk completed no request")
    return Load(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        bytes=figures["bytes"],
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        non_2xx=figures["status"],
        socket_errors=sum(figures[name] for name in ("connect", "read", "write", "timeout")),
    )
