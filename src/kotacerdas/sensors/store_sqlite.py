"""The SQLite side of the observation store: the journal's rows merged into segments (see sensors/store.py).

A segment is a `WITHOUT ROWID` table made by the compaction, `sensor_obs_sNNNNNN`, clustered by
(datastream_id, phenomenon_time, id) with a unique index on id, and once it is full its hourly rollups,
`sensor_obs_hNNNNNN` keyed (datastream_id, hour). The compaction appends the journal's oldest rows, sorted, to the
newest segment until that holds `sensor_compact_rows`, then starts a new one: a merge writes into a tree of at most
a million rows, which stays in the page cache, instead of touching a leaf of one ever-growing table per Datastream
(bench: 12 s per million at 1M stored, 25 s at 8M). Segments cover disjoint id ranges (the journal is merged in id
order), and the catalog `sensor_obs_segments` keeps each one's id and time range, so a read goes only to the
segments it needs.

The rollups of a segment are built once, in the merge that fills it, by one pass over the clustered table (which
is in (datastream, hour) order already); the open segment has none, and its hours are aggregated from its raw rows
on the fly, one range scan of a Datastream's few rows. Upserting every merged row's hour into the rollups instead
cost 2.5 s per million, about a third of the compaction (bench/observation_store.py). A segment whose rollup table
exists keeps it up to date (an open segment whose rows retention deletes gets its rollups first, and databases made
before this change have one on every segment). Retention drops a segment's raw table whole and keeps its rollups.
"""

from __future__ import annotations

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


def raw_name(seq: int) -> str:
    return f"sensor_obs_s{seq:06d}"


def rollup_name(seq: int) -> str:
    return f"sensor_obs_h{seq:06d}"


def segments(raw: Any) -> list[tuple]:
    """(seq, min_id, max_id, min_time, max_time, rows, has_raw) of every segment, oldest first."""
    return raw.execute(
        "SELECT seq, min_id, max_id, min_time, max_time, row_count, has_raw FROM sensor_obs_segments ORDER BY seq"
    ).fetchall()


def rolled_up(raw: Any) -> set[int]:
    """The segments that have a rollup table: every full one, and an open one only as the module's doc says."""
    names = raw.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'sensor_obs_h[0-9]*'"
    ).fetchall()
    return {int(name[len("sensor_obs_h") :]) for (name,) in names}


def build_rollups(raw: Any, seq: int) -> None:
    """Create a segment's rollup table from its raw rows: one ordered pass, appended in key order."""
    table = rollup_name(seq)
    raw.execute(
        f"""CREATE TABLE {table} (
            datastream_id INTEGER NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
            min REAL NOT NULL, max REAL NOT NULL, PRIMARY KEY (datastream_id, hour)
        ) WITHOUT ROWID"""
    )
    raw.execute(
        f"INSERT INTO {table} (datastream_id, hour, count, sum, min, max) "
        f"SELECT datastream_id, {HOUR_OF}, count(*), sum(result_number), min(result_number), max(result_number) "
        f"FROM {raw_name(seq)} WHERE result_number IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
    )


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


def merge_chunk(raw: Any, high: int, segment_rows: int) -> int:
    """Move the journal's rows with id <= high into the newest segment (a new one when it is full); the merge that
    fills a segment builds its rollups."""
    existing = segments(raw)
    if existing and existing[-1][6] and existing[-1][5] < segment_rows:
        seq, before = existing[-1][0], existing[-1][5]
        created = False
    else:
        # A new segment is filled before its id index is made: its rows go in sorted by the key, so the table is
        # written as appends, and the index is then built by one sort instead of a million inserts in id disorder
        # (2.6 s per million instead of 4; appending to a segment of a million rows cost 5.7 s).
        seq, before = create_segment(raw, id_index=False), 0
        created = True
    moved = raw.execute(
        f"INSERT INTO {raw_name(seq)} ({_KEY_COLUMNS}) SELECT {_KEY_COLUMNS} FROM sensor_obs_journal "
        "WHERE id <= ? ORDER BY datastream_id, phenomenon_time, id",
        (high,),
    ).rowcount
    if created:
        index_ids(raw, seq)
    if seq in rolled_up(raw):
        table = rollup_name(seq)
        raw.execute(
            f"INSERT INTO {table} (datastream_id, hour, count, sum, min, max) "
            f"SELECT datastream_id, {HOUR_OF}, count(*), sum(result_number), min(result_number), "
            "max(result_number) FROM sensor_obs_journal WHERE id <= ? AND result_number IS NOT NULL "
            f"GROUP BY 1, 2 ORDER BY 1, 2 ON CONFLICT (datastream_id, hour) DO UPDATE SET "
            f"count = {table}.count + excluded.count, sum = {table}.sum + excluded.sum, "
            f"min = min({table}.min, excluded.min), max = max({table}.max, excluded.max)",
            (high,),
        )
    elif before + moved >= segment_rows:
        build_rollups(raw, seq)
    raw.execute(
        "UPDATE sensor_obs_segments SET row_count = row_count + ?, "
        "min_id = coalesce(min(min_id, j.lo), j.lo), max_id = coalesce(max(max_id, j.hi), j.hi), "
        "min_time = coalesce(min(min_time, j.t0), j.t0), max_time = coalesce(max(max_time, j.t1), j.t1) "
        "FROM (SELECT min(id) AS lo, max(id) AS hi, min(phenomenon_time) AS t0, max(phenomenon_time) AS t1 "
        "FROM sensor_obs_journal WHERE id <= ?) AS j WHERE seq = ?",
        (moved, high, seq),
    )
    if created:
        recreate_view(raw)
    return moved


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
    """(hour, count, sum, min, max) of the hours in [hour of low, high): from the segments' rollups, and from the
    raw rows of the open segment and the journal."""
    low_hour = low - low % HOUR_US
    with_rollups = rolled_up(raw)
    parts = []
    for seq in _overlapping(raw, low_hour, high, with_raw=False):
        if seq in with_rollups:
            parts.append(
                f"SELECT hour, count AS n, sum AS s, min AS lo, max AS hi FROM {rollup_name(seq)} "
                "WHERE datastream_id = :ds AND hour >= :low_hour AND hour < :high"
            )
        else:
            parts.append(_hours_of(raw_name(seq)))
    parts.append(_hours_of("sensor_obs_journal"))
    sql = (
        "SELECT hour, sum(n), sum(s), min(lo), max(hi) FROM ("
        + " UNION ALL ".join(parts)
        + ") GROUP BY hour ORDER BY hour"
    )
    return raw.execute(sql, {"ds": datastream_id, "low_hour": low_hour, "high": high}).fetchall()


def _hours_of(table: str) -> str:
    return (
        f"SELECT {HOUR_OF} AS hour, count(*) AS n, sum(result_number) AS s, min(result_number) AS lo, "
        f"max(result_number) AS hi FROM {table} WHERE datastream_id = :ds AND phenomenon_time >= :low_hour "
        "AND phenomenon_time < :high AND result_number IS NOT NULL GROUP BY 1"
    )


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
        return
    seq = segment_of(raw, observation_id)
    if seq is None:
        return
    raw.execute(f"DELETE FROM {raw_name(seq)} WHERE id = ?", (observation_id,))
    if seq not in rolled_up(raw):
        return
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
    with_rollups = rolled_up(raw)
    for seq, *_rest, has_raw in segments(raw):
        if has_raw:
            deleted += raw.execute(f"DELETE FROM {raw_name(seq)} WHERE datastream_id = ?", (datastream_id,)).rowcount
        if seq in with_rollups:
            raw.execute(f"DELETE FROM {rollup_name(seq)} WHERE datastream_id = ?", (datastream_id,))
    return deleted


def purge(raw: Any, cutoff_us: int, datastream_id: int | None) -> int:
    """Delete merged raw rows older than the cutoff; a segment wholly older loses its raw table (rollups stay)."""
    deleted = 0
    dropped = False
    with_rollups = rolled_up(raw)
    for seq, _lo, _hi, t0, t1, _rows, has_raw in segments(raw):
        if not has_raw or t0 is None or t0 >= cutoff_us:
            continue
        if seq not in with_rollups:
            # The open segment: its hours must outlive the raw rows retention takes.
            build_rollups(raw, seq)
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
