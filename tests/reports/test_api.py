"""The reports JSON API: citizens submit and track without a login, staff work the inbox by role and OPD, and no
public answer ever carries a reporter's contact details, an internal note or a staff member's name."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from conftest import assert_problem, bearer, csrf_from, new_api_token, post_login, row_count, stored, translated
from kotacerdas.accounts.service import Actor
from kotacerdas.app import create_app
from kotacerdas.db import utcnow, writer_queue
from kotacerdas.reports import service
from kotacerdas.reports.enums import ReportSource
from kotacerdas.reports.models import Report, ReportCategory, ReportFollower, ReportPhoto, ResponseTemplate

from .helpers import INSIDE, OUTSIDE, REPORTER, agency_id

OUTSIDE_MESSAGE = "The location is outside %(region)s. Reports can only be made for places inside it."
INTERNAL_NOTE = "Catatan internal: pelapor tetangga kepala dinas"
ANONYMOUS_TEXT = "Pungutan liar di loket pelayanan oleh oknum petugas"
ANONYMOUS_ADDRESS = "Rumah nomor 17 di belakang masjid"
ANONYMOUS_PLACE = (-3.0617, 102.9343)


def jpeg_bytes(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def submission(**overrides) -> dict:
    body = {
        "category": "drainase-tersumbat",
        "type": "pengaduan",
        "description": "Saluran air tersumbat sampah di depan pasar, air meluap ke jalan.",
        "lat": INSIDE[0],
        "lon": INSIDE[1],
        "address": "Jl. Lintas Sumatera km 12",
        **REPORTER,
    }
    body.update(overrides)
    return body


def act(user) -> dict:
    return {"by": user, "actor": Actor.of(user)}


def uploaded_files(settings) -> list:
    root = settings.data_dir
    return [path for path in root.rglob("*") if path.is_file() and path.suffix == ".jpg"] if root.exists() else []


@pytest.fixture
def headers_of(staff, session):
    """Bearer headers of a staff user by fixture name (`anonymous` gives none)."""
    made: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name == "anonymous":
            return {}
        if name not in made:
            # End the test session's read snapshot first: SQLite cannot turn a stale snapshot into a write.
            session.commit()
            made[name] = bearer(new_api_token(session, staff(name)))
        return made[name]

    return get


def advance(session, settings, staff, report_id: int, to: str) -> None:
    """Move a report along the workflow (as the admin) until it has status `to`, and commit."""
    admin = staff("admin")
    steps = ["baru", "terverifikasi", "didisposisikan", "ditindaklanjuti", "selesai"]
    for step in steps[1 : steps.index(to) + 1]:
        if step == "terverifikasi":
            service.verify_report(session, settings=settings, report_id=report_id, **act(admin))
        elif step == "didisposisikan":
            service.dispose_report(session, settings=settings, report_id=report_id, agency_id=None, **act(admin))
        elif step == "ditindaklanjuti":
            service.follow_up_report(
                session, settings=settings, report_id=report_id, plan="Pembersihan saluran pekan ini.", **act(admin)
            )
        else:
            service.resolve_report(
                session, settings=settings, report_id=report_id, note="Saluran sudah dibersihkan.", **act(admin)
            )
    session.commit()


def status_of(session, report_id: int) -> str:
    return stored(session, sa.select(Report.status).where(Report.id == report_id))


# --- submitting -------------------------------------------------------------------------------------------------


def test_submit_answers_201_with_code_pin_and_location_and_stores_the_report(client, seeded, session, settings):
    response = client.post("/api/v1/reports", json=submission(photos=[b64(jpeg_bytes())]))

    assert response.status_code == 201, response.text
    body = response.json()
    code = body["tracking_code"]
    assert code.startswith("MR-") and len(body["pin"]) == 8
    assert body["url"] == f"{settings.public_base_url}/lapor/{code}"
    assert response.headers["location"] == f"/api/v1/reports/{code}"
    assert response.headers["cache-control"] == "no-store"
    assert (body["report"]["status"], body["report"]["category_code"]) == ("baru", "drainase-tersumbat")
    for value in REPORTER.values():
        assert value not in response.text
    report = stored(session, sa.select(Report).where(Report.tracking_code == code))
    assert (report.source, report.reporter_email, report.kecamatan_code is not None) == (
        ReportSource.API.value,
        REPORTER["email"],
        True,
    )
    assert service.check_reporter_pin(report, body["pin"])
    assert row_count(session, ReportPhoto, ReportPhoto.report_id == report.id) == 1
    detail = client.get(response.headers["location"]).json()
    assert (detail["tracking_code"], detail["timeline"][0]["kind"]) == (code, "submitted")


def test_a_description_of_several_lines_is_kept(client, seeded, session):
    text = "Saluran tersumbat sampah.\nAir meluap ke jalan saat hujan.\n\tSudah seminggu."

    response = client.post("/api/v1/reports", json=submission(description=text))

    assert response.status_code == 201, response.text
    assert stored(session, sa.select(Report.description)) == text.strip()


def test_a_data_url_photo_is_accepted(client, seeded, session):
    photo = "data:image/jpeg;base64," + b64(jpeg_bytes())

    response = client.post("/api/v1/reports", json=submission(category="jalan-rusak", photos=[photo]))

    assert response.status_code == 201, response.text
    assert len(response.json()["report"]["photos"]) == 1


BIG_PHOTO = b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"lat": OUTSIDE[0], "lon": OUTSIDE[1]}, "location", "outside"),
        ({"category": "kucing-hilang"}, "category", "unknown"),
        ({"category": "jalan-rusak"}, "photos", "required"),
        ({"photos": [b64(b"<html><script>alert(1)</script></html>")]}, "photos", "not_an_image"),
        ({"photos": ["data:text/html;base64," + b64(b"<html></html>")]}, "photos", "not_an_image"),
        ({"photos": ["bukan base64 sama sekali!"]}, "photos", "not_base64"),
        ({"photos": [b64(BIG_PHOTO)]}, "photos", "too_large"),
        ({"photos": [b64(jpeg_bytes())] * 4}, "photos", "too_long"),
        ({"description": "x" * 4001}, "description", "string_too_long"),
        ({"description": "Rusak"}, "description", "too_short"),
        ({"address": "a" * 301}, "address", "string_too_long"),
        ({"email": "bukan-email"}, "email", "format"),
        ({"phone": "telepon saya"}, "phone", "format"),
        ({"website": "http://spam.example"}, "website", "rejected"),
        ({"type": "pujian"}, "type", "enum"),
        ({"lat": 91}, "lat", "less_than_equal"),
        ({"attributes": {"warna": "merah"}}, "attribute[warna]", "unknown"),
        ({"extra": 1}, "extra", "extra_forbidden"),
        (
            {"category": "pju-mati", "attributes": {"nomor_tiang": "A\u0000B"}},
            "attribute[nomor_tiang]",
            "control_character",
        ),
        ({"name": "Siti\u0000"}, "name", "control_character"),
    ],
)
def test_bad_submissions_are_422_and_store_nothing(client, seeded, session, settings, overrides, field, reason):
    body = assert_problem(client.post("/api/v1/reports", json=submission(**overrides)), 422)

    assert {"field": field, "reason": reason} in [
        {"field": error["field"], "reason": error["reason"]} for error in body["errors"]
    ], body
    assert row_count(session, Report) == 0
    assert row_count(session, ReportPhoto) == 0
    assert uploaded_files(settings) == []


def test_outside_the_kabupaten_is_explained_in_indonesian_by_default_and_in_english_on_request(
    client, seeded, settings
):
    outside = submission(lat=OUTSIDE[0], lon=OUTSIDE[1])

    default = assert_problem(client.post("/api/v1/reports", json=outside), 422)
    english = assert_problem(client.post("/api/v1/reports", json=outside, headers={"Accept-Language": "en"}), 422)

    region = {"region": settings.region_name}
    assert english["detail"] == OUTSIDE_MESSAGE % region
    assert default["detail"] == translated(OUTSIDE_MESSAGE, "id") % region
    assert default["detail"] != english["detail"] and settings.region_name in default["detail"]


def test_a_submission_is_checked_while_another_writer_holds_the_database(client, seeded, session, backend):
    """A submission validates and locates before it takes SQLite's writer queue, so a bad one is answered at once
    while a job or another process writes, and a good one is stored once the queue is free."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no writer queue")
    queue = writer_queue(client.app.state.engine)
    queue.acquire()
    try:
        assert_problem(client.post("/api/v1/reports", json=submission(lat=OUTSIDE[0], lon=OUTSIDE[1])), 422)
    finally:
        queue.release()
    assert client.post("/api/v1/reports", json=submission()).status_code == 201
    assert row_count(session, Report) == 1


def test_a_failed_photo_after_a_good_one_leaves_no_report_and_no_file(client, seeded, session, settings):
    photos = [b64(jpeg_bytes()), b64(b"GIF89a" + b"\0" * 100)]

    assert_problem(client.post("/api/v1/reports", json=submission(photos=photos)), 422)

    assert row_count(session, Report) == 0
    assert uploaded_files(settings) == []


def test_a_body_over_the_limit_is_413_before_it_is_read(client, seeded, session):
    declared = client.post(
        "/api/v1/reports",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(46 * 1024 * 1024)},
    )
    assert_problem(declared, 413)

    def chunks():
        for _ in range(47):
            yield b"A" * (1024 * 1024)

    chunked = assert_problem(
        client.post("/api/v1/reports", content=chunks(), headers={"Content-Type": "application/json"}), 413
    )
    assert chunked["type"] == "urn:kotacerdas:problem:payload-too-large"
    # A body without photos has a far smaller limit.
    small = assert_problem(
        client.post("/api/v1/reports/MR-2026-000001/follow", json={"email": "a" * (2 * 1024 * 1024)}), 413
    )
    assert small["errors"][0]["reason"] == "too_large"
    assert row_count(session, Report) == 0


def test_the_rate_limit_answers_429_after_the_hourly_maximum(seeded, session, settings):
    app = create_app(settings.model_copy(update={"reports_per_ip_per_hour": 3}))
    with TestClient(app) as client:
        answers = [client.post("/api/v1/reports", json=submission()).status_code for _ in range(4)]
        refused = assert_problem(client.post("/api/v1/reports", json=submission()), 429)

    assert answers == [201, 201, 201, 429]
    assert refused["type"] == "urn:kotacerdas:problem:too-many-requests"
    assert row_count(session, Report) == 3


def test_a_public_post_needs_no_csrf_token_even_with_a_staff_session(client, staff, seeded):
    staff("admin")
    assert post_login(client, "admin").status_code == 303

    assert client.post("/api/v1/reports", json=submission()).status_code == 201


# --- the public side --------------------------------------------------------------------------------------------


@pytest.fixture
def public_world(seeded, session, settings, staff, make_report):
    """A normal report (handled, with an internal note), an anonymous one, a confidential one and a hidden one."""
    admin, pupr = staff("admin"), staff("pupr_admin")
    normal = make_report()
    service.add_note(
        session, settings=settings, report_id=normal.report.id, note=INTERNAL_NOTE, public=False, **act(pupr)
    )
    service.add_note(
        session, settings=settings, report_id=normal.report.id, note="Tim kami meninjau lokasi besok.",
        public=True, **act(pupr),
    )  # fmt: skip
    session.commit()
    advance(session, settings, staff, normal.report.id, "selesai")
    anonymous = make_report(
        description=ANONYMOUS_TEXT, address=ANONYMOUS_ADDRESS, lat=ANONYMOUS_PLACE[0], lon=ANONYMOUS_PLACE[1],
        anonymous=True, category_code="lainnya",
    )  # fmt: skip
    confidential = make_report(confidential=True, description="Laporan rahasia tentang pungutan di sekolah.")
    hidden = make_report(description="Laporan berisi nomor telepon orang lain.")
    service.hide_report(
        session, settings=settings, report_id=hidden.report.id, hidden=True, reason="Data pribadi", **act(admin)
    )
    session.commit()
    return {"normal": normal, "anonymous": anonymous, "confidential": confidential, "hidden": hidden}


def test_no_public_answer_carries_contact_details_internal_notes_staff_names_or_anonymous_text(
    client, public_world, session
):
    normal, anonymous = public_world["normal"], public_world["anonymous"]
    code = normal.report.tracking_code
    answers = [
        client.get("/api/v1/reports"),
        client.get("/api/v1/reports", params={"status": "closed"}),
        client.get("/api/v1/reports", params={"category": "lainnya"}),
        client.get(f"/api/v1/reports/{code}"),
        client.get(f"/api/v1/reports/{anonymous.report.tracking_code}"),
        client.get("/api/v1/reports/nearby", params={"category": "lainnya", "lat": INSIDE[0], "lon": INSIDE[1]}),
        client.get("/api/v1/reports/map", params={"bbox": "102,-4,104,-2", "zoom": 18}),
        client.get("/api/v1/reports/map", params={"bbox": "102,-4,104,-2", "zoom": 5}),
        client.get("/api/v1/report-categories"),
        client.get(f"/api/v1/reports/{public_world['confidential'].report.tracking_code}"),
        client.get(f"/api/v1/reports/{public_world['hidden'].report.tracking_code}"),
        client.post(f"/api/v1/reports/{code}/follow", json={"email": "tetangga@example.com"}),
        client.post(f"/api/v1/reports/{code}/rating", json={"pin": normal.pin, "rating": 4, "comment": "Cepat"}),
        client.post(f"/api/v1/reports/{code}/reopen", json={"pin": normal.pin, "reason": "Tersumbat lagi."}),
        client.post(f"/api/v1/reports/{code}/reopen", json={"pin": "SALAH123", "reason": "Coba-coba."}),
    ]

    assert [answer.status_code for answer in answers] == [200] * 9 + [404, 404, 202, 200, 200, 403]
    secrets = [
        *REPORTER.values(),
        INTERNAL_NOTE,
        ANONYMOUS_TEXT,
        ANONYMOUS_ADDRESS,
        str(ANONYMOUS_PLACE[0]),
        str(ANONYMOUS_PLACE[1]),
        "pupr.admin",
        "Pupr.Admin",
        "Laporan rahasia",
        "nomor telepon orang lain",
    ]
    for answer in answers:
        for secret in secrets:
            assert secret not in answer.text, (answer.request.url, secret)
    listed = answers[0].json()
    assert listed["total"] == 2
    shown = {item["tracking_code"]: item for item in listed["items"]}
    assert set(shown) == {code, anonymous.report.tracking_code}
    withheld = shown[anonymous.report.tracking_code]
    assert (withheld["description"], withheld["address"], withheld["location_approximate"]) == (None, None, True)
    assert withheld["desa"] or withheld["kecamatan"]
    public_note = [entry["note"] for entry in answers[3].json()["timeline"] if entry["kind"] == "comment"]
    assert public_note == ["Tim kami meninjau lokasi besok."]


def test_confidential_and_hidden_reports_are_not_found_and_not_listed(client, public_world):
    for name in ("confidential", "hidden"):
        code = public_world[name].report.tracking_code
        assert_problem(client.get(f"/api/v1/reports/{code}"), 404)
        assert_problem(client.post(f"/api/v1/reports/{code}/follow", json={"email": "x@example.com"}), 404)
        assert code not in client.get("/api/v1/reports", params={"per_page": 200}).text
        assert code not in client.get("/api/v1/reports/map", params={"bbox": "102,-4,104,-2", "zoom": 18}).text


def test_public_list_filters(client, public_world, session):
    kecamatan = public_world["normal"].report.kecamatan_code
    today = utcnow().date()

    def codes(**params):
        response = client.get("/api/v1/reports", params=params)
        assert response.status_code == 200, response.text
        return {item["tracking_code"] for item in response.json()["items"]}

    normal, anonymous = public_world["normal"].report.tracking_code, public_world["anonymous"].report.tracking_code
    assert codes(status="closed") == {normal}
    assert codes(status="open") == {anonymous}
    assert codes(status="baru") == {anonymous}
    assert codes(category="drainase-tersumbat") == {normal}
    assert codes(kecamatan=kecamatan) == {normal, anonymous}
    assert codes(since=str(today - timedelta(days=1)), until=str(today + timedelta(days=1))) == {normal, anonymous}
    assert codes(until=str(today - timedelta(days=2))) == set()
    assert codes(per_page=1, page=2) and len(codes(per_page=1, page=2)) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"category": "tidak-ada"},
        {"category": "Bukan Kode"},
        {"status": "hilang"},
        {"kecamatan": "16.05'; --"},
        {"since": "2026-13-01"},
        {"since": "9999-12-31"},
        {"since": "0001-01-01"},
        {"since": "2026-12-02", "until": "2026-12-01"},
        {"per_page": 201},
    ],
)
def test_bad_public_list_filters_are_422(client, seeded, params):
    assert_problem(client.get("/api/v1/reports", params=params), 422)


def test_nearby_lists_open_reports_of_the_category_within_its_radius(client, seeded, make_report):
    near = make_report()
    make_report(lat=INSIDE[0] + 0.01)  # about 1.1 km away: outside the 100 m radius

    found = client.get(
        "/api/v1/reports/nearby", params={"category": "drainase-tersumbat", "lat": INSIDE[0], "lon": INSIDE[1]}
    ).json()

    assert [item["report"]["tracking_code"] for item in found] == [near.report.tracking_code]
    assert found[0]["distance_m"] == 0
    assert_problem(client.get("/api/v1/reports/nearby", params={"category": "x-y", "lat": 1, "lon": 1}), 422)
    assert_problem(client.get("/api/v1/reports/nearby", params={"category": "lainnya", "lat": "nan", "lon": 1}), 422)


def test_map_answers_geojson_at_public_positions(client, public_world):
    response = client.get("/api/v1/reports/map", params={"bbox": "102,-4,104,-2", "zoom": 18, "status": "open"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    codes = {feature["properties"].get("tracking_code") for feature in collection["features"]}
    assert codes == {public_world["anonymous"].report.tracking_code}
    position = collection["features"][0]["geometry"]["coordinates"]
    assert position != [ANONYMOUS_PLACE[1], ANONYMOUS_PLACE[0]]


@pytest.mark.parametrize(
    "bbox",
    ["102,-4,104", "102,-4,104,-2,1", "a,b,c,d", "104,-4,102,-2", "102,-2,104,-4", "-200,-4,104,-2", "102,-95,104,-2",
     "nan,-4,104,-2", "102,-4,inf,-2", "102,,104,-2"],
)  # fmt: skip
def test_map_refuses_a_bad_bounding_box(client, seeded, bbox):
    body = assert_problem(client.get("/api/v1/reports/map", params={"bbox": bbox, "zoom": 10}), 422)
    assert body["errors"][0]["field"] == "bbox"


def test_figures_need_the_figures_permission(client, public_world, headers_of):
    assert_problem(client.get("/api/v1/reports/figures"), 401)
    assert_problem(client.get("/api/v1/reports/figures", headers=headers_of("pupr_staff")), 403)

    rows = client.get("/api/v1/reports/figures", params={"by": "category"}, headers=headers_of("pimpinan")).json()
    months = client.get("/api/v1/reports/figures", params={"by": "month"}, headers=headers_of("operator")).json()

    assert {row["key"] for row in rows} >= {"drainase-tersumbat", "lainnya"}
    assert sum(row["total"] for row in months) == 4
    assert_problem(client.get("/api/v1/reports/figures", params={"by": "desa"}, headers=headers_of("admin")), 422)


# --- the reporter's steps ---------------------------------------------------------------------------------------


def test_follow_gives_the_same_answer_whether_or_not_already_following(client, make_report, session):
    code = make_report().report.tracking_code

    first = client.post(f"/api/v1/reports/{code}/follow", json={"email": "warga@example.com"})
    session.execute(sa.update(ReportFollower).values(confirmed_at=utcnow()))
    session.commit()
    again = client.post(f"/api/v1/reports/{code}/follow", json={"email": "warga@example.com"})

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json() == again.json()
    assert row_count(session, ReportFollower) == 1
    assert_problem(client.post(f"/api/v1/reports/{code}/follow", json={"email": "bukan email"}), 422)


def test_reporter_reopens_and_rates_with_the_pin_only(client, make_report, session, settings, staff):
    submitted = make_report()
    code, report_id = submitted.report.tracking_code, submitted.report.id

    early = assert_problem(
        client.post(f"/api/v1/reports/{code}/reopen", json={"pin": submitted.pin, "reason": "x"}), 409
    )
    assert early["errors"] == [{"field": "status", "reason": "transition"}]
    advance(session, settings, staff, report_id, "selesai")
    wrong = assert_problem(client.post(f"/api/v1/reports/{code}/reopen", json={"pin": "SALAH123", "reason": "x"}), 403)
    assert wrong["errors"] == [{"field": "pin", "reason": "mismatch"}]
    assert status_of(session, report_id) == "selesai"
    assert_problem(client.post(f"/api/v1/reports/{code}/rating", json={"pin": submitted.pin, "rating": 6}), 422)

    rated = client.post(f"/api/v1/reports/{code}/rating", json={"pin": submitted.pin.lower(), "rating": 5})
    twice = client.post(f"/api/v1/reports/{code}/rating", json={"pin": submitted.pin, "rating": 1})
    reopened = client.post(f"/api/v1/reports/{code}/reopen", json={"pin": submitted.pin, "reason": "Tersumbat lagi."})

    assert rated.status_code == 200 and rated.json()["rating"] == 5
    assert_problem(twice, 409)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["status"] == "ditindaklanjuti"
    assert reopened.json()["timeline"][-1]["kind"] == "reopened"


def test_reopening_after_the_window_is_409(client, make_report, session, settings, staff):
    submitted = make_report()
    advance(session, settings, staff, submitted.report.id, "selesai")
    session.execute(
        sa.update(Report)
        .where(Report.id == submitted.report.id)
        .values(resolved_at=utcnow() - timedelta(days=settings.report_reopen_days + 1))
    )
    session.commit()

    late = client.post(
        f"/api/v1/reports/{submitted.report.tracking_code}/reopen", json={"pin": submitted.pin, "reason": "Lagi."}
    )

    assert assert_problem(late, 409)["errors"] == [{"field": "status", "reason": "reopen_window"}]
    assert status_of(session, submitted.report.id) == "selesai"


# --- the staff inbox: who may do what to which report -------------------------------------------------------------

ROLES = ("anonymous", "dlh_staff", "pupr_staff", "pupr_admin", "operator", "admin")
# The report is a blocked drain, routed to Dinas PUPR. dlh_staff is another OPD's staff; pupr_* are the responsible
# OPD's; the operator (command center) triages but does not handle; the admin (Diskominfo) may do everything.
# `contact`: whether GET /inbox/{id} shows the reporter's name, email and phone.
MATRIX = """
action      anonymous  dlh_staff  pupr_staff  pupr_admin  operator  admin
verify      401        403        403         403         200       200
dispose     401        403        403         403         200       200
follow-up   401        403        200         200         403       200
resolve     401        403        200         200         403       200
reject      401        403        403         403         200       200
duplicate   401        403        200         200         200       200
hide        401        403        403         403         200       200
bulk        401        403        403         403         200       200
view        401        403        200         200         200       200
contact     401        403        hidden      shown       hidden    shown
"""
EXPECTED = {
    (row.split()[0], role): cell
    for row in MATRIX.strip().splitlines()[1:]
    for role, cell in zip(ROLES, row.split()[1:], strict=True)
}
# action: (status the report must have, request, status it has after a successful request)
ACTIONS = {
    "verify": ("baru", ("post", "/verify", {}), "terverifikasi"),
    "dispose": ("baru", ("post", "/dispose", {}), "didisposisikan"),
    "follow-up": ("didisposisikan", ("post", "/follow-up", {"plan": "Dibersihkan besok pagi."}), "ditindaklanjuti"),
    "resolve": ("ditindaklanjuti", ("post", "/resolve", {"note": "Sudah dibersihkan."}), "selesai"),
    "reject": ("baru", ("post", "/reject", {"reason": "Bukan laporan."}), "ditolak"),
    "duplicate": ("baru", ("post", "/duplicate", {"master_code": None}), "duplikat"),
    "hide": ("baru", ("post", "/hide", {"hidden": True, "reason": "Data pribadi."}), "baru"),
    "bulk": ("baru", ("post", None, None), "terverifikasi"),
    "view": ("baru", ("get", "", None), "baru"),
    "contact": ("baru", ("get", "", None), "baru"),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_rbac_matrix(client, session, settings, staff, make_report, headers_of, action, role):
    start, (method, suffix, payload), after = ACTIONS[action]
    report = make_report().report
    advance(session, settings, staff, report.id, start)
    if action == "duplicate":
        payload = {"master_code": make_report(lat=INSIDE[0] + 0.001).report.tracking_code}
    headers = headers_of(role)
    if action == "bulk":
        response = client.post(
            "/api/v1/inbox/bulk", json={"action": "verify", "report_ids": [report.id]}, headers=headers
        )
    elif method == "get":
        response = client.get(f"/api/v1/inbox/{report.id}", headers=headers)
    else:
        response = client.post(f"/api/v1/inbox/{report.id}{suffix}", json=payload, headers=headers)

    expected = EXPECTED[(action, role)]
    if expected in ("hidden", "shown"):
        assert response.status_code == 200, response.text
        reporter = response.json()["reporter"]
        assert (reporter == REPORTER) if expected == "shown" else (reporter is None), reporter
        assert (REPORTER["phone"] in response.text) == (expected == "shown")
        return
    assert response.status_code == int(expected), response.text
    if expected != "200":
        assert_problem(response, int(expected))
        assert status_of(session, report.id) == start
    else:
        assert status_of(session, report.id) == after
        if action == "hide":
            assert stored(session, sa.select(Report.hidden).where(Report.id == report.id)) is True


def test_staff_json_with_a_session_cookie_needs_the_csrf_header(client, session, staff, make_report):
    staff("admin")
    report = make_report().report
    assert post_login(client, "admin").status_code == 303

    refused = assert_problem(client.post(f"/api/v1/inbox/{report.id}/verify", json={}), 403)
    forged = client.post(f"/api/v1/inbox/{report.id}/verify", json={}, headers={"X-CSRF-Token": "0" * 64})
    token = csrf_from(client, "/konsol/token")
    accepted = client.post(f"/api/v1/inbox/{report.id}/verify", json={}, headers={"X-CSRF-Token": token})

    assert refused["type"] == "urn:kotacerdas:problem:csrf-failed"
    assert_problem(forged, 403)
    assert accepted.status_code == 200, accepted.text
    assert client.get("/api/v1/inbox").status_code == 200  # reading needs no token


@pytest.mark.parametrize(
    ("role", "start", "path", "payload", "status"),
    [
        ("pupr_staff", "baru", "/resolve", {"note": "Selesai."}, 409),
        ("pupr_staff", "baru", "/follow-up", {"plan": "Rencana."}, 409),
        ("admin", "selesai", "/verify", {}, 409),
        ("admin", "selesai", "/dispose", {}, 409),
        ("admin", "terverifikasi", "/redispose", {"agency_id": 1, "reason": "Salah OPD."}, 409),
        ("admin", "selesai", "/reject", {"reason": "Terlambat."}, 409),
        ("dlh_staff", "didisposisikan", "/redispose", {"agency_id": 1, "reason": "Bukan kami."}, 403),
        ("dlh_staff", "didisposisikan", "/notes", {"note": "Intip.", "public": False}, 403),
        ("dlh_staff", "didisposisikan", "/assign", {"assignee_id": None}, 403),
    ],
)
def test_forged_transitions_and_wrong_opd_are_refused(
    client, session, settings, staff, make_report, headers_of, role, start, path, payload, status
):
    report = make_report().report
    advance(session, settings, staff, report.id, start)

    assert_problem(client.post(f"/api/v1/inbox/{report.id}{path}", json=payload, headers=headers_of(role)), status)

    assert status_of(session, report.id) == start


def test_opd_inbox_lists_only_its_own_reports_with_filters(client, session, settings, staff, make_report, headers_of):
    drain = make_report().report
    rubbish = make_report(category_code="sampah-menumpuk").report
    advance(session, settings, staff, drain.id, "didisposisikan")

    def ids(role, **params):
        response = client.get("/api/v1/inbox", params=params, headers=headers_of(role))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids("pupr_staff") == [drain.id]
    assert ids("dlh_staff") == [rubbish.id]
    assert sorted(ids("operator")) == sorted([drain.id, rubbish.id])
    assert ids("operator", status="baru") == [rubbish.id]
    assert ids("operator", agency_id=agency_id(session, "DLH")) == [rubbish.id]
    assert ids("admin", q=drain.tracking_code) == [drain.id]
    assert ids("admin", sort="-created")[0] == rubbish.id
    assert ids("pupr_admin", overdue=True) == []
    listed = client.get("/api/v1/inbox", headers=headers_of("pupr_admin")).json()["items"][0]
    assert listed["reporter"] == REPORTER
    assert client.get("/api/v1/inbox", headers=headers_of("pupr_staff")).json()["items"][0]["reporter"] is None
    assert_problem(client.get("/api/v1/inbox"), 401)
    assert_problem(client.get("/api/v1/inbox", headers=headers_of("pimpinan")), 403)
    assert_problem(client.get("/api/v1/inbox", params={"sort": "random"}, headers=headers_of("admin")), 422)
    assert_problem(client.get("/api/v1/inbox", params={"status": "closed"}, headers=headers_of("admin")), 422)


def test_inbox_detail_has_the_whole_timeline_with_internal_notes(client, session, settings, staff, make_report,
                                                                  headers_of):  # fmt: skip
    report = make_report().report
    advance(session, settings, staff, report.id, "didisposisikan")
    headers = headers_of("pupr_staff")

    noted = client.post(f"/api/v1/inbox/{report.id}/notes", json={"note": INTERNAL_NOTE}, headers=headers)
    assigned = client.post(
        f"/api/v1/inbox/{report.id}/assign", json={"assignee_id": staff("pupr_staff").id}, headers=headers
    )
    planned = client.post(f"/api/v1/inbox/{report.id}/follow-up", json={"plan": "Dibersihkan besok."}, headers=headers)

    assert noted.status_code == assigned.status_code == planned.status_code == 200, planned.text
    detail = planned.json()
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert kinds == ["submitted", "verified", "disposed", "note", "assigned", "followed_up"]
    assert INTERNAL_NOTE in [entry["internal_note"] for entry in detail["timeline"]]
    assert (detail["status"], detail["assignee_id"], detail["reporter"]) == (
        "ditindaklanjuti",
        staff("pupr_staff").id,
        None,
    )
    public = client.get(f"/api/v1/reports/{report.tracking_code}").text
    assert INTERNAL_NOTE not in public and "pupr.staff" not in public


def test_resolve_with_an_after_photo_and_redispose(client, session, settings, staff, make_report, headers_of):
    report = make_report(anonymous=True).report
    advance(session, settings, staff, report.id, "ditindaklanjuti")
    other = make_report().report
    advance(session, settings, staff, other.id, "didisposisikan")

    resolved = client.post(
        f"/api/v1/inbox/{report.id}/resolve",
        json={"note": "Saluran dibersihkan.", "photos": [b64(jpeg_bytes())]},
        headers=headers_of("pupr_staff"),
    )
    moved = client.post(
        f"/api/v1/inbox/{other.id}/redispose",
        json={"agency_id": agency_id(session, "DLH"), "reason": "Sampah, bukan saluran."},
        headers=headers_of("pupr_admin"),
    )

    assert resolved.status_code == 200, resolved.text
    public = client.get(f"/api/v1/reports/{report.tracking_code}").json()
    assert [photo["kind"] for photo in public["photos"]] == ["after"]
    assert moved.status_code == 200, moved.text
    assert moved.json()["agency_id"] == agency_id(session, "DLH")
    assert_problem(client.get(f"/api/v1/inbox/{other.id}", headers=headers_of("pupr_staff")), 403)
    assert client.get(f"/api/v1/inbox/{other.id}", headers=headers_of("dlh_staff")).status_code == 200


def test_bulk_is_all_or_nothing(client, session, settings, staff, make_report, headers_of):
    first, second = make_report().report, make_report().report
    advance(session, settings, staff, second.id, "terverifikasi")

    refused = assert_problem(
        client.post(
            "/api/v1/inbox/bulk", json={"action": "verify", "report_ids": [first.id, second.id]},
            headers=headers_of("operator"),
        ),
        409,
    )  # fmt: skip
    disposed = client.post(
        "/api/v1/inbox/bulk",
        json={"action": "dispose", "report_ids": [first.id, second.id], "agency_id": agency_id(session, "DLH")},
        headers=headers_of("operator"),
    )

    assert second.tracking_code in refused["detail"]
    assert disposed.status_code == 200, disposed.text
    assert [item["status"] for item in disposed.json()] == ["didisposisikan", "didisposisikan"]
    assert_problem(
        client.post(
            "/api/v1/inbox/bulk", json={"action": "verify", "report_ids": [2**40]}, headers=headers_of("admin")
        ),
        422,
    )
    assert_problem(
        client.post(
            "/api/v1/inbox/bulk", json={"action": "dispose", "report_ids": [first.id], "agency_id": 99999},
            headers=headers_of("admin"),
        ),
        422,
    )  # fmt: skip


@pytest.mark.parametrize("path", ["/api/v1/inbox/0", f"/api/v1/inbox/{2**31}", "/api/v1/report-categories/0"])
def test_ids_out_of_range_are_422(client, seeded, headers_of, path):
    assert_problem(client.get(path, headers=headers_of("admin")), 422)


def test_unknown_report_is_404(client, seeded, headers_of):
    assert_problem(client.get("/api/v1/inbox/999999", headers=headers_of("admin")), 404)
    assert_problem(client.post("/api/v1/inbox/999999/verify", json={}, headers=headers_of("admin")), 404)
    assert_problem(client.get("/api/v1/reports/MR-2026-999999"), 404)
    assert_problem(client.get("/api/v1/reports/bukan%20kode"), 422)


# --- response templates and categories ----------------------------------------------------------------------------


def test_response_templates_crud(client, session, staff, headers_of):
    pupr = agency_id(session, "Dinas PUPR")
    body = {"agency_id": pupr, "title": "Sudah dijadwalkan", "body": "Perbaikan dijadwalkan pekan depan."}

    created = client.post("/api/v1/response-templates", json=body, headers=headers_of("pupr_admin"))
    assert created.status_code == 201, created.text
    template_id = created.json()["id"]
    assert_problem(client.post("/api/v1/response-templates", json=body, headers=headers_of("pupr_staff")), 403)
    assert_problem(
        client.post("/api/v1/response-templates", json={**body, "agency_id": 99999}, headers=headers_of("admin")), 422
    )
    changed = client.put(
        f"/api/v1/response-templates/{template_id}", json={**body, "title": "Dijadwalkan"}, headers=headers_of("admin")
    )
    assert changed.status_code == 200 and changed.json()["title"] == "Dijadwalkan"
    listed = client.get("/api/v1/response-templates", headers=headers_of("pupr_staff")).json()
    assert [item["title"] for item in listed] == ["Dijadwalkan"]
    assert client.get("/api/v1/response-templates", headers=headers_of("dlh_staff")).json() == []
    assert_problem(client.delete(f"/api/v1/response-templates/{template_id}", headers=headers_of("dlh_admin")), 403)
    deleted = client.delete(f"/api/v1/response-templates/{template_id}", headers=headers_of("pupr_admin"))
    assert deleted.status_code == 204 and deleted.content == b""
    assert row_count(session, ResponseTemplate) == 0
    assert_problem(client.delete(f"/api/v1/response-templates/{template_id}", headers=headers_of("admin")), 404)


def test_categories_public_list_and_admin_changes(client, session, seeded, headers_of):
    public = client.get("/api/v1/report-categories").json()
    assert "jalan-rusak" in {item["code"] for item in public}
    road = next(item for item in public if item["code"] == "jalan-rusak")
    assert road["photo_required"] and road["attributes"][0]["code"] == "tingkat_kerusakan"
    assert client.get(f"/api/v1/report-categories/{road['id']}").json()["code"] == "jalan-rusak"

    created = client.post(
        "/api/v1/report-categories",
        json={"code": "pohon-tumbang", "name_id": "Pohon tumbang", "group": "lainnya", "sla_tier": "ringan"},
        headers=headers_of("admin"),
    )
    assert created.status_code == 201, created.text
    assert (created.json()["resolution_days"], created.json()["name_en"]) == (2, "Pohon tumbang")
    assert_problem(
        client.post("/api/v1/report-categories", json={"code": "x1", "name_id": "X", "group": "lainnya",
                                                        "sla_tier": "ringan"}, headers=headers_of("operator")),
        403,
    )  # fmt: skip
    assert_problem(
        client.post("/api/v1/report-categories", json={"code": "pohon-tumbang", "name_id": "Lagi", "group": "lainnya",
                                                        "sla_tier": "ringan"}, headers=headers_of("admin")),
        409,
    )  # fmt: skip
    patched = client.patch(
        f"/api/v1/report-categories/{road['id']}", json={"active": False}, headers=headers_of("admin")
    )
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert stored(session, sa.select(ReportCategory.active).where(ReportCategory.id == road["id"])) is False

    assert "jalan-rusak" not in {item["code"] for item in client.get("/api/v1/report-categories").json()}
    assert_problem(client.get("/api/v1/report-categories", params={"all": "true"}), 401)
    assert_problem(client.get("/api/v1/report-categories", params={"all": "true"}, headers=headers_of("operator")), 403)
    everything = client.get("/api/v1/report-categories", params={"all": "true"}, headers=headers_of("admin")).json()
    assert "jalan-rusak" in {item["code"] for item in everything}
    assert_problem(client.post("/api/v1/reports", json=submission(category="jalan-rusak")), 422)


def test_every_reports_endpoint_is_documented_with_a_docstring(client):
    document = client.get("/api/openapi.json").json()
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        if path.startswith(("/api/v1/report", "/api/v1/inbox", "/api/v1/response-templates"))
        for method, operation in methods.items()
    ]

    # 32 here, and 2 in assets/api.py: linking a report to its asset and proposing the asset's condition.
    assert len(operations) == 34
    for path, method, operation in operations:
        assert operation.get("description") or operation.get("summary"), (method, path)
        assert "422" in operation["responses"], (method, path)
        if method in ("post", "put", "patch"):
            assert "413" in operation["responses"], (method, path)
    assert "429" in document["paths"]["/api/v1/reports"]["post"]["responses"]


@pytest.mark.parametrize(
    "body",
    [
        {"active": None},
        {"position": None},
        {"photo_required": None},
        {"resolution_days": None},
        {"name_id": None},
        {"group": "hewan"},
        {"attributes": [{"code": "warna", "description_id": "Warna?", "values": ["merah"]}]},
        {"attributes": [{"code": "warna", "description_id": 5}]},
        {
            "attributes": [
                {"code": "warna", "description_id": "Warna?", "datatype": "singlevaluelist",
                 "values": [{"key": "me\u0000rah", "name_id": "Merah"}]}
            ]
        },
    ],
)  # fmt: skip
def test_patching_a_category_with_bad_values_is_422_and_changes_nothing(client, session, seeded, headers_of, body):
    road = next(item for item in client.get("/api/v1/report-categories").json() if item["code"] == "jalan-rusak")

    assert_problem(client.patch(f"/api/v1/report-categories/{road['id']}", json=body, headers=headers_of("admin")), 422)

    after = client.get(f"/api/v1/report-categories/{road['id']}").json()
    assert after == road
