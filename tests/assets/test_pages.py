"""Public asset pages: what an asset's page shows (and never shows), its photos, and the report form opened from it
with the asset and its place filled in."""

from __future__ import annotations

import re

import sqlalchemy as sa

from conftest import TEST_ACTOR, csrf_from, row_count, stored
from kotacerdas.assets import service
from kotacerdas.reports.models import Report

from .helpers import INSIDE, REPORTER, act, jpeg


def test_the_asset_page_shows_condition_place_owner_history_and_the_report_button(
    client, session, settings, staff, make_asset
):
    asset = make_asset(condition="rusak_berat", external_ids={"simbada": "1.3.2.05"})
    service.record_inspection(
        session, settings=settings, asset_id=asset.id, inspected_on=service.local_today(settings),
        inspector="Budi Inspektur", condition="rusak_ringan", notes="Catatan internal staf.", photos=[jpeg()],
        **act(staff("pupr_staff")),
    )  # fmt: skip
    session.commit()
    client.cookies.set("kc_lang", "en")

    page = client.get(f"/aset/{asset.id}")

    assert page.status_code == 200
    html = page.text
    assert "Jembatan Sungai Kelingi" in html and "Lightly damaged" in html
    assert "Dinas Pekerjaan Umum dan Penataan Ruang" in html
    assert "Panjang (m)" in html and "1.3.2.05" in html
    assert "Heavily damaged" in html  # the first condition, in the history
    # Staff data stays in the console: the public sees the OPD, not the inspector or their notes.
    assert "Budi Inspektur" not in html and "Catatan internal staf." not in html
    assert f'href="/lapor?aset={asset.id}&amp;lat={INSIDE[0]:.6f}&amp;lon={INSIDE[1]:.6f}"' in html
    [thumb] = re.findall(r'src="(/media/aset/\d+/thumb\.jpg)"', html)
    assert client.get(thumb).status_code == 200


def test_the_asset_page_lists_open_reports_without_personal_data(client, session, settings, make_asset, make_report):
    asset = make_asset()
    named = make_report(asset_id=asset.id, description="Papan lantai jembatan lepas dua buah.")
    anonymous = make_report(asset_id=asset.id, anonymous=True, description="Tulisan pelapor anonim yang tersembunyi.")
    confidential = make_report(asset_id=asset.id, confidential=True, description="Isi laporan rahasia sekali ini.")
    elsewhere = make_report(description="Laporan lain yang tidak tentang aset ini.")

    html = client.get(f"/aset/{asset.id}").text

    assert named.tracking_code in html and "Papan lantai jembatan lepas" in html
    assert anonymous.tracking_code in html and "Tulisan pelapor anonim" not in html
    assert confidential.tracking_code not in html and "Isi laporan rahasia" not in html
    assert elsewhere.tracking_code not in html
    for personal in REPORTER.values():
        assert personal not in html


def test_an_archived_asset_has_no_public_page_nor_photos(client, session, settings, staff, make_asset):
    asset = make_asset()
    service.record_inspection(
        session, settings=settings, asset_id=asset.id, inspected_on=service.local_today(settings), inspector=None,
        condition="baik", notes=None, photos=[jpeg()], **act(staff("pupr_staff")),
    )  # fmt: skip
    service.archive_asset(session, settings=settings, asset_id=asset.id, actor=TEST_ACTOR, by=None)
    session.commit()
    photo_id = service.list_photos(session, asset_id=asset.id)[0].id

    assert client.get(f"/aset/{asset.id}").status_code == 404
    assert client.get(f"/media/aset/{photo_id}.jpg").status_code == 404
    assert client.get("/aset/999999").status_code == 404


def test_the_report_form_opened_from_an_asset_has_it_and_its_place_filled_in(client, make_asset):
    asset = make_asset()

    page = client.get("/lapor", params={"aset": asset.id, "lat": "-3.0601", "lon": "102.9302"}).text
    from_asset_only = client.get("/lapor", params={"aset": asset.id}).text
    unknown = client.get("/lapor", params={"aset": "999999"}).text

    assert re.search(rf'name="asset_id" value="{asset.id}"\s+checked', page)
    assert "Jembatan Sungai Kelingi" in page
    assert 'value="-3.0601"' in page and 'value="102.9302"' in page
    assert f'value="{INSIDE[0]:.6f}"' in from_asset_only
    assert 'name="asset_id" value="999999"' not in unknown


def test_a_report_sent_from_the_form_names_the_asset(client, session, make_asset):
    asset = make_asset()
    form = {
        "category": "drainase-tersumbat", "type": "pengaduan", "lat": str(INSIDE[0]), "lon": str(INSIDE[1]),
        "description": "Gorong-gorong di ujung jembatan tersumbat lumpur.", "asset_id": str(asset.id),
    }  # fmt: skip

    sent = client.post("/lapor", data={**form, "csrf_token": csrf_from(client, "/lapor")})
    refused = client.post("/lapor", data={**form, "asset_id": "abc", "csrf_token": csrf_from(client, "/lapor")})

    assert sent.status_code == 201, sent.text
    assert stored(session, sa.select(Report.asset_id)) == asset.id
    assert refused.status_code == 422
    assert row_count(session, Report) == 1
