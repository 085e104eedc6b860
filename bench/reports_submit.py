"""Submitting a report through the JSON API (no photo) under a bounded loopback load, 1,000,000 reports stored.

A real server (`kotacerdas serve`, one process, then two worker processes) on the cached benchmark
database (`bench/reports_data.py`), with the per-address limit raised (the load comes from one address) and the
background worker off. A small asyncio HTTP/1.1 client (keep-alive, a few dozen lines, so that the client takes
little of the two cores) keeps CONCURRENCY requests in flight for DURATION seconds after a warm-up: POST
/api/v1/reports with a random category that needs no photo, a random point inside the kabupaten, and the contact
details, anonymity and confidentiality in the shares citizens use. Every answer is checked (201 with a tracking
code); anything else is an error. What the benchmark added is removed afterwards (the cached database keeps its
1,000,000 reports).

Same-run baselines at the same concurrency: the raw floor of the database, a single-row INSERT of a whole report
row and its commit per transaction, from as many threads as the load has connections (SQLite: WAL,
synchronous=FULL as the app runs it); and the HTTP floor, GET /healthz on the same server.

A burst of 64 connections at once follows the measured load (more writers than the server's 40 threads): every
request must still be answered 201; its figures are reported, not a target.

Targets, on each database: >= 200 requests/s with p99 < 150 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from bench.common import percentiles, write_result
from bench.reports_data import REPORT_COLUMNS, bench_database, postgres_available, trim_to_seed
from bench.server import start_server, stop
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.regions import service as regions
from kotacerdas.reports.models import ReportCategory

TARGET_RPS = 200.0
TARGET_P99_MS = 150.0
CONCURRENCY = 16
BURST_CONCURRENCY = 64
SEED = 1605
DESCRIPTIONS = (
    "Jalan berlubang di depan sekolah, sudah dua minggu belum diperbaiki.",
    "Saluran air tersumbat, air meluap ke jalan setiap hujan deras.",
    "Lampu penerangan jalan mati di tikungan, rawan kecelakaan malam hari.",
    "Sampah menumpuk di pinggir jalan dekat pasar, berbau dan mengundang lalat.",
)


# --- a small HTTP/1.1 client -----------------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server wants to close) of one response on a keep-alive connection."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _sep, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = bytearray()
    while True:
        size = int((await reader.readline()).strip().split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return status, bytes(body), close
        body += await reader.readexactly(size)
        await reader.readline()


class Load:
    """Keep `concurrency` requests in flight for `duration` seconds; latency of every completed request."""

    def __init__(self, port: int, make_request, *, concurrency: int, duration: float, check) -> None:
        self.port, self.make_request, self.check = port, make_request, check
        self.concurrency, self.duration = concurrency, duration
        self.samples: list[float] = []
        self.errors: dict[str, int] = {}

    async def _connection(self, deadline: float) -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            request = self.make_request()
            started = time.perf_counter()
            try:
                writer.write(request)
                status, body, close = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                writer.close()
                reader = writer = None
                continue
            elapsed = time.perf_counter() - started
            problem = self.check(status, body)
            if problem:
                self.errors[problem] = self.errors.get(problem, 0) + 1
            else:
                self.samples.append(elapsed)
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    def run(self) -> dict[str, Any]:
        async def main() -> float:
            started = time.perf_counter()
            deadline = started + self.duration
            await asyncio.gather(*(self._connection(deadline) for _ in range(self.concurrency)))
            return time.perf_counter() - started

        elapsed = asyncio.run(main())
        return {
            "concurrency": self.concurrency,
            "seconds": round(elapsed, 2),
            "completed": len(self.samples),
            "requests_per_s": round(len(self.samples) / elapsed, 1),
            "errors": dict(self.errors),
            **percentiles(self.samples),
        }


def sequential(port: int, requests: list[bytes], check) -> tuple[list[float], dict[str, int]]:
    """Send `requests` one after another on one keep-alive connection; latencies of the good answers, errors."""
    samples: list[float] = []
    errors: dict[str, int] = {}

    async def main() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in requests:
                started = time.perf_counter()
                writer.write(request)
                status, body, _close = await _read_response(reader)
                elapsed = time.perf_counter() - started
                problem = check(status, body)
                if problem:
                    errors[problem] = errors.get(problem, 0) + 1
                else:
                    samples.append(elapsed)
        finally:
            writer.close()

    asyncio.run(main())
    return samples, errors


# --- what is sent ------------------------------------------------------------------------------------------------


class Submissions:
    """JSON bodies of plausible submissions, as raw HTTP requests."""

    def __init__(self, session, settings, rng: np.random.Generator) -> None:
        categories = session.execute(
            sa.select(ReportCategory.code, ReportCategory.photo_required, ReportCategory.attributes)
        ).all()
        self.codes = [
            row.code
            for row in categories
            if not row.photo_required and not any(a.get("required") for a in row.attributes or [])
        ]
        kabupaten = shapely.from_geojson(regions.get_region(session, code=settings.region_code).geometry)
        min_x, min_y, max_x, max_y = kabupaten.bounds
        x = rng.uniform(min_x, max_x, 40_000)
        y = rng.uniform(min_y, max_y, 40_000)
        keep = shapely.contains_xy(kabupaten, x, y)
        self.points = list(zip(y[keep].tolist(), x[keep].tolist(), strict=True))
        self.rng = rng
        self.sent = 0

    def body(self) -> bytes:
        i = self.sent
        self.sent += 1
        lat, lon = self.points[i % len(self.points)]
        draw = self.rng.random(4)
        data: dict[str, Any] = {
            "category": self.codes[i % len(self.codes)],
            "description": DESCRIPTIONS[i % len(DESCRIPTIONS)],
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "address": f"Jl. Lintas Sumatera km {i % 90}",
        }
        if draw[0] < 0.7:
            data["name"] = "Warga Uji"
        if draw[1] < 0.6:
            data["email"] = f"warga{i}@example.id"
            data["phone"] = "0812-3456-7890"
        if draw[2] < 0.1:
            data["anonymous"] = True
        if draw[3] < 0.02:
            data["confidential"] = True
        return json.dumps(data).encode()

    def request(self) -> bytes:
        body = self.body()
        head = (
            "POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def _check_created(status: int, body: bytes) -> str | None:
    if status != 201:
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"
    if b'"tracking_code"' not in body:
        return "201 without a tracking code"
    return None


def _check_ok(status: int, body: bytes) -> str | None:
    return None if status == 200 else f"HTTP {status}"


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# --- the server ----------------------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (uvicorn's worker processes), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


# --- the raw database floor --------------------------------------------------------------------------------------


def _raw_insert_floor(settings, *, concurrency: int, duration: float) -> dict[str, Any]:
    """Single-row INSERT of a whole report row + commit per transaction, from `concurrency` threads."""
    url = sa.engine.make_url(settings.sqlalchemy_url)
    now = datetime.now(UTC)
    columns = [c for c in REPORT_COLUMNS if c != "id"]
    postgres = url.get_backend_name() == "postgresql"
    stamp = now.isoformat(sep=" ") if postgres else now.replace(tzinfo=None).isoformat(sep=" ")
    due = ((now + timedelta(days=3)).isoformat(sep=" ") if postgres else
           (now + timedelta(days=3)).replace(tzinfo=None).isoformat(sep=" "))  # fmt: skip
    with make_engine(settings).connect() as connection:
        category_id, agency_id = connection.execute(
            sa.select(ReportCategory.id, ReportCategory.agency_id).order_by(ReportCategory.id).limit(1)
        ).one()
    values = {
        "category_id": category_id, "type": "pengaduan", "status": "baru", "source": "api",
        "description": DESCRIPTIONS[0], "address": "Jl. Uji", "lat": -3.1, "lon": 103.0, "public_lat": -3.1,
        "public_lon": 103.0, "desa_code": "16.05.09.2001", "kecamatan_code": "16.05.09", "asset_id": None,
        "locate_method": "boundary",
        "attributes": None, "agency_id": agency_id, "assignee_id": None, "duplicate_of_id": None,
        "reporter_name": "Warga Uji", "reporter_email": "warga@example.id", "reporter_phone": "0812",
        "reporter_locale": "id", "reporter_pin_hash": "0" * 64, "client_key": "f" * 40, "anonymous": False,
        "confidential": False, "hidden": False, "hidden_reason": None, "follow_up_plan": None,
        "resolution_note": None, "close_reason": None, "rating": None, "rating_comment": None, "rated_at": None,
        "reopen_count": 0, "created_at": stamp, "updated_at": stamp, "verified_at": None, "disposed_at": None,
        "followed_up_at": None, "resolved_at": None, "closed_at": None, "verify_due_at": due,
        "follow_up_due_at": None, "resolve_due_at": None, "verify_breached_at": None,
        "follow_up_breached_at": None, "resolve_breached_at": None,
    }  # fmt: skip
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + duration
    counter = iter(range(10**9))

    def work() -> None:
        if postgres:
            import psycopg

            connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
            marks = ", ".join("%s" for _ in columns)
        else:
            connection = sqlite3.connect(url.database, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={settings.sqlite_busy_timeout_ms}")
            marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO reports ({', '.join(columns)}) VALUES ({marks})"
        mine = []
        try:
            while time.perf_counter() < deadline:
                row = dict(values, tracking_code=f"BL-{next(counter):09d}")
                started = time.perf_counter()
                try:
                    if postgres:
                        connection.execute(sql, [row[c] for c in columns])
                        connection.commit()
                    else:
                        connection.execute("BEGIN IMMEDIATE")
                        connection.execute(sql, [row[c] for c in columns])
                        connection.execute("COMMIT")
                except Exception as exc:  # noqa: BLE001 (counted, not raised: the floor is a count)
                    errors.append(type(exc).__name__)
                    if not postgres:
                        connection.execute("ROLLBACK") if connection.in_transaction else None
                    else:
                        connection.rollback()
                    continue
                mine.append(time.perf_counter() - started)
        finally:
            connection.close()
        with lock:
            samples.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(len(samples) / elapsed, 1),
        "errors": len(errors),
        **percentiles(samples),
    }


# --- one configuration -----------------------------------------------------------------------------------------


def measure(backend: str, count: int, *, workers: int, duration: float, warmup: float, tmp: Path) -> dict:
    settings, data = bench_database(backend, count)
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            submissions = Submissions(session, settings, np.random.default_rng(SEED + workers))
        load_before = os.getloadavg()[0]
        process, port = start_server(settings, workers=workers, log=tmp / f"serve-{backend}-{workers}.log")
        try:
            Load(port, submissions.request, concurrency=CONCURRENCY, duration=warmup, check=_check_created).run()
            cpu_before = _cpu_seconds(process.pid)
            submit = Load(
                port, submissions.request, concurrency=CONCURRENCY, duration=duration, check=_check_created
            ).run()
            # What one request costs the server in CPU: on a busy machine, the figure that moves least.
            submit["server_cpu_ms_per_request"] = round(
                (_cpu_seconds(process.pid) - cpu_before) * 1000 / max(submit["completed"], 1), 2
            )
            print(f"{backend} ×{workers}: submit {submit}", file=sys.stderr, flush=True)
            # More writers at once than the server has threads (40): they must queue, not deadlock (deps.py).
            burst = Load(
                port, submissions.request, concurrency=BURST_CONCURRENCY, duration=min(duration, 8.0),
                check=_check_created,
            ).run()  # fmt: skip
            print(f"{backend} ×{workers}: burst of {BURST_CONCURRENCY} {burst}", file=sys.stderr, flush=True)
            healthz = Load(
                port, lambda: HEALTHZ, concurrency=CONCURRENCY, duration=min(duration, 5.0), check=_check_ok
            ).run()
        finally:
            stop(process)
        added = trim_to_seed(engine, count)
        floor = _raw_insert_floor(settings, concurrency=CONCURRENCY, duration=min(duration, 10.0))
        print(f"{backend}: raw insert floor {floor}", file=sys.stderr, flush=True)
        trim_to_seed(engine, count)
    finally:
        engine.dispose()
    return {
        "database": data,
        "workers": workers,
        "submit": submit,
        "burst": burst,
        "reports_added_and_removed": added,
        "baselines": {"raw_insert_commit": floor, "http_get_healthz": healthz},
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }


def run(quick: bool) -> bool:
    import tempfile

    count = 20_000 if quick else 1_000_000
    duration, warmup = (3.0, 1.0) if quick else (25.0, 3.0)
    # Two processes on SQLite share its writer queue; a submission holds it only for its writes (db.begin_writes).
    configs = [("sqlite", 1)] if quick else [("sqlite", 1), ("sqlite", 2)]
    if postgres_available():
        configs += [("postgres", 1)] if quick else [("postgres", 1), ("postgres", 2)]
    if os.environ.get("KOTACERDAS_BENCH_BACKENDS"):
        configs = [c for c in configs if c[0] in os.environ["KOTACERDAS_BENCH_BACKENDS"].split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="kc-bench-submit-") as tmp:
        for backend, workers in configs:
            results[f"{backend}_{workers}_worker{'s' if workers > 1 else ''}"] = measure(
                backend, count, workers=workers, duration=duration, warmup=warmup, tmp=Path(tmp)
            )

    failed = {name: result["burst"]["errors"] for name, result in results.items() if result["burst"]["errors"]}
    if failed:
        # A speed target may be missed on a slow day; a burst that is not answered 201 is a defect.
        raise RuntimeError(f"requests of the burst of {BURST_CONCURRENCY} failed: {failed}")

    def met(result: dict) -> bool:
        submit = result["submit"]
        return submit["requests_per_s"] >= TARGET_RPS and submit.get("p99_ms", 1e9) < TARGET_P99_MS

    # Each database must meet the target in at least one of its configurations.
    passed = all(
        any(met(result) for name, result in results.items() if name.startswith(backend))
        for backend in {name.split("_")[0] for name in results}
    )
    write_result(
        "reports_submit",
        {
            "quick": quick,
            "reports_stored": count,
            "concurrency": CONCURRENCY,
            "note": "POST /api/v1/reports without photos on one keep-alive connection per client; latencies in ms",
            **results,
        },
        targets={"requests_per_s": f">= {TARGET_RPS:.0f}", "p99_ms": f"< {TARGET_P99_MS:.0f}"},
        passed=passed,
    )
    return passed
