"""Open311 `GET /open311/v2/requests.json` with filters, 1,000,000 reports stored.

A real server (`kotacerdas serve`, one process) on the cached benchmark database (`bench/reports_data.py`); one
client on a keep-alive connection asks one request after another (latency as a client sees it, loopback), for
each kind of query an Open311 client sends: by service_code; by status; service_code + status + a 30-day
start/end window; a 7-day window; three service_request_ids; and the default (no filter: the last 90 days, at
most 1,000). Every answer is checked (200, a JSON list). The values (codes, windows, ids) are drawn at random
from what is stored.

Same-run baseline: the raw SELECT of the same rows with the same filters, order and limit of 1,000 (public
reports only), through the database driver alone, without the timeline notes, names or JSON.

Target: p95 < 50 ms for the filtered queries.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import sqlalchemy as sa

from bench.common import percentiles, write_result
from bench.reports_data import bench_database, postgres_available
from bench.reports_submit import sequential
from bench.server import start_server, stop
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.reports.enums import CLOSED_STATUSES, OPEN_STATUSES
from kotacerdas.reports.models import Report, ReportCategory

TARGET_P95_MS = 50.0
SEED = 1605
KINDS = ("service_code", "status", "code_status_30_days", "window_7_days", "ids", "default_90_days")
FILTERED = KINDS[:-1]
WIB = timedelta(hours=7)


def _w3c(moment: datetime) -> str:
    return (moment + WIB).strftime("%Y-%m-%dT%H:%M:%S+07:00")


def queries(session, rng: np.random.Generator, per_kind: int) -> dict[str, list[dict[str, str]]]:
    """Query parameters of each kind, drawn from what is stored."""
    codes = session.scalars(sa.select(ReportCategory.code)).all()
    oldest, newest = session.execute(sa.select(sa.func.min(Report.created_at), sa.func.max(Report.created_at))).one()
    top = session.scalar(sa.select(sa.func.max(Report.id)))
    out: dict[str, list[dict[str, str]]] = {kind: [] for kind in KINDS}
    span = (newest - oldest).total_seconds()
    for _ in range(per_kind):
        code = str(rng.choice(codes))
        status = str(rng.choice(["open", "closed"]))
        start = oldest + timedelta(seconds=float(rng.uniform(0, span - 30 * 86400)))
        week = oldest + timedelta(seconds=float(rng.uniform(0, span - 7 * 86400)))
        picked = session.scalars(
            sa.select(Report.tracking_code).where(Report.id.in_([int(i) for i in rng.integers(1, top, 3)]))
        ).all()
        out["service_code"].append({"service_code": code})
        out["status"].append({"status": status})
        out["code_status_30_days"].append(
            {
                "service_code": code,
                "status": status,
                "start_date": _w3c(start),
                "end_date": _w3c(start + timedelta(days=30)),
            }
        )
        out["window_7_days"].append({"start_date": _w3c(week), "end_date": _w3c(week + timedelta(days=7))})
        out["ids"].append({"service_request_id": ",".join(picked)})
        out["default_90_days"].append({})
    return out


def _raw_select(settings, params: dict[str, str], categories: dict[str, int]) -> tuple[str, list[Any]]:
    """The SQL the Open311 list needs at least, for the raw-driver baseline."""
    postgres = settings.sqlalchemy_url.startswith("postgresql")
    mark = "%s" if postgres else "?"
    false = "false" if postgres else "0"
    where = [f"confidential = {false}", f"hidden = {false}"]
    args: list[Any] = []
    if "service_request_id" in params:
        codes = params["service_request_id"].split(",")
        where.append(f"tracking_code IN ({', '.join(mark for _ in codes)})")
        args += codes
    else:
        if "service_code" in params:
            where.append(f"category_id = {mark}")
            args.append(categories[params["service_code"]])
        if "status" in params:
            statuses = OPEN_STATUSES if params["status"] == "open" else CLOSED_STATUSES
            where.append(f"status IN ({', '.join(mark for _ in statuses)})")
            args += [status.value for status in statuses]
        end = (
            datetime.strptime(params["end_date"], "%Y-%m-%dT%H:%M:%S+07:00") - WIB
            if "end_date" in params
            else datetime.now(UTC).replace(tzinfo=None)
        )
        start = (
            datetime.strptime(params["start_date"], "%Y-%m-%dT%H:%M:%S+07:00") - WIB
            if "start_date" in params
            else end - timedelta(days=90)
        )
        where.append(f"created_at >= {mark} AND created_at <= {mark}")
        if postgres:
            args += [start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)]
        else:
            args += [start.isoformat(sep=" "), end.isoformat(sep=" ")]
    sql = (
        "SELECT id, tracking_code, category_id, status, anonymous, description, address, lat, lon, public_lat, "
        "public_lon, agency_id, created_at, updated_at, resolve_due_at FROM reports WHERE "
        + " AND ".join(where)
        + " ORDER BY created_at DESC, id DESC LIMIT 1000"
    )
    return sql, args


def _baseline(settings, plan: dict[str, list[dict[str, str]]], categories: dict[str, int]) -> dict[str, Any]:
    url = sa.engine.make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "postgresql":
        import psycopg

        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    else:
        connection = sqlite3.connect(url.database)
    out: dict[str, Any] = {}
    try:
        for kind, items in plan.items():
            samples, rows = [], []
            for params in items:
                sql, args = _raw_select(settings, params, categories)
                started = time.perf_counter()
                cursor = connection.execute(sql, args)
                rows.append(len(cursor.fetchall()))
                samples.append(time.perf_counter() - started)
                connection.rollback()
            out[kind] = {**percentiles(samples), "mean_rows": round(sum(rows) / len(rows), 1)}
    finally:
        connection.close()
    return out


def measure(backend: str, count: int, *, per_kind: int, tmp: Path) -> dict[str, Any]:
    settings, data = bench_database(backend, count)
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            plan = queries(session, np.random.default_rng(SEED), per_kind)
            categories = dict(session.execute(sa.select(ReportCategory.code, ReportCategory.id)).all())
    finally:
        engine.dispose()
    load_before = os.getloadavg()[0]
    process, port = start_server(settings, workers=1, log=tmp / f"serve-{backend}.log")
    results: dict[str, Any] = {}
    try:
        for kind, items in plan.items():
            answers: list[int] = []
            sizes: list[int] = []

            def check(status: int, body: bytes, answers=answers, sizes=sizes) -> str | None:
                if status != 200:
                    return f"HTTP {status}: {body[:200].decode(errors='replace')}"
                answers.append(len(json.loads(body)))
                sizes.append(len(body))
                return None

            requests = [
                f"GET /open311/v2/requests.json{'?' + urlencode(params) if params else ''} HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\n\r\n".encode()
                for params in items
            ]
            # A warm-up round with the same requests first (caches, query plans), not counted.
            sequential(port, requests, check)
            answers.clear()
            sizes.clear()
            samples, errors = sequential(port, requests, check)
            results[kind] = {
                **percentiles(samples),
                "errors": errors,
                "mean_requests_returned": round(sum(answers) / max(len(answers), 1), 1),
                "max_bytes": max(sizes, default=0),
            }
            print(f"{backend} {kind}: {results[kind]}", file=sys.stderr, flush=True)
    finally:
        stop(process)
    baseline = _baseline(settings, plan, categories)
    filtered = [results[kind]["p95_ms"] for kind in FILTERED if "p95_ms" in results[kind]]
    return {
        "database": data,
        "queries_per_kind": per_kind,
        "requests": results,
        "filtered_worst_p95_ms": max(filtered) if filtered else None,
        "baselines": {"raw_select_same_rows": baseline},
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }


def run(quick: bool) -> bool:
    count = 20_000 if quick else 1_000_000
    per_kind = 15 if quick else 150
    backends = ["sqlite"] + (["postgres"] if postgres_available() else [])
    if os.environ.get("KOTACERDAS_BENCH_BACKENDS"):
        backends = [b for b in backends if b in os.environ["KOTACERDAS_BENCH_BACKENDS"].split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="kc-bench-open311-") as tmp:
        for backend in backends:
            results[backend] = measure(backend, count, per_kind=per_kind, tmp=Path(tmp))
    passed = all(
        result["filtered_worst_p95_ms"] is not None and result["filtered_worst_p95_ms"] < TARGET_P95_MS
        for result in results.values()
    )
    write_result(
        "open311_list",
        {
            "quick": quick,
            "reports_stored": count,
            "note": "GET /open311/v2/requests.json, one request at a time on a keep-alive connection; ms",
            **results,
        },
        targets={"filtered_p95_ms": f"< {TARGET_P95_MS:.0f}"},
        passed=passed,
    )
    return passed
