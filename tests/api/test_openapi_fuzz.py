"""Issue #5: schemathesis against the live `/openapi.json`: no 500, and every answer (status,
content type, headers, body) is one the description promises.

Each operation is fuzzed with schema-valid and schema-breaking requests (query, path, headers,
body), authenticated with the run's bootstrap key. The schema is the running API's own, loaded
over HTTP. Operations are listed here, and a test checks the list against the schema, so that a
new route cannot go unfuzzed (and so that a known failure can be marked on its operation alone).

schemathesis's own pytest loader (`schemathesis.pytest.from_fixture`) does not run on pytest 9.2
(it writes `Node._nodeid`, gone there), so the cases come from its public `as_strategy()`, with
Hypothesis settings of our own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, text

from harness.servers import wait_until
from shared import job_queue
from shared.models import Cliente
from tests.conftest import BOOTSTRAP_KEY, Api, Workers, assert_problem
from tests.factories import make_cliente, make_compra
from tests.jobs import settle

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation and per kind of request (valid, invalid, about known data): about 1,000
# requests in all, some 20 s on a quiet machine.
EXAMPLES_PER_MODE = 20
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}

# Every operation is fuzzed, the data-changing ones included: new API keys and jobs harm no
# other test. `DELETE /api/api-keys/{key_id}` could revoke the bootstrap key every test uses,
# but only by its id, which the fuzzer cannot guess (a random UUID): generation here draws
# nothing from earlier responses.
OPERATIONS = [
    "GET /health",
    "GET /ready",
    "GET /api/tipos-documento",
    "GET /api/clientes",
    "GET /api/clientes/buscar",
    "POST /api/clientes/buscar/lote",
    "GET /api/clientes/{cliente_id}",
    "GET /api/clientes/{cliente_id}/compras",
    "POST /api/api-keys",
    "GET /api/api-keys",
    "GET /api/api-keys/{key_id}",
    "DELETE /api/api-keys/{key_id}",
    "GET /api/clientes/{cliente_id}/exportar",
    "POST /api/clientes/{cliente_id}/exportar",
    "GET /api/reporte-fidelizacion/generar",
    "POST /api/reporte-fidelizacion/generar",
    "POST /api/exportaciones",
    "GET /api/jobs",
    "GET /api/jobs/{job_id}",
    "DELETE /api/jobs/{job_id}",
    "GET /api/jobs/{job_id}/download",
    "POST /api/webhooks",
    "GET /api/webhooks",
    "DELETE /api/webhooks/{endpoint_id}",
    "GET /api/webhooks/{endpoint_id}/deliveries",
]


@pytest.fixture(scope="module", autouse=True)
def no_jobs_left_behind(api: Api, engine: Engine, redis_url: str) -> Iterator[None]:
    """The fuzzer makes a hundred jobs or so: cancel those still waiting and let the workers
    drop their messages, so that no later test waits behind them or counts them."""
    with engine.connect() as connection:
        start = connection.execute(text("SELECT now()")).scalar_one()
    yield
    with engine.connect() as connection:
        waiting = connection.execute(
            text("SELECT id FROM jobs WHERE created_at >= :start AND status = ANY(:waiting)"),
            {"start": start, "waiting": ["queued", "running"]},
        ).scalars()
    with api.client() as http:
        for job_id in waiting:
            http.delete(f"/api/jobs/{job_id}")
    with engine.begin() as connection:  # the fuzzer's webhook endpoints would get later events
        connection.execute(
            text("DELETE FROM webhook_endpoints WHERE created_at >= :start"), {"start": start}
        )
    broker = redis.Redis.from_url(redis_url)
    queues = job_queue.ALL_QUEUES
    wait_until(lambda: not any(broker.llen(queue) for queue in queues), 60, "queues drained")


@pytest.fixture(scope="module")
def known_cliente(engine: Engine) -> Cliente:
    """A customer with purchases, completed and not."""
    cliente = make_cliente(engine)
    make_compra(engine, cliente)
    make_compra(engine, cliente, estado="cancelada")
    return cliente


@dataclass(frozen=True)
class Known:
    """What exists for sure, for the requests that name something (see `known_data`)."""

    cliente: Cliente
    job_id: str  # a succeeded export of the customer: to read and download
    job_to_delete: str
    key_id: str  # an API key to read and revoke (not the bootstrap key every test uses)
    webhook_id: str  # a webhook endpoint of the bootstrap key, to list and delete


@pytest.fixture(scope="module")
def known(api: Api, workers: Workers, known_cliente: Cliente) -> Known:
    workers.start()
    with api.client() as http:
        jobs = [
            http.post(f"/api/clientes/{known_cliente.id}/exportar").json()["id"] for _ in range(2)
        ]
        for job_id in jobs:
            assert settle(http, job_id)["status"] == "succeeded"
        key = http.post("/api/api-keys", json={"name": "fuzz", "scopes": ["read"]}).json()
        hook = http.post("/api/webhooks", json={"url": "http://127.0.0.1:9/fuzz"}).json()
    return Known(known_cliente, jobs[0], jobs[1], key["id"], hook["id"])


def known_data(known: Known) -> dict[str, dict[str, Any]]:
    """Fixed parts of some requests, the rest generated: random documents and ids almost never
    exist, and a fuzzer that only ever meets 404 checks nothing of the 200's description."""
    cliente = known.cliente
    documento = {"tipo_documento": "CC", "numero_documento": cliente.numero_documento}
    by_id = {"path_parameters": {"cliente_id": cliente.id}}
    job = {"path_parameters": {"job_id": known.job_id}}
    key = {"path_parameters": {"key_id": known.key_id}}
    return {
        "GET /api/clientes": {"query": {"numero_documento": cliente.numero_documento}},
        "GET /api/clientes/buscar": {"query": documento},
        "POST /api/clientes/buscar/lote": {"body": {"documentos": [documento]}},
        "GET /api/clientes/{cliente_id}": by_id,
        "GET /api/clientes/{cliente_id}/compras": by_id,
        "GET /api/clientes/{cliente_id}/exportar": by_id,
        "POST /api/clientes/{cliente_id}/exportar": by_id,
        "POST /api/exportaciones": {"body": {"filtro": {"documentos": [documento]}}},
        "GET /api/jobs/{job_id}": job,
        "GET /api/jobs/{job_id}/download": job,
        "DELETE /api/jobs/{job_id}": {"path_parameters": {"job_id": known.job_to_delete}},
        "GET /api/api-keys/{key_id}": key,
        "DELETE /api/api-keys/{key_id}": key,
        "GET /api/webhooks/{endpoint_id}/deliveries": {
            "path_parameters": {"endpoint_id": known.webhook_id}
        },
        "DELETE /api/webhooks/{endpoint_id}": {
            "path_parameters": {"endpoint_id": known.webhook_id}
        },
    }


@pytest.fixture(scope="module")
def live_schema(api: Api) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict({"base-url": api.url})
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", config=config)


def test_every_operation_of_the_schema_is_fuzzed(live_schema: schemathesis.BaseSchema) -> None:
    labels = []
    for result in live_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        labels.append(result.ok().label)
    assert sorted(labels) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_answer_matches_the_description(
    live_schema: schemathesis.BaseSchema, known: Known, label: str
) -> None:
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in /openapi.json"
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if fixed := known_data(known).get(label):
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, **fixed))

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=len(strategies) * EXAMPLES_PER_MODE,
        deadline=None,
        derandomize=True,  # the same requests every run: a failure reproduces
        database=None,
        # Slow requests and rejected (unsatisfiable) examples are expected of a fuzzer.
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_described(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    answers_as_described()


# What the fuzzer found, pinned.

NUL = "\0"


@pytest.mark.parametrize(
    ("operation", "request_parts", "status"),
    [
        (
            "GET /api/clientes/buscar",
            {"params": {"tipo_documento": "CC", "numero_documento": NUL}},
            400,
        ),
        ("GET /api/clientes", {"params": {"q": f"ana{NUL}"}}, 400),
        (
            "POST /api/clientes/buscar/lote",
            {"json": {"documentos": [{"tipo_documento": "CC", "numero_documento": f"1{NUL}"}]}},
            422,
        ),
        ("POST /api/api-keys", {"json": {"name": f"crm{NUL}", "scopes": ["read"]}}, 422),
    ],
)
def test_text_with_nul_is_refused_as_invalid_not_a_500(
    client: httpx.Client, operation: str, request_parts: dict[str, Any], status: int
) -> None:
    """PostgreSQL text cannot hold NUL, and psycopg refuses to send it: that was a 500."""
    method, path = operation.split()
    assert_problem(client.request(method, path, **request_parts), status)
