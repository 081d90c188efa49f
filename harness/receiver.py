"""A real webhook receiver in the calling process, for the tests and the benchmark: an HTTP server
on 127.0.0.1 in a thread that records every POST and answers as told (succeed, fail, hang,
redirect), and that can go down and come back on the same port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.servers import free_port, wait_until


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request was read

    @property
    def event_id(self) -> str:
        return self.headers["Clientes-Event-Id"]


# What to answer a request: (status, seconds to wait before answering, extra headers).
Behaviour = Callable[[Received], tuple[int, float, dict[str, str]]]


def succeed(_: Received) -> tuple[int, float, dict[str, str]]:
    return 204, 0.0, {}


def fail(_: Received) -> tuple[int, float, dict[str, str]]:
    return 500, 0.0, {}


def hang(seconds: float) -> Behaviour:
    def answer(_: Received) -> tuple[int, float, dict[str, str]]:
        return 204, seconds, {}

    return answer


def redirect(location: str) -> Behaviour:
    def answer(_: Received) -> tuple[int, float, dict[str, str]]:
        return 307, 0.0, {"Location": location}

    return answer


# A status that means: start a 200 answer, then send its headers a byte every half second for
# the behaviour's delay (a receiver that keeps the connection busy but never finishes).
TRICKLE = -1


def trickle(seconds: float) -> Behaviour:
    def answer(_: Received) -> tuple[int, float, dict[str, str]]:
        return TRICKLE, seconds, {}

    return answer


def fail_one_in(n: int) -> Behaviour:
    """Every n-th request fails (a 503), the others succeed."""
    count = 0
    lock = threading.Lock()

    def answer(_: Received) -> tuple[int, float, dict[str, str]]:
        nonlocal count
        with lock:
            count += 1
            failing = count % n == 0
        return (503 if failing else 204), 0.0, {}

    return answer


class Receiver:
    def __init__(self, behaviour: Behaviour = succeed) -> None:
        self.port = free_port()
        self.behaviour = behaviour
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = Received(
                    self.path, dict(self.headers), self.rfile.read(length), time.time()
                )
                with receiver._lock:
                    receiver.received.append(request)
                status, delay, headers = receiver.behaviour(request)
                if status == TRICKLE:
                    self._trickle(delay)
                    return
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def _trickle(self, seconds: float) -> None:
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.5)
                except OSError:  # the sender cut it off
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        """Down: connections to the port are refused until `start()` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def events(self, event_id: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if event_id is None or r.event_id == event_id]

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """At least `count` requests received, within `timeout` seconds."""
        wait_until(lambda: len(self.events()) >= count, timeout, f"{count} webhook requests")
        return self.events()
