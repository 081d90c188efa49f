"""What each layer of the API costs on `buscar`, and the server A/B (issue 16 item 1).

One server per variant of bench/layers_app.py (the API as deployed, the API with one layer
off, the bare floor), plus the API and the floor served by granian instead of uvicorn +
httptools, all at once, each one process (WEB_CONCURRENCY=1: CPU per request of one process,
not of two competing for the same two cores). They take the same wrk `buscar` load in turns
(bench/turns.py); CPU per request is each server's process tree time from /proc.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import layers_app, services, turns
from harness import servers
from shared.settings import Settings

ROUNDS = 6
# Ten servers at once against one PostgreSQL (max_connections 100, shared with the bench's own
# stack): a smaller lookup pool each, the same for every variant. One process saturated by wrk
# keeps far fewer queries in flight than this.
DB_POOL_SIZE = "5"
GRANIAN = "granian"
UVICORN = "uvicorn"


@dataclass(frozen=True, slots=True)
class Variant:
    name: str  # layers_app's BENCH_LAYERS
    server: str  # UVICORN or GRANIAN

    @property
    def label(self) -> str:
        return self.name if self.server == UVICORN else f"{self.name}, {GRANIAN}"


VARIANTS = [
    *(Variant(name, UVICORN) for name in layers_app.VARIANTS),
    Variant(layers_app.FLOOR, UVICORN),
    Variant(layers_app.FULL, GRANIAN),
    Variant(layers_app.FLOOR, GRANIAN),
]
FULL = Variant(layers_app.FULL, UVICORN)
FLOOR = Variant(layers_app.FLOOR, UVICORN)
GRANIAN_FULL = Variant(layers_app.FULL, GRANIAN)


def measure(
    env: dict[str, str],
    requests: Path,
    authorization: str,
    seconds: float,
    log: Path,
    say: Callable[[str], None],
) -> dict[Variant, list[turns.Turn]]:
    processes = {variant.label: _server(env, variant) for variant in VARIANTS}
    taken = turns.take_turns(processes, requests, authorization, seconds, ROUNDS, log, say)
    return {variant: taken[variant.label] for variant in VARIANTS}


def _server(env: dict[str, str], variant: Variant) -> services.BenchProcess:
    port = servers.free_port()
    own = {
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DB_POOL_SIZE": DB_POOL_SIZE,
        "BENCH_LAYERS": variant.name,
        "BENCH_SERVER": variant.server,
    }
    name = f"layers-{variant.name}-{variant.server}"
    if variant.server == UVICORN:
        argv = [sys.executable, "-m", "bench.layers_app"]
    else:
        argv = granian_argv(port)
    return services.BenchProcess(name, argv, {**env, **own})


def granian_argv(port: int) -> list[str]:
    """granian serving layers_app with what the API's uvicorn has (services/query_api/__main__):
    uvloop, HTTP/1.1, a deadline for a request's headers, a bound on requests in progress (the
    settings' defaults, which the bench's environment leaves as they are), no access log; the
    proxy headers come from layers_app (granian reads none itself)."""
    header_timeout = _default("http_header_timeout_seconds")
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--http1-header-read-timeout",
        str(round(header_timeout * 1000)),
        "--backpressure",
        str(_default("http_max_concurrency")),
        "--no-access-log",
        "--log-level",
        "warning",
        "bench.layers_app:create_app",
    ]


def _default(setting: str) -> float:
    default = Settings.model_fields[setting].default
    assert isinstance(default, int | float)
    return default
