"""Garbage collections of the processes the bench starts, for bench/paced.py.

Python imports `sitecustomize` at start-up from the path: bench/services.py puts this folder on
PYTHONPATH and names a directory in BENCH_GC_DIR for every process it starts (uvicorn's spawned
workers inherit both). Each process then counts its collections by generation, with their pauses
both in wall-clock time (what a request waiting on that process feels) and in CPU time of the
collecting thread (what the collection itself cost: on a busy machine the wall-clock pause also
holds the time the process waited for a core), and keeps the pauses of 1 ms or more with their
time (CLOCK_MONOTONIC, the same clock in every process). Written to BENCH_GC_DIR/<pid>.json at
most once a second, from the collection's own callback: microseconds a collection.
"""

from __future__ import annotations

import gc
import json
import os
import time

LONG_PAUSE_SECONDS = 0.001
LONG_PAUSES_KEPT = 2000
WRITE_EVERY_SECONDS = 1.0


class _Collections:
    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, f"{os.getpid()}.json")
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.cpu_seconds = [0.0, 0.0, 0.0]
        # (ended at, generation, seconds, CPU seconds)
        self.long: list[tuple[float, int, float, float]] = []
        self.started = 0.0
        self.cpu_started = 0.0
        self.written = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        cpu = time.thread_time()
        if phase == "start":
            self.started, self.cpu_started = now, cpu
            return
        generation = info["generation"]
        pause, cpu_pause = now - self.started, cpu - self.cpu_started
        self.counts[generation] += 1
        self.seconds[generation] += pause
        self.cpu_seconds[generation] += cpu_pause
        if pause >= LONG_PAUSE_SECONDS:
            long = (now, generation, pause, cpu_pause)
            self.long = [*self.long[-LONG_PAUSES_KEPT + 1 :], long]
        if now - self.written >= WRITE_EVERY_SECONDS:
            self.written = now
            self.write()

    def write(self) -> None:
        state = {
            "counts": self.counts,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "long": self.long,
        }
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w") as output:
            json.dump(state, output)
        os.replace(temporary, self.path)


_directory = os.environ.get("BENCH_GC_DIR")
if _directory and os.path.isdir(_directory):
    gc.callbacks.append(_Collections(_directory))
