"""Importing and exporting assets (assets/transfer.py, assets/transfer_web.py): what an OPD or Diskominfo sees when
a file is right, when some rows are wrong, and when the file itself is wrong; upsert by external id; dry runs;
exports in three formats that import again; who may import."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from conftest import TEST_ACTOR, assert_problem, bearer, csrf_from, new_api_token, post_login, row_count, stored
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.assets import service, transfer, validation
from kotacerdas.assets.models import Asset, AssetExternalId, AssetInspection
from kotacerdas.errors import InvalidInput, PermissionDenied

from .helpers import INSIDE, OUTSIDE, agency_id

HEADER = "type,name,agency,lat,lon,wkt,condition,condition_on,attr.status_jalan,attr.permukaan,attr.lebar_m,id.simbada"
ROAD = "LINESTRING (102.93 -3.06, 102.94 -3.065, 102.95 -3.07)"


def write(tmp_path: Path, text: str | bytes, name: str = "aset.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def run_import(session, settings, path: Path, *, by=None, **options) -> transfer.ImportResult:
    with path.open("rb") as source:
        return transfer.import_assets(
            session, settings=settings, actor=TEST_ACTOR, by=by, source=source, filename=path.name, **options
        )


def good_csv() -> str:
    lat, lon = INSIDE
    return "\n".join(
        [
            HEADER,
            f'jalan,Jalan Poros Desa,,,,"{ROAD}",Sedang,2026-10-01,kabupaten,aspal,"4,5",R-001',
            f"pju,PJU Simpang Tiga,Dishub,{lat},{lon},,Berfungsi,01/09/2026,,,,P-001",
            f"jembatan,Jembatan Beliti,,{lat + 0.01},{lon + 0.01},,,,,,,",
        ]
    )


def reasons(result: transfer.ImportResult) -> set[tuple[int, str, str]]:
    return {(error.place, error.field, error.reason) for error in result.errors}


# --- importing -------------------------------------------------------------------------------------------------


def test_a_good_csv_is_imported_with_its_inspections_and_one_audit_entry(seeded, session, settings, tmp_path):
    result = run_import(session, settings, write(tmp_path, good_csv()))
    session.commit()

    assert (result.stored, result.rows, result.inserted, result.updated, result.inspections) == (True, 3, 3, 0, 2)
    assert result.bad_rows == 0 and result.errors == []
    road = stored(session, sa.select(Asset).where(Asset.name == "Jalan Poros Desa"))
    # A text cell becomes the JSON type the schema wants ("4,5" in the Indonesian locale is 4.5).
    assert road.attributes == {"status_jalan": "kabupaten", "permukaan": "aspal", "lebar_m": 4.5}
    assert road.agency_id == agency_id(session, "Dinas PUPR")  # the type's default OPD
    assert road.length_km == pytest.approx(2.5, abs=0.5)
    assert (road.condition, road.condition_on) == ("sedang", date(2026, 10, 1))
    assert road.kecamatan_code is not None
    light = session.scalar(sa.select(Asset).where(Asset.name == "PJU Simpang Tiga"))
    assert light.agency_id == agency_id(session, "Dishub")
    assert (light.condition, light.condition_on) == ("berfungsi", date(2026, 9, 1))  # DD/MM/YYYY read too
    assert json.loads(light.geometry) == {"type": "Point", "coordinates": [INSIDE[1], INSIDE[0]]}
    numbers = dict(session.execute(sa.select(AssetExternalId.value, AssetExternalId.asset_id)).all())
    assert numbers == {"R-001": road.id, "P-001": light.id}
    inspections = session.execute(sa.select(AssetInspection.asset_id, AssetInspection.source)).all()
    assert sorted(inspections) == sorted([(road.id, "import"), (light.id, "import")])
    audit = session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "asset.import")).all()
    assert len(audit) == 1
    assert audit[0].after["inserted"] == 3 and audit[0].after["file"] == "aset.csv"


def test_indonesian_column_names_and_a_bom_are_read(seeded, session, settings, tmp_path):
    lat, lon = INSIDE
    text = (
        "\ufeffJenis,Nama,OPD,Lintang,Bujur,Kondisi,Alamat,Keterangan\n"
        f"posyandu,Posyandu Mawar,,{lat},{lon},,Desa A,x\n"
    )
    result = run_import(session, settings, write(tmp_path, text))
    session.commit()
    assert result.inserted == 1, result.errors
    asset = stored(session, sa.select(Asset))
    assert (asset.name, asset.address, asset.description) == ("Posyandu Mawar", "Desa A", "x")


def test_one_bad_row_imports_nothing_and_every_bad_row_is_reported_with_its_line(seeded, session, settings, tmp_path):
    lat, lon = INSIDE
    out_lat, out_lon = OUTSIDE
    rows = [
        HEADER,
        f"pju,PJU baik,,{lat},{lon},,,,,,,",  # line 2: good
        "jalan,Jalan rusak WKT,,,,LINESTRING (102.9 -3.0,,,,,,",  # 3: invalid geometry
        f"pju,PJU Jakarta,,{out_lat},{out_lon},,,,,,,",  # 4: outside the kabupaten
        'jalan,Jalan satu titik,,,,"LINESTRING (102.93 -3.06, 102.93 -3.06)",,,kabupaten,aspal,,',  # 5: one point
        f'jalan,Jalan emas,,,,"{ROAD}",,,kabupaten,emas,,',  # 6: attribute fails the schema
        f"kapal,Kapal,,{lat},{lon},,,,,,,",  # 7: unknown type
        f"pju,PJU OPD asing,Dinas Antah,{lat},{lon},,,,,,,",  # 8: unknown OPD
        f"pju,PJU tanpa bujur,,{lat},,,,,,,,",  # 9: lat without lon
        f"pju,PJU kondisi,,{lat},{lon},,Rusak Berat,,,,,",  # 10: not on the facility scale
        f"pju,PJU tanggal,,{lat},{lon},,Berfungsi,kemarin,,,,",  # 11: unreadable date
        f"pju,,,{lat},{lon},,,,,,,",  # 12: no name
        f"pju,PJU kembar,,{lat},{lon},,,,,,,X-1",  # 13: good
        f"pju,PJU kembar lagi,,{lat},{lon},,,,,,,X-1",  # 14: the same external number again
    ]
    result = run_import(session, settings, write(tmp_path, "\n".join(rows)))
    session.commit()

    assert result.stored is False
    assert (result.rows, result.bad_rows, result.inserted, result.updated) == (13, 11, 0, 0)
    found = reasons(result)
    for expected in [
        (3, "geometry", "invalid"),
        (4, "geometry", "outside"),
        (5, "geometry", "one_point"),
        (6, "attributes.permukaan", "enum"),
        (7, "type", "unknown"),
        (8, "agency", "unknown"),
        (9, "lon", "required"),
        (10, "condition", "unknown"),
        (11, "condition_on", "format"),
        (12, "name", "required"),
        (14, "id.simbada", "duplicate"),
    ]:
        assert expected in found, (expected, found)
    assert {error.place for error in result.errors} == {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14}
    assert all(error.message for error in result.errors)
    assert row_count(session, Asset) == 0
    assert row_count(session, AssetExternalId) == 0
    assert row_count(session, AuditEntry, AuditEntry.action == "asset.import") == 0


def test_partial_import_stores_the_good_rows(seeded, session, settings, tmp_path):
    lat, lon = INSIDE
    text = f"{HEADER}\npju,PJU A,,{lat},{lon},,,,,,,\nkapal,Kapal,,{lat},{lon},,,,,,,\n"
    result = run_import(session, settings, write(tmp_path, text), partial=True)
    session.commit()
    assert (result.stored, result.inserted, result.bad_rows) == (True, 1, 1)
    assert row_count(session, Asset) == 1


def test_a_dry_run_stores_nothing_but_says_what_it_would_do(seeded, session, settings, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv(), "first.csv"))
    session.commit()
    lat, lon = INSIDE
    text = f"{HEADER}\npju,PJU baru,,{lat},{lon},,,,,,,\npju,PJU Simpang Tiga diganti,,{lat},{lon},,,,,,,P-001\n"
    result = run_import(session, settings, write(tmp_path, text), dry_run=True)
    session.commit()

    assert (result.dry_run, result.stored, result.inserted, result.updated) == (True, False, 1, 1)
    assert row_count(session, Asset) == 3
    assert stored(session, sa.select(sa.func.count()).where(Asset.name == "PJU Simpang Tiga")) == 1
    assert row_count(session, AuditEntry, AuditEntry.action == "asset.import") == 1  # the first import only


def test_a_row_with_a_stored_external_id_updates_that_asset_in_place(seeded, session, settings, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv(), "first.csv"))
    session.commit()
    light_id = session.scalar(sa.select(AssetExternalId.asset_id).where(AssetExternalId.value == "P-001"))
    lat, lon = INSIDE
    text = (
        "type,name,lat,lon,condition,condition_on,id.simbada,id.nomor_aset\n"
        f"pju,PJU Simpang Tiga (LED),{lat + 0.002},{lon},Tidak Berfungsi,2026-11-01,P-001,NA-9\n"
    )
    result = run_import(session, settings, write(tmp_path, text, "second.csv"))
    session.commit()

    assert (result.inserted, result.updated, result.inspections) == (0, 1, 1)
    assert row_count(session, Asset) == 3
    light = stored(session, sa.select(Asset).where(Asset.id == light_id))
    assert light.name == "PJU Simpang Tiga (LED)"
    assert light.lat == pytest.approx(INSIDE[0] + 0.002)
    assert (light.condition, light.condition_on) == ("tidak_berfungsi", date(2026, 11, 1))
    history = service.condition_history(session, asset_id=light_id)
    assert [item.condition for item in history] == ["tidak_berfungsi", "berfungsi"]
    numbers = session.scalars(sa.select(AssetExternalId.value).where(AssetExternalId.asset_id == light_id)).all()
    assert sorted(numbers) == ["NA-9", "P-001"]


def test_an_older_condition_is_recorded_without_replacing_the_current_one(seeded, session, settings, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv(), "first.csv"))
    session.commit()
    lat, lon = INSIDE
    text = (
        f"type,name,lat,lon,condition,condition_on,id.simbada\npju,PJU,{lat},{lon},Tidak Berfungsi,2025-01-01,P-001\n"
    )
    result = run_import(session, settings, write(tmp_path, text, "old.csv"))
    session.commit()
    assert result.inspections == 1
    light = stored(session, sa.select(Asset).where(Asset.name == "PJU"))
    assert (light.condition, light.condition_on) == ("berfungsi", date(2026, 9, 1))


def test_the_inspection_date_is_checked_against_the_regencys_today_not_the_servers(
    seeded, session, settings, tmp_path, monkeypatch
):
    # 20:00 UTC on 28 November is already 29 November in Musi Rawas (WIB): an export written then carries the 29th.
    monkeypatch.setattr(validation, "utcnow", lambda: datetime(2026, 11, 28, 20, 0, tzinfo=UTC))
    lat, lon = INSIDE
    text = (
        "type,name,lat,lon,condition,condition_on,id.simbada\n"
        f"pju,PJU Hari Ini,{lat},{lon},Berfungsi,2026-11-29,P-1\n"
        f"pju,PJU Besok,{lat},{lon + 0.001},Berfungsi,2026-11-30,P-2\n"
    )
    result = run_import(session, settings, write(tmp_path, text), dry_run=True)
    assert reasons(result) == {(3, "condition_on", "future")}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("type;name;lat;lon\npju;PJU;-3.06;102.93\n", "delimiter"),
        ("type\tname\tlat\tlon\npju\tPJU\t-3.06\t102.93\n", "delimiter"),
        ("type,name,lat,lon\npju,Lampu Jal\xe9,-3.06,102.93\n".encode("latin-1"), "encoding"),
        ("type,name,lat,lon,warna\npju,PJU,-3.06,102.93,merah\n", "unknown_columns"),
        ("type,lat,lon\npju,-3.06,102.93\n", "missing_columns"),
        ("type,name,lat\npju,PJU,-3.06\n", "missing_columns"),
        ("type,name,lat,lon\n", "empty"),
        ("", "empty"),
    ],
    ids=["semicolon", "tab", "latin-1", "unknown-column", "no-name", "no-lon", "no-rows", "empty-file"],
)
def test_a_file_that_cannot_be_read_is_refused_with_a_clear_reason(
    seeded, session, settings, tmp_path, content, reason
):
    with pytest.raises(InvalidInput) as refused:
        run_import(session, settings, write(tmp_path, content))
    error = refused.value.errors[0]
    assert (error["field"], error["reason"]) == ("file", reason)
    assert refused.value.detail
    session.rollback()
    assert row_count(session, Asset) == 0


def test_the_delimiter_error_names_the_delimiter(seeded, session, settings, tmp_path):
    with pytest.raises(InvalidInput) as refused:
        run_import(session, settings, write(tmp_path, "type;name;lat;lon\npju;PJU;-3.06;102.93\n"))
    assert ";" in refused.value.detail
    with pytest.raises(InvalidInput) as refused:
        run_import(session, settings, write(tmp_path, "type,name,lat,lon\npju,Jal\xe9,-3,102\n".encode("cp1252")))
    assert "UTF-8" in refused.value.detail


# --- GeoJSON ---------------------------------------------------------------------------------------------------


def feature(geometry, **properties) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def point(lat: float, lon: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def collection(features: list[dict], **extra) -> str:
    return json.dumps({"type": "FeatureCollection", "features": features, **extra})


def test_a_geojson_feature_collection_is_imported(seeded, session, settings, tmp_path):
    lat, lon = INSIDE
    road = {"type": "LineString", "coordinates": [[102.93, -3.06], [102.94, -3.07]]}
    features = [
        feature(road, type="jalan", name="Jalan A", attributes={"status_jalan": "desa", "permukaan": "tanah"},
                external_ids={"kode_ruas": "016"}, condition="rusak_berat", condition_on="2026-08-17"),
        feature(point(lat, lon), jenis="sekolah", nama="SD Negeri 1", **{"attr.jenjang": "SD", "id.npsn": "10600001"}),
    ]  # fmt: skip
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    result = run_import(session, settings, write(tmp_path, collection(features, crs=crs), "aset.geojson"))
    session.commit()
    assert (result.file_format, result.inserted, result.inspections) == ("geojson", 2, 1), result.errors
    school = stored(session, sa.select(Asset).where(Asset.name == "SD Negeri 1"))
    assert school.attributes == {"jenjang": "SD"}
    road_asset = session.scalar(sa.select(Asset).where(Asset.name == "Jalan A"))
    assert road_asset.condition == "rusak_berat"


def test_geojson_bad_features_are_reported_by_index(seeded, session, settings, tmp_path):
    lat, lon = INSIDE
    features = [
        feature(point(lat, lon), type="pju", name="PJU A"),
        feature(None, type="pju", name="PJU tanpa geometri"),
        feature({"type": "LineString", "coordinates": [[102.93, -3.06]]}, type="jalan", name="Jalan satu titik",
                attributes={"status_jalan": "desa", "permukaan": "tanah"}),
        feature(point(*OUTSIDE), type="pju", name="PJU Jakarta"),
    ]  # fmt: skip
    result = run_import(session, settings, write(tmp_path, collection(features), "aset.geojson"))
    session.commit()
    assert result.stored is False
    places = {(error.place, error.field) for error in result.errors}
    assert {(1, "geometry"), (2, "geometry"), (3, "geometry")} <= places
    assert 0 not in {error.place for error in result.errors}
    assert all(error.as_dict()["feature"] == error.place for error in result.errors)
    assert row_count(session, Asset) == 0


def test_a_geojson_in_another_crs_is_refused(seeded, session, settings, tmp_path):
    features = [feature(point(*INSIDE), type="pju", name="PJU")]
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32748"}}  # UTM 48S
    # The crs member after the features: the file is read in one pass and refused at its end.
    text = json.dumps({"type": "FeatureCollection", "features": features, "crs": crs})
    with pytest.raises(InvalidInput) as refused:
        run_import(session, settings, write(tmp_path, text, "utm.geojson"))
    assert refused.value.errors[0]["reason"] == "crs"
    assert "32748" in refused.value.detail
    session.rollback()
    assert row_count(session, Asset) == 0


def test_a_json_file_that_is_not_a_feature_collection_is_refused(seeded, session, settings, tmp_path):
    with pytest.raises(InvalidInput) as refused:
        run_import(session, settings, write(tmp_path, json.dumps(feature(point(*INSIDE))), "satu.geojson"))
    assert refused.value.errors[0]["reason"] == "geojson"
    with pytest.raises(InvalidInput) as refused:
        run_import(session, settings, write(tmp_path, '{"type": "FeatureCollection", "features": [', "rusak.json"))
    assert refused.value.errors[0]["reason"] == "json"


# --- who may import ----------------------------------------------------------------------------------------------


def test_an_opd_admin_imports_only_rows_of_their_own_opd(seeded, session, settings, make_user, tmp_path):
    pupr = make_user("pupr.admin", "opd_admin", agency_id(session, "Dinas PUPR"))
    lat, lon = INSIDE
    text = f"type,name,agency,lat,lon\njembatan,Jembatan A,,{lat},{lon}\npju,PJU B,Dishub,{lat},{lon}\n"
    result = run_import(session, settings, write(tmp_path, text), by=pupr)
    assert reasons(result) == {(3, "agency", "forbidden")}
    session.rollback()
    # An empty OPD cell means the importer's own OPD, whatever the type's default owner.
    result = run_import(session, settings, write(tmp_path, f"type,name,lat,lon\npju,PJU C,{lat},{lon}\n"), by=pupr)
    session.commit()
    assert result.inserted == 1
    assert stored(session, sa.select(Asset.agency_id)) == agency_id(session, "Dinas PUPR")


def test_staff_without_the_import_permission_are_refused(seeded, session, settings, make_user, tmp_path):
    staff = make_user("pupr.staf", "opd_staff", agency_id(session, "Dinas PUPR"))
    with pytest.raises(PermissionDenied):
        run_import(session, settings, write(tmp_path, good_csv()), by=staff)


# --- export --------------------------------------------------------------------------------------------------------


def export_text(session, **filters) -> str:
    export = transfer.Export(session, filters=service.AssetFilters(**filters))
    return "".join(export.iter_csv())


def test_a_csv_export_imports_again_unchanged(seeded, session, settings, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv(), "first.csv"))
    session.commit()
    first = export_text(session)
    before = export_text(session, type_codes=["jalan", "pju"])
    rows = list(csv.DictReader(io.StringIO(first.lstrip("\ufeff"))))
    assert len(rows) == 3
    road = next(row for row in rows if row["type"] == "jalan")
    assert road["wkt"].startswith("LINESTRING") and road["attr.lebar_m"] == "4.5" and road["condition"] == "Sedang"
    assert road["id.simbada"] == "R-001" and road["agency"] == "Dinas PUPR"

    # Every row with an external id updates its asset; the one without is a new asset (it has no key).
    result = run_import(session, settings, write(tmp_path, first.encode(), "export.csv"))
    session.commit()
    assert (result.inserted, result.updated, result.inspections, result.bad_rows) == (1, 2, 0, 0), result.errors
    assert export_text(session, type_codes=["jalan", "pju"]) == before


def test_a_geojson_export_is_a_feature_collection_that_imports_again(seeded, session, settings, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv(), "first.csv"))
    session.commit()
    export = transfer.Export(session, filters=service.AssetFilters(type_codes=["jalan", "pju"]))
    document = json.loads("".join(export.iter_geojson()))
    assert document["type"] == "FeatureCollection" and "crs" not in document
    assert {f["geometry"]["type"] for f in document["features"]} == {"Point", "LineString"}
    light = next(f for f in document["features"] if f["properties"]["type"] == "pju")
    assert light["properties"]["external_ids"] == {"simbada": "P-001"}
    assert light["properties"]["condition"] == "berfungsi"
    assert not {"inspector", "user_id"} & set(light["properties"])
    result = run_import(session, settings, write(tmp_path, json.dumps(document), "export.geojson"))
    assert (result.inserted, result.updated, result.bad_rows) == (0, 2, 0), result.errors


def test_an_xlsx_export_opens_in_a_spreadsheet(seeded, session, settings, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv(), "first.csv"))
    session.commit()
    export = transfer.Export(session, filters=service.AssetFilters(conditions=["berfungsi", "unknown"]))
    path = tmp_path / "aset.xlsx"
    assert export.write_xlsx(path) == 2
    sheet = openpyxl.load_workbook(path, read_only=True).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == export.columns
    by_name = {row[1]: dict(zip(rows[0], row, strict=False)) for row in rows[1:]}
    assert set(by_name) == {"PJU Simpang Tiga", "Jembatan Beliti"}
    assert by_name["PJU Simpang Tiga"]["lat"] == pytest.approx(INSIDE[0])
    assert by_name["PJU Simpang Tiga"]["id.simbada"] == "P-001"


# --- HTTP --------------------------------------------------------------------------------------------------------


def upload(client, text: str | bytes, *, name: str = "aset.csv", headers=None, **data):
    body = text.encode() if isinstance(text, str) else text
    return client.post(
        "/api/v1/assets/import", files={"file": (name, body, "text/csv")}, data=data, headers=headers or {}
    )


def test_the_api_imports_a_file_for_a_token_with_the_import_permission(seeded, session, client, make_user):
    token = new_api_token(session, make_user("kominfo", "admin"))
    response = upload(client, good_csv(), headers=bearer(token), dry_run="true")
    assert response.status_code == 200, response.text
    assert response.json()["errors"] == []
    assert (response.json()["inserted"], response.json()["stored"]) == (3, False)
    assert row_count(session, Asset) == 0

    response = upload(client, good_csv(), headers=bearer(token))
    assert response.status_code == 200, response.text
    assert (response.json()["inserted"], response.json()["stored"]) == (3, True)
    assert row_count(session, Asset) == 3


def test_the_api_answers_422_listing_every_bad_row(seeded, session, client, make_user):
    token = new_api_token(session, make_user("kominfo", "admin"))
    lat, lon = INSIDE
    text = (
        f"{HEADER}\npju,PJU A,,{lat},{lon},,,,,,,\nkapal,Kapal,,{lat},{lon},,,,,,,\n"
        "pju,PJU Jakarta,,-6.2,106.8,,,,,,,\n"
    )
    body = assert_problem(upload(client, text, headers=bearer(token)), 422)
    assert {(item["line"], item["field"], item["reason"]) for item in body["errors"]} == {
        (3, "type", "unknown"),
        (4, "geometry", "outside"),
    }
    assert row_count(session, Asset) == 0
    body = assert_problem(upload(client, "a;b;c\n1;2;3\n", headers=bearer(token)), 422)
    assert body["errors"][0]["reason"] == "delimiter"


def test_the_api_refuses_staff_without_the_import_permission(seeded, session, client, make_user):
    staff = make_user("pupr.staf", "opd_staff", agency_id(session, "Dinas PUPR"))
    assert_problem(upload(client, good_csv(), headers=bearer(new_api_token(session, staff))), 403)
    assert_problem(upload(client, good_csv()), 401)
    assert row_count(session, Asset) == 0


def test_exports_are_public_and_filtered(seeded, session, settings, client, tmp_path):
    run_import(session, settings, write(tmp_path, good_csv()))
    session.commit()
    response = client.get("/api/v1/assets/export.csv", params={"type": "pju"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["name"] for row in rows] == ["PJU Simpang Tiga"]
    response = client.get("/api/v1/assets/export.geojson", params={"condition": "unknown"})
    assert response.headers["content-type"].startswith("application/geo+json")
    assert [f["properties"]["name"] for f in response.json()["features"]] == ["Jembatan Beliti"]
    response = client.get("/api/v1/assets/export.xlsx")
    assert response.status_code == 200 and response.content[:2] == b"PK"
    assert_problem(client.get("/api/v1/assets/export.csv", params={"archived": "true"}), 401)


def test_the_console_page_checks_a_file_and_shows_its_bad_rows(seeded, session, client, make_user):
    make_user("kominfo", "admin")
    assert post_login(client, "kominfo").status_code == 303
    page = client.get("/konsol/aset/impor")
    assert page.status_code == 200 and 'name="file"' in page.text
    lat, lon = INSIDE
    text = f"{HEADER}\npju,PJU A,,{lat},{lon},,,,,,,\nkapal,Kapal,,{lat},{lon},,,,,,,\n"
    response = client.post(
        "/konsol/aset/impor",
        data={"csrf_token": csrf_from(client, "/konsol/aset/impor"), "dry_run": "on"},
        files={"file": ("aset.csv", text.encode(), "text/csv")},
    )
    assert response.status_code == 422
    assert 'id="import-errors"' in response.text and '<td class="num">3</td>' in response.text
    response = client.post(
        "/konsol/aset/impor",
        data={"csrf_token": csrf_from(client, "/konsol/aset/impor")},
        files={"file": ("aset.csv", f"{HEADER}\npju,PJU A,,{lat},{lon},,,,,,,\n".encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert row_count(session, Asset) == 1


def test_rows_checked_in_worker_processes_give_the_same_answer(seeded, session, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "CHUNK_ROWS", 200)  # three chunks, two of them in flight at once
    lat, lon = INSIDE
    lines = [HEADER]
    for i in range(2 * transfer.CHUNK_ROWS + 50):
        kind = "kapal" if i == transfer.CHUNK_ROWS + 7 else "pju"
        lines.append(f"{kind},PJU {i},,{lat + i * 1e-6:.6f},{lon},,Berfungsi,,,,,W-{i}")
    lines.append(f'jalan,Jalan,,,,"{ROAD}",Baik,,kabupaten,aspal,6,W-jalan')
    path = write(tmp_path, "\n".join(lines))

    refused = run_import(session, settings, path, workers=2)
    assert (refused.stored, refused.bad_rows) == (False, 1)
    assert reasons(refused) == {(transfer.CHUNK_ROWS + 9, "type", "unknown")}
    session.rollback()

    path = write(tmp_path, "\n".join(line.replace("kapal,", "pju,") for line in lines))
    result = run_import(session, settings, path, workers=2)
    session.commit()
    total = 2 * transfer.CHUNK_ROWS + 51
    assert (result.stored, result.inserted, result.inspections) == (True, total, total)
    road = stored(session, sa.select(Asset).where(Asset.name == "Jalan"))
    assert road.attributes == {"status_jalan": "kabupaten", "permukaan": "aspal", "lebar_m": 6}
    assert road.condition == "baik" and road.kecamatan_code is not None
    assert row_count(session, AssetExternalId) == total
