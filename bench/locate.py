"""Point → desa lookup on the real Musi Rawas boundaries: batch throughput and single-call latency.

Random points uniformly inside the kabupaten polygon (seeded), located with `locate_many` in batches and with
`locate` one by one, against a same-run floor: `shapely.contains_xy` of the same points against the kabupaten
polygon alone, which any desa lookup has to beat or match.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

from bench.common import SHARED_DATA, percentiles, write_result
from kotacerdas.accounts.service import Actor
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database
from kotacerdas.regions import service as regions

BOUNDARIES = SHARED_DATA / "wilayah-16.05.geojson"
TARGET_POINTS_PER_S = 200_000
TARGET_SINGLE_P99_MS = 1.0
BATCH = 50_000
SEED = 1605


def random_points_inside(polygon: shapely.Geometry, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """`count` points uniformly inside `polygon`: rejection sampling in its bounding box."""
    min_x, min_y, max_x, max_y = polygon.bounds
    xs, ys, have = [], [], 0
    while have < count:
        x = rng.uniform(min_x, max_x, count)
        y = rng.uniform(min_y, max_y, count)
        keep = shapely.contains_xy(polygon, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
    return np.concatenate(ys)[:count], np.concatenate(xs)[:count]


def run(quick: bool) -> bool:
    if not BOUNDARIES.is_file():
        print(f"locate: {BOUNDARIES} not found; nothing measured")
        return False
    n_points = 100_000 if quick else 1_000_000
    n_single = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db")
        engine = make_engine(settings)
        try:
            upgrade_database(engine)
            with make_sessionmaker(engine)() as session:
                figures = measure(session, settings, n_points=n_points, n_single=n_single)
        finally:
            engine.dispose()
    passed = (
        figures["batch"]["points_per_s"] >= TARGET_POINTS_PER_S
        and figures["single"]["p99_ms"] < TARGET_SINGLE_P99_MS
        and figures["single"]["agrees_with_batch"]
    )
    write_result(
        "locate",
        figures,
        targets={
            "batch_points_per_s": f">= {TARGET_POINTS_PER_S}",
            "single_p99_ms": f"< {TARGET_SINGLE_P99_MS}",
        },
        passed=passed,
    )
    return passed


def measure(session, settings: Settings, *, n_points: int, n_single: int) -> dict:
    load_before = os.getloadavg()[0]
    regions.seed_builtin_regions(session, settings=settings)
    started = time.perf_counter()
    imported = regions.import_boundaries(
        session, settings=settings, data=BOUNDARIES.read_bytes(), actor=Actor.system("bench")
    )
    session.commit()
    import_s = time.perf_counter() - started

    kabupaten = shapely.from_geojson(regions.get_region(session, code=settings.region_code).geometry)
    shapely.prepare(kabupaten)
    lat, lon = random_points_inside(kabupaten, n_points, np.random.default_rng(SEED))
    points = np.column_stack([lat, lon])

    # The first lookup builds the per-engine index; every later one reuses it.
    started = time.perf_counter()
    regions.locate(session, settings=settings, lat=float(lat[0]), lon=float(lon[0]))
    index_build_s = time.perf_counter() - started

    # (a) batches
    methods, desa_found = [], 0
    started = time.perf_counter()
    for start in range(0, n_points, BATCH):
        batch = regions.locate_many(session, settings=settings, points=points[start : start + BATCH])
        desa_found += int((batch.desa_code != None).sum())  # noqa: E711 (element-wise on an object array)
        methods.append(batch.method)
    batch_s = time.perf_counter() - started
    method = np.concatenate(methods)

    # Floor: the kabupaten polygon alone, same points, prepared, no desa at all.
    started = time.perf_counter()
    inside_kabupaten = shapely.contains_xy(kabupaten, lon, lat)
    floor_s = time.perf_counter() - started
    assert inside_kabupaten.all()

    # Reference: the plain STRtree way, point geometries queried with predicate="within" over the desa polygons.
    villages = [
        shapely.from_geojson(regions.get_region(session, code=f["properties"]["kode"]).geometry)
        for level in ("desa", "kelurahan")
        for f in regions.regions_geojson(session, level=level)["features"]
    ]
    sample = min(n_points, 200_000)
    started = time.perf_counter()
    shapely.STRtree(villages).query(shapely.points(lon[:sample], lat[:sample]), predicate="within")
    strtree_s = time.perf_counter() - started

    # (b) one point per call, as the API and a report form do it
    # Wall time is what a caller waits; CPU time of the thread leaves out preemption by other processes, which
    # on a small shared machine is most of the tail.
    wall, cpu = [], []
    agrees = True
    whole = regions.locate_many(session, settings=settings, points=points[:n_single])
    for i in range(n_single):
        started, started_cpu = time.perf_counter(), time.thread_time()
        location = regions.locate(session, settings=settings, lat=float(lat[i]), lon=float(lon[i]))
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        agrees &= (location.desa.code if location.desa else None) == whole.desa_code[i]

    return {
        "points": n_points,
        "regions_imported": imported.total,
        "import_s": round(import_s, 3),
        "index_build_s": round(index_build_s, 3),
        "batch": {
            "batch_size": BATCH,
            "seconds": round(batch_s, 3),
            "points_per_s": round(n_points / batch_s),
            "located_to_desa": desa_found,
            "by_boundary": int((method == "boundary").sum()),
            "by_nearest_boundary": int((method == "nearest_boundary").sum()),
        },
        "floor_kabupaten_contains_xy": {
            "seconds": round(floor_s, 3),
            "points_per_s": round(n_points / floor_s),
            "batch_over_floor": round(batch_s / floor_s, 2),
        },
        "reference_strtree_within": {
            "points": sample,
            "seconds": round(strtree_s, 3),
            "points_per_s": round(sample / strtree_s),
        },
        "single": {**percentiles(wall), "agrees_with_batch": bool(agrees)},
        "single_cpu_time": percentiles(cpu),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }
