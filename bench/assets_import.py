"""Importing 100,000 assets from CSV with validation, as `kotacerdas aset import FILE` does it.

A deterministic CSV file (seed 1605): a mix of the default asset types in plausible shares (street lights, schools,
posyandu, bridges, drains and road segments …), points drawn inside the kabupaten's real boundary (as
bench/reports_submit.py draws its reports), roads and drains as three-point WKT lines around such a point, attributes
that fit each type's schema, a SIMBADA number on every row and a condition with a date on most. The file is imported
with `transfer.import_assets` as `kotacerdas aset import` runs it (read, checked by `AssetCleaner.clean_many` in
chunks of 2,000 rows, located, written with Core executemany in one transaction, committed; a file this large is
checked in worker processes, one per core, see `transfer.auto_workers`) into a fresh database on each backend:
SQLite (WAL, synchronous=FULL, a file in a temporary folder) and PostgreSQL (the database `kotacerdas_bench_assets`,
dropped and created again), each seeded with the regions and their boundaries, the default OPDs and the asset types.

Memory must stay flat: the resident set size is sampled when the import has read 10 % of the rows and when it has
read them all; the growth between the two is reported (and the process's peak). That is the importing process;
a worker holds one chunk at a time.

Same-run baseline: a raw DBAPI executemany INSERT of the same number of rows, with columns precomputed (no reading,
no checking, no locating), into `assets` in one transaction on a fresh copy of the same database: the floor.

Target, on each database: 100,000 rows in < 60 s, and < 50 MiB RSS growth from 10 % to 100 % of the rows.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from bench.common import SHARED_DATA, peak_rss_mib, write_result
from bench.reports_data import DEFAULT_POSTGRES, SECRET, postgres_available
from kotacerdas.accounts.service import Actor
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import transfer
from kotacerdas.assets import types as asset_types
from kotacerdas.assets.models import Asset, AssetType
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database
from kotacerdas.regions import service as regions

BOUNDARIES = SHARED_DATA / "wilayah-16.05.geojson"
SEED = 1605
TARGET_SECONDS = 60.0
TARGET_RSS_GROWTH_MIB = 50.0
DATABASE = "kotacerdas_bench_assets"
# (type code, share, attributes maker); lines get a WKT geometry.
LINE_TYPES = {"jalan", "drainase"}
CONDITIONS = {
    "road": ("Baik", "Sedang", "Rusak Ringan", "Rusak Berat"),
    "structure": ("Baik", "Rusak Ringan", "Rusak Sedang", "Rusak Berat"),
    "facility": ("Berfungsi", "Berfungsi Sebagian", "Tidak Berfungsi"),
}


def _attributes(code: str, i: int) -> dict[str, Any]:
    """Attributes that fit the default schema of `code` (types.py)."""
    match code:
        case "jalan":
            return {"status_jalan": ("kabupaten", "desa")[i % 2], "permukaan": ("aspal", "beton", "tanah")[i % 3],
                    "lebar_m": 3 + i % 5}  # fmt: skip
        case "drainase":
            return {"jenis": "saluran terbuka", "lebar_m": 1 + i % 3, "material": ("beton", "tanah")[i % 2]}
        case "jembatan":
            return {"panjang_m": 10 + i % 90, "konstruksi": ("beton", "baja", "kayu")[i % 3]}
        case "pju":
            return {"jenis_lampu": ("LED", "SON-T", "tenaga surya")[i % 3], "daya_watt": 60 + 10 * (i % 10)}
        case "sekolah":
            return {"jenjang": ("SD", "SMP", "SMA")[i % 3], "status": ("negeri", "swasta")[i % 2],
                    "jumlah_ruang_kelas": 6 + i % 20}  # fmt: skip
        case "posyandu":
            return {"strata": ("pratama", "madya", "purnama", "mandiri")[i % 4]}
        case "air-bersih":
            return {"jenis": ("sumur bor", "hidran umum")[i % 2], "kapasitas_liter_detik": 1 + i % 20}
        case _:
            return {}


SHARES = (
    ("pju", 0.40),
    ("jalan", 0.15),
    ("drainase", 0.10),
    ("posyandu", 0.10),
    ("sekolah", 0.08),
    ("jembatan", 0.07),
    ("air-bersih", 0.05),
    ("toilet-umum", 0.05),
)
ATTRIBUTE_NAMES = sorted({name for code, _share in SHARES for name in _attributes(code, 0)})


def write_csv(path: Path, *, count: int, points: np.ndarray, scales: dict[str, str]) -> None:
    """The benchmark's CSV file of `count` rows (see the module docstring)."""
    rng = np.random.default_rng(SEED)
    codes = [code for code, _share in SHARES]
    picks = rng.choice(len(codes), size=count, p=[share for _code, share in SHARES])
    offsets = rng.uniform(-0.002, 0.002, size=(count, 4))
    days = rng.integers(0, 700, size=count)
    start = date(2026, 11, 1)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["jenis", "nama", "lat", "lon", "wkt", "kondisi", "tanggal_kondisi", "alamat", "id.simbada"]
            + [f"attr.{name}" for name in ATTRIBUTE_NAMES]
        )
        for i in range(count):
            code = codes[picks[i]]
            lat, lon = points[i % len(points)]
            wkt = ""
            if code in LINE_TYPES:
                dx1, dy1, dx2, dy2 = offsets[i]
                ends = f"{lon - dx1:.6f} {lat - dy1:.6f}", f"{lon + dx2:.6f} {lat + dy2:.6f}"
                wkt = f"LINESTRING ({ends[0]}, {lon:.6f} {lat:.6f}, {ends[1]})"
                lat_text = lon_text = ""
            else:
                lat_text, lon_text = f"{lat:.6f}", f"{lon:.6f}"
            conditions = CONDITIONS[scales[code]]
            condition = conditions[i % len(conditions)] if i % 5 else ""
            inspected = (start - timedelta(days=int(days[i]))).isoformat() if condition else ""
            attributes = _attributes(code, i)
            writer.writerow(
                [code, f"{code.upper()} {i:06d}", lat_text, lon_text, wkt, condition, inspected,
                 f"Jl. Poros Desa km {i % 40}", f"1.3.2.{i // 10000:02d}.{i % 10000:05d}"]
                + ["" if attributes.get(name) is None else attributes[name] for name in ATTRIBUTE_NAMES]
            )  # fmt: skip


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have ended (the import's workers), in seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rss_mib() -> float:
    """The process's resident set size now, in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# --- databases -------------------------------------------------------------------------------------------------


def _postgres_url() -> str:
    server = os.environ.get("KOTACERDAS_BENCH_POSTGRES_URL") or os.environ.get(
        "KOTACERDAS_TEST_POSTGRES_URL", DEFAULT_POSTGRES
    )
    return sa.engine.make_url(server).set(database=DATABASE).render_as_string(hide_password=False)


def fresh_database(backend: str, tmp: Path, name: str) -> Settings:
    """Settings of a new, migrated, seeded database (regions with boundaries, OPDs, asset types)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'{name}.db'}"
    else:
        url = _postgres_url()
        admin = sa.create_engine(sa.engine.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{DATABASE}"')
        admin.dispose()
    settings = Settings(
        data_dir=tmp / f"data-{name}", database_url=url, secret_key=SECRET, worker_in_app=False,
        map_index_preload=False,
    )  # fmt: skip
    engine = make_engine(settings)
    try:
        upgrade_database(engine)
        actor = Actor.system("bench")
        with make_sessionmaker(engine)() as session:
            regions.seed_builtin_regions(session, settings=settings)
            regions.import_boundaries(session, settings=settings, data=BOUNDARIES.read_bytes(), actor=actor)
            agencies.seed_default_agencies(session, settings=settings, actor=actor)
            asset_types.seed_default_types(session, actor=actor)
            session.commit()
    finally:
        engine.dispose()
    return settings


def inside_points(settings: Settings, count: int) -> tuple[np.ndarray, dict[str, str]]:
    """(lat, lon) points inside the kabupaten, and each asset type's condition scale."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            kabupaten = shapely.from_geojson(regions.get_region(session, code=settings.region_code).geometry)
            scales = dict(session.execute(sa.select(AssetType.code, AssetType.condition_scale)).all())
    finally:
        engine.dispose()
    # The boundary is shrunk by ~300 m so that the lines drawn around a point keep it inside too.
    inner = kabupaten.buffer(-0.003)
    rng = np.random.default_rng(SEED)
    min_x, min_y, max_x, max_y = inner.bounds
    x = rng.uniform(min_x, max_x, count * 3)
    y = rng.uniform(min_y, max_y, count * 3)
    keep = shapely.contains_xy(inner, x, y)
    points = np.column_stack([y[keep], x[keep]])[:count]
    return points, scales


# --- measuring ---------------------------------------------------------------------------------------------------


def measure_import(settings: Settings, csv_path: Path, count: int) -> dict[str, Any]:
    """Import the file once, with validation, committed; time, rate and memory."""
    engine = make_engine(settings)
    # As `kotacerdas aset import` does it: worker processes check the rows of a large file.
    workers = transfer.auto_workers(count)
    samples: dict[str, float] = {}
    mark = max(count // 10, 1)
    rss_before = rss_mib()

    def progress(done: int) -> None:
        if "rss_at_10pct_mib" not in samples and done >= mark:
            samples["rss_at_10pct_mib"] = rss_mib()
            samples["seconds_at_10pct"] = time.perf_counter() - started

    try:
        with make_sessionmaker(engine)() as session, csv_path.open("rb") as source:
            session.connection(execution_options={"kotacerdas_write": True})
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            result = transfer.import_assets(
                session, settings=settings, actor=Actor.system("bench"), by=None, source=source,
                filename=csv_path.name, progress=progress, workers=workers,
            )  # fmt: skip
            session.commit()
            elapsed = time.perf_counter() - started
            cpu = _cpu_seconds() - cpu_before
        samples["rss_at_100pct_mib"] = rss_mib()
        with engine.connect() as connection:
            stored = connection.execute(sa.select(sa.func.count()).select_from(Asset)).scalar()
    finally:
        engine.dispose()
    if result.errors:
        print(f"bad rows: {[error.as_dict() for error in result.errors[:5]]}", file=sys.stderr)
    return {
        "rows": result.rows,
        "workers": workers,
        "inserted": result.inserted,
        "inspections": result.inspections,
        "bad_rows": result.bad_rows,
        "assets_stored": stored,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(result.rows / elapsed, 1),
        # This process and its (finished) worker processes: on a shared machine, the figure that moves least.
        "cpu_seconds": round(cpu, 1),
        "cpu_ms_per_row": round(cpu * 1000 / max(result.rows, 1), 3),
        "rss_before_mib": rss_before,
        "rss_at_10pct_mib": samples.get("rss_at_10pct_mib"),
        "rss_at_100pct_mib": samples["rss_at_100pct_mib"],
        "rss_growth_10_to_100pct_mib": round(samples["rss_at_100pct_mib"] - samples.get("rss_at_10pct_mib", 0), 1),
        "seconds_first_10pct": round(samples.get("seconds_at_10pct", 0.0), 2),
    }


def raw_insert_floor(settings: Settings, count: int, points: np.ndarray) -> dict[str, Any]:
    """A raw DBAPI executemany INSERT of `count` precomputed point rows into `assets`, one transaction."""
    url = sa.engine.make_url(settings.sqlalchemy_url)
    engine = make_engine(settings)
    with engine.connect() as connection:
        type_id, agency_id = connection.execute(
            sa.select(AssetType.id, AssetType.agency_id).where(AssetType.code == "pju")
        ).one()
    engine.dispose()
    now = datetime.now(UTC)
    postgres = url.get_backend_name() == "postgresql"
    stamp = now if postgres else now.replace(tzinfo=None).isoformat(sep=" ")
    columns = ["type_id", "name", "agency_id", "geometry", "lat", "lon", "min_lat", "min_lon", "max_lat", "max_lon",
               "desa_code", "kecamatan_code", "locate_method", "attributes", "condition", "active", "created_at",
               "updated_at"]  # fmt: skip
    rows = []
    for i in range(count):
        lat, lon = (round(float(v), 6) for v in points[i % len(points)])
        geometry = json.dumps({"type": "Point", "coordinates": [lon, lat]}, separators=(",", ":"))
        rows.append(
            (type_id, f"PJU {i:06d}", agency_id, geometry, lat, lon, lat, lon, lat, lon, "16.05.09.2001", "16.05.09",
             "boundary", '{"jenis_lampu":"LED"}', "berfungsi", True, stamp, stamp)
        )  # fmt: skip
    started = time.perf_counter()
    if postgres:
        import psycopg

        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as connection:
            marks = ", ".join("%s" for _ in columns)
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO assets ({', '.join(columns)}) VALUES ({marks})", rows)
            connection.commit()
    else:
        connection = sqlite3.connect(url.database, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("BEGIN IMMEDIATE")
            marks = ", ".join("?" for _ in columns)
            connection.executemany(f"INSERT INTO assets ({', '.join(columns)}) VALUES ({marks})", rows)
            connection.execute("COMMIT")
        finally:
            connection.close()
    elapsed = time.perf_counter() - started
    return {"rows": count, "seconds": round(elapsed, 2), "rows_per_s": round(count / elapsed, 1)}


def run(quick: bool) -> bool:
    count = 5_000 if quick else 100_000
    backends = ["sqlite"] + (["postgres"] if postgres_available() else [])
    if os.environ.get("KOTACERDAS_BENCH_BACKENDS"):
        backends = [b for b in backends if b in os.environ["KOTACERDAS_BENCH_BACKENDS"].split(",")]
    results: dict[str, Any] = {}
    csv_mb = None
    with tempfile.TemporaryDirectory(prefix="kc-bench-assets-") as folder:
        tmp = Path(folder)
        csv_path = tmp / f"aset-{count}.csv"
        for backend in backends:
            settings = fresh_database(backend, tmp, f"{backend}-import")
            if not csv_path.exists():
                points, scales = inside_points(settings, count)
                started = time.perf_counter()
                write_csv(csv_path, count=count, points=points, scales=scales)
                csv_mb = round(csv_path.stat().st_size / 1e6, 1)
                print(f"csv: {count} rows, {csv_path.stat().st_size / 1e6:.1f} MB in "
                      f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
            imported = measure_import(settings, csv_path, count)
            print(f"{backend}: import {imported}", file=sys.stderr, flush=True)
            floor_settings = fresh_database(backend, tmp, f"{backend}-floor")
            floor = raw_insert_floor(floor_settings, count, points)
            print(f"{backend}: raw executemany floor {floor}", file=sys.stderr, flush=True)
            results[backend] = {"import": imported, "baseline_raw_executemany": floor}

    def met(result: dict[str, Any]) -> bool:
        imported = result["import"]
        return (
            imported["bad_rows"] == 0
            and imported["assets_stored"] == count
            and imported["seconds"] < TARGET_SECONDS
            and imported["rss_growth_10_to_100pct_mib"] < TARGET_RSS_GROWTH_MIB
        )

    passed = bool(results) and all(met(result) for result in results.values())
    write_result(
        "assets_import",
        {
            "quick": quick,
            "rows": count,
            "csv_mb": csv_mb,
            "note": "kotacerdas aset import's service on a CSV with validation, one transaction, fresh database; "
            "RSS sampled at 10 % and 100 % of the rows",
            "peak_rss_mib_at_end": peak_rss_mib(),
            **results,
        },
        targets={
            "seconds": f"< {TARGET_SECONDS:.0f} for 100,000 rows",
            "rss_growth_10_to_100pct_mib": f"< {TARGET_RSS_GROWTH_MIB:.0f}",
        },
        passed=passed,
    )
    return passed
