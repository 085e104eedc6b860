"""The reports service: submission, the workflow with working-day deadlines, access per OPD, privacy, breaches."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from conftest import row_count
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.accounts.service import Actor
from kotacerdas.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RateLimited
from kotacerdas.notifications.models import OutboxMessage
from kotacerdas.reports import service
from kotacerdas.reports.enums import ReportStatus, UpdateKind
from kotacerdas.reports.models import Report, ReportPhoto, ReportUpdate
from kotacerdas.reports.workdays import WorkCalendar

from .helpers import INSIDE, OUTSIDE, REPORTER, agency_id

WIB = timedelta(hours=7)


def wib(year, month, day, hour=10, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - WIB


def act(user):
    return {"by": user, "actor": Actor.of(user)}


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


# --- working days -----------------------------------------------------------------------------------------------


def test_working_days_skip_weekends_national_holidays_and_local_days_off(settings):
    calendar = WorkCalendar.of(settings)
    # Wednesday 23 December 2026; Friday 25 December is Christmas (a national holiday).
    assert calendar.add_working_days(wib(2026, 12, 23), 3) == wib(2026, 12, 29, 23, 59) + timedelta(seconds=59)
    with_cuti = WorkCalendar.of(settings.model_copy(update={"local_days_off": [date(2026, 12, 24)]}))
    assert with_cuti.add_working_days(wib(2026, 12, 23), 3) == wib(2026, 12, 30, 23, 59) + timedelta(seconds=59)
    assert not calendar.is_working_day(date(2026, 8, 17))  # Independence Day
    assert not calendar.is_working_day(date(2026, 11, 28))  # Saturday
    assert calendar.is_working_day(date(2026, 11, 27))


# --- submission -------------------------------------------------------------------------------------------------


def test_submit_derives_place_sets_deadline_and_emails_code_and_pin(session, settings, make_report):
    submitted = make_report(now=wib(2026, 12, 23))
    report = submitted.report
    assert report.tracking_code == f"MR-2026-{report.id:06d}"
    assert report.status == ReportStatus.BARU
    assert report.kecamatan_code and report.kecamatan_code.startswith("16.05.")
    assert report.verify_due_at == wib(2026, 12, 29, 23, 59) + timedelta(seconds=59)
    assert report.agency_id == agency_id(session, "Dinas PUPR")
    assert len(submitted.pin) == service.PIN_LENGTH and service.check_reporter_pin(report, submitted.pin.lower())
    mail = session.scalars(sa.select(OutboxMessage).where(OutboxMessage.recipient == REPORTER["email"])).one()
    assert report.tracking_code in mail.subject and submitted.pin in mail.body_text
    # The number is the report's id; the year is the local (WIB) year it was sent in.
    new_year = make_report(now=datetime(2026, 12, 31, 17, 30, tzinfo=UTC)).report
    assert new_year.tracking_code == f"MR-2027-{new_year.id:06d}" and new_year.id > report.id
    # The audit log keeps the change but never the reporter's contact details.
    audit = session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "report.submit")).all()
    assert audit and all(REPORTER["email"] not in str(entry.after) for entry in audit)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"lat": OUTSIDE[0], "lon": OUTSIDE[1]}, "location", "outside"),
        ({"category_code": "no-such-category"}, "category", "unknown"),
        ({"category_code": "jalan-rusak"}, "photos", "required"),
        ({"description": "x" * 4001}, "description", "too_long"),
        ({"description": "pendek"}, "description", "too_short"),
        ({"email": "bukan-email"}, "email", "format"),
        ({"phone": "call me"}, "phone", "format"),
        ({"photos": [b"<html><body>not a photo</body></html>"]}, "photos", "not_an_image"),
        ({"honeypot": "http://spam.example"}, "website", "rejected"),
        ({"type": "gugatan"}, "type", "unknown"),
        (
            {"category_code": "genangan-banjir", "attributes": {"kedalaman_cm": "dalam"}},
            "attribute[kedalaman_cm]",
            "number",
        ),
    ],
)
def test_bad_submissions_are_refused_and_store_nothing(session, settings, make_report, overrides, field, reason):
    with pytest.raises(InvalidInput) as caught:
        make_report(**overrides)
    session.rollback()
    assert {"field": field, "reason": reason}.items() <= caught.value.errors[0].items()
    assert row_count(session, Report) == 0
    assert row_count(session, OutboxMessage) == 0


def test_outside_message_names_the_kabupaten(session, settings, make_report):
    with pytest.raises(InvalidInput) as caught:
        make_report(lat=OUTSIDE[0], lon=OUTSIDE[1])
    assert "Kabupaten Musi Rawas" in caught.value.detail


def test_failed_photo_leaves_no_report_and_no_file(session, settings, make_report):
    uploads = Path(settings.data_dir) / "uploads"
    with pytest.raises(InvalidInput):
        make_report(photos=[jpeg(), b"GIF89a not really"])
    session.rollback()
    assert row_count(session, Report) == 0
    assert not uploads.exists() or not any(path.is_file() for path in uploads.rglob("*"))


def test_photos_are_stored_without_exif_and_removed_when_the_transaction_fails(session, settings, make_report):
    submitted = make_report(photos=[jpeg()])
    photo = session.scalars(sa.select(ReportPhoto).where(ReportPhoto.report_id == submitted.report.id)).one()
    stored = Path(settings.data_dir) / "uploads" / photo.file_key
    assert stored.is_file() and not Image.open(stored).getexif()
    # A submission whose transaction rolls back after the files were written leaves no file behind.
    service.submit_report(
        session, settings=settings, category_code="drainase-tersumbat", description="Foto kedua yang batal disimpan",
        lat=INSIDE[0], lon=INSIDE[1], photos=[jpeg()],
    )  # fmt: skip
    session.rollback()
    files = list((Path(settings.data_dir) / "uploads").rglob("*.jpg"))
    assert len(files) == 2  # the first report's photo and its thumbnail only


def test_rate_limit_per_address(session, settings, make_report):
    limited = settings.model_copy(update={"reports_per_ip_per_hour": 2})
    for _ in range(2):
        service.submit_report(
            session, settings=limited, category_code="sampah-menumpuk", description="Sampah menumpuk di tepi jalan",
            lat=INSIDE[0], lon=INSIDE[1], ip="10.1.2.3",
        )  # fmt: skip
    with pytest.raises(RateLimited):
        service.submit_report(
            session, settings=limited, category_code="sampah-menumpuk", description="Sampah menumpuk di tepi jalan",
            lat=INSIDE[0], lon=INSIDE[1], ip="10.1.2.3",
        )  # fmt: skip
    # Another address is not affected, and the address itself is not stored.
    other = service.submit_report(
        session, settings=limited, category_code="sampah-menumpuk", description="Sampah menumpuk di tepi jalan",
        lat=INSIDE[0], lon=INSIDE[1], ip="10.9.9.9",
    )  # fmt: skip
    assert "10.9.9.9" not in (other.report.client_key or "")


# --- the whole workflow -----------------------------------------------------------------------------------------


def test_whole_workflow_with_deadlines_across_a_national_holiday(session, settings, make_report, staff):
    admin, pupr = staff("admin"), staff("pupr_staff")
    report = make_report(now=wib(2026, 12, 23)).report
    service.verify_report(session, settings=settings, report_id=report.id, now=wib(2026, 12, 24), **act(admin))
    assert report.status == ReportStatus.TERVERIFIKASI
    # Disposed on Thursday 24 December: 5 working days skip Christmas (Fri 25), New Year's Day (Fri 1) and weekends.
    service.dispose_report(
        session, settings=settings, report_id=report.id, agency_id=None, now=wib(2026, 12, 24, 11), **act(admin)
    )
    assert report.status == ReportStatus.DIDISPOSISIKAN
    assert report.follow_up_due_at == wib(2027, 1, 4, 23, 59) + timedelta(seconds=59)
    service.follow_up_report(
        session, settings=settings, report_id=report.id, plan="Pembersihan saluran oleh tim UPTD pada Senin.",
        now=wib(2026, 12, 28), **act(pupr),
    )  # fmt: skip
    # Drainage is "normatif": 5 working days from Monday 28 December, past New Year's Day (Friday 1 January 2027)
    # and Isra Mi'raj (Tuesday 5 January 2027).
    assert report.resolve_due_at == wib(2027, 1, 6, 23, 59) + timedelta(seconds=59)
    service.resolve_report(
        session, settings=settings, report_id=report.id, note="Saluran sudah dibersihkan.", photos=[jpeg()],
        now=wib(2027, 1, 4), **act(pupr),
    )  # fmt: skip
    assert report.status == ReportStatus.SELESAI and report.closed_at == wib(2027, 1, 4)
    session.commit()
    kinds = [update.kind for update in service.staff_timeline(session, report=report)]
    assert kinds == ["submitted", "verified", "disposed", "followed_up", "resolved"]
    actions = session.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.entity_type == "report", AuditEntry.entity_id == str(report.id))
    ).all()
    assert actions == ["report.submit", "report.verify", "report.dispose", "report.follow_up", "report.resolve"]
    # The reporter got one email per public step.
    assert row_count(session, OutboxMessage, OutboxMessage.recipient == REPORTER["email"]) == 5


def test_reporter_reopens_within_the_window_and_rates_once(session, settings, make_report, staff):
    admin, pupr = staff("admin"), staff("pupr_staff")
    submitted = make_report()
    report = submitted.report
    service.dispose_report(session, settings=settings, report_id=report.id, agency_id=None, **act(admin))
    service.follow_up_report(
        session, settings=settings, report_id=report.id, plan="Dikerjakan minggu ini.", **act(pupr)
    )
    resolved_at = datetime(2026, 11, 2, 3, tzinfo=UTC)
    service.resolve_report(
        session, settings=settings, report_id=report.id, note="Selesai.", now=resolved_at, **act(pupr)
    )
    with pytest.raises(PermissionDenied):
        service.reopen_report(session, settings=settings, code=report.tracking_code, pin="WRONGPIN", reason="Belum")
    with pytest.raises(Conflict):
        service.reopen_report(
            session, settings=settings, code=report.tracking_code, pin=submitted.pin, reason="Masih tersumbat",
            now=resolved_at + timedelta(days=31),
        )  # fmt: skip
    service.reopen_report(
        session, settings=settings, code=report.tracking_code, pin=submitted.pin, reason="Masih tersumbat",
        now=resolved_at + timedelta(days=29),
    )  # fmt: skip
    assert report.status == ReportStatus.DITINDAKLANJUTI and report.reopen_count == 1 and report.resolved_at is None
    service.resolve_report(session, settings=settings, report_id=report.id, note="Sudah tuntas.", **act(pupr))
    service.rate_report(
        session, settings=settings, code=report.tracking_code, pin=submitted.pin, rating=4, comment="Ok"
    )
    with pytest.raises(Conflict):
        service.rate_report(session, settings=settings, code=report.tracking_code, pin=submitted.pin, rating=5)
    assert report.rating == 4


@pytest.mark.parametrize(
    "step",
    [
        lambda s, settings, r, u: service.resolve_report(s, settings=settings, report_id=r.id, note="x", **act(u)),
        lambda s, settings, r, u: service.follow_up_report(s, settings=settings, report_id=r.id, plan="x", **act(u)),
        lambda s, settings, r, u: service.reopen_report(
            s, settings=settings, code=r.tracking_code, pin="x", reason="x"
        ),
    ],
)
def test_forged_transitions_are_refused(session, settings, make_report, staff, step):
    report = make_report().report
    with pytest.raises((Conflict, PermissionDenied)):
        step(session, settings, report, staff("admin"))
    assert report.status == ReportStatus.BARU


def test_closed_report_cannot_go_back_to_new(session, settings, make_report, staff):
    admin = staff("admin")
    report = make_report().report
    service.close_report(
        session, settings=settings, report_id=report.id, outcome="reject", reason="Laporan fiktif", **act(admin)
    )
    for action in (service.verify_report, service.dispose_report):
        kwargs = {"agency_id": None} if action is service.dispose_report else {}
        with pytest.raises(Conflict):
            action(session, settings=settings, report_id=report.id, **kwargs, **act(admin))
    assert report.status == ReportStatus.DITOLAK and report.close_reason == "Laporan fiktif"


# --- who may do what --------------------------------------------------------------------------------------------

ALLOWED = "ok"
DENIED = "403"
# user → (verify, dispose, follow-up on a disposed PUPR report, hide, see contact, view)
MATRIX = {
    "admin": (ALLOWED, ALLOWED, ALLOWED, ALLOWED, True, True),
    "operator": (ALLOWED, ALLOWED, DENIED, ALLOWED, False, True),
    "pupr_admin": (DENIED, DENIED, ALLOWED, DENIED, True, True),
    "pupr_staff": (DENIED, DENIED, ALLOWED, DENIED, False, True),
    "dlh_staff": (DENIED, DENIED, DENIED, DENIED, False, False),
    "pimpinan": (DENIED, DENIED, DENIED, DENIED, False, False),
}


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_rbac_matrix(session, settings, make_report, staff, who):
    user = staff(who)
    verify, dispose, follow_up, hide, contact, view = MATRIX[who]

    def outcome(call) -> str:
        try:
            with session.begin_nested():
                call()
        except PermissionDenied:
            return DENIED
        return ALLOWED

    fresh = make_report().report
    assert outcome(lambda: service.verify_report(session, settings=settings, report_id=fresh.id, **act(user))) == verify
    fresh = make_report().report
    assert (
        outcome(
            lambda: service.dispose_report(session, settings=settings, report_id=fresh.id, agency_id=None, **act(user))
        )
        == dispose
    )
    disposed = make_report().report
    service.dispose_report(session, settings=settings, report_id=disposed.id, agency_id=None, **act(staff("admin")))
    assert (
        outcome(
            lambda: service.follow_up_report(
                session, settings=settings, report_id=disposed.id, plan="Rencana", **act(user)
            )
        )
        == follow_up
    )
    assert (
        outcome(
            lambda: service.hide_report(
                session, settings=settings, report_id=disposed.id, hidden=True, reason="Data pribadi", **act(user)
            )
        )
        == hide
    )
    assert service.can_see_contact(user, disposed) is contact
    assert service.can_view(user, disposed) is view


def test_opd_inbox_holds_only_its_own_reports(session, settings, make_report, staff):
    admin = staff("admin")
    drain = make_report().report
    rubbish = make_report(category_code="sampah-menumpuk").report
    for report in (drain, rubbish):
        service.dispose_report(session, settings=settings, report_id=report.id, agency_id=None, **act(admin))
    page = service.PageRequest()
    pupr_codes = {r.tracking_code for r in service.list_inbox(session, by=staff("pupr_staff"), page=page).items}
    dlh_codes = {r.tracking_code for r in service.list_inbox(session, by=staff("dlh_staff"), page=page).items}
    all_codes = {r.tracking_code for r in service.list_inbox(session, by=admin, page=page).items}
    assert pupr_codes == {drain.tracking_code} and dlh_codes == {rubbish.tracking_code}
    assert all_codes == {drain.tracking_code, rubbish.tracking_code}
    with pytest.raises(PermissionDenied):
        service.list_inbox(session, by=staff("pimpinan"), page=page)
    with pytest.raises(PermissionDenied):
        service.get_staff_report(session, report_id=rubbish.id, by=staff("pupr_staff"))


def test_redispose_assign_and_internal_notes(session, settings, make_report, staff):
    admin, pupr, pupr2 = staff("admin"), staff("pupr_staff"), staff("pupr_staff2")
    report = make_report().report
    service.dispose_report(session, settings=settings, report_id=report.id, agency_id=None, **act(admin))
    service.assign_report(session, settings=settings, report_id=report.id, assignee_id=pupr2.id, **act(pupr))
    with pytest.raises(InvalidInput):
        service.assign_report(
            session, settings=settings, report_id=report.id, assignee_id=staff("dlh_staff").id, **act(pupr)
        )
    service.add_note(
        session,
        settings=settings,
        report_id=report.id,
        note="Koordinasi dengan kepala desa.",
        public=False,
        **act(pupr),
    )
    service.redispose_report(
        session, settings=settings, report_id=report.id, agency_id=agency_id(session, "DLH"),
        reason="Sampah penyebab sumbatan; wewenang DLH.", **act(pupr),
    )  # fmt: skip
    assert report.agency_id == agency_id(session, "DLH") and report.assignee_id is None
    with pytest.raises(PermissionDenied):
        service.add_note(session, settings=settings, report_id=report.id, note="x", public=False, **act(pupr))
    timeline = service.public_timeline(session, report=report, locale="id")
    assert "Koordinasi dengan kepala desa." not in str(timeline)
    assert [entry.kind for entry in timeline][-1] == UpdateKind.REDISPOSED


def test_duplicate_reporter_follows_the_master(session, settings, make_report, staff):
    admin = staff("admin")
    master = make_report(email=None).report
    duplicate = make_report(email="tetangga@example.com").report
    service.mark_duplicate(
        session, settings=settings, report_id=duplicate.id, master_code=master.tracking_code.lower(), reason=None,
        **act(admin),
    )  # fmt: skip
    assert duplicate.status == ReportStatus.DUPLIKAT and duplicate.duplicate_of_id == master.id
    with pytest.raises(InvalidInput):
        service.mark_duplicate(
            session, settings=settings, report_id=master.id, master_code=master.tracking_code, reason=None, **act(admin)
        )
    service.dispose_report(session, settings=settings, report_id=master.id, agency_id=None, **act(admin))
    session.commit()
    # Received, marked as a duplicate, then the master's news.
    assert row_count(session, OutboxMessage, OutboxMessage.recipient == "tetangga@example.com") == 3


def test_bulk_triage_is_all_or_nothing(session, settings, make_report, staff):
    admin = staff("admin")
    first, second = make_report().report, make_report().report
    service.close_report(session, settings=settings, report_id=second.id, outcome="archive", reason="Uji", **act(admin))
    session.commit()
    with pytest.raises(Conflict) as caught:
        with session.begin_nested():
            service.bulk_triage(
                session, settings=settings, report_ids=[first.id, second.id], action="verify", agency_id=None,
                **act(admin),
            )  # fmt: skip
    assert second.tracking_code in caught.value.detail
    session.refresh(first)
    assert first.status == ReportStatus.BARU
    done = service.bulk_triage(
        session, settings=settings, report_ids=[first.id], action="dispose", agency_id=None, **act(admin)
    )
    assert [report.status for report in done] == [ReportStatus.DIDISPOSISIKAN]


# --- privacy ----------------------------------------------------------------------------------------------------


def test_public_view_never_carries_contact_details_or_internal_notes(session, settings, make_report, staff):
    admin = staff("admin")
    report = make_report().report
    service.add_note(
        session, settings=settings, report_id=report.id, note="Nomor HP pelapor aktif", public=False, **act(admin)
    )
    service.dispose_report(
        session, settings=settings, report_id=report.id, agency_id=None, note="Diteruskan", **act(admin)
    )
    text = service.public_report(session, settings=settings, report=report, with_timeline=True).model_dump_json()
    for secret in (*REPORTER.values(), "Nomor HP pelapor aktif", "admin"):
        assert secret not in text
    assert "Diteruskan" in text


def test_anonymous_report_shows_only_its_desa_and_confidential_is_not_public(session, settings, make_report):
    anonymous = make_report(anonymous=True, photos=[jpeg()]).report
    view = service.public_report(session, settings=settings, report=anonymous)
    assert view.description is None and view.address is None and view.location_approximate
    assert (view.lat, view.lon) != (INSIDE[0], INSIDE[1]) and view.photos == []
    own = service.public_report(session, settings=settings, report=anonymous, full=True)
    assert own.description and (own.lat, own.lon) == INSIDE
    confidential = make_report(confidential=True).report
    with pytest.raises(NotFound):
        service.get_public_report(session, code=confidential.tracking_code)
    listed = service.list_public_reports(session, settings=settings, page=service.PageRequest())
    assert confidential.tracking_code not in {item.tracking_code for item in listed.items}
    photo = session.scalars(sa.select(ReportPhoto).where(ReportPhoto.report_id == anonymous.id)).first()
    with pytest.raises(NotFound):
        service.get_photo(session, photo_id=photo.id, by=None)


def test_hidden_report_leaves_the_public_side_but_is_kept(session, settings, make_report, staff):
    report = make_report().report
    service.hide_report(
        session,
        settings=settings,
        report_id=report.id,
        hidden=True,
        reason="Berisi data pribadi",
        **act(staff("admin")),
    )
    with pytest.raises(NotFound):
        service.get_public_report(session, code=report.tracking_code)
    assert session.get(Report, report.id).description


# --- deadlines --------------------------------------------------------------------------------------------------


def test_breaches_are_flagged_and_escalated_once(session, settings, make_report, staff):
    admin = staff("admin")
    admin.email = "kominfo@example.go.id"
    pupr_admin = staff("pupr_admin")
    pupr_admin.email = "pupr@example.go.id"
    late = make_report(now=wib(2026, 11, 2)).report
    on_time = make_report(now=wib(2026, 11, 26)).report
    session.commit()
    now = wib(2026, 11, 27, 12)
    assert service.flag_breaches(session, settings=settings, now=now) == 1
    assert service.flag_breaches(session, settings=settings, now=now + timedelta(hours=1)) == 0
    assert late.verify_breached_at == now and on_time.verify_breached_at is None
    escalations = session.scalars(sa.select(OutboxMessage).where(OutboxMessage.template == "report_breach")).all()
    assert [message.recipient for message in escalations] == ["kominfo@example.go.id"]
    # Disposed late: the follow-up deadline breach reaches the OPD's admin too.
    service.dispose_report(
        session, settings=settings, report_id=late.id, agency_id=None, now=wib(2026, 11, 3), **act(admin)
    )
    assert service.flag_breaches(session, settings=settings, now=now) == 2  # follow-up and resolution both passed
    session.commit()
    recipients = {
        message.recipient
        for message in session.scalars(sa.select(OutboxMessage).where(OutboxMessage.template == "report_breach"))
    }
    assert recipients == {"kominfo@example.go.id", "pupr@example.go.id"}
    breaches = row_count(session, ReportUpdate, ReportUpdate.kind == UpdateKind.BREACH.value)
    assert breaches == 3


def test_follow_is_double_opt_in_and_cannot_bomb_an_inbox(session, settings, make_report):
    reports = [make_report().report for _ in range(6)]
    for report in reports[:5]:
        service.follow_report(session, settings=settings, code=report.tracking_code, email="korban@example.com")
    with pytest.raises(RateLimited):
        service.follow_report(session, settings=settings, code=reports[5].tracking_code, email="korban@example.com")
    session.commit()
    confirmations = session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "report_follow_confirm")
    ).all()
    assert len(confirmations) == 5
    # Nobody follows before confirming: a new status reaches only the reporter.
    token = confirmations[0].body_text.split("/lapor/ikuti/")[1].split()[0]
    followed = service.confirm_follower(session, settings=settings, token=token)
    assert followed.tracking_code == reports[0].tracking_code
    with pytest.raises(NotFound):
        service.confirm_follower(session, settings=settings, token=token + "x")
