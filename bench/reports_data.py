"""A database with many realistic citizen reports, for the reports benchmarks; seeded once and reused.

`bench_database(backend, count)` returns Settings for a migrated database holding exactly `count` reports (the
rows a benchmark added in an earlier run are removed first), seeding it when it is missing: the Musi Rawas
regions with their real boundaries, the default OPDs and categories, then the reports in bulk (SQLite:
executemany in large transactions; PostgreSQL: COPY). Where the reports lie, what they are and how far they got:

- around the centres of the 199 desa/kelurahan (weighted, kelurahan busier), spread by about 1.3 km, located to
  their real desa and kecamatan with the regions locator; points that fall outside the kabupaten are drawn again;
- every category (weighted), types and sources in plausible shares; two years of dates, in id order;
- status by age: the last days mostly new or in progress, older ones mostly resolved or closed, with a backlog;
  the workflow timestamps and deadlines that go with the status; a rating on a third of the resolved ones;
- about 10 % anonymous (public position = the desa's centre, as the service does it), 2 % confidential,
  0.3 % hidden; contact details on most; two timeline entries per report (submitted, then the current status).

Cached where `KOTACERDAS_BENCH_DATA_DIR` says (default: the system's temporary folder, `kotacerdas-bench/`):
SQLite as `reports-COUNT.db`; PostgreSQL as the database `kotacerdas_bench_COUNT` on the server of
`KOTACERDAS_BENCH_POSTGRES_URL` (default: `KOTACERDAS_TEST_POSTGRES_URL`, else the local server), created if missing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from bench.common import SHARED_DATA
from kotacerdas.accounts.service import Actor
from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database
from kotacerdas.regions import service as regions
from kotacerdas.reports import service as reports
from kotacerdas.reports.enums import ReportStatus
from kotacerdas.reports.models import Report, ReportCategory, ReportUpdate

BOUNDARIES = SHARED_DATA / "wilayah-16.05.geojson"
SEED = 1605
# Bump when the generated data changes: cached databases of another version are seeded again.
DATA_VERSION = 2
CHUNK = 50_000
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret-" + "x" * 32
YEARS = 2
SPREAD_DEG = 0.012  # about 1.3 km
DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000

REPORT_COLUMNS = [c.name for c in Report.__table__.columns]
UPDATE_COLUMNS = [c.name for c in ReportUpdate.__table__.columns]

# (status, kind of its timeline entry); the order of ReportStatus.
STATUS_KIND = {
    "baru": None,
    "terverifikasi": "verified",
    "didisposisikan": "disposed",
    "ditindaklanjuti": "followed_up",
    "selesai": "resolved",
    "ditolak": "rejected",
    "bukan_wewenang": "not_authority",
    "duplikat": "duplicate",
    "diarsipkan": "archived",
}
STATUSES = [status.value for status in ReportStatus]
# Status shares by age of the report: (max age in days, shares in the order of STATUSES).
STATUS_BY_AGE = (
    (3, (0.70, 0.12, 0.10, 0.05, 0.01, 0.01, 0.00, 0.01, 0.00)),
    (14, (0.15, 0.10, 0.25, 0.30, 0.12, 0.03, 0.02, 0.03, 0.00)),
    (60, (0.03, 0.03, 0.10, 0.22, 0.48, 0.05, 0.03, 0.05, 0.01)),
    (10_000, (0.01, 0.01, 0.02, 0.03, 0.70, 0.08, 0.04, 0.06, 0.05)),
)
CATEGORY_WEIGHTS = {
    "jalan-rusak": 22,
    "jembatan-rusak": 3,
    "drainase-tersumbat": 12,
    "genangan-banjir": 7,
    "pju-mati": 14,
    "sampah-menumpuk": 15,
    "air-bersih": 8,
    "fasilitas-kesehatan": 4,
    "fasilitas-pendidikan": 4,
    "ketertiban-umum": 5,
    "administrasi-kependudukan": 4,
    "lainnya": 2,
}
DESCRIPTIONS = (
    "Jalan berlubang cukup dalam, membahayakan pengendara motor terutama malam hari.",
    "Saluran air tersumbat sampah, air meluap ke badan jalan saat hujan.",
    "Lampu jalan mati sudah lebih dari seminggu, jalan gelap gulita.",
    "Sampah menumpuk di pinggir jalan dan belum diangkut petugas.",
    "Air PDAM tidak mengalir sejak tiga hari yang lalu.",
    "Jembatan kayu rapuh, beberapa papan sudah patah.",
    "Genangan air setinggi lutut setelah hujan deras, rumah warga terendam.",
    "Puskesmas pembantu tutup pada jam pelayanan, tidak ada petugas.",
    "Atap ruang kelas sekolah dasar bocor dan plafon hampir runtuh.",
    "Pedagang berjualan di bahu jalan sehingga lalu lintas macet setiap pagi.",
    "Pengurusan KTP elektronik belum selesai padahal sudah lebih dari sebulan.",
    "Pohon tumbang menutup sebagian jalan desa.",
)
STREETS = ("Jl. Lintas Sumatera", "Jl. Merdeka", "Jl. Sudirman", "Jl. Pembangunan", "Jl. Poros Desa", "Jl. Pasar")
NAMES = ("Siti", "Budi", "Ahmad", "Dewi", "Rudi", "Wati", "Agus", "Sri", "Joko", "Nur", "Hendra", "Yanti")
NOTES = {
    "verified": "Laporan telah diverifikasi.",
    "disposed": "Laporan diteruskan ke OPD terkait.",
    "followed_up": "Petugas akan meninjau lokasi dan menjadwalkan perbaikan.",
    "resolved": "Perbaikan telah selesai dikerjakan.",
    "rejected": "Laporan tidak dapat ditindaklanjuti karena informasi tidak lengkap.",
    "not_authority": "Lokasi merupakan kewenangan pemerintah provinsi.",
    "duplicate": "Masalah ini sudah dilaporkan sebelumnya.",
    "archived": "Laporan diarsipkan karena tidak ada tanggapan pelapor.",
}


def bench_dir() -> Path:
    """Where cached benchmark databases live."""
    path = Path(os.environ.get("KOTACERDAS_BENCH_DATA_DIR") or Path(tempfile.gettempdir()) / "kotacerdas-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def postgres_url(count: int) -> str:
    """The URL of the benchmark database for `count` reports (the database may not exist yet)."""
    server = os.environ.get("KOTACERDAS_BENCH_POSTGRES_URL") or os.environ.get(
        "KOTACERDAS_TEST_POSTGRES_URL", DEFAULT_POSTGRES
    )
    return sa.engine.make_url(server).set(database=f"kotacerdas_bench_{count}").render_as_string(hide_password=False)


def settings_for(backend: str, count: int, **overrides: Any) -> Settings:
    """Settings of the cached benchmark database of `backend` ("sqlite" or "postgres") with `count` reports."""
    if backend == "sqlite":
        url = f"sqlite:///{bench_dir() / f'reports-{count}.db'}"
    elif backend == "postgres":
        url = postgres_url(count)
    else:
        raise ValueError(backend)
    return Settings(
        data_dir=bench_dir() / f"data-{backend}-{count}",
        database_url=url,
        secret_key=SECRET,
        worker_in_app=False,
        **overrides,
    )


def postgres_available() -> bool:
    """Whether the PostgreSQL server for the benchmarks answers."""
    try:
        engine = sa.create_engine(postgres_url(0).rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except sa.exc.SQLAlchemyError:
        return False


def _create_postgres_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(sa.engine.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
        if not exists:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()


def _drop_postgres_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(sa.engine.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def bench_database(backend: str, count: int, **overrides: Any) -> tuple[Settings, dict[str, Any]]:
    """Settings of a migrated database with exactly `count` reports (seeded now if needed), and how it was got."""
    settings = settings_for(backend, count, **overrides)
    if backend == "postgres":
        _create_postgres_database(settings.sqlalchemy_url)
    # Written when a seed finished: the version of the data and the database it went into.
    marker = bench_dir() / f"reports-{backend}-{count}.json"
    expected = {"version": DATA_VERSION, "database": settings.sqlalchemy_url}
    engine = make_engine(settings)
    try:
        upgrade_database(engine)
        with engine.connect() as connection:
            stored = connection.execute(sa.select(sa.func.max(Report.id))).scalar() or 0
        if stored >= count and marker.is_file() and json.loads(marker.read_text()) == expected:
            trimmed = trim_to_seed(engine, count)
            return settings, {"seeded_now": False, "trimmed_rows": trimmed}
    finally:
        engine.dispose()
    marker.unlink(missing_ok=True)
    # Missing or half seeded (an interrupted run): start from an empty database.
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
        seed(engine, settings=settings, count=count)
        marker.write_text(json.dumps(expected))
        return settings, {"seeded_now": True, "seed_seconds": round(time.perf_counter() - started, 1)}
    finally:
        engine.dispose()


def trim_to_seed(engine: sa.Engine, count: int) -> int:
    """Remove what benchmarks added after the seed (reports beyond `count`, their timeline, audit and outbox rows);
    returns how many reports were removed."""
    with engine.begin() as connection:
        extra = connection.execute(sa.select(sa.func.count()).select_from(Report).where(Report.id > count)).scalar()
        if not extra:
            return 0
        for table in ("report_photos", "report_followers", "report_updates"):
            connection.exec_driver_sql(f"DELETE FROM {table} WHERE report_id > {int(count)}")
        connection.exec_driver_sql(f"DELETE FROM reports WHERE id > {int(count)}")
        connection.exec_driver_sql("DELETE FROM audit_log WHERE entity_type = 'report'")
        connection.exec_driver_sql("DELETE FROM outbox_messages")
        if engine.dialect.name == "postgresql":
            _set_sequences(connection)
    return int(extra)


def _set_sequences(connection: sa.Connection) -> None:
    for table in ("reports", "report_updates", "audit_log", "outbox_messages"):
        connection.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, "
            "false)"
        )


# --- seeding --------------------------------------------------------------------------------------------------


def seed(engine: sa.Engine, *, settings: Settings, count: int) -> None:
    """Regions with boundaries, OPDs, categories, then `count` reports with their timeline entries."""
    actor = Actor.system("bench")
    with make_sessionmaker(engine)() as session:
        regions.seed_builtin_regions(session, settings=settings)
        regions.import_boundaries(session, settings=settings, data=BOUNDARIES.read_bytes(), actor=actor)
        agencies.seed_default_agencies(session, settings=settings, actor=actor)
        reports.seed_default_categories(session, actor=actor)
        session.commit()
        categories = session.execute(
            sa.select(ReportCategory.id, ReportCategory.code, ReportCategory.agency_id, ReportCategory.resolution_days)
        ).all()
        villages = [
            feature
            for level in ("desa", "kelurahan")
            for feature in regions.regions_geojson(session, level=level)["features"]
        ]
        kabupaten = shapely.from_geojson(regions.get_region(session, code=settings.region_code).geometry)
        shapely.prepare(kabupaten)
        centroids = _centroids(session)
        rng = np.random.default_rng(SEED)
        lat, lon, desa, kecamatan = _positions(session, settings, villages, kabupaten, count, rng)
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    columns = _reports(settings, count, rng, now_us, lat, lon, desa, kecamatan, categories, centroids)
    _insert_all(engine, columns, count)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            _set_sequences(connection)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")


def _centroids(session) -> dict[str, tuple[float, float]]:
    from kotacerdas.regions.models import Region

    return {
        row.code: (row.centroid_lat, row.centroid_lon)
        for row in session.execute(sa.select(Region.code, Region.centroid_lat, Region.centroid_lon))
    }


def _positions(session, settings, villages, kabupaten, count, rng):
    """Points around the village centres, inside the kabupaten, with the desa and kecamatan they fall in."""
    centres = np.array([f["properties"]["centroid"][::-1] for f in villages], dtype=float)  # (lat, lon)
    weights = rng.lognormal(0.0, 1.0, len(villages))
    weights *= np.array([3.0 if f["properties"]["level"] == "kelurahan" else 1.0 for f in villages])
    weights /= weights.sum()
    lat = np.empty(count)
    lon = np.empty(count)
    todo = np.arange(count)
    while todo.size:
        pick = rng.choice(len(villages), size=todo.size, p=weights)
        lat[todo] = centres[pick, 0] + rng.normal(0.0, SPREAD_DEG, todo.size)
        lon[todo] = centres[pick, 1] + rng.normal(0.0, SPREAD_DEG, todo.size)
        todo = todo[~shapely.contains_xy(kabupaten, lon[todo], lat[todo])]
    desa = np.empty(count, dtype=object)
    kecamatan = np.empty(count, dtype=object)
    for start in range(0, count, 200_000):
        part = slice(start, min(start + 200_000, count))
        found = regions.locate_many(session, settings=settings, points=np.column_stack([lat[part], lon[part]]))
        desa[part] = found.desa_code
        kecamatan[part] = found.kecamatan_code
    return lat, lon, desa, kecamatan


def _choice(rng, shares, size) -> np.ndarray:
    shares = np.asarray(shares, dtype=float)
    return rng.choice(len(shares), size=size, p=shares / shares.sum())


def _reports(settings, count, rng, now_us, lat, lon, desa, kecamatan, categories, centroids) -> dict[str, Any]:
    """Every column of `count` reports as numpy arrays (times in microseconds since 1970, -1 for none)."""
    span_us = YEARS * 365 * DAY_US
    created = np.sort(now_us - rng.integers(0, span_us, count))
    # Most reports are sent in the day, local time.
    created -= created % DAY_US
    created += ((rng.normal(13.0, 3.5, count).clip(0, 23.99) - 7) * HOUR_US).astype(np.int64)
    created += rng.integers(0, HOUR_US, count)
    created = np.sort(np.minimum(created, now_us - 60_000_000))
    age_days = (now_us - created) / DAY_US
    status = np.empty(count, dtype=np.int64)
    low = 0.0
    for limit, shares in STATUS_BY_AGE:
        chosen = (age_days >= low) & (age_days < limit)
        status[chosen] = _choice(rng, shares, int(chosen.sum()))
        low = limit
    code_weights = np.array([CATEGORY_WEIGHTS.get(row.code, 1) for row in categories], dtype=float)
    category = _choice(rng, code_weights, count)
    category_ids = np.array([row.id for row in categories])[category]
    agency_ids = np.array([row.agency_id or -1 for row in categories])[category]
    resolution_days = np.array([row.resolution_days for row in categories])[category]

    def later(start, low_h, high_h):
        step = start + rng.integers(int(low_h * HOUR_US), int(high_h * HOUR_US), count)
        # A step that would lie in the future happened somewhere between the start and now instead.
        squeezed = start + ((now_us - start) * rng.random(count)).astype(np.int64)
        return np.where(step < now_us, step, squeezed)

    s = status
    verified = np.where(s >= 1, later(created, 1, 72), -1)
    disposed = np.where((s >= 2) & (s != 5) & (s != 6) | (s == 4), later(np.maximum(verified, created), 1, 48), -1)
    followed = np.where((s == 3) | (s == 4), later(np.maximum(disposed, created), 12, 168), -1)
    resolved = np.where(s == 4, later(np.maximum(followed, created), 24, 480), -1)
    closed = np.where(s >= 4, np.where(s == 4, resolved, later(np.maximum(verified, created), 2, 240)), -1)
    last = np.maximum.reduce([created, verified, disposed, followed, resolved, closed])
    verify_due = created + 5 * DAY_US
    follow_up_due = np.where(disposed >= 0, disposed + 7 * DAY_US, -1)
    resolve_due = np.where(disposed >= 0, disposed + 7 * DAY_US + (resolution_days * 1.4 * DAY_US).astype(np.int64), -1)

    anonymous = rng.random(count) < 0.10
    confidential = rng.random(count) < 0.02
    hidden = rng.random(count) < 0.003
    public_lat = lat.copy()
    public_lon = lon.copy()
    for i in np.flatnonzero(anonymous):
        centre = centroids.get(desa[i]) or centroids.get(kecamatan[i])
        if not centre or centre[0] is None:
            centre = (round(lat[i], 2), round(lon[i], 2))
        public_lat[i], public_lon[i] = centre
    rated = (s == 4) & (rng.random(count) < 0.33)
    duplicate_of = np.where(s == 7, np.maximum(np.arange(1, count + 1) - rng.integers(1, 5000, count), 1), -1)
    return {
        "created": created, "status": status, "category_id": category_ids, "agency_id": agency_ids,
        "verified": verified, "disposed": disposed, "followed": followed, "resolved": resolved, "closed": closed,
        "updated": last, "verify_due": verify_due, "follow_up_due": follow_up_due, "resolve_due": resolve_due,
        "lat": lat, "lon": lon, "public_lat": public_lat, "public_lon": public_lon, "desa": desa,
        "kecamatan": kecamatan, "anonymous": anonymous, "confidential": confidential, "hidden": hidden,
        "rated": rated, "rating": rng.integers(1, 6, count), "duplicate_of": duplicate_of,
        "type": _choice(rng, (0.7, 0.2, 0.1), count), "source": _choice(rng, (0.7, 0.2, 0.1), count),
        "description": rng.integers(0, len(DESCRIPTIONS), count), "name": rng.integers(-3, len(NAMES), count),
        "email": rng.random(count) < 0.6, "phone": rng.random(count) < 0.5,
        "client": np.where(rng.random(count) < 0.8, rng.integers(0, 20_000, count), -1),
        "street": rng.integers(0, len(STREETS), count), "number": rng.integers(1, 200, count),
    }  # fmt: skip


def _times(values: np.ndarray, postgres: bool) -> list[str | None]:
    """Microseconds since 1970 as the text each database stores (naive UTC on SQLite, as SQLAlchemy writes it)."""
    text = np.datetime_as_string(np.maximum(values, 0).astype("datetime64[us]"), unit="us")
    text = np.char.replace(text, "T", " ")
    if postgres:
        text = np.char.add(text, "+00")
    out = text.tolist()
    for i in np.flatnonzero(values < 0).tolist():
        out[i] = None
    return out


def _insert_all(engine: sa.Engine, c: dict[str, Any], count: int) -> None:
    """Insert the reports and their timeline in chunks."""
    postgres = engine.dialect.name == "postgresql"
    # The tracking code's year is the local (WIB) year of submission.
    local_year = (c["created"] + 7 * HOUR_US).astype("datetime64[us]").astype("datetime64[Y]").astype(int) + 1970
    types = ("pengaduan", "aspirasi", "permintaan_informasi")
    sources = ("web", "api", "open311")
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if not postgres:
            driver.execute("PRAGMA synchronous=OFF")  # seeding only; the benchmarks run with FULL
        update_id = 0
        started = time.perf_counter()
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            part = slice(start, stop)
            times = {
                key: _times(c[key][part], postgres)
                for key in ("created", "updated", "verified", "disposed", "followed", "resolved", "closed",
                            "verify_due", "follow_up_due", "resolve_due")
            }  # fmt: skip
            rows = []
            updates = []
            for j, i in enumerate(range(start, stop)):
                report_id = i + 1
                status = STATUSES[c["status"][i]]
                kind = STATUS_KIND[status]
                code = f"MR-{local_year[i]}-{report_id:06d}"  # as reports.service.tracking_code
                name_index = c["name"][i]
                name = f"{NAMES[name_index]} Warga{i % 997}" if name_index >= 0 else None
                note = NOTES.get(kind) if kind else None
                row = {
                    "id": report_id,
                    "tracking_code": code,
                    "category_id": int(c["category_id"][i]),
                    "type": types[c["type"][i]],
                    "status": status,
                    "source": sources[c["source"][i]],
                    "description": DESCRIPTIONS[c["description"][i]],
                    "address": f"{STREETS[c['street'][i]]} No. {c['number'][i]}",
                    "lat": float(c["lat"][i]),
                    "lon": float(c["lon"][i]),
                    "public_lat": float(c["public_lat"][i]),
                    "public_lon": float(c["public_lon"][i]),
                    "desa_code": c["desa"][i],
                    "kecamatan_code": c["kecamatan"][i],
                    "asset_id": None,
                    "locate_method": "boundary",
                    "attributes": None,
                    "agency_id": int(c["agency_id"][i]) if c["agency_id"][i] >= 0 else None,
                    "assignee_id": None,
                    "duplicate_of_id": int(c["duplicate_of"][i]) if c["duplicate_of"][i] > 0 else None,
                    "reporter_name": name,
                    "reporter_email": f"warga{i}@example.id" if c["email"][i] else None,
                    "reporter_phone": f"0812{i:08d}" if c["phone"][i] else None,
                    "reporter_locale": "id",
                    "reporter_pin_hash": "0" * 64,
                    "client_key": f"{c['client'][i]:040x}" if c["client"][i] >= 0 else None,
                    "anonymous": bool(c["anonymous"][i]),
                    "confidential": bool(c["confidential"][i]),
                    "hidden": bool(c["hidden"][i]),
                    "hidden_reason": "Berisi data pribadi." if c["hidden"][i] else None,
                    "follow_up_plan": NOTES["followed_up"] if times["followed"][j] else None,
                    "resolution_note": NOTES["resolved"] if status == "selesai" else None,
                    "close_reason": note if status in ("ditolak", "bukan_wewenang", "duplikat", "diarsipkan") else None,
                    "rating": int(c["rating"][i]) if c["rated"][i] else None,
                    "rating_comment": None,
                    "rated_at": times["updated"][j] if c["rated"][i] else None,
                    "reopen_count": 0,
                    "created_at": times["created"][j],
                    "updated_at": times["updated"][j],
                    "verified_at": times["verified"][j],
                    "disposed_at": times["disposed"][j],
                    "followed_up_at": times["followed"][j],
                    "resolved_at": times["resolved"][j],
                    "closed_at": times["closed"][j],
                    "verify_due_at": times["verify_due"][j],
                    "follow_up_due_at": times["follow_up_due"][j],
                    "resolve_due_at": times["resolve_due"][j],
                    "verify_breached_at": None,
                    "follow_up_breached_at": None,
                    "resolve_breached_at": None,
                }
                rows.append(tuple(row[name] for name in REPORT_COLUMNS))
                agency = row["agency_id"]
                update_id += 1
                updates.append((update_id, report_id, "submitted", None, "baru", None, None, agency, None, "warga",
                                row["created_at"]))  # fmt: skip
                if kind:
                    update_id += 1
                    updates.append((update_id, report_id, kind, "baru", status, note, None, agency, None, "bench",
                                    row["updated_at"]))  # fmt: skip
            if not postgres:
                driver.execute("BEGIN")
            _write(driver, "reports", REPORT_COLUMNS, rows, postgres)
            _write(driver, "report_updates", UPDATE_COLUMNS, updates, postgres)
            driver.commit()
            done = stop
            rate = done / (time.perf_counter() - started)
            print(f"seeded {done:,} of {count:,} reports ({rate:,.0f}/s)", file=sys.stderr, flush=True)
        if not postgres:
            driver.execute("PRAGMA synchronous=FULL")
    finally:
        raw.close()


def _write(driver, table: str, columns: list[str], rows: list[tuple], postgres: bool) -> None:
    if postgres:
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in columns)
        driver.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def main() -> None:
    """`python -m bench.reports_data BACKEND COUNT`: seed (or check) a cached benchmark database."""
    backend, count = sys.argv[1], int(sys.argv[2])
    settings, info = bench_database(backend, count)
    print(json.dumps({"database": settings.sqlalchemy_url, **info}))


if __name__ == "__main__":
    main()
