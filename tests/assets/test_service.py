"""The assets service: creating and changing assets, the condition history, who may edit what, bad input that leaves
nothing stored, proposals from resolved reports, links to reports, nearby assets and the public view."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

from conftest import TEST_ACTOR, row_count
from kotacerdas import storage
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.assets import service
from kotacerdas.assets.models import (
    Asset,
    AssetConditionProposal,
    AssetExternalId,
    AssetInspection,
    AssetPhoto,
    AssetType,
)
from kotacerdas.assets.validation import RawAsset
from kotacerdas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from kotacerdas.reports import service as reports
from kotacerdas.reports.models import Report

from .helpers import INSIDE, OUTSIDE, REPORTER, act, agency_id, jpeg, line, point


def inspect(session, settings, user, asset, day: date, condition: str, **extra):
    inspection = service.record_inspection(
        session, settings=settings, asset_id=asset.id, inspected_on=day, inspector=extra.pop("inspector", None),
        condition=condition, notes=extra.pop("notes", None), photos=extra.pop("photos", None), **act(user),
    )  # fmt: skip
    session.commit()
    return inspection


# --- creating ---------------------------------------------------------------------------------------------------


def test_create_locates_the_asset_keeps_external_ids_and_records_the_first_condition(session, settings, make_asset):
    asset = make_asset(
        external_ids={"SIMBADA": "1.3.2.05.01.001"}, condition="rusak_ringan", condition_on=date(2026, 3, 2)
    )

    stored = session.get(Asset, asset.id)
    assert stored.kecamatan_code is not None and stored.kecamatan_code.startswith("16.05")
    assert (stored.lat, stored.lon) == INSIDE
    assert stored.agency_id == agency_id(session, "Dinas PUPR")  # the type's default OPD
    assert (stored.condition, stored.condition_on) == ("rusak_ringan", date(2026, 3, 2))
    assert service.external_ids(session, asset_ids=[asset.id])[asset.id] == {"simbada": "1.3.2.05.01.001"}
    [first] = service.condition_history(session, asset_id=asset.id)
    assert (first.source, first.inspected_on) == ("import", date(2026, 3, 2))
    assert row_count(session, AuditEntry, AuditEntry.action == "asset.create", AuditEntry.entity_id == str(asset.id))


def test_a_road_gets_its_geodesic_length(session, settings, make_asset):
    road = make_asset(
        type="jalan", name="Ruas Muara Beliti – Tugumulyo", geometry=line(),
        attributes={"status_jalan": "kabupaten", "permukaan": "aspal"},
    )  # fmt: skip

    # 0.004° of latitude and 0.006° of longitude near 3° S: about 0.80 km.
    assert road.length_km == pytest.approx(0.80, abs=0.01)
    assert road.condition is None


def test_an_external_id_held_by_another_asset_is_refused(session, settings, make_asset):
    make_asset(external_ids={"simbada": "A-1"})

    with pytest.raises(Conflict) as refused:
        make_asset(name="Jembatan lain", external_ids={"simbada": "A-1"})

    assert refused.value.errors[0]["field"] == "external_ids.simbada"
    session.rollback()
    assert row_count(session, Asset) == 1


ROAD = {"status_jalan": "desa", "permukaan": "tanah"}

# --- bad input: every reason named, nothing stored --------------------------------------------------------------

BAD_INPUT = [
    pytest.param({"geometry": {"type": "Point", "coordinates": "here"}}, "geometry", "invalid", id="invalid-geometry"),
    pytest.param({"geometry": None}, "geometry", "empty", id="empty-geometry"),
    pytest.param({"geometry": {"type": "Point", "coordinates": []}}, "geometry", "empty", id="empty-point"),
    pytest.param({"geometry": point(*OUTSIDE)}, "geometry", "outside", id="outside-kabupaten"),
    pytest.param(
        {"geometry": {"type": "Point", "coordinates": [-3.06, 102.93]}}, "geometry", "coordinates", id="lat-lon-swapped"
    ),  # noqa: E501
    # A LineString of one position is unreadable to shapely ("invalid"); of one point repeated, "one_point".
    pytest.param(
        {"type": "jalan", "geometry": line(INSIDE), "attributes": {"status_jalan": "desa", "permukaan": "tanah"}},
        "geometry",
        None,
        id="line-with-one-point",
    ),
    pytest.param(
        {"type": "jalan", "geometry": line(INSIDE, INSIDE), "attributes": ROAD},
        "geometry",
        "one_point",
        id="line-with-one-point-twice",
    ),
    pytest.param(
        {"type": "jalan", "geometry": point(), "attributes": {"status_jalan": "desa", "permukaan": "tanah"}},
        "geometry",
        "kind",
        id="point-for-a-road",
    ),  # noqa: E501
    pytest.param({"attributes": {"panjang_m": -5}}, "attributes.panjang_m", "minimum", id="attribute-below-minimum"),
    pytest.param({"attributes": {"konstruksi": "bambu"}}, "attributes.konstruksi", "enum", id="attribute-not-a-choice"),
    pytest.param({"attributes": {"warna": "merah"}}, "attributes", "additionalProperties", id="unknown-attribute"),
    pytest.param(
        {"type": "jalan", "geometry": line(), "attributes": {}},
        "attributes.status_jalan",
        "required",
        id="required-attribute",
    ),  # noqa: E501
    pytest.param({"type": "kapal"}, "type", "unknown", id="unknown-type"),
    pytest.param({"agency": "Dinas Kelautan"}, "agency", "unknown", id="unknown-opd"),
    pytest.param({"agency": 999_999}, "agency", "unknown", id="unknown-opd-id"),
    pytest.param({"name": "  "}, "name", "required", id="empty-name"),
    pytest.param({"condition": "rusak_total"}, "condition", "unknown", id="condition-off-the-scale"),
    pytest.param({"condition": "berfungsi"}, "condition", "unknown", id="facility-condition-for-a-bridge"),
    pytest.param({"attributes": {"sungai": "Kelingi\x00"}}, "attributes", "control_character", id="nul-in-attribute"),
]


@pytest.mark.parametrize(("values", "field", "reason"), BAD_INPUT)
def test_bad_input_names_the_field_and_stores_nothing(session, settings, seeded, values, field, reason):
    raw = {"type": "jembatan", "name": "Jembatan uji", "geometry": point(), **values}

    with pytest.raises(InvalidInput) as refused:
        service.create_asset(session, settings=settings, actor=TEST_ACTOR, by=None, raw=RawAsset(**raw))

    named = [(error["field"], error["reason"]) for error in refused.value.errors]
    assert any(f == field and (reason is None or r == reason) for f, r in named), named
    assert refused.value.detail
    session.rollback()
    assert row_count(session, Asset) == 0
    assert row_count(session, AssetInspection) == 0
    assert row_count(session, AuditEntry, AuditEntry.entity_type == "asset") == 0


def test_every_wrong_field_is_reported_at_once(session, settings, seeded):
    raw = RawAsset(type="jembatan", name="", geometry=None, agency="Dinas Kelautan", attributes={"panjang_m": "x"})

    with pytest.raises(InvalidInput) as refused:
        service.create_asset(session, settings=settings, actor=TEST_ACTOR, by=None, raw=raw)

    fields = {error["field"] for error in refused.value.errors}
    assert {"name", "agency", "attributes.panjang_m", "geometry"} <= fields


# --- condition history ------------------------------------------------------------------------------------------


def test_the_latest_inspection_by_date_is_the_condition(session, settings, staff, make_asset):
    pupr = staff("pupr_staff")
    asset = make_asset()
    today = service.local_today(settings)

    inspect(session, settings, pupr, asset, today - timedelta(days=30), "baik")
    assert session.get(Asset, asset.id).condition == "baik"
    inspect(session, settings, pupr, asset, today - timedelta(days=2), "rusak_berat")
    # An older inspection entered late goes into the history, not into the current condition.
    inspect(session, settings, pupr, asset, today - timedelta(days=60), "rusak_sedang")

    stored = session.get(Asset, asset.id)
    assert (stored.condition, stored.condition_on) == ("rusak_berat", today - timedelta(days=2))
    history = service.condition_history(session, asset_id=asset.id)
    assert [item.condition for item in history] == ["rusak_berat", "baik", "rusak_sedang"]
    assert [item.inspected_on for item in history] == sorted((item.inspected_on for item in history), reverse=True)


def test_on_the_same_day_the_inspection_recorded_last_wins(session, settings, staff, make_asset):
    pupr = staff("pupr_staff")
    asset = make_asset()
    day = service.local_today(settings) - timedelta(days=1)

    inspect(session, settings, pupr, asset, day, "baik")
    inspect(session, settings, pupr, asset, day, "rusak_ringan")

    assert session.get(Asset, asset.id).condition == "rusak_ringan"


def test_an_inspection_moves_updated_at_for_the_map_index(session, settings, staff, make_asset):
    asset = make_asset()
    before = session.get(Asset, asset.id).updated_at

    inspect(session, settings, staff("pupr_staff"), asset, service.local_today(settings), "baik")

    assert session.get(Asset, asset.id).updated_at > before


@pytest.mark.parametrize(
    ("day", "condition", "field"),
    [
        (date.today() + timedelta(days=3), "baik", "inspected_on"),
        (None, "baik", "inspected_on"),
        (date(1850, 1, 1), "baik", "inspected_on"),
        (date(2026, 1, 5), None, "condition"),
        (date(2026, 1, 5), "berfungsi", "condition"),
    ],
)
def test_a_bad_inspection_is_refused_and_leaves_the_condition(
    session, settings, staff, make_asset, day, condition, field
):  # noqa: E501
    asset = make_asset(condition="baik", condition_on=date(2026, 1, 1))

    with pytest.raises(InvalidInput) as refused:
        inspect(session, settings, staff("pupr_staff"), asset, day, condition)

    assert refused.value.errors[0]["field"] == field
    session.rollback()
    assert row_count(session, AssetInspection) == 1
    assert session.get(Asset, asset.id).condition == "baik"


def test_inspection_photos_are_stored_without_metadata(session, settings, staff, make_asset):
    asset = make_asset()
    exif = Image.Exif()
    exif[0x010F] = "KameraRahasia"
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 200, 10)).save(buffer, "JPEG", exif=exif)

    inspection = inspect(
        session, settings, staff("pupr_staff"), asset, service.local_today(settings), "baik",
        photos=[buffer.getvalue(), jpeg()],
    )  # fmt: skip

    photos = session.scalars(sa.select(AssetPhoto).where(AssetPhoto.inspection_id == inspection.id)).all()
    assert len(photos) == 2
    for photo in photos:
        data = storage.open_upload(settings, photo.file_key).read_bytes()
        assert b"KameraRahasia" not in data and b"Exif" not in data


def test_an_archived_asset_is_kept_with_its_history_and_cannot_be_inspected(session, settings, staff, make_asset):
    pupr = staff("pupr_staff")
    asset = make_asset(condition="baik")

    service.archive_asset(session, settings=settings, asset_id=asset.id, **act(pupr))
    session.commit()

    assert session.get(Asset, asset.id).active is False
    assert len(service.condition_history(session, asset_id=asset.id)) == 1
    with pytest.raises(Conflict):
        inspect(session, settings, pupr, asset, service.local_today(settings), "rusak_berat")
    session.rollback()
    service.archive_asset(session, settings=settings, asset_id=asset.id, active=True, **act(pupr))
    session.commit()
    assert session.get(Asset, asset.id).active is True


# --- updates ----------------------------------------------------------------------------------------------------


def test_an_update_checks_the_whole_asset_again_and_locates_the_new_place(session, settings, staff, make_asset):
    asset = make_asset(external_ids={"simbada": "A-1"})
    moved = (INSIDE[0] + 0.2, INSIDE[1] + 0.1)

    service.update_asset(
        session, settings=settings, asset_id=asset.id, **act(staff("pupr_staff")),
        changes={"geometry": point(*moved), "attributes": {"panjang_m": 50}, "external_ids": {"simbada": "A-2"}},
    )  # fmt: skip
    session.commit()

    stored = session.get(Asset, asset.id)
    assert (stored.lat, stored.lon) == moved
    assert stored.attributes == {"panjang_m": 50}
    assert service.external_ids(session, asset_ids=[asset.id])[asset.id] == {"simbada": "A-2"}
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "asset.update"))
    assert entry.before["lat"] == INSIDE[0] and entry.after["lat"] == moved[0]


def test_an_update_cannot_set_the_condition_or_store_a_bad_value(session, settings, staff, make_asset):
    asset = make_asset()
    pupr = staff("pupr_staff")

    with pytest.raises(InvalidInput) as condition:
        service.update_asset(session, settings=settings, asset_id=asset.id, changes={"condition": "baik"}, **act(pupr))
    with pytest.raises(InvalidInput) as outside:
        service.update_asset(
            session, settings=settings, asset_id=asset.id, changes={"geometry": point(*OUTSIDE)}, **act(pupr)
        )

    assert condition.value.errors[0]["field"] == "condition"
    assert outside.value.errors[0]["reason"] == "outside"
    session.rollback()
    assert session.get(Asset, asset.id).lat == INSIDE[0]


# --- who may edit what ---------------------------------------------------------------------------------------

# A bridge of Dinas PUPR: PUPR's admin and staff and the Diskominfo admin edit it; another OPD, the command center
# and the leadership (read-only) do not.
RBAC = [
    ("admin", True),
    ("pupr_admin", True),
    ("pupr_staff", True),
    ("dlh_staff", False),
    ("operator", False),
    ("pimpinan", False),
]


@pytest.mark.parametrize(("name", "allowed"), RBAC)
def test_only_the_owner_opd_and_admins_edit_an_asset(session, settings, staff, make_asset, name, allowed):
    user = staff(name)
    asset = make_asset()
    today = service.local_today(settings)
    attempts = {
        "update": lambda: service.update_asset(
            session, settings=settings, asset_id=asset.id, changes={"name": "Jembatan baru"}, **act(user)
        ),
        "inspect": lambda: inspect(session, settings, user, asset, today, "rusak_ringan"),
        "archive": lambda: service.archive_asset(session, settings=settings, asset_id=asset.id, **act(user)),
    }

    assert service.can_edit(user, asset) is allowed
    for action, attempt in attempts.items():
        if allowed:
            attempt()
            session.rollback()
        else:
            with pytest.raises(PermissionDenied):
                attempt()
            session.rollback()
            assert session.get(Asset, asset.id).name == "Jembatan Sungai Kelingi", action
    if not allowed:
        assert row_count(session, AssetInspection) == 0


@pytest.mark.parametrize(("name", "allowed"), RBAC)
def test_a_user_creates_assets_only_for_an_opd_they_edit(session, settings, staff, seeded, name, allowed):
    user = staff(name)
    raw = RawAsset(type="jembatan", name="Jembatan baru", geometry=point(), agency="Dinas PUPR")

    if allowed:
        service.create_asset(session, settings=settings, raw=raw, **act(user))
        session.commit()
        assert row_count(session, Asset) == 1
    else:
        with pytest.raises(PermissionDenied):
            service.create_asset(session, settings=settings, raw=raw, **act(user))
        session.rollback()
        assert row_count(session, Asset) == 0


def test_an_opd_cannot_hand_its_asset_to_another_opd(session, settings, staff, make_asset):
    asset = make_asset()

    with pytest.raises(PermissionDenied):
        service.update_asset(
            session, settings=settings, asset_id=asset.id, changes={"agency": "DLH"}, **act(staff("pupr_staff"))
        )
    session.rollback()
    service.update_asset(
        session, settings=settings, asset_id=asset.id, changes={"agency": "DLH"}, **act(staff("admin"))
    )
    session.commit()
    assert session.get(Asset, asset.id).agency_id == agency_id(session, "DLH")


# --- proposals from resolved reports ------------------------------------------------------------------------------


def test_a_resolved_report_proposes_a_condition_that_the_owner_accepts(
    session, settings, staff, make_asset, make_report, resolve
):
    asset = make_asset(condition="rusak_berat", condition_on=date(2026, 1, 10))
    report = make_report(asset_id=asset.id)
    resolve(report)

    proposal = service.propose_condition(
        session, settings=settings, report_id=report.id, condition="baik", note="Sudah diperbaiki.",
        **act(staff("pupr_staff")),
    )  # fmt: skip
    session.commit()
    assert session.get(Asset, asset.id).condition == "rusak_berat"  # nothing changes until the owner decides

    service.decide_proposal(
        session, settings=settings, proposal_id=proposal.id, accept=True, **act(staff("pupr_admin"))
    )
    session.commit()

    stored = session.get(Asset, asset.id)
    assert (stored.condition, stored.condition_on) == ("baik", service.local_today(settings))
    latest = service.condition_history(session, asset_id=asset.id)[0]
    assert (latest.source, latest.report_id, latest.notes) == ("report", report.id, "Sudah diperbaiki.")
    decided = session.get(AssetConditionProposal, proposal.id)
    assert (decided.status, decided.inspection_id) == ("accepted", latest.id)
    with pytest.raises(Conflict):
        service.decide_proposal(
            session, settings=settings, proposal_id=proposal.id, accept=False, **act(staff("pupr_admin"))
        )


def test_a_rejected_proposal_changes_nothing(session, settings, staff, make_asset, make_report, resolve):
    asset = make_asset(condition="rusak_berat")
    report = make_report(asset_id=asset.id)
    resolve(report)
    proposal = service.propose_condition(
        session, settings=settings, report_id=report.id, condition="baik", note=None, **act(staff("admin"))
    )
    session.commit()

    service.decide_proposal(session, settings=settings, proposal_id=proposal.id, accept=False, **act(staff("admin")))
    session.commit()

    assert session.get(Asset, asset.id).condition == "rusak_berat"
    assert row_count(session, AssetInspection) == 1
    assert session.get(AssetConditionProposal, proposal.id).status == "rejected"


def test_proposals_need_a_resolved_linked_report_and_the_right_opds(
    session, settings, staff, make_asset, make_report, resolve
):
    asset = make_asset()
    unlinked = make_report()
    open_report = make_report(asset_id=asset.id)
    done = resolve(make_report(asset_id=asset.id))

    with pytest.raises(InvalidInput):
        service.propose_condition(
            session, settings=settings, report_id=unlinked.id, condition="baik", note=None, **act(staff("admin"))
        )
    with pytest.raises(Conflict):
        service.propose_condition(
            session, settings=settings, report_id=open_report.id, condition="baik", note=None, **act(staff("admin"))
        )
    with pytest.raises(PermissionDenied):  # the report is Dinas PUPR's, not DLH's
        service.propose_condition(
            session, settings=settings, report_id=done.id, condition="baik", note=None, **act(staff("dlh_staff"))
        )
    with pytest.raises(InvalidInput):  # not on the bridge's scale
        service.propose_condition(
            session, settings=settings, report_id=done.id, condition="berfungsi", note=None, **act(staff("pupr_staff"))
        )
    proposal = service.propose_condition(
        session, settings=settings, report_id=done.id, condition="rusak_ringan", note=None, **act(staff("pupr_staff"))
    )
    session.commit()
    with pytest.raises(Conflict):  # one waiting proposal per report
        service.propose_condition(
            session, settings=settings, report_id=done.id, condition="baik", note=None, **act(staff("pupr_staff"))
        )
    with pytest.raises(PermissionDenied):  # only the asset's owner decides
        service.decide_proposal(
            session, settings=settings, proposal_id=proposal.id, accept=True, **act(staff("dlh_staff"))
        )
    session.rollback()
    assert row_count(session, AssetConditionProposal) == 1
    assert session.get(AssetConditionProposal, proposal.id).status == "pending"


# --- reports and assets -----------------------------------------------------------------------------------------


def test_a_report_names_an_active_asset_or_is_refused(session, settings, make_asset, make_report):
    asset = make_asset()
    archived = make_asset(name="Jembatan lama")
    service.archive_asset(session, settings=settings, asset_id=archived.id, actor=TEST_ACTOR, by=None)
    session.commit()

    report = make_report(asset_id=asset.id)
    assert session.get(Report, report.id).asset_id == asset.id
    for bad in (archived.id, 999_999):
        with pytest.raises(InvalidInput) as refused:
            make_report(asset_id=bad)
        assert refused.value.errors == [{"field": "asset_id", "reason": "unknown"}]
        session.rollback()
    assert row_count(session, Report) == 1


def test_staff_link_and_unlink_a_report_audited(session, settings, staff, make_asset, make_report):
    asset = make_asset()
    report = make_report()
    admin = staff("admin")

    reports.link_report_asset(session, report_id=report.id, asset_id=asset.id, **act(admin))
    session.commit()
    assert session.get(Report, report.id).asset_id == asset.id
    reports.link_report_asset(session, report_id=report.id, asset_id=None, **act(admin))
    session.commit()

    assert session.get(Report, report.id).asset_id is None
    actions = session.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.entity_type == "report").order_by(AuditEntry.id)
    ).all()
    assert actions[-2:] == ["report.link_asset", "report.unlink_asset"]
    with pytest.raises(PermissionDenied):  # the report goes to Dinas PUPR: DLH does not handle it
        reports.link_report_asset(session, report_id=report.id, asset_id=asset.id, **act(staff("dlh_staff")))
    with pytest.raises(InvalidInput):
        reports.link_report_asset(session, report_id=report.id, asset_id=999_999, **act(admin))


# --- nearby assets ----------------------------------------------------------------------------------------------


def test_nearby_assets_are_the_active_ones_within_the_radius_nearest_first(session, settings, make_asset):
    # 0.0005° of latitude is about 55 m, 0.003° about 330 m.
    near = make_asset(name="Dekat", geometry=point(INSIDE[0] + 0.0005, INSIDE[1]))
    here = make_asset(name="Di sini", geometry=point())
    make_asset(name="Jauh", geometry=point(INSIDE[0] + 0.003, INSIDE[1]))
    gone = make_asset(name="Diarsipkan", geometry=point(INSIDE[0] + 0.0001, INSIDE[1]))
    service.archive_asset(session, settings=settings, asset_id=gone.id, actor=TEST_ACTOR, by=None)
    # A road whose ends are far but which passes about 110 m from the place.
    road = make_asset(
        type="jalan", name="Jalan lewat", attributes={"status_jalan": "desa", "permukaan": "tanah"},
        geometry=line((INSIDE[0] - 0.01, INSIDE[1] + 0.001), (INSIDE[0] + 0.01, INSIDE[1] + 0.001)),
    )  # fmt: skip
    session.commit()

    found = service.nearby_assets(session, lat=INSIDE[0], lon=INSIDE[1])

    assert [asset.id for asset, _distance in found] == [here.id, near.id, road.id]
    distances = [distance for _asset, distance in found]
    assert distances[0] == 0 and distances[1] == pytest.approx(55.6, abs=1)
    assert distances[2] == pytest.approx(111, abs=3)


# --- the public view --------------------------------------------------------------------------------------------


def test_the_public_view_names_opds_never_people(session, settings, staff, make_asset, make_report):
    asset = make_asset(condition="rusak_berat")
    today = service.local_today(settings)
    inspect(session, settings, staff("pupr_staff"), asset, today, "rusak_ringan", inspector="Budi Inspektur")
    make_report(asset_id=asset.id, description="Jembatan retak di tengah, berbahaya untuk motor.")
    make_report(asset_id=asset.id, anonymous=True, description="Rahasia pelapor anonim tentang jembatan ini.")
    make_report(asset_id=asset.id, confidential=True, description="Laporan rahasia sekali tentang jembatan.")

    view = service.public_asset(session, settings=settings, asset=session.get(Asset, asset.id), locale="id")
    text = view.model_dump_json()

    assert view.condition.value == "rusak_ringan" and view.condition.label == "Rusak Ringan"
    assert [entry.agency for entry in view.history] == ["Dinas Pekerjaan Umum dan Penataan Ruang"] * 2
    assert "Budi Inspektur" not in text and "Pupr.Staff" not in text
    for personal in REPORTER.values():
        assert personal not in text
    assert "Rahasia pelapor anonim" not in text and "Laporan rahasia sekali" not in text
    assert len(view.open_reports) == 2
    assert view.report_url == f"/lapor?aset={asset.id}&lat={INSIDE[0]:.6f}&lon={INSIDE[1]:.6f}"
    assert {row.label for row in view.attributes} == {"Panjang (m)", "Konstruksi"}


# --- asset types ------------------------------------------------------------------------------------------------


def test_an_admin_changes_a_type_and_a_broken_schema_is_refused(session, settings, seeded):
    kind = session.scalar(sa.select(AssetType).where(AssetType.code == "pju"))
    schema = {"type": "object", "properties": {"jenis_lampu": {"type": "string", "title": "Lampu"}}}

    service.update_asset_type(
        session, actor=TEST_ACTOR, type_id=kind.id,
        changes={"name_id": "Lampu jalan", "attribute_schema": schema, "agency_id": agency_id(session, "Dinas PUPR")},
    )  # fmt: skip
    session.commit()
    outside_ref = {"type": "object", "properties": {"x": {"$ref": "https://example.com/skema.json"}}}
    for bad in ('{"type": "object",', {"type": "array"}, {"type": "object", "properties": {"x": {"type": "warna"}}},
                outside_ref):  # fmt: skip
        with pytest.raises(InvalidInput) as refused:
            service.update_asset_type(session, actor=TEST_ACTOR, type_id=kind.id, changes={"attribute_schema": bad})
        assert refused.value.errors[0]["field"] == "attribute_schema"
        session.rollback()
    with pytest.raises(InvalidInput):
        service.update_asset_type(session, actor=TEST_ACTOR, type_id=kind.id, changes={"code": "lampu"})
    with pytest.raises(NotFound):
        service.update_asset_type(session, actor=TEST_ACTOR, type_id=999_999, changes={})

    session.rollback()
    stored = session.get(AssetType, kind.id)
    assert (stored.name_id, stored.attribute_schema, stored.code) == ("Lampu jalan", schema, "pju")
    assert row_count(session, AuditEntry, AuditEntry.action == "asset_type.update") == 1


def test_external_ids_rows_follow_the_asset(session, settings, make_asset):
    asset = make_asset(external_ids={"simbada": "1", "kode_ruas": "R-7"})

    assert row_count(session, AssetExternalId, AssetExternalId.asset_id == asset.id) == 2
