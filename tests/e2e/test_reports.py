"""A citizen on a phone: sends a report with a photo by tapping the map, reads the tracking code, and tracks the
report by that code; a second citizen at the same place is shown the first report to follow instead."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from kotacerdas.accounts.service import Actor
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.reports import service as reports

from .conftest import DEFAULT_TIMEOUT_MS

pytestmark = pytest.mark.e2e

PLACE = (-3.06, 102.93)  # inside Musi Rawas (Muara Beliti area)
DESCRIPTION = "Saluran air di depan pasar tersumbat sampah, air meluap ke jalan setiap hujan."
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def categories(live_server) -> None:
    """The default report categories in the live server's database (already there when the demo seeds them)."""
    engine = make_engine(live_server.settings)
    with make_sessionmaker(engine)() as session:
        reports.seed_default_categories(session, actor=Actor.system("e2e"))
        session.commit()
    engine.dispose()


@pytest.fixture
def phone(browser, live_server, categories, screenshots_dir: Path, request: pytest.FixtureRequest) -> Iterator:
    """A phone-sized, touch-screen browser that speaks Indonesian."""
    context = browser.new_context(
        base_url=live_server.url,
        locale="id-ID",
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        target = screenshots_dir / f"{request.node.name}.png"
        try:
            page.screenshot(path=str(target), full_page=True)
            print(f"\nscreenshot of the failing page ({page.url}): {target}")
        except Exception as exc:
            print(f"\nno screenshot: {exc}")
    context.close()


def photo_from_a_phone() -> bytes:
    exif = Image.Exif()
    exif[0x0110] = "Telepon Warga"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (3.0, 3.0, 36.0), "E", (102.0, 55.0, 48.0)
    out = io.BytesIO()
    Image.new("RGB", (1200, 900), (90, 110, 60)).save(out, "JPEG", quality=88, exif=exif)
    return out.getvalue()


def tap_the_map_at(page, lat: float, lon: float) -> None:
    """Tap the form's map where (lat, lon) is drawn."""
    page.wait_for_function("() => window.kotacerdas && window.kotacerdas.reportFormMap")
    point = page.evaluate(
        "([lat, lon]) => { const p = window.kotacerdas.reportFormMap.latLngToContainerPoint([lat, lon]);"
        " return {x: p.x, y: p.y}; }",
        [lat, lon],
    )
    box = page.locator("#report-location-map").bounding_box()
    assert 0 < point["x"] < box["width"] and 0 < point["y"] < box["height"], "the place is outside the map's view"
    page.locator("#report-location-map").tap(position=point)


def choose_place(page) -> None:
    page.locator("#f-category").select_option("drainase-tersumbat")
    page.locator("#report-location-map").scroll_into_view_if_needed()
    tap_the_map_at(page, *PLACE)
    # The tap filled in the coordinates and the place was looked up.
    expect(page.locator("[data-location-status]")).to_contain_text("Lokasi terpilih")
    assert abs(float(page.locator("#f-lat").input_value()) - PLACE[0]) < 0.01
    assert abs(float(page.locator("#f-lon").input_value()) - PLACE[1]) < 0.01


def test_a_citizen_reports_with_a_photo_from_a_phone_and_tracks_it(phone):
    page = phone
    page.goto("/lapor")
    expect(page.locator("html")).to_have_attribute("lang", "id")
    expect(page.get_by_role("heading", name="Laporkan masalah", level=1)).to_be_visible()
    page.wait_for_function("() => typeof window.L !== 'undefined'")

    choose_place(page)
    page.locator("#f-photos").set_input_files(
        files=[{"name": "IMG_20261127.jpg", "mimeType": "image/jpeg", "buffer": photo_from_a_phone()}]
    )
    page.locator("#f-description").fill(DESCRIPTION)
    page.get_by_role("button", name="Kirim laporan").tap()

    expect(page.get_by_role("heading", name="Laporan Anda telah terkirim")).to_be_visible()
    code = page.locator("[data-tracking-code]").inner_text().strip()
    assert re.fullmatch(r"MR-\d{4}-\d{6}", code), code
    assert re.fullmatch(r"[A-Z0-9]{8}", page.locator("[data-pin]").inner_text().strip())

    page.goto("/lapor/lacak")
    page.get_by_label("Kode pelacakan").fill(code)
    page.get_by_role("button", name="Cari laporan").tap()

    expect(page).to_have_url(re.compile(rf"/lapor/{code}$"))
    expect(page.locator("h1")).to_have_text("Saluran air/drainase tersumbat")
    expect(page.locator(".report-text").first).to_have_text(DESCRIPTION)
    expect(page.locator(".timeline li").first).to_contain_text("Laporan diterima")
    photo = page.locator(".photo-list img").first
    expect(photo).to_be_visible()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", photo.element_handle())
    expect(page.locator("#report-map.leaflet-container")).to_be_visible()
    # The page fits the phone: nothing scrolls sideways.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.errors == []

    # Someone else at the same place is offered the report to follow instead of sending it again.
    page.goto("/lapor")
    choose_place(page)
    nearby = page.locator("[data-nearby]")
    expect(nearby).to_be_visible()
    expect(nearby).to_contain_text("Laporan serupa di dekat Anda")
    expect(nearby.get_by_role("link", name=re.compile(code))).to_have_attribute("href", f"/lapor/{code}")

    # And the public map shows it.
    page.goto("/laporan")
    expect(page.locator(".report-list")).to_contain_text(code)
    expect(page.locator("#reports-map path.leaflet-interactive, #reports-map .report-cluster").first).to_be_attached()
    assert page.errors == []


def test_use_my_location_fills_in_the_place(browser, live_server, categories):
    context = browser.new_context(
        base_url=live_server.url,
        locale="id-ID",
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        geolocation={"latitude": PLACE[0], "longitude": PLACE[1], "accuracy": 20},
        permissions=["geolocation"],
    )
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        page.goto("/lapor")
        page.get_by_role("button", name="Gunakan lokasi saya").tap()

        expect(page.locator("[data-location-status]")).to_contain_text("Lokasi terpilih")
        assert page.locator("#f-lat").input_value() == f"{PLACE[0]:.6f}"
        assert page.locator("#f-lon").input_value() == f"{PLACE[1]:.6f}"
        expect(page.locator("#report-location-map .leaflet-marker-icon")).to_be_visible()
    finally:
        context.close()
