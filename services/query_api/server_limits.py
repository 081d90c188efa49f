"""uvicorn's httptools protocol with what it lacks against slow clients.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but a client that sends its
headers a byte at a time (slowloris) holds its connection for as long as it likes. Here a
connection gets HTTP_HEADER_TIMEOUT_SECONDS for a request's headers, counted from when it opens
and again from the end of each response (the next request on a kept-alive connection); when
they do not arrive in time it gets 408 and is closed. Only the headers: a slow body is the
application's to read, under the concurrency bound.

The concurrency bound: a request that arrives while the process holds more than
HTTP_MAX_CONCURRENCY connections (or runs as many requests) is marked in its scope, and the
application answers it 503 at once (middleware.RequestLimitsMiddleware), a problem+json with
its X-Request-ID, where uvicorn's own `limit_concurrency` would answer bare text.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.query_api.middleware import OVER_CAPACITY
from shared.settings import get_settings

_DETAIL = b"The request headers took too long."
_REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_DETAIL)).encode() + b"\r\n\r\n" + _DETAIL
)


class BoundedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read here, not passed in: uvicorn builds the protocol itself, in each worker process.
        settings = get_settings()
        self._header_timeout = settings.http_header_timeout_seconds
        self._max_concurrency = settings.http_max_concurrency
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        over = len(self.connections) > self._max_concurrency
        cast(dict[str, Any], self.scope)[OVER_CAPACITY] = over or (
            len(self.tasks) >= self._max_concurrency
        )
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        self.transport.write(_REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()
