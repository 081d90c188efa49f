"""Lookups through the real API and database: document types, list, detail, purchases, search,
batch search, and the plans that serve them. The pure pieces (cursors, LIKE escaping, ETags) are
tested directly in tests/unit/."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from sqlalchemy import Engine

from services.query_api import cursors
from services.query_api.clientes import repository
from shared.models import Cliente
from shared.settings import to_libpq_url
from tests.conftest import assert_problem
from tests.factories import (
    make_cliente,
    make_compra,
    make_tipo_documento,
    tipo_documento_id,
    unique_number,
)

SUMMARY_FIELDS = {
    "id",
    "tipo_documento",
    "numero_documento",
    "nombre",
    "apellido",
    "nombre_completo",
    "correo",
    "telefono",
    "fecha_registro",
    "activo",
}
DETAIL_FIELDS = SUMMARY_FIELDS | {"total_compras", "monto_total_compras", "compras"}
COMPRA_FIELDS = {"id", "numero_factura", "fecha_compra", "monto", "descripcion", "estado"}
MONEY = re.compile(r"\d+\.\d{2}")


def token() -> str:
    """A name fragment no other test uses: the `q` filter then sees only this test's rows."""
    return "tk" + uuid.uuid4().hex[:12]


def assert_utc_timestamp(value: str) -> None:
    assert value.endswith("+00:00"), value
    assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


def walk_pages(
    client: httpx.Client, url: str, params: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    """Every page, following `next` exactly as the API wrote it."""
    pages = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"results", "next"}
        pages.append(body["results"])
        if body["next"] is None:
            return pages
        response = client.get(body["next"])


# ---- document types


def test_tipos_documento_lists_the_active_types(client: httpx.Client, engine: Engine) -> None:
    inactive = make_tipo_documento(engine, activo=False)
    response = client.get("/api/tipos-documento/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    tipos = response.json()
    assert all(set(tipo) == {"id", "codigo", "nombre", "descripcion"} for tipo in tipos)
    codigos = {tipo["codigo"] for tipo in tipos}
    assert {"NIT", "CC", "PA", "CE", "TI"} <= codigos
    assert inactive.codigo not in codigos
    cc = next(tipo for tipo in tipos if tipo["codigo"] == "CC")
    assert cc == {
        "id": tipo_documento_id(engine, "CC"),
        "codigo": "CC",
        "nombre": "Cédula de Ciudadanía",
        "descripcion": "Ciudadanos colombianos mayores de edad",
    }


# ---- list


def test_list_visits_every_row_exactly_once(client: httpx.Client, engine: Engine) -> None:
    name = token()
    created = [make_cliente(engine, nombre=f"Nombre {name}").id for _ in range(23)]
    pages = walk_pages(client, "/api/clientes/", {"q": name, "limit": 5})
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    seen = [row["id"] for page in pages for row in page]
    assert seen == sorted(created)


def test_next_keeps_the_filters_and_the_limit(client: httpx.Client, engine: Engine) -> None:
    name = token()
    for _ in range(3):
        make_cliente(engine, nombre=name)
    params = {"q": name, "limit": "2", "activo": "true"}
    first = client.get("/api/clientes", params=params).json()
    query = parse_qs(urlsplit(first["next"]).query)
    assert query["q"] == [name] and query["limit"] == ["2"] and query["activo"] == ["true"]
    assert len(query["cursor"]) == 1
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None


def test_list_items_are_customer_summaries(client: httpx.Client, engine: Engine) -> None:
    name = token()
    cliente = make_cliente(engine, nombre=name, apellido="Gómez Díaz", telefono="+57 310 000 0000")
    (item,) = client.get("/api/clientes", params={"q": name}).json()["results"]
    assert set(item) == SUMMARY_FIELDS
    assert item["id"] == cliente.id
    assert item["tipo_documento"] == {
        "id": cliente.tipo_documento_id,
        "codigo": "CC",
        "nombre": "Cédula de Ciudadanía",
    }
    assert item["numero_documento"] == cliente.numero_documento
    assert item["nombre_completo"] == f"{name} Gómez Díaz"
    assert item["correo"] == cliente.correo and item["telefono"] == "+57 310 000 0000"
    assert item["activo"] is True
    assert_utc_timestamp(item["fecha_registro"])


def test_list_filters(client: httpx.Client, engine: Engine) -> None:
    name = token()
    cc = make_cliente(engine, nombre=name, codigo="CC")
    nit = make_cliente(engine, nombre=name, codigo="NIT", activo=False)
    by_mail = make_cliente(engine, correo=f"{name}@correo.example")

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/clientes", params=params)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()["results"]]

    assert ids(q=name) == [cc.id, nit.id, by_mail.id]
    assert ids(q=name.upper()) == [cc.id, nit.id, by_mail.id]  # case-insensitive
    assert ids(q=f"{name}@correo") == [by_mail.id]
    assert ids(q=name, activo="false") == [nit.id]
    assert ids(q=name, activo="true") == [cc.id, by_mail.id]
    assert ids(q=name, tipo_documento_id=tipo_documento_id(engine, "NIT")) == [nit.id]
    assert ids(numero_documento=nit.numero_documento) == [nit.id]
    assert ids(numero_documento=nit.numero_documento, tipo_documento_id=cc.tipo_documento_id) == []


def test_q_matches_like_wildcards_literally(client: httpx.Client, engine: Engine) -> None:
    name = token()
    literal = make_cliente(engine, nombre=f"{name}%_x")
    make_cliente(engine, nombre=f"{name}abx")  # what an unescaped %_ would also match
    results = client.get("/api/clientes", params={"q": f"{name}%_"}).json()["results"]
    assert [row["id"] for row in results] == [literal.id]
    assert client.get("/api/clientes", params={"q": f"{name}\\"}).json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"tipo_documento_id": "CC"}, "tipo_documento_id"),
        ({"activo": "perhaps"}, "activo"),
    ],
)
def test_list_refuses_bad_parameters(
    client: httpx.Client, params: dict[str, str], field: str
) -> None:
    assert_problem(client.get("/api/clientes/", params=params), 400, field=field)


def test_limit_bounds_are_inclusive(client: httpx.Client) -> None:
    assert client.get("/api/clientes", params={"limit": 1}).status_code == 200
    assert client.get("/api/clientes", params={"limit": 500}).status_code == 200


def test_forged_truncated_or_foreign_cursors_are_400(client: httpx.Client, engine: Engine) -> None:
    name = token()
    cliente = make_cliente(engine, nombre=name)
    make_cliente(engine, nombre=name)
    for _ in range(2):
        make_compra(engine, cliente)
    listing = client.get("/api/clientes", params={"q": name, "limit": 1}).json()
    cursor = parse_qs(urlsplit(listing["next"]).query)["cursor"][0]
    compras = client.get(f"/api/clientes/{cliente.id}/compras", params={"limit": 1}).json()
    compras_cursor = parse_qs(urlsplit(compras["next"]).query)["cursor"][0]
    flipped = cursor[:3] + ("A" if cursor[3] != "A" else "B") + cursor[4:]
    forged = cursors.encode_id(0, purpose="clientes", secret="not-the-server-secret")
    for bad in [flipped, cursor[:-3], cursor + "A", "!!!", "null", forged, compras_cursor]:
        response = client.get("/api/clientes", params={"q": name, "cursor": bad})
        assert_problem(response, 400, field="cursor")
    assert client.get("/api/clientes", params={"q": name, "cursor": cursor}).status_code == 200


# ---- detail


def test_detail_totals_count_only_completed_purchases(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    compras = [
        make_compra(engine, cliente, monto="1500000.00", fecha_compra=now - timedelta(days=3)),
        make_compra(engine, cliente, monto="250000.50", fecha_compra=now - timedelta(days=1)),
        make_compra(engine, cliente, monto="99.00", estado="pendiente", fecha_compra=now),
        make_compra(
            engine, cliente, monto="77.00", estado="cancelada", fecha_compra=now - timedelta(days=2)
        ),
    ]
    response = client.get(f"/api/clientes/{cliente.id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    detail = response.json()
    assert set(detail) == DETAIL_FIELDS
    assert detail["total_compras"] == 2
    assert detail["monto_total_compras"] == "1750000.50"
    newest_first = [compras[2], compras[1], compras[3], compras[0]]
    assert [c["id"] for c in detail["compras"]] == [c.id for c in newest_first]
    first = detail["compras"][0]
    assert set(first) == COMPRA_FIELDS
    assert first["monto"] == "99.00" and first["estado"] == "pendiente"
    assert first["numero_factura"] == compras[2].numero_factura
    assert first["descripcion"] == "Compra de prueba"
    assert first["fecha_compra"] == now.isoformat()
    assert all(MONEY.fullmatch(c["monto"]) for c in detail["compras"])


def test_detail_of_a_customer_without_purchases(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine, nombre="Luis", apellido="Ñáñez")
    detail = client.get(f"/api/clientes/{cliente.id}/").json()
    assert detail["total_compras"] == 0
    assert detail["monto_total_compras"] == "0.00"
    assert detail["compras"] == []
    assert detail["nombre_completo"] == "Luis Ñáñez"
    assert_utc_timestamp(detail["fecha_registro"])


def test_compras_limit_bounds_the_recent_purchases(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine)
    for _ in range(3):
        make_compra(engine, cliente)
    url = f"/api/clientes/{cliente.id}"
    assert len(client.get(url).json()["compras"]) == 3
    assert len(client.get(url, params={"compras_limit": 1}).json()["compras"]) == 1
    none = client.get(url, params={"compras_limit": 0}).json()
    assert none["compras"] == [] and none["total_compras"] == 3
    assert_problem(client.get(url, params={"compras_limit": 101}), 400, field="compras_limit")


def test_detail_of_unknown_and_malformed_ids(client: httpx.Client) -> None:
    body = assert_problem(client.get("/api/clientes/987654321098/"), 404)
    assert body["type"] != "about:blank"
    for malformed in ["abc", "1.5", "0", "-3", "99999999999999999999999"]:
        assert_problem(client.get(f"/api/clientes/{malformed}"), 400, field="cliente_id")


def test_detail_etag_and_if_none_match(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine)
    url = f"/api/clientes/{cliente.id}"
    first = client.get(url)
    tag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', tag)
    assert client.get(url).headers["etag"] == tag  # stable while nothing changes
    for header in [tag, f'"other", {tag}', "*", f"W/{tag}"]:
        cached = client.get(url, headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached.headers["etag"] == tag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    make_compra(engine, cliente)
    changed = client.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag


# ---- purchases


def test_compras_are_paginated_newest_first(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine)
    start = datetime(2026, 10, 27, 10, tzinfo=UTC)
    # Three purchases share each timestamp: the id must break the ties.
    compras = [
        make_compra(engine, cliente, fecha_compra=start - timedelta(hours=i // 3))
        for i in range(23)
    ]
    make_compra(engine, make_cliente(engine))  # someone else's, never listed
    pages = walk_pages(client, f"/api/clientes/{cliente.id}/compras/", {"limit": 5})
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    expected = sorted(compras, key=lambda c: (c.fecha_compra, c.id), reverse=True)
    assert [row["id"] for page in pages for row in page] == [c.id for c in expected]
    row = pages[0][0]
    assert set(row) == COMPRA_FIELDS
    assert row["fecha_compra"] == "2026-10-27T10:00:00+00:00"
    assert row["monto"] == "100000.00"


def test_compras_of_unknown_customer_or_none(client: httpx.Client, engine: Engine) -> None:
    assert_problem(client.get("/api/clientes/987654321099/compras"), 404)
    assert_problem(client.get("/api/clientes/x/compras"), 400, field="cliente_id")
    cliente = make_cliente(engine)
    empty = client.get(f"/api/clientes/{cliente.id}/compras")
    assert empty.json() == {"results": [], "next": None}
    for limit in ["0", "501"]:
        response = client.get(f"/api/clientes/{cliente.id}/compras", params={"limit": limit})
        assert_problem(response, 400, field="limit")


def test_a_compras_cursor_belongs_to_its_customer(client: httpx.Client, engine: Engine) -> None:
    owner, other = make_cliente(engine), make_cliente(engine)
    for cliente in (owner, owner, other):
        make_compra(engine, cliente)
    page = client.get(f"/api/clientes/{owner.id}/compras", params={"limit": 1}).json()
    cursor = parse_qs(urlsplit(page["next"]).query)["cursor"][0]
    response = client.get(f"/api/clientes/{other.id}/compras", params={"cursor": cursor})
    assert_problem(response, 400, field="cursor")


# ---- buscar


def test_buscar_by_type_id_or_code(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine, codigo="NIT")
    make_compra(engine, cliente, monto="5000.00")
    by_id = client.get(
        "/api/clientes/buscar/",
        params={
            "tipo_documento_id": cliente.tipo_documento_id,
            "numero_documento": cliente.numero_documento,
        },
    )
    assert by_id.status_code == 200
    assert by_id.json()["id"] == cliente.id
    assert set(by_id.json()) == DETAIL_FIELDS
    assert by_id.json()["monto_total_compras"] == "5000.00"
    by_code = client.get(
        "/api/clientes/buscar",
        params={"tipo_documento": "nit", "numero_documento": cliente.numero_documento},
    )
    assert by_code.status_code == 200
    assert by_code.content == by_id.content
    assert by_code.headers["etag"] == by_id.headers["etag"]
    cached = client.get(
        "/api/clientes/buscar",
        params={"tipo_documento": "NIT", "numero_documento": cliente.numero_documento},
        headers={"If-None-Match": by_id.headers["etag"]},
    )
    assert cached.status_code == 304


def test_buscar_ignores_inactive_and_unknown(client: httpx.Client, engine: Engine) -> None:
    inactive = make_cliente(engine, activo=False)
    searches: list[dict[str, str | int]] = [
        {"tipo_documento": "CC", "numero_documento": inactive.numero_documento},
        {"tipo_documento": "CE", "numero_documento": inactive.numero_documento},
        {"tipo_documento": "XX", "numero_documento": inactive.numero_documento},
        {"tipo_documento_id": inactive.tipo_documento_id, "numero_documento": "0"},
    ]
    for params in searches:
        assert_problem(client.get("/api/clientes/buscar", params=params), 404)
    assert client.get(f"/api/clientes/{inactive.id}").status_code == 200  # by id it still shows


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"tipo_documento_id": "2"}, {"numero_documento"}),
        ({"numero_documento": "123"}, {"tipo_documento_id"}),
        ({}, {"tipo_documento_id", "numero_documento"}),
        (
            {"tipo_documento_id": "2", "tipo_documento": "CC", "numero_documento": "1"},
            {"tipo_documento"},
        ),
        ({"tipo_documento_id": "x", "numero_documento": "1"}, {"tipo_documento_id"}),
        ({"tipo_documento": "CC", "numero_documento": "1" * 21}, {"numero_documento"}),
    ],
)
def test_buscar_names_the_missing_or_bad_parameter(
    client: httpx.Client, params: dict[str, str], fields: set[str]
) -> None:
    body = assert_problem(client.get("/api/clientes/buscar", params=params), 400)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {error["field"] for error in errors} == fields
    assert all(field in str(body["detail"]) for field in fields)


# ---- lote


def lote(*pairs: tuple[str, str]) -> dict[str, list[dict[str, str]]]:
    return {"documentos": [{"tipo_documento": t, "numero_documento": n} for t, n in pairs]}


def test_lote_answers_in_order_with_nulls(client: httpx.Client, engine: Engine) -> None:
    ana = make_cliente(engine, codigo="CC")
    empresa = make_cliente(engine, codigo="NIT")
    inactive = make_cliente(engine, codigo="CC", activo=False)
    for _ in range(3):
        make_compra(engine, ana)
    body = lote(
        ("CC", ana.numero_documento),
        ("XX", ana.numero_documento),
        ("nit", empresa.numero_documento),
        ("CC", "000"),
        ("CC", inactive.numero_documento),
        ("PA", empresa.numero_documento),
        ("CC", ana.numero_documento),
    )
    response = client.post("/api/clientes/buscar/lote/", json=body, params={"compras_limit": 2})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    results = response.json()["results"]
    assert [r and r["id"] for r in results] == [ana.id, None, empresa.id, None, None, None, ana.id]
    assert set(results[0]) == DETAIL_FIELDS
    assert len(results[0]["compras"]) == 2 and results[0]["total_compras"] == 3
    assert results[0] == client.get(f"/api/clientes/{ana.id}?compras_limit=2").json()


def test_lote_takes_up_to_1000(client: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine)
    # Numbers handed to this test and never inserted: no customer can have them.
    nobodys = [unique_number("CC") for _ in range(999)]
    pairs = [("CC", numero) for numero in nobodys] + [("CC", cliente.numero_documento)]
    response = client.post("/api/clientes/buscar/lote", json=lote(*pairs))
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 1000 and results[-1]["id"] == cliente.id
    assert all(result is None for result in results[:-1])
    too_many = client.post("/api/clientes/buscar/lote", json=lote(*pairs, ("CC", "1")))
    assert_problem(too_many, 422, field="documentos")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"documentos": []}, "documentos"),
        ({}, "documentos"),
        ({"documentos": [{"tipo_documento": "CC"}]}, "documentos[0].numero_documento"),
        (
            {"documentos": [{"tipo_documento": "", "numero_documento": "1"}]},
            "documentos[0].tipo_documento",
        ),
        ({"documentos": "CC 1"}, "documentos"),
    ],
)
def test_lote_refuses_bad_bodies(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    assert_problem(client.post("/api/clientes/buscar/lote", json=body), 422, field=field)


# ---- both slash forms


@pytest.fixture(scope="module")
def known_cliente(engine: Engine) -> Cliente:
    cliente = make_cliente(engine)
    make_compra(engine, cliente)
    return cliente


@pytest.mark.parametrize(
    "path",
    [
        "/api/tipos-documento",
        "/api/clientes",
        "/api/clientes/{id}",
        "/api/clientes/{id}/compras",
        "/api/clientes/buscar?tipo_documento=CC&numero_documento={numero}",
    ],
)
@pytest.mark.parametrize("slash", ["", "/"])
def test_both_slash_forms_answer_directly(
    client: httpx.Client, known_cliente: Cliente, path: str, slash: str
) -> None:
    url = path.format(id=known_cliente.id, numero=known_cliente.numero_documento)
    route, _, query = url.partition("?")
    response = client.get(route + slash + ("?" + query if query else ""))
    assert response.status_code == 200, response.text
    assert "location" not in response.headers


@pytest.mark.parametrize("slash", ["", "/"])
def test_lote_answers_at_both_slash_forms(
    client: httpx.Client, known_cliente: Cliente, slash: str
) -> None:
    body = lote(("CC", known_cliente.numero_documento))
    response = client.post("/api/clientes/buscar/lote" + slash, json=body)
    assert response.status_code == 200
    assert response.json()["results"][0]["id"] == known_cliente.id


def test_openapi_documents_the_lookups(anonymous: httpx.Client) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    detail = paths["/api/clientes/{cliente_id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ClienteDetalle"
    }
    assert "post" in paths["/api/clientes/buscar/lote"]


# ---- the plans: every lookup can be served by an index (no seq scan of clientes or compras)

_BY_DOCUMENT = {"numero_documento": "1020304050", "compras_limit": 20}


@pytest.mark.parametrize(
    ("statement", "params", "index"),
    [
        (repository.DETALLE_POR_ID, {"cliente_id": 1, "compras_limit": 20}, "pk_clientes"),
        (
            repository.DETALLE_POR_CODIGO,
            {"codigo": "cc", **_BY_DOCUMENT},
            "uq_clientes_tipo_documento_id_numero_documento",
        ),
        (
            repository.DETALLE_POR_TIPO_ID,
            {"tipo_documento_id": 2, **_BY_DOCUMENT},
            "uq_clientes_tipo_documento_id_numero_documento",
        ),
        (
            repository.DETALLES_POR_DOCUMENTOS,
            {"codigos": ["CC", "NIT"], "numeros": ["1", "2"], "compras_limit": 20},
            "uq_clientes_tipo_documento_id_numero_documento",
        ),
        (
            repository.list_clientes_statement(frozenset({"numero_documento"})),
            {"numero_documento": "1020304050", "limit_plus_one": 51},
            "uq_clientes_tipo_documento_id_numero_documento",
        ),
        (
            repository.list_clientes_statement(frozenset({"pattern", "activo"})),
            {"pattern": "%maría%", "activo": True, "limit_plus_one": 51},
            "ix_clientes_busqueda_trgm",
        ),
        (
            repository.LIST_COMPRAS_AFTER,
            {
                "cliente_id": 1,
                "after_fecha": datetime(2026, 1, 1, tzinfo=UTC),
                "after_id": 9,
                "limit_plus_one": 51,
            },
            "ix_compras_cliente_fecha",
        ),
    ],
)
def test_lookups_can_be_served_by_indexes(
    database_url: str, statement: str, params: dict[str, Any], index: str
) -> None:
    with psycopg.connect(to_libpq_url(database_url)) as connection:  # one transaction
        # Forbid what the planner may rightly prefer on a small table, so the plan shows
        # whether an index CAN answer (e.g. `q` keeps the trigram index's exact expression).
        connection.execute("SET LOCAL enable_seqscan = off")
        if index == "ix_clientes_busqueda_trgm":
            connection.execute("SET LOCAL enable_indexscan = off")
        rows = connection.execute("EXPLAIN " + statement, params).fetchall()
        plan = "\n".join(row[0] for row in rows)
    assert index in plan, plan
    assert "Seq Scan on clientes" not in plan and "Seq Scan on compras" not in plan, plan
