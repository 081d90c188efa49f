"""A stopping worker hands its running jobs back to the queue at once.

SIGTERM to the worker's main process (`docker stop`, a rolling update, Kubernetes) starts
Celery's warm shutdown, which would wait as long as a running job takes. Instead the main
process asks each pool process to stop (STOP_SIGNAL); a pool process in the middle of a render
interrupts it — a running query is cancelled in the server, as on Ctrl-C — puts the job back to
`queued` and publishes its message again, so another worker claims it within moments and this
one exits without waiting out the grace period. Everything else about the job is as for a
transient error: a new attempt, and only one attempt's outcome counts (shared.jobs).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from billiard.process import active_children
from celery import signals

STOP_SIGNAL = signal.SIGUSR2  # SIGUSR1 is billiard's soft time limit

_stopping = threading.Event()
_interruptible = threading.Event()


class WorkerStopping(KeyboardInterrupt):
    """Raised into a render when the worker stops. A KeyboardInterrupt, so that psycopg
    cancels the query under way in the server rather than leaving the connection busy."""


@contextmanager
def interruptible() -> Iterator[None]:
    """The part of an attempt that a stop interrupts (the render and the upload, never the
    transition that records the outcome)."""
    if _stopping.is_set():
        raise WorkerStopping
    _interruptible.set()
    try:
        yield
    finally:
        _interruptible.clear()


def _on_stop_request(_: int, __: FrameType | None) -> None:
    _stopping.set()
    if _interruptible.is_set():
        _interruptible.clear()  # once: the hand-back itself must not be interrupted
        raise WorkerStopping


def _listen_in_pool_process(**_: object) -> None:
    signal.signal(STOP_SIGNAL, _on_stop_request)


def _tell_pool_processes(**_: object) -> None:
    for child in active_children():
        if child.pid is not None:
            os.kill(child.pid, STOP_SIGNAL)


signals.worker_process_init.connect(_listen_in_pool_process)
signals.worker_shutting_down.connect(_tell_pool_processes)
