"""Sensors: the observation store (sensors/store.py): observations, current values, hourly rollups.

The layout differs per database (docs/sensors.md, "Storage"), so the DDL is written out per dialect:
- SQLite: an append-only journal (`sensor_obs_journal`, its AUTOINCREMENT key is the observation id) merged now
  and then into segments, clustered `WITHOUT ROWID` tables keyed by (datastream, time, id) with their hourly
  rollups, listed in `sensor_obs_segments` and made by the compaction; the view `sensor_observations_all` is the
  journal and the segments (recreated with each new segment). Times are integer microseconds since the epoch.
- PostgreSQL: `sensor_observations` partitioned by month on phenomenon_time, a DEFAULT partition for times no
  month partition covers yet (store.maintain moves them out), ids from the sequence `sensor_observation_ids`.
These tables are not ORM models: the Alembic comparison skips them (store.is_store_object). They have no foreign
key to sensor_datastreams: a check per row costs more than the rest of an upsert on PostgreSQL (the store checks the
Datastream ids of a batch against its cache instead, and store.delete_datastream_observations empties them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 06:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "id, datastream_id, phenomenon_time, phenomenon_time_end, result_type, result_number, result_json, "
    "result_time, result_quality, valid_time_start, valid_time_end, parameters, feature_id"
)

SQLITE = [
    """CREATE TABLE sensor_obs_journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        datastream_id INTEGER NOT NULL,
        phenomenon_time INTEGER NOT NULL,
        phenomenon_time_end INTEGER,
        result_type INTEGER NOT NULL,
        result_number REAL,
        result_json TEXT,
        result_time INTEGER,
        result_quality TEXT,
        valid_time_start INTEGER,
        valid_time_end INTEGER,
        parameters TEXT,
        feature_id INTEGER
    )""",
    # The segments the compaction merges the journal into (sensors/store_sqlite.py creates their tables).
    """CREATE TABLE sensor_obs_segments (
        seq INTEGER NOT NULL PRIMARY KEY,
        min_id INTEGER,
        max_id INTEGER,
        min_time INTEGER,
        max_time INTEGER,
        row_count INTEGER NOT NULL,
        has_raw INTEGER NOT NULL
    )""",
    f"CREATE VIEW sensor_observations_all AS SELECT {_COLUMNS} FROM sensor_obs_journal",
    """CREATE TABLE sensor_current_values (
        datastream_id INTEGER NOT NULL PRIMARY KEY,
        id INTEGER NOT NULL,
        phenomenon_time INTEGER NOT NULL,
        result_type INTEGER NOT NULL,
        result_number REAL,
        result_json TEXT
    )""",
    "CREATE TABLE sensor_store_state (key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL)",
]

POSTGRES = [
    "CREATE SEQUENCE sensor_observation_ids AS bigint CACHE 1",
    """CREATE TABLE sensor_observations (
        id bigint NOT NULL,
        datastream_id integer NOT NULL,
        phenomenon_time timestamptz NOT NULL,
        phenomenon_time_end timestamptz,
        result_type smallint NOT NULL,
        result_number double precision,
        result_json jsonb,
        result_time timestamptz,
        result_quality text,
        valid_time_start timestamptz,
        valid_time_end timestamptz,
        parameters jsonb,
        feature_id integer,
        CONSTRAINT pk_sensor_observations PRIMARY KEY (datastream_id, phenomenon_time, id)
    ) PARTITION BY RANGE (phenomenon_time)""",
    "CREATE INDEX ix_sensor_observations_id ON sensor_observations (id)",
    "CREATE TABLE sensor_observations_default PARTITION OF sensor_observations DEFAULT",
    """CREATE TABLE sensor_current_values (
        datastream_id integer NOT NULL PRIMARY KEY,
        id bigint NOT NULL,
        phenomenon_time timestamptz NOT NULL,
        result_type smallint NOT NULL,
        result_number double precision,
        result_json jsonb
    ) WITH (fillfactor = 50)""",
    """CREATE TABLE sensor_hourly (
        datastream_id integer NOT NULL,
        hour timestamptz NOT NULL,
        count bigint NOT NULL,
        sum double precision NOT NULL,
        min double precision NOT NULL,
        max double precision NOT NULL,
        PRIMARY KEY (datastream_id, hour)
    )""",
    "CREATE TABLE sensor_store_state (key text NOT NULL PRIMARY KEY, value bigint NOT NULL)",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
        return
    for statement in POSTGRES:
        op.execute(statement)
    # The current and the next months' partitions (named as store.partition_name does); the worker's daily
    # store.maintain keeps creating them ahead.
    today = datetime.now(UTC)
    year, month = today.year, today.month
    for _ in range(3):
        following = (year + month // 12, month % 12 + 1)
        op.execute(
            f"CREATE TABLE sensor_observations_p{year:04d}_{month:02d} PARTITION OF sensor_observations "
            f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
            f"TO ('{following[0]:04d}-{following[1]:02d}-01 00:00:00+00')"
        )
        year, month = following


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP VIEW sensor_observations_all")
        for (seq,) in bind.exec_driver_sql("SELECT seq FROM sensor_obs_segments").fetchall():
            op.execute(f"DROP TABLE IF EXISTS sensor_obs_s{seq:06d}")
            op.execute(f"DROP TABLE IF EXISTS sensor_obs_h{seq:06d}")
        for name in ("sensor_store_state", "sensor_current_values", "sensor_obs_segments", "sensor_obs_journal"):
            op.execute(f"DROP TABLE {name}")
        return
    for name in ("sensor_store_state", "sensor_hourly", "sensor_current_values", "sensor_observations"):
        op.execute(f"DROP TABLE {name}")
    op.execute("DROP SEQUENCE sensor_observation_ids")
