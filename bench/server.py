"""A real `kotacerdas serve` in a child process, for the benchmarks and CI's API fuzzing: a free port, the command,
waiting until it is ready, stopping it."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kotacerdas_command() -> list[str]:
    """The installed `kotacerdas` console script (beside this Python first), or the module when it is missing."""
    script = shutil.which("kotacerdas", path=str(Path(sys.executable).parent)) or shutil.which("kotacerdas")
    return [script] if script else [sys.executable, "-c", "from kotacerdas.cli import main; main()"]


def ready(port: int, *, timeout: float = 1.0) -> bool:
    """Whether the server on `port` answers GET /readyz with 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_ready(process: subprocess.Popen, port: int, *, log: Path, timeout: float) -> None:
    """Return once the server answers /readyz; RuntimeError (with the end of its log) when it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        if ready(port):
            return
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"the server was not ready after {timeout:.0f} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """SIGTERM (uvicorn finishes the requests in flight), then SIGKILL after `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_server(
    settings, *, workers: int, log: Path, env: dict[str, str] | None = None, timeout: float = 120.0
) -> tuple[subprocess.Popen, int]:
    """`kotacerdas serve` on the database of `settings` (already migrated), ready; the process and its port.

    The environment carries no other KOTACERDAS_ variable; the per-address report limit is lifted (a benchmark's
    load comes from one address), the background worker is off, and so is the map index's preload, whose load
    would compete for the interpreter in the first seconds (the map benchmark measures the index on its own).
    `env` adds or overrides variables."""
    port = free_port()
    command = [*kotacerdas_command(), "serve", "--port", str(port), "--no-migrate", "--workers", str(workers)]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, env=_environment(settings, env), stdout=handle, stderr=subprocess.STDOUT)
    wait_ready(process, port, log=log, timeout=timeout)
    return process, port


def start_worker(settings, *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`kotacerdas worker` on the database of `settings`, in the environment `start_server` gives (the worker
    process beside `serve --workers N`, as docs/operations.md describes)."""
    with log.open("wb") as handle:
        return subprocess.Popen(
            [*kotacerdas_command(), "worker"], env=_environment(settings, env), stdout=handle, stderr=subprocess.STDOUT
        )


def _environment(settings, env: dict[str, str] | None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KOTACERDAS_")}
    environment.update(
        KOTACERDAS_DATABASE_URL=settings.sqlalchemy_url,
        KOTACERDAS_DATA_DIR=str(settings.data_dir),
        KOTACERDAS_SECRET_KEY=settings.secret_key,
        KOTACERDAS_REPORTS_PER_IP_PER_HOUR="1000000",
        KOTACERDAS_WORKER_IN_APP="false",
        KOTACERDAS_MAP_INDEX_PRELOAD="false",
    )
    environment.update(env or {})
    return environment
