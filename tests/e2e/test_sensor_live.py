"""A citizen keeps the sensor page open; a river gauge posts a new reading through the SensorThings API: the tile's
value, time and status colour change on the open page, without a reload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.service import Actor
from kotacerdas.db import make_engine, make_sessionmaker

pytestmark = pytest.mark.e2e

ROOT = "/sensorthings/v1.1"
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture(scope="module")
def admin_token(live_server) -> str:
    """An API token of the demo's admin in the live server's database."""
    engine = make_engine(live_server.settings)
    with make_sessionmaker(engine)() as session:
        admin = accounts.get_user_by_username(session, username="admin")
        _token, plain = accounts.create_api_token(session, actor=Actor.system("e2e"), user_id=admin.id, name="e2e-s")
        session.commit()
    engine.dispose()
    return plain


def test_a_new_reading_changes_the_open_tile_without_reload(page, live_server, admin_token):
    headers = {"Authorization": f"Bearer {admin_token}"}
    now = datetime.now(UTC).replace(microsecond=0)
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10) as api:
        created = api.post(
            ROOT + "/Things",
            json={
                "name": "Pos duga air uji peramban", "description": "Uji",
                "Locations": [{"name": "Tepi sungai", "description": "", "encodingType": "application/geo+json",
                               "location": {"type": "Point", "coordinates": [102.93, -3.06]}}],
                "Datastreams": [{
                    "name": "Tinggi muka air uji", "description": "", "observationType": OM,
                    "unitOfMeasurement": {"name": "centimetre", "symbol": "cm", "definition": "ucum:cm"},
                    "properties": {"levels": {"waspada": 250, "siaga": 300, "awas": 350}},
                    "Sensor": {"name": "Radar uji", "description": "", "encodingType": "text/html", "metadata": "-"},
                    "ObservedProperty": {"name": "Tinggi muka air (uji peramban)", "definition": "https://example.org/e2e",
                                         "description": ""},
                }],
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
        datastream = api.get(created.json()["@iot.selfLink"] + "/Datastreams?$expand=ObservedProperty").json()
        datastream_id = datastream["value"][0]["@iot.id"]
        property_id = datastream["value"][0]["ObservedProperty"]["@iot.id"]

        def post(value: float, at: datetime) -> None:
            response = api.post(
                ROOT + "/Observations",
                json={"Datastream": {"@iot.id": datastream_id}, "phenomenonTime": at.isoformat(), "result": value},
            )
            assert response.status_code == 201, response.text

        post(280, now - timedelta(minutes=2))
        page.goto(f"/sensor?jenis={property_id}")
        tile = page.locator(f'[data-datastream-id="{datastream_id}"]')
        expect(tile.locator('[data-field="value"]')).to_have_text("280")
        expect(tile).to_have_attribute("data-level", "waspada")
        expect(page.locator("#sensor-live-status")).to_contain_text("Langsung")  # the stream is open
        page.evaluate("window.stillTheSamePage = true")

        post(312.5, now)
        expect(tile.locator('[data-field="value"]')).to_have_text("312,5")
        expect(tile).to_have_attribute("data-level", "siaga")
        expect(tile.locator('[data-field="status"]')).to_have_text("Siaga")
        local = now.astimezone(live_server.settings.zone).strftime("%d-%m-%Y %H:%M")
        expect(tile.locator('[data-field="time_text"]')).to_contain_text(local)
        colour = tile.evaluate("element => element.style.getPropertyValue('--tile-colour').trim()")
        assert colour == "#ef6c00"

    assert page.evaluate("window.stillTheSamePage") is True
    assert page.errors == []

    # The sensor's own page draws the two readings and keeps its tile live too.
    page.goto(f"/sensor/{datastream_id}")
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator('[data-field="value"]')).to_have_text("312,5")
    expect(page.locator("#sensor-live-status")).to_contain_text("Langsung")
    assert page.errors == []


def test_a_refused_stream_is_opened_again_later(page, live_server):
    """A server at its cap of streams answers 503, after which the browser's EventSource gives up for good: the page
    opens the stream again itself (here with its delay shortened, through an init script)."""
    page.add_init_script(
        "const later = window.setTimeout;"
        "window.setTimeout = (callback, ms, ...rest) => later(callback, ms >= 15000 ? 200 : ms, ...rest);"
    )
    asked = []

    def refuse_first(route):
        asked.append(route.request.url)
        if len(asked) == 1:
            route.fulfill(status=503, body="too many streams")
        else:
            route.continue_()

    page.route("**/sensor/live?*", refuse_first)
    page.goto("/sensor")
    expect(page.locator("#sensor-live-status")).to_contain_text("Langsung")
    assert len(asked) >= 2
