"""What the `buscar` fast lane buys (services/query_api/clientes/fast_lane.py, issue 11 item 8).

Two more API processes, started from the Procfile like the bench's own, one with
BUSCAR_FAST_LANE=true and one with false, take the same wrk load in turns: rounds of one run
each, the order swapped every round so that a drift in the machine's load (shared, two cores)
falls on both alike. CPU per request is the API process tree's user + system time (/proc) over
the requests wrk completed; the idle process beside it costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import services, wrk
from harness import servers

ROUNDS = 4  # even: each lane goes first as often as the other
WARM_UP_SECONDS = 3
# Two API trees (three processes each) importing at once on a busy shared machine took over the
# harness's usual 60 s in some runs.
START_SECONDS = 180
SETTING = "BUSCAR_FAST_LANE"


@dataclass(frozen=True, slots=True)
class Turn:
    load: wrk.Load
    cpu_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.load.requests * 1e6


@dataclass(frozen=True, slots=True)
class Lanes:
    on: list[Turn]
    off: list[Turn]

    @staticmethod
    def cpu_us_per_request(turns: list[Turn]) -> float:
        return sum(t.cpu_seconds for t in turns) / sum(t.load.requests for t in turns) * 1e6

    @staticmethod
    def requests_per_second(turns: list[Turn]) -> float:
        return sum(t.load.requests for t in turns) / sum(t.load.seconds for t in turns)

    def round_ratios(self, measure: Callable[[Turn], float]) -> list[float]:
        """on ÷ off, round by round: how far the noise moves the ratio."""
        return [measure(on) / measure(off) for on, off in zip(self.on, self.off, strict=True)]


def measure(
    env: dict[str, str],
    requests: Path,
    authorization: str,
    seconds: int,
    log: Path,
    say: Callable[[str], None],
) -> Lanes:
    apis = {lane: _api(env, lane) for lane in (True, False)}
    turns: dict[bool, list[Turn]] = {True: [], False: []}
    with services.running(list(apis.values())):
        urls = {lane: f"http://127.0.0.1:{api.env['PORT']}" for lane, api in apis.items()}
        for lane, url in urls.items():
            services.wait_ready(url, "/ready", [apis[lane]], START_SECONDS)
            wrk.run(url, requests, authorization, WARM_UP_SECONDS, log)
        for round_number in range(ROUNDS):
            order = (True, False) if round_number % 2 == 0 else (False, True)
            for lane in order:
                before = services.tree_cpu_seconds(apis[lane])
                load = wrk.run(urls[lane], requests, authorization, seconds, log)
                turn = Turn(load, services.tree_cpu_seconds(apis[lane]) - before)
                turns[lane].append(turn)
                say(
                    f"round {round_number + 1}, {SETTING}={_flag(lane)}: "
                    f"{load.requests_per_second:,.0f} req/s, {turn.cpu_us_per_request:,.0f} µs CPU"
                )
    return Lanes(on=turns[True], off=turns[False])


def _api(env: dict[str, str], lane: bool) -> services.BenchProcess:
    own = {"PORT": str(servers.free_port()), SETTING: _flag(lane)}
    name = f"api-lane-{'on' if lane else 'off'}"
    return services.BenchProcess(name, servers.procfile_argv("api"), {**env, **own})


def _flag(lane: bool) -> str:
    return "true" if lane else "false"
