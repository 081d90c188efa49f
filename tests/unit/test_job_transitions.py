"""The job state machine's table of allowed transitions (shared/jobs.py), read directly."""

from __future__ import annotations

from shared import jobs
from shared.jobs import Status

ALLOWED_EDGES = {
    (Status.QUEUED, Status.RUNNING),
    (Status.RUNNING, Status.QUEUED),
    (Status.RUNNING, Status.SUCCEEDED),
    (Status.RUNNING, Status.FAILED),
    (Status.QUEUED, Status.CANCELED),
    (Status.RUNNING, Status.CANCELED),
    (Status.SUCCEEDED, Status.EXPIRED),
}


def test_the_transition_table_allows_exactly_the_documented_edges() -> None:
    for source in Status:
        for target in Status:
            assert jobs.can_transition(source, target) == ((source, target) in ALLOWED_EDGES), (
                source,
                target,
            )
    for terminal in (Status.FAILED, Status.CANCELED, Status.EXPIRED):
        assert not any(jobs.can_transition(terminal, target) for target in Status)
