"""Event pages: the public list with its feeds announced for autodiscovery, an event's page with its timeline, and
the console where operators publish, update and end events."""

from __future__ import annotations

from conftest import TEST_ACTOR, csrf_from, post_login, row_count
from kotacerdas.events import service
from kotacerdas.events.models import Event

from .helpers import DESA, activity


def log_in(client, staff, name: str) -> None:
    user = staff(name)
    client.cookies.clear()
    client.cookies.set("kc_lang", "en")
    assert post_login(client, user.username).status_code == 303


def test_the_public_page_lists_warnings_first_and_announces_its_feeds(client, make_event):
    make_event(activity())
    make_event(title="Banjir Sungai Kelingi", level="awas")
    page = client.get("/peristiwa")

    assert page.status_code == 200
    assert page.text.index("Banjir Sungai Kelingi") < page.text.index("Posyandu dan imunisasi")
    assert '<link rel="alternate" type="application/atom+xml"' in page.text
    assert 'href="/peristiwa/cap.atom"' in page.text and 'data-stream-url="/api/v1/events/stream"' in page.text


def test_an_event_page_shows_its_timeline_and_a_draft_is_404(client, make_event, settings):
    event = make_event()
    page = client.get(f"/peristiwa/{event.id}")
    assert page.status_code == 200 and "Banjir Sungai Kelingi" in page.text and "Diterbitkan" in page.text
    settings.events_require_approval = True
    draft = make_event(title="Draf banjir")
    assert client.get(f"/peristiwa/{draft.id}").status_code == 404


def test_an_operator_publishes_updates_and_ends_an_event_from_the_console(client, staff, session):
    log_in(client, staff, "operator")
    token = csrf_from(client, "/konsol/peristiwa/baru")
    created = client.post(
        "/konsol/peristiwa/baru",
        data={
            "csrf_token": token, "category": "jalan_ditutup", "title": "Jalan Desa Mandi Aur ditutup",
            "description": "Jembatan darurat sedang diperbaiki.", "starts_at": "2026-12-01T08:00",
            "ends_at": "2026-12-02T17:00", "region_codes": [DESA], "impact_kk": "",
        },
        follow_redirects=False,
    )  # fmt: skip
    assert created.status_code == 303, created.text
    event = session.query(Event).one()
    assert event.starts_at.hour == 1  # 08:00 WIB is 01:00 UTC

    refused = client.post(
        f"/konsol/peristiwa/{event.id}",
        data={
            "csrf_token": token, "category": "jalan_ditutup", "level": "siaga", "title": "x" * 10,
            "description": "Masih ditutup.", "starts_at": "2026-12-01T08:00", "region_codes": [DESA],
        },
    )  # fmt: skip
    assert refused.status_code == 422 and "Only disasters carry an alert level" in refused.text

    ended = client.post(
        f"/konsol/peristiwa/{event.id}/selesai", data={"csrf_token": token, "note": "Jalan dibuka."},
        follow_redirects=False,
    )  # fmt: skip
    assert ended.status_code == 303
    session.rollback()  # a new snapshot: the test's read transaction began before the request's change
    assert session.get(Event, event.id).status == "selesai"


def test_the_console_is_for_publishers_only(client, staff, session):
    log_in(client, staff, "pupr_staff")
    assert client.get("/konsol/peristiwa").status_code == 403
    assert "/konsol/peristiwa" not in client.get("/konsol").text
    log_in(client, staff, "operator")
    assert 'href="/konsol/peristiwa"' in client.get("/konsol").text
    assert row_count(session, Event) == 0


def test_the_beranda_shows_active_warnings_first_and_announces_the_feeds(client, make_event, settings, staff, session):
    make_event(title="Banjir Sungai Kelingi", level="awas")
    over = make_event(title="Longsor Jalan Lintas", category="tanah_longsor")
    service.end_event(session, settings=settings, event_id=over.id, by=staff("operator"), actor=TEST_ACTOR)
    session.commit()
    home = client.get("/").text

    assert "Banjir Sungai Kelingi" in home and "Longsor Jalan Lintas" not in home
    assert home.index("Banjir Sungai Kelingi") < home.index('id="region-map"')
    assert 'href="/peristiwa/feed.atom"' in home and 'href="/peristiwa/cap.atom"' in home
