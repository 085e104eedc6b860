"""Console pages of the assets registry, used as a browser would (logged in, with the page's CSRF token): the list,
the asset form with attributes from the type's schema, inspections with photos, proposals, types, the menu, and the
asset panel of a report's staff page."""

from __future__ import annotations

import re

import sqlalchemy as sa

from conftest import csrf_from, post_login, row_count, stored
from kotacerdas.assets.models import Asset, AssetConditionProposal, AssetInspection, AssetPhoto, AssetType
from kotacerdas.reports.models import Report

from .helpers import INSIDE, OUTSIDE, jpeg, line


def log_in_as(client, staff, name: str):
    user = staff(name)
    client.cookies.clear()
    client.cookies.set("kc_lang", "en")
    response = post_login(client, user.username)
    assert response.status_code == 303, response.text
    return user


def post_form(client, page: str, action: str, data: dict, files=None):
    """Send a form of `page` with the page's CSRF token; the response, not followed."""
    token = csrf_from(client, page)
    return client.post(action, data={"csrf_token": token, **data}, files=files, follow_redirects=False)


def test_the_menu_follows_permissions(client, staff):
    log_in_as(client, staff, "pupr_staff")
    menu = client.get("/konsol").text
    assert 'href="/konsol/aset"' in menu and 'href="/konsol/jenis-aset"' not in menu
    assert 'href="/konsol/aset/impor"' not in client.get("/konsol/aset").text

    log_in_as(client, staff, "admin")
    menu = client.get("/konsol").text
    assert 'href="/konsol/aset"' in menu and 'href="/konsol/jenis-aset"' in menu
    # The import page is reached from the registry's list, for those who may import.
    listing = client.get("/konsol/aset")
    assert listing.status_code == 200 and 'href="/konsol/aset/impor"' in listing.text

    log_in_as(client, staff, "pimpinan")
    assert 'href="/konsol/aset"' not in client.get("/konsol").text
    assert client.get("/konsol/aset").status_code == 403


def test_the_list_filters_assets(client, staff, make_asset):
    make_asset(condition="rusak_berat")
    make_asset(
        type="jalan", name="Ruas Terawas", geometry=line(), attributes={"status_jalan": "desa", "permukaan": "tanah"}
    )
    log_in_as(client, staff, "pupr_staff")

    everything = client.get("/konsol/aset")
    roads = client.get("/konsol/aset", params={"type": "jalan"})
    broken = client.get("/konsol/aset", params={"condition": "rusak_berat"})

    assert "Jembatan Sungai Kelingi" in everything.text and "Ruas Terawas" in everything.text
    assert "Ruas Terawas" in roads.text and "Jembatan Sungai Kelingi" not in roads.text
    assert "Jembatan Sungai Kelingi" in broken.text and "Ruas Terawas" not in broken.text


def test_the_new_asset_form_shows_the_types_attributes_and_stores_the_asset(client, session, staff, seeded):
    log_in_as(client, staff, "pupr_staff")
    page = client.get("/konsol/aset/baru", params={"jenis": "jalan"})
    assert page.status_code == 200
    # The road's schema: status and surface are choices, width a number.
    assert 'name="attributes.status_jalan"' in page.text and '<option value="kerikil/agregat"' in page.text
    assert 'name="attributes.lebar_m"' in page.text

    response = post_form(
        client,
        "/konsol/aset/baru?jenis=jalan",
        "/konsol/aset/baru",
        {
            "type": "jalan", "name": "Ruas Muara Beliti Baru", "agency": "",
            "geometry": '{"type": "LineString", "coordinates": [[102.93, -3.06], [102.936, -3.056]]}',
            "attributes.status_jalan": "kabupaten", "attributes.permukaan": "aspal", "attributes.lebar_m": "4,5",
            "attributes.kode_ruas": "", "external_ids": "kode_ruas: 045", "condition": "sedang",
            "condition_on": "2026-01-20",
        },
    )  # fmt: skip

    assert response.status_code == 303, response.text
    asset = stored(session, sa.select(Asset).where(Asset.name == "Ruas Muara Beliti Baru"))
    assert asset.attributes == {"status_jalan": "kabupaten", "permukaan": "aspal", "lebar_m": 4.5}
    assert asset.condition == "sedang" and asset.length_km > 0.7
    assert response.headers["location"] == f"/konsol/aset/{asset.id}?done=created"


def test_a_point_asset_from_latitude_and_longitude(client, session, staff, seeded):
    log_in_as(client, staff, "admin")

    response = post_form(
        client, "/konsol/aset/baru?jenis=sekolah", "/konsol/aset/baru",
        {"type": "sekolah", "name": "SD Negeri 1 Muara Beliti", "agency": "", "lat": str(INSIDE[0]),
         "lon": str(INSIDE[1]), "geometry": "", "attributes.jenjang": "SD", "attributes.rawat_inap": ""},
    )  # fmt: skip

    assert response.status_code == 303, response.text
    asset = stored(session, sa.select(Asset).where(Asset.name == "SD Negeri 1 Muara Beliti"))
    assert (asset.lat, asset.lon) == INSIDE


def test_a_refused_form_comes_back_with_the_values_and_stores_nothing(client, session, staff, seeded):
    log_in_as(client, staff, "pupr_staff")

    response = post_form(
        client, "/konsol/aset/baru?jenis=jembatan", "/konsol/aset/baru",
        {"type": "jembatan", "name": "Jembatan Luar", "agency": "", "lat": str(OUTSIDE[0]), "lon": str(OUTSIDE[1]),
         "attributes.panjang_m": "12"},
    )  # fmt: skip

    assert response.status_code == 422
    assert "outside" in response.text and 'value="Jembatan Luar"' in response.text
    assert row_count(session, Asset) == 0


def test_another_opds_asset_is_shown_without_forms(client, staff, make_asset):
    asset = make_asset()
    log_in_as(client, staff, "dlh_staff")

    page = client.get(f"/konsol/aset/{asset.id}")

    assert page.status_code == 200 and "Jembatan Sungai Kelingi" in page.text
    assert f'action="/konsol/aset/{asset.id}/inspeksi"' not in page.text
    token = csrf_from(client, f"/konsol/aset/{asset.id}")
    refused = client.post(
        f"/konsol/aset/{asset.id}", data={"csrf_token": token, "name": "Diubah"}, follow_redirects=False
    )
    assert refused.status_code == 403


def test_an_inspection_from_the_form_with_a_photo(client, session, staff, make_asset):
    asset = make_asset()
    log_in_as(client, staff, "pupr_staff")

    response = post_form(
        client, f"/konsol/aset/{asset.id}", f"/konsol/aset/{asset.id}/inspeksi",
        {"inspected_on": "2026-02-03", "condition": "rusak_ringan", "inspector": "", "notes": "Sandaran retak."},
        files={"photos": ("jembatan.jpg", jpeg(), "image/jpeg")},
    )  # fmt: skip

    assert response.status_code == 303, response.text
    assert stored(session, sa.select(Asset.condition).where(Asset.id == asset.id)) == "rusak_ringan"
    assert row_count(session, AssetPhoto) == 1
    page = client.get(f"/konsol/aset/{asset.id}?done=inspected")
    assert "The inspection is recorded." in page.text and "Sandaran retak." in page.text


def test_a_refused_inspection_says_why(client, session, staff, make_asset):
    asset = make_asset()
    log_in_as(client, staff, "pupr_staff")

    response = post_form(
        client, f"/konsol/aset/{asset.id}", f"/konsol/aset/{asset.id}/inspeksi",
        {"inspected_on": "2999-01-01", "condition": "baik"},
    )  # fmt: skip

    assert response.status_code == 422
    assert "The inspection date is in the future." in response.text
    assert row_count(session, AssetInspection) == 0


def test_archive_and_restore(client, session, staff, make_asset):
    asset = make_asset()
    log_in_as(client, staff, "pupr_admin")

    archived = post_form(client, f"/konsol/aset/{asset.id}", f"/konsol/aset/{asset.id}/arsip", {"active": "0"})
    assert archived.status_code == 303
    assert stored(session, sa.select(Asset.active).where(Asset.id == asset.id)) is False
    restored = post_form(client, f"/konsol/aset/{asset.id}", f"/konsol/aset/{asset.id}/arsip", {"active": "1"})
    assert restored.status_code == 303
    assert stored(session, sa.select(Asset.active).where(Asset.id == asset.id)) is True


def test_the_report_page_links_the_asset_and_proposes_a_condition_the_owner_accepts(
    client, session, staff, make_asset, make_report, resolve
):
    asset = make_asset(condition="rusak_berat")
    report = make_report()
    log_in_as(client, staff, "admin")
    page = client.get(f"/konsol/aduan/{report.id}")
    offered = re.search(r'<select id="asset-asset_id".*?</select>', page.text, re.S).group(0)
    assert f'<option value="{asset.id}">Jembatan Sungai Kelingi (0 m)</option>' in offered  # it is near the report

    linked = post_form(client, f"/konsol/aduan/{report.id}", f"/konsol/aduan/{report.id}/aset", {"asset_id": asset.id})
    assert linked.status_code == 303, linked.text
    assert stored(session, sa.select(Report.asset_id).where(Report.id == report.id)) == asset.id

    resolve(session.get(Report, report.id))
    log_in_as(client, staff, "pupr_staff")
    proposed = post_form(
        client, f"/konsol/aduan/{report.id}", f"/konsol/aduan/{report.id}/usulan-kondisi",
        {"condition": "baik", "note": "Sudah diperbaiki."},
    )  # fmt: skip
    assert proposed.status_code == 303, proposed.text
    proposal_id = stored(session, sa.select(AssetConditionProposal.id))

    log_in_as(client, staff, "pupr_admin")
    assert "Condition updates waiting for a decision" in client.get("/konsol/aset").text
    accepted = post_form(
        client, f"/konsol/aset/{asset.id}", f"/konsol/usulan-aset/{proposal_id}", {"decision": "accept"}
    )
    assert accepted.status_code == 303, accepted.text
    assert stored(session, sa.select(Asset.condition).where(Asset.id == asset.id)) == "baik"


def test_admins_edit_asset_types_and_a_broken_schema_is_shown_back(client, session, staff, seeded):
    kind_id = stored(session, sa.select(AssetType.id).where(AssetType.code == "cctv"))
    log_in_as(client, staff, "admin")
    assert "CCTV" in client.get("/konsol/jenis-aset").text

    broken = post_form(
        client, f"/konsol/jenis-aset/{kind_id}", f"/konsol/jenis-aset/{kind_id}",
        {"name_id": "Kamera CCTV", "name_en": "CCTV", "agency_id": "", "position": "3",
         "attribute_schema": '{"type": "object", "properties": {"arah": {"type": "arah"}}}', "active": "on"},
    )  # fmt: skip
    assert broken.status_code == 422 and "not a valid JSON Schema" in broken.text

    saved = post_form(
        client, f"/konsol/jenis-aset/{kind_id}", f"/konsol/jenis-aset/{kind_id}",
        {"name_id": "Kamera pengawas", "name_en": "", "agency_id": "", "position": "3",
         "attribute_schema": '{"type": "object", "properties": {}}', "active": "on"},
    )  # fmt: skip
    assert saved.status_code == 303, saved.text
    kind = stored(session, sa.select(AssetType).where(AssetType.id == kind_id))
    assert (kind.name_id, kind.name_en, kind.agency_id) == ("Kamera pengawas", "Kamera pengawas", None)

    log_in_as(client, staff, "pupr_admin")
    assert client.get("/konsol/jenis-aset").status_code == 403
