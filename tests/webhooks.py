"""Helpers for the webhook tests: a key of the test's own (its endpoints see only its jobs), the
README's receiver verification, registration and the deliveries list."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Engine

from harness.receiver import Received
from harness.servers import ROOT, wait_until
from tests.conftest import Api
from tests.factories import make_cliente, make_compra
from tests.jobs import new_key, settle

EXAMPLE = ROOT / "docs" / "verify_webhook.py"


def _load_verify() -> Callable[..., bool]:
    spec = importlib.util.spec_from_file_location("verify_webhook", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verify: Callable[..., bool] = module.verify
    return verify


# The receiver's check, exactly as the README shows it (a test checks the README holds it).
verify = _load_verify()


@contextmanager
def own_key(api: Api, engine: Engine) -> Iterator[httpx.Client]:
    """A client with a fresh read+export key: its endpoints receive its jobs' events only."""
    with api.client(key=new_key(engine, ["read", "export"])) as http:
        yield http


def register(http: httpx.Client, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    response = http.post("/api/webhooks/", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(http: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/webhooks/{endpoint_id}/deliveries")
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def wait_for_status(
    http: httpx.Client, endpoint_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    """The endpoint's latest event once it has `status`."""
    wait_until(
        lambda: (found := deliveries(http, endpoint_id)) != [] and found[0]["status"] == status,
        timeout,
        f"an event {status}",
    )
    return deliveries(http, endpoint_id)[0]


def finished_export(http: httpx.Client, engine: Engine) -> dict[str, Any]:
    """An export job of the client's key, run to success."""
    cliente = make_cliente(engine)
    make_compra(engine, cliente)
    job_id = http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]
    job = settle(http, job_id)
    assert job["status"] == "succeeded", job
    return job


def signed_event(received: Received, secret: str) -> dict[str, Any]:
    """The request's event, after checking it the way the README tells receivers to."""
    assert received.headers["Content-Type"] == "application/json"
    assert verify(secret, received.body, received.headers["Clientes-Signature"])
    event: dict[str, Any] = json.loads(received.body)
    assert event["id"] == received.event_id
    return event
