"""A large asset registry for the asset benchmarks (map, indicators); seeded once and reused.

`bench_database(backend, points, lines)` returns Settings for a migrated database holding exactly that registry
(assets a benchmark added in an earlier run are removed first), seeding it when missing: the Musi Rawas regions with
their real boundaries, the default OPDs and asset types, then in bulk (SQLite: executemany in large transactions;
PostgreSQL: COPY) the assets and one inspection for each inspected asset:

- `points` point assets of every point type (street lights, schools, posyandu, water points, bridges … in plausible
  shares) around the centres of the 199 desa/kelurahan, spread by about 1.3 km, inside the kabupaten, located to
  their real desa and kecamatan;
- `lines` road segments, plus one drain for every 25 roads: LineStrings of 5–40 vertices, each a walk of 20–50 m
  steps that keeps its heading with small turns (a road bends, it does not zigzag), starting near a village centre,
  whose ends and middle lie inside the kabupaten; 40 % kabupaten roads, the rest desa roads;
- every condition of each type's scale, 15 % not inspected yet, inspection dates over the last 30 months (so about
  half are older than 12 months); 1 % archived; the type's default owner OPD.

The columns are those `AssetCleaner` produces (GeoJSON rounded to 7 decimals, a point on the line, the bounding box,
the geodesic length), written directly for speed.

Cached where `KOTACERDAS_BENCH_DATA_DIR` says (default: the system's temporary folder, `kotacerdas-bench/`): SQLite
as `assets-POINTS-LINES.db`; PostgreSQL as the database `kotacerdas_bench_assets_map` (the full registry) or
`kotacerdas_bench_assets_POINTS_LINES` on the benchmark server (see bench/reports_data.py), created if missing.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from bench.reports_data import (
    BOUNDARIES,
    SECRET,
    _create_postgres_database,
    _drop_postgres_database,
    _positions,
    _times,
    _write,
    bench_dir,
    postgres_available,  # noqa: F401 - the asset benchmarks import it from here
    postgres_url,
)
from kotacerdas.accounts.service import Actor
from kotacerdas.agencies import service as agencies
from kotacerdas.assets.enums import SCALE_CONDITIONS, ConditionScale
from kotacerdas.assets.geometry import EARTH_RADIUS_KM, PRECISION
from kotacerdas.assets.models import Asset, AssetInspection, AssetType
from kotacerdas.assets.types import seed_default_types
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database
from kotacerdas.regions import service as regions

SEED = 1605
DATA_VERSION = 1
CHUNK = 25_000
FULL = (200_000, 50_000)
QUICK = (8_000, 2_000)
DRAIN_EVERY = 25  # one drain for this many road segments
ARCHIVED_SHARE = 0.01
UNKNOWN_SHARE = 0.15
KABUPATEN_SHARE = 0.40
INSPECTION_DAYS = 30 * 30
STEP_M = (20.0, 50.0)
TURN_SD_RAD = 0.12
VERTICES = (5, 40)
DAY_US = 86_400 * 1_000_000

ASSET_COLUMNS = [c.name for c in Asset.__table__.columns]
INSPECTION_COLUMNS = [c.name for c in AssetInspection.__table__.columns]

# Shares of the point assets by type code.
POINT_SHARES = {
    "pju": 38,
    "air-bersih": 10,
    "posyandu": 8,
    "sekolah": 8,
    "kantor": 6,
    "cctv": 6,
    "jembatan": 5,
    "toilet-umum": 5,
    "taman": 3,
    "pustu": 2,
    "pasar": 2,
    "menara-telekomunikasi": 2,
    "pos-duga-air": 2,
    "puskesmas": 1,
}
# Condition shares per scale, in the order of the scale (best first).
CONDITION_SHARES = {
    ConditionScale.ROAD.value: (35, 25, 20, 20),
    ConditionScale.STRUCTURE.value: (50, 25, 15, 10),
    ConditionScale.FACILITY.value: (70, 20, 10),
}
NAMES = {
    "jalan": "Ruas Jalan",
    "drainase": "Saluran",
    "pju": "PJU",
    "air-bersih": "Sumur Bor",
    "posyandu": "Posyandu",
    "sekolah": "SD Negeri",
    "kantor": "Kantor",
    "cctv": "CCTV",
    "jembatan": "Jembatan",
    "toilet-umum": "Toilet Umum",
    "taman": "Taman",
    "pustu": "Pustu",
    "pasar": "Pasar",
    "menara-telekomunikasi": "Menara",
    "pos-duga-air": "Pos Duga Air",
    "puskesmas": "Puskesmas",
}
RIVERS = ("Sungai Musi", "Sungai Kelingi", "Sungai Lakitan", "Sungai Beliti", "Sungai Rawas")


def settings_for(backend: str, points: int, lines: int) -> Settings:
    """Settings of the cached asset registry of `backend` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        url = f"sqlite:///{bench_dir() / f'assets-{points}-{lines}.db'}"
    elif backend == "postgres":
        name = "assets_map" if (points, lines) == FULL else f"assets_{points}_{lines}"
        url = (
            sa.engine.make_url(postgres_url(0))
            .set(database=f"kotacerdas_bench_{name}")
            .render_as_string(hide_password=False)
        )
    else:
        raise ValueError(backend)
    return Settings(
        data_dir=bench_dir() / f"data-assets-{backend}-{points}-{lines}",
        database_url=url,
        secret_key=SECRET,
        worker_in_app=False,
        map_index_preload=False,
    )


def total_assets(points: int, lines: int) -> int:
    return points + lines + lines // DRAIN_EVERY


def bench_database(backend: str, points: int, lines: int) -> tuple[Settings, dict[str, Any]]:
    """Settings of a migrated database holding the registry (seeded now if needed), and how it was got."""
    settings = settings_for(backend, points, lines)
    if backend == "postgres":
        _create_postgres_database(settings.sqlalchemy_url)
    marker = bench_dir() / f"assets-{backend}-{points}-{lines}.json"
    expected = {"version": DATA_VERSION, "database": settings.sqlalchemy_url}
    count = total_assets(points, lines)
    engine = make_engine(settings)
    try:
        upgrade_database(engine)
        with engine.connect() as connection:
            stored = connection.execute(sa.select(sa.func.max(Asset.id))).scalar() or 0
        if stored >= count and marker.is_file() and json.loads(marker.read_text()) == expected:
            return settings, {"seeded_now": False, "trimmed_rows": trim_to_seed(engine, count)}
    finally:
        engine.dispose()
    marker.unlink(missing_ok=True)
    if backend == "sqlite":
        path = Path(sa.engine.make_url(settings.sqlalchemy_url).database)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        _drop_postgres_database(settings.sqlalchemy_url)
        _create_postgres_database(settings.sqlalchemy_url)
    engine = make_engine(settings)
    try:
        upgrade_database(engine)
        started = time.perf_counter()
        seed(engine, settings=settings, points=points, lines=lines)
        marker.write_text(json.dumps(expected))
        return settings, {"seeded_now": True, "seed_seconds": round(time.perf_counter() - started, 1)}
    finally:
        engine.dispose()


def trim_to_seed(engine: sa.Engine, count: int) -> int:
    """Remove the assets a benchmark added after the seed (ids beyond `count`) and their rows; how many."""
    with engine.begin() as connection:
        extra = connection.execute(sa.select(sa.func.count()).select_from(Asset).where(Asset.id > count)).scalar()
        if not extra:
            return 0
        for table in ("asset_photos", "asset_condition_proposals", "asset_inspections", "asset_external_ids"):
            connection.exec_driver_sql(f"DELETE FROM {table} WHERE asset_id > {int(count)}")
        connection.exec_driver_sql(f"DELETE FROM assets WHERE id > {int(count)}")
        if engine.dialect.name == "postgresql":
            _set_sequences(connection)
    return int(extra)


def _set_sequences(connection: sa.Connection) -> None:
    for table in ("assets", "asset_inspections"):
        connection.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, "
            "false)"
        )


# --- seeding --------------------------------------------------------------------------------------------------


def seed(engine: sa.Engine, *, settings: Settings, points: int, lines: int) -> None:
    """Regions with boundaries, OPDs, asset types, then the assets and their inspections."""
    actor = Actor.system("bench")
    rng = np.random.default_rng(SEED)
    with make_sessionmaker(engine)() as session:
        regions.seed_builtin_regions(session, settings=settings)
        regions.import_boundaries(session, settings=settings, data=BOUNDARIES.read_bytes(), actor=actor)
        agencies.seed_default_agencies(session, settings=settings, actor=actor)
        seed_default_types(session, actor=actor)
        session.commit()
        kinds = {kind.code: kind for kind in session.scalars(sa.select(AssetType))}
        fallback_agency = min(agencies.agency_names(session))
        villages = [
            feature
            for level in ("desa", "kelurahan")
            for feature in regions.regions_geojson(session, level=level)["features"]
        ]
        kabupaten = shapely.from_geojson(regions.get_region(session, code=settings.region_code).geometry)
        shapely.prepare(kabupaten)
        point_columns = _points(session, settings, villages, kabupaten, kinds, points, rng)
        drains = lines // DRAIN_EVERY
        line_columns = _lines(session, settings, villages, kabupaten, kinds, lines, drains, rng)
    started = time.perf_counter()
    _insert_all(engine, [point_columns, line_columns], kinds, fallback_agency, rng)
    print(f"inserted in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            _set_sequences(connection)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")


def _choice(rng, shares, size) -> np.ndarray:
    shares = np.asarray(shares, dtype=float)
    return rng.choice(len(shares), size=size, p=shares / shares.sum())


def _points(session, settings, villages, kabupaten, kinds, count, rng) -> dict[str, Any]:
    codes = list(POINT_SHARES)
    kind = np.asarray(codes, dtype=object)[_choice(rng, list(POINT_SHARES.values()), count)]
    lat, lon, desa, kecamatan = _positions(session, settings, villages, kabupaten, count, rng)
    lat, lon = np.round(lat, PRECISION), np.round(lon, PRECISION)
    geometry = [f'{{"type":"Point","coordinates":[{x:.7f},{y:.7f}]}}' for x, y in zip(lon, lat, strict=True)]
    return {
        "kind": kind, "lat": lat, "lon": lon, "min_lat": lat, "min_lon": lon, "max_lat": lat, "max_lon": lon,
        "geometry": geometry, "length_km": np.full(count, np.nan), "desa": desa, "kecamatan": kecamatan,
    }  # fmt: skip


def _walks(starts_lat, starts_lon, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walks from the starts: (lat, lon) arrays of shape (n, VERTICES[1]) and the vertex count of each walk."""
    n = len(starts_lat)
    width = VERTICES[1]
    counts = rng.integers(VERTICES[0], VERTICES[1] + 1, n)
    heading = rng.uniform(0, 2 * math.pi, (n, 1)) + np.cumsum(rng.normal(0, TURN_SD_RAD, (n, width - 1)), axis=1)
    step_deg = rng.uniform(*STEP_M, (n, width - 1)) / 111_320.0
    d_lat = step_deg * np.cos(heading)
    d_lon = step_deg * np.sin(heading) / np.cos(np.radians(starts_lat))[:, None]
    lat = np.concatenate([starts_lat[:, None], starts_lat[:, None] + np.cumsum(d_lat, axis=1)], axis=1)
    lon = np.concatenate([starts_lon[:, None], starts_lon[:, None] + np.cumsum(d_lon, axis=1)], axis=1)
    return np.round(lat, PRECISION), np.round(lon, PRECISION), counts


def _lines(session, settings, villages, kabupaten, kinds, roads, drains, rng) -> dict[str, Any]:
    count = roads + drains
    kind = np.asarray(["jalan"] * roads + ["drainase"] * drains, dtype=object)
    centres = np.array([f["properties"]["centroid"][::-1] for f in villages], dtype=float)
    weights = rng.lognormal(0.0, 1.0, len(villages))
    weights /= weights.sum()
    lat = np.empty((count, VERTICES[1]))
    lon = np.empty((count, VERTICES[1]))
    vertices = np.empty(count, dtype=np.int64)
    todo = np.arange(count)
    while todo.size:
        pick = rng.choice(len(villages), size=todo.size, p=weights)
        start_lat = centres[pick, 0] + rng.normal(0.0, 0.02, todo.size)
        start_lon = centres[pick, 1] + rng.normal(0.0, 0.02, todo.size)
        lat[todo], lon[todo], vertices[todo] = _walks(start_lat, start_lon, rng)
        last = vertices[todo] - 1
        inside = np.ones(todo.size, dtype=bool)
        for vertex in (np.zeros_like(last), last // 2, last):
            inside &= shapely.contains_xy(kabupaten, lon[todo, vertex], lat[todo, vertex])
        todo = todo[~inside]
    valid = np.arange(VERTICES[1])[None, :] < vertices[:, None]
    # Geodesic length, as geometry.length_km computes it (haversine on the mean radius).
    phi, lam = np.radians(lat), np.radians(lon)
    a = (
        np.sin(np.diff(phi, axis=1) / 2) ** 2
        + np.cos(phi[:, :-1]) * np.cos(phi[:, 1:]) * np.sin(np.diff(lam, axis=1) / 2) ** 2
    )
    segment = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    length = np.round(np.where(valid[:, 1:], segment, 0.0).sum(axis=1), 4)
    masked_lat = np.where(valid, lat, np.nan)
    masked_lon = np.where(valid, lon, np.nan)
    # The point of a line is its middle (by length), as geometry.check puts it.
    geometries = shapely.linestrings(
        np.column_stack([lon[valid], lat[valid]]), indices=np.repeat(np.arange(count), vertices)
    )
    middle = shapely.line_interpolate_point(geometries, 0.5, normalized=True)
    mid_lon = np.round(shapely.get_x(middle), PRECISION)
    mid_lat = np.round(shapely.get_y(middle), PRECISION)
    found = regions.locate_many(session, settings=settings, points=np.column_stack([mid_lat, mid_lon]))
    geometry = []
    for i in range(count):
        n = int(vertices[i])
        pairs = ",".join(f"[{x:.7f},{y:.7f}]" for x, y in zip(lon[i, :n], lat[i, :n], strict=True))
        geometry.append(f'{{"type":"LineString","coordinates":[{pairs}]}}')
    return {
        "kind": kind, "lat": mid_lat, "lon": mid_lon,
        "min_lat": np.nanmin(masked_lat, axis=1), "min_lon": np.nanmin(masked_lon, axis=1),
        "max_lat": np.nanmax(masked_lat, axis=1), "max_lon": np.nanmax(masked_lon, axis=1),
        "geometry": geometry, "length_km": length, "desa": found.desa_code, "kecamatan": found.kecamatan_code,
    }  # fmt: skip


def _attributes(code: str, rng) -> dict[str, Any]:
    """Attributes that satisfy the type's JSON Schema."""
    if code == "jalan":
        return {
            "status_jalan": "kabupaten" if rng.random() < KABUPATEN_SHARE else "desa",
            "permukaan": str(rng.choice(["aspal", "beton", "kerikil/agregat", "tanah"], p=[0.5, 0.15, 0.2, 0.15])),
            "lebar_m": float(rng.choice([3.0, 3.5, 4.5, 6.0, 7.0])),
        }
    if code == "drainase":
        return {"jenis": str(rng.choice(["saluran terbuka", "saluran tertutup", "gorong-gorong"]))}
    if code == "sekolah":
        return {"jenjang": str(rng.choice(["SD", "SMP", "SMA", "MI"], p=[0.6, 0.2, 0.1, 0.1])), "status": "negeri"}
    if code == "pju":
        return {"jenis_lampu": str(rng.choice(["LED", "SON-T", "tenaga surya"])), "daya_watt": 40}
    if code == "pos-duga-air":
        return {"sungai": str(rng.choice(RIVERS))}
    if code == "jembatan":
        return {"konstruksi": str(rng.choice(["beton", "baja", "kayu"])), "panjang_m": float(rng.integers(6, 120))}
    return {}


def _insert_all(engine: sa.Engine, parts: list[dict[str, Any]], kinds, fallback_agency: int, rng) -> None:
    """Insert the assets (points, then lines) and one inspection per inspected asset, in chunks."""
    postgres = engine.dialect.name == "postgresql"
    now = datetime.now(UTC)
    today = now.date()
    now_us = int(now.timestamp() * 1_000_000)
    columns = {key: np.concatenate([np.asarray(part[key], dtype=object) for part in parts]) for key in parts[0]}
    count = len(columns["kind"])
    created = np.sort(now_us - rng.integers(DAY_US, 3 * 365 * DAY_US, count))
    created_text = _times(created, postgres)
    unknown = rng.random(count) < UNKNOWN_SHARE
    archived = rng.random(count) < ARCHIVED_SHARE
    age_days = rng.integers(0, INSPECTION_DAYS, count)
    draws = rng.random(count)
    conditions: list[str | None] = []
    for code, is_unknown, draw in zip(columns["kind"], unknown, draws, strict=True):
        if is_unknown:
            conditions.append(None)
            continue
        scale = kinds[code].condition_scale
        shares = np.cumsum(CONDITION_SHARES[scale]) / sum(CONDITION_SHARES[scale])
        conditions.append(SCALE_CONDITIONS[ConditionScale(scale)][int(np.searchsorted(shares, draw))].value)
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if not postgres:
            driver.execute("PRAGMA synchronous=OFF")  # seeding only; the benchmarks run with FULL
        inspection_id = 0
        started = time.perf_counter()
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            rows, inspections = [], []
            for i in range(start, stop):
                code = columns["kind"][i]
                kind = kinds[code]
                condition = conditions[i]
                inspected_on = (today - timedelta(days=int(age_days[i]))).isoformat() if condition else None
                length = columns["length_km"][i]
                row = {
                    "id": i + 1,
                    "type_id": kind.id,
                    "name": f"{NAMES.get(code, code)} {i + 1}",
                    "description": None,
                    "address": None,
                    "agency_id": kind.agency_id or fallback_agency,
                    "geometry": columns["geometry"][i],
                    "lat": float(columns["lat"][i]),
                    "lon": float(columns["lon"][i]),
                    "min_lat": float(columns["min_lat"][i]),
                    "min_lon": float(columns["min_lon"][i]),
                    "max_lat": float(columns["max_lat"][i]),
                    "max_lon": float(columns["max_lon"][i]),
                    "length_km": None if length is None or math.isnan(length) else float(length),
                    "desa_code": columns["desa"][i] or None,
                    "kecamatan_code": columns["kecamatan"][i] or None,
                    "locate_method": "boundary",
                    "attributes": json.dumps(_attributes(code, rng), separators=(",", ":")),
                    "condition": condition,
                    "condition_on": inspected_on,
                    "active": not archived[i],
                    "created_at": created_text[i],
                    "updated_at": created_text[i],
                }
                rows.append(tuple(row[name] for name in ASSET_COLUMNS))
                if condition:
                    inspection_id += 1
                    inspection = {
                        "id": inspection_id,
                        "asset_id": i + 1,
                        "inspected_on": inspected_on,
                        "inspector": "Tim Inventarisasi",
                        "user_id": None,
                        "condition": condition,
                        "notes": None,
                        "source": "import",
                        "report_id": None,
                        "created_at": created_text[i],
                    }
                    inspections.append(tuple(inspection[name] for name in INSPECTION_COLUMNS))
            if not postgres:
                driver.execute("BEGIN")
            _write(driver, "assets", ASSET_COLUMNS, rows, postgres)
            _write(driver, "asset_inspections", INSPECTION_COLUMNS, inspections, postgres)
            driver.commit()
            rate = stop / (time.perf_counter() - started)
            print(f"seeded {stop:,} of {count:,} assets ({rate:,.0f}/s)", file=sys.stderr, flush=True)
        if not postgres:
            driver.execute("PRAGMA synchronous=FULL")
    finally:
        raw.close()


def main() -> None:
    """`python -m bench.assets_data BACKEND [--quick]`: seed (or check) a cached asset registry."""
    backend = sys.argv[1]
    points, lines = QUICK if "--quick" in sys.argv else FULL
    settings, info = bench_database(backend, points, lines)
    print(json.dumps({"database": settings.sqlalchemy_url, **info}))


if __name__ == "__main__":
    main()
