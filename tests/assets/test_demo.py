"""The demo's asset registry: the same rows from the same seed, seeded once, clean, inside the kabupaten and the desa
its address names, with the mix of types and conditions a real inventory has; and `kotacerdas demo` end to end."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import shapely
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import BOUNDARIES_FILE, POSTGRES_URL, TEST_ACTOR
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import types as asset_types
from kotacerdas.assets.demo import DEMO_SYSTEM, seed_demo_assets
from kotacerdas.assets.enums import FUNCTIONING_CONDITIONS, MANTAP_CONDITIONS, Condition
from kotacerdas.assets.models import Asset, AssetExternalId, AssetInspection, AssetType
from kotacerdas.assets.validation import AssetCleaner, CleanAsset, RawAsset
from kotacerdas.cli import app as cli_app
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.demo import REPORT_ASSET_TYPES
from kotacerdas.migrate import upgrade_database
from kotacerdas.regions import builtin
from kotacerdas.regions import service as regions
from kotacerdas.regions.models import Region
from kotacerdas.reports.models import Report, ReportCategory

TODAY = date.today()
# "Desa Surodadi, Kecamatan Tugumulyo": the place an asset's address names.
CLAIM = re.compile(r"^(Desa|Kelurahan) (.+), Kecamatan (.+)$")
# Schools and health centres are named after their kecamatan: "SD Negeri 3 Muara Beliti", "Puskesmas Selangit".
KECAMATAN_NAMED = re.compile(r"^(?:(?:SD|SMP|SMA|SMK) Negeri \d+|Puskesmas|Kantor Camat) (.+)$")
RIVERS = {"Sungai Musi", "Sungai Kelingi", "Sungai Lakitan", "Sungai Beliti"}
ASSET_COLUMNS = [column for column in Asset.__table__.columns if column.key not in ("created_at", "updated_at")]


def seed_reference_data(session, settings, *, boundaries: bool) -> None:
    """What the demo seeds before the registry: regions (with the real boundaries or not), OPDs, asset types."""
    regions.seed_builtin_regions(session, settings=settings)
    if boundaries:
        regions.import_boundaries(session, settings=settings, data=BOUNDARIES_FILE.read_bytes(), actor=TEST_ACTOR)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    asset_types.seed_default_types(session, actor=TEST_ACTOR)
    session.commit()


@pytest.fixture(params=["centres", "boundaries"])
def boundaries(request) -> bool:
    """Both ways the demo runs: without boundaries (kecamatan centres only) and with the real ones imported."""
    if request.param == "boundaries" and not BOUNDARIES_FILE.is_file():
        pytest.skip(f"reference boundaries not found at {BOUNDARIES_FILE}")
    return request.param == "boundaries"


@pytest.fixture
def reference(session, settings, boundaries) -> bool:
    seed_reference_data(session, settings, boundaries=boundaries)
    return boundaries


@pytest.fixture
def demo_registry(session, settings, reference) -> int:
    """The demo registry seeded and committed; how many assets."""
    made = seed_demo_assets(session, settings=settings, today=TODAY)
    session.commit()
    return made


@pytest.fixture
def other_database(backend, _databases, settings) -> Iterator[Settings]:
    """A second fresh, migrated database of the backend under test."""
    if backend == "sqlite":
        yield settings.model_copy(update={"database_url": _databases.sqlite_url()})
        return
    name = f"kc_demo_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(Settings(database_url=url))
    upgrade_database(engine)
    engine.dispose()
    try:
        yield settings.model_copy(update={"database_url": url})
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def registry(session) -> dict[str, list[tuple]]:
    """Every stored asset, inspection and external id, without timestamps, in id order."""
    session.rollback()
    session.expire_all()
    return {
        "assets": [tuple(row) for row in session.execute(sa.select(*ASSET_COLUMNS).order_by(Asset.id))],
        "inspections": [
            tuple(row)
            for row in session.execute(
                sa.select(
                    AssetInspection.id,
                    AssetInspection.asset_id,
                    AssetInspection.inspected_on,
                    AssetInspection.inspector,
                    AssetInspection.condition,
                    AssetInspection.notes,
                    AssetInspection.source,
                ).order_by(AssetInspection.id)
            )
        ],  # fmt: skip
        "external_ids": [
            tuple(row)
            for row in session.execute(
                sa.select(AssetExternalId.asset_id, AssetExternalId.system, AssetExternalId.value).order_by(
                    AssetExternalId.id
                )
            )
        ],
    }


def demo_assets(session) -> list:
    """The stored demo assets with their type code, in id order."""
    session.rollback()
    session.expire_all()
    return session.execute(
        sa.select(Asset, AssetType.code.label("type_code"))
        .join(AssetType, AssetType.id == Asset.type_id)
        .order_by(Asset.id)
    ).all()


def shapes(session, level: str) -> dict[str, shapely.Geometry]:
    rows = session.execute(sa.select(Region.code, Region.geometry).where(Region.level == level)).all()
    return {row.code: shapely.from_geojson(row.geometry) for row in rows if row.geometry}


# --- the same seed, the same registry ------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_rows_in_two_fresh_databases(session, settings, reference, other_database):
    made = seed_demo_assets(session, settings=settings, today=TODAY)
    session.commit()
    engine = make_engine(other_database)
    try:
        with make_sessionmaker(engine)() as other:
            seed_reference_data(other, other_database, boundaries=reference)
            made_again = seed_demo_assets(other, settings=other_database, today=TODAY)
            other.commit()
            assert made_again == made > 300
            assert registry(other) == registry(session)
    finally:
        engine.dispose()


def test_another_seed_gives_another_registry(session, settings, reference, other_database):
    seed_demo_assets(session, settings=settings, today=TODAY)
    session.commit()
    engine = make_engine(other_database)
    try:
        with make_sessionmaker(engine)() as other:
            seed_reference_data(other, other_database, boundaries=reference)
            seed_demo_assets(other, settings=other_database, seed=7, today=TODAY)
            other.commit()
            mine, theirs = registry(session)["assets"], registry(other)["assets"]
            geometry = [column.key for column in ASSET_COLUMNS].index("geometry")
            assert {row[geometry] for row in mine} != {row[geometry] for row in theirs}
    finally:
        engine.dispose()


def test_a_second_run_adds_nothing(session, settings, demo_registry):
    before = registry(session)
    audits = session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))

    assert seed_demo_assets(session, settings=settings, today=TODAY) == 0
    session.commit()

    assert registry(session) == before
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == audits
    assert len(before["assets"]) == demo_registry > 300
    # One audit entry for the whole seed, not one per row.
    assert session.scalar(sa.select(sa.func.count()).where(AuditEntry.action == "assets.demo")) == 1


# --- clean and in place ---------------------------------------------------------------------------------------------


def test_every_demo_asset_passes_the_cleaner_and_lies_inside_the_kabupaten(
    session, settings, demo_registry, boundaries
):
    rows = demo_assets(session)
    raws = [
        RawAsset(
            type=row.Asset.type_id, name=row.Asset.name, geometry=row.Asset.geometry, agency=row.Asset.agency_id,
            attributes=row.Asset.attributes, description=row.Asset.description, address=row.Asset.address,
            condition=row.Asset.condition, condition_on=row.Asset.condition_on,
        )
        for row in rows
    ]  # fmt: skip

    results = AssetCleaner(session, settings).clean_many(raws)

    assert len(rows) == demo_registry
    for row, result in zip(rows, results, strict=True):
        assert isinstance(result, CleanAsset), (row.Asset.name, result)
        stored = {key: getattr(row.Asset, key) for key in result.columns}
        assert result.columns == stored, row.Asset.name
    geometries = shapely.from_geojson([row.Asset.geometry for row in rows])
    if boundaries:
        kabupaten = shapes(session, "kabupaten")[builtin.KABUPATEN_CODE]
        # Whole lines, not only the point the registry locates.
        assert shapely.contains(kabupaten, geometries).all()
        assert {row.Asset.locate_method for row in rows} == {"boundary"}
        assert all(row.Asset.desa_code for row in rows)
    else:
        min_lon, min_lat, max_lon, max_lat = builtin.BBOX
        bounds = shapely.bounds(geometries)
        assert (bounds[:, 0] >= min_lon).all() and (bounds[:, 2] <= max_lon).all()
        assert (bounds[:, 1] >= min_lat).all() and (bounds[:, 3] <= max_lat).all()
        assert {row.Asset.locate_method for row in rows} == {"centroid"}
    assert all(row.Asset.kecamatan_code for row in rows)


def test_every_demo_asset_lies_in_the_place_its_address_and_name_give(session, demo_registry, boundaries):
    rows = demo_assets(session)
    names = dict(session.execute(sa.select(Region.code, Region.name)).all())
    levels = dict(session.execute(sa.select(Region.code, Region.level)).all())
    villages = {**shapes(session, "desa"), **shapes(session, "kelurahan")}

    claimed = 0
    for row in rows:
        asset = row.Asset
        match = CLAIM.match(asset.address or "")
        if match:
            claimed += 1
            level, desa, kecamatan = match.groups()
            assert names[asset.kecamatan_code] == kecamatan, asset.name
            if boundaries:
                assert (names[asset.desa_code], levels[asset.desa_code]) == (desa, level.lower()), asset.name
                # Inside the desa polygon itself, streets from end to end.
                assert villages[asset.desa_code].contains(shapely.from_geojson(asset.geometry)), asset.name
        named = KECAMATAN_NAMED.match(asset.name)
        if named:
            assert names[asset.kecamatan_code] == named.group(1), asset.name

    points = [row for row in rows if row.Asset.length_km is None]
    # Every facility names its desa; street lights, bridges and most roads name the road or nothing.
    assert claimed >= 0.6 * len(points)


# --- a believable mix -----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("demo_registry")
def test_the_registry_has_the_types_a_kabupaten_inventory_has(session):
    rows = demo_assets(session)
    by_type = Counter(row.type_code for row in rows)
    kecamatan = {k.code: k.name for k in builtin.KECAMATAN}

    assert by_type["jalan"] >= 200
    for code in ("jembatan", "pju", "drainase", "sekolah", "puskesmas", "pustu", "posyandu", "pasar", "kantor",
                 "air-bersih", "cctv", "pos-duga-air", "taman", "toilet-umum"):  # fmt: skip
        assert by_type[code] > 0, code
    assert by_type["pju"] >= 100 and by_type["sekolah"] >= 150
    # One puskesmas and one kantor camat in each kecamatan, in that kecamatan.
    puskesmas = [row.Asset for row in rows if row.type_code == "puskesmas"]
    assert sorted(a.kecamatan_code for a in puskesmas) == sorted(kecamatan)
    camat = {a.name: a.kecamatan_code for a in (row.Asset for row in rows) if a.name.startswith("Kantor Camat ")}
    assert camat == {f"Kantor Camat {name}": code for code, name in kecamatan.items()}
    # A school of each level in every kecamatan, several SD per kecamatan.
    levels = defaultdict(Counter)
    for row in rows:
        if row.type_code == "sekolah":
            levels[row.Asset.kecamatan_code][row.Asset.attributes["jenjang"]] += 1
    for code in kecamatan:
        assert {"TK", "SD", "SMP", "SMA"} <= set(levels[code]), code
        assert levels[code]["SD"] >= 3, code
    # River gauges on the four rivers; bridges over them.
    gauges = {row.Asset.attributes["sungai"] for row in rows if row.type_code == "pos-duga-air"}
    assert gauges == RIVERS
    assert {row.Asset.attributes["sungai"] for row in rows if row.type_code == "jembatan"} <= RIVERS


@pytest.mark.usefixtures("demo_registry")
def test_roads_are_segments_of_a_few_vertices_with_a_realistic_status_surface_and_condition(session):
    roads = [row.Asset for row in demo_assets(session) if row.type_code == "jalan"]

    for road in roads:
        vertices = len(json.loads(road.geometry)["coordinates"])
        assert 3 <= vertices <= 9, road.name
        assert 0.05 < road.length_km < 8, road.name
    assert {road.attributes["status_jalan"] for road in roads} == {"kabupaten", "desa"}
    assert {road.attributes["permukaan"] for road in roads} == {"aspal", "beton", "kerikil/agregat", "tanah"}
    # Dirt roads only on desa roads.
    assert all(road.attributes["status_jalan"] == "desa" for road in roads if road.attributes["permukaan"] == "tanah")
    rated = [road for road in roads if road.condition is not None]
    length = sum(road.length_km for road in rated)
    mantap = sum(road.length_km for road in rated if Condition(road.condition) in MANTAP_CONDITIONS)
    assert 0.5 < mantap / length < 0.9
    assert Counter(road.condition for road in rated)[Condition.RUSAK_BERAT.value] > 0


@pytest.mark.usefixtures("demo_registry")
def test_conditions_and_inspections_span_two_years(session):
    rows = demo_assets(session)
    inspections = session.execute(sa.select(AssetInspection)).scalars().all()
    by_asset = defaultdict(list)
    for inspection in inspections:
        by_asset[inspection.asset_id].append(inspection)

    facilities = [row.Asset for row in rows if row.Asset.condition in ("berfungsi", "berfungsi_sebagian",
                                                                         "tidak_berfungsi")]  # fmt: skip
    working = sum(Condition(a.condition) in FUNCTIONING_CONDITIONS for a in facilities) / len(facilities)
    assert 0.65 < working < 0.95
    assert any(a.condition == Condition.TIDAK_BERFUNGSI.value for a in facilities)
    unknown = [row.Asset for row in rows if row.Asset.condition is None]
    assert 0 < len(unknown) < 0.1 * len(rows)
    for row in rows:
        asset = row.Asset
        if asset.condition is None:
            assert by_asset[asset.id] == [] and asset.condition_on is None
            continue
        (inspection,) = by_asset[asset.id]
        assert (inspection.condition, inspection.inspected_on) == (asset.condition, asset.condition_on)
        assert inspection.inspector and inspection.notes
    dates = [asset.condition_on for asset in (row.Asset for row in rows) if asset.condition_on]
    assert TODAY - timedelta(days=730) <= min(dates) and max(dates) <= TODAY
    older = sum(d < TODAY - timedelta(days=365) for d in dates) / len(dates)
    assert 0.2 < older < 0.55


@pytest.mark.usefixtures("demo_registry")
def test_every_demo_asset_has_a_demo_number_and_schools_their_npsn(session):
    rows = demo_assets(session)
    external = session.execute(sa.select(AssetExternalId.asset_id, AssetExternalId.system, AssetExternalId.value))
    numbers = defaultdict(dict)
    for asset_id, system, value in external:
        numbers[asset_id][system] = value

    assert sorted(int(numbers[row.Asset.id][DEMO_SYSTEM]) for row in rows) == list(range(1, len(rows) + 1))
    for row in rows:
        if row.type_code == "sekolah":
            assert numbers[row.Asset.id]["npsn"] == row.Asset.attributes["npsn"]


# --- the command ----------------------------------------------------------------------------------------------------


def run_demo(settings: Settings):
    clean = {name: None for name in os.environ if name.startswith("KOTACERDAS_")}
    env = {**clean, "KOTACERDAS_DATA_DIR": str(settings.data_dir), "KOTACERDAS_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(cli_app, ["demo", "--no-serve"], env=env, catch_exceptions=False)


def test_the_demo_command_seeds_the_registry_once_and_links_reports_to_it(session, settings):
    first = run_demo(settings)
    assert first.exit_code == 0, first.stderr
    assets = registry(session)

    second = run_demo(settings)
    assert second.exit_code == 0, second.stderr

    assert registry(session) == assets
    assert len(assets["assets"]) > 300
    assert f"Aset contoh / sample assets: {len(assets['assets'])}" in first.stdout
    assert "Aset contoh / sample assets: 0" in second.stdout
    linked = session.execute(
        sa.select(ReportCategory.code, AssetType.code)
        .select_from(Report)
        .join(ReportCategory, ReportCategory.id == Report.category_id)
        .join(Asset, Asset.id == Report.asset_id)
        .join(AssetType, AssetType.id == Asset.type_id)
    ).all()
    assert linked
    for category, type_code in linked:
        assert type_code in REPORT_ASSET_TYPES[category]
    # Linked through the reports service, each audited as staff linking would be.
    audited = session.scalar(sa.select(sa.func.count()).where(AuditEntry.action == "report.link_asset"))
    assert audited == len(linked)
