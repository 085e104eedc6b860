"""Public report pages: the form (with a real photo), the success page, tracking, the report page and its timeline,
the reporter's PIN, following by email, the list, the photo route and the beranda card. Nothing a reporter typed
about themselves ever shows up in a public page."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from conftest import csrf_from, post_login, row_count, stored, translated
from kotacerdas import storage
from kotacerdas.accounts.service import Actor
from kotacerdas.app import create_app
from kotacerdas.db import utcnow
from kotacerdas.notifications.models import OutboxMessage
from kotacerdas.reports import service
from kotacerdas.reports.models import Report, ReportFollower, ReportPhoto

from .helpers import INSIDE, OUTSIDE, REPORTER, agency_id

DESCRIPTION = "Saluran air tersumbat sampah plastik di depan pasar, air meluap ke jalan."
ADDRESS = "Jl. Lintas Sumatera km 12"
SECRET_TEXT = "Oknum petugas loket meminta uang tambahan untuk KTP"
SECRET_ADDRESS = "Rumah nomor 17 di belakang masjid"
SECRET_PLACE = (-3.0617, 102.9343)
CAMERA = "KameraRahasia X-1000"


def jpeg_with_exif(size=(640, 480)) -> bytes:
    """A JPEG as a phone makes it: camera model and GPS position in its EXIF."""
    exif = Image.Exif()
    exif[0x0110] = CAMERA
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (3.0, 3.0, 36.0), "E", (102.0, 55.0, 48.0)
    out = io.BytesIO()
    Image.new("RGB", size, (40, 120, 90)).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def form_fields(client, **overrides) -> dict:
    fields = {
        "csrf_token": csrf_from(client, "/lapor"),
        "category": "drainase-tersumbat",
        "type": "pengaduan",
        "lat": str(INSIDE[0]),
        "lon": str(INSIDE[1]),
        "address": ADDRESS,
        "description": DESCRIPTION,
        "name": REPORTER["name"],
        "email": REPORTER["email"],
        "phone": REPORTER["phone"],
        "website": "",
    }
    fields.update(overrides)
    return fields


def send(client, photos: list[bytes] | None = None, **overrides):
    files = [("photos", (f"foto-{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos or [])]
    return client.post("/lapor", data=form_fields(client, **overrides), files=files or None)


def code_and_pin(response) -> tuple[str, str]:
    code = re.search(r"data-tracking-code>([A-Z]+-\d{4}-\d{6})<", response.text).group(1)
    pin = re.search(r"data-pin>([A-Z0-9]+)<", response.text).group(1)
    return code, pin


def assert_no_contact(text: str) -> None:
    for value in REPORTER.values():
        assert value not in text


def act(user) -> dict:
    return {"by": user, "actor": Actor.of(user)}


def resolved_report(session, settings, staff, make_report, **overrides) -> service.SubmittedReport:
    """A report taken through the workflow to selesai by Diskominfo and Dinas PUPR."""
    submitted = make_report(**overrides)
    report_id = submitted.report.id
    pupr = agency_id(session, "Dinas PUPR")
    service.dispose_report(session, settings=settings, report_id=report_id, agency_id=pupr, **act(staff("operator")))
    service.follow_up_report(
        session, settings=settings, report_id=report_id, plan="Dibersihkan minggu ini.", **act(staff("pupr_staff"))
    )
    service.resolve_report(
        session, settings=settings, report_id=report_id, note="Saluran sudah dibersihkan.", **act(staff("pupr_staff"))
    )
    session.commit()
    return submitted


# --- the form ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["id", "en"])
def test_form_renders_in_both_languages(client, seeded, locale):
    response = client.get("/lapor", params={"lang": locale})

    assert response.status_code == 200
    text = response.text
    assert f'<html lang="{locale}">' in text
    assert translated("Report a problem", locale) in text
    assert translated("Use my location", locale) in text
    # Grouped categories, every category's extra questions on the page, and the fallback inputs for no JavaScript.
    assert '<optgroup label="' + ("Roads &amp; bridges" if locale == "en" else "Jalan &amp; Jembatan") in text
    assert 'name="attribute[jalan-rusak][tingkat_kerusakan]"' in text
    assert 'name="lat"' in text and 'name="lon"' in text
    assert 'accept="image/jpeg,image/png,image/webp" multiple capture' in text
    # The spam trap is out of reach for people.
    trap = re.search(r'<div class="hp-field" aria-hidden="true">.*?</div>', text, re.S).group(0)
    assert 'name="website"' in trap and 'tabindex="-1"' in trap and 'autocomplete="off"' in trap


def test_submit_with_a_photo_shows_code_and_pin_after_commit_and_strips_exif(client, seeded, session, settings):
    response = send(client, photos=[jpeg_with_exif()])

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    code, pin = code_and_pin(response)
    assert_no_contact(response.text)
    report = stored(session, sa.select(Report).where(Report.tracking_code == code))
    assert report is not None and service.check_reporter_pin(report, pin)
    assert report.description == DESCRIPTION and report.reporter_email == REPORTER["email"]
    assert report.source == "web" and report.kecamatan_code
    photo = session.scalar(sa.select(ReportPhoto).where(ReportPhoto.report_id == report.id))
    for key in (photo.file_key, photo.thumb_key):
        data = storage.open_upload(settings, key).read_bytes()
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG"
        assert not image.getexif() and "exif" not in image.info
        assert CAMERA.encode() not in data and b"Exif" not in data


def test_submit_answers_the_chosen_category_questions_only(client, seeded, session):
    response = send(
        client,
        photos=[jpeg_with_exif((200, 150))],
        category="jalan-rusak",
        **{"attribute[jalan-rusak][tingkat_kerusakan]": "berat", "attribute[genangan-banjir][kedalaman_cm]": "40"},
    )

    assert response.status_code == 201, response.text
    code, _pin = code_and_pin(response)
    assert stored(session, sa.select(Report.attributes).where(Report.tracking_code == code)) == {
        "tingkat_kerusakan": "berat"
    }


def test_a_wrong_answer_to_an_extra_question_points_at_that_question(client, seeded, session):
    response = send(
        client, photos=[jpeg_with_exif((200, 150))], category="jalan-rusak",
        **{"attribute[jalan-rusak][tingkat_kerusakan]": "parah-sekali"},
    )  # fmt: skip

    assert response.status_code == 422
    assert 'href="#f-attr-jalan-rusak-tingkat_kerusakan"' in response.text
    assert re.search(r'id="f-attr-jalan-rusak-tingkat_kerusakan"[^>]*aria-invalid="true"', response.text)
    assert row_count(session, Report) == 0


def test_errors_show_the_form_again_with_the_input_kept(client, seeded, session):
    response = send(client, description="Rusak", address="Depan SD Negeri 3")

    assert response.status_code == 422
    text = response.text
    assert 'id="form-error"' in text and 'href="#f-description"' in text
    assert translated("Please describe the problem in at least 10 characters.", "id") in text
    assert ">Rusak</textarea>" in text and 'value="Depan SD Negeri 3"' in text
    assert 'value="drainase-tersumbat" selected' in text
    assert re.search(r'id="f-description"[^>]*aria-invalid="true"', text)
    assert row_count(session, Report) == 0


def test_a_place_outside_the_kabupaten_is_refused_with_the_reason(client, seeded, session, settings):
    response = send(client, lat=str(OUTSIDE[0]), lon=str(OUTSIDE[1]))

    assert response.status_code == 422
    message = translated("The location is outside %(region)s. Reports can only be made for places inside it.", "id")
    assert message % {"region": settings.region_name} in response.text
    assert 'href="#f-lat"' in response.text
    assert row_count(session, Report) == 0


def test_missing_location_and_bad_coordinates_are_refused(client, seeded, session):
    assert send(client, lat="", lon="").status_code == 422
    assert send(client, lat="abc", lon="102.9").status_code == 422
    assert send(client, lat="nan", lon="102.9").status_code == 422
    assert row_count(session, Report) == 0


def test_a_required_photo_and_a_file_that_is_not_an_image(client, seeded, session):
    no_photo = send(client, category="jalan-rusak")
    not_image = send(client, photos=[b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"])

    assert no_photo.status_code == 422
    assert translated("This category needs at least one photo.", "id") in no_photo.text
    assert not_image.status_code == 422 and 'href="#f-photos"' in not_image.text
    assert row_count(session, Report) == 0


def test_the_honeypot_refuses_robots(client, seeded, session):
    response = send(client, website="http://spam.example")

    assert response.status_code == 422
    assert translated("The report could not be accepted.", "id") in response.text
    assert row_count(session, Report) == 0


def test_too_many_reports_from_one_address_are_refused_with_the_form_kept(seeded, session, settings):
    strict = create_app(settings.model_copy(update={"reports_per_ip_per_hour": 1}))
    with TestClient(strict) as client:
        first = send(client)
        second = send(client, description="Laporan kedua dari alamat yang sama, masih soal saluran.")

    assert first.status_code == 201
    assert second.status_code == 429 and "retry-after" in second.headers
    assert "Laporan kedua dari alamat yang sama" in second.text
    assert row_count(session, Report) == 1


def test_the_form_needs_its_csrf_token(client, seeded, session):
    response = client.post("/lapor", data={**form_fields(client), "csrf_token": "forged"})

    assert response.status_code == 403
    assert row_count(session, Report) == 0


def test_a_logged_in_official_can_use_the_public_forms_too(client, staff, make_report):
    # The forms carry the login's CSRF token then, not the visitor cookie's.
    staff("pupr_staff")
    assert post_login(client, "pupr.staff").status_code == 303
    code = make_report().report.tracking_code

    sent = send(client)
    followed = client.post(
        f"/lapor/{code}/ikuti", data={"email": "staf@example.com", "csrf_token": csrf_from(client, f"/lapor/{code}")}
    )

    assert sent.status_code == 201, sent.text
    assert followed.status_code == 200


# --- tracking and the report page ---------------------------------------------------------------------------------


def test_tracking_by_code_leads_to_the_report_and_its_timeline(client, make_report):
    code = make_report().report.tracking_code

    found = client.get("/lapor/lacak", params={"kode": f" {code.lower()} "}, follow_redirects=False)
    page = client.get(found.headers["location"])
    unknown = client.get("/lapor/lacak", params={"kode": "MR-1999-000001"})

    assert found.status_code == 303 and found.headers["location"] == f"/lapor/{code}"
    assert page.status_code == 200
    assert code in page.text
    assert "Laporan diterima" in page.text  # the timeline's first entry
    assert unknown.status_code == 404
    assert translated("There is no report with that tracking code.", "id") in unknown.text


def test_report_page_shows_the_public_part_and_never_contact_or_staff(client, session, settings, staff, make_report):
    submitted = make_report(description=DESCRIPTION)
    code = submitted.report.tracking_code
    operator = staff("operator")
    service.add_note(
        session, settings=settings, report_id=submitted.report.id, note="Catatan internal rahasia", public=False,
        **act(operator),
    )  # fmt: skip
    service.dispose_report(
        session, settings=settings, report_id=submitted.report.id, agency_id=agency_id(session, "Dinas PUPR"),
        note="Diteruskan ke Dinas PUPR.", **act(operator),
    )  # fmt: skip
    session.commit()

    for locale in ("id", "en"):
        page = client.get(f"/lapor/{code}", params={"lang": locale})
        assert page.status_code == 200
        assert DESCRIPTION in page.text and ADDRESS in page.text
        assert "Diteruskan ke Dinas PUPR." in page.text and "Dinas PUPR" in page.text
        assert "Catatan internal rahasia" not in page.text
        assert operator.full_name not in page.text and operator.username not in page.text
        assert_no_contact(page.text)
        assert " WIB" in page.text
        assert 'id="report-map"' in page.text and f'data-lat="{INSIDE[0]}"' in page.text


def test_an_anonymous_report_hides_its_text_address_and_exact_place(client, make_report):
    submitted = make_report(
        description=SECRET_TEXT, address=SECRET_ADDRESS, lat=SECRET_PLACE[0], lon=SECRET_PLACE[1], anonymous=True
    )
    code = submitted.report.tracking_code

    page = client.get(f"/lapor/{code}")
    listing = client.get("/laporan")
    own = client.post(f"/lapor/{code}/lihat", data={"pin": submitted.pin, "csrf_token": csrf_from(client, "/lapor")})

    assert page.status_code == 200
    for text in (page.text, listing.text):
        assert code in text
        assert SECRET_TEXT not in text and SECRET_ADDRESS not in text
        assert str(SECRET_PLACE[0]) not in text and str(SECRET_PLACE[1]) not in text
        assert_no_contact(text)
    assert "data-approximate" in page.text
    # The reporter, with the PIN, sees their own text and place; that answer is never cached.
    assert own.status_code == 200 and own.headers["cache-control"] == "no-store"
    assert SECRET_TEXT in own.text and SECRET_ADDRESS in own.text
    assert_no_contact(own.text)


def test_a_confidential_report_needs_the_pin(client, make_report):
    submitted = make_report(description=SECRET_TEXT, confidential=True)
    code = submitted.report.tracking_code

    page = client.get(f"/lapor/{code}")
    wrong = client.post(f"/lapor/{code}/lihat", data={"pin": "AAAA2222", "csrf_token": csrf_from(client, "/lapor")})
    right = client.post(
        f"/lapor/{code}/lihat", data={"pin": submitted.pin.lower(), "csrf_token": csrf_from(client, "/lapor")}
    )
    listing = client.get("/laporan")

    assert page.status_code == 200 and 'action="/lapor/' + code + '/lihat"' in page.text
    assert SECRET_TEXT not in page.text
    assert wrong.status_code == 403 and SECRET_TEXT not in wrong.text
    assert right.status_code == 200 and SECRET_TEXT in right.text
    assert right.headers["cache-control"] == "no-store"
    assert_no_contact(right.text)
    assert code not in listing.text


def test_the_reporter_rates_and_reopens_with_the_pin(client, session, settings, staff, make_report):
    submitted = resolved_report(session, settings, staff, make_report)
    code = submitted.report.tracking_code
    page = client.get(f"/lapor/{code}")
    assert f'action="/lapor/{code}/nilai"' in page.text and f'action="/lapor/{code}/buka-kembali"' in page.text
    token = csrf_from(client, f"/lapor/{code}")

    wrong = client.post(f"/lapor/{code}/nilai", data={"pin": "AAAA2222", "rating": "4", "csrf_token": token})
    rated = client.post(
        f"/lapor/{code}/nilai",
        data={"pin": submitted.pin, "rating": "4", "comment": "Cepat ditangani", "csrf_token": token},
        follow_redirects=False,
    )
    after_rating = client.get(rated.headers["location"])
    no_reason = client.post(
        f"/lapor/{code}/buka-kembali", data={"pin": submitted.pin, "reason": "", "csrf_token": token}
    )
    reopened = client.post(
        f"/lapor/{code}/buka-kembali",
        data={"pin": submitted.pin, "reason": "Tersumbat lagi setelah hujan.", "csrf_token": token},
        follow_redirects=False,
    )
    after_reopen = client.get(reopened.headers["location"])

    assert wrong.status_code == 403 and 'id="rating-error"' in wrong.text
    assert 'value="4" required checked' in wrong.text  # the choice is kept
    assert rated.status_code == 303 and "Cepat ditangani" in after_rating.text
    assert translated("Thank you for your rating.", "id") in after_rating.text
    assert no_reason.status_code == 422 and 'id="reopen-error"' in no_reason.text
    assert reopened.status_code == 303
    assert stored(session, sa.select(Report.status).where(Report.tracking_code == code)) == "ditindaklanjuti"
    assert "Tersumbat lagi setelah hujan." in after_reopen.text


def test_the_reopen_form_is_gone_after_the_window(client, session, settings, staff, make_report):
    submitted = resolved_report(session, settings, staff, make_report)
    report = session.get(Report, submitted.report.id)
    report.resolved_at = utcnow() - timedelta(days=settings.report_reopen_days + 1)
    session.commit()

    page = client.get(f"/lapor/{report.tracking_code}")

    assert "/buka-kembali" not in page.text and "/nilai" in page.text


# --- following --------------------------------------------------------------------------------------------------


def last_email(session, template: str) -> OutboxMessage:
    return stored(
        session,
        sa.select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id.desc()).limit(1),
    )


def test_follow_by_email_is_confirmed_by_a_button_not_by_the_link(client, session, settings, staff, make_report):
    submitted = make_report()
    code = submitted.report.tracking_code
    follower_email = "tetangga@example.com"

    token = csrf_from(client, "/lapor")
    asked = client.post(f"/lapor/{code}/ikuti", data={"email": follower_email, "csrf_token": token})
    again = client.post(f"/lapor/{code}/ikuti", data={"email": follower_email, "csrf_token": token})
    message = last_email(session, "report_follow_confirm")
    link = re.search(r"(/lapor/ikuti/[A-Za-z0-9_.\-]+)", message.body_text).group(1)
    opened = client.get(link)
    opened_confirmed = stored(session, sa.select(ReportFollower.confirmed_at))
    confirmed = client.post(link, data={"csrf_token": csrf_from(client, link)})

    assert asked.status_code == 200 and again.status_code == 200
    assert translated("Check your email", "id") in asked.text and asked.text == again.text
    assert message.recipient == follower_email
    assert opened.status_code == 200 and f'action="{link}"' in opened.text
    assert opened.headers["cache-control"] == "no-store"
    assert opened_confirmed is None  # opening the link (a mail scanner) confirms nothing
    assert confirmed.status_code == 200 and code in confirmed.text
    assert stored(session, sa.select(ReportFollower.confirmed_at)) is not None

    # The next public change emails the follower, with a link to stop.
    service.verify_report(session, settings=settings, report_id=submitted.report.id, **act(staff("operator")))
    session.commit()
    update = stored(
        session,
        sa.select(OutboxMessage).where(
            OutboxMessage.template == "report_updated", OutboxMessage.recipient == follower_email
        ),
    )
    stop = re.search(r"(/lapor/berhenti/[A-Za-z0-9_.\-]+)", update.body_text).group(1)
    assert client.get(stop).status_code == 200
    assert row_count(session, ReportFollower) == 1
    stopped = client.post(stop, data={"csrf_token": csrf_from(client, stop)})
    assert stopped.status_code == 200 and row_count(session, ReportFollower) == 0
    assert client.post(stop, data={"csrf_token": csrf_from(client, stop)}).status_code == 404


def test_follow_refuses_a_bad_address_and_confidential_reports(client, make_report):
    public = make_report().report.tracking_code
    confidential = make_report(confidential=True).report.tracking_code
    token = csrf_from(client, "/lapor")

    bad = client.post(f"/lapor/{public}/ikuti", data={"email": "bukan-email", "csrf_token": token})
    hidden = client.post(f"/lapor/{confidential}/ikuti", data={"email": "a@example.com", "csrf_token": token})
    forged = client.get("/lapor/ikuti/palsu.token")
    forged_post = client.post("/lapor/ikuti/palsu.token", data={"csrf_token": csrf_from(client, "/lapor")})

    assert bad.status_code == 422 and 'id="follow-error"' in bad.text and 'value="bukan-email"' in bad.text
    assert hidden.status_code == 404
    assert forged.status_code == 200  # only a button; the token is checked when it is pressed
    assert forged_post.status_code == 404


# --- list and map -------------------------------------------------------------------------------------------------


def test_the_list_filters_and_keeps_private_things_out(client, session, settings, staff, make_report):
    drain = make_report().report.tracking_code
    bin_report = make_report(category_code="sampah-menumpuk", description="Sampah menumpuk sudah seminggu.")
    hidden = make_report(description="Laporan yang disembunyikan petugas").report
    service.hide_report(
        session, settings=settings, report_id=hidden.id, hidden=True, reason="Berisi data pribadi",
        **act(staff("admin")),
    )  # fmt: skip
    session.commit()

    everything = client.get("/laporan")
    drains = client.get("/laporan", params={"category": "drainase-tersumbat", "status": "open"})
    closed = client.get("/laporan", params={"status": "closed"})
    english = client.get("/laporan", params={"lang": "en", "since": "2000-01-01", "until": "2999-12-31"})
    nonsense = client.get("/laporan", params={"category": "tidak-ada", "status": "x", "since": "kemarin"})

    assert everything.status_code == 200
    assert drain in everything.text and bin_report.report.tracking_code in everything.text
    assert hidden.tracking_code not in everything.text
    assert drain in drains.text and bin_report.report.tracking_code not in drains.text
    assert drain not in closed.text
    assert english.status_code == 200 and "Citizen reports" in english.text and drain in english.text
    assert nonsense.status_code == 200 and drain in nonsense.text
    assert 'data-map-url="/api/v1/reports/map"' in drains.text
    assert 'data-query="category=drainase-tersumbat&amp;status=open"' in drains.text
    for page in (everything, drains, english):
        assert_no_contact(page.text)


def test_the_map_and_nearby_json_never_carry_contact_details(client, make_report):
    code = make_report().report.tracking_code

    geojson = client.get("/api/v1/reports/map", params={"bbox": "102.4,-3.7,103.7,-2.7", "zoom": 18})
    nearby = client.get(
        "/api/v1/reports/nearby", params={"category": "drainase-tersumbat", "lat": INSIDE[0], "lon": INSIDE[1]}
    )

    assert geojson.status_code == 200 and code in geojson.text
    assert nearby.status_code == 200 and code in nearby.text
    assert_no_contact(geojson.text)
    assert_no_contact(nearby.text)


# --- photos -------------------------------------------------------------------------------------------------------


def photo_ids(session, report_id: int) -> list[int]:
    return list(session.scalars(sa.select(ReportPhoto.id).where(ReportPhoto.report_id == report_id)))


def test_photos_are_served_as_jpeg_only_when_public(client, session, staff, make_report):
    public = make_report(photos=[jpeg_with_exif()]).report
    anonymous = make_report(photos=[jpeg_with_exif()], anonymous=True).report
    confidential = make_report(photos=[jpeg_with_exif()], confidential=True).report
    (public_photo,) = photo_ids(session, public.id)
    (anonymous_photo,) = photo_ids(session, anonymous.id)
    (confidential_photo,) = photo_ids(session, confidential.id)

    full = client.get(f"/media/laporan/{public_photo}.jpg")
    thumb = client.get(f"/media/laporan/{public_photo}/thumb.jpg")
    page = client.get(f"/lapor/{public.tracking_code}")

    for response in (full, thumb):
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("inline")
        assert response.headers["cache-control"].startswith("public")
        assert response.content.startswith(b"\xff\xd8\xff") and CAMERA.encode() not in response.content
    assert f'href="/media/laporan/{public_photo}.jpg"' in page.text
    assert f'src="/media/laporan/{public_photo}/thumb.jpg"' in page.text
    for photo_id in (anonymous_photo, confidential_photo, 999_999):
        assert client.get(f"/media/laporan/{photo_id}.jpg").status_code == 404
        assert client.get(f"/media/laporan/{photo_id}/thumb.jpg").status_code == 404
    assert f"/media/laporan/{anonymous_photo}" not in client.get(f"/lapor/{anonymous.tracking_code}").text

    # Staff who handle the report see it, and it is not cached for anyone else.
    staff("operator")
    assert post_login(client, "operator").status_code == 303
    staff_view = client.get(f"/media/laporan/{confidential_photo}.jpg")
    assert staff_view.status_code == 200 and staff_view.headers["cache-control"] == "private, no-store"


def test_the_reporter_sees_the_photos_of_their_confidential_report_inline(client, make_report):
    submitted = make_report(photos=[jpeg_with_exif()], confidential=True)

    own = client.post(
        f"/lapor/{submitted.report.tracking_code}/lihat",
        data={"pin": submitted.pin, "csrf_token": csrf_from(client, "/lapor")},
    )

    assert own.status_code == 200
    assert 'src="data:image/jpeg;base64,' in own.text and "/media/laporan/" not in own.text


# --- the beranda card ---------------------------------------------------------------------------------------------


def test_beranda_card_links_to_the_report_pages(client, seeded):
    page = client.get("/")

    assert page.status_code == 200
    assert 'href="/lapor"' in page.text and 'href="/laporan"' in page.text


def test_public_counts_leave_out_confidential_and_hidden_reports(session, settings, staff, make_report, app):
    make_report()
    make_report(confidential=True)
    resolved_report(session, settings, staff, make_report)
    last_month = resolved_report(session, settings, staff, make_report).report
    last_month.resolved_at = utcnow() - timedelta(days=40)
    session.commit()

    counts = service.count_public_reports(session, settings=settings)
    html = app.state.templates.get_template("dashboards/home.html").render(
        request=_FakeRequest(), current_user=None, locale="id", csrf_token="", current_path="/",
        kecamatan=[], village_total=0, map_bounds=None, boundaries_url="", kecamatan_list_url="",
        villages_chart="", reports_summary=counts,
    )  # fmt: skip

    assert counts == service.PublicReportCounts(open=1, resolved_this_month=1)
    assert f"<strong>1</strong> {translated('being handled', 'id')}" in html
    assert f"<strong>1</strong> {translated('resolved this month', 'id')}" in html


class _FakeRequest:
    """Just enough of a request for the page shell (the language switch reads the query)."""

    class _Query:
        def multi_items(self):
            return []

    query_params = _Query()
