"""A citizen on the public asset map: filters it to schools, sees the map ask for schools only and redraw, zooms to
one school, selects it, and follows the popup's links: the report form with the asset and the place filled in, and
the asset's page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from kotacerdas.accounts.service import Actor
from kotacerdas.assets import service as assets
from kotacerdas.assets.models import Asset
from kotacerdas.assets.validation import RawAsset
from kotacerdas.db import make_engine, make_sessionmaker

pytestmark = pytest.mark.e2e

SCHOOL = (-3.0712, 102.9183)  # inside Musi Rawas, near Muara Beliti
SCHOOL_NAME = "SD Negeri Uji Peta 7"


@pytest.fixture(scope="module")
def school(live_server) -> int:
    """A school, a road beside it and a bridge in the live server's database (whatever the demo seeded); the
    school's id."""
    engine = make_engine(live_server.settings)
    actor = Actor.system("e2e")
    with make_sessionmaker(engine)() as session:
        assets.seed_default_types(session, actor=actor)
        found = session.scalar(sa.select(Asset.id).where(Asset.name == SCHOOL_NAME))
        if found is None:
            lat, lon = SCHOOL
            created = assets.create_asset(
                session, settings=live_server.settings, actor=actor, by=None,
                raw=RawAsset(type="sekolah", name=SCHOOL_NAME, geometry={"type": "Point", "coordinates": [lon, lat]},
                             attributes={"jenjang": "SD"}, condition="berfungsi"),
            )  # fmt: skip
            assets.create_asset(
                session, settings=live_server.settings, actor=actor, by=None,
                raw=RawAsset(type="jalan", name="Jalan Uji Peta",
                             geometry={"type": "LineString", "coordinates": [[lon - 0.002, lat - 0.0005],
                                                                             [lon + 0.002, lat - 0.0005]]},
                             attributes={"status_jalan": "kabupaten", "permukaan": "aspal"}, condition="rusak_berat"),
            )  # fmt: skip
            assets.create_asset(
                session, settings=live_server.settings, actor=actor, by=None,
                raw=RawAsset(type="jembatan", name="Jembatan Uji Peta",
                             geometry={"type": "Point", "coordinates": [lon + 0.001, lat + 0.0008]}),
            )  # fmt: skip
            found = created.id
        session.commit()
    engine.dispose()
    return found


def map_answer(page, action, *, contains: str = ""):
    """Run `action` and return the JSON of the map request it causes (the last one, if the map asks twice)."""
    with page.expect_response(
        lambda response: "/api/v1/assets/map" in response.url and contains in response.url and response.ok
    ) as answer:
        action()
    return answer.value


def test_filter_the_map_and_open_an_asset(page, live_server, school):
    page.goto("/peta-aset")
    expect(page.locator("html")).to_have_attribute("lang", "id")
    expect(page.locator("#asset-map.leaflet-container")).to_be_visible()
    expect(page.locator("#asset-map")).to_have_attribute("data-loads", re.compile(r"[1-9]"))

    # Filter to schools: the map asks for schools only and redraws; the address keeps the filter.
    response = map_answer(page, lambda: page.locator("#filter-type").select_option("sekolah"), contains="type=sekolah")
    collection = response.json()
    assert collection["total"] >= 1
    assert {f["properties"]["type"] for f in collection["features"] if not f["properties"].get("cluster")} <= {
        "sekolah"
    }
    expect(page).to_have_url(re.compile(r"/peta-aset\?type=sekolah$"))
    expect(page.locator("[data-map-status]")).not_to_be_empty()

    # Zoom to the school: now it stands alone on the map.
    page.wait_for_function("() => window.kotacerdas && window.kotacerdas.assetMap")
    response = map_answer(
        page,
        lambda: page.evaluate("([lat, lon]) => window.kotacerdas.assetMap.setView([lat, lon], 18)", list(SCHOOL)),
        contains="zoom=18",
    )
    features = response.json()["features"]
    assert school in [f["properties"]["id"] for f in features if not f["properties"].get("cluster")]
    page.wait_for_timeout(300)  # the redraw after the answer
    point = page.evaluate(
        "([lat, lon]) => { const p = window.kotacerdas.assetMap.latLngToContainerPoint([lat, lon]);"
        " return {x: p.x, y: p.y}; }",
        list(SCHOOL),
    )
    page.locator("#asset-map").click(position=point)

    popup = page.locator(".leaflet-popup .asset-popup")
    expect(popup).to_contain_text(SCHOOL_NAME)
    report_link = popup.locator(f'[data-report-link="{school}"]')
    href = report_link.get_attribute("href")
    query = parse_qs(urlparse(href).query)
    assert urlparse(href).path == "/lapor" and query["aset"] == [str(school)]
    assert abs(float(query["lat"][0]) - SCHOOL[0]) < 1e-4 and abs(float(query["lon"][0]) - SCHOOL[1]) < 1e-4

    popup.locator(f'[data-asset-link="{school}"]').click()
    expect(page).to_have_url(re.compile(rf"/aset/{school}$"))
    expect(page.locator("h1")).to_contain_text(SCHOOL_NAME)
    assert page.errors == []


def test_the_figures_page_works_without_javascript(browser, live_server, school):
    context = browser.new_context(base_url=live_server.url, locale="id-ID", java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/kondisi-infrastruktur")
        expect(page.locator("h1")).to_be_visible()
        expect(page.locator("svg.chart").first).to_be_visible()
        expect(page.locator('table[data-table="roads"]')).to_be_visible()
        # The map page explains itself without the map.
        page.goto("/peta-aset")
        expect(page.locator("noscript, .notice").first).to_be_attached()
        expect(page.locator('a[href="/kondisi-infrastruktur"]').first).to_be_visible()
    finally:
        context.close()
