"""The process harness (harness/servers.py) cleans up after itself when a process fails to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import servers


def api_processes_on(port: int) -> list[int]:
    """The pids of API processes started with PORT=port (each test API gets a free port)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not a process
            continue
        if b"services.query_api" in cmdline and f"PORT={port}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_an_api_that_does_not_start_in_time_is_stopped_not_left_behind(
    service_env: dict[str, str],
) -> None:
    port = servers.free_port()
    with pytest.raises(RuntimeError, match="query_api did not start"):
        servers.api_server(service_env, port, start_timeout=0.01)  # far too soon: still starting
    assert api_processes_on(port) == [], "the API that did not start in time is still running"
