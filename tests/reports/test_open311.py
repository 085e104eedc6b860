"""Open311 GeoReport v2 at /open311/v2, exercised with a real client from PyPI (`georeport`) against a live server,
in JSON and XML: discovery, services, definitions, posting with an api_key, reading with filters, errors in the
spec's format, and the privacy rules (no contact details, anonymous and confidential reports)."""

from __future__ import annotations

import io
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
import xmltodict
from fastapi.testclient import TestClient
from georeport import GeoReport
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from conftest import TEST_ACTOR, new_api_token, row_count, running_server
from kotacerdas import storage
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.accounts.service import Actor
from kotacerdas.app import create_app
from kotacerdas.reports import service
from kotacerdas.reports.enums import ReportSource, ReportStatus
from kotacerdas.reports.models import Report, ReportPhoto

from .helpers import INSIDE, OUTSIDE, REPORTER

FORMATS = ("json", "xml")
CLIENT_CONTACT = {"first_name": "Rahmat", "last_name": "Hidayatullah", "email": "rahmat.warga@example.net",
                  "phone": "0813-5566-4433"}  # fmt: skip
SECRETS = (REPORTER["name"], REPORTER["email"], REPORTER["phone"], *CLIENT_CONTACT.values(), "Hidayatullah")
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
]  # fmt: skip


# --- fixtures and helpers --------------------------------------------------------------------------------------


@pytest.fixture
def o311_settings(settings):
    """The test settings, with the loopback media host allowed and room for many submissions."""
    return settings.model_copy(update={"media_allowed_hosts": ["127.0.0.1"], "reports_per_ip_per_hour": 1000})


@pytest.fixture
def endpoint(seeded, o311_settings) -> Iterator[str]:
    """The Open311 endpoint of a live server."""
    with running_server(create_app(o311_settings), name="open311-live") as base:
        yield f"{base}/open311/v2"


@pytest.fixture
def api_key(session, staff) -> str:
    """An API token of an operator account (a partner system's key)."""
    return new_api_token(session, staff("operator"), name="mitra-open311")


@pytest.fixture
def o311(o311_settings) -> Iterator[TestClient]:
    """An in-process client, for the error cases and the fuzzing."""
    with TestClient(create_app(o311_settings)) as client:
        yield client


def georeport(endpoint: str, settings, api_key: str | None, fmt: str) -> GeoReport:
    return GeoReport(endpoint, jurisdiction=settings.open311_jurisdiction_id, api_key=api_key, output_format=fmt)


def as_list(value) -> list:
    """xmltodict gives one repeated element as a dict and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse(response: requests.Response, fmt: str):
    """The body as the georeport client would see it (JSON, or XML through xmltodict)."""
    return response.json() if fmt == "json" else xmltodict.parse(response.content)


def requests_in(response: requests.Response, fmt: str) -> list[dict]:
    """The service requests of a list answer, read directly (georeport cannot read an empty XML list)."""
    if fmt == "json":
        return response.json()
    return as_list((xmltodict.parse(response.content)["service_requests"] or {}).get("request"))


def errors_of(response, fmt: str) -> list[dict]:
    """The spec's error list: [{"code", "description"}] or <errors><error>…; each code as an int."""
    if fmt == "json":
        assert response.headers["content-type"].startswith("application/json")
        items = response.json()
    else:
        assert response.headers["content-type"].startswith("text/xml")
        assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        items = as_list(xmltodict.parse(response.content)["errors"]["error"])
    assert items and all(item["description"] for item in items)
    return [{"code": int(item["code"]), "description": item["description"]} for item in items]


def post(endpoint: str, fmt: str, **fields) -> requests.Response:
    """A POST exactly as the spec shows it: form-encoded fields (the georeport library only reads)."""
    return requests.post(f"{endpoint}/requests.{fmt}", data=fields, timeout=30)


def submission(key: str | None, **overrides) -> dict:
    """The fields of a valid POST (a flood in Muara Beliti with the reporter's contact details), changed by
    `overrides`; a None value leaves the field out."""
    fields = {
        "api_key": key,
        "jurisdiction_id": "musirawaskab.go.id",
        "service_code": "genangan-banjir",
        "lat": str(INSIDE[0]),
        "long": str(INSIDE[1]),
        "address_string": "Jl. Lintas Sumatera km 14, depan SD Negeri 3",
        "description": "Air menggenang setinggi lutut sejak pagi, motor tidak bisa lewat.",
        "attribute[kedalaman_cm]": "45",
        "device_id": "perangkat-123",
        **CLIENT_CONTACT,
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "AcmePhone"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (3.0, 3.0, 36.0), "E", (102.0, 55.0, 48.0)
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 200)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture
def media_host() -> Iterator[str]:
    """A real HTTP server on loopback serving a photo with GPS in its EXIF, and a page that is not an image."""
    photo = jpeg_with_gps()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            body, kind = (photo, "image/jpeg") if self.path == "/foto.jpg" else (b"<html>hi</html>", "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)


def triage(staff):
    user = staff("operator")
    return {"by": user, "actor": Actor.of(user)}


def assert_w3c(value: str) -> datetime:
    """A W3C date-time with the regency's offset."""
    moment = datetime.fromisoformat(value)
    assert value.endswith("+07:00"), value
    return moment


# --- discovery and services -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery_names_the_endpoint_its_formats_and_how_to_get_a_key(endpoint, o311_settings, fmt):
    response = requests.get(f"{endpoint}/discovery.{fmt}", timeout=10)

    assert response.status_code == 200
    body = parse(response, fmt)
    if fmt == "xml":
        body = body["discovery"]
        body["endpoints"] = as_list(body["endpoints"]["endpoint"])
        for item in body["endpoints"]:
            item["formats"] = as_list(item["formats"]["format"])
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    assert body["changeset"] and body["contact"] and "/konsol/token" in body["key_service"]
    (only,) = body["endpoints"]
    assert only["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert only["url"] == f"{o311_settings.public_base_url}/open311/v2"
    assert only["type"] == "production"
    assert set(only["formats"]) == {"text/xml", "application/json"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_list_through_the_client(endpoint, o311_settings, session, fmt):
    client = georeport(endpoint, o311_settings, None, fmt)

    services = as_list(client.get_service_list())

    active = service.list_categories(session)
    assert [item["service_code"] for item in services] == [category.code for category in active]
    road = next(item for item in services if item["service_code"] == "jalan-rusak")
    drain = next(item for item in services if item["service_code"] == "drainase-tersumbat")
    # Indonesian unless the client asks otherwise; in XML every value is text.
    assert road["service_name"] == "Jalan rusak atau berlubang"
    assert road["group"] == "Jalan & Jembatan"
    assert str(road["metadata"]).lower() == "true" and str(drain["metadata"]).lower() == "false"
    assert road["type"] == "realtime"
    assert "Damaged road or pothole" in road["keywords"]


def test_service_names_follow_accept_language_or_the_locale_parameter(endpoint):
    english = requests.get(f"{endpoint}/services.json", headers={"Accept-Language": "en-US,en;q=0.9"}, timeout=10)
    by_parameter = requests.get(f"{endpoint}/services.xml?locale=en", timeout=10)
    indonesian = requests.get(f"{endpoint}/services.json", headers={"Accept-Language": "id"}, timeout=10)

    assert {item["service_name"] for item in english.json()} >= {"Damaged road or pothole", "Blocked drain"}
    assert "<service_name>Damaged road or pothole</service_name>" in by_parameter.text
    assert "<group>Roads &amp; bridges</group>" in by_parameter.text
    assert {item["service_name"] for item in indonesian.json()} >= {"Jalan rusak atau berlubang"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definition_through_the_client(endpoint, o311_settings, fmt):
    client = georeport(endpoint, o311_settings, None, fmt)

    definition = client.get_service_definition("jalan-rusak")

    assert definition["service_code"] == "jalan-rusak"
    attributes = definition["attributes"] if fmt == "json" else as_list(definition["attributes"]["attribute"])
    (attribute,) = attributes
    assert attribute["code"] == "tingkat_kerusakan"
    assert attribute["datatype"] == "singlevaluelist"
    assert str(attribute["variable"]).lower() == "true" and str(attribute["required"]).lower() == "false"
    assert int(attribute["order"]) == 1
    assert attribute["description"] == "Seberapa parah kerusakannya?"
    assert attribute["datatype_description"]
    values = attribute["values"] if fmt == "json" else as_list(attribute["values"]["value"])
    assert [value["key"] for value in values] == ["ringan", "sedang", "berat"]
    assert values[0]["name"] == "Ringan (retak, lubang kecil)"
    empty = client.get_service_definition("drainase-tersumbat")
    assert empty["service_code"] == "drainase-tersumbat" and not empty["attributes"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_or_inactive_service_code_is_404(endpoint, session, fmt):
    category = service.get_category_by_code(session, code="lainnya")
    service.update_category(session, actor=TEST_ACTOR, category_id=category.id, active=False)
    session.commit()

    for code in ("tidak-ada", "lainnya"):
        response = requests.get(f"{endpoint}/services/{code}.{fmt}", timeout=10)
        assert response.status_code == 404
        assert errors_of(response, fmt)[0]["code"] == 404
        assert code in errors_of(response, fmt)[0]["description"]
    listed = requests.get(f"{endpoint}/services.json", timeout=10).json()
    assert "lainnya" not in {item["service_code"] for item in listed}


# --- posting and reading back ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_with_api_key_then_read_it_back_through_the_client(endpoint, o311_settings, session, api_key, staff, fmt):
    client = georeport(endpoint, o311_settings, api_key, fmt)

    response = post(endpoint, fmt, **submission(client.api_key))

    assert response.status_code == 200, response.text
    created = parse(response, fmt)
    created = created[0] if fmt == "json" else created["service_requests"]["request"]
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    code = created["service_request_id"]
    assert code.startswith("MR-") and created["account_id"] is None
    assert "BPBD" in created["service_notice"] or "Badan Penanggulangan" in created["service_notice"]

    report = service.get_report_by_code(session, code=code)
    assert report.source == ReportSource.OPEN311.value
    assert report.reporter_email == CLIENT_CONTACT["email"] and report.reporter_phone == CLIENT_CONTACT["phone"]
    assert report.reporter_name == "Rahmat Hidayatullah"
    assert report.attributes == {"kedalaman_cm": 45.0}
    assert report.address == "Jl. Lintas Sumatera km 14, depan SD Negeri 3"
    audit = session.scalar(
        sa.select(AuditEntry).where(AuditEntry.action == "report.submit", AuditEntry.entity_id == str(report.id))
    )
    assert audit.actor_id == staff("operator").id and audit.actor_label == "operator"

    one = client.get_service_request(code)
    assert list(one) == REQUEST_FIELDS
    assert one["service_request_id"] == code and one["status"] == "open"
    assert one["service_code"] == "genangan-banjir" and one["service_name"] == "Genangan atau banjir"
    assert one["description"] == "Air menggenang setinggi lutut sejak pagi, motor tidak bisa lewat."
    assert one["address"] == "Jl. Lintas Sumatera km 14, depan SD Negeri 3"
    assert float(one["lat"]) == pytest.approx(INSIDE[0]) and float(one["long"]) == pytest.approx(INSIDE[1])
    assert one["agency_responsible"] and one["service_notice"]
    assert abs(assert_w3c(one["requested_datetime"]) - report.created_at) < timedelta(seconds=1)
    assert_w3c(one["updated_datetime"])
    assert one["expected_datetime"] is None  # no resolution deadline until it is disposed
    assert one["media_url"] is None and one["zipcode"] is None and one["address_id"] is None

    listed = as_list(client.get_service_requests(service_request_id=code))
    assert [item["service_request_id"] for item in listed] == [code]
    filtered = as_list(client.get_service_requests(service_code="genangan-banjir,jalan-rusak", status="open"))
    assert code in [item["service_request_id"] for item in filtered]
    token = requests.get(f"{endpoint}/tokens/{code}.{fmt}", timeout=10)
    resolved = token.json()[0] if fmt == "json" else xmltodict.parse(token.content)["service_requests"]["request"]
    assert resolved == {"service_request_id": code, "token": code}
    for body in (response.text, token.text):
        assert not any(secret in body for secret in SECRETS)


def test_statuses_map_to_open_and_closed_with_notes_and_the_sla(endpoint, o311_settings, session, make_report, staff):
    disposed = make_report()
    closed = make_report(category_code="sampah-menumpuk")
    service.dispose_report(session, settings=o311_settings, report_id=disposed.report.id, agency_id=None,
                           note="Diteruskan ke Dinas PUPR untuk ditangani.", **triage(staff))  # fmt: skip
    service.close_report(session, settings=o311_settings, report_id=closed.report.id, outcome="not_authority",
                         reason="Lokasi ini jalan nasional, wewenang BPJN.", **triage(staff))  # fmt: skip
    session.commit()
    client = georeport(endpoint, o311_settings, None, "json")

    open_one = client.get_service_request(disposed.report.tracking_code)
    closed_one = client.get_service_request(closed.report.tracking_code)

    assert open_one["status"] == "open"
    assert open_one["status_notes"] == "Diteruskan ke Dinas PUPR untuk ditangani."
    assert abs(assert_w3c(open_one["expected_datetime"]) - disposed.report.resolve_due_at) < timedelta(seconds=1)
    assert closed_one["status"] == "closed"
    assert closed_one["status_notes"] == "Lokasi ini jalan nasional, wewenang BPJN."
    assert closed_one["expected_datetime"] is None
    assert assert_w3c(closed_one["updated_datetime"]) >= assert_w3c(closed_one["requested_datetime"])
    only_closed = client.get_service_requests(status="closed")
    assert [item["service_request_id"] for item in only_closed] == [closed.report.tracking_code]
    both = client.get_service_requests(status="open,closed")
    assert {item["service_request_id"] for item in both} == {disposed.report.tracking_code, closed.report.tracking_code}
    # Each ReportStatus has its Open311 status.
    assert {status.open311 for status in ReportStatus} == {"open", "closed"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_list_filters_dates_ids_and_newest_first(endpoint, o311_settings, make_report, fmt):
    now = datetime.now(UTC)
    old = make_report(now=now - timedelta(days=120))
    recent_drain = make_report(now=now - timedelta(days=10))
    recent_rubbish = make_report(category_code="sampah-menumpuk", now=now - timedelta(days=5))
    newest = make_report(now=now - timedelta(hours=1))
    client = georeport(endpoint, o311_settings, None, fmt)

    def ids(**filters) -> list[str]:
        return [item["service_request_id"] for item in as_list(client.get_service_requests(**filters))]

    # The last 90 days by default, newest first.
    assert ids() == [newest.report.tracking_code, recent_rubbish.report.tracking_code,
                     recent_drain.report.tracking_code]  # fmt: skip
    assert ids(service_code="sampah-menumpuk") == [recent_rubbish.report.tracking_code]
    window = {
        "start_date": (now - timedelta(days=130)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_date": (now - timedelta(days=50)).astimezone(o311_settings.zone).isoformat(timespec="seconds"),
    }
    assert ids(**window) == [old.report.tracking_code]
    assert ids(start_date=(now - timedelta(days=7)).date().isoformat()) == [
        newest.report.tracking_code, recent_rubbish.report.tracking_code
    ]  # fmt: skip
    # service_request_id overrides every other filter, even the date range.
    assert set(
        ids(service_request_id=f"{old.report.tracking_code},{newest.report.tracking_code.lower()}", status="closed")
    ) == {old.report.tracking_code, newest.report.tracking_code}


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "90"),
        ("start_date=2026-03-01T00:00:00Z&end_date=2026-02-01T00:00:00Z", "end_date"),
        ("start_date=kemarin", "start_date"),
        ("end_date=2026-01-01T10:00:00", "end_date"),  # a time without its zone
        ("end_date=2026-02-30", "end_date"),
        ("status=pending", "pending"),
        ("service_code=tidak-ada", "tidak-ada"),
    ],
)
def test_bad_filters_are_400_in_the_spec_format(o311, seeded, query, fragment):
    for fmt in FORMATS:
        response = o311.get(f"/open311/v2/requests.{fmt}?{query}")
        assert response.status_code == 400, response.text
        (error,) = errors_of(response, fmt)
        assert error["code"] == 400 and fragment in error["description"]


def test_a_plus_sent_unencoded_still_reads_as_an_offset(o311, seeded, make_report):
    make_report()
    day = datetime.now(UTC).astimezone(o311.app.state.settings.zone).date().isoformat()

    response = o311.get(f"/open311/v2/requests.json?start_date={day}T00:00:00+07:00")

    assert response.status_code == 200 and len(response.json()) == 1


def test_at_most_1000_newest_requests(o311, session, make_report):
    template = make_report().report
    base = template.created_at
    columns = {column.key: getattr(template, column.key) for column in Report.__table__.columns if column.key != "id"}
    session.execute(
        sa.insert(Report),
        [
            {**columns, "tracking_code": f"MR-2025-{index:06d}", "created_at": base - timedelta(minutes=index)}
            for index in range(1, 1001)
        ],
    )
    session.commit()

    listed = o311.get("/open311/v2/requests.json").json()

    assert len(listed) == 1000
    assert listed[0]["service_request_id"] == template.tracking_code
    assert listed[-1]["service_request_id"] == "MR-2025-000999"
    assert [item["requested_datetime"] for item in listed] == sorted(
        (item["requested_datetime"] for item in listed), reverse=True
    )


# --- privacy ------------------------------------------------------------------------------------------------------


def test_anonymous_report_shows_neither_text_nor_address_nor_exact_place(
    endpoint, o311_settings, session, make_report, staff
):
    photo = jpeg_with_gps()
    anonymous = make_report(anonymous=True, photos=[photo])
    named = make_report(photos=[photo])
    client = georeport(endpoint, o311_settings, None, "xml")

    shown = client.get_service_request(anonymous.report.tracking_code)
    named_shown = client.get_service_request(named.report.tracking_code)

    report = anonymous.report
    assert shown["description"] is None and shown["address"] is None
    assert (float(shown["lat"]), float(shown["long"])) == (report.public_lat, report.public_lon)
    assert (report.public_lat, report.public_lon) != (report.lat, report.lon)
    assert shown["media_url"] is None  # the photo sent with an anonymous report stays private
    photo_id = session.scalar(sa.select(ReportPhoto.id).where(ReportPhoto.report_id == named.report.id))
    assert named_shown["media_url"] == f"{o311_settings.public_base_url}/media/laporan/{photo_id}.jpg"
    assert named_shown["description"] == named.report.description


def test_confidential_and_hidden_reports_are_never_listed_nor_found(endpoint, o311_settings, session, make_report,
                                                                    staff):  # fmt: skip
    confidential = make_report(confidential=True)
    hidden = make_report()
    shown = make_report()
    service.hide_report(session, settings=o311_settings, report_id=hidden.report.id, hidden=True,
                        reason="Berisi data pribadi.", **triage(staff))  # fmt: skip
    session.commit()
    secret_codes = (confidential.report.tracking_code, hidden.report.tracking_code)

    for fmt in FORMATS:
        client = georeport(endpoint, o311_settings, None, fmt)
        listed = as_list(client.get_service_requests())
        assert [item["service_request_id"] for item in listed] == [shown.report.tracking_code]
        # (georeport cannot read an empty XML list: it indexes into the empty <service_requests/>.)
        by_id = requests.get(f"{endpoint}/requests.{fmt}", params={"service_request_id": ",".join(secret_codes)})
        assert by_id.status_code == 200 and requests_in(by_id, fmt) == []
        for code in secret_codes:
            for path in (f"requests/{code}", f"tokens/{code}"):
                response = requests.get(f"{endpoint}/{path}.{fmt}", timeout=10)
                assert response.status_code == 404
                assert errors_of(response, fmt)[0]["code"] == 404
            with pytest.raises(requests.HTTPError):
                client.get_service_request(code)


def test_no_open311_answer_carries_the_reporters_contact_details(endpoint, session, make_report, api_key):
    """Every kind of answer, in both formats: the reporter's name, email and phone never appear."""
    make_report()
    make_report(anonymous=True)
    bodies = []
    for fmt in FORMATS:
        created = post(endpoint, fmt, **submission(api_key))
        bodies.append(created.text)
        code = parse(created, fmt)
        code = code[0]["service_request_id"] if fmt == "json" else code["service_requests"]["request"][
            "service_request_id"]  # fmt: skip
        for path in ("discovery", "services", "services/genangan-banjir", "requests", f"requests/{code}",
                     f"tokens/{code}", "requests/MR-1999-000001", "tidak-ada"):  # fmt: skip
            bodies.append(requests.get(f"{endpoint}/{path}.{fmt}", timeout=10).text)
        bodies.append(requests.get(f"{endpoint}/requests.{fmt}?service_request_id={code}", timeout=10).text)
        bodies.append(post(endpoint, fmt, **submission(api_key, lat=str(OUTSIDE[0]), long=str(OUTSIDE[1]))).text)
    everything = "\n".join(bodies)
    assert "MR-" in everything and "Genangan" in everything
    for secret in SECRETS:
        assert secret not in everything
    assert "perangkat-123" not in everything  # device_id is not kept either
    assert session.scalar(sa.select(sa.func.count()).select_from(Report).where(Report.reporter_email.is_not(None)))


def test_public_rows_follow_the_same_rules_as_public_report(session, settings, make_report, staff):
    reports = [make_report().report, make_report(anonymous=True).report, make_report(category_code="pju-mati").report]
    service.close_report(session, settings=settings, report_id=reports[2].id, outcome="reject",
                         reason="Laporan tidak jelas.", **triage(staff))  # fmt: skip
    session.commit()

    for locale in ("id", "en"):
        rows = {row.tracking_code: row for row in service.public_rows(session, settings=settings, locale=locale)}
        for report in reports:
            full = service.public_report(session, settings=settings, report=report, locale=locale)
            row = rows[report.tracking_code]
            for field in ("category_code", "category_name", "status", "description", "address", "lat", "lon",
                          "location_approximate", "agency"):  # fmt: skip
                assert getattr(row, field) == getattr(full, field), field
            for field in ("created_at", "updated_at", "expected_at"):  # W3C text in the regency's zone
                value = getattr(full, field)
                expected = value.astimezone(settings.zone).isoformat(timespec="seconds") if value else None
                assert getattr(row, field) == expected, field


# --- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_wrong_or_revoked_api_key_is_403(endpoint, session, staff, api_key, fmt):
    revoked = new_api_token(session, staff("operator"), name="lama")
    token_row = next(
        row for row in accounts.list_api_tokens(session, user_id=staff("operator").id) if row.name == "lama"
    )
    accounts.revoke_api_token(session, actor=TEST_ACTOR, token_id=token_row.id)
    session.commit()

    for key in (None, "kc_bukan-token-yang-benar", revoked):
        response = post(endpoint, fmt, **submission(api_key, api_key=key))
        assert response.status_code == 403, response.text
        (error,) = errors_of(response, fmt)
        assert error["code"] == 403 and "api_key" in error["description"]
    assert row_count(session, Report) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_api_key_in_the_url_is_refused(endpoint, session, api_key, fmt):
    response = requests.post(
        f"{endpoint}/requests.{fmt}?api_key={quote(api_key)}", data=submission(api_key, api_key=None), timeout=10
    )
    read = requests.get(f"{endpoint}/requests.{fmt}?api_key={quote(api_key)}", timeout=10)

    for answer in (response, read):
        assert answer.status_code == 400
        assert "URL" in errors_of(answer, fmt)[0]["description"]
    assert row_count(session, Report) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_or_missing_service_code_on_post(endpoint, session, api_key, fmt):
    unknown = post(endpoint, fmt, **submission(api_key, service_code="tidak-ada"))
    missing = post(endpoint, fmt, **submission(api_key, service_code=None))

    assert unknown.status_code == 404 and "tidak-ada" in errors_of(unknown, fmt)[0]["description"]
    assert missing.status_code == 400 and "service_code" in errors_of(missing, fmt)[0]["description"]
    assert row_count(session, Report) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_jurisdictions_are_404_on_every_call(endpoint, session, api_key, fmt):
    for path in ("discovery", "services", "services/jalan-rusak", "requests", "tokens/MR-2026-000001"):
        response = requests.get(f"{endpoint}/{path}.{fmt}?jurisdiction_id=sfgov.org", timeout=10)
        assert response.status_code == 404
        assert "sfgov.org" in errors_of(response, fmt)[0]["description"]
    posted = post(endpoint, fmt, **submission(api_key, jurisdiction_id="sfgov.org"))
    assert posted.status_code == 404 and errors_of(posted, fmt)[0]["code"] == 404
    # Absent or empty is this jurisdiction, as the spec's optional arguments say.
    assert requests.get(f"{endpoint}/services.{fmt}?jurisdiction_id=", timeout=10).status_code == 200
    assert row_count(session, Report) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_place_outside_the_kabupaten_is_400_with_a_description(endpoint, session, api_key, fmt):
    response = post(endpoint, fmt, **submission(api_key, lat=str(OUTSIDE[0]), long=str(OUTSIDE[1])))

    assert response.status_code == 400
    (error,) = errors_of(response, fmt)
    assert "Kabupaten Musi Rawas" in error["description"] and "lat/long" in error["description"]
    assert row_count(session, Report) == 0


def test_the_location_must_be_lat_and_long(endpoint, session, api_key):
    only_address = post(endpoint, "json", **submission(api_key, lat=None, long=None))
    half = post(endpoint, "json", **submission(api_key, long=None))
    garbage = post(endpoint, "xml", **submission(api_key, lat="tiga", long="nan"))

    assert "address_string" in errors_of(only_address, "json")[0]["description"]
    for response in (only_address, half, garbage):
        assert response.status_code == 400
    assert row_count(session, Report) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_required_attribute_is_400(endpoint, session, api_key, fmt):
    category = service.get_category_by_code(session, code="pju-mati")
    attributes = [{**category.attributes[0], "required": True}]
    service.update_category(session, actor=TEST_ACTOR, category_id=category.id, attributes=attributes)
    session.commit()
    fields = submission(api_key, service_code="pju-mati", **{"attribute[kedalaman_cm]": None})

    missing = post(endpoint, fmt, **fields)
    choice = {"attribute[kedalaman_cm]": None, "attribute[tingkat_kerusakan]": "parah"}
    wrong_choice = post(endpoint, fmt, **submission(api_key, service_code="jalan-rusak", **choice))
    answered = post(endpoint, fmt, **{**fields, "attribute[nomor_tiang]": "PJU-0457"})

    assert missing.status_code == 400
    assert "attribute[nomor_tiang]" in errors_of(missing, fmt)[0]["description"]
    assert wrong_choice.status_code == 400
    assert answered.status_code == 200, answered.text
    assert row_count(session, Report) == 1


def test_multivaluelist_attributes_arrive_as_lists(endpoint, session, api_key):
    category = service.get_category_by_code(session, code="sampah-menumpuk")
    choices = [{"key": key, "name_id": key.title()} for key in ("plastik", "organik", "b3")]
    service.update_category(session, actor=TEST_ACTOR, category_id=category.id, attributes=[
        {"code": "jenis", "datatype": "multivaluelist", "description_id": "Jenis sampah", "values": choices}
    ])  # fmt: skip
    session.commit()
    body = "&".join(
        f"{key}={quote(value)}"
        for key, value in [
            *submission(api_key, service_code="sampah-menumpuk", **{"attribute[kedalaman_cm]": None}).items(),
            ("attribute[jenis][]", "plastik"),
            ("attribute[jenis][]", "b3"),
        ]
    )

    response = requests.post(f"{endpoint}/requests.json", data=body, timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})  # fmt: skip

    assert response.status_code == 200, response.text
    report = service.get_report_by_code(session, code=response.json()[0]["service_request_id"])
    assert report.attributes == {"jenis": ["plastik", "b3"]}


def test_media_url_is_fetched_from_an_allowed_host_and_stripped_of_metadata(
    endpoint, o311_settings, session, api_key, media_host
):
    response = post(endpoint, "json", **submission(api_key, media_url=f"{media_host}/foto.jpg"))

    assert response.status_code == 200, response.text
    report = service.get_report_by_code(session, code=response.json()[0]["service_request_id"])
    photo = session.scalar(sa.select(ReportPhoto).where(ReportPhoto.report_id == report.id))
    stored = storage.open_upload(o311_settings, photo.file_key).read_bytes()
    assert b"Exif" not in stored and b"AcmePhone" not in stored
    assert not Image.open(io.BytesIO(stored)).getexif()
    shown = requests.get(f"{endpoint}/requests/{report.tracking_code}.json", timeout=10).json()[0]
    assert shown["media_url"] == f"{o311_settings.public_base_url}/media/laporan/{photo.id}.jpg"
    assert media_host not in shown["media_url"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_media_url_from_another_host_or_not_an_image_is_400(endpoint, session, api_key, media_host, fmt):
    elsewhere = post(endpoint, fmt, **submission(api_key, media_url="http://gambar.example.org/foto.jpg"))
    page = post(endpoint, fmt, **submission(api_key, media_url=f"{media_host}/halaman.html"))

    assert elsewhere.status_code == 400
    description = errors_of(elsewhere, fmt)[0]["description"]
    assert "media_url" in description and "gambar.example.org" in description
    assert page.status_code == 400 and "media_url" in errors_of(page, fmt)[0]["description"]
    assert row_count(session, Report) == 0
    assert row_count(session, ReportPhoto) == 0


def test_a_required_photo_without_media_url_is_400(endpoint, session, api_key):
    response = post(endpoint, "json", **submission(api_key, service_code="jalan-rusak",
                                                   **{"attribute[kedalaman_cm]": None}))  # fmt: skip

    assert response.status_code == 400
    assert "media_url" in errors_of(response, "json")[0]["description"]


def test_errors_are_in_the_requests_language(o311, seeded, api_key):
    fields = submission(api_key, lat=str(OUTSIDE[0]), long=str(OUTSIDE[1]))
    indonesian = o311.post("/open311/v2/requests.json", data=fields)
    english = o311.post("/open311/v2/requests.json", data=fields, headers={"Accept-Language": "en"})

    assert "di luar" in indonesian.json()[0]["description"]
    assert "outside" in english.json()[0]["description"]


def test_unreadable_bodies_and_wrong_paths_answer_in_the_spec_format(o311, seeded, session, api_key):
    big = o311.post("/open311/v2/requests.json", data={"api_key": api_key, "description": "x" * 100_000})
    as_json = o311.post("/open311/v2/requests.xml", json=submission(api_key))
    wrong_method = o311.delete("/open311/v2/services.json")
    nowhere = o311.get("/open311/v2/laporan.xml")
    bad_format = o311.get("/open311/v2/services.html")

    assert big.status_code == 400 and errors_of(big, "json")
    assert as_json.status_code == 400 and "x-www-form-urlencoded" in errors_of(as_json, "xml")[0]["description"]
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    assert errors_of(wrong_method, "json")[0]["code"] == 405
    assert nowhere.status_code == 404 and errors_of(nowhere, "xml")
    assert bad_format.status_code == 404 and errors_of(bad_format, "xml")
    assert row_count(session, Report) == 0


def test_xml_stays_well_formed_whatever_the_stored_text(o311, session, make_report):
    code = make_report().report.tracking_code
    # Text that came in before today's checks, or straight into the database: markup, a CDATA end, control
    # characters and a non-character, none of which XML 1.0 can carry as they are.
    text = "Jalan <rusak> & \"licin\" ]]> 'di' tikungan \x01\x08\x0b \ufffe 🚧"
    session.execute(sa.update(Report).where(Report.tracking_code == code).values(description=text, address="<a/>"))
    session.commit()

    for path in ("requests.xml", f"requests/{code}.xml"):
        response = o311.get(f"/open311/v2/{path}")
        assert response.status_code == 200
        request = ET.fromstring(response.content).find("request")
        assert request.findtext("description").startswith("Jalan <rusak> & \"licin\" ]]> 'di' tikungan")
        assert request.findtext("description").endswith("🚧")
        assert request.findtext("address") == "<a/>"
    assert o311.get(f"/open311/v2/requests/{code}.json").json()[0]["description"] == text


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        ["requests", "services", "discovery", "services/jalan-rusak", "requests/MR-2026-000001", "tokens/x"]
    ),  # fmt: skip
    fmt=st.sampled_from(FORMATS),
    params=st.dictionaries(
        st.sampled_from(
            [
                "service_request_id",
                "service_code",
                "start_date",
                "end_date",
                "status",
                "jurisdiction_id",
                "locale",
                "page",
            ]
        ),  # fmt: skip
        st.text(max_size=40),
        max_size=4,
    ),
)
def test_any_query_gets_an_answer_in_the_spec_format_never_a_server_error(o311, seeded, path, fmt, params):
    response = o311.get(f"/open311/v2/{path}.{fmt}", params=params)

    assert response.status_code in (200, 400, 404), response.text
    if response.status_code == 200:
        parse(response, fmt)
    else:
        errors_of(response, fmt)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(
        st.sampled_from(["service_code", "lat", "long", "address_string", "description", "email", "phone",
                         "first_name", "attribute[kedalaman_cm]", "attribute[x][]", "media_url", "locale"]),
        st.text(max_size=60),
        max_size=6,
    )
)  # fmt: skip
def test_any_post_gets_an_answer_in_the_spec_format_never_a_server_error(o311, seeded, api_key, fields):
    response = o311.post("/open311/v2/requests.json", data={"api_key": api_key, **fields})

    assert response.status_code in (200, 400, 404), response.text
    if response.status_code != 200:
        errors_of(response, "json")


def test_the_submission_rate_limit_answers_429_with_retry_after(seeded, settings, session, api_key):
    strict = settings.model_copy(update={"reports_per_ip_per_hour": 1})
    with TestClient(create_app(strict)) as client:
        first = client.post("/open311/v2/requests.json", data=submission(api_key))
        second = client.post("/open311/v2/requests.xml", data=submission(api_key))

    assert first.status_code == 200, first.text
    assert second.status_code == 429 and second.headers["retry-after"]
    assert errors_of(second, "xml")[0]["code"] == 429
    assert row_count(session, Report) == 1
