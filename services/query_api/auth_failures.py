"""Failed authentication, limited per client address inside the process (SPEC §12).

Every unknown key costs a query on the jobs pool; past `AUTH_FAILURES_PER_MINUTE` failures in a
one-minute window, an address's further keys are refused (429) before any query unless the
process knows the key's hash as one of an active key (auth.ApiKeyCache.knows): a valid key from
that address keeps working, a guessed one never reaches the database. Memory is bounded: at most
`MAX_ADDRESSES` counters, the oldest dropped first. With several API processes each counts its
own failures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

WINDOW_SECONDS = 60
MAX_ADDRESSES = 10_000


@dataclass(slots=True)
class _Window:
    number: int
    failures: int


class AuthFailureLimiter:
    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._by_address: dict[str, _Window] = {}  # insertion order: oldest first

    def retry_after(self, address: str) -> int | None:
        """Seconds until this address may try unknown keys again; None while under its limit."""
        window = self._by_address.get(address)
        now = time.time()
        if window is None or window.number != _window_number(now):
            return None
        if window.failures < self._per_minute:
            return None
        return int((window.number + 1) * WINDOW_SECONDS - now) + 1

    def failed(self, address: str) -> None:
        number = _window_number(time.time())
        window = self._by_address.get(address)
        if window is not None and window.number == number:
            window.failures += 1
            return
        # (Re)inserted last: the dict stays ordered by window start, the oldest first.
        self._by_address.pop(address, None)
        while len(self._by_address) >= MAX_ADDRESSES:
            del self._by_address[next(iter(self._by_address))]
        self._by_address[address] = _Window(number, 1)


def _window_number(now: float) -> int:
    return int(now // WINDOW_SECONDS)
