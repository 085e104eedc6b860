"""Console pages of citizen reports: the inbox, a report's staff page and its workflow forms, categories, response
templates and the OPD league table, used as a browser would (logged in, with the page's CSRF token)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

from conftest import TEST_ACTOR, csrf_from, post_login, stored
from kotacerdas.db import utcnow
from kotacerdas.reports import service
from kotacerdas.reports.console import period_start
from kotacerdas.reports.enums import ReportStatus, UpdateKind
from kotacerdas.reports.models import Report, ReportPhoto, ReportUpdate, ResponseTemplate
from reports.conftest import REPORTER, agency_id


def log_in(client, username: str) -> None:
    client.cookies.set("kc_lang", "en")
    response = post_login(client, username)
    assert response.status_code == 303, response.text


def log_in_as(client, staff, name: str):
    user = staff(name)
    client.cookies.clear()
    log_in(client, user.username)
    return user


def status_of(session, report_id: int) -> str:
    return stored(session, sa.select(Report.status).where(Report.id == report_id))


def timeline_kinds(session, report_id: int) -> list[str]:
    session.rollback()
    session.expire_all()
    return list(
        session.scalars(
            sa.select(ReportUpdate.kind).where(ReportUpdate.report_id == report_id).order_by(ReportUpdate.id)
        )
    )


def post_step(client, report_id: int, step: str, data: dict | None = None, files=None):
    """Send one of the report page's forms, with the page's CSRF token; the response, not followed."""
    token = csrf_from(client, f"/konsol/aduan/{report_id}")
    return client.post(
        f"/konsol/aduan/{report_id}/{step}",
        data={"csrf_token": token, **(data or {})},
        files=files,
        follow_redirects=False,
    )


def form_actions(html: str) -> set[str]:
    """The paths the page's POST forms send to."""
    return set(re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html))


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


# --- inbox and access ------------------------------------------------------------------------------------------


def test_opd_staff_see_only_their_own_opd_reports(client, session, staff, make_report):
    drain = make_report().report  # Dinas PUPR
    rubbish = make_report(category_code="sampah-menumpuk").report  # DLH
    pupr_code, dlh_code = drain.tracking_code, rubbish.tracking_code
    drain_id, rubbish_id = drain.id, rubbish.id

    log_in_as(client, staff, "pupr_staff")
    inbox = client.get("/konsol/aduan")
    assert inbox.status_code == 200
    assert pupr_code in inbox.text and dlh_code not in inbox.text
    # No bulk triage for an OPD, and no OPD filter: its inbox is always its own.
    assert "/konsol/aduan/massal" not in inbox.text and 'name="agency"' not in inbox.text
    assert client.get(f"/konsol/aduan/{drain_id}").status_code == 200
    other = client.get(f"/konsol/aduan/{rubbish_id}")
    assert other.status_code == 403
    assert "Saluran" not in other.text and REPORTER["email"] not in other.text
    # Nor can it act on the other OPD's report by sending the form anyway.
    token = csrf_from(client, "/konsol/aduan")
    forged = client.post(
        f"/konsol/aduan/{rubbish_id}/catatan", data={"csrf_token": token, "note": "mengintip"}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert "note" not in timeline_kinds(session, rubbish_id)

    log_in_as(client, staff, "admin")
    everything = client.get("/konsol/aduan")
    assert pupr_code in everything.text and dlh_code in everything.text
    assert client.get(f"/konsol/aduan/{rubbish_id}").status_code == 200


def test_inbox_needs_a_report_role(client, staff, seeded):
    log_in_as(client, staff, "pimpinan")
    assert client.get("/konsol/aduan").status_code == 403
    assert client.get("/konsol/template-tanggapan").status_code == 403
    client.cookies.clear()
    response = client.get("/konsol/aduan", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/masuk")


def test_inbox_filters_sort_and_overdue_marks(client, session, settings, staff, make_report):
    late = make_report(now=utcnow() - timedelta(days=30)).report
    fresh = make_report(category_code="sampah-menumpuk").report
    done = make_report().report
    service.close_report(
        session, settings=settings, report_id=done.id, outcome="archive", reason="Sudah ditangani warga.",
        by=staff("admin"), actor=TEST_ACTOR,
    )  # fmt: skip
    session.commit()
    codes = {"late": late.tracking_code, "fresh": fresh.tracking_code, "done": done.tracking_code}

    log_in_as(client, staff, "admin")
    page = client.get("/konsol/aduan")
    # Due date first: the overdue report leads, marked in words as well as in red.
    assert page.text.index(codes["late"]) < page.text.index(codes["fresh"])
    row = page.text[page.text.index(codes["late"]) :].split("</tr>")[0]
    assert "(overdue)" in row and "Verification" in row and "WIB" in row
    assert "(overdue)" not in page.text[page.text.index(codes["fresh"]) :].split("</tr>")[0]
    indonesian = client.get("/konsol/aduan", params={"lang": "id"}).text
    assert "<h1>Aduan warga</h1>" in indonesian
    assert "(terlambat)" in indonesian[indonesian.index(codes["late"]) :].split("</tr>")[0]
    client.cookies.set("kc_lang", "en")

    overdue = client.get("/konsol/aduan", params={"overdue": "on"}).text
    assert codes["late"] in overdue and codes["fresh"] not in overdue
    still_open = client.get("/konsol/aduan", params={"status": "open"}).text
    assert codes["done"] not in still_open and codes["fresh"] in still_open
    dlh = client.get("/konsol/aduan", params={"agency": agency_id(session, "DLH")}).text
    assert codes["fresh"] in dlh and codes["late"] not in dlh
    newest = client.get("/konsol/aduan", params={"sort": "-created"}).text
    assert newest.index(codes["done"]) < newest.index(codes["late"])
    # The filters stay in the links to the other pages.
    paged = client.get("/konsol/aduan", params={"status": "open", "sort": "-created", "per_page": 1}).text
    assert 'href="?status=open&amp;sort=-created&amp;page=2"' in paged
    # Unknown values are ignored rather than refused.
    assert client.get("/konsol/aduan", params={"status": "nonsense", "sort": "x", "category": "abc"}).status_code == 200


def test_bulk_dispose_all_or_nothing(client, session, staff, make_report):
    first, second, third = (make_report().report for _ in range(3))
    ids = [first.id, second.id, third.id]
    dlh = agency_id(session, "DLH")

    log_in_as(client, staff, "operator")
    token = csrf_from(client, "/konsol/aduan")
    response = client.post(
        "/konsol/aduan/massal",
        data={"csrf_token": token, "report_ids": [str(ids[0]), str(ids[1])], "action": "dispose", "agency_id": dlh,
              "back": "status=open"},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["location"].startswith("/konsol/aduan?status=open&")
    assert "2 reports sent to the OPD." in client.get(response.headers["location"]).text
    for report_id in ids[:2]:
        assert status_of(session, report_id) == ReportStatus.DIDISPOSISIKAN.value
        assert stored(session, sa.select(Report.agency_id).where(Report.id == report_id)) == dlh
    assert status_of(session, ids[2]) == ReportStatus.BARU.value

    # Verifying a disposed report cannot be done, so the new one beside it is not verified either.
    refused = client.post(
        "/konsol/aduan/massal",
        data={"csrf_token": token, "report_ids": [str(ids[2]), str(ids[0])], "action": "verify", "back": ""},
        follow_redirects=False,
    )
    assert refused.status_code == 409
    assert 'role="alert"' in refused.text and first.tracking_code in refused.text
    assert status_of(session, ids[2]) == ReportStatus.BARU.value


# --- one report: privacy and the workflow forms ----------------------------------------------------------------


def test_contact_details_need_their_own_permission(client, staff, make_report):
    report = make_report().report
    report_id = report.id

    log_in_as(client, staff, "pupr_admin")
    page = client.get(f"/konsol/aduan/{report_id}").text
    assert REPORTER["email"] in page and REPORTER["phone"] in page and REPORTER["name"] in page

    log_in_as(client, staff, "pupr_staff")
    page = client.get(f"/konsol/aduan/{report_id}").text
    assert REPORTER["email"] not in page and REPORTER["phone"] not in page and REPORTER["name"] not in page
    assert "contact details are hidden" in page
    # Staff still see the exact place and the text the reporter wrote.
    assert "Jl. Lintas Sumatera km 12" in page and "-3.060000, 102.930000" in page


def test_anonymous_report_shows_staff_everything_but_contact(client, staff, make_report):
    report = make_report(anonymous=True, photos=[jpeg()]).report
    report_id = report.id
    log_in_as(client, staff, "pupr_staff")
    page = client.get(f"/konsol/aduan/{report_id}").text
    assert "Saluran air tersumbat" in page and "Jl. Lintas Sumatera km 12" in page
    assert re.search(r"/media/laporan/\d+/thumb\.jpg", page)
    assert "Anonymous" in page


def test_whole_workflow_through_the_forms(client, session, settings, staff, make_report):
    report_id = make_report().report.id
    master_code = make_report().report.tracking_code
    pupr, dlh = agency_id(session, "Dinas PUPR"), agency_id(session, "DLH")

    log_in_as(client, staff, "admin")
    page = client.get(f"/konsol/aduan/{report_id}").text
    # The disposal form starts on the category's OPD.
    assert re.search(rf'<option value="{pupr}" selected>', page)
    response = post_step(client, report_id, "verifikasi", {"note": "Laporan lengkap."})
    assert response.status_code == 303 and response.headers["location"] == f"/konsol/aduan/{report_id}?done=verify"
    assert "The report is verified." in client.get(response.headers["location"]).text
    assert post_step(client, report_id, "disposisi", {"agency_id": str(dlh), "note": ""}).status_code == 303
    assert stored(session, sa.select(Report.agency_id).where(Report.id == report_id)) == dlh
    # DLH passes it back to PUPR, with a reason.
    log_in_as(client, staff, "dlh_admin")
    response = post_step(client, report_id, "disposisi-ulang", {"agency_id": str(pupr), "reason": "Drainase jalan."})
    assert response.status_code == 303
    assert stored(session, sa.select(Report.agency_id).where(Report.id == report_id)) == pupr

    pupr_staff = log_in_as(client, staff, "pupr_staff")
    assert post_step(client, report_id, "tugaskan", {"assignee_id": str(pupr_staff.id)}).status_code == 303
    assert stored(session, sa.select(Report.assignee_id).where(Report.id == report_id)) == pupr_staff.id
    plan = "Pembersihan saluran oleh tim UPTD pada Senin."
    assert post_step(client, report_id, "tindak-lanjut", {"plan": plan}).status_code == 303
    assert (
        post_step(client, report_id, "catatan", {"note": "Cek alat berat dulu.", "visibility": "internal"}).status_code
        == 303
    )
    assert (
        post_step(client, report_id, "catatan", {"note": "Tim sudah di lokasi.", "visibility": "public"}).status_code
        == 303
    )
    response = post_step(
        client, report_id, "selesai", {"note": "Saluran sudah bersih."},
        files=[("photos", ("sesudah.jpg", jpeg(), "image/jpeg")), ("photos", ("", b"", "application/octet-stream"))],
    )  # fmt: skip
    assert response.status_code == 303, response.text
    assert status_of(session, report_id) == ReportStatus.SELESAI.value
    # One "after" photo: the file input left empty is skipped.
    session.rollback()
    assert session.scalars(sa.select(ReportPhoto.kind).where(ReportPhoto.report_id == report_id)).all() == ["after"]

    log_in_as(client, staff, "admin")
    assert (
        post_step(client, report_id, "sembunyikan", {"hidden": "1", "reason": "Ada data pribadi."}).status_code == 303
    )
    assert stored(session, sa.select(Report.hidden).where(Report.id == report_id)) is True
    assert post_step(client, report_id, "sembunyikan", {"hidden": "0", "reason": ""}).status_code == 303
    assert stored(session, sa.select(Report.hidden).where(Report.id == report_id)) is False

    kinds = timeline_kinds(session, report_id)
    for kind in (UpdateKind.VERIFIED, UpdateKind.DISPOSED, UpdateKind.REDISPOSED, UpdateKind.ASSIGNED,
                 UpdateKind.FOLLOWED_UP, UpdateKind.NOTE, UpdateKind.COMMENT, UpdateKind.RESOLVED, UpdateKind.HIDDEN,
                 UpdateKind.UNHIDDEN):  # fmt: skip
        assert kind.value in kinds
    timeline = client.get(f"/konsol/aduan/{report_id}").text.split('id="h-timeline"')[1]
    assert plan in timeline and "Cek alat berat dulu." in timeline and "Tim sudah di lokasi." in timeline
    assert "pupr.staff" in timeline and "dlh.admin" in timeline  # staff names: this is the staff side
    assert "internal" in timeline and "Ada data pribadi." in timeline

    # A second report: marked as a duplicate of the first, and a third closed as not the regency's authority.
    other = make_report().report.id
    response = post_step(client, other, "duplikat", {"master_code": master_code.lower(), "reason": ""})
    assert response.status_code == 303
    assert status_of(session, other) == ReportStatus.DUPLIKAT.value
    closed = make_report().report.id
    response = post_step(client, closed, "tutup", {"outcome": "not_authority", "reason": "Jalan nasional."})
    assert response.status_code == 303
    assert status_of(session, closed) == ReportStatus.BUKAN_WEWENANG.value
    assert "Jalan nasional." in client.get(f"/konsol/aduan/{closed}").text


def test_refused_step_is_shown_on_the_page_and_changes_nothing(client, session, staff, make_report):
    report_id = make_report().report.id
    log_in_as(client, staff, "admin")

    missing = post_step(client, report_id, "tutup", {"outcome": "reject", "reason": "  "})
    assert missing.status_code == 422
    assert 'role="alert"' in missing.text
    assert re.search(r'<textarea id="close-reason"[^>]*aria-invalid="true"', missing.text)
    bad_code = post_step(client, report_id, "duplikat", {"master_code": "MR-1999-000001", "reason": "Sama."})
    assert bad_code.status_code == 422 and 'value="MR-1999-000001"' in bad_code.text  # typed value kept
    # A step the state does not allow (a forged form) is a conflict, not a change.
    forged = post_step(client, report_id, "selesai", {"note": "Selesai?"})
    assert forged.status_code == 409
    not_image = post_step(
        client, report_id, "selesai", {"note": "x"}, files=[("photos", ("a.jpg", b"not an image", "image/jpeg"))]
    )
    assert not_image.status_code in (409, 422)
    assert status_of(session, report_id) == ReportStatus.BARU.value
    assert timeline_kinds(session, report_id) == [UpdateKind.SUBMITTED.value]

    # Without the page's CSRF token nothing happens.
    response = client.post(f"/konsol/aduan/{report_id}/verifikasi", data={"note": ""}, follow_redirects=False)
    assert response.status_code == 403
    assert status_of(session, report_id) == ReportStatus.BARU.value


def test_only_the_steps_allowed_now_are_offered(client, session, settings, staff, make_report):
    report_id = make_report().report.id
    base = f"/konsol/aduan/{report_id}"
    every_step = {f"{base}/{step}" for step in (
        "verifikasi", "disposisi", "disposisi-ulang", "tindak-lanjut", "selesai", "tutup", "duplikat", "tugaskan",
        "catatan", "sembunyikan")}  # fmt: skip

    def offered(name: str) -> set[str]:
        log_in_as(client, staff, name)
        return form_actions(client.get(base).text) & every_step

    def steps(*names: str) -> set[str]:
        return {f"{base}/{name}" for name in names}

    # New: Diskominfo verifies or disposes; the OPD can only note it or mark it a duplicate.
    assert offered("admin") == steps("verifikasi", "disposisi", "tutup", "duplikat", "tugaskan", "catatan",
                                     "sembunyikan")  # fmt: skip
    assert offered("operator") == steps("verifikasi", "disposisi", "tutup", "duplikat", "catatan", "sembunyikan")
    assert offered("pupr_staff") == steps("duplikat", "tugaskan", "catatan")

    service.dispose_report(
        session, settings=settings, report_id=report_id, agency_id=None, by=staff("admin"), actor=TEST_ACTOR
    )
    session.commit()
    assert offered("pupr_staff") == steps("disposisi-ulang", "tindak-lanjut", "duplikat", "tugaskan", "catatan")
    assert offered("operator") == steps("disposisi-ulang", "tutup", "duplikat", "catatan", "sembunyikan")
    page = client.get(base).text
    assert 'value="public"' in page  # the command center may respond publicly

    service.follow_up_report(
        session, settings=settings, report_id=report_id, plan="Rencana.", by=staff("pupr_staff"), actor=TEST_ACTOR
    )
    session.commit()
    assert offered("pupr_staff") == steps("disposisi-ulang", "selesai", "duplikat", "tugaskan", "catatan")
    assert 'enctype="multipart/form-data"' in client.get(base).text

    service.resolve_report(
        session, settings=settings, report_id=report_id, note="Beres.", by=staff("pupr_staff"), actor=TEST_ACTOR
    )
    session.commit()
    assert offered("pupr_staff") == steps("catatan")
    assert offered("admin") == steps("catatan", "sembunyikan")
    assert "There is no workflow step for you to take in this state." in client.get(base).text


def test_response_template_fills_the_follow_up_plan(client, session, settings, staff, make_report):
    report_id = make_report().report.id
    service.dispose_report(
        session, settings=settings, report_id=report_id, agency_id=None, by=staff("admin"), actor=TEST_ACTOR
    )
    template = service.save_response_template(
        session, by=staff("admin"), actor=TEST_ACTOR, agency_id=None, title="Survei lokasi",
        body="Tim akan meninjau lokasi dalam 3 hari kerja.",
    )  # fmt: skip
    session.commit()
    template_id = template.id

    log_in_as(client, staff, "pupr_staff")
    page = client.get(f"/konsol/aduan/{report_id}").text
    assert "Survei lokasi" in page and "Use template" in page
    filled = client.get(f"/konsol/aduan/{report_id}", params={"template": template_id, "for": "plan"}).text
    assert re.search(r'<textarea id="plan-plan"[^>]*>Tim akan meninjau lokasi dalam 3 hari kerja\.</textarea>', filled)


# --- categories ------------------------------------------------------------------------------------------------

ATTRIBUTES = """[
  {"code": "jenis_pohon", "datatype": "singlevaluelist", "required": true,
   "description_id": "Jenis pohon", "description_en": "Kind of tree",
   "values": [{"key": "besar", "name_id": "Pohon besar"}, {"key": "kecil", "name_id": "Pohon kecil"}]}
]"""


def category_form(**overrides) -> dict:
    return {
        "code": "pohon-tumbang",
        "name_id": "Pohon tumbang",
        "name_en": "Fallen tree",
        "description_id": "",
        "description_en": "",
        "group": "ketertiban_umum",
        "agency_id": "",
        "sla_tier": "ringan",
        "resolution_days": "",
        "photo_required": "on",
        "duplicate_radius_m": "150",
        "attributes": ATTRIBUTES,
        "position": "3",
        "active": "on",
        **overrides,
    }


def test_category_create_with_attributes_and_edit(client, session, staff):
    log_in_as(client, staff, "admin")
    assert client.get("/konsol/kategori-aduan").status_code == 200
    token = csrf_from(client, "/konsol/kategori-aduan/baru")
    bpbd = agency_id(session, "BPBD")
    response = client.post(
        "/konsol/kategori-aduan/baru",
        data={"csrf_token": token, **category_form(agency_id=str(bpbd))},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    session.rollback()  # see what the app committed
    category = service.get_category_by_code(session, code="pohon-tumbang")
    assert category.agency_id == bpbd and category.photo_required and category.duplicate_radius_m == 150
    assert category.resolution_days == 2  # the tier's default
    assert category.attributes[0]["code"] == "jenis_pohon"
    assert [value["key"] for value in category.attributes[0]["values"]] == ["besar", "kecil"]
    # Citizens can report in it now, and the answer is checked against the new question.
    assert category in service.list_categories(session)
    listed = client.get("/konsol/kategori-aduan").text
    assert "Fallen tree" in listed and "pohon-tumbang" in listed

    edit = f"/konsol/kategori-aduan/{category.id}"
    page = client.get(edit).text
    assert "jenis_pohon" in page and "Saved." not in page
    response = client.post(
        edit,
        data={"csrf_token": token, **category_form(resolution_days="4", active=None, photo_required=None)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "Saved." in client.get(response.headers["location"]).text
    session.rollback()
    category = service.get_category(session, category_id=category.id)
    assert category.resolution_days == 4 and not category.active and not category.photo_required
    assert category not in service.list_categories(session)


def test_category_form_errors_name_the_field(client, session, staff):
    log_in_as(client, staff, "admin")
    token = csrf_from(client, "/konsol/kategori-aduan/baru")

    def send(**overrides):
        form = {key: value for key, value in category_form(**overrides).items() if value is not None}
        return client.post("/konsol/kategori-aduan/baru", data={"csrf_token": token, **form}, follow_redirects=False)

    broken = send(attributes='[{"code": "x",')
    assert broken.status_code == 422
    assert re.search(r'<textarea id="f-attributes"[^>]*aria-invalid="true"', broken.text)
    assert "not valid JSON" in broken.text
    assert "[{&#34;code&#34;: &#34;x&#34;," in broken.text  # what was typed comes back
    bad_attribute = send(attributes='[{"code": "Bad Code", "description_id": "x"}]')
    assert bad_attribute.status_code == 422
    assert re.search(r'<textarea id="f-attributes"[^>]*aria-invalid="true"', bad_attribute.text)
    bad_code = send(code="Pohon Tumbang")
    assert bad_code.status_code == 422
    assert re.search(r'<input id="f-code"[^>]*aria-invalid="true"', bad_code.text)
    bad_days = send(resolution_days="lima")
    assert bad_days.status_code == 422
    assert re.search(r'<input id="f-resolution_days"[^>]*aria-invalid="true"', bad_days.text)
    session.rollback()
    with pytest.raises(Exception):  # noqa: B017 (NotFound)
        service.get_category_by_code(session, code="pohon-tumbang")


def test_categories_need_their_permission(client, staff, seeded):
    log_in_as(client, staff, "operator")
    assert client.get("/konsol/kategori-aduan").status_code == 403
    assert client.get("/konsol/kategori-aduan/baru").status_code == 403


# --- response templates ----------------------------------------------------------------------------------------


def test_response_template_crud(client, session, staff):
    log_in_as(client, staff, "admin")
    token = csrf_from(client, "/konsol/template-tanggapan")
    response = client.post(
        "/konsol/template-tanggapan",
        data={"csrf_token": token, "title": "Terima kasih", "body": "Terima kasih atas laporan Anda.", "agency_id": ""},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "The template is saved." in client.get(response.headers["location"]).text

    pupr_admin = log_in_as(client, staff, "pupr_admin")
    token = csrf_from(client, "/konsol/template-tanggapan")
    # An OPD admin's template is their OPD's, whatever OPD the form names.
    response = client.post(
        "/konsol/template-tanggapan",
        data={"csrf_token": token, "title": "Survei PUPR", "body": "Tim PUPR akan survei.",
              "agency_id": str(agency_id(session, "DLH"))},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    own = stored(session, sa.select(ResponseTemplate).where(ResponseTemplate.title == "Survei PUPR"))
    shared = stored(session, sa.select(ResponseTemplate).where(ResponseTemplate.title == "Terima kasih"))
    own_id, shared_id = own.id, shared.id
    assert own.agency_id == pupr_admin.agency_id
    page = client.get("/konsol/template-tanggapan").text
    assert f"/konsol/template-tanggapan/{own_id}" in page and f"/konsol/template-tanggapan/{shared_id}" not in page
    assert client.get(f"/konsol/template-tanggapan/{shared_id}").status_code == 403
    empty = client.post(
        f"/konsol/template-tanggapan/{own_id}",
        data={"csrf_token": token, "title": "", "body": "x"},
        follow_redirects=False,
    )
    assert empty.status_code == 422 and re.search(r'<input id="f-title"[^>]*aria-invalid="true"', empty.text)
    response = client.post(
        f"/konsol/template-tanggapan/{own_id}",
        data={"csrf_token": token, "title": "Survei lapangan", "body": "Tim PUPR akan survei minggu ini."},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert stored(session, sa.select(ResponseTemplate.title).where(ResponseTemplate.id == own_id)) == "Survei lapangan"

    log_in_as(client, staff, "pupr_staff")
    page = client.get("/konsol/template-tanggapan").text
    assert "Survei lapangan" in page and "Terima kasih" in page
    assert "New template" not in page and "/hapus" not in page
    token = csrf_from(client, "/konsol/template-tanggapan")
    refused = client.post(
        f"/konsol/template-tanggapan/{own_id}/hapus", data={"csrf_token": token}, follow_redirects=False
    )
    assert refused.status_code == 403

    log_in_as(client, staff, "pupr_admin")
    token = csrf_from(client, "/konsol/template-tanggapan")
    response = client.post(
        f"/konsol/template-tanggapan/{own_id}/hapus", data={"csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert stored(session, sa.select(ResponseTemplate.id).where(ResponseTemplate.id == own_id)) is None


# --- figures and the menu --------------------------------------------------------------------------------------


def test_league_table_renders(client, session, settings, staff, make_report):
    drain = make_report().report
    make_report(category_code="sampah-menumpuk")
    service.dispose_report(
        session, settings=settings, report_id=drain.id, agency_id=None, by=staff("admin"), actor=TEST_ACTOR
    )
    for step in (service.follow_up_report, service.resolve_report):
        text = {"plan": "Dibersihkan besok."} if step is service.follow_up_report else {"note": "Sudah bersih."}
        step(session, settings=settings, report_id=drain.id, by=staff("pupr_staff"), actor=TEST_ACTOR, **text)
    session.commit()

    log_in_as(client, staff, "pimpinan")
    page = client.get("/konsol/kinerja-aduan")
    assert page.status_code == 200
    league = page.text.split('id="h-breakdown"')[0]
    pupr_row = league[league.index("Dinas Pekerjaan Umum dan Penataan Ruang") :].split("</tr>")[0]
    assert pupr_row.count("100 %") >= 2  # verified and resolved within the SLA
    assert "Dinas Lingkungan Hidup" in league
    chart = league[league.index('<svg xmlns="http://www.w3.org/2000/svg" class="chart') :].split("</svg>")[0]
    assert "Reports resolved within the SLA, by OPD" in chart and "<rect" in chart
    by_name = client.get("/konsol/kinerja-aduan", params={"sort": "label", "period": "year"}).text
    league = by_name.split('id="h-breakdown"')[0]
    assert league.index("Dinas Lingkungan Hidup") < league.index("Dinas Pekerjaan Umum")
    assert 'aria-sort="ascending"' in by_name
    for by in ("category", "kecamatan", "month"):
        assert client.get("/konsol/kinerja-aduan", params={"by": by, "period": "all"}).status_code == 200
    assert "Blocked drain" in client.get("/konsol/kinerja-aduan", params={"by": "category"}).text

    log_in_as(client, staff, "pupr_staff")
    assert client.get("/konsol/kinerja-aduan").status_code == 403


def test_period_start():
    from datetime import date

    assert period_start("month", date(2026, 2, 17)) == date(2026, 2, 1)
    assert period_start("3m", date(2026, 2, 17)) == date(2025, 12, 1)
    assert period_start("3m", date(2026, 11, 3)) == date(2026, 9, 1)
    assert period_start("year", date(2026, 2, 17)) == date(2026, 1, 1)
    assert period_start("all", date(2026, 2, 17)) is None


def test_console_menu_offers_the_report_pages_by_permission(client, staff, seeded):
    def hrefs(name: str) -> set[str]:
        log_in_as(client, staff, name)
        return set(re.findall(r'href="(/konsol/[a-z-]+)"', client.get("/konsol").text))

    report_pages = {"/konsol/aduan", "/konsol/kategori-aduan", "/konsol/kinerja-aduan", "/konsol/template-tanggapan"}
    assert hrefs("admin") >= report_pages
    assert hrefs("pupr_staff") & report_pages == {"/konsol/aduan", "/konsol/template-tanggapan"}
    assert hrefs("pupr_admin") & report_pages == {
        "/konsol/aduan",
        "/konsol/kinerja-aduan",
        "/konsol/template-tanggapan",
    }
    assert hrefs("pimpinan") & report_pages == {"/konsol/kinerja-aduan"}


def test_console_pages_render_in_indonesian(client, session, staff, make_report):
    report_id = make_report(attributes=None).report.id
    category_id = service.get_category_by_code(session, code="jalan-rusak").id
    log_in_as(client, staff, "admin")
    client.cookies.set("kc_lang", "id")
    pages = {
        f"/konsol/aduan/{report_id}": "Tangani laporan",
        "/konsol/kategori-aduan": "Kategori aduan",
        f"/konsol/kategori-aduan/{category_id}": "Pertanyaan tambahan (JSON)",
        "/konsol/template-tanggapan": "Template tanggapan",
        "/konsol/kinerja-aduan": "Peringkat OPD",
    }
    for url, text in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert text in response.text, url
