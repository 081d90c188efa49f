"""Slow and idle clients (SPEC §12) against an API process of its own with short limits: real
sockets that trickle their headers, or open and say nothing, while others are answered."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness import servers
from tests.conftest import BOOTSTRAP_KEY, Api, assert_problem, own_api

HEADER_TIMEOUT = 2
KEEPALIVE = 1
MAX_CONCURRENCY = 30


@pytest.fixture(scope="module")
def strict_api(service_env: dict[str, str]) -> Iterator[Api]:
    limits = {
        "HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "HTTP_KEEPALIVE_SECONDS": str(KEEPALIVE),
        "HTTP_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
    }
    with own_api(service_env, **limits) as api:
        yield api


def connect(api: Api) -> socket.socket:
    host, port = api.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (or 10 s pass)."""
    received = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(4096):
            received += chunk
    return received


def test_headers_sent_a_byte_at_a_time_get_408_while_others_are_answered(
    strict_api: Api,
) -> None:
    slow = [connect(strict_api) for _ in range(20)]
    stop = threading.Event()

    def trickle() -> None:  # slowloris: a header line never ends
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while not stop.wait(0.3):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    trickler = threading.Thread(target=trickle)
    trickler.start()
    started = time.monotonic()
    try:
        with strict_api.client() as http:
            while time.monotonic() - started < HEADER_TIMEOUT + 1:
                asked = time.monotonic()
                assert http.get("/api/tipos-documento/").status_code == 200
                assert time.monotonic() - asked < 3  # answered, not held behind the slow ones
        answers = [read_until_closed(sock) for sock in slow]
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers[:2]
    assert time.monotonic() - started < HEADER_TIMEOUT + 8


def test_idle_connections_are_closed(strict_api: Api) -> None:
    silent = connect(strict_api)  # opens and says nothing
    kept_alive = connect(strict_api)  # one request, then nothing
    kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    started = time.monotonic()
    answered = read_until_closed(kept_alive)
    assert answered.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started < KEEPALIVE + 2
    assert read_until_closed(silent).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < HEADER_TIMEOUT + 2
    silent.close()
    kept_alive.close()


def test_past_the_connection_bound_requests_get_503_not_a_hang(strict_api: Api) -> None:
    idle = [connect(strict_api) for _ in range(MAX_CONCURRENCY + 5)]
    try:
        time.sleep(0.5)  # all accepted
        with strict_api.client() as http:
            started = time.monotonic()
            refused = http.get("/api/tipos-documento/")
            assert time.monotonic() - started < 2
            assert_problem(refused, 503)
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["x-request-id"]
            for sock in idle:
                sock.close()
            servers.wait_until(
                lambda: http.get("/health").status_code == 200, HEADER_TIMEOUT + 3, "room"
            )
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_hangs_up_mid_body_is_no_server_error(strict_api: Api) -> None:
    """An export POST whose body never finishes arriving: the API logs the disconnect at INFO,
    not as an unhandled error with a traceback, and goes on answering."""
    logged = len(strict_api.process.log())
    sock = connect(strict_api)
    sock.sendall(
        b"POST /api/reporte-fidelizacion/generar HTTP/1.1\r\nHost: api\r\n"
        b"Authorization: Bearer " + BOOTSTRAP_KEY.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"formato": '
    )
    time.sleep(0.5)  # the API is reading the body
    sock.close()
    servers.wait_until(
        lambda: "client disconnected" in strict_api.process.log()[logged:], 10, "the disconnect"
    )
    assert "unhandled error" not in strict_api.process.log()[logged:]
    with strict_api.client() as http:
        assert http.get("/health").status_code == 200
