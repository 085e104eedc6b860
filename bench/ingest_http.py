"""HTTP ingest: SensorThings `CreateObservations` batches of 1,000 over HTTP while the store grows 0 → ROWS.

A real `kotacerdas serve` (uvicorn, bench/server.py) with its background worker in the process, as on one machine:
the worker's job merges the SQLite journal (sensors/store.py `compact_if_due`, every second once the journal holds
`sensor_compact_rows`), so the sustained rate counts the compaction in. SQLite is measured a second time as a busy
single machine runs (docs/operations.md): `serve --workers 2`, one process per core, with twice the clients, and
the worker in a `kotacerdas worker` process of its own; the absolute target is judged on the faster of the two.
The database is fresh: an admin's API token, one Thing with a Location (the FeatureOfInterest is derived from it)
and DATASTREAMS Datastreams of water level.

Each observation goes to a random Datastream (the same spread as bench/observation_store.py: a batch touches about
950 Datastreams, the hardest case for the current values and the clustered segments); times advance so that ROWS
observations span the year before today. A body groups its rows by Datastream (one dataArray group per Datastream,
components phenomenonTime and result). CLIENTS client processes build their bodies before the clock starts, then
POST them one after another on a keep-alive connection (http.client) and check every answer is 201 with 1,000 ids.
A 503 (the writer queue held past its timeout) is retried as a device would, after its Retry-After capped at a
second, and counted in the result. At the end the stored observations are counted: every acknowledged observation
is there, once.

Same-run baselines, the same rows (id, Datastream, time µs, result type, number, FeatureOfInterest id), converted
before the clock starts, in 1,000-row transactions:
- SQLite: the same driver (sqlite3, WAL, synchronous=FULL as the app runs) `executemany` into a plain table with
  no index or key: the append-only bulk insert of the issue.
- PostgreSQL: a binary COPY (psycopg) into an unpartitioned table with no index.
- SQLite, HTTP ceiling: the same clients and bodies against bench/http_ceiling.py, a bare ASGI app under the same
  uvicorn that only parses, converts the times, appends to a plain table and commits (2,000,000 rows). It bounds
  what any Python HTTP ingest can reach on this machine, whatever its storage.

Targets (issue 6): SQLite ≥ 100,000 observations/s sustained 0 → 10M and ≥ 50 % of the baseline; PostgreSQL
≥ 50 % of the COPY. The load average is recorded at the start and the end (the machine is shared).

`python -m bench.ingest_http [--rows N] [--pg-rows N] [--backends sqlite,postgres] [--clients N] [--workers N]`
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench.common import write_result
from bench.reports_data import bench_dir, postgres_available
from bench.sensors_data import BenchDatabase
from bench.server import start_server, start_worker, stop
from kotacerdas.accounts import service as accounts
from kotacerdas.config import Settings
from kotacerdas.db import WRITE_OPTION, make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database
from kotacerdas.sensors import store
from kotacerdas.sensors.models import Datastream, Location, ObservedProperty, Sensor, Thing, ThingLocation

DATASTREAMS = 10_000
BATCH = 1_000
SEGMENT = 1_000_000
TARGET_OBS_S = 100_000
TARGET_SHARE = 0.5
# The HTTP ceiling appends to a plain table, whose rate does not fall as it grows: 2,000,000 rows tell it.
CEILING_ROWS = 2_000_000
PG_DATABASE = "kotacerdas_bench_ingest_http"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
PATH = "/sensorthings/v1.1/CreateObservations"


def _start() -> datetime:
    """The first observation's time: a year and a day before today (the API refuses times a day ahead)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=367)


DATABASE = BenchDatabase("ingest-http.db", PG_DATABASE, "data-ingest-http")
# What bench/current_values.py and the runs below call.
sqlite_path, postgres_url, settings_for = DATABASE.sqlite_path, DATABASE.postgres_url, DATABASE.settings_for
fresh_database = DATABASE.fresh


def seed(settings: Settings, start: datetime, rows: int) -> tuple[str, list[int], int]:
    """An admin's API token, the Datastreams' ids and the FeatureOfInterest id their rows will get."""
    engine = make_engine(settings)
    upgrade_database(engine)
    actor = accounts.Actor.system("bench")
    with make_sessionmaker(engine)() as session:
        user = accounts.create_user(
            session, actor=actor, username="ingest", full_name="Ingest", password="rahasia-bench-123", role="admin"
        )
        _token, plain = accounts.create_api_token(session, actor=actor, user_id=user.id, name="bench")
        thing = Thing(name="Bench gateway")
        location = Location(name="Pos", location={"type": "Point", "coordinates": [102.87, -3.29]}, lat=-3.29,
                            lon=102.87)  # fmt: skip
        sensor = Sensor(name="Radar", encoding_type="text/html")
        prop = ObservedProperty(name="Tinggi muka air", definition="http://example.org/water-level")
        session.add_all([thing, location, sensor, prop])
        session.flush()
        session.add(ThingLocation(thing_id=thing.id, location_id=location.id))
        session.execute(
            sa.insert(Datastream),
            [
                {"name": f"ds {n}", "description": "", "observation_type": MEASUREMENT,
                 "unit_of_measurement": {"symbol": "cm"}, "thing_id": thing.id, "sensor_id": sensor.id,
                 "observed_property_id": prop.id}
                for n in range(DATASTREAMS)
            ],
        )  # fmt: skip
        session.commit()
        datastreams = list(session.scalars(sa.select(Datastream.id).order_by(Datastream.id)))
    if settings.sqlalchemy_url.startswith("postgresql"):
        with engine.begin() as connection:
            for month in range(15):
                year, index = start.year + (start.month - 1 + month) // 12, (start.month - 1 + month) % 12 + 1
                store.create_month_partition(connection, year, index)
    # The FeatureOfInterest of the Thing's Location, made as the first batch would make it.
    from kotacerdas.sensors import service

    with make_sessionmaker(engine)() as session:
        feature = service.datastream_targets(session, [datastreams[0]])[datastreams[0]][2]
        session.commit()
    engine.dispose()
    return plain, datastreams, feature


# --- the rows ----------------------------------------------------------------------------------------------------


def batch_rows(index: int, rows: int, datastreams: list[int], start_us: int) -> list[tuple[int, int, float]]:
    """Batch `index` of the run: (Datastream, time µs, result) rows, the same for the server and the baseline."""
    rng = random.Random(index * 7919 + 6)
    step = (366 * 86_400 * 1_000_000) // rows
    first = index * BATCH
    return [
        (rng.choice(datastreams), start_us + (first + n) * step, round(rng.uniform(100, 400), 1))
        for n in range(min(BATCH, rows - first))
    ]


def body_of(rows: list[tuple[int, int, float]]) -> bytes:
    """The CreateObservations body: one group per Datastream, [phenomenonTime, result] rows in time order."""
    groups: dict[int, list[list[Any]]] = {}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for ds, t, value in rows:
        moment = (epoch + timedelta(microseconds=t)).isoformat().replace("+00:00", "Z")
        groups.setdefault(ds, []).append([moment, value])
    return orjson.dumps(
        [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": data}
         for ds, data in groups.items()]
    )  # fmt: skip


def _client(args: tuple, barrier: Any, out: Any) -> None:
    """One client process: build its bodies, wait for the others, POST them; puts (completion time, rows) of each
    request on `out`, with the 503 answers it retried (or the error)."""
    try:
        out.put(_post_all(args, barrier))
    except BaseException as error:
        out.put(RuntimeError(f"client failed: {error!r}"))
        raise


def _post_all(args: tuple, barrier: Any) -> list[tuple[float, int, int]]:
    port, token, indexes, rows, datastreams, start_us = args
    bodies = [(body_of(batch := batch_rows(i, rows, datastreams, start_us)), len(batch)) for i in indexes]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    barrier.wait()
    done = []
    for body, count in bodies:
        busy = 0
        while True:
            connection.request("POST", PATH, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 503 or busy >= 20:
                break
            # The writer queue was held past its timeout (a compaction chunk on a loaded machine): as a device
            # would, send the same batch again, after the server's Retry-After capped at a second. Counted.
            busy += 1
            time.sleep(min(1.0, float(response.getheader("Retry-After") or 1)))
        if response.status != 201:
            raise RuntimeError(f"HTTP {response.status}: {answer[:500]!r}")
        if len(orjson.loads(answer)) != count:
            raise RuntimeError("the answer does not list one id per observation")
        done.append((time.monotonic(), count, busy))
    connection.close()
    return done


def _drive(port: int, token: str, rows: int, datastreams: list[int], start_us: int, clients: int) -> tuple:
    """Run the client processes against the server on `port`: (start time, load at start, each client's
    [(completion time, rows, 503s retried)])."""
    batches = (rows + BATCH - 1) // BATCH
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients + 1)
    out = context.Queue()
    children = [
        context.Process(target=_client, args=((port, token, list(range(c, batches, clients)), rows, datastreams,
                                                start_us), barrier, out), daemon=True)
        for c in range(clients)
    ]  # fmt: skip
    try:
        for child in children:
            child.start()
        barrier.wait(timeout=600)
        began = time.monotonic()
        load_start = _load()
        results = [out.get() for _child in children]
        for child in children:
            child.join()
        for result in results:
            if isinstance(result, BaseException):
                raise result
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    return began, load_start, results


def run_ceiling(rows: int, clients: int, workers: int = 1) -> dict[str, Any]:
    """The same bodies, clients and uvicorn against bench/http_ceiling.py: parse, convert, append, commit. With
    `workers` > 1 the uvicorn processes share the file as the real server's do (SQLite's own lock between them)."""
    from bench.server import free_port, wait_ready

    path = bench_dir() / "ingest-http-ceiling.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    port = free_port()
    log = bench_dir() / "ingest-http-ceiling.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.http_ceiling:app", "--port", str(port), "--workers", str(workers),
             "--log-level", "warning", "--no-access-log"],
            env={**os.environ, "KOTACERDAS_BENCH_CEILING_DB": str(path)}, stdout=out, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
    try:
        wait_ready(process, port, log=log, timeout=60)
        began, load_start, results = _drive(port, "", rows, list(range(1, DATASTREAMS + 1)),
                                            store.to_us(_start()), clients)  # fmt: skip
    finally:
        stop(process)
    seconds = max(item[0] for result in results for item in result) - began
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    what = ("bench/http_ceiling.py: uvicorn, orjson, ISO times to microseconds, multi-row INSERTs into a plain "
            "table and commit; no checks, no auth, no current values")  # fmt: skip
    return {"rows": rows, "obs_per_s": round(rows / seconds), "seconds": round(seconds, 1), "server_workers": workers,
            "clients": clients, "load_average_at_start": load_start, "what": what}  # fmt: skip


def run_server(
    backend: str, rows: int, *, clients: int, workers: int, compact_rows: int, worker_process: bool = False
) -> dict[str, Any]:
    """`kotacerdas serve --workers WORKERS` with the background worker in the app, or, with `worker_process`, in a
    `kotacerdas worker` process of its own (docs/operations.md, a busy single machine)."""
    fresh_database(backend)
    settings = settings_for(backend)
    start = _start()
    token, datastreams, _feature = seed(settings, start, rows)
    env = {"KOTACERDAS_WORKER_IN_APP": "false" if worker_process else "true",
           "KOTACERDAS_SENSOR_COMPACT_ROWS": str(compact_rows), "KOTACERDAS_WORKER_INTERVAL_SECONDS": "1"}  # fmt: skip
    log = bench_dir() / f"ingest-http-{backend}.log"
    process, port = start_server(settings, workers=workers, log=log, env=env)
    worker = start_worker(settings, log=bench_dir() / f"ingest-http-{backend}-worker.log", env=env) if (
        worker_process) else None  # fmt: skip
    try:
        began, load_start, results = _drive(port, token, rows, datastreams, store.to_us(start), clients)
    finally:
        stop(process)
        if worker is not None:
            stop(worker)
    ended = max(item[0] for result in results for item in result)
    batches = (rows + BATCH - 1) // BATCH
    completions = sorted(item for result in results for item in result)
    segments, done, mark, seg_start = [], 0, SEGMENT, began
    for t, count, _busy in completions:
        done += count
        if done >= mark or done == rows:
            in_segment = done - (mark - SEGMENT)
            segments.append({"segment": f"{(mark - SEGMENT) // 1_000_000}-{mark // 1_000_000}M",
                             "rows": in_segment, "obs_per_s": round(in_segment / (t - seg_start))})  # fmt: skip
            seg_start, mark = t, mark + SEGMENT
    engine = make_engine(settings)
    with engine.connect() as connection:
        table = "sensor_observations_all" if backend == "sqlite" else "sensor_observations"
        stored = connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
        waiting = store.journal_rows(engine)
    engine.dispose()
    seconds = ended - began
    return {
        "rows": rows,
        "obs_per_s": round(rows / seconds),
        "requests_per_s": round(batches / seconds, 1),
        "seconds": round(seconds, 1),
        "clients": clients,
        "server_workers": workers,
        "background_worker": "kotacerdas worker process" if worker_process else "in the app",
        "stored": stored,
        "all_stored_once": stored == rows,
        "busy_503_retried": sum(item[2] for item in completions),
        "journal_rows_left": waiting,
        "segments": segments,
        "load_average_at_start": load_start,
        "load_average_at_end": _load(),
    }


def run_baseline(backend: str, rows: int, feature: int = 1) -> dict[str, Any]:
    """The same rows with the same driver, 1,000 per transaction, into a table with no index (see the module)."""
    datastreams = list(range(1, DATASTREAMS + 1))
    start_us = store.to_us(_start())
    batches, next_id = [], 1
    for index in range((rows + BATCH - 1) // BATCH):
        converted = []
        for ds, t, value in batch_rows(index, rows, datastreams, start_us):
            converted.append((next_id, ds, t, store.RESULT_FLOAT, value, feature))
            next_id += 1
        batches.append(converted)
    busy = 0.0
    if backend == "sqlite":
        path = bench_dir() / "ingest-http-baseline.db"
        for suffix in ("", "-wal", "-shm", "-writer.lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = make_engine(settings_for("sqlite").model_copy(update={"database_url": f"sqlite:///{path}"}))
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE plain (id INTEGER, datastream_id INTEGER, phenomenon_time INTEGER, result_type INTEGER, "
                "result_number REAL, feature_id INTEGER)"
            )
        for batch in batches:
            began = time.perf_counter()
            with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
                connection.connection.driver_connection.executemany("INSERT INTO plain VALUES (?,?,?,?,?,?)", batch)
            busy += time.perf_counter() - began
        engine.dispose()
        for suffix in ("", "-wal", "-shm", "-writer.lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        what = "sqlite3 executemany into a table with no index, WAL and synchronous=FULL, 1,000-row transactions"
    else:
        engine = make_engine(settings_for("postgres"))
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS bench_plain")
            connection.exec_driver_sql(
                "CREATE TABLE bench_plain (id int8, datastream_id int4, phenomenon_time timestamptz, "
                "result_type int2, result_number float8, feature_id int4)"
            )
        from_us = store.from_us
        for batch in batches:
            began = time.perf_counter()
            with engine.begin() as connection:
                raw = connection.connection.driver_connection
                with raw.cursor() as cursor, cursor.copy("COPY bench_plain FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int4", "timestamptz", "int2", "float8", "int4"])
                    for oid, ds, t, rtype, number, fid in batch:
                        copy.write_row((oid, ds, from_us(t), rtype, number, fid))
            busy += time.perf_counter() - began
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE bench_plain")
        engine.dispose()
        what = "psycopg binary COPY into an unpartitioned table with no index, 1,000-row transactions"
    return {"rows": rows, "obs_per_s": round(rows / busy), "seconds": round(busy, 1), "what": what}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(rows: int, pg_rows: int, backends: list[str], *, clients: int, workers: int, compact_rows: int,
            quick: bool) -> bool:  # fmt: skip
    figures: dict[str, Any] = {"quick": quick, "load_average_at_start": _load(), "batch": BATCH,
                               "datastreams": DATASTREAMS}  # fmt: skip
    passed = True
    if "sqlite" in backends:
        measured = run_server("sqlite", rows, clients=clients, workers=workers, compact_rows=compact_rows)
        print("sqlite", measured, flush=True)
        # A busy single machine (docs/operations.md): a serve process per core and the worker in its own process.
        processes = run_server("sqlite", rows, clients=2 * clients, workers=2, compact_rows=compact_rows,
                               worker_process=True)  # fmt: skip
        print("sqlite, two serve processes and a worker process", processes, flush=True)
        baseline = run_baseline("sqlite", rows)
        print("sqlite baseline", baseline, flush=True)
        ceiling = run_ceiling(min(rows, CEILING_ROWS), clients)
        print("sqlite http ceiling", ceiling, flush=True)
        # The ceiling of the process-per-core setup too: the share of the plain insert that any Python HTTP server
        # doing at least this much could reach here.
        ceiling_processes = run_ceiling(min(rows, CEILING_ROWS), 2 * clients, workers=2)
        print("sqlite http ceiling, two processes", ceiling_processes, flush=True)
        best = max(measured, processes, key=lambda run: run["obs_per_s"])
        share = best["obs_per_s"] / baseline["obs_per_s"]
        met = (best["obs_per_s"] >= TARGET_OBS_S and share >= TARGET_SHARE and measured["all_stored_once"]
               and processes["all_stored_once"])  # fmt: skip
        figures["sqlite"] = {"server": measured, "server_processes": processes, "baseline": baseline,
                             "share_of_baseline": round(measured["obs_per_s"] / baseline["obs_per_s"], 3),
                             "processes_share_of_baseline": round(processes["obs_per_s"] / baseline["obs_per_s"], 3),
                             "absolute_target_met": best["obs_per_s"] >= TARGET_OBS_S,
                             "http_ceiling": ceiling,
                             "ceiling_share_of_baseline": round(ceiling["obs_per_s"] / baseline["obs_per_s"], 3),
                             "share_of_http_ceiling": round(best["obs_per_s"] / ceiling["obs_per_s"], 3),
                             "http_ceiling_processes": ceiling_processes,
                             "ceiling_processes_share_of_baseline": round(
                                 ceiling_processes["obs_per_s"] / baseline["obs_per_s"], 3),
                             "targets_met": met}  # fmt: skip
        passed &= met
    if "postgres" in backends and postgres_available():
        measured = run_server("postgres", pg_rows, clients=clients, workers=workers, compact_rows=compact_rows)
        print("postgres", measured, flush=True)
        baseline = run_baseline("postgres", pg_rows)
        print("postgres baseline", baseline, flush=True)
        share = measured["obs_per_s"] / baseline["obs_per_s"]
        met = share >= TARGET_SHARE and measured["all_stored_once"]
        figures["postgres"] = {"server": measured, "baseline": baseline, "share_of_baseline": round(share, 3),
                               "targets_met": met}  # fmt: skip
        passed &= met
    figures["load_average_at_end"] = _load()
    write_result(
        "ingest_http",
        figures,
        targets={"sqlite_obs_per_s": f">= {TARGET_OBS_S:,} sustained 0 → {rows:,}",
                 "sqlite_share_of_plain_insert": f">= {TARGET_SHARE}",
                 "postgres_share_of_binary_copy": f">= {TARGET_SHARE}", "every_acknowledged_observation_stored": True},
        passed=passed,
    )  # fmt: skip
    return passed


def run(quick: bool) -> bool:
    rows = 50_000 if quick else 10_000_000
    return measure(rows, 20_000 if quick else 2_000_000, ["sqlite", "postgres"], clients=2, workers=1,
                   compact_rows=20_000 if quick else 1_000_000, quick=quick)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--pg-rows", type=int, default=2_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--compact-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    measure(args.rows, args.pg_rows, args.backends.split(","), clients=args.clients, workers=args.workers,
            compact_rows=args.compact_rows, quick=False)  # fmt: skip


if __name__ == "__main__":
    main()
