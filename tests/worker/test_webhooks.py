"""Webhook delivery through the real processes: a job's final transition records its event, the
webhooks worker POSTs it signed to a real receiver in this process, retries it with backoff
through failures, timeouts and redirects, and gives up when the schedule runs out."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine, text

from harness import receiver
from harness.receiver import Receiver
from services.export_worker import webhooks as delivery
from shared import webhooks
from tests.conftest import Api, Workers
from tests.factories import make_cliente
from tests.jobs import job_column
from tests.webhooks import (
    deliveries,
    finished_export,
    own_key,
    register,
    signed_event,
    verify,
    wait_for_status,
)

pytestmark = pytest.mark.usefixtures("workers")


def test_a_succeeded_job_is_pushed_signed_to_its_keys_endpoint(
    api: Api, engine: Engine, workers: Workers
) -> None:
    with Receiver() as hook, own_key(api, engine) as http, own_key(api, engine) as stranger:
        endpoint = register(http, hook.url)
        job = finished_export(http, engine)
        finished_export(stranger, engine)  # another key's job: not this endpoint's business

        (received,) = hook.wait_for(1)
        event = signed_event(received, endpoint["secret"])
        assert event["type"] == "job.succeeded"
        assert event["data"]["id"] == job["id"]
        assert event["data"]["status"] == "succeeded"
        assert event["data"]["result"]["download_url"] == f"/api/jobs/{job['id']}/download"
        assert event["data"]["result"]["sha256"] == job["result"]["sha256"]
        assert received.path == "/hook"

        delivered = wait_for_status(http, endpoint["id"], "delivered")
        assert delivered["event_id"] == event["id"]
        assert delivered["job_id"] == job["id"]
        (attempt,) = delivered["attempts"]
        assert attempt["status_code"] == 204 and attempt["error"] is None
        assert attempt["next_attempt_at"] is None
        time.sleep(1)
        assert len(hook.events()) == 1, "one event: the stranger's job sent nothing here"


def test_the_event_is_recorded_in_the_transition_that_ends_the_job(
    api: Api, engine: Engine
) -> None:
    with Receiver() as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        job = finished_export(http, engine)
        hook.wait_for(1)
    with engine.connect() as connection:
        recorded, finished = connection.execute(
            text(
                "SELECT e.created_at, j.finished_at FROM webhook_events e JOIN jobs j"
                " ON j.id = e.job_id WHERE e.endpoint_id = :endpoint"
            ),
            {"endpoint": endpoint["id"]},
        ).one()
    # now() is the transaction's start: one statement, one transaction, one moment.
    assert recorded == finished == job_column(engine, job["id"], "finished_at")


def test_deleting_a_result_sends_job_expired_to_subscribers_of_it_only(
    api: Api, engine: Engine
) -> None:
    with (
        Receiver() as everything,
        Receiver() as expiries,
        own_key(api, engine) as http,
    ):
        all_events = register(http, everything.url)
        only_expired = register(http, expiries.url, events=["job.expired"])
        job = finished_export(http, engine)
        assert http.delete(f"/api/jobs/{job['id']}").status_code == 204

        received = everything.wait_for(2)
        events = [signed_event(request, all_events["secret"]) for request in received]
        assert sorted(event["type"] for event in events) == ["job.expired", "job.succeeded"]
        (expired,) = expiries.wait_for(1)
        event = signed_event(expired, only_expired["secret"])
        assert event["type"] == "job.expired" and event["data"]["status"] == "expired"
        assert event["data"]["id"] == job["id"]
        time.sleep(1)
        assert len(expiries.events()) == 1, "job.succeeded is not among its events"


def test_canceling_a_queued_job_sends_job_canceled(
    api: Api, engine: Engine, fault_workers: Workers
) -> None:
    """The API's own transition (DELETE of a queued job) records the event too."""
    fault_workers.exports.stop()  # the job stays queued
    with Receiver() as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        cliente = make_cliente(engine)
        job_id = http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]
        assert http.delete(f"/api/jobs/{job_id}").status_code == 204
        (received,) = hook.wait_for(1)
        event = signed_event(received, endpoint["secret"])
    assert event["type"] == "job.canceled"
    assert event["data"]["id"] == job_id and event["data"]["status"] == "canceled"
    assert event["data"]["result"] is None and event["data"]["finished_at"] is not None


def test_a_failing_receiver_gets_the_event_again_until_it_answers_2xx(
    api: Api, engine: Engine
) -> None:
    with Receiver(receiver.fail) as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        first, second = hook.wait_for(2)
        hook.behaviour = receiver.succeed
        hook.wait_for(3)
        delivered = wait_for_status(http, endpoint["id"], "delivered")

    attempts = delivered["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 204]
    assert [a["error"] for a in attempts] == ["HTTP 500", "HTTP 500", None]
    assert (
        all(a["next_attempt_at"] for a in attempts[:2]) and attempts[2]["next_attempt_at"] is None
    )
    # The schedule (WEBHOOK_RETRY_SECONDS=0.5,1,…): the second retry waited longer than the first.
    third = hook.events()[2]
    assert second.at - first.at >= 0.45
    assert third.at - second.at >= 0.95
    # The same event each time, signed afresh.
    assert len({r.event_id for r in hook.events()}) == 1
    for request in hook.events():
        signed_event(request, endpoint["secret"])


def test_an_endpoint_that_never_answers_2xx_is_given_up_after_the_schedule(
    api: Api, engine: Engine, workers: Workers
) -> None:
    with Receiver(receiver.fail) as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        failed = wait_for_status(http, endpoint["id"], "failed", timeout=60)
        schedule = workers.webhooks.env["WEBHOOK_RETRY_SECONDS"].split(",")
        assert len(failed["attempts"]) == len(schedule) + 1
        assert failed["attempts"][-1]["next_attempt_at"] is None
        assert failed["next_attempt_at"] is None
        time.sleep(2)
        assert len(hook.events()) == len(schedule) + 1, "nothing after giving up"


def test_a_receiver_that_hangs_times_out_after_10_s_and_gets_it_again(
    api: Api, engine: Engine
) -> None:
    with Receiver(receiver.hang(30)) as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        hook.wait_for(1)
        hook.behaviour = receiver.succeed
        delivered = wait_for_status(http, endpoint["id"], "delivered", timeout=40)
    timed_out, succeeded = delivered["attempts"]
    assert timed_out["status_code"] is None
    assert timed_out["error"] == "timeout after 10 s"
    assert 9_500 <= timed_out["duration_ms"] <= 12_000
    assert succeeded["status_code"] == 204


def test_a_receiver_trickling_its_answer_is_cut_off_at_10_s(api: Api, engine: Engine) -> None:
    """10 s for the whole exchange, not per read: each byte in time does not extend it."""
    with Receiver(receiver.trickle(30)) as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        hook.wait_for(1)
        hook.behaviour = receiver.succeed
        delivered = wait_for_status(http, endpoint["id"], "delivered", timeout=40)
    cut_off = delivered["attempts"][0]
    assert cut_off["error"] == "timeout after 10 s"
    assert 9_500 <= cut_off["duration_ms"] <= 12_000


def test_redirects_are_not_followed(api: Api, engine: Engine) -> None:
    with Receiver() as elsewhere, own_key(api, engine) as http:
        with Receiver(receiver.redirect(elsewhere.url)) as hook:
            endpoint = register(http, hook.url)
            finished_export(http, engine)
            hook.wait_for(2)
            attempts = deliveries(http, endpoint["id"])[0]["attempts"]
        assert attempts[0]["status_code"] == 307
        assert attempts[0]["error"] == "HTTP 307: redirects are not followed"
        assert elsewhere.events() == []


def test_the_readme_receiver_rejects_a_forged_or_old_signature() -> None:
    body = b'{"id":"x"}'
    now = int(time.time())
    assert verify("whsec_a", body, webhooks.signature("whsec_a", now, body))
    assert not verify("whsec_b", body, webhooks.signature("whsec_a", now, body))
    assert not verify("whsec_a", body + b" ", webhooks.signature("whsec_a", now, body))
    assert not verify("whsec_a", body, webhooks.signature("whsec_a", now - 600, body))


def test_delivery_refuses_a_private_address_unless_allowed() -> None:
    """The check at delivery time (DNS may have changed since registration), in the sender
    itself, against a real receiver on loopback."""
    with Receiver() as hook:
        body = webhooks.body(uuid.uuid4(), "job.succeeded", datetime.now(UTC), {})
        headers = delivery.signed_headers("whsec_x", uuid.uuid4(), body)
        refused = delivery.post(hook.url, body, headers, allow_private=False)
        assert refused.status_code is None
        assert refused.error is not None and "loopback" in refused.error
        assert hook.events() == []
        allowed = delivery.post(hook.url, body, headers, allow_private=True)
        assert allowed.ok and allowed.status_code == 204
        assert len(hook.events()) == 1


def test_worker_metrics_count_deliveries_by_outcome(
    api: Api, engine: Engine, workers: Workers
) -> None:
    def count(outcome: str) -> float:
        exposition = httpx.get(workers.webhooks_metrics).text
        series = f'clientes_webhook_deliveries_total{{outcome="{outcome}"}}'
        return next(
            float(line.split()[-1]) for line in exposition.splitlines() if line.startswith(series)
        )

    before = {o: count(o) for o in ("delivered", "retried")}
    with Receiver(receiver.fail_one_in(1)) as hook, own_key(api, engine) as http:
        endpoint = register(http, hook.url)
        finished_export(http, engine)
        hook.wait_for(1)
        hook.behaviour = receiver.succeed
        wait_for_status(http, endpoint["id"], "delivered")
    assert count("retried") >= before["retried"] + 1
    assert count("delivered") >= before["delivered"] + 1
    assert (
        "clientes_webhook_delivery_latency_seconds_count"
        in httpx.get(workers.webhooks_metrics).text
    )
