"""The lookups' driver, measured: the API's own `buscar` SQL through SQLAlchemy's async engine
(what the API used first) and through psycopg's async pool (what it uses now), one after the
other in this process, on the same documents, with the same concurrency. CPU time per query is
the figure: it is what the API process spends, and what the load average changes least.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import text

from services.query_api.clientes import repository
from shared import db
from shared.settings import Settings

CONCURRENCY = 8
COMPRAS_LIMIT = 20

Lookup = Callable[[str, str], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class DriverRate:
    queries_per_second: float
    cpu_us_per_query: float


@dataclass(frozen=True, slots=True)
class Comparison:
    sqlalchemy: DriverRate
    psycopg: DriverRate


def compare(database_url: str, documents: Sequence[tuple[str, str]], seconds: float) -> Comparison:
    return asyncio.run(_compare(Settings(database_url=database_url), documents, seconds))


async def _compare(
    settings: Settings, documents: Sequence[tuple[str, str]], seconds: float
) -> Comparison:
    statement = repository.DETALLE_POR_CODIGO
    # The same statement with SQLAlchemy's :name placeholders.
    clause = text(re.sub(r"%\((\w+)\)s", r":\1", statement))
    base_engine = db.async_engine(settings)
    engine = base_engine.execution_options(isolation_level="AUTOCOMMIT")
    pool = db.async_lookup_pool(settings)
    await pool.open(wait=True)
    try:

        async def through_sqlalchemy(codigo: str, numero: str) -> object:
            params = {"codigo": codigo, "numero_documento": numero, "compras_limit": COMPRAS_LIMIT}
            async with engine.connect() as connection:
                return (await connection.execute(clause, params)).scalar_one_or_none()

        async def through_psycopg(codigo: str, numero: str) -> object:
            params = {"codigo": codigo, "numero_documento": numero, "compras_limit": COMPRAS_LIMIT}
            async with pool.connection() as connection:
                return await (await connection.execute(statement, params)).fetchone()

        for lookup in (through_sqlalchemy, through_psycopg):  # warm-up: connect, prepare
            await _rate(lookup, documents, min(seconds, 2))
        return Comparison(
            sqlalchemy=await _rate(through_sqlalchemy, documents, seconds),
            psycopg=await _rate(through_psycopg, documents, seconds),
        )
    finally:
        await pool.close()
        await base_engine.dispose()


async def _rate(lookup: Lookup, documents: Sequence[tuple[str, str]], seconds: float) -> DriverRate:
    queries = 0
    cycle = itertools.cycle(documents)
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal queries
        while time.monotonic() < deadline:
            await lookup(*next(cycle))
            queries += 1

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return DriverRate(queries / wall, cpu / queries * 1e6)
