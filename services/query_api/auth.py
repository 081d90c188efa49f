"""API-key authentication without a database query per request.

Verified keys are cached by hash in the process; the requests that miss the cache while a key's
query is under way wait for that one query. Every change to `api_keys` sends
NOTIFY api_keys_changed (shared.api_keys), and a listener here clears the cache, so a revoked
key stops working at once in every API process. While the listener is not connected nothing is
cached, so a missed notification can never keep a revoked key alive.

A connection can also die silently (a NAT or firewall forgetting it, a failover, a pooler):
then no notification ever comes and nothing says so. Hence two bounds: no cached key is older
than API_KEY_CACHE_SECONDS, and a quiet listener makes a round trip every
`LISTENER_CHECK_SECONDS` (TCP keepalives besides); one that does not answer is dropped, the
cache with it, and a new one connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.query_api.auth_failures import AuthFailureLimiter
from services.query_api.problems import Problem
from services.query_api.ratelimit import RateLimiter
from shared import api_keys
from shared.settings import to_libpq_url

log = logging.getLogger(__name__)

LISTENER_CHECK_SECONDS = 5.0
LISTENER_ANSWER_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None


class ApiKeyCache:
    def __init__(self, engine: AsyncEngine, database_url: str, max_age_seconds: float) -> None:
        self._engine = engine
        self._database_url = database_url
        self._max_age = max_age_seconds
        self._by_hash: dict[str, tuple[Principal, float]] = {}  # and when it was read
        # Every active key's hash, reloaded whenever keys change (and once per max age): lets
        # an address over its authentication failures through with a real key without a query
        # for a guessed one.
        self._active_hashes: frozenset[str] = frozenset()
        self._active_hashes_read = 0.0
        self._generation = 0
        self._in_flight: dict[tuple[str, int], asyncio.Future[Principal | None]] = {}
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="api-keys-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def knows(self, key_hash: str) -> bool:
        """Whether the hash was an active key's at the last reload (the lookup still decides)."""
        return key_hash in self._active_hashes

    async def _reload_active_hashes(self) -> None:
        read_at = time.monotonic()
        async with self._engine.connect() as connection:
            hashes = (await connection.execute(api_keys.select_active_hashes())).scalars()
            self._active_hashes = frozenset(hashes)
        self._active_hashes_read = read_at

    async def _changed(self) -> None:
        self.invalidate()
        await self._reload_active_hashes()

    def invalidate(self) -> None:
        self._by_hash.clear()
        self._generation += 1

    async def lookup(self, key_hash: str) -> Principal | None:
        cached = self._by_hash.get(key_hash)
        if cached is not None and time.monotonic() - cached[1] < self._max_age:
            return cached[0]
        # One query per key at a time: the requests that miss meanwhile wait for its answer.
        # Else every request that came while the first one's query was under way (hundreds,
        # when a busy key's entry expires or a process starts under load) sent its own query
        # through the jobs pool. Keyed by generation: a request after a change never takes the
        # answer of a query begun before it.
        flight_key = (key_hash, self._generation)
        flight = self._in_flight.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(self._read(key_hash))
            self._in_flight[flight_key] = flight
            flight.add_done_callback(functools.partial(self._landed, flight_key))
        # Shielded: a request that is cancelled (its client left) leaves the query to the others.
        return await asyncio.shield(flight)

    def _landed(self, flight_key: tuple[str, int], flight: asyncio.Future[object]) -> None:
        del self._in_flight[flight_key]
        if not flight.cancelled():
            flight.exception()  # retrieved: its waiters may all have gone

    async def _read(self, key_hash: str) -> Principal | None:
        generation = self._generation
        read_at = time.monotonic()
        async with self._engine.connect() as connection:
            row = (await connection.execute(api_keys.select_active_by_hash(key_hash))).first()
        if row is None:
            return None
        principal = Principal(row.id, row.name, frozenset(row.scopes), row.rate_limit_per_minute)
        # Cache only what no change notification can have overtaken meanwhile.
        if self._listening and generation == self._generation:
            self._by_hash[key_hash] = (principal, read_at)
        return principal

    async def _listen_forever(self) -> None:
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(
                    to_libpq_url(self._database_url),
                    autocommit=True,
                    connect_timeout=5,
                    # Named, so operators (and the tests) can tell this connection apart.
                    application_name=f"api-keys-listener-{os.getpid()}",
                    # libpq's TCP keepalives: a peer gone without a word is noticed by the
                    # kernel too, even while a round trip is not under way.
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                )
                # Closed, never `async with`: its exit would send a ROLLBACK and wait for the
                # answer of a server that may never give one.
                try:
                    await connection.execute(f"LISTEN {api_keys.CHANGED_CHANNEL}")
                    await self._changed()
                    self._listening = True
                    await self._follow(connection)
                finally:
                    await connection.close()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: stop caching until we listen again
                log.warning("api-key listener disconnected: %s", type(error).__name__)
            finally:
                self._listening = False
                self.invalidate()
            await asyncio.sleep(1)

    async def _follow(self, connection: psycopg.AsyncConnection[object]) -> None:
        """Clear the cache at each notification; between them, prove the connection alive."""
        while True:
            async for _ in connection.notifies(timeout=LISTENER_CHECK_SECONDS):
                await self._changed()
            # Notifications that come meanwhile wait in psycopg's backlog for the next round.
            await _round_trip(connection)
            if time.monotonic() - self._active_hashes_read >= self._max_age:
                await self._reload_active_hashes()


async def _round_trip(connection: psycopg.AsyncConnection[object]) -> None:
    """SELECT 1 answered within LISTENER_ANSWER_SECONDS, else the connection is closed and
    TimeoutError raised. Not asyncio.wait_for: psycopg, cancelled mid-query, asks the server to
    cancel it and waits up to 10 s more for a server that may never answer."""
    probe = asyncio.ensure_future(connection.execute("SELECT 1"))
    done, _ = await asyncio.wait({probe}, timeout=LISTENER_ANSWER_SECONDS)
    if probe in done:
        probe.result()
        return
    await connection.close()  # abandons the query: the probe ends at once when cancelled
    probe.cancel()
    raise TimeoutError("the api-key listener's server did not answer")


def _presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return None
    return request.headers.get("x-api-key") or None


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal:
    """The key's principal, once its request is counted against the key's quota."""
    principal = await identify(request)
    await count_request(request, principal)
    return principal


async def identify(request: Request) -> Principal:
    """The principal of the request's API key (no quota counted): 401 without a valid one."""
    key = _presented_key(request)
    if key is None:
        raise _unauthorized("Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'.")
    cache: ApiKeyCache = request.app.state.api_key_cache
    failures: AuthFailureLimiter = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    # Keys are found by their sha256, never compared as text: timing reveals nothing of a key.
    key_hash = api_keys.hash_key(key)
    wait = failures.retry_after(address)
    if wait is not None and not cache.knows(key_hash):
        raise Problem(
            429,
            "Too many requests with an invalid API key from this address; retry later.",
            kind="too-many-authentication-failures",
            headers={"Retry-After": str(wait)},
        )
    principal = await cache.lookup(key_hash)
    if principal is None:
        failures.failed(address)
        raise _unauthorized("The API key is not valid or has been revoked.")
    request.state.principal = principal
    return principal


async def count_request(request: Request, principal: Principal) -> None:
    """One request against the key's quota (a place from this process's lease of the key's
    window, ratelimit.py), its RateLimit headers on the answer; 429 past the quota."""
    limiter: RateLimiter = request.app.state.rate_limiter
    quota = await limiter.consume(str(principal.key_id), principal.rate_limit_per_minute)
    if quota is not None:
        request.state.response_headers.update(quota.headers())
        if quota.exceeded:
            problem = Problem(
                429,
                f"This API key may make {quota.limit} requests a minute; retry later.",
                kind="quota-exceeded",
                headers={"Retry-After": str(quota.reset_seconds)},
            )
            problem.extensions["violated-policies"] = ["default"]
            raise problem


async def authorize(request: Request, scope: str) -> Principal:
    """The request's principal, if its key is valid, within its quota and holds `scope`."""
    # authenticate's two steps, not a call of it: one coroutine frame fewer on every request.
    principal = await identify(request)
    await count_request(request, principal)
    if scope not in principal.scopes:
        raise Problem(403, f"This API key lacks the '{scope}' scope.", kind="forbidden")
    return principal


_KEY_CHECKS: set[object] = set()


def require(scope: str) -> object:
    # One dependency, not one depending on another: every level costs FastAPI's resolver time
    # on each request, and this runs on every request.
    async def check(request: Request) -> Principal:
        return await authorize(request, scope)

    _KEY_CHECKS.add(check)
    return Depends(check)


def checks_api_key(call: object) -> bool:
    """Whether a dependency is the API-key check (what OpenAPI documents as security)."""
    return call is authenticate or call in _KEY_CHECKS


async def _export_key_or_signed_link(request: Request) -> Principal | None:
    """The export key's principal, or None for a signed link (the download verifies it): a link
    stands in for the key, so a request that carries one is not asked for a key."""
    if {"signature", "expires"} & request.query_params.keys():
        return None
    return await authorize(request, "export")


_KEY_CHECKS.add(_export_key_or_signed_link)

ReadPrincipal = Annotated[Principal, require("read")]
ExportPrincipal = Annotated[Principal, require("export")]
AdminPrincipal = Annotated[Principal, require("admin")]
ExportPrincipalOrLink = Annotated[Principal | None, Depends(_export_key_or_signed_link)]
