"""Real processes for the tests: a private Redis, the API, and Celery workers.

Each test run gets its own PostgreSQL database and its own redis-server on a free port, so runs
never collide and fault tests may FLUSHALL or stop Redis without touching anything else.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"


def procfile() -> dict[str, list[str]]:
    """The Procfile's processes: what `make run`, docker-compose.yml and these tests all start."""
    processes: dict[str, list[str]] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = shlex.split(command)
    return processes


def procfile_argv(name: str) -> list[str]:
    """A Procfile command run with this interpreter's environment (python -m / celery of .venv)."""
    argv = procfile()[name]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return [str(Path(sys.executable).parent / argv[0]), *argv[1:]]


def option_value(argv: Sequence[str], option: str) -> str:
    """The value a Procfile command gives `option` (`--concurrency 4` → "4")."""
    return argv[list(argv).index(option) + 1]


def replace_options(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """A Procfile command with the value of each of these options that it has replaced, the rest
    as is: the tests and the bench give their processes their own files and ports (scheduler
    state, worker metrics), so that they never collide with another run or a `make run`."""
    replaced = list(argv)
    for option, value in values.items():
        if option in replaced:
            replaced[replaced.index(option) + 1] = value
    return replaced


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: S110 (not up yet: keep polling)
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s")


class Process:
    """A child process whose output goes to test-output/<name>.log."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        OUTPUT.mkdir(exist_ok=True)
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = OUTPUT / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.pid, signum)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.signal(signal.SIGKILL)
            self.popen.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def redis_server(port: int) -> Process:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    return Process(
        f"redis-{port}",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        dict(os.environ),
    )


def wait_for_redis(port: int) -> None:
    client = redis.Redis(port=port)
    wait_until(lambda: bool(client.ping()), 10, "redis-server")


def api_server(env: dict[str, str], port: int, start_timeout: float = 120) -> Process:
    # Generous: it starts in ~2 s, but a machine busy with other test runs has taken 40.
    process = Process(f"query_api-{port}", procfile_argv("api"), {**env, "PORT": str(port)})
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/health").status_code == 200, start_timeout, "query_api"
        )
    except TimeoutError:
        # Stopped, not left behind: a slow start (a loaded machine) would otherwise leave an
        # orphan API process, which loads the machine more and slows the next start further.
        process.stop()
        raise RuntimeError(f"query_api did not start:\n{process.log()[-3000:]}") from None
    return process


class PostgresCluster:
    """A private PostgreSQL cluster that a fault test may stop and start at will.

    initdb refuses to run as root, so when the tests run as root the cluster belongs to the
    `postgres` system user.
    """

    BIN = Path("/usr/lib/postgresql") / sorted(os.listdir("/usr/lib/postgresql"))[-1] / "bin"

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/clientes"

    def _run(self, *argv: str) -> None:
        command = [str(self.BIN / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr or done.stdout}")

    def _own_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.directory.parent, self.directory):
                shutil.chown(path, "postgres", "postgres")

    def create(self) -> PostgresCluster:
        self._own_directory()
        self._run(
            "initdb", "-D", str(self.directory), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "clientes")
        return self

    def create_replica(self, directory: Path, port: int) -> PostgresCluster:
        """A streaming replica of this cluster (pg_basebackup -R), started on `port`: a hot
        standby that replays this one's WAL and answers read-only queries."""
        replica = PostgresCluster(directory, port)
        replica._own_directory()
        directory.rmdir()  # pg_basebackup makes it, with the permissions the server insists on
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-D", str(directory), "-R", "-X", "stream", "--checkpoint=fast",
        )  # fmt: skip
        replica.start()
        return replica

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self._run(
            "pg_ctl",
            "-D",
            str(self.directory),
            "-o",
            options,
            "-w",
            "-l",
            str(self.directory / "server.log"),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
