"""CreateObservations of plain numbers takes the store's column path (store.NumericRows): it must store exactly what
the row-by-row path stores, and anything it cannot vouch for must fall back to the row-by-row checks, which name
the bad row and store nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from conftest import assert_problem
from kotacerdas.sensors import store

from .test_sensorthings import ROOT, create, first_datastream, gauge, observations
from .test_store import add, make_datastreams

T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
ROWS = [["2026-11-01T06:00:00Z", 1.5], ["2026-11-01T13:10:00+07:00", 2], ["2026-11-01T06:20:00.123456Z", -0.25],
        ["2026-11-01T06:30:00+00:00", 120]]  # fmt: skip


def stored_rows(client, ds: int) -> list[tuple]:
    body = client.get(f"{ROOT}/Datastreams({ds})/Observations", params={"$orderby": "id"}).json()["value"]
    return [(o["phenomenonTime"], o["result"], type(o["result"]).__name__) for o in body]


def test_the_column_path_stores_what_the_row_path_stores(client, tokens):
    admin = tokens("admin")
    fast = first_datastream(client, create(client, admin, "/Things", gauge("Pos A"))["@iot.id"])
    slow = first_datastream(client, create(client, admin, "/Things", gauge("Pos B"))["@iot.id"])
    columns = [{"Datastream": {"@iot.id": fast}, "components": ["phenomenonTime", "result"], "dataArray": ROWS}]
    # The same rows with the components the other way round: not the column path.
    swapped = [{"Datastream": {"@iot.id": slow}, "components": ["result", "phenomenonTime"],
                "dataArray": [[v, t] for t, v in ROWS]}]  # fmt: skip
    one = client.post(f"{ROOT}/CreateObservations", json=columns, headers=admin)
    two = client.post(f"{ROOT}/CreateObservations", json=swapped, headers=admin)
    assert one.status_code == two.status_code == 201
    ids = [int(link.rsplit("(", 1)[1].rstrip(")")) for link in one.json()]
    assert ids == sorted(ids) and len(ids) == 4  # in the order of the rows
    assert stored_rows(client, fast) == stored_rows(client, slow)
    assert [r[1:] for r in stored_rows(client, fast)] == [(1.5, "float"), (2, "int"), (-0.25, "float"),
                                                          (120, "int")]  # fmt: skip
    assert stored_rows(client, fast)[1][0] == "2026-11-01T06:10:00Z"
    current = client.get(f"{ROOT}/Datastreams({fast})/Observations",
                         params={"$orderby": "phenomenonTime desc", "$top": "1"}).json()["value"][0]  # fmt: skip
    assert current["result"] == 120


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ([(datetime.now(UTC) + timedelta(days=2)).isoformat(), 3.0], "more than a day ahead"),
        (["2026-11-01T06:40:00Z", True], "bool on a number Datastream"),
        (["2026-11-01T06:40:00Z", 2**63], "an integer too large"),
        (["2026-11-01T06:40:00Z", "3.0"], "text on a number Datastream"),
        (["2026-11-01T06:40:00Z"], "a short row"),
        (["kemarin", 3.0], "not a time"),
    ],
)
def test_a_bad_row_in_a_plain_batch_is_named_and_nothing_is_stored(client, tokens, session, row, why):
    admin = tokens("admin")
    ds = first_datastream(client, create(client, admin, "/Things", gauge())["@iot.id"])
    group = {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": [*ROWS, row]}
    problem = assert_problem(client.post(f"{ROOT}/CreateObservations", json=[group], headers=admin), 400)
    assert "CreateObservations[0].dataArray[4]" in problem["detail"], why
    assert observations(session) == []


def test_numeric_rows_refused_by_the_store_name_the_row(engine, settings, session):
    (a,) = make_datastreams(session, 1)
    times = [T0 + timedelta(minutes=m) for m in range(3)]
    for numbers, datastreams, index in (
        ([1.0, math.nan, 2.0], [a, a, a], 1),
        ([1.0, 2.0, math.inf], [a, a, a], 2),
        ([1.0, 2.0, 3.0], [a, a + 99, a], 1),
    ):
        with pytest.raises(store.StoreError) as refused:
            add(engine, settings, store.NumericRows(datastreams, times, numbers, [None] * 3))
        assert refused.value.index == index
    ids = add(engine, settings, store.NumericRows([a] * 3, times, [1.0, 2, 3.5], [None] * 3))
    session.rollback()
    assert [(o.id, o.result) for o in store.list_observations(session, datastream_id=a)] == list(
        zip(ids, [1.0, 2, 3.5], strict=True)
    )
    assert store.current_values(session)[a].result == 3.5


def test_datastream_targets_are_cached_a_while_then_read_again(session, monkeypatch):
    """The batch path's cache of Datastream targets answers from memory while it is young, and a change another
    process made (no forget_caches here) is seen once it is DS_CACHE_SECONDS old; a Datastream not in it is read."""
    import sqlalchemy as sa

    from kotacerdas.sensors import service
    from kotacerdas.sensors.models import Datastream

    a, b = make_datastreams(session)
    service.forget_caches(session)
    assert not service.targets_cached(session, [a])
    assert service.datastream_targets(session, [a])[a][1].endswith("OM_Measurement")
    assert service.targets_cached(session, [a]) and not service.targets_cached(session, [a, b])
    session.execute(sa.update(Datastream).where(Datastream.id == a).values(observation_type="changed elsewhere"))
    session.commit()
    both = service.datastream_targets(session, [a, b])
    assert both[a][1].endswith("OM_Measurement") and both[b][1].endswith("OM_Measurement")  # a from the cache
    assert service.targets_cached(session, [a, b])
    assert service.datastream_targets(session, [a, 10**9]).keys() == {a}  # an unknown id is simply not found
    monkeypatch.setattr(service, "DS_CACHE_SECONDS", 0.0)
    assert not service.targets_cached(session, [a])
    assert service.datastream_targets(session, [a])[a][1] == "changed elsewhere"
    service.forget_caches(session)
