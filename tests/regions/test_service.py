"""Regions service: built-in codes, boundary import (all or nothing), point → desa lookup, reads."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from kotacerdas.accounts.models import AuditEntry
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.errors import InvalidInput, NotFound
from kotacerdas.pagination import PageRequest
from kotacerdas.regions import locator
from kotacerdas.regions import service as regions
from kotacerdas.regions.models import Region

from .conftest import ACTOR
from .helpers import bowtie, collection, feature, small_features, square, sukomulyo

# (code, latitude, longitude): the `centroid` of a few desa/kelurahan in wilayah-16.05.geojson.
KNOWN_VILLAGES = [
    ("16.05.09.1003", -3.257691, 103.031964),  # Pasar Muara Beliti (kelurahan)
    ("16.05.01.2002", -3.201389, 102.962474),  # Surodadi
    ("16.05.02.2001", -3.347728, 103.519945),  # Tri Anggun Jaya
    ("16.05.20.2003", -3.180846, 103.180597),  # Sukamulya
    ("16.05.12.1001", -3.03115, 103.023503),  # Megang Sakti I (kelurahan)
]
JAKARTA = (-6.2, 106.8)
# Inside the kecamatan Muara Lakitan polygon but in a sliver no simplified desa polygon covers.
GAP_IN_MUARA_LAKITAN = (-3.169847, 103.51330362012493)


def region_count(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Region))


def boundary_count(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Region).where(Region.geometry.is_not(None)))


def audits(session, action: str) -> list[AuditEntry]:
    return list(session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- built-in regions --------------------------------------------------------------------------------------------


def test_seeding_stores_the_214_builtin_regions_once(session, settings):
    assert regions.seed_builtin_regions(session, settings=settings) == 214
    session.commit()
    assert regions.seed_builtin_regions(session, settings=settings) == 214
    session.commit()

    assert region_count(session) == 214
    levels = Counter(session.scalars(sa.select(Region.level)))
    assert levels == {"kabupaten": 1, "kecamatan": 14, "desa": 186, "kelurahan": 13}
    beliti = regions.get_region(session, code="16.05.09")
    assert (beliti.name, beliti.parent_code) == ("Muara Beliti", "16.05")
    assert (beliti.centroid_lat, beliti.centroid_lon) == (-3.258424, 103.007641)
    assert regions.get_region(session, code="16.05.09.1003").level == "kelurahan"
    assert len(audits(session, "regions.seed")) == 1


def test_seeding_another_kabupaten_stores_nothing(session, settings):
    other = settings.model_copy(update={"region_code": "16.06"})

    assert regions.seed_builtin_regions(session, settings=other) == 0
    assert region_count(session) == 0


def test_seeding_after_an_import_keeps_the_imported_boundaries(session, settings):
    regions.import_boundaries(session, settings=settings, data=collection(small_features()), actor=ACTOR)
    session.commit()
    before = session.execute(sa.select(Region.code, Region.geometry, Region.min_lat)).all()

    regions.seed_builtin_regions(session, settings=settings)
    session.commit()

    after = session.execute(sa.select(Region.code, Region.geometry, Region.min_lat)).all()
    assert set(before) <= set(after)
    assert region_count(session) == 214


# --- import ------------------------------------------------------------------------------------------------------


def test_importing_the_real_file_then_again_updates_in_place(session, settings, boundaries_bytes):
    calls = []

    first = regions.import_boundaries(
        session, settings=settings, data=boundaries_bytes, actor=ACTOR, progress=lambda d, t: calls.append((d, t))
    )
    session.commit()
    second = regions.import_boundaries(session, settings=settings, data=boundaries_bytes, actor=ACTOR)
    session.commit()

    assert (first.created, first.updated, first.total) == (214, 0, 214)
    assert (second.created, second.updated, second.total) == (0, 214, 214)
    assert region_count(session) == boundary_count(session) == 214
    assert calls and calls[-1] == (214, 214)
    [audit_first, audit_second] = audits(session, "regions.import")
    assert audit_first.after == {"created": 214, "updated": 0, "total": 214}
    assert audit_second.after == {"created": 0, "updated": 214, "total": 214}
    assert audit_second.entity_type == "region" and audit_second.entity_id == "16.05"
    village = regions.get_region(session, code="16.05.09.1003")
    assert village.min_lon < village.centroid_lon < village.max_lon
    assert json.loads(village.geometry)["type"] in ("Polygon", "MultiPolygon")


def test_a_dry_run_counts_and_stores_nothing(session, settings):
    regions.seed_builtin_regions(session, settings=settings)
    session.commit()

    result = regions.import_boundaries(
        session, settings=settings, data=collection(small_features()), actor=ACTOR, dry_run=True
    )

    assert (result.created, result.updated, result.total) == (0, 3, 3)
    assert boundary_count(session) == 0
    assert audits(session, "regions.import") == []


def test_a_missing_centroid_becomes_a_point_inside_the_boundary(session, settings):
    regions.import_boundaries(session, settings=settings, data=collection(small_features()), actor=ACTOR)

    desa = regions.get_region(session, code="16.05.01.2002")
    assert shapely.from_geojson(desa.geometry).contains(shapely.Point(desa.centroid_lon, desa.centroid_lat))


BAD_FEATURES = {
    "self-intersecting": (
        sukomulyo(bowtie(102.95, -3.16, 0.01)),
        "Self-intersection",
    ),
    "unknown-level": (
        sukomulyo(level="dusun"),
        "Unknown level dusun",
    ),
    "outside-kabupaten": (
        feature("16.06.01", "Lahat", "kecamatan", "16.06", square(103.5, -3.8, 0.05)),
        "outside this kabupaten (16.05)",
    ),
    "missing-parent": (
        feature("16.05.30.2001", "Desa Baru", "desa", "16.05.30", square(102.95, -3.16, 0.01)),
        "The parent 16.05.30 is neither in the file nor stored",
    ),
    "line-string": (
        sukomulyo({"type": "LineString", "coordinates": [[102.9, -3.1], [103, -3.2]]}),
        "must be a Polygon or MultiPolygon, not LineString",
    ),
    "code-shape": (
        sukomulyo(code="16.05.01.3"),
        "does not fit the level desa",
    ),
    "kelurahan-numbered-as-desa": (
        sukomulyo(level="kelurahan"),
        "does not fit the level kelurahan",
    ),
    "missing-property": (
        {"type": "Feature", "properties": {"kode": "16.05.01.2003"}, "geometry": square(102.95, -3.16, 0.01)},
        "Missing property: nama, level, induk",
    ),
    "latitude-first": (
        sukomulyo(square(-3.16, 102.95, 0.01)),
        "outside the longitude/latitude range",
    ),
    "empty-geometry": (
        sukomulyo({"type": "Polygon", "coordinates": []}),
        "The geometry is empty",
    ),
    "open-ring": (
        sukomulyo({"type": "Polygon", "coordinates": [[[102.9, -3.1], [103, -3.1], [103, -3.2], [102.9, -3.2]]]}),
        "A ring is not closed",
    ),
    "duplicate-code": (
        feature("16.05.01.2002", "Surodadi", "desa", "16.05.01", square(102.96, -3.18, 0.02)),
        "Duplicate code; it first appears at feature 2",
    ),
    "other-crs": (
        {
            **sukomulyo(),
            "crs": {
                "type": "name",
                "properties": {"name": "urn:ogc:def:crs:EPSG::32748"},
            },
        },
        "coordinate reference system",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FEATURES))
def test_a_bad_feature_is_named_and_nothing_is_stored(session, settings, case):
    regions.seed_builtin_regions(session, settings=settings)
    session.commit()
    bad, reason = BAD_FEATURES[case]

    with pytest.raises(InvalidInput) as caught:
        regions.import_boundaries(session, settings=settings, data=collection([*small_features(), bad]), actor=ACTOR)
    session.rollback()

    [error] = caught.value.errors
    assert error["index"] == 3
    assert reason in error["reason"]
    assert "nothing was imported" in caught.value.detail
    assert region_count(session) == 214
    assert boundary_count(session) == 0
    assert audits(session, "regions.import") == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"kode,nama\n16.05.01,Tugumulyo\n", "not JSON (line 1, column 1)"),
        (b"\xff\xfe{", "not UTF-8"),
        (json.dumps({"type": "Point", "coordinates": [102.9, -3.1]}).encode(), "FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": []}', "no features"),
        (collection(small_features(), crs={"type": "name", "properties": {"name": "EPSG:3857"}}), "reference system"),
    ],
    ids=["csv", "not-utf8", "point", "empty", "web-mercator"],
)
def test_a_file_that_is_not_a_wgs84_feature_collection_is_one_error(session, settings, data, reason):
    with pytest.raises(InvalidInput) as caught:
        regions.import_boundaries(session, settings=settings, data=data, actor=ACTOR)
    session.rollback()

    [error] = caught.value.errors
    assert error["index"] is None
    assert reason in error["reason"]
    assert region_count(session) == 0


def test_every_bad_feature_is_reported_at_once(session, settings):
    features = [*small_features(), *(bad for bad, _reason in BAD_FEATURES.values())]

    with pytest.raises(InvalidInput) as caught:
        regions.import_boundaries(session, settings=settings, data=collection(features), actor=ACTOR)

    assert {error["index"] for error in caught.value.errors} == set(range(3, 3 + len(BAD_FEATURES)))
    assert caught.value.detail.startswith(f"{len(BAD_FEATURES)} of {len(features)} features are wrong")


def test_the_crs84_member_and_a_parent_stored_earlier_are_accepted(session, settings):
    regions.seed_builtin_regions(session, settings=settings)
    only_desa = [small_features()[2]]
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}

    result = regions.import_boundaries(session, settings=settings, data=collection(only_desa, crs=crs), actor=ACTOR)

    assert (result.created, result.updated) == (0, 1)


# --- locate ------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("imported")
def test_known_desa_centres_are_located_to_their_desa(session, settings):
    for code, lat, lon in KNOWN_VILLAGES:
        location = regions.locate(session, settings=settings, lat=lat, lon=lon)
        assert location.desa is not None and location.desa.code == code, (code, location)
        assert location.kecamatan.code == code[:8]
        assert (location.method, location.inside, location.approximate) == ("boundary", True, False)
        assert location.note is None


@pytest.mark.usefixtures("imported")
def test_a_point_far_away_is_outside(session, settings):
    location = regions.locate(session, settings=settings, lat=JAKARTA[0], lon=JAKARTA[1])

    assert not location.inside
    assert location.desa is None and location.kecamatan is None
    assert location.method == "boundary"
    assert location.note == "The point is outside the kabupaten."


@pytest.mark.usefixtures("imported")
def test_a_point_in_a_gap_between_desa_gets_the_nearest_desa_of_its_kecamatan(session, settings):
    location = regions.locate(session, settings=settings, lat=GAP_IN_MUARA_LAKITAN[0], lon=GAP_IN_MUARA_LAKITAN[1])

    assert location.inside and location.approximate
    assert location.method == "nearest_boundary"
    assert location.kecamatan.code == "16.05.02"
    assert location.desa.code.startswith("16.05.02.")
    assert 0 < location.distance_m < 5000
    assert "nearest desa" in location.note


@pytest.mark.usefixtures("imported")
def test_locate_many_agrees_with_locate(session, settings):
    rng = np.random.default_rng(16_05)
    lat = rng.uniform(-3.62, -2.73, 300)
    lon = rng.uniform(102.46, 103.67, 300)
    points = np.column_stack([np.r_[lat, GAP_IN_MUARA_LAKITAN[0]], np.r_[lon, GAP_IN_MUARA_LAKITAN[1]]])

    batch = regions.locate_many(session, settings=settings, points=points)

    assert len(batch) == 301
    assert set(batch.method) == {"boundary", "nearest_boundary"}
    assert batch.inside.sum() > 100 and (~batch.inside).sum() > 100  # the kabupaten fills half its bbox
    for i in range(0, 301, 7):
        single = regions.locate(session, settings=settings, lat=float(points[i, 0]), lon=float(points[i, 1]))
        assert batch[i] == single
    assert batch[300].method == "nearest_boundary"


def test_without_boundaries_the_nearest_kecamatan_centre_answers_approximately(session, settings):
    regions.seed_builtin_regions(session, settings=settings)
    session.commit()

    near_beliti = regions.locate(session, settings=settings, lat=-3.259, lon=103.008)
    far = regions.locate(session, settings=settings, lat=JAKARTA[0], lon=JAKARTA[1])

    assert near_beliti.method == "centroid" and near_beliti.approximate and near_beliti.inside
    assert near_beliti.kecamatan.code == "16.05.09" and near_beliti.kecamatan.name == "Muara Beliti"
    assert near_beliti.desa is None
    assert near_beliti.distance_m < 200
    assert "desa is unknown" in near_beliti.note
    assert far.method == "centroid" and not far.inside and far.kecamatan is None


def test_another_process_sees_a_new_import_after_the_check_interval(session, settings, monkeypatch):
    regions.seed_builtin_regions(session, settings=settings)
    session.commit()
    code, lat, lon = "16.05.01.2002", -3.18, 102.96  # the centre of the small file's desa square
    assert regions.locate(session, settings=settings, lat=lat, lon=lon).method == "centroid"

    other_engine = make_engine(settings)
    try:
        with make_sessionmaker(other_engine)() as other:
            regions.import_boundaries(other, settings=settings, data=collection(small_features()), actor=ACTOR)
            other.commit()
    finally:
        other_engine.dispose()
    # Within the interval this process keeps its index; once it has passed, it compares the stamp and rebuilds.
    assert regions.locate(session, settings=settings, lat=lat, lon=lon).method == "centroid"
    monkeypatch.setattr(locator, "INDEX_CHECK_SECONDS", 0)
    session.rollback()

    location = regions.locate(session, settings=settings, lat=lat, lon=lon)
    assert (location.method, location.desa.code) == ("boundary", code)


@pytest.mark.parametrize(("lat", "lon"), [(200, 103), (-3.2, 181), (float("nan"), 103)])
def test_a_point_out_of_range_is_invalid(session, settings, lat, lon):
    with pytest.raises(InvalidInput):
        regions.locate(session, settings=settings, lat=lat, lon=lon)


def test_locate_many_names_each_point_out_of_range(session, settings):
    with pytest.raises(InvalidInput) as caught:
        regions.locate_many(session, settings=settings, points=[(-3.2, 103.0), (95, 103.0), (-3.2, -190)])

    assert [error["index"] for error in caught.value.errors] == [1, 2]


# --- reads -------------------------------------------------------------------------------------------------------


def test_list_regions_filters_by_level_parent_and_name(session, settings):
    regions.seed_builtin_regions(session, settings=settings)

    kecamatan = regions.list_regions(session, level="kecamatan", page=PageRequest(per_page=5))
    villages = regions.list_regions(session, parent_code="16.05.09", page=PageRequest(per_page=200))
    named = regions.list_regions(session, q="beliti", page=PageRequest())
    wildcard = regions.list_regions(session, q="%", page=PageRequest())

    assert kecamatan.total == 14 and [r.code for r in kecamatan.items] == sorted(r.code for r in kecamatan.items)
    assert len(kecamatan.items) == 5
    assert villages.total > 0 and all(r.code.startswith("16.05.09.") for r in villages.items)
    assert {r.code for r in named.items} >= {"16.05.09", "16.05.09.1003"}
    assert wildcard.total == 0


def test_get_region_and_its_children(session, settings):
    regions.seed_builtin_regions(session, settings=settings)

    assert regions.get_region(session, code="16.05").name == "Kabupaten Musi Rawas"
    assert len(regions.region_children(session, code="16.05")) == 14
    with pytest.raises(NotFound, match="16.05.99"):
        regions.get_region(session, code="16.05.99")
    with pytest.raises(NotFound):
        regions.region_children(session, code="16.05.99")


@pytest.mark.usefixtures("imported")
def test_geojson_of_a_level_is_rfc7946(session):
    collection_ = regions.regions_geojson(session, level="desa")

    assert collection_["type"] == "FeatureCollection"
    assert len(collection_["features"]) == 186
    first = collection_["features"][0]
    assert set(first["properties"]) >= {"kode", "nama", "level", "induk"}
    assert first["properties"]["level"] == "desa"
    lon, lat = first["geometry"]["coordinates"][0][0][:2]
    assert 102 < lon < 104 and -4 < lat < -2
    assert len(regions.regions_geojson(session, level="kecamatan")["features"]) == 14
