"""Every SQL query of the lookups. Each lookup is ONE round trip that renders the whole JSON
document in PostgreSQL; the API sends those bytes as they are.

Sessions run with timezone UTC (shared.db), so timestamps come out as ISO 8601 with +00:00;
`numeric::text` keeps money exact ("1500000.00"). Only constant SQL fragments are ever joined
into a statement; every value is a bound parameter (psycopg's %(name)s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from psycopg_pool import AsyncConnectionPool

from shared.models import texto_busqueda

Key = TypeVar("Key")

_TIPO_DOCUMENTO = "json_build_object('id', t.id, 'codigo', t.codigo, 'nombre', t.nombre)"

_CLIENTE_FIELDS = f"""
    'id', c.id,
    'tipo_documento', {_TIPO_DOCUMENTO},
    'numero_documento', c.numero_documento,
    'nombre', c.nombre,
    'apellido', c.apellido,
    'nombre_completo', c.nombre || ' ' || c.apellido,
    'correo', c.correo,
    'telefono', c.telefono,
    'fecha_registro', c.fecha_registro,
    'activo', c.activo"""

_RESUMEN = f"json_build_object({_CLIENTE_FIELDS})"

# A purchase as JSON is this row given to to_json/json_agg: keys in column order. Cheaper for
# PostgreSQL than json_build_object (measured: about 15% of a 100-document lote).
_COMPRAS = """SELECT p.id, p.numero_factura, p.fecha_compra, p.monto::text AS monto,
    p.descripcion, p.estado
    FROM compras AS p"""

_NEWEST_FIRST = "ORDER BY p.fecha_compra DESC, p.id DESC"

_DETALLE = f"""json_build_object({_CLIENTE_FIELDS},
    'total_compras', totales.cantidad,
    'monto_total_compras', totales.monto::text,
    'compras', recientes.compras)"""

# The customer joined with its type, its completed-purchase totals (from
# ix_compras_completadas_cliente alone) and its latest purchases (ix_compras_cliente_fecha), for
# this customer only.
_DETALLE_FROM = f"""
    clientes AS c
    JOIN tipos_documento AS t ON t.id = c.tipo_documento_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS cantidad, coalesce(sum(p.monto), 0.00) AS monto
        FROM compras AS p
        WHERE p.cliente_id = c.id AND p.estado = 'completada'
    ) AS totales
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(p {_NEWEST_FIRST}), '[]'::json) AS compras
        FROM (
            {_COMPRAS} WHERE p.cliente_id = c.id {_NEWEST_FIRST}
            LIMIT %(compras_limit)s
        ) AS p
    ) AS recientes"""


def _detalle_where(condition: str) -> str:
    return f"SELECT {_DETALLE}::text FROM {_DETALLE_FROM} WHERE {condition}"


DETALLE_POR_ID = _detalle_where("c.id = %(cliente_id)s")
DETALLE_POR_TIPO_ID = _detalle_where(
    "c.tipo_documento_id = %(tipo_documento_id)s AND c.numero_documento = %(numero_documento)s"
    " AND c.activo"
)
DETALLE_POR_CODIGO = _detalle_where(
    "t.codigo = upper(%(codigo)s) AND c.numero_documento = %(numero_documento)s AND c.activo"
)

# One round trip for the whole batch: the requested pairs, numbered, each LEFT JOINed to its
# active customer (null when none), aggregated back in request order.
DETALLES_POR_DOCUMENTOS = f"""
SELECT json_build_object('results', json_agg(encontrado.documento ORDER BY pedido.orden))::text
FROM unnest(CAST(%(codigos)s AS text[]), CAST(%(numeros)s AS text[]))
    WITH ORDINALITY AS pedido(codigo, numero_documento, orden)
LEFT JOIN LATERAL (
    SELECT {_DETALLE} AS documento
    FROM {_DETALLE_FROM}
    WHERE t.codigo = upper(pedido.codigo)
      AND c.numero_documento = pedido.numero_documento
      AND c.activo
) AS encontrado ON true
"""

TIPOS_DOCUMENTO_ACTIVOS = """
SELECT coalesce(json_agg(json_build_object(
    'id', t.id, 'codigo', t.codigo, 'nombre', t.nombre, 'descripcion', t.descripcion
) ORDER BY t.id), '[]'::json)::text
FROM tipos_documento AS t
WHERE t.activo
"""

# The exact expression of ix_clientes_busqueda_trgm, so the trigram index serves `q`.
_SEARCH_TEXT = texto_busqueda("c")

_CLIENTE_CONDITIONS = {
    "after_id": "c.id > %(after_id)s",
    "tipo_documento_id": "c.tipo_documento_id = %(tipo_documento_id)s",
    # The unique index leads with tipo_documento_id; naming the (few) types lets PostgreSQL
    # probe it once per type instead of scanning every customer for a bare document number.
    "numero_documento": "c.numero_documento = %(numero_documento)s"
    " AND c.tipo_documento_id IN (SELECT id FROM tipos_documento)",
    "pattern": f"{_SEARCH_TEXT} LIKE lower(%(pattern)s)",
    "activo": "c.activo = %(activo)s",
}


@cache  # one statement per combination of filters: at most 2**5
def list_clientes_statement(present: frozenset[str]) -> str:
    conditions = [sql for name, sql in _CLIENTE_CONDITIONS.items() if name in present]
    where = " AND ".join(conditions) or "true"
    return f"""
SELECT {_RESUMEN}::text AS documento, c.id
FROM clientes AS c JOIN tipos_documento AS t ON t.id = c.tipo_documento_id
WHERE {where}
ORDER BY c.id
LIMIT %(limit_plus_one)s
"""


def _list_compras_statement(after: bool) -> str:
    keyset = "AND (p.fecha_compra, p.id) < (%(after_fecha)s, %(after_id)s)" if after else ""
    # The LEFT JOIN tells "unknown customer" (no row) from "no purchases" (a row of nulls).
    return f"""
SELECT c.id AS cliente_id, p.documento, p.fecha_compra, p.id
FROM clientes AS c
LEFT JOIN LATERAL (
    SELECT to_json(p)::text AS documento, p.fecha_compra, p.id
    FROM (
        {_COMPRAS} WHERE p.cliente_id = c.id {keyset} {_NEWEST_FIRST}
        LIMIT %(limit_plus_one)s
    ) AS p
) AS p ON true
WHERE c.id = %(cliente_id)s
"""


LIST_COMPRAS_FIRST = _list_compras_statement(after=False)
LIST_COMPRAS_AFTER = _list_compras_statement(after=True)


@dataclass(frozen=True, slots=True)
class ClienteFilters:
    tipo_documento_id: int | None = None
    numero_documento: str | None = None
    q: str | None = None
    activo: bool | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[Key]):
    documents: list[str]
    next_key: Key | None  # the last returned row's key when more rows follow


def contains_pattern(fragment: str) -> str:
    """A LIKE pattern matching `fragment` literally anywhere (\\ is LIKE's escape character)."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _scalar(
    pool: AsyncConnectionPool, statement: str, params: Mapping[str, object]
) -> str | None:
    async with pool.connection() as connection:
        row = await (await connection.execute(statement, params)).fetchone()
    return None if row is None else str(row[0])


async def _rows(
    pool: AsyncConnectionPool, statement: str, params: Mapping[str, object]
) -> list[tuple[Any, ...]]:
    async with pool.connection() as connection:
        return await (await connection.execute(statement, params)).fetchall()


async def list_tipos_documento(pool: AsyncConnectionPool) -> str:
    documents = await _scalar(pool, TIPOS_DOCUMENTO_ACTIVOS, {})
    assert documents is not None  # an aggregate always answers one row
    return documents


async def cliente_detail(
    pool: AsyncConnectionPool, cliente_id: int, *, compras_limit: int
) -> str | None:
    params = {"cliente_id": cliente_id, "compras_limit": compras_limit}
    return await _scalar(pool, DETALLE_POR_ID, params)


async def find_cliente(
    pool: AsyncConnectionPool,
    *,
    numero_documento: str,
    tipo_documento_id: int | None = None,
    codigo: str | None = None,
    compras_limit: int,
) -> str | None:
    """The ACTIVE customer with this document, by type id or by type code."""
    params: dict[str, object] = {
        "numero_documento": numero_documento,
        "compras_limit": compras_limit,
    }
    if tipo_documento_id is not None:
        return await _scalar(
            pool, DETALLE_POR_TIPO_ID, params | {"tipo_documento_id": tipo_documento_id}
        )
    return await _scalar(pool, DETALLE_POR_CODIGO, params | {"codigo": codigo})


async def find_clientes(
    pool: AsyncConnectionPool, documentos: Sequence[tuple[str, str]], *, compras_limit: int
) -> str:
    """`{"results": [...]}`: each (code, number) pair's active customer or null, in order."""
    params = {
        "codigos": [codigo for codigo, _ in documentos],
        "numeros": [numero for _, numero in documentos],
        "compras_limit": compras_limit,
    }
    body = await _scalar(pool, DETALLES_POR_DOCUMENTOS, params)
    assert body is not None  # an aggregate always answers one row
    return body


async def list_clientes(
    pool: AsyncConnectionPool, filters: ClienteFilters, *, after_id: int | None, limit: int
) -> Page[int]:
    params: dict[str, object] = {
        "after_id": after_id,
        "tipo_documento_id": filters.tipo_documento_id,
        "numero_documento": filters.numero_documento,
        "pattern": contains_pattern(filters.q) if filters.q else None,
        "activo": filters.activo,
    }
    params = {name: value for name, value in params.items() if value is not None}
    statement = list_clientes_statement(frozenset(params))
    rows = await _rows(pool, statement, params | {"limit_plus_one": limit + 1})
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([documento for documento, _ in rows], rows[-1][1] if more else None)


async def list_compras(
    pool: AsyncConnectionPool, cliente_id: int, *, after: tuple[datetime, int] | None, limit: int
) -> Page[tuple[datetime, int]] | None:
    """A customer's purchases, newest first; None when the customer does not exist."""
    params: dict[str, object] = {"cliente_id": cliente_id, "limit_plus_one": limit + 1}
    if after is not None:
        params |= {"after_fecha": after[0], "after_id": after[1]}
    statement = LIST_COMPRAS_FIRST if after is None else LIST_COMPRAS_AFTER
    rows = await _rows(pool, statement, params)
    if not rows:
        return None
    # (documento, fecha_compra, id); a customer without purchases is one row of nulls.
    compras = [row[1:] for row in rows if row[1] is not None]
    more = len(compras) > limit
    compras = compras[:limit]
    next_key = (compras[-1][1], compras[-1][2]) if more else None
    return Page([documento for documento, _, _ in compras], next_key)
