"""Export jobs drained by one exports worker: how many a second the worker itself runs.

The burst of bench/jobs.py times POST → `succeeded` with the load generator, the API and the
worker on the same two cores; there the generator and the API use most of the CPU (its note has
the split). Here the exports are made first, with no exports worker consuming; then one worker
of the design under test starts and runs the queue, timed by the jobs' own timestamps (the
first claim → the last success), so its start-up is not counted and nothing else is busy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import psycopg

from bench import services

POLL_SECONDS = 0.02
DEADLINE_SECONDS = 300

PROGRESS = """
SELECT count(*) FILTER (WHERE status IN ('queued', 'running')),
       count(*) FILTER (WHERE status = 'succeeded'),
       min(started_at), max(finished_at)
FROM jobs WHERE id = ANY(%s::uuid[])
"""


@dataclass(frozen=True, slots=True)
class Drain:
    jobs: int  # succeeded
    seconds: float  # the first claim → the last success
    cpu_seconds: float  # the worker's processes', from the first claim to the last success

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu_seconds * 1000 / self.jobs


def run(database_url: str, job_ids: list[str], worker: services.BenchProcess) -> Drain:
    """Start `worker`, let it run the queued `job_ids`, stop it. Every job must succeed."""
    with psycopg.connect(database_url, autocommit=True) as database:

        def progress() -> tuple[int, int, datetime | None, datetime | None]:
            row = database.execute(PROGRESS, (job_ids,)).fetchone()
            assert row is not None
            return row

        deadline = time.monotonic() + DEADLINE_SECONDS
        worker.start()
        try:
            while progress()[2] is None:  # not one claimed yet: the worker is starting
                _wait(worker, deadline)
            cpu_at_first_claim = services.tree_cpu_seconds(worker)
            while (row := progress())[0]:
                _wait(worker, deadline)
            cpu_seconds = services.tree_cpu_seconds(worker) - cpu_at_first_claim
        finally:
            worker.stop()
    _, succeeded, first_claim, last_success = row
    if succeeded != len(job_ids):
        raise RuntimeError(f"{len(job_ids) - succeeded} of {len(job_ids)} jobs did not succeed")
    assert first_claim is not None and last_success is not None  # every job succeeded
    return Drain(succeeded, (last_success - first_claim).total_seconds(), cpu_seconds)


def _wait(worker: services.BenchProcess, deadline: float) -> None:
    if not worker.alive():
        raise RuntimeError(f"{worker.name} exited:\n{worker.log()[-2000:]}")
    if time.monotonic() > deadline:
        raise RuntimeError(f"{worker.name} did not drain its queue in {DEADLINE_SECONDS} s")
    time.sleep(POLL_SECONDS)
