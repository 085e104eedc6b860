"""The public map of reports: viewport queries (clustered GeoJSON) over 1,000,000 stored reports, zooms 8 to 18.

For each database (SQLite, and PostgreSQL when it answers), on the cached benchmark database
(`bench/reports_data.py`): the cold load of the process's map index (seconds, array bytes, growth of the process's
resident memory), then random viewports of a 1280 × 800 pixel screen centred uniformly inside the kabupaten, at
every zoom from 8 to 18, each without filters and with one of the public filter sets (status, category, kecamatan,
a 90-day period), each call in a new transaction as a request has it. Latency per zoom, the largest answer in
bytes, and the same through the HTTP endpoint `GET /api/v1/reports/map` in-process (parameter parsing and JSON
encoding included). Then the refresh: the first query after 1,000 reports changed elsewhere.

Same-run baselines, plain SQL over the same rows and the same viewports: the count of public reports in the
bounding box; the same grouped into grid cells in SQL (the obvious database clustering); the rows of the box.

Targets: p95 < 100 ms at every zoom, with and without filters; an answer ≤ 2 MB.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from bench.common import percentiles, write_result
from bench.reports_data import bench_database, postgres_available
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.regions import service as regions
from kotacerdas.reports import mapindex
from kotacerdas.reports.models import Report, ReportCategory

TARGET_P95_MS = 100.0
TARGET_BYTES = 2 * 1024 * 1024
SCREEN = (1280, 800)
ZOOMS = tuple(range(8, 19))
SEED = 1605
FILTERS = ("status", "category", "kecamatan", "period")


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def viewport(lat: float, lon: float, zoom: int) -> tuple[float, float, float, float]:
    """The bounding box (west, south, east, north) of a SCREEN-sized Web Mercator map centred on (lat, lon)."""
    world = 256 * 2**zoom
    x = (lon + 180) / 360 * world
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2 * world

    def to_lat(py: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / world))))

    half_w, half_h = SCREEN[0] / 2, SCREEN[1] / 2
    return ((x - half_w) / world * 360 - 180, to_lat(y + half_h), (x + half_w) / world * 360 - 180, to_lat(y - half_h))


def centres(session, settings, count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """`count` points uniformly inside the kabupaten's boundary."""
    kabupaten = shapely.from_geojson(regions.get_region(session, code=settings.region_code).geometry)
    min_x, min_y, max_x, max_y = kabupaten.bounds
    found: list[tuple[float, float]] = []
    while len(found) < count:
        x, y = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        if shapely.contains_xy(kabupaten, x, y):
            found.append((y, x))
    return found


def filter_sets(session, rng: np.random.Generator, count: int) -> list[tuple[str, dict[str, Any]]]:
    categories = session.scalars(sa.select(ReportCategory.id)).all()
    kecamatan = [code for code in session.scalars(sa.select(Report.kecamatan_code).distinct()) if code]
    today = datetime.now(UTC).date()
    sets = []
    for i in range(count):
        kind = FILTERS[i % len(FILTERS)]
        if kind == "status":
            value = {"status": str(rng.choice(["open", "closed", "selesai", "baru"]))}
        elif kind == "category":
            value = {"category_id": int(rng.choice(categories)), "status": "open"}
        elif kind == "kecamatan":
            value = {"kecamatan_code": str(rng.choice(kecamatan))}
        else:
            start = today - timedelta(days=int(rng.integers(0, 700)))
            value = {"since": start, "until": start + timedelta(days=90)}
        sets.append((kind, value))
    return sets


def _query(session, settings, **kwargs) -> tuple[float, dict]:
    session.commit()  # a new snapshot, as a new request has
    started = time.perf_counter()
    answer = mapindex.viewport_geojson(session, settings=settings, **kwargs)
    return time.perf_counter() - started, answer


def _http_params(bbox, zoom, filters: dict[str, Any], codes: dict[int, str]) -> dict[str, Any]:
    params: dict[str, Any] = {"bbox": ",".join(f"{v:.6f}" for v in bbox), "zoom": zoom}
    for key, value in filters.items():
        if key == "category_id":
            params["category"] = codes[value]
        elif key == "kecamatan_code":
            params["kecamatan"] = value
        elif isinstance(value, date):
            params[key] = value.isoformat()
        else:
            params[key] = value
    return params


def measure(backend: str, count: int, *, per_zoom: int, http_per_zoom: int, baseline_per_zoom: int) -> dict:
    settings, data = bench_database(backend, count)
    engine = make_engine(settings)
    rng = np.random.default_rng(SEED)
    figures: dict[str, Any] = {"database": data}
    try:
        with make_sessionmaker(engine)() as session:
            public = session.scalar(
                sa.select(sa.func.count()).select_from(Report).where(~Report.confidential, ~Report.hidden)
            )
            figures["reports"] = {"stored": count, "public": public}
            session.commit()
            rss_before = _rss_mib()
            started = time.perf_counter()
            stats = mapindex.load_index(session, settings=settings)
            figures["index"] = {
                "cold_load_s": round(time.perf_counter() - started, 3),
                "array_mib": round(stats["bytes"] / 2**20, 1),
                "rss_growth_mib": round(_rss_mib() - rss_before, 1),
                "public_reports": stats["public_reports"],
                "capacity_slots": stats["capacity"],
            }
            print(f"{backend}: index loaded {figures['index']}", file=sys.stderr, flush=True)

            points = centres(session, settings, per_zoom, rng)
            filters = filter_sets(session, rng, per_zoom)
            per_zoom_figures: dict[str, Any] = {}
            worst_bytes = 0
            all_plain: list[float] = []
            all_filtered: list[float] = []
            for zoom in ZOOMS:
                plain, filtered, sizes, clustered, features = [], [], [], 0, []
                for (lat, lon), (_kind, extra) in zip(points, filters, strict=True):
                    bbox = viewport(lat, lon, zoom)
                    for bucket, kwargs in ((plain, {}), (filtered, extra)):
                        took, answer = _query(session, settings, bbox=bbox, zoom=zoom, **kwargs)
                        bucket.append(took)
                        size = len(json.dumps(answer, separators=(",", ":")))
                        sizes.append(size)
                        clustered += answer["clustered"]
                        features.append(len(answer["features"]))
                worst_bytes = max(worst_bytes, *sizes)
                all_plain += plain
                all_filtered += filtered
                per_zoom_figures[str(zoom)] = {
                    "no_filter": percentiles(plain),
                    "filtered": percentiles(filtered),
                    "max_bytes": max(sizes),
                    "mean_features": round(statistics.mean(features), 1),
                    "clustered_share": round(clustered / len(sizes), 2),
                }
                print(
                    f"{backend} zoom {zoom}: p95 {per_zoom_figures[str(zoom)]['no_filter']['p95_ms']:.1f} ms, "
                    f"filtered p95 {per_zoom_figures[str(zoom)]['filtered']['p95_ms']:.1f} ms, "
                    f"max {max(sizes):,} bytes",
                    file=sys.stderr,
                    flush=True,
                )
            figures["viewports_per_zoom"] = per_zoom
            figures["zooms"] = per_zoom_figures
            figures["all_zooms"] = {"no_filter": percentiles(all_plain), "filtered": percentiles(all_filtered)}
            figures["max_bytes"] = worst_bytes
            figures["refresh"] = _refresh_cost(session, settings, points[0])
            figures["http"] = _http(settings, points, filters, per_zoom=http_per_zoom)
            figures["baselines"] = _baselines(session, points, per_zoom=baseline_per_zoom)
    finally:
        engine.dispose()
    return figures


def _refresh_cost(session, settings, centre) -> dict:
    """The first query after 1,000 reports changed (their `updated_at` set to now, as a status change does)."""
    session.commit()
    ids = session.scalars(sa.select(Report.id).order_by(Report.id.desc()).limit(1000)).all()
    session.execute(sa.update(Report).where(Report.id.in_(ids)).values(updated_at=datetime.now(UTC)))
    session.commit()
    bbox = viewport(*centre, 12)
    first, _answer = _query(session, settings, bbox=bbox, zoom=12)
    # The changed rows stay within the re-read window for REFRESH_SLACK: the queries in it read them again.
    again, _answer = _query(session, settings, bbox=bbox, zoom=12)
    return {
        "changed_rows": len(ids),
        "first_query_ms": round(first * 1000, 2),
        "next_query_ms": round(again * 1000, 2),
        "window_s": mapindex.REFRESH_SLACK.total_seconds(),
    }


def _http(settings, points, filters, *, per_zoom: int) -> dict:
    """The endpoint through the whole app in-process (no network): parameters, the query, JSON encoding."""
    from fastapi.testclient import TestClient

    from kotacerdas.app import create_app

    app = create_app(settings)
    result: dict[str, Any] = {}
    with TestClient(app) as client, app.state.sessionmaker() as session:
        codes = dict(session.execute(sa.select(ReportCategory.id, ReportCategory.code)).all())
        probe = client.get("/api/v1/reports/map", params={"bbox": "102.5,-3.5,103.5,-2.8", "zoom": 10})
        if probe.status_code != 200:
            return {"skipped": f"GET /api/v1/reports/map answered {probe.status_code}"}
        samples_all = []
        for zoom in ZOOMS:
            samples = []
            for (lat, lon), (_kind, extra) in list(zip(points, filters, strict=True))[:per_zoom]:
                for kwargs in ({}, extra):
                    params = _http_params(viewport(lat, lon, zoom), zoom, kwargs, codes)
                    started = time.perf_counter()
                    response = client.get("/api/v1/reports/map", params=params)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
            result[str(zoom)] = percentiles(samples)
            samples_all += samples
        result["all_zooms"] = percentiles(samples_all)
    return result


def _baselines(session, points, *, per_zoom: int) -> dict:
    """Plain SQL over the same rows: count in the box, grid cells grouped in SQL, the rows of the box."""
    public = sa.and_(~Report.confidential, ~Report.hidden)
    out: dict[str, Any] = {}
    for zoom in (8, 12, 16, 18):
        cell = 60 * 360 / (256 * 2**zoom)
        count_s, group_s, rows_s, matched = [], [], [], []
        for lat, lon in points[:per_zoom]:
            west, south, east, north = viewport(lat, lon, zoom)
            box = sa.and_(
                public,
                Report.public_lat.between(south, north),
                Report.public_lon.between(west, east),
            )
            session.commit()
            started = time.perf_counter()
            matched.append(session.scalar(sa.select(sa.func.count()).select_from(Report).where(box)))
            count_s.append(time.perf_counter() - started)
            cx = sa.func.floor(Report.public_lon / cell)
            cy = sa.func.floor(Report.public_lat / cell)
            started = time.perf_counter()
            session.execute(
                sa.select(cx, cy, sa.func.count(), sa.func.avg(Report.public_lat), sa.func.avg(Report.public_lon))
                .where(box)
                .group_by(cx, cy)
            ).all()
            group_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            session.execute(
                sa.select(Report.id, Report.tracking_code, Report.public_lat, Report.public_lon, Report.status).where(
                    box
                )
            ).all()
            rows_s.append(time.perf_counter() - started)
        out[str(zoom)] = {
            "mean_matched": round(statistics.mean(matched)),
            "sql_count": percentiles(count_s),
            "sql_grid_group_by": percentiles(group_s),
            "sql_select_rows": percentiles(rows_s),
        }
        print(f"baseline zoom {zoom}: {out[str(zoom)]['sql_grid_group_by']['p50_ms']:.0f} ms", file=sys.stderr)
    return out


def run(quick: bool) -> bool:
    count = 20_000 if quick else 1_000_000
    per_zoom = 8 if quick else 60
    backends = ["sqlite"] + (["postgres"] if postgres_available() else [])
    if os.environ.get("KOTACERDAS_BENCH_BACKENDS"):
        backends = [b for b in os.environ["KOTACERDAS_BENCH_BACKENDS"].split(",") if b in backends]
    results = {}
    for backend in backends:
        results[backend] = measure(
            backend, count, per_zoom=per_zoom, http_per_zoom=4 if quick else 20, baseline_per_zoom=2 if quick else 5
        )
    passed = all(
        result["zooms"][str(zoom)][kind]["p95_ms"] < TARGET_P95_MS
        for result in results.values()
        for zoom in ZOOMS
        for kind in ("no_filter", "filtered")
    ) and all(result["max_bytes"] <= TARGET_BYTES for result in results.values())
    write_result(
        "reports_map",
        {
            "quick": quick,
            "screen_px": list(SCREEN),
            "zooms": list(ZOOMS),
            "note": "latencies of mapindex.viewport_geojson in ms, each call in a new transaction, one at a time",
            **results,
        },
        targets={"p95_ms_every_zoom": f"< {TARGET_P95_MS:.0f}", "answer_bytes": f"<= {TARGET_BYTES}"},
        passed=passed,
    )
    return passed
