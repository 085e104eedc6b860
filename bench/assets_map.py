"""The public asset map: viewport GeoJSON over 200,000 point assets and 50,000 road segments, zooms 8 to 18.

For each database (SQLite, and PostgreSQL when it answers), on the cached registry (`bench/assets_data.py`): the
cold load of the process's asset map index (seconds, array bytes, growth of resident memory; the roads simplified
for every zoom band), then random viewports of a 1280 × 800 pixel screen centred uniformly inside the kabupaten at
every zoom from 8 to 18, each without filters and with one of the public filter sets (a type, conditions, a
kecamatan, an OPD, two types not inspected), each call in a new transaction as a request has it: latency per zoom,
the largest answer in bytes, lines drawn. Then the same through the HTTP endpoint `GET /api/v1/assets/map`
in-process (parameter parsing and JSON encoding included), and the refresh: the first query after 1,000 assets
(lines among them) changed elsewhere.

Same-run baseline, plain SQL over the same rows and viewports: the active assets whose bounding box meets the
viewport, with their geometry (what a map without the index would read and send).

Targets: p95 < 100 ms at every zoom, with and without filters; an answer ≤ 2 MB.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.assets_data import FULL, QUICK, bench_database, postgres_available
from bench.common import percentiles, wait_for_preloads, write_result
from bench.reports_map import _rss_mib, centres, viewport
from kotacerdas.agencies.models import Agency
from kotacerdas.assets import mapindex
from kotacerdas.assets.models import Asset
from kotacerdas.db import make_engine, make_sessionmaker

TARGET_P95_MS = 100.0
TARGET_BYTES = 2 * 1024 * 1024
ZOOMS = tuple(range(8, 19))
SEED = 1605
FILTERS = ("type", "conditions", "kecamatan", "agency", "not_inspected")


def filter_sets(session, rng: np.random.Generator, count: int) -> list[tuple[str, dict[str, Any]]]:
    kecamatan = [code for code in session.scalars(sa.select(Asset.kecamatan_code).distinct()) if code]
    agencies = list(session.scalars(sa.select(Agency.id).where(Agency.id.in_(sa.select(Asset.agency_id)))))
    sets = []
    for i in range(count):
        kind = FILTERS[i % len(FILTERS)]
        if kind == "type":
            value = {"types": [str(rng.choice(["jalan", "pju", "sekolah", "jembatan", "posyandu"]))]}
        elif kind == "conditions":
            value = {"conditions": ["rusak_ringan", "rusak_berat", "tidak_berfungsi"]}
        elif kind == "kecamatan":
            value = {"kecamatan_code": str(rng.choice(kecamatan))}
        elif kind == "agency":
            value = {"agency_id": int(rng.choice(agencies))}
        else:
            value = {"types": ["sekolah", "puskesmas", "jalan"], "conditions": ["unknown"]}
        sets.append((kind, value))
    return sets


def _query(session, **kwargs) -> tuple[float, dict]:
    session.commit()  # a new snapshot, as a new request has
    started = time.perf_counter()
    answer = mapindex.viewport_geojson(session, **kwargs)
    return time.perf_counter() - started, answer


def _http_params(bbox, zoom, filters: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"bbox": ",".join(f"{v:.6f}" for v in bbox), "zoom": zoom}
    names = {"types": "type", "conditions": "condition", "kecamatan_code": "kecamatan", "agency_id": "agency"}
    for key, value in filters.items():
        params[names[key]] = ",".join(value) if isinstance(value, list) else value
    return params


def measure(backend: str, points: int, lines: int, *, per_zoom: int, http_per_zoom: int, baseline_per_zoom: int):
    settings, data = bench_database(backend, points, lines)
    engine = make_engine(settings)
    rng = np.random.default_rng(SEED)
    figures: dict[str, Any] = {"database": data}
    try:
        with make_sessionmaker(engine)() as session:
            stored = session.execute(
                sa.select(sa.func.count(), sa.func.count(Asset.length_km)).select_from(Asset).where(Asset.active)
            ).one()
            figures["assets"] = {"active": stored[0], "active_lines": stored[1]}
            session.commit()
            rss_before = _rss_mib()
            started = time.perf_counter()
            stats = mapindex.load_index(session)
            loaded = time.perf_counter() - started
            mapindex.settle_heap()  # as the app does once its start-up preload has loaded the index
            figures["index"] = {
                "cold_load_s": round(loaded, 3),
                "array_mib": round(stats["bytes"] / 2**20, 1),
                "rss_growth_mib": round(_rss_mib() - rss_before, 1),
                "assets": stats["assets"],
                "lines": stats["lines"],
                "vertices_per_band": stats["vertices_per_band"],
            }
            print(f"{backend}: index loaded {figures['index']}", file=sys.stderr, flush=True)

            points_ = centres(session, settings, per_zoom, rng)
            filters = filter_sets(session, rng, per_zoom)
            per_zoom_figures: dict[str, Any] = {}
            worst_bytes = 0
            all_plain: list[float] = []
            all_filtered: list[float] = []
            for zoom in ZOOMS:
                plain, filtered, sizes, features, drawn, clustered = [], [], [], [], [], 0
                for (lat, lon), (_kind, extra) in zip(points_, filters, strict=True):
                    bbox = viewport(lat, lon, zoom)
                    for bucket, kwargs in ((plain, {}), (filtered, extra)):
                        took, answer = _query(session, bbox=bbox, zoom=zoom, **kwargs)
                        bucket.append(took)
                        sizes.append(len(json.dumps(answer, separators=(",", ":"), ensure_ascii=False)))
                        features.append(len(answer["features"]))
                        drawn.append(answer["lines_drawn"])
                        clustered += answer["clustered"]
                worst_bytes = max(worst_bytes, *sizes)
                all_plain += plain
                all_filtered += filtered
                per_zoom_figures[str(zoom)] = {
                    "no_filter": percentiles(plain),
                    "filtered": percentiles(filtered),
                    "max_bytes": max(sizes),
                    "mean_features": round(statistics.mean(features), 1),
                    "mean_lines_drawn": round(statistics.mean(drawn), 1),
                    "clustered_share": round(clustered / len(sizes), 2),
                }
                print(
                    f"{backend} zoom {zoom}: p95 {per_zoom_figures[str(zoom)]['no_filter']['p95_ms']:.1f} ms, "
                    f"filtered p95 {per_zoom_figures[str(zoom)]['filtered']['p95_ms']:.1f} ms, "
                    f"max {max(sizes):,} bytes, {statistics.mean(drawn):.0f} lines",
                    file=sys.stderr,
                    flush=True,
                )
            figures["viewports_per_zoom"] = per_zoom
            figures["zooms"] = per_zoom_figures
            figures["all_zooms"] = {"no_filter": percentiles(all_plain), "filtered": percentiles(all_filtered)}
            figures["max_bytes"] = worst_bytes
            figures["refresh"] = _refresh_cost(session, points_[0])
            figures["http"] = _http(settings, points_, filters, per_zoom=http_per_zoom)
            figures["baseline_sql_bbox_select"] = _baseline(session, points_, per_zoom=baseline_per_zoom)
    finally:
        engine.dispose()
    return figures


def _refresh_cost(session, centre) -> dict:
    """The first query after 1,000 assets changed (their `updated_at` set to now, as a service change does)."""
    session.commit()
    ids = session.scalars(sa.select(Asset.id).where(Asset.active).order_by(Asset.id.desc()).limit(1000)).all()
    session.execute(sa.update(Asset).where(Asset.id.in_(ids)).values(updated_at=datetime.now(UTC)))
    session.commit()
    bbox = viewport(*centre, 12)
    first, _answer = _query(session, bbox=bbox, zoom=12)
    again, _answer = _query(session, bbox=bbox, zoom=12)
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

    # As in production: the index loaded in the background at start-up, then the heap settled (see settle_heap).
    app = create_app(settings.model_copy(update={"map_index_preload": True}))
    result: dict[str, Any] = {}
    with TestClient(app) as client:
        wait_for_preloads()
        probe = client.get("/api/v1/assets/map", params={"bbox": "102.5,-3.5,103.5,-2.8", "zoom": 10})
        if probe.status_code != 200:
            return {"skipped": f"GET /api/v1/assets/map answered {probe.status_code}: {probe.text[:200]}"}
        samples_all, largest = [], 0
        for zoom in ZOOMS:
            samples = []
            for (lat, lon), (_kind, extra) in list(zip(points, filters, strict=True))[:per_zoom]:
                for kwargs in ({}, extra):
                    params = _http_params(viewport(lat, lon, zoom), zoom, kwargs)
                    started = time.perf_counter()
                    response = client.get("/api/v1/assets/map", params=params)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    largest = max(largest, len(response.content))
            result[str(zoom)] = percentiles(samples)
            samples_all += samples
        result["all_zooms"] = percentiles(samples_all)
        result["max_bytes"] = largest
    return result


def _baseline(session, points, *, per_zoom: int) -> dict:
    """Plain SQL over the same rows: the active assets whose box meets the viewport, with their geometry."""
    out: dict[str, Any] = {}
    for zoom in (8, 12, 16, 18):
        took, matched, sizes = [], [], []
        for lat, lon in points[:per_zoom]:
            west, south, east, north = viewport(lat, lon, zoom)
            session.commit()
            started = time.perf_counter()
            rows = session.execute(
                sa.select(Asset.id, Asset.type_id, Asset.name, Asset.condition, Asset.geometry).where(
                    Asset.active,
                    Asset.min_lon <= east,
                    Asset.max_lon >= west,
                    Asset.min_lat <= north,
                    Asset.max_lat >= south,
                )
            ).all()
            took.append(time.perf_counter() - started)
            matched.append(len(rows))
            sizes.append(sum(len(row.geometry) + len(row.name) + 60 for row in rows))
        out[str(zoom)] = {
            "mean_rows": round(statistics.mean(matched)),
            "max_bytes_estimate": max(sizes),
            "sql": percentiles(took),
        }
        print(f"baseline zoom {zoom}: {out[str(zoom)]['sql']['p50_ms']:.0f} ms", file=sys.stderr, flush=True)
    return out


def run(quick: bool) -> bool:
    points, lines = QUICK if quick else FULL
    per_zoom = 8 if quick else 60
    backends = ["sqlite"] + (["postgres"] if postgres_available() else [])
    if os.environ.get("KOTACERDAS_BENCH_BACKENDS"):
        backends = [b for b in os.environ["KOTACERDAS_BENCH_BACKENDS"].split(",") if b in backends]
    results = {}
    for backend in backends:
        results[backend] = measure(
            backend,
            points,
            lines,
            per_zoom=per_zoom,
            http_per_zoom=4 if quick else 20,
            baseline_per_zoom=2 if quick else 5,
        )
    passed = all(
        result["zooms"][str(zoom)][kind]["p95_ms"] < TARGET_P95_MS
        for result in results.values()
        for zoom in ZOOMS
        for kind in ("no_filter", "filtered")
    ) and all(result["max_bytes"] <= TARGET_BYTES for result in results.values())
    write_result(
        "assets_map",
        {
            "quick": quick,
            "registry": {"points": points, "road_segments": lines},
            "zooms": list(ZOOMS),
            "note": "latencies of assets.mapindex.viewport_geojson in ms, each call in a new transaction, one at a "
            "time; http = the endpoint in-process with JSON encoding",
            **results,
        },
        targets={"p95_ms_every_zoom": f"< {TARGET_P95_MS:.0f}", "answer_bytes": f"<= {TARGET_BYTES}"},
        passed=passed,
    )
    return passed
