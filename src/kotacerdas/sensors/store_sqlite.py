"""The SQLite side of the observation store: the journal's rows merged into segments (see sensors/store.py).

A segment is a pair of `WITHOUT ROWID` tables made by the compaction: `sensor_obs_sNNNNNN`, clustered by
(datastream_id, phenomenon_time, id) with a unique index on id, and `sensor_obs_hNNNNNN`, its hourly rollups keyed
(datastream_id, hour). Segments cover disjoint id ranges (the journal is merged in id order), and the catalog
`sensor_obs_segments` keeps each one's id and time range, so a read goes only to the segments it needs. Retention
drops a segment's raw table whole and keeps its rollups.

A compaction chunk is prepared first, outside the writer queue (`prepare_chunk`): the journal's rows sorted by the
segments' key, their hourly rollups and the Datastreams' time extents, in the connection's temporary tables, which
only reads the database, so ingest goes on beside it. Then one write transaction copies it (`merge_prepared`). A
chunk of at least half a segment fills a new segment of its own: its rows go in as appends, the id index is built
after them by one sort and its rollups are copied, 2.6 s per million instead of 5.7 s appended into a segment of a
million rows, and the writer queue is held for about a third of that (bench/observation_store.py). A smaller chunk
(a quiet installation's compaction every few minutes) goes into the newest segment while that holds fewer than
`sensor_compact_rows`: a merge then writes into a tree of at most a million rows, which stays in the page cache,
instead of touching a leaf of one ever-growing table per Datastream (12 s per million at 1M stored, 25 s at 8M).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOUR_US = 3_600_000_000
COLUMNS = (
    "id, datastream_id, phenomenon_time, phenomenon_time_end, result_type, result_number, result_json, "
    "result_time, result_quality, valid_time_start, valid_time_end, parameters, feature_id"
)
_KEY_COLUMNS = (
    "datastream_id, phenomenon_time, id, phenomenon_time_end, result_type, result_number, result_json, "
    "result_time, result_quality, valid_time_start, valid_time_end, parameters, feature_id"
)
HOUR_OF = f"phenomenon_time - ((phenomenon_time % {HOUR_US}) + {HOUR_US}) % {HOUR_US}"
# Every column but id, as `name = ?` for an UPDATE of one observation.
_ASSIGNMENTS = ", ".join(f"{name.strip()} = ?" for name in COLUMNS.split(",")[1:])
# The key in sensor_store_state counting the changes to the journal's rows other than appends (a delete, an
# update, a merge): a prepared chunk is merged only if none happened since it was prepared, so neither a stale row
# nor a chunk that a concurrent compaction (another process's worker) merged already is copied.
JOURNAL_CHANGES = "journal_changes"


def raw_name(seq: int) -> str:
    return f"sensor_obs_s{seq:06d}"


def rollup_name(seq: int) -> str:
    return f"sensor_obs_h{seq:06d}"


def segments(raw: Any) -> list[tuple]:
    """(seq, min_id, max_id, min_time, max_time, rows, has_raw) of every segment, oldest first."""
    return raw.execute(
        "SELECT seq, min_id, max_id, min_time, max_time, row_count, has_raw FROM sensor_obs_segments ORDER BY seq"
    ).fetchall()


def create_segment(raw: Any, *, id_index: bool = True) -> int:
    """A new, empty segment; without its id index when the caller fills it first (`index_ids` after)."""
    seq = raw.execute("SELECT coalesce(max(seq), 0) + 1 FROM sensor_obs_segments").fetchone()[0]
    raw.execute(
        f"""CREATE TABLE {raw_name(seq)} (
            datastream_id INTEGER NOT NULL, phenomenon_time INTEGER NOT NULL, id INTEGER NOT NULL,
            phenomenon_time_end INTEGER, result_type INTEGER NOT NULL, result_number REAL, result_json TEXT,
            result_time INTEGER, result_quality TEXT, valid_time_start INTEGER, valid_time_end INTEGER,
            parameters TEXT, feature_id INTEGER, PRIMARY KEY (datastream_id, phenomenon_time, id)
        ) WITHOUT ROWID"""
    )
    if id_index:
        index_ids(raw, seq)
    raw.execute(
        f"""CREATE TABLE {rollup_name(seq)} (
            datastream_id INTEGER NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
            min REAL NOT NULL, max REAL NOT NULL, PRIMARY KEY (datastream_id, hour)
        ) WITHOUT ROWID"""
    )
    raw.execute(
        "INSERT INTO sensor_obs_segments (seq, min_id, max_id, min_time, max_time, row_count, has_raw) "
        "VALUES (?, NULL, NULL, NULL, NULL, 0, 1)",
        (seq,),
    )
    return seq


def index_ids(raw: Any, seq: int) -> None:
    raw.execute(f"CREATE UNIQUE INDEX ix_{raw_name(seq)}_id ON {raw_name(seq)} (id)")


def recreate_view(raw: Any) -> None:
    """`sensor_observations_all`: the journal and every segment's raw table, as one."""
    parts = [f"SELECT {COLUMNS} FROM {raw_name(s[0])}" for s in segments(raw) if s[6]]
    parts.append(f"SELECT {COLUMNS} FROM sensor_obs_journal")
    raw.execute("DROP VIEW IF EXISTS sensor_observations_all")
    raw.execute("CREATE VIEW sensor_observations_all AS " + " UNION ALL ".join(parts))


# The temporary tables of a prepared chunk (the connection's own temp schema, in memory during a compaction).
PREPARED_ROWS = "kc_chunk"
PREPARED_HOURS = "kc_chunk_hours"
PREPARED_EXTENTS = "kc_chunk_extents"


@dataclass(frozen=True, slots=True)
class PreparedChunk:
    high: int
    rows: int
    min_id: int
    max_id: int
    min_time: int
    max_time: int
    changes: int  # journal_changes() when prepared


def journal_changes(raw: Any) -> int:
    row = raw.execute("SELECT value FROM sensor_store_state WHERE key = ?", (JOURNAL_CHANGES,)).fetchone()
    return 0 if row is None else row[0]


def _journal_changed(raw: Any) -> None:
    raw.execute(
        "INSERT INTO sensor_store_state (key, value) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET value = value + 1",
        (JOURNAL_CHANGES,),
    )


def prepare_chunk(raw: Any, run_high: int, chunk: int) -> PreparedChunk | None:
    """Sort the journal's next `chunk` rows (ids up to `run_high`) by the segments' key, with their hourly rollups
    and the Datastreams' time extents, into this connection's temporary tables; None when nothing is left.

    It only reads the database (the temporary tables are the connection's own), so ingest goes on meanwhile: the
    sort and the aggregations are most of a merge's work (2.5 s of 6 per million), and the writer queue is then held
    only to copy them (`merge_prepared`)."""
    drop_prepared(raw)
    changes = journal_changes(raw)
    low = raw.execute("SELECT min(id) FROM sensor_obs_journal").fetchone()[0]
    if low is None or low > run_high:
        return None
    high = raw.execute(
        "SELECT coalesce((SELECT id FROM sensor_obs_journal WHERE id <= ? ORDER BY id LIMIT 1 OFFSET ?), ?)",
        (run_high, chunk - 1, run_high),
    ).fetchone()[0]
    raw.execute(
        f"CREATE TEMP TABLE {PREPARED_ROWS} AS SELECT {_KEY_COLUMNS} FROM main.sensor_obs_journal WHERE id <= ? "
        "ORDER BY datastream_id, phenomenon_time, id",
        (high,),
    )
    raw.execute(
        f"CREATE TEMP TABLE {PREPARED_HOURS} AS SELECT datastream_id, {HOUR_OF} AS hour, count(*) AS count, "
        "sum(result_number) AS sum, min(result_number) AS min, max(result_number) AS max "
        f"FROM temp.{PREPARED_ROWS} WHERE result_number IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
    )
    raw.execute(
        f"CREATE TEMP TABLE {PREPARED_EXTENTS} AS SELECT datastream_id, min(phenomenon_time) AS p0, "
        "max(coalesce(phenomenon_time_end, phenomenon_time)) AS p1, min(result_time) AS r0, max(result_time) AS r1 "
        f"FROM temp.{PREPARED_ROWS} GROUP BY datastream_id"
    )
    rows, min_id, max_id, min_time, max_time = raw.execute(
        f"SELECT count(*), min(id), max(id), min(phenomenon_time), max(phenomenon_time) FROM temp.{PREPARED_ROWS}"
    ).fetchone()
    if not rows:
        return None
    return PreparedChunk(high, rows, min_id, max_id, min_time, max_time, changes)


def drop_prepared(raw: Any) -> None:
    for table in (PREPARED_ROWS, PREPARED_HOURS, PREPARED_EXTENTS):
        raw.execute(f"DROP TABLE IF EXISTS temp.{table}")


def merge_prepared(raw: Any, chunk: PreparedChunk, segment_rows: int) -> int | None:
    """In the caller's write transaction, move a prepared chunk from the journal into a segment; rows moved, or
    None when the journal's rows changed since it was prepared (a delete or an update), and nothing was done.

    A chunk of at least half a segment, or one with no open segment to go to, fills a new segment of its own (its
    rows as appends, then its id index by one sort); a smaller one goes into the open segment."""
    # A counter, not a count of the journal's rows up to the chunk's end: that count took 20-50 ms of the writer
    # queue per million, and an update leaves it as it was.
    if journal_changes(raw) != chunk.changes:
        return None
    existing = segments(raw)
    last = existing[-1] if existing else None
    if last is not None and last[6] and last[5] < segment_rows and chunk.rows < segment_rows // 2:
        seq, fresh = last[0], False
    else:
        seq, fresh = create_segment(raw, id_index=False), True
    raw.execute(
        f"INSERT INTO {raw_name(seq)} ({_KEY_COLUMNS}) SELECT {_KEY_COLUMNS} FROM temp.{PREPARED_ROWS} ORDER BY rowid"
    )
    if fresh:
        index_ids(raw, seq)
    table = rollup_name(seq)
    raw.execute(
        f"INSERT INTO {table} (datastream_id, hour, count, sum, min, max) "
        f"SELECT datastream_id, hour, count, sum, min, max FROM temp.{PREPARED_HOURS} WHERE true ORDER BY rowid "
        f"ON CONFLICT (datastream_id, hour) DO UPDATE SET count = {table}.count + excluded.count, "
        f"sum = {table}.sum + excluded.sum, min = min({table}.min, excluded.min), max = max({table}.max, excluded.max)"
    )
    raw.execute(
        "UPDATE sensor_obs_segments SET row_count = row_count + ?, "
        "min_id = coalesce(min(min_id, ?), ?), max_id = coalesce(max(max_id, ?), ?), "
        "min_time = coalesce(min(min_time, ?), ?), max_time = coalesce(max(max_time, ?), ?) WHERE seq = ?",
        (chunk.rows, chunk.min_id, chunk.min_id, chunk.max_id, chunk.max_id, chunk.min_time, chunk.min_time,
         chunk.max_time, chunk.max_time, seq),
    )  # fmt: skip
    if fresh:
        recreate_view(raw)
    if chunk.high >= raw.execute("SELECT max(id) FROM sensor_obs_journal").fetchone()[0]:
        # The whole journal: SQLite empties a table deleted without WHERE much faster (no row by row).
        raw.execute("DELETE FROM sensor_obs_journal")
    else:
        raw.execute("DELETE FROM sensor_obs_journal WHERE id <= ?", (chunk.high,))
    _journal_changed(raw)  # a chunk another compaction prepared meanwhile is not copied a second time
    return chunk.rows


def segment_of(raw: Any, observation_id: int) -> int | None:
    row = raw.execute(
        "SELECT seq FROM sensor_obs_segments WHERE has_raw AND min_id <= ? AND max_id >= ?",
        (observation_id, observation_id),
    ).fetchone()
    return None if row is None else row[0]


def get(raw: Any, observation_id: int) -> tuple | None:
    row = raw.execute(f"SELECT {COLUMNS} FROM sensor_obs_journal WHERE id = ?", (observation_id,)).fetchone()
    if row is not None:
        return row
    seq = segment_of(raw, observation_id)
    if seq is None:
        return None
    return raw.execute(f"SELECT {COLUMNS} FROM {raw_name(seq)} WHERE id = ?", (observation_id,)).fetchone()


def _overlapping(raw: Any, low: int, high: int, *, with_raw: bool = True) -> list[int]:
    """Segments with observations in [low, high)."""
    return [s[0] for s in segments(raw) if (s[6] or not with_raw) and s[3] is not None and s[4] >= low and s[3] < high]


def list_rows(raw: Any, datastream_id: int, low: int, high: int, limit: int, order: str) -> list[tuple]:
    where = "datastream_id = :ds AND phenomenon_time >= :low AND phenomenon_time < :high"
    ordering = f"ORDER BY phenomenon_time {order}, id {order}"
    tables = [raw_name(seq) for seq in _overlapping(raw, low, high)] + ["sensor_obs_journal"]
    parts = [f"SELECT * FROM (SELECT {COLUMNS} FROM {t} WHERE {where} {ordering} LIMIT :limit)" for t in tables]
    sql = " UNION ALL ".join(parts) + f" {ordering} LIMIT :limit"
    return raw.execute(sql, {"ds": datastream_id, "low": low, "high": high, "limit": limit}).fetchall()


def hourly_rows(raw: Any, datastream_id: int, low: int, high: int) -> list[tuple]:
    """(hour, count, sum, min, max) of the hours in [hour of low, high), from the segments' rollups and the journal."""
    low_hour = low - low % HOUR_US
    parts = [
        f"SELECT hour, count AS n, sum AS s, min AS lo, max AS hi FROM {rollup_name(seq)} "
        "WHERE datastream_id = :ds AND hour >= :low_hour AND hour < :high"
        for seq in _overlapping(raw, low_hour, high, with_raw=False)
    ]
    parts.append(
        f"SELECT {HOUR_OF} AS hour, count(*) AS n, sum(result_number) AS s, min(result_number) AS lo, "
        "max(result_number) AS hi "
        "FROM sensor_obs_journal WHERE datastream_id = :ds AND phenomenon_time >= :low_hour "
        "AND phenomenon_time < :high AND result_number IS NOT NULL GROUP BY 1"
    )
    sql = (
        "SELECT hour, sum(n), sum(s), min(lo), max(hi) FROM ("
        + " UNION ALL ".join(parts)
        + ") GROUP BY hour ORDER BY hour"
    )
    return raw.execute(sql, {"ds": datastream_id, "low_hour": low_hour, "high": high}).fetchall()


def exists(raw: Any, datastream_id: int, time_us: int) -> bool:
    tables = [raw_name(seq) for seq in _overlapping(raw, time_us, time_us + 1)] + ["sensor_obs_journal"]
    for table in tables:
        found = raw.execute(
            f"SELECT 1 FROM {table} WHERE datastream_id = ? AND phenomenon_time = ? LIMIT 1", (datastream_id, time_us)
        ).fetchone()
        if found is not None:
            return True
    return False


def delete(raw: Any, observation_id: int, datastream_id: int, time_us: int) -> None:
    """Delete one observation; its hour in its segment's rollups is computed again from the raw rows left."""
    if raw.execute("DELETE FROM sensor_obs_journal WHERE id = ?", (observation_id,)).rowcount:
        _journal_changed(raw)
        return
    seq = segment_of(raw, observation_id)
    if seq is None:
        return
    raw.execute(f"DELETE FROM {raw_name(seq)} WHERE id = ?", (observation_id,))
    _roll_up_hour(raw, seq, datastream_id, time_us)


def update(raw: Any, observation_id: int, values: tuple, datastream_id: int, time_us: int) -> None:
    """Replace one observation's columns but its id (`values`, in the order of COLUMNS without id); it was of
    `datastream_id` at `time_us`. In a segment, the hours it left and joined are rolled up again from the raw rows,
    and the segment's time range widened, so that reads keep finding it there."""
    if raw.execute(f"UPDATE sensor_obs_journal SET {_ASSIGNMENTS} WHERE id = ?", (*values, observation_id)).rowcount:
        _journal_changed(raw)
        return
    seq = segment_of(raw, observation_id)
    if seq is None:
        return
    raw.execute(f"UPDATE {raw_name(seq)} SET {_ASSIGNMENTS} WHERE id = ?", (*values, observation_id))
    new_datastream, new_time = values[0], values[1]
    raw.execute(
        "UPDATE sensor_obs_segments SET min_time = min(min_time, ?), max_time = max(max_time, ?) WHERE seq = ?",
        (new_time, new_time, seq),
    )
    old_hour, new_hour = time_us - time_us % HOUR_US, new_time - new_time % HOUR_US
    _roll_up_hour(raw, seq, datastream_id, old_hour)
    if (new_datastream, new_hour) != (datastream_id, old_hour):
        _roll_up_hour(raw, seq, new_datastream, new_hour)


def _roll_up_hour(raw: Any, seq: int, datastream_id: int, time_us: int) -> None:
    """Compute the rollup of one Datastream's hour (the one holding `time_us`) in a segment again from its raw rows."""
    hour = time_us - time_us % HOUR_US
    rollups = rollup_name(seq)
    raw.execute(f"DELETE FROM {rollups} WHERE datastream_id = ? AND hour = ?", (datastream_id, hour))
    raw.execute(
        f"INSERT INTO {rollups} (datastream_id, hour, count, sum, min, max) "
        "SELECT datastream_id, ?, count(*), sum(result_number), min(result_number), max(result_number) "
        f"FROM {raw_name(seq)} WHERE datastream_id = ? AND phenomenon_time >= ? AND phenomenon_time < ? "
        "AND result_number IS NOT NULL GROUP BY datastream_id",
        (hour, datastream_id, hour, hour + HOUR_US),
    )


def delete_datastream(raw: Any, datastream_id: int) -> int:
    deleted = raw.execute("DELETE FROM sensor_obs_journal WHERE datastream_id = ?", (datastream_id,)).rowcount
    if deleted:
        _journal_changed(raw)
    for seq, *_rest, has_raw in segments(raw):
        if has_raw:
            deleted += raw.execute(f"DELETE FROM {raw_name(seq)} WHERE datastream_id = ?", (datastream_id,)).rowcount
        raw.execute(f"DELETE FROM {rollup_name(seq)} WHERE datastream_id = ?", (datastream_id,))
    return deleted


def purge(raw: Any, cutoff_us: int, datastream_id: int | None) -> int:
    """Delete merged raw rows older than the cutoff; a segment wholly older loses its raw table (rollups stay)."""
    deleted = 0
    dropped = False
    for seq, _lo, _hi, t0, t1, _rows, has_raw in segments(raw):
        if not has_raw or t0 is None or t0 >= cutoff_us:
            continue
        if datastream_id is None and t1 < cutoff_us:
            deleted += raw.execute(f"SELECT count(*) FROM {raw_name(seq)}").fetchone()[0]
            raw.execute(f"DROP TABLE {raw_name(seq)}")
            raw.execute("UPDATE sensor_obs_segments SET has_raw = 0 WHERE seq = ?", (seq,))
            dropped = True
        elif datastream_id is None:
            deleted += raw.execute(f"DELETE FROM {raw_name(seq)} WHERE phenomenon_time < ?", (cutoff_us,)).rowcount
        else:
            deleted += raw.execute(
                f"DELETE FROM {raw_name(seq)} WHERE datastream_id = ? AND phenomenon_time < ?",
                (datastream_id, cutoff_us),
            ).rowcount
    if dropped:
        recreate_view(raw)
    return deleted
