"""The public asset map index: features and their properties, filters, clusters with their conditions, lines
simplified by zoom and bounded in number, and the refresh after a change, an archive and a new asset."""

from __future__ import annotations

import json
from datetime import date

import pytest

from conftest import TEST_ACTOR
from kotacerdas.assets import mapindex, service
from kotacerdas.assets.enums import UNKNOWN_COLOUR, Condition
from kotacerdas.errors import InvalidInput

from .helpers import INSIDE, agency_id, line, point

KABUPATEN = (102.0, -4.0, 104.0, -2.5)
ROAD = {"status_jalan": "kabupaten", "permukaan": "aspal"}


def query(session, **kwargs):
    """The map as a fresh request sees it (a new snapshot of what is committed)."""
    session.commit()
    kwargs.setdefault("bbox", KABUPATEN)
    kwargs.setdefault("zoom", 10)
    # As a client reads it: JSON (positions are tuples in the answer, arrays in JSON).
    return json.loads(json.dumps(mapindex.viewport_geojson(session, **kwargs), allow_nan=False))


def ids(answer) -> set[int]:
    return {f["properties"]["id"] for f in answer["features"] if not f["properties"].get("cluster")}


def counted(answer) -> int:
    return sum(f["properties"].get("count", 1) for f in answer["features"])


def winding_road(vertices: int = 60, *, start=INSIDE, step: float = 0.0004):
    """A road eastwards from `start` that wiggles a few metres north and south at every vertex."""
    return line(*[(start[0] + (0.00003 if i % 2 else 0.0), start[1] + i * step) for i in range(vertices)])


@pytest.fixture
def few(monkeypatch):
    # Clustering starts above POINTS_MAX; a small limit keeps the tests quick.
    monkeypatch.setattr(mapindex, "POINTS_MAX", 4)


def test_points_and_lines_carry_their_public_fields(session, make_asset):
    bridge = make_asset(condition="rusak_berat", condition_on=date(2026, 1, 5))
    road = make_asset(type="jalan", name="Jalan Poros Desa", geometry=line(), attributes=ROAD)
    answer = query(session, zoom=18, bbox=(INSIDE[1] - 0.01, INSIDE[0] - 0.01, INSIDE[1] + 0.01, INSIDE[0] + 0.01))
    assert answer["type"] == "FeatureCollection" and answer["total"] == 2 and not answer["clustered"]
    json.dumps(answer, allow_nan=False)  # plain JSON, no NaN
    by_id = {f["properties"]["id"]: f for f in answer["features"]}
    assert by_id[bridge.id]["geometry"] == {"type": "Point", "coordinates": [INSIDE[1], INSIDE[0]]}
    assert by_id[bridge.id]["properties"] == {
        "id": bridge.id,
        "type": "jembatan",
        "name": "Jembatan Sungai Kelingi",
        "condition": "rusak_berat",
        "colour": Condition.RUSAK_BERAT.colour,
        "kind": "point",
    }
    road_feature = by_id[road.id]
    assert road_feature["geometry"]["type"] == "LineString"
    start, end = road_feature["geometry"]["coordinates"]
    assert start == [INSIDE[1], INSIDE[0]] and end == pytest.approx([INSIDE[1] + 0.006, INSIDE[0] + 0.004])
    assert road_feature["properties"]["condition"] is None  # not inspected yet
    assert road_feature["properties"]["colour"] == UNKNOWN_COLOUR
    assert answer["lines_drawn"] == 1


def test_filters(session, make_asset):
    bridge = make_asset(condition="baik")
    school = make_asset(
        type="sekolah", name="SD Negeri 1", geometry=point(lon=INSIDE[1] + 0.01), attributes={"jenjang": "SD"},
        condition="tidak_berfungsi",
    )  # fmt: skip
    road = make_asset(type="jalan", name="Jalan Desa", geometry=line(), attributes=ROAD, condition="sedang")
    light = make_asset(type="pju", attributes={}, name="PJU 7", geometry=point(lon=INSIDE[1] + 0.02))
    everything = {bridge.id, school.id, road.id, light.id}
    assert ids(query(session)) == everything
    assert ids(query(session, types=["sekolah"])) == {school.id}
    assert ids(query(session, types=["sekolah", "jalan"])) == {school.id, road.id}
    assert ids(query(session, conditions=["baik", "sedang"])) == {bridge.id, road.id}
    assert ids(query(session, conditions=["unknown"])) == {light.id}
    assert ids(query(session, conditions=["tidak_berfungsi", "unknown"])) == {school.id, light.id}
    assert ids(query(session, kecamatan_code=bridge.kecamatan_code)) >= {bridge.id}
    assert ids(query(session, kecamatan_code="16.05.99")) == set()
    session.commit()
    education = agency_id(session, "Dinas Pendidikan")
    assert ids(query(session, agency_id=education)) == {school.id}
    assert ids(query(session, agency_id=education, conditions=["baik"])) == set()
    # The viewport itself filters: only the light lies this far east.
    assert ids(query(session, bbox=(INSIDE[1] + 0.015, -3.1, INSIDE[1] + 0.03, -3.0))) == {light.id}
    with pytest.raises(InvalidInput) as unknown_type:
        query(session, types=["kapal"])
    assert unknown_type.value.errors == [{"field": "type", "reason": "unknown"}]
    with pytest.raises(InvalidInput) as unknown_condition:
        query(session, conditions=["hancur"])
    assert unknown_condition.value.errors == [{"field": "condition", "reason": "unknown"}]
    with pytest.raises(InvalidInput):
        query(session, bbox=(103, -3, 102, -2))
    with pytest.raises(InvalidInput):
        query(session, zoom=23)


def test_a_line_crossing_the_viewport_is_in_it(session, make_asset):
    road = make_asset(
        type="jalan", name="Jalan Lintas", attributes=ROAD,
        geometry=line((INSIDE[0], INSIDE[1] - 0.02), (INSIDE[0], INSIDE[1] + 0.02)),
    )  # fmt: skip
    # A window in the middle of the road: neither end (nor the box's corners) inside it.
    window = (INSIDE[1] - 0.001, INSIDE[0] - 0.001, INSIDE[1] + 0.001, INSIDE[0] + 0.001)
    answer = query(session, bbox=window, zoom=17)
    assert ids(answer) == {road.id} and answer["lines_drawn"] == 1


def test_many_points_cluster_with_their_conditions(session, make_asset, few):
    conditions = ["berfungsi", "berfungsi", "tidak_berfungsi", None, None, "berfungsi_sebagian"]
    made = [
        make_asset(
            type="pju",
            attributes={},
            name=f"PJU {i}",
            geometry=point(lon=INSIDE[1] + i * 0.001),
            condition=condition,
            condition_on=date(2026, 2, 1) if condition else None,
        )  # fmt: skip
        for i, condition in enumerate(conditions)
    ]
    wide = query(session, zoom=8)
    assert wide["clustered"] and wide["total"] == 6 and counted(wide) == 6
    (cluster,) = wide["features"]  # 0.005 degrees is far less than a 64-pixel cell at zoom 8
    assert cluster["properties"] == {
        "cluster": True,
        "count": 6,
        "conditions": {"berfungsi": 2, "berfungsi_sebagian": 1, "tidak_berfungsi": 1, "unknown": 2},
    }
    lon, lat = cluster["geometry"]["coordinates"]
    assert lat == pytest.approx(INSIDE[0], abs=1e-5) and lon == pytest.approx(INSIDE[1] + 0.0025, abs=1e-5)
    # At zoom 18 a cell is about 0.0003 degrees: every light stands alone, as itself.
    street = (INSIDE[1] - 0.001, INSIDE[0] - 0.001, INSIDE[1] + 0.006, INSIDE[0] + 0.001)
    close = query(session, bbox=street, zoom=18)
    assert close["clustered"] and ids(close) == {asset.id for asset in made}
    # Few in view: points whatever the zoom.
    assert not query(session, conditions=["unknown"], zoom=8)["clustered"]


def test_lines_are_simplified_for_the_zoom(session, make_asset):
    road = make_asset(type="jalan", name="Jalan Berkelok", geometry=winding_road(60), attributes=ROAD)
    window = (INSIDE[1] - 0.01, INSIDE[0] - 0.01, INSIDE[1] + 0.03, INSIDE[0] + 0.01)

    def vertices(zoom: int) -> int:
        (feature,) = [f for f in query(session, bbox=window, zoom=zoom)["features"] if f["properties"]["id"] == road.id]
        return len(feature["geometry"]["coordinates"])

    # The 3-metre wiggles are far below a pixel at zoom 10 and above one at 18.
    assert vertices(10) == 2
    assert vertices(18) == 60
    assert vertices(10) <= vertices(14) <= vertices(16) <= vertices(18)
    first, last = [INSIDE[1], INSIDE[0]], [round(INSIDE[1] + 59 * 0.0004, 6), round(INSIDE[0] + 0.00003, 6)]
    (feature,) = query(session, bbox=window, zoom=10)["features"]
    assert feature["geometry"]["coordinates"][0] == pytest.approx(first, abs=1e-6)
    assert feature["geometry"]["coordinates"][-1] == pytest.approx(last, abs=1e-6)


def test_a_multilinestring_stays_in_pieces(session, make_asset):
    pieces = {
        "type": "MultiLineString",
        "coordinates": [
            [[INSIDE[1], INSIDE[0]], [INSIDE[1] + 0.003, INSIDE[0]]],
            [[INSIDE[1] + 0.004, INSIDE[0]], [INSIDE[1] + 0.008, INSIDE[0] + 0.001]],
        ],
    }
    make_asset(type="jalan", name="Jalan Terputus", geometry=pieces, attributes=ROAD)
    (feature,) = query(session, zoom=16)["features"]
    assert feature["geometry"]["type"] == "MultiLineString"
    assert len(feature["geometry"]["coordinates"]) == 2


def test_too_many_lines_draws_the_largest_and_counts_the_rest(session, make_asset, monkeypatch):
    monkeypatch.setattr(mapindex, "LINES_MAX", 2)
    monkeypatch.setattr(mapindex, "MIN_LINE_PX", 0)
    lengths = [0.001, 0.02, 0.005, 0.03]
    roads = [
        make_asset(
            type="jalan",
            name=f"Ruas {i}",
            attributes=ROAD,
            geometry=line((INSIDE[0] + i * 0.002, INSIDE[1]), (INSIDE[0] + i * 0.002, INSIDE[1] + length)),
        )  # fmt: skip
        for i, length in enumerate(lengths)
    ]
    answer = query(session, zoom=12)
    drawn = {f["properties"]["id"] for f in answer["features"] if f["geometry"]["type"] == "LineString"}
    assert drawn == {roads[3].id, roads[1].id} and answer["lines_drawn"] == 2
    # The others are still on the map, at their middle, as points of kind "line".
    shown = {f["properties"]["id"]: f for f in answer["features"]}
    assert shown[roads[0].id]["geometry"]["type"] == "Point" and shown[roads[0].id]["properties"]["kind"] == "line"
    assert answer["total"] == 4 and counted(answer) == 4


def test_the_answer_stays_small_whatever_the_viewport(session, make_asset, few):
    for i in range(12):
        make_asset(type="pju", attributes={}, name=f"PJU {i}", geometry=point(lon=INSIDE[1] + i * 0.0005))
    answer = query(session, bbox=(-180, -85, 180, 85), zoom=22)
    assert answer["clustered"] and counted(answer) == 12
    assert len(answer["features"]) <= mapindex.CELLS_MAX


def test_the_index_follows_changes(session, settings, make_asset):
    bridge = make_asset()
    road = make_asset(type="jalan", name="Jalan Lama", geometry=line(), attributes=ROAD)
    assert ids(query(session)) == {bridge.id, road.id}
    # A new asset, a renamed and re-routed road, a new inspection and an archived bridge: all on the next query.
    light = make_asset(type="pju", attributes={}, name="PJU Baru", geometry=point(lon=INSIDE[1] + 0.01))
    moved = line((INSIDE[0], INSIDE[1] + 0.01), (INSIDE[0] + 0.003, INSIDE[1] + 0.012))
    service.update_asset(
        session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=road.id,
        changes={"name": "Jalan Baru", "geometry": moved},
    )  # fmt: skip
    service.record_inspection(
        session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=light.id, inspected_on=date(2026, 3, 1),
        inspector="Petugas Dishub", condition="tidak_berfungsi", notes=None,
    )  # fmt: skip
    service.archive_asset(session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=bridge.id)
    session.commit()
    answer = query(session, zoom=16)
    by_id = {f["properties"]["id"]: f for f in answer["features"]}
    assert set(by_id) == {road.id, light.id}
    assert by_id[road.id]["properties"]["name"] == "Jalan Baru"
    assert by_id[road.id]["geometry"]["coordinates"][0] == pytest.approx([INSIDE[1] + 0.01, INSIDE[0]])
    assert by_id[light.id]["properties"]["condition"] == "tidak_berfungsi"
    assert mapindex.index_stats(session)["assets"] == 2
    service.archive_asset(session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=bridge.id, active=True)
    assert ids(query(session)) == {bridge.id, road.id, light.id}


def test_an_empty_registry_answers_an_empty_map(session, seeded):
    answer = query(session)
    assert answer["features"] == [] and answer["total"] == 0
    assert mapindex.load_index(session)["assets"] == 0
