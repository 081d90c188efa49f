"""Servers taking the same wrk load in turns, their CPU per request read from /proc.

Every server is started and warmed up before any is measured. Then come rounds of one wrk run
each, the order rotated by one every round, so that a drift in the machine's load (shared, two
cores) falls on every server alike and none always follows the same neighbour. CPU per request
is the server's process tree user + system time over the requests wrk completed; the idle
servers beside it cost next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import services, wrk

WARM_UP_SECONDS = 3
# Several API trees importing at once on a busy shared machine took over the harness's usual
# 60 s in some runs.
START_SECONDS = 180


@dataclass(frozen=True, slots=True)
class Turn:
    load: wrk.Load
    cpu_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.load.requests * 1e6


def cpu_us_per_request(turns: Sequence[Turn]) -> float:
    return sum(t.cpu_seconds for t in turns) / sum(t.load.requests for t in turns) * 1e6


def requests_per_second(turns: Sequence[Turn]) -> float:
    return sum(t.load.requests for t in turns) / sum(t.load.seconds for t in turns)


def round_ratios(
    turns: Sequence[Turn], baseline: Sequence[Turn], measure: Callable[[Turn], float]
) -> list[float]:
    """turns ÷ baseline, round by round: how far the noise moves the ratio."""
    return [measure(a) / measure(b) for a, b in zip(turns, baseline, strict=True)]


def take_turns(
    servers: dict[str, services.BenchProcess],
    requests: Path,
    authorization: str,
    seconds: float,
    rounds: int,
    log: Path,
    say: Callable[[str], None],
    ready_path: str = "/ready",
) -> dict[str, list[Turn]]:
    """Each server's turns, by name; every server listens on 127.0.0.1:$PORT of its env."""
    names = list(servers)
    urls = {name: f"http://127.0.0.1:{servers[name].env['PORT']}" for name in names}
    turns: dict[str, list[Turn]] = {name: [] for name in names}
    with services.running(list(servers.values())):
        for name in names:
            services.wait_ready(urls[name], ready_path, [servers[name]], START_SECONDS)
            wrk.run(urls[name], requests, authorization, WARM_UP_SECONDS, log)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                before = services.tree_cpu_seconds(servers[name])
                load = wrk.run(urls[name], requests, authorization, round(seconds), log)
                turn = Turn(load, services.tree_cpu_seconds(servers[name]) - before)
                turns[name].append(turn)
                say(
                    f"round {round_number + 1}, {name}: {load.requests_per_second:,.0f} req/s, "
                    f"{turn.cpu_us_per_request:,.0f} µs CPU"
                )
    return turns
