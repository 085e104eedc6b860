"""The "Kondisi Infrastruktur" figures on a small registry computed by hand: road kilometres by condition and the
jalan mantap share (roads not inspected count in the total), facilities that work per type and kecamatan, and the
assets without an inspection in the last 12 months per OPD."""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import date

import pytest

from conftest import TEST_ACTOR
from kotacerdas.assets import indicators, service
from kotacerdas.regions import service as regions

from .helpers import INSIDE, line, point

TODAY = date(2026, 11, 28)  # so an inspection before 2025-11-28 is more than 12 months old
FRESH = date(2026, 6, 1)
STALE = date(2025, 6, 1)


def road(make_asset, *, north_deg: float, lon: float, condition=None, on=None, status="kabupaten"):
    """A road running north along a meridian for `north_deg` degrees: its length is R × Δφ exactly (R = 6371.0088
    km, 111.195 km a degree), stored rounded to 4 decimals."""
    return make_asset(
        type="jalan", name=f"Jalan {lon}", attributes={"status_jalan": status, "permukaan": "aspal"},
        geometry=line((INSIDE[0], lon), (INSIDE[0] + north_deg, lon)), condition=condition, condition_on=on,
    )  # fmt: skip


@pytest.fixture
def registry(make_asset, session, settings):
    """Five roads, two bridges, five schools (one archived), a puskesmas in another kecamatan and a street light."""
    lon = INSIDE[1]
    made = {
        "baik": road(make_asset, north_deg=0.002, lon=lon, condition="baik", on=FRESH),  # 0.2224 km
        "sedang": road(make_asset, north_deg=0.001, lon=lon + 0.001, condition="sedang", on=STALE),  # 0.1112 km
        "berat": road(make_asset, north_deg=0.003, lon=lon + 0.002, condition="rusak_berat", on=date(2026, 10, 1)),
        "unknown": road(make_asset, north_deg=0.001, lon=lon + 0.003),  # 0.1112 km, never inspected
        "desa": road(make_asset, north_deg=0.004, lon=lon + 0.004, condition="baik", on=date(2024, 12, 31),
                     status="desa"),  # 0.4448 km, not a kabupaten road
        # Exactly 12 months before TODAY is still recent; a day more is not.
        "bridge_stale": make_asset(condition="baik", condition_on=date(2025, 11, 27)),
        "bridge_fresh": make_asset(condition="rusak_ringan", condition_on=date(2025, 11, 28)),
        "light": make_asset(type="pju", attributes={}, name="PJU 1", geometry=point(lon=lon + 0.005)),
    }  # fmt: skip
    for name, condition, on in (
        ("school1", "berfungsi", date(2026, 9, 1)),
        ("school2", "berfungsi", date(2026, 9, 1)),
        ("school3", "tidak_berfungsi", date(2025, 1, 1)),
        ("school4", None, None),
        ("archived", "berfungsi", date(2026, 9, 1)),
    ):
        made[name] = make_asset(
            type="sekolah", name=name, attributes={"jenjang": "SD"}, geometry=point(lon=lon + 0.006),
            condition=condition, condition_on=on,
        )  # fmt: skip
    here = made["school1"].kecamatan_code
    elsewhere = next(
        k for k in regions.list_kecamatan(session, settings=settings) if k.code != here and k.centroid_lat is not None
    )
    made["puskesmas"] = make_asset(
        type="puskesmas", attributes={}, name="Puskesmas", condition="berfungsi_sebagian",
        geometry=point(elsewhere.centroid_lat, elsewhere.centroid_lon), condition_on=date(2026, 1, 1),
    )  # fmt: skip
    service.archive_asset(session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=made["archived"].id)
    session.commit()
    assert made["puskesmas"].kecamatan_code == elsewhere.code
    assert {made[key].kecamatan_code for key in ("baik", "sedang", "berat", "unknown", "light")} == {here}
    return made


def figures(session, settings):
    session.commit()
    return indicators.infrastructure_indicators(session, settings=settings, today=TODAY, locale="id")


def test_road_kilometres_and_the_jalan_mantap_share(session, settings, registry):
    result = figures(session, settings)
    roads = result.roads
    assert roads.km == {"baik": 0.2224, "sedang": 0.1112, "rusak_ringan": 0.0, "rusak_berat": 0.3336, "unknown": 0.1112}
    assert roads.total_km == 0.7784  # the road not inspected is in the total …
    assert roads.inspected_km == 0.6672 and roads.unknown_km == 0.1112
    assert roads.mantap_km == 0.3336  # … and not mantap: 0.3336 / 0.7784
    assert roads.mantap_pct == 42.86
    assert roads.segments == 4
    (kecamatan,) = result.roads_by_kecamatan
    assert kecamatan.key == registry["baik"].kecamatan_code
    assert kecamatan.total_km == 0.7784 and kecamatan.mantap_pct == 42.86
    assert kecamatan.name == regions.get_region(session, code=kecamatan.key).name
    # Every road segment, desa roads too.
    assert result.all_roads.total_km == 1.2232 and result.all_roads.km["baik"] == 0.6672
    assert result.all_roads.segments == 5
    assert result.all_roads.mantap_pct == round(100 * (0.6672 + 0.1112) / 1.2232, 2)


def test_facilities_functioning_per_type_and_kecamatan(session, settings, registry):
    result = figures(session, settings)
    by_type = {row.key: row for row in result.facilities_by_type}
    assert set(by_type) == {"sekolah", "puskesmas", "pju"}  # bridges are structures, not facilities
    school = by_type["sekolah"]  # the archived school is left out
    assert school.counts == {"berfungsi": 2, "berfungsi_sebagian": 0, "tidak_berfungsi": 1, "unknown": 1}
    assert (school.total, school.inspected, school.not_inspected, school.functioning) == (4, 3, 1, 2)
    assert school.functioning_pct == 66.67
    assert school.name == "Sekolah"
    assert by_type["puskesmas"].functioning_pct == 0.0 and by_type["puskesmas"].inspected == 1
    assert by_type["pju"].functioning_pct is None and by_type["pju"].not_inspected == 1
    by_kecamatan = {row.key: row for row in result.facilities_by_kecamatan}
    here = by_kecamatan[registry["school1"].kecamatan_code]
    assert (here.total, here.inspected, here.functioning, here.functioning_pct) == (5, 3, 2, 66.67)
    there = by_kecamatan[registry["puskesmas"].kecamatan_code]
    assert (there.total, there.inspected, there.functioning, there.functioning_pct) == (1, 1, 0, 0.0)
    total = result.facilities
    assert (total.total, total.inspected, total.not_inspected, total.functioning_pct) == (6, 4, 2, 50.0)


def test_assets_without_an_inspection_in_twelve_months_per_opd(session, settings, registry):
    result = figures(session, settings)
    assert result.stale_before == date(2025, 11, 28)
    rows = [(row.name, row.total, row.stale, row.never_inspected) for row in result.stale_by_agency]
    assert rows == [
        # sedang (2025-06-01), the road never inspected, the desa road (2024-12-31), bridge_stale (2025-11-27)
        ("Dinas Pekerjaan Umum dan Penataan Ruang", 7, 4, 1),
        ("Dinas Pendidikan", 4, 2, 1),  # school3 (2025-01-01) and school4 (never); not the archived one
        ("Dinas Perhubungan", 1, 1, 1),  # the street light, never inspected
        ("Dinas Kesehatan", 1, 0, 0),
    ]
    assert result.stale_by_agency[0].stale_pct == round(100 * 4 / 7, 2)
    assert (result.stale.total, result.stale.stale, result.stale.never_inspected) == (13, 7, 3)


def test_an_empty_registry(session, settings, seeded):
    result = figures(session, settings)
    assert result.roads.total_km == 0 and result.roads.mantap_pct is None
    assert result.roads_by_kecamatan == [] and result.facilities_by_type == [] and result.stale_by_agency == []
    assert result.facilities.functioning_pct is None and result.stale.stale_pct is None
    assert asdict(result)["roads"]["km"]["unknown"] == 0.0


def test_months_before():
    assert indicators.months_before(date(2026, 3, 31), 12) == date(2025, 3, 31)
    assert indicators.months_before(date(2024, 2, 29), 12) == date(2023, 2, 28)
    assert indicators.months_before(date(2026, 1, 15), 13) == date(2024, 12, 15)


def test_a_change_shows_at_once(session, settings, registry):
    before = figures(session, settings)
    assert next(row for row in before.facilities_by_type if row.key == "sekolah").functioning == 2
    # Computed again from the database, the same figures.
    assert asdict(indicators.infrastructure_indicators(session, settings=settings, today=TODAY, fresh=True)) == asdict(
        before
    )
    service.archive_asset(session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=registry["school1"].id)
    service.record_inspection(
        session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=registry["unknown"].id,
        inspected_on=date(2026, 11, 1), inspector="Tim PUPR", condition="baik", notes=None,
    )  # fmt: skip
    session.commit()
    after = figures(session, settings)
    school = next(row for row in after.facilities_by_type if row.key == "sekolah")
    assert (school.total, school.functioning) == (3, 1)
    assert after.roads.km["unknown"] == 0.0 and after.roads.mantap_km == 0.4448


def test_on_a_large_registry_a_change_is_counted_in_the_background(session, settings, registry, monkeypatch):
    """When counting took longer than SYNC_SECONDS (a registry of 250,000 assets), a reader after a change gets the
    figures from before it at once, and the new ones as soon as a background thread has counted again."""
    monkeypatch.setattr(indicators, "SYNC_SECONDS", 0.0)
    before = figures(session, settings)
    service.archive_asset(session, settings=settings, actor=TEST_ACTOR, by=None, asset_id=registry["school1"].id)
    session.commit()
    served = figures(session, settings)
    assert next(row for row in served.facilities_by_type if row.key == "sekolah").functioning == 2
    assert asdict(served) == asdict(before)
    for thread in [t for t in threading.enumerate() if t.name == "kotacerdas-asset-indicators"]:
        thread.join(timeout=30)
    after = figures(session, settings)
    assert next(row for row in after.facilities_by_type if row.key == "sekolah").functioning == 1
