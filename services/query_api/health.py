"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.responses import Response

from services.query_api.deps import ReadDb, RedisDep

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(
        description='Each dependency: "ok", or "down (<error>)".',
        examples=[{"postgresql": "ok", "redis": "ok"}],
    )


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"description": "PostgreSQL or Redis is down.", "model": Readiness}},
)
async def ready(db: ReadDb, redis: RedisDep) -> Response:
    async def database() -> None:
        async with db.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def broker() -> None:
        await redis.ping()

    checks = {"postgresql": database(), "redis": broker()}
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS) for check in checks.values()),
        return_exceptions=True,
    )
    status = {
        name: "ok" if not isinstance(result, BaseException) else f"down ({type(result).__name__})"
        for name, result in zip(checks, results, strict=True)
    }
    healthy = all(value == "ok" for value in status.values())
    body = {"status": "ready" if healthy else "unavailable", "checks": status}
    return Response(orjson.dumps(body), 200 if healthy else 503, media_type="application/json")
