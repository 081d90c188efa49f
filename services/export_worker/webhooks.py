"""Webhook delivery (SPEC §11), on the `webhooks` queue and its own worker.

`deliver` claims an event (a guarded UPDATE that also leases it for one attempt), POSTs it signed
to its endpoint, and records the attempt; a failed attempt is due again after its step of
WEBHOOK_RETRY_SECONDS (its message sent with a countdown when the wait is short, else left to the
sweep), and an event is given up once the schedule runs out. `sweep` (every
SCHEDULER_INTERVAL_SECONDS) sends the events whose message is missing or lost: retries left to
it, publishes that failed, messages Redis forgot, attempts whose worker was killed.

The POST goes to the address the SSRF check approved (shared.webhook_urls), follows no redirect,
and gives up after 10 s.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.export_worker import metrics
from services.export_worker.celery_app import settings, task
from shared import db, job_queue, webhook_urls, webhooks
from shared.webhook_urls import Target, UnsafeUrl

log = logging.getLogger(__name__)

# A retry due within this long gets its message now, with a countdown (the worker holds it, far
# below the broker's visibility timeout); later ones are sent by the sweep once due.
COUNTDOWN_MAX_SECONDS = 300
MAX_RESPONSE_BYTES = 64 * 1024  # what is read of an answer: only its status counts
USER_AGENT = "Clientes-Webhooks/1.0"


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None
    error: str | None  # None: a 2xx
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the checked address, whatever the name resolves to by now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address, the certificate verified for the URL's host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool) -> Answer:
    """One delivery attempt: the answer's status, or why there was none. Never raises.

    The 10 s are for the whole exchange, not per network read: a watchdog shuts the socket at
    the deadline, so a receiver trickling its answer a byte at a time cannot hold the attempt
    past its lease."""
    started = time.monotonic()
    try:
        target = webhook_urls.resolve(url, allow_private=allow_private)
    except UnsafeUrl as error:
        return Answer(None, f"refused: {error}", time.monotonic() - started)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, webhooks.TIMEOUT_SECONDS)
    expired = threading.Event()
    watchdog = threading.Timer(webhooks.TIMEOUT_SECONDS, _cut, (connection, expired))
    watchdog.start()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        seconds = time.monotonic() - started
        if expired.is_set() or isinstance(error, TimeoutError):
            return Answer(None, f"timeout after {webhooks.TIMEOUT_SECONDS:g} s", seconds)
        return Answer(None, f"{type(error).__name__}: {error}", seconds)
    finally:
        watchdog.cancel()
        connection.close()
    seconds = time.monotonic() - started
    if expired.is_set():  # cut off mid-answer: whatever was parsed is not an answer
        return Answer(None, f"timeout after {webhooks.TIMEOUT_SECONDS:g} s", seconds)
    if 200 <= status < 300:
        return Answer(status, None, seconds)
    if 300 <= status < 400:  # a redirect is not followed: it could point anywhere
        return Answer(status, f"HTTP {status}: redirects are not followed", seconds)
    return Answer(status, f"HTTP {status}", seconds)


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def signed_headers(secret: str, event_id: uuid.UUID, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        webhooks.EVENT_ID_HEADER: str(event_id),
        webhooks.SIGNATURE_HEADER: webhooks.signature(secret, int(time.time()), body),
    }


@task(name=job_queue.WEBHOOK_DELIVER_TASK, soft_time_limit=45, time_limit=60)
def deliver(event_id_text: str) -> str:
    """One delivery message: an attempt at the event if it is still due and free."""
    engine = db.sync_engine()
    event = db.execute_alone(engine, webhooks.claim(uuid.UUID(event_id_text)))
    if event is None:
        return "nothing to claim"
    body = webhooks.body(event.id, event.type, event.created_at, event.data)
    attempted_at = datetime.now(UTC)
    answer = post(
        event.url,
        body,
        signed_headers(event.secret, event.id, body),
        allow_private=settings.webhook_allow_private,
    )
    return _record(engine, event, attempted_at, answer)


def _record(engine: Any, event: Any, attempted_at: datetime, answer: Answer) -> str:
    """The attempt, and what becomes of the event, in one transaction."""
    delay = (
        None if answer.ok else webhooks.next_delay(event.attempts, settings.webhook_retry_delays)
    )
    due = None if delay is None else datetime.now(UTC) + delay
    countdown = delay is not None and delay <= timedelta(seconds=COUNTDOWN_MAX_SECONDS)
    if answer.ok:
        settle = webhooks.delivered(event.id, event.attempts)
        outcome = "delivered"
    elif due is None:
        settle = webhooks.give_up(event.id, event.attempts)
        outcome = "gave_up"
    else:
        settle = webhooks.retry_at(event.id, event.attempts, due, published=countdown)
        outcome = "retried"
    with engine.begin() as connection:
        connection.execute(
            webhooks.record_attempt(
                event.id,
                event.attempts,
                attempted_at=attempted_at,
                status_code=answer.status_code,
                duration_ms=round(answer.seconds * 1000),
                error=answer.error,
                next_attempt_at=due,
            )
        )
        settled = connection.execute(settle).first() is not None
    metrics.webhook_attempted(outcome, datetime.now(UTC) - event.created_at if answer.ok else None)
    extra = {"event_id": str(event.id), "attempt": event.attempts, "outcome": outcome}
    if answer.ok:
        log.info("webhook event %s delivered", event.id, extra=extra)
    else:
        log.warning("webhook event %s: %s", event.id, answer.error, extra=extra)
    if settled and countdown and delay is not None:
        job_queue.publish_webhook_events([event.id], countdown=delay.total_seconds())
    return outcome


@task(name=job_queue.WEBHOOK_SWEEP_TASK, soft_time_limit=60)
def sweep() -> int:
    """Send the events that are due and have no message on the way."""
    republish_after = timedelta(seconds=settings.job_republish_after_seconds)
    with db.sync_engine().begin() as connection:
        due = connection.execute(webhooks.touch_unsent_due(republish_after)).scalars().all()
    if due:
        sent = job_queue.publish_webhook_events(due)
        log.info("webhook sweep", extra={"due": len(due), "published": sent})
    return len(due)
