"""Observation ingest into the store (sensors/store.py) as the SensorThings API calls it (`store.NumericRows`).

`CreateObservations` batches of 1,000 observations, each batch its own transaction (on SQLite holding the writer
queue, as `db.begin_writes` does), while the store grows from 0 to ROWS observations over 10,000 Datastreams. Each
row goes to a random Datastream; times advance so that ROWS observations span one year (10,000,000 rows: one
observation per Datastream about every 53 minutes). The time spent building the rows is taken off the clock.

SQLite: the journal is compacted, as the worker does, in a thread beside the ingest once it holds
`sensor_compact_rows` (1,000,000) observations; a compaction prepares each chunk of `sensor_compact_chunk_rows`
while only reading, then copies it in a transaction holding the writer queue. PostgreSQL: at the same points the
hourly rollup of the rows past its watermark (`store.roll_up`, which the worker runs every 10 s), also in a thread.
The sustained rate is on the wall clock, so the compaction counts where it holds up the ingest. The last million is
left in the journal (the worst case for reads), and bench/current_values.py measures reads on the database left
behind, then compacts it.

Same-run baselines, same rows, same 1,000-row transactions:
- SQLite: the same Python conversion of each row, `executemany` into a plain table with no index or key (what the
  spike measured at 1.17 M rows/s with precomputed tuples).
- PostgreSQL: the same conversion, a binary COPY into an unpartitioned table with no index. Beside it, where a
  batch's time goes (`run_postgres_parts`): the COPY into the store's partitioned, indexed table alone, and the
  current-value upsert alone. The same for SQLite (`run_sqlite_parts`): the journal's INSERTs alone, and the
  current-value upsert alone.

Targets (issue 6): SQLite ≥ 100,000 obs/s sustained and ≥ 50 % of the baseline; PostgreSQL ≥ 50 % of the COPY.

`python -m bench.observation_store [--rows N] [--pg-rows N] [--backends sqlite,postgres] [--chunk-rows N]`
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench.common import write_result
from bench.reports_data import bench_dir, postgres_available
from bench.sensors_data import BenchDatabase
from kotacerdas.db import WRITE_OPTION, make_engine
from kotacerdas.migrate import upgrade_database
from kotacerdas.sensors import store
from kotacerdas.sensors.models import Datastream, ObservedProperty, Sensor, Thing
from kotacerdas.sensors.store import NewObservation

DATASTREAMS = 10_000
BATCH = 1_000
SEGMENT = 1_000_000
START = datetime(2025, 12, 1, tzinfo=UTC)
YEAR_US = 365 * 86_400 * 1_000_000
TARGET_SQLITE = 100_000
PG_DATABASE = "kotacerdas_bench_observations"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


DATABASE = BenchDatabase("observations.db", PG_DATABASE, "data-observations")
# What bench/current_values.py and the runs below call.
sqlite_path, postgres_url, settings_for = DATABASE.sqlite_path, DATABASE.postgres_url, DATABASE.settings_for
fresh_database = DATABASE.fresh


def create_datastreams(engine: sa.Engine) -> list[int]:
    with engine.begin() as connection:
        thing = connection.execute(
            sa.insert(Thing).values(name="Bench", description="", created_at=START, updated_at=START)
            .returning(Thing.id)
        ).scalar_one()  # fmt: skip
        sensor = connection.execute(
            sa.insert(Sensor).values(name="s", description="", encoding_type="text/html", sensor_metadata="")
            .returning(Sensor.id)
        ).scalar_one()  # fmt: skip
        prop = connection.execute(
            sa.insert(ObservedProperty).values(name="p", definition="http://example.org/p", description="")
            .returning(ObservedProperty.id)
        ).scalar_one()  # fmt: skip
        connection.execute(
            sa.insert(Datastream),
            [
                {"name": f"ds {n}", "description": "", "observation_type": MEASUREMENT,
                 "unit_of_measurement": {"symbol": "cm"}, "thing_id": thing, "sensor_id": sensor,
                 "observed_property_id": prop, "created_at": START}
                for n in range(DATASTREAMS)
            ],
        )  # fmt: skip
        return list(connection.execute(sa.select(Datastream.id).order_by(Datastream.id)).scalars())


def batches(rows: int, datastreams: list[int], seed: int = 6):
    """The same batches for the store and its baseline."""
    rng = random.Random(seed)
    step = YEAR_US // rows
    start_us = store.to_us(START)
    for first in range(0, rows, BATCH):
        yield [
            NewObservation(rng.choice(datastreams), start_us + (first + n) * step, round(rng.uniform(100, 400), 1))
            for n in range(min(BATCH, rows - first))
        ]


def numeric(batch: list[NewObservation]) -> store.NumericRows:
    """A batch as the SensorThings API hands plain numbers to the store: columns, times as parsed datetimes."""
    times = [store.from_us(row.phenomenon_time) for row in batch]
    return store.NumericRows([row.datastream_id for row in batch], times, [row.result for row in batch],
                             [None] * len(batch))  # fmt: skip


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_store(backend: str, rows: int, *, chunk_rows: int, compact_rows: int) -> dict[str, Any]:
    fresh_database(backend)
    settings = settings_for(backend, sensor_compact_rows=compact_rows, sensor_compact_chunk_rows=chunk_rows)
    engine = make_engine(settings)
    upgrade_database(engine)
    datastreams = create_datastreams(engine)
    if backend == "postgres":
        _month_partitions(engine)
    segments: list[dict[str, Any]] = []
    compactions: list[dict[str, Any]] = []
    latencies: list[float] = []
    seg_latencies: list[float] = []
    seg_rows = 0
    in_journal = 0
    cpu_started = time.process_time()
    # The compaction (SQLite) or rollup (PostgreSQL) runs in a thread beside the ingest, as the worker's job does in
    # the app, started when the journal holds `compact_rows`; the clock is the wall clock, so its cost is counted
    # where it holds up the ingest (the writer queue, the GIL, the other core).
    worker: threading.Thread | None = None

    def compaction(at_rows: int) -> None:
        stats = store.compact(engine, settings=settings)
        compactions.append({"at_rows": at_rows, "rows": stats.rows, "seconds": round(stats.seconds, 2),
                            "chunks": stats.chunks,
                            "longest_chunk_s": round(stats.longest_chunk_seconds, 2)})  # fmt: skip

    started = seg_started = time.perf_counter()
    done = 0
    # The rows of a batch are built between the timed parts: their building is taken off the clock.
    source = batches(rows, datastreams)
    building = seg_building = 0.0
    while True:
        built = time.perf_counter()
        batch = next(source, None)
        if batch is not None:
            batch = numeric(batch)
        building += time.perf_counter() - built
        seg_building += time.perf_counter() - built
        if batch is None:
            break
        if in_journal >= compact_rows and (worker is None or not worker.is_alive()):
            worker = threading.Thread(target=compaction, args=(done,), daemon=True)
            worker.start()
            in_journal = 0
        began = time.perf_counter()
        with Session(engine) as session:
            session.connection(execution_options={WRITE_OPTION: True})
            store.add_observations(session, batch, settings=settings)
            session.commit()
        took = time.perf_counter() - began
        latencies.append(took)
        seg_latencies.append(took)
        in_journal += len(batch)
        seg_rows += len(batch)
        done += len(batch)
        if seg_rows >= SEGMENT:
            now = time.perf_counter()
            segments.append(_segment(len(segments), seg_rows, now - seg_started - seg_building, seg_latencies))
            seg_rows, seg_started, seg_latencies, seg_building = 0, now, [], 0.0
            print(backend, segments[-1], compactions[-1:] if compactions else "", flush=True)
    if worker is not None:
        worker.join()  # a compaction still running is part of the run
    total_busy = time.perf_counter() - started - building
    if seg_rows:
        segments.append(
            _segment(len(segments), seg_rows, time.perf_counter() - seg_started - seg_building, seg_latencies)
        )
    engine.dispose()
    latencies.sort()
    result = {
        "rows": rows,
        "obs_per_s": round(rows / total_busy),
        "seconds": round(total_busy, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "batch_latency_ms": {"p50": _ms(latencies[len(latencies) // 2]),
                             "p99": _ms(latencies[int(len(latencies) * 0.99)]), "max": _ms(latencies[-1])},
        "segments": segments,
        "load_average_at_end": load_average(),
    }  # fmt: skip
    if backend == "postgres":
        result["rollup"] = {"every_rows": compact_rows, "runs": compactions,
                            "seconds_total": round(sum(c["seconds"] for c in compactions), 1)}  # fmt: skip
    if backend == "sqlite":
        longest = max((c["longest_chunk_s"] for c in compactions), default=0.0)
        result |= {
            "compaction": {"every_rows": compact_rows, "chunk_rows": chunk_rows, "runs": compactions,
                           "seconds_total": round(sum(c["seconds"] for c in compactions), 1),
                           "longest_chunk_s": longest},
            # A batch arriving while a compaction chunk holds the writer queue waits for it.
            "worst_ingest_wait_ms": round((longest + latencies[-1]) * 1000, 1),
            "journal_rows_left": in_journal,
            "database_mb": round(sqlite_path().stat().st_size / 1e6),
        }  # fmt: skip
    return result


def _month_partitions(engine: sa.Engine) -> None:
    """The month partitions the daily maintenance would have created over the year the rows span (PostgreSQL)."""
    with engine.begin() as connection:
        for month in range(14):
            store.create_month_partition(connection, START.year + (START.month - 1 + month) // 12,
                                         (START.month - 1 + month) % 12 + 1)  # fmt: skip


def run_sqlite_parts(rows: int) -> dict[str, Any]:
    """Where a SQLite batch's time goes, as `run_postgres_parts` does for PostgreSQL: the journal's multi-row
    INSERTs alone (`store._insert_rows`), then the current-value upsert from those rows alone, which the issue asks
    for in the insert's transaction, each holding the writer queue. No compaction."""

    def insert(engine: sa.Engine, rows: list[tuple]) -> None:
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
            store._insert_rows(connection.connection.driver_connection, store._SQLITE_NUMBER_INSERT_NO_FEATURE, rows)

    def upsert(engine: sa.Engine, rows: list[tuple]) -> None:
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
            connection.connection.driver_connection.execute(
                store._SQLITE_CURRENT_FROM_JOURNAL, (rows[0][0], rows[-1][0])
            )

    insert_busy, upsert_busy = _time_parts("sqlite", rows, insert, upsert)
    return {"rows": rows, "journal_insert_obs_per_s": round(rows / insert_busy),
            "current_value_upsert_obs_per_s": round(rows / upsert_busy),
            "insert_seconds": round(insert_busy, 1), "upsert_seconds": round(upsert_busy, 1)}  # fmt: skip


def run_postgres_parts(rows: int) -> dict[str, Any]:
    """Where a PostgreSQL batch's time goes: the binary COPY into the store's own table alone (month partitions, the
    primary key (datastream_id, phenomenon_time, id) and the id index), then the current-value upsert alone
    (`store._upsert_current_postgres`, about 950 Datastreams per batch), which the issue asks for in the insert's
    transaction."""

    def copy_in(engine: sa.Engine, rows: list[tuple]) -> None:
        with engine.begin() as connection:
            raw = connection.connection.driver_connection
            with raw.cursor() as cursor, cursor.copy(
                "COPY sensor_observations (id, datastream_id, phenomenon_time, result_type, result_number) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:  # fmt: skip
                copy.set_types(["int8", "int4", "timestamptz", "int2", "float8"])
                for oid, ds, t, rtype, number in rows:
                    copy.write_row((oid, ds, store.from_us(t), rtype, number))

    def upsert(engine: sa.Engine, rows: list[tuple]) -> None:
        with engine.begin() as connection, connection.connection.driver_connection.cursor() as cursor:
            store._upsert_current_postgres(cursor, ((ds, oid, t, rtype, n, None) for oid, ds, t, rtype, n in rows))

    copy_busy, upsert_busy = _time_parts("postgres", rows, copy_in, upsert)
    return {"rows": rows, "copy_into_store_table_obs_per_s": round(rows / copy_busy),
            "current_value_upsert_obs_per_s": round(rows / upsert_busy),
            "copy_seconds": round(copy_busy, 1), "upsert_seconds": round(upsert_busy, 1)}  # fmt: skip


def _time_parts(backend: str, rows: int, insert: Any, upsert: Any) -> tuple[float, float]:
    """On a fresh store, the store run's batches as (id, Datastream, time µs, type, number) rows, each through
    `insert(engine, rows)` and then `upsert(engine, rows)`, each in its own transactions: the seconds of each."""
    fresh_database(backend)
    engine = make_engine(settings_for(backend))
    upgrade_database(engine)
    datastreams = create_datastreams(engine)
    if backend == "postgres":
        _month_partitions(engine)
    insert_busy = upsert_busy = 0.0
    next_id = 1
    for batch in batches(rows, datastreams):
        converted = [(next_id + n, *row) for n, row in enumerate(_converted(batch))]
        next_id += len(converted)
        began = time.perf_counter()
        insert(engine, converted)
        middle = time.perf_counter()
        upsert(engine, converted)
        insert_busy += middle - began
        upsert_busy += time.perf_counter() - middle
    engine.dispose()
    return insert_busy, upsert_busy


def _segment(index: int, rows: int, busy: float, latencies: list[float]) -> dict[str, Any]:
    return {"segment": f"{index}-{index + 1}M", "rows": rows, "obs_per_s": round(rows / busy),
            "max_batch_ms": _ms(max(latencies))}  # fmt: skip


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- baselines ---------------------------------------------------------------------------------------------------


def _converted(batch: list[NewObservation]) -> list[tuple]:
    """The conversion every stored row gets (the store's own helpers)."""
    out = []
    for index, row in enumerate(batch):
        result_type, number, _value = store._split_result(index, row.result)
        out.append((row.datastream_id, store.to_us(row.phenomenon_time), result_type, number))
    return out


def run_baseline(backend: str, rows: int) -> dict[str, Any]:
    datastreams = list(range(1, DATASTREAMS + 1))
    cpu_started = time.process_time()
    busy = 0.0
    if backend == "sqlite":
        path = bench_dir() / "observations-baseline.db"
        for suffix in ("", "-wal", "-shm", "-writer.lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = make_engine(settings_for("sqlite").model_copy(update={"database_url": f"sqlite:///{path}"}))
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE plain (datastream_id INTEGER, phenomenon_time INTEGER, result_type INTEGER, "
                "result_number REAL)"
            )
        for batch in batches(rows, datastreams):
            began = time.perf_counter()
            with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
                raw = connection.connection.driver_connection
                raw.executemany("INSERT INTO plain VALUES (?,?,?,?)", _converted(batch))
            busy += time.perf_counter() - began
        engine.dispose()
        path.unlink(missing_ok=True)
        what = "executemany into a table with no index, same conversion, 1,000-row transactions"
    else:
        engine = make_engine(settings_for("postgres"))
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS bench_plain")
            connection.exec_driver_sql(
                "CREATE TABLE bench_plain (datastream_id int4, phenomenon_time timestamptz, result_type int2, "
                "result_number float8)"
            )
        for batch in batches(rows, datastreams):
            began = time.perf_counter()
            with engine.begin() as connection:
                raw = connection.connection.driver_connection
                with raw.cursor() as cursor, cursor.copy(
                    "COPY bench_plain FROM STDIN (FORMAT BINARY)"
                ) as copy:  # fmt: skip
                    copy.set_types(["int4", "timestamptz", "int2", "float8"])
                    for ds, t, rtype, number in _converted(batch):
                        copy.write_row((ds, store.from_us(t), rtype, number))
            busy += time.perf_counter() - began
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE bench_plain")
        engine.dispose()
        what = "binary COPY into an unpartitioned table with no index, same conversion, 1,000-row transactions"
    return {"rows": rows, "obs_per_s": round(rows / busy), "seconds": round(busy, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1), "what": what}  # fmt: skip


def _figures(measured: dict[str, Any], baseline: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """A backend's figures: the store run, its baseline, the parts, and each one's share of the baseline."""
    base = baseline["obs_per_s"]
    return {"store": measured, "baseline": baseline, "share_of_baseline": round(measured["obs_per_s"] / base, 3),
            "parts": parts,
            "parts_share_of_baseline": {name.removesuffix("_obs_per_s"): round(value / base, 3)
                                        for name, value in parts.items() if name.endswith("_obs_per_s")}}  # fmt: skip


def measure(rows: int, pg_rows: int, backends: list[str], *, chunk_rows: int, compact_rows: int, quick: bool) -> bool:
    figures: dict[str, Any] = {"quick": quick, "load_average_at_start": load_average(), "batch": BATCH,
                               "datastreams": DATASTREAMS}  # fmt: skip
    passed = True
    if "sqlite" in backends:
        baseline = run_baseline("sqlite", rows)
        print("sqlite baseline", baseline, flush=True)
        # The parts first: they use the store's database too, which the store run leaves to bench/current_values.py.
        parts = run_sqlite_parts(rows)
        print("sqlite parts", parts, flush=True)
        measured = run_store("sqlite", rows, chunk_rows=chunk_rows, compact_rows=compact_rows)
        figures["sqlite"] = _figures(measured, baseline, parts)
        passed &= measured["obs_per_s"] >= TARGET_SQLITE and figures["sqlite"]["share_of_baseline"] >= 0.5
    if "postgres" in backends and postgres_available():
        parts = run_postgres_parts(pg_rows)
        print("postgres parts", parts, flush=True)
        measured = run_store("postgres", pg_rows, chunk_rows=chunk_rows, compact_rows=compact_rows)
        baseline = run_baseline("postgres", pg_rows)
        print("postgres baseline", baseline, flush=True)
        figures["postgres"] = _figures(measured, baseline, parts)
        passed &= figures["postgres"]["share_of_baseline"] >= 0.5
    figures["load_average_at_end"] = load_average()
    write_result(
        "observation_store",
        figures,
        targets={"sqlite_obs_per_s": f">= {TARGET_SQLITE:,} sustained 0 → {rows:,}",
                 "sqlite_share_of_plain_insert": ">= 0.5", "postgres_share_of_binary_copy": ">= 0.5"},
        passed=passed,
    )  # fmt: skip
    return passed


def run(quick: bool) -> bool:
    rows = 50_000 if quick else 10_000_000
    return measure(rows, rows, ["sqlite", "postgres"], chunk_rows=1_000_000,
                   compact_rows=20_000 if quick else 1_000_000, quick=quick)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--pg-rows", type=int, default=None, help="PostgreSQL rows (default: --rows)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--compact-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    measure(args.rows, args.pg_rows or args.rows, args.backends.split(","), chunk_rows=args.chunk_rows,
            compact_rows=args.compact_rows, quick=False)  # fmt: skip


if __name__ == "__main__":
    main()
