"""What the `buscar` fast lane buys (services/query_api/clientes/fast_lane.py, issue 11 item 8).

Two more API processes, started from the Procfile like the bench's own, one with
BUSCAR_FAST_LANE=true and one with false, take the same wrk load in turns (bench/turns.py):
rounds of one run each, the order swapped every round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import services, turns
from harness import servers

ROUNDS = 4  # even: each lane goes first as often as the other
SETTING = "BUSCAR_FAST_LANE"


@dataclass(frozen=True, slots=True)
class Lanes:
    on: list[turns.Turn]
    off: list[turns.Turn]

    def round_ratios(self, measure: Callable[[turns.Turn], float]) -> list[float]:
        """on ÷ off, round by round: how far the noise moves the ratio."""
        return turns.round_ratios(self.on, self.off, measure)


def measure(
    env: dict[str, str],
    requests: Path,
    authorization: str,
    seconds: int,
    log: Path,
    say: Callable[[str], None],
) -> Lanes:
    apis = {f"{SETTING}={_flag(lane)}": _api(env, lane) for lane in (True, False)}
    taken = turns.take_turns(apis, requests, authorization, seconds, ROUNDS, log, say)
    on, off = taken.values()
    return Lanes(on=on, off=off)


def _api(env: dict[str, str], lane: bool) -> services.BenchProcess:
    own = {"PORT": str(servers.free_port()), SETTING: _flag(lane)}
    name = f"api-lane-{'on' if lane else 'off'}"
    return services.BenchProcess(name, servers.procfile_argv("api"), {**env, **own})


def _flag(lane: bool) -> str:
    return "true" if lane else "false"
