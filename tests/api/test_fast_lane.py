"""The `buscar` fast lane (services/query_api/clientes/fast_lane.py) answers exactly as the
FastAPI route does: compared through the real API, the same request once through each path.

A parameter the route ignores (`via=route`) sends a request to the route, since the lane only
takes the parameters it knows. With `BUSCAR_FAST_LANE=false` the route answers every request,
which only the lane's DEBUG log line tells apart.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from harness import servers
from services.query_api.clientes.fast_lane import LANE_LOG_MESSAGE, BuscarFastLane, plainly_valid
from services.query_api.main import create_app
from shared.settings import Settings
from tests.conftest import Api, assert_problem
from tests.factories import make_cliente, make_compra, unique_number

BUSCAR = "/api/clientes/buscar"
# Headers that differ between any two requests, whichever path answers them.
PER_REQUEST = {"x-request-id", "date", "ratelimit"}


def both_ways(client: httpx.Client, query: str, **kwargs: object) -> list[httpx.Response]:
    assert plainly_valid(query.encode()) is not None, "the lane takes the first"
    assert plainly_valid(f"{query}&via=route".encode()) is None, "and leaves the second"
    return [
        client.get(f"{BUSCAR}?{query}", **kwargs),  # type: ignore[arg-type]
        client.get(f"{BUSCAR}?{query}&via=route", **kwargs),  # type: ignore[arg-type]
    ]


def assert_same_answer(fast: httpx.Response, route: httpx.Response) -> None:
    assert (fast.status_code, fast.content) == (route.status_code, route.content)
    same = {name: value for name, value in fast.headers.items() if name not in PER_REQUEST}
    assert same == {name: value for name, value in route.headers.items() if name not in PER_REQUEST}
    for response in (fast, route):
        assert response.headers["x-request-id"]
        assert response.headers["ratelimit-policy"] and response.headers["ratelimit"]


@pytest.mark.parametrize("lane", [True, False])
def test_the_setting_puts_the_lane_in_the_apps_middleware(lane: bool) -> None:
    app = create_app(Settings(secret_key="x" * 32, buscar_fast_lane=lane))
    classes: list[object] = [middleware.cls for middleware in app.user_middleware]
    assert (BuscarFastLane in classes) is lane


@pytest.fixture(scope="module")
def lane_on_and_off(service_env: dict[str, str]) -> Iterator[dict[bool, Api]]:
    """Two more APIs on the run's database and Redis, logging at DEBUG: BUSCAR_FAST_LANE on, off."""
    apis: dict[bool, Api] = {}
    try:
        for lane in (True, False):
            env = {**service_env, "LOG_LEVEL": "DEBUG", "BUSCAR_FAST_LANE": str(lane).lower()}
            port = servers.free_port()
            apis[lane] = Api(f"http://127.0.0.1:{port}", servers.api_server(env, port))
        yield apis
    finally:
        for api in apis.values():
            api.process.stop()


def answered_by_the_lane(api: Api, response: httpx.Response) -> bool:
    request_id = response.headers["x-request-id"]
    return any(
        LANE_LOG_MESSAGE in line and request_id in line for line in api.process.log().splitlines()
    )


def test_with_the_setting_off_the_route_answers_what_the_lane_did(
    lane_on_and_off: dict[bool, Api], engine: Engine
) -> None:
    numero = unique_number()
    cliente = make_cliente(engine, codigo="NIT", numero_documento=numero)
    make_compra(engine, cliente.id, monto="1000.00")
    queries = [
        f"tipo_documento=NIT&numero_documento={numero}",
        f"tipo_documento_id={cliente.tipo_documento_id}&numero_documento={numero}&compras_limit=1",
        f"tipo_documento=CC&numero_documento={unique_number()}",  # nobody: 404
    ]
    # The trailing slash too: the bench's requests have it (bench/dataset.py).
    paths = [f"{BUSCAR}?{queries[0]}", f"{BUSCAR}/?{queries[1]}", f"{BUSCAR}?{queries[2]}"]
    answers: dict[bool, list[httpx.Response]] = {}
    for lane, api in lane_on_and_off.items():
        with api.client() as http:
            answers[lane] = [http.get(path) for path in paths]
    assert [response.status_code for response in answers[False]] == [200, 200, 404]
    for on, off in zip(answers[True], answers[False], strict=True):
        assert_same_answer(on, off)
        assert answered_by_the_lane(lane_on_and_off[True], on)
        assert not answered_by_the_lane(lane_on_and_off[False], off)


def test_a_found_customer_is_the_same_answer_both_ways(
    client: httpx.Client, engine: Engine
) -> None:
    cliente = make_cliente(engine, codigo="NIT")
    numero = cliente.numero_documento
    for day in range(1, 4):
        make_compra(engine, cliente.id, monto=f"{day}000.00")
    for query in (
        f"tipo_documento=NIT&numero_documento={numero}",
        f"tipo_documento=nit&numero_documento={numero}&compras_limit=2",
        f"tipo_documento_id={cliente.tipo_documento_id}&numero_documento={numero}",
    ):
        fast, route = both_ways(client, query)
        assert fast.status_code == 200, fast.text
        assert fast.json()["id"] == cliente.id
        assert_same_answer(fast, route)
    assert len(fast.json()["compras"]) == 3


def test_not_found_and_not_modified_are_the_same_answers_both_ways(
    client: httpx.Client, engine: Engine
) -> None:
    missing = both_ways(client, "tipo_documento=CC&numero_documento=0000000001")
    assert_problem(missing[0], 404)
    assert_same_answer(*missing)

    query = f"tipo_documento=CC&numero_documento={make_cliente(engine).numero_documento}"
    etag = client.get(f"{BUSCAR}?{query}").headers["etag"]
    not_modified = both_ways(client, query, headers={"If-None-Match": etag})
    assert not_modified[0].status_code == 304
    assert_same_answer(*not_modified)


@pytest.mark.parametrize(
    "query",
    [
        "tipo_documento=CC",  # no number
        "numero_documento=1",  # no type
        "tipo_documento=CC&tipo_documento_id=2&numero_documento=1",  # both types
        "tipo_documento=&numero_documento=1",
        "tipo_documento=CC&numero_documento=" + "9" * 21,
        "tipo_documento_id=0&numero_documento=1",
        "tipo_documento_id=x&numero_documento=1",
        "tipo_documento=CC&numero_documento=1&compras_limit=101",
        "tipo_documento=CC&numero_documento=1&compras_limit=-1",
    ],
)
def test_what_the_lane_leaves_to_the_route_is_refused_by_it(
    client: httpx.Client, query: str
) -> None:
    assert plainly_valid(query.encode()) is None
    assert_problem(client.get(f"{BUSCAR}?{query}"), 400)


@pytest.mark.parametrize(
    "query",
    [
        "tipo_documento=CC&numero_documento=1&numero_documento=2",  # repeated: the route decides
        "tipo_documento=CC&numero_documento=1&via=route",  # unknown: the route ignores it
        "tipo_documento_id=%EF%BC%92&numero_documento=1",  # a non-ASCII digit
    ],
)
def test_the_lane_takes_only_plain_requests(query: str) -> None:
    assert plainly_valid(query.encode()) is None


def test_the_lane_decodes_as_starlette_does() -> None:
    arguments = plainly_valid(b"tipo_documento=CC&numero_documento=%C3%91-1+2&compras_limit=007")
    assert arguments == {
        "codigo": "CC",
        "numero_documento": "Ñ-1 2",
        "tipo_documento_id": None,
        "compras_limit": 7,
    }


def test_lane_answers_count_under_the_route_template(client: httpx.Client) -> None:
    def answered() -> float:
        families = text_string_to_metric_families(client.get("/metrics").text)
        return sum(
            sample.value
            for family in families
            if family.name == "clientes_http_requests"
            for sample in family.samples
            if sample.name == "clientes_http_requests_total"
            and sample.labels["route"] == BUSCAR
            and sample.labels["status"] == "404"
        )

    before = answered()
    for _ in range(3):
        assert client.get(f"{BUSCAR}?tipo_documento=CC&numero_documento=404404").status_code == 404
    assert answered() == before + 3
