"""Lookup endpoints: parse, authorize, run one repository query, send PostgreSQL's JSON as is.

`response_model` documents the answers in OpenAPI; returning a `Response` skips pydantic on the
hot path. Routes are declared without a trailing slash (the middleware strips it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import orjson
from fastapi import APIRouter, Path, Query, Request
from psycopg_pool import AsyncConnectionPool
from starlette.responses import Response

from services.query_api import cursors
from services.query_api.auth import ReadPrincipal
from services.query_api.clientes import etag, repository, schemas
from services.query_api.deps import LookupPool, SettingsDep
from services.query_api.problems import BadRequest, NotFound

router = APIRouter(prefix="/api")

Key = TypeVar("Key")

JSON = "application/json"
BIGINT_MAX = 2**63 - 1
SMALLINT_MAX = 2**15 - 1

ClienteId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The customer's id.")]
TipoDocumentoId = Annotated[int | None, Query(ge=1, le=SMALLINT_MAX)]
DOCUMENTO_MAX_LENGTH = 20
NumeroDocumento = Annotated[str | None, Query(min_length=1, max_length=DOCUMENTO_MAX_LENGTH)]
Limit = Annotated[int, Query(ge=1, le=500, description="Rows per page.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="Opaque; taken from the previous `next`.")
]
COMPRAS_LIMIT_MAX = 100
COMPRAS_LIMIT_DEFAULT = 20
ComprasLimit = Annotated[
    int,
    Query(
        ge=0,
        le=COMPRAS_LIMIT_MAX,
        description="How many of the most recent purchases to include.",
    ),
]

_DETAIL_RESPONSES: dict[int | str, dict[str, object]] = {
    304: {"description": "`If-None-Match` named the current ETag."},
    404: {"description": "No such customer."},
}


def _detail_response(request: Request, body: str) -> Response:
    content = body.encode()
    headers = {"ETag": etag.strong_etag(content), "Cache-Control": "private, no-cache"}
    if etag.none_match_hits(request.headers.getlist("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=JSON, headers=headers)


def _page_response(
    request: Request,
    page: repository.Page[Key],
    *,
    limit: int,
    encode: Callable[..., str],
    purpose: str,
    secret: str,
) -> Response:
    """The page, with `next` = this URL (filters and limit kept) resuming after its last row."""
    next_url = None
    if page.next_key is not None:
        cursor = encode(page.next_key, purpose=purpose, secret=secret)
        next_url = str(request.url.include_query_params(limit=limit, cursor=cursor))
    return Response(page_body(page.documents, next_url), media_type=JSON)


def page_body(documents: Sequence[str], next_url: str | None) -> bytes:
    """`{"results": [...], "next": ...}` around JSON documents PostgreSQL already rendered."""
    results = ",".join(documents).encode()
    return b'{"results":[' + results + b'],"next":' + orjson.dumps(next_url) + b"}"


@router.get(
    "/tipos-documento", tags=["tipos-documento"], response_model=list[schemas.TipoDocumento]
)
async def list_tipos_documento(_: ReadPrincipal, db: LookupPool) -> Response:
    return Response(await repository.list_tipos_documento(db), media_type=JSON)


@router.get("/clientes", tags=["clientes"], response_model=schemas.ClientesPage)
async def list_clientes(
    request: Request,
    _: ReadPrincipal,
    db: LookupPool,
    settings: SettingsDep,
    tipo_documento_id: TipoDocumentoId = None,
    numero_documento: NumeroDocumento = None,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Case-insensitive text in name, surname or e-mail."),
    ] = None,
    activo: bool | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    secret = settings.secret_key
    after_id = cursors.resume_after(cursor, cursors.decode_id, purpose="clientes", secret=secret)
    filters = repository.ClienteFilters(tipo_documento_id, numero_documento, q or None, activo)
    page = await repository.list_clientes(db, filters, after_id=after_id, limit=limit)
    return _page_response(
        request, page, limit=limit, encode=cursors.encode_id, purpose="clientes", secret=secret
    )


@router.get(
    "/clientes/buscar",
    tags=["clientes"],
    response_model=schemas.ClienteDetalle,
    responses=_DETAIL_RESPONSES,
)
async def buscar_cliente(
    request: Request,
    _: ReadPrincipal,
    db: LookupPool,
    tipo_documento_id: TipoDocumentoId = None,
    tipo_documento: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=DOCUMENTO_MAX_LENGTH,
            description="The type's code (CC, NIT…), instead of the id.",
        ),
    ] = None,
    numero_documento: NumeroDocumento = None,
    compras_limit: ComprasLimit = COMPRAS_LIMIT_DEFAULT,
) -> Response:
    """The ACTIVE customer with this document."""
    errors = []
    if tipo_documento_id is None and tipo_documento is None:
        message = "Missing: send tipo_documento_id, or tipo_documento (the code, e.g. CC)."
        errors.append({"field": "tipo_documento_id", "message": message})
    if tipo_documento_id is not None and tipo_documento is not None:
        message = "Send tipo_documento_id or tipo_documento, not both."
        errors.append({"field": "tipo_documento", "message": message})
    if numero_documento is None:
        errors.append({"field": "numero_documento", "message": "Missing: send numero_documento."})
    if errors:
        raise BadRequest("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
    assert numero_documento is not None
    return await buscar_response(
        request,
        db,
        numero_documento=numero_documento,
        tipo_documento_id=tipo_documento_id,
        codigo=tipo_documento,
        compras_limit=compras_limit,
    )


async def buscar_response(
    request: Request,
    pool: AsyncConnectionPool,
    *,
    numero_documento: str,
    tipo_documento_id: int | None,
    codigo: str | None,
    compras_limit: int,
) -> Response:
    """`buscar`'s answer for valid parameters: this route's and the fast lane's (fast_lane.py)."""
    body = await repository.find_cliente(
        pool,
        numero_documento=numero_documento,
        tipo_documento_id=tipo_documento_id,
        codigo=codigo,
        compras_limit=compras_limit,
    )
    if body is None:
        raise NotFound("No active customer has that document.")
    return _detail_response(request, body)


@router.post("/clientes/buscar/lote", tags=["clientes"], response_model=schemas.LoteResponse)
async def buscar_clientes_lote(
    lote: schemas.LoteRequest,
    _: ReadPrincipal,
    db: LookupPool,
    compras_limit: ComprasLimit = COMPRAS_LIMIT_DEFAULT,
) -> Response:
    """Up to 1000 documents in one round trip; each answer is the active customer or null."""
    documentos = [(d.tipo_documento, d.numero_documento) for d in lote.documentos]
    body = await repository.find_clientes(db, documentos, compras_limit=compras_limit)
    return Response(body, media_type=JSON)


@router.get(
    "/clientes/{cliente_id}",
    tags=["clientes"],
    response_model=schemas.ClienteDetalle,
    responses=_DETAIL_RESPONSES,
)
async def get_cliente(
    request: Request,
    cliente_id: ClienteId,
    _: ReadPrincipal,
    db: LookupPool,
    compras_limit: ComprasLimit = COMPRAS_LIMIT_DEFAULT,
) -> Response:
    body = await repository.cliente_detail(db, cliente_id, compras_limit=compras_limit)
    if body is None:
        raise NotFound(f"No customer with id {cliente_id}.")
    return _detail_response(request, body)


@router.get(
    "/clientes/{cliente_id}/compras",
    tags=["clientes"],
    response_model=schemas.ComprasPage,
    responses={404: {"description": "No such customer."}},
)
async def list_compras(
    request: Request,
    cliente_id: ClienteId,
    _: ReadPrincipal,
    db: LookupPool,
    settings: SettingsDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """The customer's purchases, newest first."""
    # Bound to the customer: another customer's cursor is refused, not silently reinterpreted.
    purpose, secret = f"compras:{cliente_id}", settings.secret_key
    after = cursors.resume_after(cursor, cursors.decode_moment_id, purpose=purpose, secret=secret)
    page = await repository.list_compras(db, cliente_id, after=after, limit=limit)
    if page is None:
        raise NotFound(f"No customer with id {cliente_id}.")
    return _page_response(
        request,
        page,
        limit=limit,
        encode=cursors.encode_moment_id,
        purpose=purpose,
        secret=secret,
    )
