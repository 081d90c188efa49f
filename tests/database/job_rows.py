"""Jobs and keys written straight into a database, for the state-machine tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Executable, Row, text

from shared import api_keys, db, jobs
from shared.jobs import JobType

TTL = timedelta(hours=1)
RESULT = {"filename": "x.csv", "sha256": "0" * 64}


def new_owner(engine: Engine, name: str) -> uuid.UUID:
    with engine.begin() as connection:
        key_id: uuid.UUID = connection.execute(
            api_keys.insert_key(name, ["export"], api_keys.generate_key())
        ).scalar_one()
    return key_id


def execute(engine: Engine, statement: Executable | db.Bound) -> Row[Any] | None:
    """One statement, committed: as a worker runs a transition."""
    return db.execute_alone(engine, statement)


def new_job(engine: Engine, owner: uuid.UUID, idempotency_key: str | None = None) -> uuid.UUID:
    with engine.begin() as connection:
        job_id: uuid.UUID = connection.execute(
            jobs.create(
                job_type=JobType.EXPORT_CLIENTE,
                params={"cliente_id": 1, "formato": "csv"},
                api_key_id=owner,
                idempotency_key=idempotency_key,
                request_id="req-1",
                created_at=datetime.now(UTC),
            )
        ).scalar_one()
    return job_id


def row_of(engine: Engine, job_id: uuid.UUID) -> Row[Any]:
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT status, attempts, progress, error, result, expires_at"
                " FROM jobs WHERE id = :id"
            ),
            {"id": job_id},
        ).one()


def claimed(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, int]:
    job_id = new_job(engine, owner)
    row = execute(engine, jobs.claim(job_id))
    assert row is not None
    return job_id, row.attempts


def age(engine: Engine, job_id: uuid.UUID, seconds: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET updated_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": job_id},
        )
