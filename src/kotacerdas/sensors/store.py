"""The observation store: SensorThings Observations, the current value of each Datastream, hourly rollups.

What the API and the MQTT ingest call (the session first; the caller owns the transaction and commits):

- `add_observations(session, rows, *, settings) -> list[int]`: store a batch of `NewObservation`s in the caller's
  transaction, all or nothing, and return their ids (the SensorThings @iot.id) in order. On SQLite the caller holds
  the writer queue (`db.begin_writes`, or a session begun with `db.WRITE_OPTION`). A NaN or infinite result or an
  unknown Datastream raises `StoreError` naming the index of the bad row, before anything is written. The current
  value of each Datastream (`sensor_current_values`) is updated in the same transaction: the newest by
  phenomenon time wins, so an older observation arriving late does not replace it.
- `current_values(session, datastream_ids=None) -> dict[int, CurrentValue]`: one primary-key row per Datastream.
- `get_observation(session, observation_id) -> Observation | None`,
  `list_observations(session, *, datastream_id, start=None, end=None, limit=100, order="asc")`.
- `hourly(session, *, datastream_id, start, end) -> list[HourlyRow]`: min, max, avg and count per UTC hour of the
  numeric results, never stale (on SQLite the journal's unmerged rows are aggregated on the fly).
- `update_observation(session, observation_id, new)`: a PATCH, the id kept, rollups and current values following.
- `delete_observation(session, observation_id)`, `purge_before(session, *, cutoff, datastream_id=None)`: raw rows
  go, rollups stay (retention: `sensor_raw_retention_days`, run by the worker through `apply_retention`).
- `compact(engine, *, settings)`: SQLite's compaction; on PostgreSQL `roll_up(engine)`, the hourly rollup of the
  rows past its watermark. `maintain(engine, *, settings)`: partitions ahead and out of the DEFAULT partition and
  the rollup on PostgreSQL, Datastream time extents on both. All are worker jobs.
- `existing_keys(session, keys)`: which (datastream, phenomenonTime) pairs are stored (MQTT redelivery).

Layout (docs/sensors.md, "Storage"):

- SQLite: a batch is appended to `sensor_obs_journal` (its AUTOINCREMENT key is the observation id: appends in
  key order write a few pages per commit whatever the Datastreams) and the current values are upserted. A
  compaction moves the journal, in chunks each in its own transaction, into segments (sensors/store_sqlite.py): a
  `WITHOUT ROWID` table clustered by (datastream_id, phenomenon_time, id), so a Datastream's time range is one
  range scan, with its own hourly rollups, filled until it holds `sensor_compact_rows`; the same chunk widens the
  Datastreams' time extents. Times in these tables are integer microseconds since the epoch, UTC: half the size of
  SQLAlchemy's text datetimes, and compared and bucketed by hour with integer arithmetic. The view
  `sensor_observations_all` is the journal and every segment.
- PostgreSQL: `sensor_observations`, partitioned by month of phenomenon_time, primary key (datastream_id,
  phenomenon_time, id), ids from the sequence `sensor_observation_ids`; a batch is one binary COPY, then the
  current-value upsert from arrays. The hourly rollups (`sensor_hourly`) are kept by `roll_up` from the rows whose
  id is past the watermark `rollup_id` (in `sensor_store_state`), found by the id index; a batch holds a shared
  advisory lock from before it draws its ids until it ends, and the rollup takes it exclusively for a moment to
  learn an id below which every batch has ended (a batch with smaller ids may commit after one with larger ones).
  `hourly` reads the rollups and aggregates the rows past the watermark on the fly, in one snapshot, so a chart is
  never stale; a delete recomputes its hour from the rows up to the watermark. A time outside every month
  partition lands in the DEFAULT partition (creating a partition inside the ingest transaction would lock the
  parent table against every other writer); `maintain` moves such rows into a new month partition.

Results: a number (int or float, not bool) goes to `result_number` (REAL / double precision) with `result_type`
saying whether it was an integer; anything else (bool, text, object, array) is JSON in `result_json`; None is
`result_type` 0. Only numbers are rolled up.

The Datastream's time extents are not touched per batch (one UPDATE per Datastream per batch would cost more
than the batch's insert): the current values give the newest phenomenon time at once, and the extents on the
Datastream row are widened by the compaction (SQLite) or `maintain` (PostgreSQL), a minute or so behind.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kotacerdas.config import Settings
from kotacerdas.db import WRITE_OPTION, release_writer_queue, utcnow
from kotacerdas.sensors import store_sqlite as segmented
from kotacerdas.sensors.models import Datastream

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
HOUR_US = 3_600_000_000

# result_type values
RESULT_NULL, RESULT_FLOAT, RESULT_INT, RESULT_JSON = 0, 1, 2, 3

# The store's tables (and PostgreSQL's month partitions): not ORM models, so Alembic's comparison skips them.
STORE_TABLES = frozenset(
    {"sensor_obs_journal", "sensor_obs_segments", "sensor_observations", "sensor_current_values", "sensor_hourly",
     "sensor_store_state", "sqlite_sequence"}
)  # fmt: skip
STORE_TABLE_PREFIXES = ("sensor_observations_", "sensor_obs_")

# How many journal rows one compaction chunk merges (SQLite). A chunk of at least half a segment fills a new segment
# of its own, written as appends (2.6 s per million, against 5.7 s appended into a segment of a million), and the
# writer queue is held only while a prepared chunk is copied (bench/observation_store.py).
DEFAULT_CHUNK_ROWS = 1_000_000


class StoreError(ValueError):
    """A batch the store refuses; `index` is the position of the bad row in the batch."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"observation {index}: {message}")
        self.index = index
        self.reason = message


@dataclass(slots=True)
class NewObservation:
    """An observation to store. Times are timezone-aware datetimes or integer microseconds since the epoch."""

    datastream_id: int
    phenomenon_time: datetime | int
    result: Any
    phenomenon_time_end: datetime | int | None = None
    result_time: datetime | int | None = None
    result_quality: str | None = None
    valid_time_start: datetime | int | None = None
    valid_time_end: datetime | int | None = None
    parameters: dict[str, Any] | None = None
    feature_id: int | None = None


@dataclass(slots=True)
class NumericRows:
    """Plain numeric observations as columns, the common CreateObservations batch: what `add_observations` stores
    as it would the same `NewObservation`s (Datastream, phenomenon time, number as the result, FeatureOfInterest),
    checked and converted with a few passes in C instead of a Python object per row (bench/ingest_http.py)."""

    datastream_ids: list[int]
    times: list[datetime]  # timezone-aware
    numbers: list[float | int]  # not bool
    feature_ids: list[int | None]

    def __len__(self) -> int:
        return len(self.numbers)

    def as_new_observations(self) -> list[NewObservation]:
        return [
            NewObservation(ds, t, number, feature_id=feature)
            for ds, t, number, feature in zip(
                self.datastream_ids, self.times, self.numbers, self.feature_ids, strict=True
            )
        ]


@dataclass(frozen=True, slots=True)
class Observation:
    """A stored observation (times timezone-aware UTC)."""

    id: int
    datastream_id: int
    phenomenon_time: datetime
    phenomenon_time_end: datetime | None
    result: Any
    result_time: datetime | None
    result_quality: str | None
    valid_time_start: datetime | None
    valid_time_end: datetime | None
    parameters: dict[str, Any] | None
    feature_id: int | None


class CurrentValue(NamedTuple):
    """The newest observation of a Datastream by phenomenon time (a named tuple: 10,000 of them are made in a
    third of the time of frozen dataclasses, bench/current_values.py)."""

    datastream_id: int
    observation_id: int
    phenomenon_time: datetime
    result: Any


@dataclass(frozen=True, slots=True)
class HourlyRow:
    """The numeric results of one UTC hour of a Datastream."""

    hour: datetime
    count: int
    min: float
    max: float
    avg: float
    sum: float


# --- conversions ------------------------------------------------------------------------------------------------


def to_us(value: datetime | int) -> int:
    """A timezone-aware datetime (or integer microseconds) as integer microseconds since the epoch."""
    if type(value) is int:
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime: the store takes timezone-aware datetimes only")
    return (value - EPOCH) // ONE_US


def from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def to_datetime(value: datetime | int | None) -> datetime | None:
    if value is None:
        return None
    if type(value) is int:
        return EPOCH + timedelta(microseconds=value)
    if value.tzinfo is None:
        raise ValueError("naive datetime: the store takes timezone-aware datetimes only")
    return value


# A JSON escape of NUL: \u0000 after an even number of backslashes (an escaped backslash then "u0000" is text).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _split_result(index: int, result: Any) -> tuple[int, float | None, Any]:
    """(result_type, number, JSON value) of a result; refuses NaN and infinities anywhere in it."""
    kind = type(result)
    if kind is float:
        if not math.isfinite(result):
            raise StoreError(index, "the result is NaN or infinite")
        return RESULT_FLOAT, result, None
    if kind is int:
        if not -(2**63) <= result < 2**63:
            raise StoreError(index, "the result is too large an integer")
        return RESULT_INT, float(result), None
    if result is None:
        return RESULT_NULL, None, None
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StoreError(index, f"the result is not storable as JSON ({error})") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        # PostgreSQL refuses a NUL character in text and JSON; refused on SQLite too, so both databases agree.
        raise StoreError(index, "the result contains a NUL character")
    return RESULT_JSON, None, result


def _result(result_type: int, number: float | None, value: Any, sqlite: bool) -> Any:
    if result_type == RESULT_INT:
        return int(number)
    if result_type == RESULT_FLOAT:
        return number
    if result_type == RESULT_JSON:
        # JSON text on SQLite; psycopg has decoded the jsonb already.
        return json.loads(value) if sqlite else value
    return None


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _dialect(session_or_engine: Session | Engine) -> str:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name


def _raw(session: Session) -> Any:
    """The DBAPI connection of the session's transaction (sqlite3 or psycopg)."""
    return session.connection().connection.driver_connection


# --- the Datastreams the store knows ----------------------------------------------------------------------------

_DATASTREAMS: weakref.WeakKeyDictionary[Engine, dict[int, str]] = weakref.WeakKeyDictionary()
_DATASTREAMS_LOCK = threading.Lock()


def _known_datastreams(session: Session, wanted: Iterable[int]) -> dict[int, str]:
    """Datastream id → observation type, cached per engine and read again when a batch names one not in it."""
    engine = session.get_bind()
    known = _DATASTREAMS.get(engine)
    if known is None or not known.keys() >= set(wanted):
        rows = session.connection().execute(sa.select(Datastream.id, Datastream.observation_type))
        known = {row[0]: row[1] for row in rows}
        with _DATASTREAMS_LOCK:
            _DATASTREAMS[engine] = known
    return known


def forget_datastreams(engine: Engine) -> None:
    """Drop the cache of Datastream ids (after deleting a Datastream)."""
    with _DATASTREAMS_LOCK:
        _DATASTREAMS.pop(engine, None)


# --- ingest -----------------------------------------------------------------------------------------------------


def add_observations(
    session: Session, rows: Sequence[NewObservation] | NumericRows, *, settings: Settings
) -> list[int]:
    """Store a batch of observations in the caller's transaction (all or nothing); their ids, in order."""
    if not len(rows):
        return []
    if isinstance(rows, NumericRows):
        add = _add_sqlite_numbers if _dialect(session) == "sqlite" else _add_postgres_numbers
        ids = add(session, rows)
        if ids is not None:
            return ids
        rows = rows.as_new_observations()  # a row the column path cannot vouch for: the row path names it
    known = _known_datastreams(session, {row.datastream_id for row in rows})
    if _dialect(session) == "sqlite":
        return _add_sqlite(session, rows, known)
    prepared = []
    for index, row in enumerate(rows):
        if row.datastream_id not in known:
            raise StoreError(index, f"no Datastream {row.datastream_id}")
        result_type, number, value = _split_result(index, row.result)
        try:
            phenomenon = to_us(row.phenomenon_time)
        except (TypeError, ValueError, AttributeError, OverflowError) as error:
            raise StoreError(index, f"bad phenomenon time ({error})") from None
        if row.phenomenon_time_end is not None or row.result_time is not None or row.valid_time_start is not None:
            for other in (row.phenomenon_time_end, row.result_time, row.valid_time_start, row.valid_time_end):
                _optional_us(index, other)
        elif row.valid_time_end is not None:
            _optional_us(index, row.valid_time_end)
        prepared.append((row, phenomenon, result_type, number, value))
    return _add_postgres(session, prepared)


def _upsert_current_postgres(cursor: Any, rows: Iterable[tuple]) -> None:
    """Upsert the current value of each Datastream of a batch from its newest row (by phenomenon time, a later row of
    the batch winning a tie), in Datastream order: concurrent batches lock the rows they share in the same order
    instead of deadlocking. `rows`: (Datastream id, observation id, phenomenon time as integer microseconds or an
    aware datetime, result type, number, JSON value or None), in batch order."""
    from psycopg.types.json import Jsonb

    newest: dict[int, tuple] = {}
    for row in rows:
        best = newest.get(row[0])
        if best is None or row[2] >= best[2]:
            newest[row[0]] = row
    order = [newest[ds] for ds in sorted(newest)]
    cursor.execute(
        _PG_CURRENT_UPSERT,
        ([r[0] for r in order], [r[1] for r in order], [from_us(r[2]) if type(r[2]) is int else r[2] for r in order],
         [r[3] for r in order], [r[4] for r in order], [None if r[5] is None else Jsonb(r[5]) for r in order]),
    )  # fmt: skip


_SQLITE_JOURNAL_INSERT = (
    "INSERT INTO sensor_obs_journal (id, datastream_id, phenomenon_time, phenomenon_time_end, result_type, "
    "result_number, result_json, result_time, result_quality, valid_time_start, valid_time_end, parameters, "
    "feature_id) VALUES "
)
# A batch of plain numeric observations binds only the columns they fill: sqlite3 sends each None parameter
# through its adapter lookup, and the nine NULLs of a plain row cost more than the rest of its insert
# (bench/observation_store.py: 7 ms for 1,000 rows of 13 parameters, 3 ms with 6).
_SQLITE_NUMBER_INSERT = (
    "INSERT INTO sensor_obs_journal (id, datastream_id, phenomenon_time, result_type, result_number, feature_id) "
    "VALUES "
)
_SQLITE_NUMBER_INSERT_NO_FEATURE = (
    "INSERT INTO sensor_obs_journal (id, datastream_id, phenomenon_time, result_type, result_number) VALUES "
)
# Rows per multi-row INSERT into the journal (see `_insert_rows`).
_ROWS_PER_INSERT = 128


@functools.cache
def _values_statement(head: str, width: int, count: int) -> str:
    return head + ",".join(["(" + ",".join("?" * width) + ")"] * count)


def _insert_rows(raw: Any, head: str, rows: Sequence[tuple]) -> None:
    """Append `rows` (tuples of one width) with multi-row INSERT … VALUES statements of up to 128 rows.

    sqlite3's executemany steps the statement once per row and lets go of the interpreter lock at each step: under
    load another request thread takes it, and the writer, which holds SQLite's writer queue, waits for it back
    (bench/ingest_http.py). One statement per 128 rows binds the same values in a third of the time (0.32 ms for
    1,000 rows against 0.92 ms, alone) and lets go of the lock about ten times, not a thousand. Statement sizes are
    powers of two, so that the connection's statement cache keeps the few texts a batch uses."""
    if not rows:
        return
    width = len(rows[0])
    start, total, size = 0, len(rows), _ROWS_PER_INSERT
    while start < total:
        while size > total - start:
            size //= 2
        raw.execute(_values_statement(head, width, size), list(chain.from_iterable(rows[start : start + size])))
        start += size


# The current values from the batch's rows just appended, in SQL: the newest by (phenomenon time, id) wins whatever
# the order the rows come in (SQLite applies the upsert row by row, also over a row the same statement inserted).
# Half the cost of picking the newest in Python and binding them (bench/observation_store.py).
_SQLITE_CURRENT_FROM_JOURNAL = (
    "INSERT INTO sensor_current_values (datastream_id, id, phenomenon_time, result_type, result_number, result_json) "
    "SELECT datastream_id, id, phenomenon_time, result_type, result_number, result_json FROM sensor_obs_journal "
    "WHERE id BETWEEN ? AND ? "
    "ON CONFLICT (datastream_id) DO UPDATE SET id = excluded.id, "
    "phenomenon_time = excluded.phenomenon_time, result_type = excluded.result_type, "
    "result_number = excluded.result_number, result_json = excluded.result_json "
    "WHERE excluded.phenomenon_time > sensor_current_values.phenomenon_time "
    "OR (excluded.phenomenon_time = sensor_current_values.phenomenon_time AND excluded.id > sensor_current_values.id)"
)


def _optional_us(index: int, value: Any) -> int | None:
    if value is None:
        return None
    try:
        return to_us(value)
    except (TypeError, ValueError, AttributeError, OverflowError) as error:
        raise StoreError(index, f"bad time ({error})") from None


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _numeric_columns(session: Session, rows: NumericRows) -> tuple[Sequence[int], list[float]] | None:
    """The result types and the numbers as floats of `NumericRows`, checked in a few passes in C; None when a row
    needs the row-by-row path (an unknown Datastream, a number not finite or too large, a naive time), which then
    names it."""
    numbers = rows.numbers
    kinds = set(map(type, numbers))
    if kinds == {float}:
        if not all(map(math.isfinite, numbers)):
            return None
        result_types: Sequence[int] = [RESULT_FLOAT] * len(numbers)
    elif kinds == {float, int} or kinds == {int}:
        ints = [n for n in numbers if type(n) is int]
        if min(ints) < -(2**63) or max(ints) >= 2**63 or not all(map(math.isfinite, numbers)):
            return None
        result_types = [RESULT_INT if type(n) is int else RESULT_FLOAT for n in numbers]
        numbers = [float(n) for n in numbers]
    else:
        return None
    wanted = set(rows.datastream_ids)
    known = _known_datastreams(session, wanted)
    if not wanted <= known.keys() or None in map(attrgetter("tzinfo"), rows.times):
        return None
    return result_types, numbers


def _add_sqlite_numbers(session: Session, rows: NumericRows) -> list[int] | None:
    """`NumericRows` into the journal with the short statements of `_add_sqlite`, the rows made by `zip` in C."""
    checked = _numeric_columns(session, rows)
    if checked is None:
        return None
    result_types, numbers = checked
    times = [(t - EPOCH) // ONE_US for t in rows.times]
    raw = _raw(session)
    # The caller holds the writer queue: the ids are last + 1 … last + n (see `_add_sqlite`).
    last = raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'sensor_obs_journal'").fetchone()
    first = (last[0] if last else 0) + 1
    ids = range(first, first + len(numbers))
    columns = [ids, rows.datastream_ids, times, result_types, numbers]
    if any(feature is not None for feature in rows.feature_ids):
        _insert_rows(raw, _SQLITE_NUMBER_INSERT, list(zip(*columns, rows.feature_ids, strict=True)))
    else:
        _insert_rows(raw, _SQLITE_NUMBER_INSERT_NO_FEATURE, list(zip(*columns, strict=True)))
    raw.execute(_SQLITE_CURRENT_FROM_JOURNAL, (first, ids[-1]))
    return list(ids)


_PG_NUMBER_COLUMNS = "id, datastream_id, phenomenon_time, result_type, result_number, feature_id"
_PG_NUMBER_TYPES = ["int8", "int4", "timestamptz", "int2", "float8", "int4"]


def _add_postgres_numbers(session: Session, rows: NumericRows) -> list[int] | None:
    """`NumericRows` by a binary COPY of only the six columns they fill, the rows made by `zip` in C (the row path
    converts and sends thirteen per row), then the current values as `_add_postgres` does."""
    checked = _numeric_columns(session, rows)
    if checked is None:
        return None
    result_types, numbers = checked
    raw = _raw(session)
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ROLLUP_FENCE,))
        cursor.execute("SELECT nextval('sensor_observation_ids') FROM generate_series(1, %s)", (len(numbers),))
        ids = [observation_id for (observation_id,) in cursor.fetchall()]
        columns = (ids, rows.datastream_ids, rows.times, result_types, numbers, rows.feature_ids)
        with cursor.copy(f"COPY sensor_observations ({_PG_NUMBER_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_PG_NUMBER_TYPES)
            write_row = copy.write_row
            for row in zip(*columns, strict=True):
                write_row(row)
        _upsert_current_postgres(
            cursor, zip(rows.datastream_ids, ids, rows.times, result_types, numbers, [None] * len(ids), strict=True)
        )
    return ids


def _add_sqlite(session: Session, rows: Sequence[NewObservation], known: dict[int, str]) -> list[int]:
    raw = _raw(session)
    # The caller holds the writer queue, so nobody else takes ids until the commit: they are last + 1 … last + n
    # (AUTOINCREMENT never hands out an id again, even after the journal is emptied by a compaction).
    last = raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'sensor_obs_journal'").fetchone()
    first = (last[0] if last else 0) + 1
    # One pass that checks and converts (everything is checked before anything is written). Plain numeric rows,
    # the common case, take the short statement; a batch with any other row takes the full one for every row.
    numbers: list[tuple] | None = []
    featured = 0
    records: list[tuple] = []
    isfinite = math.isfinite
    observation_id = first
    for index, row in enumerate(rows):
        ds = row.datastream_id
        if ds not in known:
            raise StoreError(index, f"no Datastream {ds}")
        result = row.result
        kind = type(result)
        if kind is float and isfinite(result):
            result_type, number, value = RESULT_FLOAT, result, None
        else:
            result_type, number, value = _split_result(index, result)
        phenomenon = row.phenomenon_time
        if type(phenomenon) is not int:
            try:
                phenomenon = to_us(phenomenon)
            except (TypeError, ValueError, AttributeError, OverflowError) as error:
                raise StoreError(index, f"bad phenomenon time ({error})") from None
        if (
            numbers is not None
            and number is not None
            and row.phenomenon_time_end is None
            and row.result_time is None
            and row.result_quality is None
            and row.valid_time_start is None
            and row.valid_time_end is None
            and row.parameters is None
        ):
            feature = row.feature_id
            if feature is not None:
                featured += 1
            numbers.append((observation_id, ds, phenomenon, result_type, number, feature))
        else:
            if numbers is not None:
                records = [(*n[:3], None, *n[3:5], None, None, None, None, None, None, n[5]) for n in numbers]
                numbers = None
            records.append(
                (observation_id, ds, phenomenon, _optional_us(index, row.phenomenon_time_end), result_type, number,
                 _json_text(value), _optional_us(index, row.result_time), row.result_quality,
                 _optional_us(index, row.valid_time_start), _optional_us(index, row.valid_time_end),
                 _json_text(row.parameters), row.feature_id)
            )  # fmt: skip
        observation_id += 1
    if numbers is None:
        _insert_rows(raw, _SQLITE_JOURNAL_INSERT, records)
    elif featured or not numbers:
        _insert_rows(raw, _SQLITE_NUMBER_INSERT, numbers)
    else:
        _insert_rows(raw, _SQLITE_NUMBER_INSERT_NO_FEATURE, [n[:5] for n in numbers])
    raw.execute(_SQLITE_CURRENT_FROM_JOURNAL, (first, observation_id - 1))
    return list(range(first, observation_id))


_PG_COLUMNS = (
    "id, datastream_id, phenomenon_time, phenomenon_time_end, result_type, result_number, result_json, "
    "result_time, result_quality, valid_time_start, valid_time_end, parameters, feature_id"
)
_PG_TYPES = [
    "int8", "int4", "timestamptz", "timestamptz", "int2", "float8", "jsonb", "timestamptz", "text", "timestamptz",
    "timestamptz", "jsonb", "int4",
]  # fmt: skip
_PG_CURRENT_UPSERT = """
INSERT INTO sensor_current_values AS c (datastream_id, id, phenomenon_time, result_type, result_number, result_json)
SELECT * FROM unnest(%b::int4[], %b::int8[], %b::timestamptz[], %b::int2[], %b::float8[], %b::jsonb[]) ORDER BY 1
ON CONFLICT (datastream_id) DO UPDATE SET id = excluded.id, phenomenon_time = excluded.phenomenon_time,
    result_type = excluded.result_type, result_number = excluded.result_number, result_json = excluded.result_json
WHERE excluded.phenomenon_time > c.phenomenon_time
    OR (excluded.phenomenon_time = c.phenomenon_time AND excluded.id > c.id)
"""
# Keys of the advisory locks of the rollup (PostgreSQL). Every batch holds ROLLUP_FENCE shared from before it draws
# its ids until it ends; the rollup takes it exclusively for a moment to learn an id below which every batch has
# ended (ids come from a sequence, so a batch with smaller ids may commit after one with larger ones).
# ROLLUP_LOCK serialises the writers of sensor_hourly and of the watermark (the rollup, a delete's recomputation).
ROLLUP_FENCE = 6_006_001
ROLLUP_LOCK = 6_006_002
# How many observation ids one rollup transaction covers.
ROLLUP_CHUNK_IDS = 1_000_000


def _add_postgres(session: Session, prepared: list) -> list[int]:
    from psycopg.types.json import Jsonb

    raw = _raw(session)
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ROLLUP_FENCE,))
        cursor.execute("SELECT nextval('sensor_observation_ids') FROM generate_series(1, %s)", (len(prepared),))
        ids = [observation_id for (observation_id,) in cursor.fetchall()]
        with cursor.copy(f"COPY sensor_observations ({_PG_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_PG_TYPES)
            write_row = copy.write_row
            for index, ((row, _phenomenon, result_type, number, value), observation_id) in enumerate(
                zip(prepared, ids, strict=True)
            ):
                try:
                    write_row(
                        (observation_id, row.datastream_id, to_datetime(row.phenomenon_time),
                         to_datetime(row.phenomenon_time_end), result_type, number,
                         None if value is None else Jsonb(value), to_datetime(row.result_time), row.result_quality,
                         to_datetime(row.valid_time_start), to_datetime(row.valid_time_end),
                         None if row.parameters is None else Jsonb(row.parameters), row.feature_id)
                    )  # fmt: skip
                except (TypeError, ValueError, AttributeError, OverflowError) as error:
                    raise StoreError(index, f"bad time ({error})") from None
        _upsert_current_postgres(
            cursor,
            ((row.datastream_id, observation_id, phenomenon, result_type, number, value)
             for (row, phenomenon, result_type, number, value), observation_id in zip(prepared, ids, strict=True)),
        )  # fmt: skip
    # The hourly rollups are not touched here: `roll_up` adds the rows past its watermark (the worker, every few
    # seconds), and `hourly` adds the rows not rolled up yet on the fly. In the batch, the upsert of about one
    # rollup row per observation cost twice the COPY (bench/observation_store.py).
    return ids


_PG_ROLLUP = """
INSERT INTO sensor_hourly AS h (datastream_id, hour, count, sum, min, max)
SELECT datastream_id, date_trunc('hour', phenomenon_time, 'UTC'), count(*), sum(result_number), min(result_number),
    max(result_number)
FROM sensor_observations WHERE id > %s AND id <= %s AND result_number IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (datastream_id, hour) DO UPDATE SET count = h.count + excluded.count, sum = h.sum + excluded.sum,
    min = least(h.min, excluded.min), max = greatest(h.max, excluded.max)
"""


def _settled_id(engine: Engine) -> int:
    """An id at or below which every batch has ended (PostgreSQL): the sequence's value while no batch runs."""
    with engine.begin() as connection:
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_FENCE,))
        last, called = connection.exec_driver_sql("SELECT last_value, is_called FROM sensor_observation_ids").one()
    return last if called else 0


def _watermark(connection: sa.Connection, key: str) -> int:
    value = connection.exec_driver_sql(
        "SELECT value FROM sensor_store_state WHERE key = %s", (key,)
    ).scalar_one_or_none()
    return value or 0


def _set_watermark(connection: sa.Connection, key: str, value: int) -> None:
    connection.exec_driver_sql(
        "INSERT INTO sensor_store_state (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def roll_up(engine: Engine, *, chunk_ids: int = ROLLUP_CHUNK_IDS) -> int:
    """PostgreSQL: add the observations past the watermark `rollup_id` to the hourly rollups, chunk by chunk of ids,
    each chunk with its watermark in one transaction; observation ids covered (0 on SQLite, whose compaction rolls
    up)."""
    if engine.dialect.name != "postgresql":
        return 0
    top = _settled_id(engine)
    covered = 0
    while True:
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
            mark = _watermark(connection, "rollup_id")
            if mark >= top:
                return covered
            high = min(top, mark + chunk_ids)
            connection.exec_driver_sql(_PG_ROLLUP, (mark, high))
            _set_watermark(connection, "rollup_id", high)
        covered += high - mark


# --- reads ------------------------------------------------------------------------------------------------------


def current_values(session: Session, datastream_ids: Iterable[int] | None = None) -> dict[int, CurrentValue]:
    """The current value of the given Datastreams (all when None), by Datastream id."""
    sqlite = _dialect(session) == "sqlite"
    sql = (
        "SELECT datastream_id, id, phenomenon_time, result_type, result_number, result_json FROM sensor_current_values"
    )
    params: dict[str, Any] = {}
    if datastream_ids is not None:
        ids = list(datastream_ids)
        if not ids:
            return {}
        if sqlite:
            sql += " WHERE datastream_id IN (SELECT value FROM json_each(:ids))"
            params["ids"] = json.dumps(ids)
        else:
            sql += " WHERE datastream_id = ANY(:ids)"
            params["ids"] = ids
    # The driver's cursor and plain tuples: SQLAlchemy's Row per row cost as much as the query for 10,000
    # (bench/current_values.py). Without the cyclic garbage collector while the 20,000 tuples are made: a full
    # collection they trigger walks the whole heap, and made every twentieth call four times slower (p50 22 ms,
    # p95 86 ms; without it p95 23 ms).
    values: dict[int, CurrentValue] = {}
    collecting = gc.isenabled()
    gc.disable()
    try:
        raw = _raw(session)
        if sqlite:
            rows = raw.execute(sql, params).fetchall()
        else:
            with raw.cursor() as cursor:
                rows = cursor.execute(*_driver(sql, params, False)).fetchall()
        _build_current(rows, values, CurrentValue, sqlite)
    finally:
        if collecting:
            gc.enable()
    return values


def _build_current(rows: list, values: dict, new: Any, sqlite: bool) -> None:
    for datastream_id, observation_id, time, rtype, number, value in rows:
        if rtype == RESULT_FLOAT:
            result = number
        elif rtype == RESULT_INT:
            result = int(number)
        else:
            result = _result(rtype, number, value, sqlite)
        values[datastream_id] = new(
            datastream_id,
            observation_id,
            EPOCH + timedelta(microseconds=time) if sqlite else time.astimezone(UTC),
            result,
        )


def _driver(sql: str, params: dict[str, Any], sqlite: bool) -> tuple[str, Any]:
    """Named parameters in the driver's style (:name for sqlite3, %(name)s for psycopg)."""
    if sqlite:
        return sql, params
    import re

    return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", sql), params


_OBS_COLUMNS = (
    "id, datastream_id, phenomenon_time, phenomenon_time_end, result_type, result_number, result_json, "
    "result_time, result_quality, valid_time_start, valid_time_end, parameters, feature_id"
)


def _observation(row: Sequence[Any], sqlite: bool) -> Observation:
    (oid, ds, t, t_end, rtype, number, value, result_time, quality, valid_start, valid_end, params, feature) = row
    if sqlite:
        t, t_end, result_time, valid_start, valid_end = map(from_us, (t, t_end, result_time, valid_start, valid_end))
        params = None if params is None else json.loads(params)
    else:
        t, t_end, result_time, valid_start, valid_end = map(_utc, (t, t_end, result_time, valid_start, valid_end))
    return Observation(
        oid,
        ds,
        t,
        t_end,
        _result(rtype, number, value, sqlite),
        result_time,
        quality,
        valid_start,
        valid_end,
        params,
        feature,
    )


def get_observation(session: Session, observation_id: int) -> Observation | None:
    """One observation by id, merged or not."""
    if _dialect(session) == "sqlite":
        row = segmented.get(_raw(session), observation_id)
        return None if row is None else _observation(row, True)
    sql = f"SELECT {_OBS_COLUMNS} FROM sensor_observations WHERE id = %s"
    row = session.connection().exec_driver_sql(sql, (observation_id,)).first()
    return None if row is None else _observation(row, False)


def list_observations(
    session: Session,
    *,
    datastream_id: int,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
    order: str = "asc",
) -> list[Observation]:
    """A Datastream's observations with start <= phenomenon time < end, by phenomenon time (then id)."""
    if order not in ("asc", "desc"):
        raise ValueError("order is asc or desc")
    sqlite = _dialect(session) == "sqlite"
    low = to_us(start) if start is not None else -(2**62)
    high = to_us(end) if end is not None else 2**62
    params: dict[str, Any] = {"ds": datastream_id, "limit": int(limit)}
    if sqlite:
        rows = segmented.list_rows(_raw(session), datastream_id, low, high, int(limit), order)
        return [_observation(row, True) for row in rows]
    else:
        params |= {"low": from_us(low), "high": from_us(high)} if start or end else {}
        where = "datastream_id = :ds" + (
            " AND phenomenon_time >= :low AND phenomenon_time < :high" if start or end else ""
        )
        sql = (
            f"SELECT {_OBS_COLUMNS} FROM sensor_observations WHERE {where} "
            f"ORDER BY phenomenon_time {order}, id {order} LIMIT :limit"
        )
    rows = session.connection().exec_driver_sql(*_driver(sql, params, sqlite)).fetchall()
    return [_observation(row, sqlite) for row in rows]


def hourly(session: Session, *, datastream_id: int, start: datetime, end: datetime) -> list[HourlyRow]:
    """Min, max, avg, sum and count of a Datastream's numeric results per UTC hour in [start, end)."""
    sqlite = _dialect(session) == "sqlite"
    low, high = to_us(start), to_us(end)
    if sqlite:
        rows = segmented.hourly_rows(_raw(session), datastream_id, low, high)
        return [HourlyRow(from_us(hour), int(n), lo, hi, total / n, total) for hour, n, total, lo, hi in rows]
    connection = session.connection()
    params = {"ds": datastream_id, "low": from_us(low), "high": from_us(high)}
    # The rollups up to the watermark and the raw rows past it, in one statement (one snapshot). The watermark is
    # given as a value, so that the planner finds the few rows past it by the id index; the statement also reads
    # the watermark of its own snapshot, and when the rollup moved it in between, it is asked again.
    params["mark"] = _watermark(connection, "rollup_id")
    for _attempt in range(10):
        rows = connection.exec_driver_sql(*_driver(_PG_HOURLY, params, False)).fetchall()
        seen = rows[0][0]
        if seen == params["mark"]:
            break
        params["mark"] = seen
    return [
        HourlyRow(hour.astimezone(UTC), int(count), lo, hi, total / count, total)
        for _mark, hour, count, total, lo, hi in rows
        if hour is not None
    ]


_PG_HOURLY = """
SELECT m.w, p.hour, p.n, p.s, p.lo, p.hi
FROM (SELECT coalesce((SELECT value FROM sensor_store_state WHERE key = 'rollup_id'), 0) AS w) AS m
LEFT JOIN (
    SELECT hour, sum(n)::int8 AS n, sum(s) AS s, min(lo) AS lo, max(hi) AS hi FROM (
        SELECT hour, count AS n, sum AS s, min AS lo, max AS hi FROM sensor_hourly
        WHERE datastream_id = :ds AND hour >= date_trunc('hour', :low, 'UTC') AND hour < :high
        UNION ALL
        SELECT date_trunc('hour', phenomenon_time, 'UTC'), count(*), sum(result_number), min(result_number),
            max(result_number)
        FROM sensor_observations WHERE id > :mark AND datastream_id = :ds
            AND phenomenon_time >= date_trunc('hour', :low, 'UTC') AND phenomenon_time < :high
            AND result_number IS NOT NULL
        GROUP BY 1
    ) AS parts GROUP BY hour
) AS p ON true
ORDER BY p.hour
"""


def existing_keys(session: Session, keys: Iterable[tuple[int, datetime]]) -> list[tuple[int, datetime]]:
    """Which of the (datastream id, phenomenon time) pairs are stored already (to skip redelivered messages)."""
    keys = list(keys)
    if not keys:
        return []
    sqlite = _dialect(session) == "sqlite"
    found = []
    connection = session.connection()
    for datastream_id, time in keys:
        if sqlite:
            if segmented.exists(_raw(session), datastream_id, to_us(time)):
                found.append((datastream_id, time))
            continue
        sql = "SELECT 1 FROM sensor_observations WHERE datastream_id = %s AND phenomenon_time = %s LIMIT 1"
        params = (datastream_id, to_datetime(time))
        if connection.exec_driver_sql(sql, params).first() is not None:
            found.append((datastream_id, time))
    return found


def all_observations_for_tests(session: Session) -> list[tuple[int, datetime, Any]]:
    """Every stored observation as (datastream id, phenomenon time, result), by id (tests; small stores only)."""
    sqlite = _dialect(session) == "sqlite"
    table = "sensor_observations_all" if sqlite else "sensor_observations"
    sql = f"SELECT {_OBS_COLUMNS} FROM {table} ORDER BY id"
    rows = session.connection().exec_driver_sql(sql).fetchall()
    return [(o.datastream_id, o.phenomenon_time, o.result) for o in (_observation(row, sqlite) for row in rows)]


# --- deletes and retention --------------------------------------------------------------------------------------


def delete_observation(session: Session, observation_id: int) -> bool:
    """Delete one observation; its hour's rollup is computed again from the raw rows, the current value too."""
    observation = get_observation(session, observation_id)
    if observation is None:
        return False
    sqlite = _dialect(session) == "sqlite"
    connection = session.connection()
    ds, t = observation.datastream_id, to_us(observation.phenomenon_time)
    if sqlite:
        segmented.delete(_raw(session), observation_id, ds, t)
    else:
        # The rollup waits until this transaction ends; an observation past the watermark is in no rollup yet.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
        mark = _watermark(connection, "rollup_id")
        connection.exec_driver_sql("DELETE FROM sensor_observations WHERE id = %s", (observation_id,))
        if observation_id <= mark:
            _roll_up_hour_postgres(connection, ds, t, mark)
    _recompute_current(session, ds, sqlite)
    return True


def _roll_up_hour_postgres(connection: sa.Connection, datastream_id: int, time_us: int, mark: int) -> None:
    """Compute the rollup of one Datastream's hour (the one holding `time_us`) again from its rows up to the
    watermark `mark` (the rows past it are aggregated on the fly until `roll_up` adds them)."""
    hour = time_us - time_us % HOUR_US
    low, high = from_us(hour), from_us(hour + HOUR_US)
    connection.exec_driver_sql("DELETE FROM sensor_hourly WHERE datastream_id = %s AND hour = %s", (datastream_id, low))
    connection.exec_driver_sql(
        "INSERT INTO sensor_hourly (datastream_id, hour, count, sum, min, max) "
        "SELECT datastream_id, %s, count(*), sum(result_number), min(result_number), max(result_number) "
        "FROM sensor_observations WHERE datastream_id = %s AND phenomenon_time >= %s AND phenomenon_time < %s "
        "AND id <= %s AND result_number IS NOT NULL GROUP BY datastream_id",
        (low, datastream_id, low, high, mark),
    )


_PG_ASSIGNMENTS = ", ".join(f"{name.strip()} = %s" for name in _OBS_COLUMNS.split(",")[1:])


def update_observation(session: Session, observation_id: int, new: NewObservation) -> bool:
    """Replace an observation's properties and links but its id (a SensorThings PATCH or PUT), in the caller's
    transaction (on SQLite holding the writer queue); False when there is none. The rollups of the hour it left and
    the hour it joined are computed again, as a delete does, the current values of its old and new Datastream too,
    and the new Datastream's time extents are widened to it (the compaction and `maintain` see only new ids).
    A result or time the store cannot keep raises StoreError (index 0) before anything is written."""
    old = get_observation(session, observation_id)
    if old is None:
        return False
    ds = new.datastream_id
    if ds not in _known_datastreams(session, {ds}):
        raise StoreError(0, f"no Datastream {ds}")
    result_type, number, value = _split_result(0, new.result)
    try:
        start = to_us(new.phenomenon_time)
    except (TypeError, ValueError, AttributeError, OverflowError) as error:
        raise StoreError(0, f"bad phenomenon time ({error})") from None
    end, result_time, valid_start, valid_end = (
        _optional_us(0, other)
        for other in (new.phenomenon_time_end, new.result_time, new.valid_time_start, new.valid_time_end)
    )
    sqlite = _dialect(session) == "sqlite"
    connection = session.connection()
    old_time = to_us(old.phenomenon_time)
    if sqlite:
        values = (ds, start, end, result_type, number, _json_text(value), result_time, new.result_quality,
                  valid_start, valid_end, _json_text(new.parameters), new.feature_id)  # fmt: skip
        segmented.update(_raw(session), observation_id, values, old.datastream_id, old_time)
    else:
        from psycopg.types.json import Jsonb

        values = (ds, from_us(start), from_us(end), result_type, number, None if value is None else Jsonb(value),
                  from_us(result_time), new.result_quality, from_us(valid_start), from_us(valid_end),
                  None if new.parameters is None else Jsonb(new.parameters), new.feature_id)  # fmt: skip
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
        mark = _watermark(connection, "rollup_id")
        connection.exec_driver_sql(
            f"UPDATE sensor_observations SET {_PG_ASSIGNMENTS} WHERE id = %s", (*values, observation_id)
        )
        if observation_id <= mark:
            _roll_up_hour_postgres(connection, old.datastream_id, old_time, mark)
            if (ds, start // HOUR_US) != (old.datastream_id, old_time // HOUR_US):
                _roll_up_hour_postgres(connection, ds, start, mark)
    for datastream_id in {old.datastream_id, ds}:
        _recompute_current(session, datastream_id, sqlite)
    _widen_extents(connection, [(ds, start, start if end is None else end, result_time, result_time)])
    return True


def _recompute_current(session: Session, datastream_id: int, sqlite: bool) -> None:
    connection = session.connection()
    ph = "?" if sqlite else "%s"
    connection.exec_driver_sql(f"DELETE FROM sensor_current_values WHERE datastream_id = {ph}", (datastream_id,))
    table = "sensor_observations_all" if sqlite else "sensor_observations"
    connection.exec_driver_sql(
        "INSERT INTO sensor_current_values (datastream_id, id, phenomenon_time, result_type, result_number, "
        f"result_json) SELECT datastream_id, id, phenomenon_time, result_type, result_number, result_json FROM {table} "
        f"WHERE datastream_id = {ph} ORDER BY phenomenon_time DESC, id DESC LIMIT 1",
        (datastream_id,),
    )


def delete_datastream_observations(session: Session, datastream_id: int) -> int:
    """Delete every observation, the current value and the rollups of a Datastream; call it when deleting the
    Datastream (the store's tables have no foreign key to it: a check per row would cost more than the insert)."""
    sqlite = _dialect(session) == "sqlite"
    ph = "?" if sqlite else "%s"
    connection = session.connection()
    if sqlite:
        deleted = segmented.delete_datastream(_raw(session), datastream_id)
    else:
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
        deleted = connection.exec_driver_sql(
            "DELETE FROM sensor_observations WHERE datastream_id = %s", (datastream_id,)
        ).rowcount
        connection.exec_driver_sql("DELETE FROM sensor_hourly WHERE datastream_id = %s", (datastream_id,))
    connection.exec_driver_sql(f"DELETE FROM sensor_current_values WHERE datastream_id = {ph}", (datastream_id,))
    forget_datastreams(session.get_bind())
    return deleted


def purge_before(session: Session, *, cutoff: datetime, datastream_id: int | None = None) -> int:
    """Delete raw observations older than `cutoff` (of one Datastream, or all); rollups and current values stay.

    On SQLite only rows in segments go (the journal's rows are not rolled up yet: the next purge after a compaction
    takes them), and a segment wholly older than the cutoff loses its raw table at once; on PostgreSQL whole month
    partitions older than the cutoff are dropped, which costs nothing."""
    limit = to_us(cutoff)
    connection = session.connection()
    if _dialect(session) == "sqlite":
        return segmented.purge(_raw(session), limit, datastream_id)
    # Only rows already rolled up go (id <= the watermark): the others go at a later purge, once rolled up.
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
    mark = _watermark(connection, "rollup_id")
    if datastream_id is not None:
        return connection.exec_driver_sql(
            "DELETE FROM sensor_observations WHERE datastream_id = %s AND phenomenon_time < %s AND id <= %s",
            (datastream_id, cutoff, mark),
        ).rowcount
    deleted = 0
    for name, upper in _partitions(connection):
        if upper is not None and upper <= cutoff:
            pending = connection.exec_driver_sql(f"SELECT 1 FROM {name} WHERE id > %s LIMIT 1", (mark,)).first()
            if pending is not None:
                continue
            deleted += connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
            connection.exec_driver_sql(f"DROP TABLE {name}")
    deleted += connection.exec_driver_sql(
        "DELETE FROM sensor_observations WHERE phenomenon_time < %s AND id <= %s", (cutoff, mark)
    ).rowcount
    return deleted


def apply_retention(engine: Engine, *, settings: Settings, now: datetime | None = None) -> int:
    """Purge raw observations older than `sensor_raw_retention_days` (0 keeps them forever); rows deleted."""
    days = settings.sensor_raw_retention_days
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    with Session(engine) as session:
        session.connection(execution_options={WRITE_OPTION: True})
        deleted = purge_before(session, cutoff=cutoff)
        session.commit()
    return deleted


# --- SQLite compaction -------------------------------------------------------------------------------------------


def journal_rows(engine: Engine) -> int:
    """About how many observations wait in the journal (SQLite; 0 on PostgreSQL)."""
    if engine.dialect.name != "sqlite":
        return 0
    with engine.connect() as connection:
        low, high = connection.exec_driver_sql("SELECT min(id), max(id) FROM sensor_obs_journal").one()
    return 0 if low is None else high - low + 1


@dataclass(slots=True)
class CompactionStats:
    """What one compaction did: rows merged, its transactions' durations (each holds the writer queue)."""

    rows: int = 0
    chunks: int = 0
    seconds: float = 0.0
    longest_chunk_seconds: float = 0.0


def compact(
    engine: Engine, *, settings: Settings | None = None, chunk_rows: int | None = None, max_rows: int | None = None
) -> CompactionStats:
    """Merge the journal into the clustered table and the hourly rollups (SQLite); on PostgreSQL, `roll_up`.

    Chunk by chunk in id order. Each chunk is first sorted and aggregated into the connection's temporary tables
    while only reading the database (ingest goes on meanwhile), then copied in one transaction that takes the writer
    queue like any writer, so ingest waits at most for one chunk's copy. Merges the journal as it is when called, or
    only its first `max_rows` rows."""
    import time

    stats = CompactionStats()
    if engine.dialect.name != "sqlite":
        began = time.perf_counter()
        stats.rows = roll_up(engine)
        vacuum_current_values(engine)
        stats.seconds = time.perf_counter() - began
        return stats
    chunk = chunk_rows or (settings.sensor_compact_chunk_rows if settings is not None else DEFAULT_CHUNK_ROWS)
    # A segment is closed once it holds as many rows as trigger a compaction (a million by default).
    segment_rows = settings.sensor_compact_rows if settings is not None else 1_000_000
    began = time.perf_counter()
    # A run merges the journal as it is when the run starts; rows appended meanwhile wait for the next run.
    with engine.connect() as connection:
        run_high = _run_high(connection, max_rows)
    while run_high is not None:
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            # The sort in memory and on two threads (SQLite's sorter: 2.4 s per million instead of 3.8 s here), a
            # bigger page cache for the copy; a merge only moves rows the journal keeps until it commits, so one
            # lost in a power cut is done again and its commit need not wait for the disk (the next ingest commit
            # syncs the WAL, merge included). Pragmas are set outside transactions (SQLite refuses some inside) and
            # reset before the connection goes back to the pool.
            for pragma in _COMPACTION_PRAGMAS:
                raw.execute(f"PRAGMA {pragma[0]} = {pragma[1]}")
            try:
                with connection.begin():
                    prepared = segmented.prepare_chunk(raw, run_high, chunk)
                if prepared is None:
                    break
                started = time.perf_counter()
                connection.execution_options(**{WRITE_OPTION: True})
                with connection.begin():
                    merged = segmented.merge_prepared(raw, prepared, segment_rows)
                    if merged is not None:
                        _widen_extents_from_prepared(raw)
                # Ingest waits no longer than the copy: the queue is given back before the checkpoint, which
                # writes the merge's pages into the database file (0.2 s per million here) beside the writers that
                # follow (a PASSIVE checkpoint takes no lock they need; their own automatic checkpoint, meanwhile,
                # finds this one running and skips) and before the temporary tables are dropped.
                release_writer_queue(connection)
                took = time.perf_counter() - started
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
                segmented.drop_prepared(raw)
            finally:
                for pragma in _COMPACTION_PRAGMAS:
                    raw.execute(f"PRAGMA {pragma[0]} = {pragma[2]}")
        if merged is None:
            continue  # the journal changed under the preparation (a delete): prepared again
        stats.rows += merged
        stats.chunks += 1
        stats.longest_chunk_seconds = max(stats.longest_chunk_seconds, took)
    stats.seconds = time.perf_counter() - began
    return stats


# (pragma, during a compaction, after it)
_COMPACTION_PRAGMAS = (
    ("synchronous", "NORMAL", "FULL"),
    # The merge's commit does not checkpoint while it holds the writer queue: `compact` checkpoints after it.
    ("wal_autocheckpoint", "0", "1000"),
    ("temp_store", "MEMORY", "DEFAULT"),
    ("threads", "2", "0"),
    ("cache_size", "-262144", "-2000"),
)


# Dead row versions of sensor_current_values past which the worker vacuums it (PostgreSQL).
CURRENT_VALUES_VACUUM_DEAD = 20_000


def vacuum_current_values(engine: Engine, *, min_dead: int = CURRENT_VALUES_VACUUM_DEAD) -> bool:
    """PostgreSQL: VACUUM `sensor_current_values` once it holds more than `min_dead` dead row versions; whether it
    did. Every batch updates the row of each Datastream it touches: ten million observations over 10,000 Datastreams
    left some 700,000 dead versions (87 MB) on a server with autovacuum off, and reading all current values took
    60 ms instead of 20 (bench/current_values.py). A table of a few thousand live rows vacuums in milliseconds, and
    VACUUM does not block the ingest. The worker calls it with the rollup, every few seconds."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        dead = connection.exec_driver_sql(
            "SELECT n_dead_tup FROM pg_stat_user_tables "
            "WHERE relname = 'sensor_current_values' AND schemaname = current_schema()"
        ).scalar()
        if dead is None or dead < min_dead:
            return False
        connection.exec_driver_sql("VACUUM sensor_current_values")
    return True


def _run_high(connection: sa.Connection, max_rows: int | None) -> int | None:
    """The highest journal id a compaction run merges: the whole journal, or its first `max_rows` rows."""
    if max_rows is None:
        return connection.exec_driver_sql("SELECT max(id) FROM sensor_obs_journal").scalar()
    return connection.exec_driver_sql(
        "SELECT coalesce((SELECT id FROM sensor_obs_journal ORDER BY id LIMIT 1 OFFSET ?), "
        "(SELECT max(id) FROM sensor_obs_journal))",
        (max_rows - 1,),
    ).scalar()


_LAST_COMPACTION: weakref.WeakKeyDictionary[Engine, datetime] = weakref.WeakKeyDictionary()


def compact_if_due(engine: Engine, *, settings: Settings, now: datetime | None = None) -> int:
    """Compact when the journal holds `sensor_compact_rows` or the last compaction is older than
    `sensor_compact_interval_seconds` (the worker's job, every few seconds); observations merged. On PostgreSQL
    the rollup of the observations past the watermark, every time (`roll_up`)."""
    if engine.dialect.name != "sqlite":
        return compact(engine, settings=settings).rows  # the rollup and the current values' vacuum
    now = now or utcnow()
    waiting = journal_rows(engine)
    last = _LAST_COMPACTION.get(engine)
    old = last is None or (now - last).total_seconds() >= settings.sensor_compact_interval_seconds
    if waiting == 0 or (waiting < settings.sensor_compact_rows and not old):
        return 0
    _LAST_COMPACTION[engine] = now
    return compact(engine, settings=settings).rows


_MERGE_COLUMNS = (
    "datastream_id, phenomenon_time, id, phenomenon_time_end, result_type, result_number, result_json, "
    "result_time, result_quality, valid_time_start, valid_time_end, parameters, feature_id"
)


def _widen_extents_from_prepared(raw: Any) -> None:
    """Widen the Datastreams' time extents to the prepared chunk's (`store_sqlite.prepare_chunk`), in SQL (10,000
    UPDATEs from Python took longer than a merge): times written as SQLAlchemy writes a UTCDateTime on SQLite,
    'YYYY-MM-DD HH:MM:SS.ffffff', whose text order is time order."""
    raw.execute(
        "UPDATE sensor_datastreams SET "
        "phenomenon_time_start = coalesce(min(phenomenon_time_start, e.p0), e.p0), "
        "phenomenon_time_end = coalesce(max(phenomenon_time_end, e.p1), e.p1), "
        "result_time_start = coalesce(min(result_time_start, e.r0), e.r0, result_time_start), "
        "result_time_end = coalesce(max(result_time_end, e.r1), e.r1, result_time_end) "
        f"FROM (SELECT datastream_id AS ds, {_text('p0')} AS p0, {_text('p1')} AS p1, {_text('r0')} AS r0, "
        f"{_text('r1')} AS r1 FROM temp.{segmented.PREPARED_EXTENTS}) AS e WHERE sensor_datastreams.id = e.ds"
    )


def _text(expression: str) -> str:
    """SQL of integer microseconds as SQLAlchemy's SQLite datetime text (NULL stays NULL)."""
    return (
        f"strftime('%Y-%m-%d %H:%M:%S', ({expression}) / 1000000, 'unixepoch') "
        f"|| printf('.%06d', ({expression}) % 1000000)"
    )


def _widen_extents(connection: sa.Connection, extents: Sequence[Sequence[Any]]) -> None:
    """Widen the Datastreams' phenomenon and result time extents to include (ds, t0, t1, r0, r1) rows (µs)."""
    if not extents:
        return
    table = Datastream.__table__
    ids = [row[0] for row in extents]
    current = {
        row.id: row
        for row in connection.execute(
            sa.select(
                table.c.id, table.c.phenomenon_time_start, table.c.phenomenon_time_end, table.c.result_time_start,
                table.c.result_time_end,
            ).where(table.c.id.in_(ids))
        )
    }  # fmt: skip
    updates = []
    for ds, t0, t1, r0, r1 in extents:
        row = current.get(ds)
        if row is None:
            continue
        values = {
            "p0": _widen(row.phenomenon_time_start, t0, min), "p1": _widen(row.phenomenon_time_end, t1, max),
            "r0": _widen(row.result_time_start, r0, min), "r1": _widen(row.result_time_end, r1, max),
        }  # fmt: skip
        if values != {"p0": row.phenomenon_time_start, "p1": row.phenomenon_time_end,
                      "r0": row.result_time_start, "r1": row.result_time_end}:  # fmt: skip
            updates.append({"ds": ds, **values})
    if updates:
        connection.execute(
            table.update()
            .where(table.c.id == sa.bindparam("ds"))
            .values(
                phenomenon_time_start=sa.bindparam("p0", type_=table.c.phenomenon_time_start.type),
                phenomenon_time_end=sa.bindparam("p1", type_=table.c.phenomenon_time_end.type),
                result_time_start=sa.bindparam("r0", type_=table.c.result_time_start.type),
                result_time_end=sa.bindparam("r1", type_=table.c.result_time_end.type),
            ),
            updates,
        )


def _widen(existing: datetime | None, value: int | datetime | None, pick: Any) -> datetime | None:
    if value is None:
        return existing
    new = from_us(value) if isinstance(value, int) else value
    return new if existing is None else pick(existing, new)


# --- PostgreSQL partitions ----------------------------------------------------------------------------------------


def partition_name(year: int, month: int) -> str:
    """The name of a month's partition of `sensor_observations`."""
    return f"sensor_observations_p{year:04d}_{month:02d}"


def _month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    following = (year + month // 12, month % 12 + 1)
    return datetime(year, month, 1, tzinfo=UTC), datetime(*following, 1, tzinfo=UTC)


def _partitions(connection: sa.Connection) -> list[tuple[str, datetime | None]]:
    """The month partitions (name, upper bound), by name; the DEFAULT partition is not among them."""
    names = connection.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'sensor_observations'::regclass AND c.relname LIKE 'sensor_observations_p%%' "
        "ORDER BY c.relname"
    ).scalars()
    result = []
    for name in names:
        year, month = int(name[-7:-3]), int(name[-2:])
        result.append((name, _month_bounds(year, month)[1]))
    return result


def create_month_partition(connection: sa.Connection, year: int, month: int) -> bool:
    """Create a month's partition unless it exists, moving that month's rows out of the DEFAULT partition.

    One transaction (the caller's): the rows are copied into a new table, deleted from the DEFAULT partition and
    the table attached; ATTACH takes a weaker lock than CREATE … PARTITION OF, and the CHECK constraint added
    first spares it a scan."""
    name = partition_name(year, month)
    if connection.exec_driver_sql("SELECT to_regclass(%s)", (name,)).scalar_one() is not None:
        return False
    low, high = _month_bounds(year, month)
    connection.exec_driver_sql("LOCK TABLE sensor_observations_default IN SHARE ROW EXCLUSIVE MODE")
    connection.exec_driver_sql(f"CREATE TABLE {name} (LIKE sensor_observations INCLUDING DEFAULTS)")
    connection.exec_driver_sql(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK "
        f"(phenomenon_time >= '{low.isoformat()}' AND phenomenon_time < '{high.isoformat()}')"
    )
    connection.exec_driver_sql(
        f"WITH moved AS (DELETE FROM sensor_observations_default WHERE phenomenon_time >= %s "
        f"AND phenomenon_time < %s RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        (low, high),
    )
    connection.exec_driver_sql(
        f"ALTER TABLE sensor_observations ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
    )
    connection.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
    return True


def maintain(engine: Engine, *, settings: Settings | None = None, now: datetime | None = None) -> dict[str, int]:
    """Periodic upkeep: on PostgreSQL month partitions ahead (this month and the next two) and for the months that
    landed in the DEFAULT partition, the hourly rollups (`roll_up`), and the Datastreams' time extents of the rows
    added since the last run; on SQLite the extents and rollups follow the compaction, so nothing."""
    done = {"partitions": 0, "extents": 0, "rolled_up": 0}
    if engine.dialect.name != "postgresql":
        return done
    now = now or utcnow()
    with engine.begin() as connection:
        months = {(now.year, now.month)}
        year, month = now.year, now.month
        for _ in range(2):
            year, month = year + month // 12, month % 12 + 1
            months.add((year, month))
        for (stray,) in connection.exec_driver_sql(
            "SELECT DISTINCT date_trunc('month', phenomenon_time, 'UTC') FROM sensor_observations_default"
        ):
            stray = stray.astimezone(UTC)
            months.add((stray.year, stray.month))
        for year, month in sorted(months):
            done["partitions"] += create_month_partition(connection, year, month)
    done["rolled_up"] = roll_up(engine)
    # Up to an id every batch below has ended at (a batch with smaller ids may commit after one with larger ones).
    top = _settled_id(engine)
    with engine.begin() as connection:
        mark = connection.exec_driver_sql(
            "SELECT value FROM sensor_store_state WHERE key = 'extents_id' FOR UPDATE"
        ).scalar_one_or_none()
        mark = mark or 0
        if top > mark:
            extents = connection.exec_driver_sql(
                "SELECT datastream_id, min(phenomenon_time), max(coalesce(phenomenon_time_end, phenomenon_time)), "
                "min(result_time), max(result_time) FROM sensor_observations WHERE id > %s AND id <= %s "
                "GROUP BY datastream_id",
                (mark, top),
            ).fetchall()
            _widen_extents(connection, extents)
            done["extents"] = len(extents)
            connection.exec_driver_sql(
                "INSERT INTO sensor_store_state (key, value) VALUES ('extents_id', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (top,),
            )
    return done


def is_store_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object`: False for the store's tables and their indexes (not ORM models, see module)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    if table is None:
        return True
    return not (table in STORE_TABLES or table.startswith(STORE_TABLE_PREFIXES))
