"""Fan-out of the events' live stream: 5,000 Server-Sent Events subscribers on one app process.

A real server (`kotacerdas serve`, one process, SQLite, background worker off) on a fresh database with the Musi
Rawas regions and one flood warning. A small asyncio client in this process opens SUBSCRIBERS raw keep-alive
connections to GET /api/v1/events/stream (the open-file limit raised first); then an operator updates the warning
UPDATES times through the JSON API (PATCH /api/v1/events/{id}), SPACING seconds apart, and every subscriber stamps the
arrival of each version. Latency is publish (the PATCH sent) → the frame read by the subscriber, over every
subscriber and update; the client's own reading of 5,000 sockets on the same two cores is part of it.

Also reported: how many subscribers received every update, the server's resident memory before and after the
subscribers connected (and per subscriber), and the PATCH's own answer time.

Same-run baselines: the same fan-out from a bare asyncio TCP server (a few lines: one write of the same bytes to
every connection, in a child process), the floor of Python delivering to that many sockets on this machine; and the
app delivering to a single subscriber.

Targets: p99 < 1 s, and every subscriber receives every update.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.common import percentiles, write_result
from bench.server import free_port, start_server, stop

TARGET_P99_MS = 1000.0
STREAM_PATH = "/api/v1/events/stream"
OPEN_BATCH = 250


# --- the database and the publisher --------------------------------------------------------------------------------


def events_database(tmp: Path) -> tuple[Any, str]:
    """A migrated SQLite database with the regions, an operator and their API token; (settings, token)."""
    from kotacerdas.accounts import service as accounts
    from kotacerdas.agencies import service as agencies
    from kotacerdas.config import Settings
    from kotacerdas.db import make_engine, make_sessionmaker
    from kotacerdas.migrate import upgrade_database
    from kotacerdas.regions import service as regions

    settings = Settings(
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'events.db'}",
        secret_key="bench-secret-" + "x" * 32,
        worker_in_app=False,
        map_index_preload=False,
    )
    engine = make_engine(settings)
    upgrade_database(engine)
    actor = accounts.Actor.system("bench")
    with make_sessionmaker(engine)() as session:
        regions.seed_builtin_regions(session, settings=settings)
        agencies.seed_default_agencies(session, settings=settings, actor=actor)
        user = accounts.create_user(
            session, actor=actor, username="operator", full_name="Operator", password="rahasia-bench-123",
            role="operator",
        )  # fmt: skip
        _token, plain = accounts.create_api_token(session, actor=actor, user_id=user.id, name="bench")
        session.commit()
    engine.dispose()
    return settings, plain


FLOOD = {
    "category": "banjir",
    "level": "siaga",
    "title": "Banjir Sungai Kelingi",
    "description": "Air Sungai Kelingi naik 1,5 m; permukiman di tepi sungai tergenang 40-60 cm.",
    "region_codes": ["16.05.09.2001"],
    "impacts": {"kk": 120, "jiwa": 430, "rumah": 95},
}


def api(port: int, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, Any, float]:
    """One JSON API call on a fresh connection; (status, decoded body, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.monotonic()
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.monotonic() - started
        return response.status, (json.loads(data) if data else None), elapsed
    finally:
        connection.close()


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft limit of open files towards `wanted` (up to the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- subscribers ---------------------------------------------------------------------------------------------------


class Subscribers:
    """Raw keep-alive connections reading an event stream; each stamps when it reads each version."""

    def __init__(self, port: int, count: int, request: bytes) -> None:
        self.port, self.count, self.request = port, count, request
        self.arrivals: list[dict[int, float]] = [{} for _n in range(count)]
        self.failures: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        """Connect every subscriber (in batches, so the listen backlog never overflows) and read its headers."""
        for first in range(0, self.count, OPEN_BATCH):
            opened = await asyncio.gather(
                *(self._open(n) for n in range(first, min(first + OPEN_BATCH, self.count))), return_exceptions=True
            )
            for outcome in opened:
                if isinstance(outcome, BaseException):
                    name = type(outcome).__name__
                    self.failures[name] = self.failures.get(name, 0) + 1

    async def _open(self, n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            writer.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        self._writers.append(writer)
        self._tasks.append(asyncio.create_task(self._read(n, reader)))

    async def _read(self, n: int, reader: asyncio.StreamReader) -> None:
        arrivals = self.arrivals[n]
        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = time.monotonic()
                buffer += chunk
                # Frames may come in HTTP chunks (the chunk sizes are skipped: only `data:` lines matter here).
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    for line in frame.split(b"\n"):
                        if line.startswith(b"data: "):
                            arrivals[json.loads(line[6:])["version"]] = now
        except (ConnectionError, asyncio.CancelledError):
            return

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0.5)


async def _fan_out(port: int, count: int, request: bytes, publish, versions: list[int], spacing: float) -> dict:
    """Open `count` subscribers, call `publish(version)` for each version (in a thread), collect the latencies."""
    subscribers = Subscribers(port, count, request)
    began = time.monotonic()
    await subscribers.open()
    connect_s = time.monotonic() - began
    await asyncio.sleep(1.0)
    sent: dict[int, float] = {}
    answer_times: list[float] = []
    for version in versions:
        sent[version] = time.monotonic()
        answer = await asyncio.to_thread(publish, version)
        if answer is not None:
            answer_times.append(answer)
        await asyncio.sleep(spacing)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(len(a) < len(versions) for a in subscribers.arrivals if a is not None):
        await asyncio.sleep(0.2)
    await subscribers.close()
    latencies = [
        arrivals[version] - sent[version]
        for arrivals in subscribers.arrivals
        for version in versions
        if version in arrivals
    ]
    complete = sum(1 for arrivals in subscribers.arrivals if all(version in arrivals for version in versions))
    return {
        "subscribers": count,
        "connected": count - sum(subscribers.failures.values()),
        "connect_failures": subscribers.failures,
        "connect_seconds": round(connect_s, 2),
        "updates": len(versions),
        "received_all": complete,
        "latency": percentiles(latencies),
        "publish_answer": percentiles(answer_times),
    }


# --- the baseline: a bare asyncio broadcast ------------------------------------------------------------------------

BARE_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    clients = []
    async def handle(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        clients.append(writer)
        writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-type: text/event-stream\\r\\n\\r\\n")
    async def control(reader, writer):
        while line := await reader.readline():
            frame = line.rstrip(b"\\n")
            for client in clients:
                client.write(b"data: " + frame + b"\\n\\n")
            writer.write(b"ok\\n")
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
        await asyncio.start_server(control, "127.0.0.1", int(sys.argv[2]))
        print("ready", flush=True)
        await server.serve_forever()
    asyncio.run(main())
    """
)


def bare_broadcast(count: int, versions: list[int], spacing: float, view_size: int) -> dict:
    """The same fan-out from a bare asyncio server that writes each frame to every connection."""
    import socket

    port, control_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(port), str(control_port)], stdout=subprocess.PIPE, text=True
    )
    try:
        process.stdout.readline()
        control = socket.create_connection(("127.0.0.1", control_port))
        padding = "x" * max(0, view_size - 40)

        def publish(version: int) -> None:
            control.sendall(json.dumps({"version": version, "padding": padding}).encode() + b"\n")
            control.recv(16)

        request = b"GET /stream HTTP/1.1\r\nHost: bench\r\n\r\n"
        figures = asyncio.run(_fan_out(port, count, request, publish, versions, spacing))
        control.close()
        return figures
    finally:
        process.kill()
        process.wait()


# --- the run -------------------------------------------------------------------------------------------------------


def measure(count: int, updates: int, spacing: float, tmp: Path) -> dict[str, Any]:
    settings, token = events_database(tmp)
    process, port = start_server(settings, workers=1, log=tmp / "server.log")
    try:
        status, event, _elapsed = api(port, "POST", "/api/v1/events", token, FLOOD)
        if status != 201:
            raise RuntimeError(f"publishing the warning answered {status}: {event}")
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        probe.request("GET", STREAM_PATH)
        if probe.getresponse().status != 200:
            raise RuntimeError(f"GET {STREAM_PATH} does not stream: is kotacerdas.events.stream.router registered?")
        probe.close()
        view_size = len(json.dumps(event))
        request = f"GET {STREAM_PATH} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
        levels = ["waspada", "siaga", "awas"]
        next_version = [2]

        def publish(_version: int) -> float:
            body = {"level": levels[next_version[0] % 3], "impacts": {"kk": 120 + next_version[0]}}
            status, view, elapsed = api(port, "PATCH", f"/api/v1/events/{event['id']}", token, body)
            if status != 200:
                raise RuntimeError(f"the update answered {status}: {view}")
            next_version[0] += 1
            return elapsed

        versions = list(range(2, 2 + updates))
        time.sleep(1.0)
        rss_before = rss_mib(process.pid)
        single = asyncio.run(_fan_out(port, 1, request, publish, versions, spacing))
        versions = list(range(versions[-1] + 1, versions[-1] + 1 + updates))

        rss_holder: dict[str, float] = {}

        def publish_and_watch(version: int) -> float:
            rss_holder.setdefault("connected", rss_mib(process.pid))
            return publish(version)

        many = asyncio.run(_fan_out(port, count, request, publish_and_watch, versions, spacing))
        rss_connected = rss_holder.get("connected", 0.0)
        many["server_rss_mib"] = {
            "before": rss_before,
            "connected": rss_connected,
            "after": rss_mib(process.pid),
            "per_subscriber_kib": round((rss_connected - rss_before) * 1024 / max(1, many["connected"]), 1),
        }
        baseline = bare_broadcast(count, list(range(1, updates + 1)), spacing, view_size)
    finally:
        stop(process)
    return {"app": many, "app_single_subscriber": single, "baseline_bare_asyncio_broadcast": baseline,
            "view_bytes": view_size}  # fmt: skip


def run(quick: bool) -> bool:
    count, updates, spacing = (300, 4, 0.5) if quick else (5000, 10, 2.0)
    raise_open_files(count * 2 + 512)
    with tempfile.TemporaryDirectory(prefix="kc-bench-fanout-") as tmp:
        figures = measure(count, updates, spacing, Path(tmp))
    app = figures["app"]
    passed = bool(
        app["latency"]
        and app["latency"]["p99_ms"] < TARGET_P99_MS
        and app["received_all"] == count
        and app["connected"] == count
    )
    figures["load_average"] = os.getloadavg()
    write_result(
        "events_fanout",
        figures,
        targets={"p99_ms": TARGET_P99_MS, "received_all": count, "subscribers": count, "updates": updates},
        passed=passed,
    )
    return passed
