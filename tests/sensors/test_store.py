"""The observation store (sensors/store.py) on SQLite and PostgreSQL: ids, reads before and after compaction,
current values, all-or-nothing batches, hourly rollups, retention and PostgreSQL's month partitions."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from kotacerdas.db import WRITE_OPTION
from kotacerdas.sensors import store
from kotacerdas.sensors.models import Datastream, ObservedProperty, Sensor, Thing
from kotacerdas.sensors.store import NewObservation, StoreError

T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def make_datastreams(session, count: int = 2) -> list[int]:
    """A Thing with `count` Datastreams of water level; their ids."""
    thing = Thing(name="Pos duga air Musi")
    sensor = Sensor(name="Radar", encoding_type="text/html")
    prop = ObservedProperty(name="Tinggi muka air", definition="http://example.org/water-level")
    session.add_all([thing, sensor, prop])
    session.flush()
    streams = [
        Datastream(
            name=f"Tinggi muka air {n}", observation_type=MEASUREMENT, unit_of_measurement={"symbol": "cm"},
            thing_id=thing.id, sensor_id=sensor.id, observed_property_id=prop.id,
        )
        for n in range(count)
    ]  # fmt: skip
    session.add_all(streams)
    session.commit()
    return [stream.id for stream in streams]


def add(engine, settings, rows) -> list[int]:
    """One batch in its own transaction, holding the writer queue on SQLite (as the API and ingest do)."""
    with sa.orm.Session(engine) as session:
        session.connection(execution_options={WRITE_OPTION: True})
        ids = store.add_observations(session, rows, settings=settings)
        session.commit()
    return ids


def snapshot(session, datastreams):
    """Everything a reader sees of the store."""
    session.rollback()
    return {
        "observations": {ds: store.list_observations(session, datastream_id=ds, limit=10_000) for ds in datastreams},
        "newest_first": {
            ds: store.list_observations(session, datastream_id=ds, limit=3, order="desc") for ds in datastreams
        },
        "window": {
            ds: store.list_observations(
                session, datastream_id=ds, start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=2)
            )
            for ds in datastreams
        },
        "current": store.current_values(session),
        "hourly": {
            ds: store.hourly(session, datastream_id=ds, start=T0 - timedelta(days=1), end=T0 + timedelta(days=1))
            for ds in datastreams
        },
    }


def test_ids_are_unique_in_order_and_stable_across_compaction(engine, settings, session):
    a, b = make_datastreams(session)
    rows = [NewObservation(a if n % 2 else b, T0 + timedelta(minutes=n), float(n)) for n in range(200)]
    first = add(engine, settings, rows[:100])
    second = add(engine, settings, rows[100:])
    ids = first + second
    assert len(set(ids)) == 200 and ids == sorted(ids)
    before = {i: store.get_observation(session, i) for i in ids}
    assert before[ids[7]].result == 7.0 and before[ids[7]].phenomenon_time == T0 + timedelta(minutes=7)

    store.compact(engine, settings=settings, chunk_rows=1_000)
    session.rollback()
    after = {i: store.get_observation(session, i) for i in ids}
    assert after == before
    # New ids after a compaction continue: never one handed out before, though the journal is empty now.
    third = add(engine, settings, [NewObservation(a, T0 + timedelta(days=1), 1.5)])
    assert third[0] > max(ids)


def test_reads_are_the_same_before_and_after_compaction(engine, settings, session):
    datastreams = make_datastreams(session, 3)
    results = [12.5, 3, None, True, "kering", {"a": 1}]
    rows = [NewObservation(datastreams[n % 3], T0 + timedelta(minutes=7 * n), results[n % 6]) for n in range(120)]
    add(engine, settings, rows[:60])
    add(engine, settings, rows[60:])
    before = snapshot(session, datastreams)
    # Half merged, half in the journal, then everything merged: readers see no difference.
    store.compact(engine, settings=settings, chunk_rows=1_000, max_rows=60)
    assert snapshot(session, datastreams) == before
    store.compact(engine, settings=settings)
    assert snapshot(session, datastreams) == before
    results = [o.result for o in before["observations"][datastreams[0]]]
    assert results[:4] == [12.5, True, 12.5, True]
    assert [o.result for o in before["observations"][datastreams[1]]][:3] == [3, "kering", 3]
    assert [o.result for o in before["observations"][datastreams[2]]][:3] == [None, {"a": 1}, None]
    assert isinstance(before["observations"][datastreams[1]][0].result, int)


def test_current_value_is_the_newest_by_phenomenon_time_even_when_an_older_one_arrives_later(engine, settings, session):
    (ds,) = make_datastreams(session, 1)
    newer = add(engine, settings, [NewObservation(ds, T0 + timedelta(hours=2), 310.0)])
    add(engine, settings, [NewObservation(ds, T0, 250.0), NewObservation(ds, T0 + timedelta(hours=1), 280.0)])
    current = store.current_values(session, [ds])[ds]
    assert (current.observation_id, current.result, current.phenomenon_time) == (
        newer[0],
        310.0,
        T0 + timedelta(hours=2),
    )
    # Within one batch too: the newest row of the batch wins, not the last.
    latest = add(engine, settings, [NewObservation(ds, T0 + timedelta(hours=5), 330.0), NewObservation(ds, T0, 1.0)])
    session.rollback()
    assert store.current_values(session)[ds].observation_id == latest[0]
    assert store.current_values(session, []) == {}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (math.nan, "NaN"),
        (math.inf, "NaN or infinite"),
        (-math.inf, "infinite"),
        ({"x": math.nan}, "JSON"),
        ("a\x00b", "NUL"),
        ({"k": ["\x00"]}, "NUL"),
    ],
)
def test_a_bad_batch_stores_nothing_and_names_the_row(engine, settings, session, bad, reason):
    a, b = make_datastreams(session)
    add(engine, settings, [NewObservation(a, T0, 100.0)])
    before = snapshot(session, [a, b])
    rows = [NewObservation(b, T0 + timedelta(minutes=n), float(n)) for n in range(5)]
    rows[3] = NewObservation(b, T0 + timedelta(hours=9), bad)
    with pytest.raises(StoreError) as error:
        add(engine, settings, rows)
    assert error.value.index == 3 and reason in str(error.value)
    assert snapshot(session, [a, b]) == before


def test_an_unknown_datastream_refuses_the_batch_and_a_new_one_is_seen(engine, settings, session):
    (a,) = make_datastreams(session, 1)
    add(engine, settings, [NewObservation(a, T0, 1.0)])  # the cache of Datastreams is filled here
    with pytest.raises(StoreError) as error:
        add(engine, settings, [NewObservation(a, T0 + timedelta(hours=1), 2.0), NewObservation(999_999, T0, 1.0)])
    assert error.value.index == 1 and "999999" in str(error.value)
    assert [o.result for o in store.list_observations(session, datastream_id=a)] == [1.0]
    assert store.current_values(session)[a].result == 1.0
    # A Datastream created after the cache was filled is found (the cache is read again on a miss).
    (b,) = make_datastreams(session, 1)
    assert len(add(engine, settings, [NewObservation(b, T0, 7.0)])) == 1


def test_naive_times_are_refused(engine, settings, session):
    (a,) = make_datastreams(session, 1)
    with pytest.raises(StoreError) as error:
        add(engine, settings, [NewObservation(a, T0, 1.0), NewObservation(a, datetime(2026, 11, 1, 6), 2.0)])
    assert error.value.index == 1


def test_hourly_rollups_match_a_hand_computation_before_and_after_compaction(engine, settings, session):
    a, b = make_datastreams(session)
    values = [3.0, -1.5, 7.25, 2, 10.0, 4.5, 6.0]
    # Three readings in hour 0, two in hour 1 (one of them not a number), three in hour 3; other Datastream beside.
    minutes = [0, 20, 59, 60, 61, 180, 200]
    rows = [NewObservation(a, T0 + timedelta(minutes=m), v) for m, v in zip(minutes, values, strict=True)]
    rows[4] = NewObservation(a, T0 + timedelta(minutes=61), "rusak")
    rows.append(NewObservation(a, T0 + timedelta(minutes=239, seconds=59), 0.5))
    rows.append(NewObservation(b, T0 + timedelta(minutes=5), 1000.0))
    add(engine, settings, rows[:4])
    store.compact(engine, settings=settings)  # part of an hour merged, the rest still in the journal
    add(engine, settings, rows[4:])

    expected = [
        (T0, 3, -1.5, 7.25, (3.0 - 1.5 + 7.25) / 3),
        (T0 + timedelta(hours=1), 1, 2.0, 2.0, 2.0),
        (T0 + timedelta(hours=3), 3, 0.5, 6.0, (4.5 + 6.0 + 0.5) / 3),
    ]

    def chart():
        session.rollback()
        rows = store.hourly(session, datastream_id=a, start=T0 - timedelta(hours=5), end=T0 + timedelta(hours=5))
        return [(r.hour, r.count, r.min, r.max, pytest.approx(r.avg)) for r in rows]

    assert chart() == expected
    store.compact(engine, settings=settings)
    assert chart() == expected
    # A start inside an hour still gives that whole hour's rollup (rollups are by hour).
    session.rollback()
    rows = store.hourly(
        session, datastream_id=a, start=T0 + timedelta(hours=3, minutes=30), end=T0 + timedelta(hours=4)
    )
    assert [(r.hour, r.count) for r in rows] == [(T0 + timedelta(hours=3), 3)]


def test_deleting_an_observation_updates_its_hour_and_the_current_value(engine, settings, session):
    (a,) = make_datastreams(session, 1)
    ids = add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=m), float(m)) for m in (0, 10, 20)])
    store.compact(engine, settings=settings)
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        assert store.delete_observation(writer, ids[2]) is True
        assert store.delete_observation(writer, 10**12) is False
        writer.commit()
    session.rollback()
    assert store.get_observation(session, ids[2]) is None
    assert store.current_values(session)[a].observation_id == ids[1]
    (hour,) = store.hourly(session, datastream_id=a, start=T0, end=T0 + timedelta(hours=1))
    assert (hour.count, hour.max, hour.avg) == (2, 10.0, 5.0)


def test_retention_purges_raw_rows_and_keeps_rollups(engine, settings, session):
    a, b = make_datastreams(session)
    old = [
        NewObservation(ds, T0 - timedelta(days=400) + timedelta(minutes=m), 5.0 + m) for ds in (a, b) for m in range(3)
    ]
    new = [NewObservation(ds, T0, 9.0) for ds in (a, b)]
    add(engine, settings, old + new)
    store.compact(engine, settings=settings)
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        assert store.purge_before(writer, cutoff=T0 - timedelta(days=1), datastream_id=a) == 3
        writer.commit()
    deleted = store.apply_retention(
        engine, settings=settings.model_copy(update={"sensor_raw_retention_days": 30}), now=T0
    )
    assert deleted == 3
    session.rollback()
    assert [o.result for o in store.list_observations(session, datastream_id=a)] == [9.0]
    assert [o.result for o in store.list_observations(session, datastream_id=b)] == [9.0]
    start = T0 - timedelta(days=401)
    (hour,) = store.hourly(session, datastream_id=a, start=start, end=T0 - timedelta(days=399))
    assert (hour.count, hour.min, hour.max) == (3, 5.0, 7.0)
    assert store.current_values(session)[a].result == 9.0
    # Retention 0 keeps everything.
    assert store.apply_retention(engine, settings=settings, now=T0 + timedelta(days=9999)) == 0


def test_existing_keys_find_stored_pairs(engine, settings, session):
    a, b = make_datastreams(session)
    add(engine, settings, [NewObservation(a, T0, 1.0)])
    store.compact(engine, settings=settings)
    add(engine, settings, [NewObservation(b, T0, 1.0)])
    keys = {(a, T0), (b, T0), (a, T0 + timedelta(seconds=1))}
    assert set(store.existing_keys(session, keys)) == {(a, T0), (b, T0)}


def test_maintain_widens_datastream_extents(engine, settings, session):
    (a,) = make_datastreams(session, 1)
    add(engine, settings, [
        NewObservation(a, T0, 1.0, result_time=T0 + timedelta(seconds=5)),
        NewObservation(a, T0 + timedelta(hours=3), 2.0, phenomenon_time_end=T0 + timedelta(hours=4)),
    ])  # fmt: skip
    store.compact(engine, settings=settings)
    store.maintain(engine, settings=settings, now=T0)
    session.expire_all()
    stream = session.get(Datastream, a)
    assert (stream.phenomenon_time_start, stream.phenomenon_time_end) == (T0, T0 + timedelta(hours=4))
    assert stream.result_time_start == stream.result_time_end == T0 + timedelta(seconds=5)


def test_postgres_month_partitions_ahead_and_for_a_time_long_ago(backend, engine, settings, session):
    if backend != "postgres":
        pytest.skip("month partitions are PostgreSQL's")
    (a,) = make_datastreams(session, 1)
    long_ago = datetime(2024, 3, 15, 12, 30, tzinfo=UTC)
    (old_id,) = add(engine, settings, [NewObservation(a, long_ago, 42.0)])
    with engine.connect() as connection:
        in_default = connection.exec_driver_sql("SELECT count(*) FROM sensor_observations_default").scalar_one()
    assert in_default == 1  # no partition for March 2024 yet: the DEFAULT partition holds it
    done = store.maintain(engine, settings=settings, now=datetime(2027, 12, 20, tzinfo=UTC))
    assert done["partitions"] >= 4  # 2024-03, and 2027-12 with the two months after it
    with engine.connect() as connection:
        names = {name for name, _upper in store._partitions(connection)}
        assert {"sensor_observations_p2024_03", "sensor_observations_p2027_12", "sensor_observations_p2028_02"} <= names
        assert connection.exec_driver_sql("SELECT count(*) FROM sensor_observations_default").scalar_one() == 0
        assert connection.exec_driver_sql("SELECT count(*) FROM sensor_observations_p2024_03").scalar_one() == 1
    session.rollback()
    moved = store.get_observation(session, old_id)
    assert (moved.id, moved.phenomenon_time, moved.result) == (old_id, long_ago, 42.0)
    # Again: nothing to do; new rows of that month go straight to its partition.
    assert store.maintain(engine, settings=settings, now=datetime(2027, 12, 20, tzinfo=UTC))["partitions"] == 0
    add(engine, settings, [NewObservation(a, long_ago + timedelta(days=1), 43.0)])
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM sensor_observations_p2024_03").scalar_one() == 2


def test_sqlite_compaction_runs_when_due(backend, engine, settings, session):
    if backend != "sqlite":
        pytest.skip("the journal is SQLite's")
    (a,) = make_datastreams(session, 1)
    small = settings.model_copy(update={"sensor_compact_rows": 1_000, "sensor_compact_interval_seconds": 3600})
    add(engine, settings, [NewObservation(a, T0 + timedelta(seconds=n), float(n)) for n in range(10)])
    assert store.compact_if_due(engine, settings=small, now=T0) == 10  # first run: nothing merged yet, so due
    add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=n), float(n)) for n in range(10)])
    assert store.compact_if_due(engine, settings=small, now=T0 + timedelta(seconds=10)) == 0  # small, recent
    assert store.journal_rows(engine) == 10
    add(engine, settings, [NewObservation(a, T0 + timedelta(hours=1, seconds=n), 1.0) for n in range(1_000)])
    assert store.compact_if_due(engine, settings=small, now=T0 + timedelta(seconds=20)) == 1_010
    assert store.journal_rows(engine) == 0
    with engine.connect() as connection:
        # The compaction checkpointed itself, after giving the writer queue back, and reset the connection.
        raw = connection.connection.driver_connection
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_deleting_a_datastreams_observations_empties_its_current_value_and_rollups(engine, settings, session):
    a, b = make_datastreams(session)
    add(engine, settings, [NewObservation(ds, T0 + timedelta(minutes=m), 1.0) for ds in (a, b) for m in range(3)])
    store.compact(engine, settings=settings, max_rows=2)
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        assert store.delete_datastream_observations(writer, a) == 3
        writer.commit()
    session.rollback()
    assert store.list_observations(session, datastream_id=a) == []
    assert store.hourly(session, datastream_id=a, start=T0, end=T0 + timedelta(hours=1)) == []
    assert list(store.current_values(session)) == [b]
    assert len(store.list_observations(session, datastream_id=b)) == 3


def test_sqlite_segments_reads_and_retention_across_several(backend, engine, settings, session):
    if backend != "sqlite":
        pytest.skip("segments are SQLite's")
    a, b = make_datastreams(session)
    small = settings.model_copy(update={"sensor_compact_rows": 1_000})
    # 3,500 readings over 35 hours, two Datastreams alternating: merged 1,000 at a time into 4 segments.
    rows = [NewObservation(a if n % 2 else b, T0 + timedelta(seconds=36 * n), float(n % 97)) for n in range(3_500)]
    ids = []
    for first in range(0, len(rows), 500):
        ids += add(engine, settings, rows[first : first + 500])
    before = snapshot(session, [a, b])
    one = {i: store.get_observation(session, i) for i in ids[::97]}
    store.compact(engine, settings=small, chunk_rows=1_000)
    with engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM sensor_obs_segments").scalar_one()
        in_view = connection.exec_driver_sql("SELECT count(*) FROM sensor_observations_all").scalar_one()
    assert count == 4 and in_view == 3_500
    assert snapshot(session, [a, b]) == before
    assert {i: store.get_observation(session, i) for i in ids[::97]} == one
    long = store.hourly(session, datastream_id=a, start=T0, end=T0 + timedelta(days=2))
    assert len(long) == 35 and sum(r.count for r in long) == 1_750
    assert set(store.existing_keys(session, [(a, rows[1].phenomenon_time), (a, rows[0].phenomenon_time)])) == {
        (a, rows[1].phenomenon_time)
    }
    # Retention: the segments wholly older than the cutoff lose their raw table, their rollups stay.
    cutoff = T0 + timedelta(hours=21)
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        deleted = store.purge_before(writer, cutoff=cutoff)
        writer.commit()
    assert deleted == 2_100
    session.rollback()
    left = store.list_observations(session, datastream_id=a, limit=10_000)
    assert len(left) == 700 and min(o.phenomenon_time for o in left) >= cutoff
    assert store.hourly(session, datastream_id=a, start=T0, end=T0 + timedelta(days=2)) == long


def test_text_that_only_looks_like_a_nul_escape_is_stored(engine, settings, session):
    (a,) = make_datastreams(session, 1)
    (oid,) = add(engine, settings, [NewObservation(a, T0, "C:\\u0000\\folder")])
    assert store.get_observation(session, oid).result == "C:\\u0000\\folder"


def raw_hourly(session, datastream_id, start, end):
    """The hourly figures computed from the raw observations: what `store.hourly` must answer at any moment."""
    buckets: dict[datetime, list[float]] = {}
    for o in store.list_observations(session, datastream_id=datastream_id, start=start, end=end, limit=100_000):
        if type(o.result) in (int, float):
            buckets.setdefault(o.phenomenon_time.replace(minute=0, second=0, microsecond=0), []).append(o.result)
    return [(hour, len(v), min(v), max(v), pytest.approx(sum(v))) for hour, v in sorted(buckets.items())]


def charted(session, datastream_id, start, end):
    session.rollback()
    return [(r.hour, r.count, r.min, r.max, r.sum) for r in store.hourly(session, datastream_id=datastream_id,
                                                                          start=start, end=end)]  # fmt: skip


def test_hourly_equals_the_raw_aggregation_before_and_after_the_rollup_with_late_and_deleted_rows(
    engine, settings, session
):
    a, b = make_datastreams(session)
    start, end = T0 - timedelta(hours=3), T0 + timedelta(hours=12)
    rng = random.Random(6)
    rows = [
        NewObservation(rng.choice((a, b)), T0 + timedelta(seconds=rng.randrange(36_000)), round(rng.uniform(0, 9), 2))
        for _n in range(300)
    ]
    for first in range(0, 300, 100):
        add(engine, settings, rows[first : first + 100])

    def check():
        for ds in (a, b):
            session.rollback()
            assert charted(session, ds, start, end) == raw_hourly(session, ds, start, end)

    check()  # nothing rolled up yet (SQLite: all in the journal; PostgreSQL: all past the watermark)
    store.compact(engine, settings=settings)
    store.maintain(engine, settings=settings, now=T0)
    check()
    # Late observations into hours already rolled up, an integer, a text (not rolled up), a new earlier hour.
    late = [NewObservation(a, T0 + timedelta(minutes=5), 100.0), NewObservation(a, T0 + timedelta(hours=2), 7),
            NewObservation(b, T0 + timedelta(hours=1, minutes=1), "rusak"),
            NewObservation(b, T0 - timedelta(hours=2), -4.5)]  # fmt: skip
    late_ids = add(engine, settings, late)
    check()
    store.compact(engine, settings=settings)
    check()
    # Deleting a rolled-up observation and one not rolled up yet.
    pending = add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=6), 50.0)])
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        assert store.delete_observation(writer, late_ids[0]) and store.delete_observation(writer, pending[0])
        writer.commit()
    check()
    store.compact(engine, settings=settings)
    check()
    session.rollback()
    assert charted(session, a, T0, T0 + timedelta(hours=1))[0][3] < 100.0  # the deleted maximum is gone


def test_a_batch_of_mixed_rows_is_stored_as_given(engine, settings, session):
    a, b = make_datastreams(session)
    rows = [
        NewObservation(a, T0, 1.5, feature_id=7),
        NewObservation(b, T0, 2, feature_id=None),
        NewObservation(a, T0 + timedelta(minutes=1), {"status": "ok"}, feature_id=7),
        NewObservation(b, T0 + timedelta(minutes=1), 3.25, result_quality="good", feature_id=8),
        NewObservation(a, T0 + timedelta(minutes=2), None),
    ]
    ids = add(engine, settings, rows)
    plain = add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=3), 4.0),
                                   NewObservation(b, T0 + timedelta(minutes=3), 5.0, feature_id=9)])  # fmt: skip
    session.rollback()
    got = [store.get_observation(session, i) for i in ids + plain]
    assert [(o.datastream_id, o.result, o.feature_id, o.result_quality) for o in got] == [
        (a, 1.5, 7, None), (b, 2, None, None), (a, {"status": "ok"}, 7, None), (b, 3.25, 8, "good"),
        (a, None, None, None), (a, 4.0, None, None), (b, 5.0, 9, None),
    ]  # fmt: skip
    assert type(got[1].result) is int
    current = store.current_values(session)
    assert (current[a].observation_id, current[b].observation_id) == (plain[0], plain[1])


@pytest.mark.parametrize("count", [1, 127, 128, 129, 300, 1_000])
def test_batches_of_any_size_are_stored_whole_and_in_order(engine, settings, session, count):
    """SQLite appends a batch with multi-row statements of 128, 64, … rows: every size stores each row once, in
    order, by both the column path (NumericRows) and the row path (a text result among numbers)."""
    a, b = make_datastreams(session)
    times = [T0 + timedelta(seconds=n) for n in range(count)]
    numbers = [float(n) for n in range(count)]
    datastreams = [(a, b)[n % 2] for n in range(count)]
    columns = add(engine, settings, store.NumericRows(datastreams, times, numbers, [None] * count))
    later = [t + timedelta(hours=1) for t in times]
    mixed = [NewObservation(ds, t, n) for ds, t, n in zip(datastreams, later, numbers, strict=True)]
    mixed[-1] = NewObservation(datastreams[-1], later[-1], "rusak")
    rows = add(engine, settings, mixed)
    assert columns == list(range(columns[0], columns[0] + count))
    assert rows == list(range(columns[-1] + 1, columns[-1] + 1 + count))
    session.rollback()
    stored = {ds: store.list_observations(session, datastream_id=ds, limit=10_000) for ds in (a, b)}
    got = sorted((o.id, o.datastream_id, o.result) for ds in (a, b) for o in stored[ds])
    expected = [(i, ds, n) for i, ds, n in zip(columns, datastreams, numbers, strict=True)]
    expected += [(i, o.datastream_id, o.result) for i, o in zip(rows, mixed, strict=True)]
    assert got == expected


def test_concurrent_batches_over_the_same_datastreams_all_commit(engine, settings, session):
    """PostgreSQL has no writer queue: two batches upserting the same current values lock them in the same order
    instead of deadlocking (both databases run it)."""
    import threading

    streams = make_datastreams(session, 40)
    errors = []

    def writer(order):
        try:
            for n in range(15):
                add(engine, settings, [NewObservation(ds, T0 + timedelta(minutes=n), float(n)) for ds in order])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(order,)) for order in (streams, streams[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    session.rollback()
    current = store.current_values(session)
    assert {ds: current[ds].result for ds in streams} == dict.fromkeys(streams, 14.0)


def test_postgres_rollup_waits_for_a_batch_in_flight_and_skips_none(backend, engine, settings, session):
    """A batch that drew its ids but has not committed yet is not passed over by the rollup's watermark."""
    if backend != "postgres":
        pytest.skip("the rollup watermark is PostgreSQL's")
    import threading

    a, b = make_datastreams(session)
    with sa.orm.Session(engine) as in_flight:
        ids = store.add_observations(in_flight, [NewObservation(a, T0, 4.0)], settings=settings)
        later = add(engine, settings, [NewObservation(b, T0, 6.0)])  # a larger id, committed first
        assert later[0] > ids[0]
        done = []
        rolling = threading.Thread(target=lambda: done.append(store.roll_up(engine)))
        rolling.start()
        rolling.join(0.5)
        assert rolling.is_alive()  # it waits for the batch in flight
        in_flight.commit()
    rolling.join(10)
    assert done and done[0] >= 2
    with engine.connect() as connection:
        rolled = dict(connection.exec_driver_sql("SELECT datastream_id, count FROM sensor_hourly").all())
    assert rolled == {a: 1, b: 1}
    session.rollback()
    for ds, value in ((a, 4.0), (b, 6.0)):
        (hour,) = store.hourly(session, datastream_id=ds, start=T0, end=T0 + timedelta(hours=1))
        assert (hour.count, hour.max) == (1, value)


def test_sqlite_retention_in_the_open_segment_keeps_its_hours(backend, engine, settings, session):
    """Retention deleting some rows of the open segment keeps their hours, and the smaller merges after it go into
    the same segment with its hours kept up to date."""
    if backend != "sqlite":
        pytest.skip("segments are SQLite's")
    (a,) = make_datastreams(session, 1)
    small = settings.model_copy(update={"sensor_compact_rows": 1_000})
    old_start = T0 - timedelta(days=400)
    old = [NewObservation(a, old_start + timedelta(minutes=2 * n), float(n % 13)) for n in range(300)]
    new = [NewObservation(a, T0 + timedelta(minutes=2 * n), float(n % 7)) for n in range(300)]
    add(engine, settings, old + new)
    store.compact(engine, settings=small)
    old_end = old_start + timedelta(days=1)
    old_hours = charted(session, a, old_start, old_end)
    assert old_hours == raw_hourly(session, a, old_start, old_end) and len(old_hours) == 10
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        assert store.purge_before(writer, cutoff=T0 - timedelta(days=1)) == 300
        writer.commit()
    session.rollback()
    assert store.list_observations(session, datastream_id=a, start=old_start, end=old_end) == []
    assert charted(session, a, old_start, old_end) == old_hours
    for first in range(0, 400, 100):  # four merges of 100 (less than half a segment): into the open segment
        add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=2 * n + 1), float(n % 5))
                               for n in range(first, first + 100)])  # fmt: skip
        store.compact(engine, settings=small)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT seq, row_count FROM sensor_obs_segments").fetchall() == [(1, 1000)]
    end = T0 + timedelta(days=2)
    assert charted(session, a, T0, end) == raw_hourly(session, a, T0, end)
    assert charted(session, a, old_start, old_end) == old_hours


def test_sqlite_a_chunk_of_half_a_segment_or_more_fills_a_new_one(backend, engine, settings, session):
    if backend != "sqlite":
        pytest.skip("segments are SQLite's")
    a, b = make_datastreams(session)
    small = settings.model_copy(update={"sensor_compact_rows": 1_000, "sensor_compact_chunk_rows": 700})
    rng = random.Random(9)
    rows = [
        NewObservation(rng.choice((a, b)), T0 + timedelta(seconds=rng.randrange(86_400)), rng.choice((1.5, 2, "x")))
        for _n in range(1_800)
    ]
    before = None
    for first in (0, 200, 1_600):  # 200 (a new segment: none is open), 1,400 (two chunks of 700), 200 (appended)
        last = {0: 200, 200: 1_600, 1_600: 1_800}[first]
        add(engine, settings, rows[first:last])
        if first == 1_600:
            before = snapshot(session, [a, b])
        store.compact(engine, settings=small)
    with engine.connect() as connection:
        counts = connection.exec_driver_sql("SELECT row_count FROM sensor_obs_segments ORDER BY seq").fetchall()
    assert [c for (c,) in counts] == [200, 700, 900]
    assert snapshot(session, [a, b]) == before
    for ds in (a, b):
        assert charted(session, ds, T0, T0 + timedelta(days=1)) == raw_hourly(session, ds, T0, T0 + timedelta(days=1))


@pytest.mark.parametrize("change", ["delete", "update", "compaction"])
def test_sqlite_a_chunk_prepared_before_a_change_is_not_merged(backend, engine, settings, session, change):
    """A delete or an update of a journal row, or another compaction (a second process's worker), between the
    preparation of a chunk (outside the writer queue) and its copy: the copy does nothing, and the next compaction
    prepares the chunk again as the journal is now; no row is ever copied twice."""
    if backend != "sqlite":
        pytest.skip("the journal is SQLite's")
    from kotacerdas.sensors import store_sqlite

    (a,) = make_datastreams(session, 1)
    ids = add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=m), float(m)) for m in range(10)])
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        with connection.begin():
            prepared = store_sqlite.prepare_chunk(raw, ids[-1], 1_000)
        assert prepared.rows == 10
        if change == "delete":
            with sa.orm.Session(engine) as writer:
                writer.connection(execution_options={WRITE_OPTION: True})
                assert store.delete_observation(writer, ids[3])
                writer.commit()
        elif change == "update":
            assert update(engine, ids[3], NewObservation(a, T0 + timedelta(minutes=3), 33.0))
        else:
            assert store.compact(engine, settings=settings).rows == 10
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            assert store_sqlite.merge_prepared(raw, prepared, 1_000_000) is None
        store_sqlite.drop_prepared(raw)
    session.rollback()
    if change == "compaction":
        assert store.journal_rows(engine) == 0
        assert [o.id for o in store.list_observations(session, datastream_id=a)] == ids  # each once
        return
    assert store.journal_rows(engine) == 10  # ids[0] … ids[9] (one of them gone after a delete): nothing merged
    assert store.compact(engine, settings=settings).rows == (9 if change == "delete" else 10)
    session.rollback()
    if change == "delete":
        assert [o.id for o in store.list_observations(session, datastream_id=a)] == ids[:3] + ids[4:]
    else:
        assert store.get_observation(session, ids[3]).result == 33.0


def update(engine, observation_id: int, new: NewObservation) -> bool:
    with sa.orm.Session(engine) as writer:
        writer.connection(execution_options={WRITE_OPTION: True})
        done = store.update_observation(writer, observation_id, new)
        writer.commit()
    return done


def test_updates_keep_the_id_and_hourly_current_values_and_extents_follow(engine, settings, session):
    """Updates of merged rows (SQLite: in a segment; PostgreSQL: rolled up) and of rows not merged yet: across
    hours, to another Datastream, to a time outside the segment's range, to a text result; the chart always equals
    the raw aggregation, before and after the next compaction."""
    a, b = make_datastreams(session)
    start, end = T0 - timedelta(days=2), T0 + timedelta(days=1)
    merged = add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=10 * m), float(m)) for m in range(12)])
    store.compact(engine, settings=settings)
    store.maintain(engine, settings=settings, now=T0)
    pending = add(engine, settings, [NewObservation(b, T0 + timedelta(minutes=5), 7.0)])

    def check():
        for ds in (a, b):
            session.rollback()
            assert charted(session, ds, start, end) == raw_hourly(session, ds, start, end)

    assert update(engine, merged[0], NewObservation(a, T0 + timedelta(hours=1, minutes=55), 99.0))  # next hour
    assert update(engine, merged[1], NewObservation(b, T0 + timedelta(minutes=10), 5))  # another Datastream
    early = T0 - timedelta(days=1)  # before every row of its segment
    assert update(engine, merged[2], NewObservation(a, early, -1.5, result_time=early, parameters={"cek": 1}))
    assert update(engine, merged[3], NewObservation(a, T0 + timedelta(minutes=30), "rusak"))  # not rolled up
    assert update(engine, pending[0], NewObservation(b, T0 + timedelta(hours=3), 8.0))
    assert not update(engine, 10**12, NewObservation(a, T0, 1.0))
    check()
    session.rollback()
    got = store.get_observation(session, merged[2])
    assert (got.id, got.datastream_id, got.phenomenon_time, got.result, got.parameters) == (
        merged[2], a, early, -1.5, {"cek": 1}
    )  # fmt: skip
    assert [o.id for o in store.list_observations(session, datastream_id=a, start=early, end=T0)] == [merged[2]]
    assert store.get_observation(session, merged[3]).result == "rusak"
    current = store.current_values(session)
    assert (current[a].observation_id, current[b].observation_id) == (merged[0], pending[0])
    stream = session.get(Datastream, a)
    session.refresh(stream)
    assert stream.phenomenon_time_start == early
    with pytest.raises(StoreError, match="NaN"):
        update(engine, merged[4], NewObservation(a, T0, math.nan))
    session.rollback()  # PostgreSQL: maintain creates October's partition for the early row, and waits for readers
    store.compact(engine, settings=settings)
    store.maintain(engine, settings=settings, now=T0)
    check()


def test_postgres_vacuums_the_current_values_past_a_number_of_dead_rows(backend, engine, settings, session):
    if backend != "postgres":
        assert store.vacuum_current_values(engine, min_dead=0) is False  # nothing to do on SQLite
        return
    (a,) = make_datastreams(session, 1)
    for minute in range(30):  # each batch updates the Datastream's current value: a dead row version each
        add(engine, settings, [NewObservation(a, T0 + timedelta(minutes=minute), float(minute))])
    # The worker's job: the rollup (and the vacuum). It answers the observation ids it covered, which the sequence
    # shares with earlier tests: at least these 30, and nothing the second time.
    assert store.compact_if_due(engine, settings=settings) >= 30
    assert store.compact_if_due(engine, settings=settings) == 0
    assert store.vacuum_current_values(engine, min_dead=10**9) is False  # below the threshold: left alone
    assert store.vacuum_current_values(engine, min_dead=0) is True
    with engine.connect() as connection:
        dead = connection.exec_driver_sql(
            "SELECT n_dead_tup FROM pg_stat_user_tables "
            "WHERE relname = 'sensor_current_values' AND schemaname = current_schema()"
        ).scalar_one()
    assert dead == 0
    session.rollback()
    assert store.current_values(session)[a].result == 29.0
