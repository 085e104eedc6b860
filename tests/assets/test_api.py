"""The assets JSON API: public reads, staff writes with per-OPD rights, GeoJSON in and out, inspections with photos,
proposals, report links, and bad input answered with 4xx problem+json and nothing stored."""

from __future__ import annotations

import base64
from datetime import date

import pytest
import sqlalchemy as sa

from conftest import assert_problem, bearer, new_api_token, row_count
from kotacerdas.assets.models import Asset, AssetInspection, AssetPhoto, AssetType
from kotacerdas.reports.models import Report

from .helpers import INSIDE, OUTSIDE, agency_id, jpeg, line, point


@pytest.fixture
def token_of(session, staff):
    """Bearer headers of a staff user by name."""
    made: dict[str, dict[str, str]] = {}

    def get(name: str) -> dict[str, str]:
        if name not in made:
            made[name] = bearer(new_api_token(session, staff(name)))
        return made[name]

    return get


def bridge(**overrides) -> dict:
    return {"type": "jembatan", "name": "Jembatan Sungai Kelingi", "geometry": point(), **overrides}


# --- reading ------------------------------------------------------------------------------------------------------


def test_anyone_lists_active_assets_with_geojson_geometry_and_filters(client, session, make_asset):
    road = make_asset(
        type="jalan", name="Ruas Lubuk Rumbai", geometry=line(), condition="sedang",
        attributes={"status_jalan": "kabupaten", "permukaan": "aspal"}, external_ids={"kode_ruas": "R-012"},
    )  # fmt: skip
    bridge_asset = make_asset()
    far = make_asset(name="Jembatan Jauh", geometry=point(INSIDE[0] - 0.3, INSIDE[1] - 0.3))

    everything = client.get("/api/v1/assets").json()
    roads = client.get("/api/v1/assets", params={"type": "jalan"}).json()
    uninspected = client.get("/api/v1/assets", params={"condition": "unknown"}).json()
    by_number = client.get("/api/v1/assets", params={"q": "R-012"}).json()
    box = f"{INSIDE[1] - 0.01},{INSIDE[0] - 0.01},{INSIDE[1] + 0.01},{INSIDE[0] + 0.01}"
    in_view = client.get("/api/v1/assets", params={"bbox": box}).json()

    assert everything["total"] == 3
    [road_read] = roads["items"]
    assert road_read["geometry"]["type"] == "LineString"
    assert road_read["condition"] == {"value": "sedang", "label": "Sedang", "colour": "#9e9d24"}
    assert road_read["external_ids"] == {"kode_ruas": "R-012"} and road_read["length_km"] > 0.5
    assert {item["id"] for item in uninspected["items"]} == {bridge_asset.id, far.id}
    assert [item["id"] for item in by_number["items"]] == [road.id]
    assert {item["id"] for item in in_view["items"]} == {road.id, bridge_asset.id}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "103,-3,102,-2"}, "bbox"),
        ({"condition": "RUSAK BERAT"}, "condition"),
        ({"per_page": "0"}, "per_page"),
    ],
)
def test_a_bad_filter_is_a_problem(client, seeded, params, field):
    body = assert_problem(client.get("/api/v1/assets", params=params), 422)
    assert body["errors"][0]["field"] == field


def test_archived_assets_are_hidden_from_the_public_but_not_from_their_owner(client, session, make_asset, token_of):
    asset = make_asset()
    client.post(f"/api/v1/assets/{asset.id}/archive", headers=token_of("pupr_staff"))

    assert_problem(client.get(f"/api/v1/assets/{asset.id}"), 404)
    assert_problem(client.get(f"/api/v1/assets/{asset.id}/public"), 404)
    assert client.get("/api/v1/assets").json()["total"] == 0
    assert client.get(f"/api/v1/assets/{asset.id}", headers=token_of("pupr_staff")).json()["active"] is False
    assert_problem(client.get(f"/api/v1/assets/{asset.id}", headers=token_of("dlh_staff")), 404)
    assert_problem(client.get("/api/v1/assets", params={"archived": "true"}), 401)
    archived = client.get("/api/v1/assets", params={"archived": "true"}, headers=token_of("pupr_staff")).json()
    assert [item["id"] for item in archived["items"]] == [asset.id]


def test_nearby_assets_for_the_report_form(client, make_asset):
    here = make_asset()
    make_asset(name="Jauh", geometry=point(INSIDE[0] + 0.01, INSIDE[1]))

    found = client.get("/api/v1/assets/nearby", params={"lat": INSIDE[0], "lon": INSIDE[1]}).json()

    assert [(item["id"], item["distance_m"], item["url"]) for item in found] == [(here.id, 0.0, f"/aset/{here.id}")]
    assert found[0]["type_name"] == "Jembatan"
    assert_problem(client.get("/api/v1/assets/nearby", params={"lat": 95, "lon": INSIDE[1]}), 422)


# --- writing ------------------------------------------------------------------------------------------------------


def test_opd_staff_create_an_asset_with_a_first_condition(client, session, token_of, seeded):
    response = client.post(
        "/api/v1/assets",
        json=bridge(attributes={"panjang_m": 40}, external_ids={"simbada": "1.3.2"}, condition="baik",
                    condition_on="2026-02-01"),
        headers=token_of("pupr_staff"),
    )  # fmt: skip

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["geometry"] == point()
    assert body["agency_id"] == agency_id(session, "Dinas PUPR")
    assert body["condition"]["value"] == "baik" and body["condition_on"] == "2026-02-01"
    assert body["kecamatan_code"].startswith("16.05")
    assert row_count(session, AssetInspection) == 1


BAD_BODIES = [
    pytest.param(bridge(geometry={"type": "Point"}), "geometry", id="invalid-geometry"),
    pytest.param(bridge(geometry={}), "geometry", id="empty-geometry"),
    pytest.param(bridge(geometry="POINT EMPTY"), "geometry", id="empty-wkt"),
    pytest.param(bridge(geometry=point(*OUTSIDE)), "geometry", id="outside-kabupaten"),
    pytest.param(
        bridge(type="jalan", geometry=line(INSIDE), attributes={"status_jalan": "desa", "permukaan": "tanah"}),
        "geometry",
        id="line-with-one-point",
    ),  # fmt: skip
    pytest.param(bridge(attributes={"panjang_m": "panjang"}), "attributes.panjang_m", id="attribute-wrong-type"),
    pytest.param(bridge(type="kapal"), "type", id="unknown-type"),
    pytest.param(bridge(type="\u00b21"), "type", id="superscript-digit-type"),
    pytest.param(bridge(agency_id=999_999), "agency_id", id="unknown-opd"),
    pytest.param(bridge(name=""), "name", id="empty-name"),
    pytest.param(bridge(colour="red"), "colour", id="unknown-field"),
    pytest.param(bridge(condition="baik", condition_on="2999-01-01"), "condition_on", id="future-condition"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_input_is_422_with_field_errors_and_nothing_stored(client, session, token_of, seeded, body, field):
    response = client.post("/api/v1/assets", json=body, headers=token_of("admin"))

    problem = assert_problem(response, 422)
    assert field in [error["field"] for error in problem["errors"]], problem
    assert row_count(session, Asset) == 0


def test_the_problem_speaks_the_users_language(client, token_of, seeded):
    body = bridge(agency_id=999_999)
    indonesian = client.post("/api/v1/assets", json=body, headers=token_of("admin")).json()
    english = client.post("/api/v1/assets", json=body, headers={**token_of("admin"), "Accept-Language": "en"}).json()

    assert (english["detail"], indonesian["detail"]) == ("Unknown OPD.", "OPD tidak dikenal.")


@pytest.mark.parametrize(
    ("name", "status"), [("pupr_staff", 200), ("admin", 200), ("dlh_staff", 403), ("pimpinan", 403)]
)
def test_an_opd_changes_only_its_own_assets(client, session, make_asset, token_of, name, status):
    asset = make_asset()

    response = client.patch(f"/api/v1/assets/{asset.id}", json={"name": "Jembatan Baru"}, headers=token_of(name))

    assert response.status_code == status, response.text
    expected = "Jembatan Baru" if status == 200 else "Jembatan Sungai Kelingi"
    assert row_count(session, Asset, Asset.name == expected) == 1


def test_an_update_that_fails_stores_nothing(client, session, make_asset, token_of):
    asset = make_asset()

    problem = assert_problem(
        client.patch(
            f"/api/v1/assets/{asset.id}",
            json={"name": "Nama baru", "geometry": point(*OUTSIDE)},
            headers=token_of("pupr_staff"),
        ),
        422,
    )
    assert problem["errors"][0]["reason"] == "outside"
    assert_problem(client.patch(f"/api/v1/assets/{asset.id}", json={"name": None}, headers=token_of("pupr_staff")), 422)
    assert row_count(session, Asset, Asset.name == "Jembatan Sungai Kelingi") == 1


def test_writes_need_a_login(client, make_asset):
    asset = make_asset()

    assert_problem(client.post("/api/v1/assets", json=bridge()), 401)
    assert_problem(client.patch(f"/api/v1/assets/{asset.id}", json={"name": "x"}), 401)
    assert_problem(client.get(f"/api/v1/assets/{asset.id}/inspections"), 401)


# --- inspections ------------------------------------------------------------------------------------------------


def test_an_inspection_with_a_photo_becomes_the_condition(client, session, make_asset, token_of):
    asset = make_asset(condition="baik", condition_on=date(2025, 5, 1))
    photo = base64.b64encode(jpeg()).decode()

    response = client.post(
        f"/api/v1/assets/{asset.id}/inspections",
        json={"inspected_on": "2026-01-15", "condition": "rusak_berat", "notes": "Lantai jebol.", "photos": [photo]},
        headers=token_of("pupr_staff"),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["inspector"] == "Pupr.Staff" and len(body["photos"]) == 1
    assert client.get(f"/api/v1/assets/{asset.id}").json()["condition"]["value"] == "rusak_berat"
    history = client.get(f"/api/v1/assets/{asset.id}/inspections", headers=token_of("pupr_staff")).json()
    assert [item["condition"]["value"] for item in history] == ["rusak_berat", "baik"]
    thumbnail = client.get(body["photos"][0]["thumb_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"


def test_a_bad_inspection_stores_no_photo(client, session, make_asset, token_of):
    asset = make_asset()
    photo = base64.b64encode(jpeg()).decode()

    response = client.post(
        f"/api/v1/assets/{asset.id}/inspections",
        json={"inspected_on": "2026-01-15", "condition": "berfungsi", "photos": [photo]},
        headers=token_of("pupr_staff"),
    )

    assert assert_problem(response, 422)["errors"][0]["field"] == "condition"
    assert row_count(session, AssetPhoto) == 0
    assert row_count(session, AssetInspection) == 0


# --- proposals and report links ----------------------------------------------------------------------------------


def test_propose_and_accept_a_condition_over_the_api(client, session, make_asset, make_report, resolve, token_of):
    asset = make_asset(condition="rusak_berat")
    report = resolve(make_report(asset_id=asset.id))

    proposed = client.post(
        f"/api/v1/inbox/{report.id}/asset-proposal", json={"condition": "baik"}, headers=token_of("pupr_staff")
    )
    assert proposed.status_code == 201, proposed.text
    proposal = proposed.json()
    assert proposal["status"] == "pending" and proposal["tracking_code"] == report.tracking_code

    assert_problem(
        client.post(
            f"/api/v1/asset-proposals/{proposal['id']}/decision", json={"accept": True}, headers=token_of("dlh_staff")
        ),
        403,
    )
    decided = client.post(
        f"/api/v1/asset-proposals/{proposal['id']}/decision", json={"accept": True}, headers=token_of("pupr_admin")
    ).json()

    assert decided["status"] == "accepted" and decided["inspection_id"]
    assert client.get(f"/api/v1/assets/{asset.id}").json()["condition"]["value"] == "baik"
    listed = client.get(f"/api/v1/assets/{asset.id}/proposals", headers=token_of("pupr_staff")).json()
    assert [item["status"] for item in listed] == ["accepted"]


def test_staff_link_a_report_to_an_asset(client, session, make_asset, make_report, token_of):
    asset = make_asset()
    report = make_report()

    linked = client.put(f"/api/v1/inbox/{report.id}/asset", json={"asset_id": asset.id}, headers=token_of("admin"))

    assert linked.json() == {"report_id": report.id, "tracking_code": report.tracking_code, "asset_id": asset.id}
    assert client.get(f"/api/v1/inbox/{report.id}", headers=token_of("admin")).json()["asset_id"] == asset.id
    assert_problem(
        client.put(f"/api/v1/inbox/{report.id}/asset", json={"asset_id": 999_999}, headers=token_of("admin")), 422
    )
    assert_problem(
        client.put(f"/api/v1/inbox/{report.id}/asset", json={"asset_id": None}, headers=token_of("dlh_staff")), 403
    )
    assert row_count(session, Report, Report.asset_id == asset.id) == 1


def test_a_citizen_names_the_asset_in_a_report(client, session, make_asset):
    asset = make_asset()
    body = {
        "category": "drainase-tersumbat", "description": "Gorong-gorong di bawah jembatan tersumbat.", "lat": INSIDE[0],
        "lon": INSIDE[1],
    }  # fmt: skip

    accepted = client.post("/api/v1/reports", json={**body, "asset_id": asset.id})
    refused = client.post("/api/v1/reports", json={**body, "asset_id": 999_999})

    assert accepted.status_code == 201, accepted.text
    assert assert_problem(refused, 422)["errors"] == [{"field": "asset_id", "reason": "unknown"}]
    assert row_count(session, Report) == 1
    assert row_count(session, Report, Report.asset_id == asset.id) == 1


# --- asset types and the document -------------------------------------------------------------------------------


def test_asset_types_are_public_and_only_admins_change_them(client, session, token_of, seeded):
    types = client.get("/api/v1/asset-types").json()
    school = next(item for item in types if item["code"] == "sekolah")
    assert school["geometry_kind"] == "point"
    assert [c["value"] for c in school["conditions"]] == ["berfungsi", "berfungsi_sebagian", "tidak_berfungsi"]
    assert "jenjang" in school["attribute_schema"]["properties"]

    assert_problem(
        client.patch(f"/api/v1/asset-types/{school['id']}", json={"active": False}, headers=token_of("pupr_admin")),
        403,
    )
    changed = client.patch(
        f"/api/v1/asset-types/{school['id']}", json={"active": False, "name_en": "School building"},
        headers=token_of("admin"),
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert "sekolah" not in [item["code"] for item in client.get("/api/v1/asset-types").json()]
    assert_problem(
        client.patch(f"/api/v1/asset-types/{school['id']}", json={"attribute_schema": {"type": 5}},
                     headers=token_of("admin")),
        422,
    )  # fmt: skip
    assert session.scalar(sa.select(AssetType.name_en).where(AssetType.code == "sekolah")) == "School building"


def test_every_asset_operation_is_documented_with_a_tag(client):
    document = client.get("/api/openapi.json").json()

    operations = [
        operation for path, item in document["paths"].items() if "asset" in path for operation in item.values()
    ]
    assert len(operations) >= 14
    assert all(operation.get("tags") for operation in operations)
    assert all(operation.get("summary") or operation.get("description") for operation in operations)
