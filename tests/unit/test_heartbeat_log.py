"""A worker's heartbeat logs from a thread of its own, with the request id of its job (issue #5):
driven directly, against a database port where nothing listens."""

from __future__ import annotations

import io
import json
import logging
import uuid

from sqlalchemy import create_engine

from harness import servers
from harness.servers import wait_until
from services.export_worker import tasks
from shared import logs
from shared.jobs import JobType


def test_a_heartbeat_line_from_its_own_thread_carries_the_request_id() -> None:
    """The heartbeat runs in a thread of its own, which starts with an empty context."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(logs.JsonFormatter())
    tasks.log.addHandler(handler)
    nowhere = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{servers.free_port()}/clientes",
        connect_args={"connect_timeout": 1},
    )
    job = tasks.ClaimedJob(
        id=uuid.uuid4(), type=JobType.EXPORT_CLIENTE, params={}, attempt=1, claimed_at=0.0
    )
    request_id = f"heartbeat-{uuid.uuid4().hex[:12]}"
    token = logs.request_id_var.set(request_id)
    try:
        with tasks.Heartbeat(nowhere, job):
            wait_until(
                lambda: f"heartbeat of job {job.id} failed" in written.getvalue(), 10, "beat"
            )
    finally:
        logs.request_id_var.reset(token)
        tasks.log.removeHandler(handler)
        nowhere.dispose()
    beats = [json.loads(line) for line in written.getvalue().splitlines()]
    assert beats and {entry.get("request_id") for entry in beats} == {request_id}
