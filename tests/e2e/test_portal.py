"""The portal in a real browser: beranda with its map, the language switch, login to the console and logout."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from kotacerdas.demo import DEMO_PASSWORD

pytestmark = pytest.mark.e2e

ADMIN_FULL_NAME = "Admin Diskominfo"


def login(page, *, username: str, password: str) -> None:
    page.goto("/masuk")
    form = page.locator("form").filter(has=page.locator("input[name=username]"))
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("[type=submit]").click()
    page.wait_for_load_state()


def test_beranda_is_indonesian_with_the_map(page, live_server):
    page.goto("/")

    expect(page.locator("html")).to_have_attribute("lang", "id")
    expect(page.get_by_role("link", name="Masuk", exact=True)).to_be_visible()
    page.wait_for_function("() => typeof window.L !== 'undefined'")
    expect(page.locator(".leaflet-container")).to_be_visible()
    if live_server.boundaries_imported:
        # The imported kecamatan/desa boundaries are drawn as SVG paths in (a pane of) Leaflet's map pane.
        expect(page.locator(".leaflet-map-pane svg path").first).to_be_attached()
    assert page.errors == []


def test_language_switch_to_english_persists(page):
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "id")

    page.locator("header a[hreflang=en]").click()

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("link", name="Log in", exact=True)).to_be_visible()
    # The next page keeps English although the browser asks for Indonesian.
    page.get_by_role("link", name="Log in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/masuk"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("input[name=username]")).to_be_visible()


def test_login_shows_the_console_and_logout_ends_the_session(page):
    login(page, username="admin", password=DEMO_PASSWORD)
    expect(page).not_to_have_url(re.compile(r"/masuk"))

    page.goto("/konsol")
    expect(page).to_have_url(re.compile(r"/konsol"))
    expect(page.locator("body")).to_contain_text(ADMIN_FULL_NAME)

    page.locator("form[action='/keluar'] [type=submit]").click()
    page.wait_for_load_state()
    expect(page.get_by_role("link", name="Masuk", exact=True)).to_be_visible()
    page.goto("/konsol")
    expect(page).to_have_url(re.compile(r"/masuk"))


def test_wrong_password_stays_on_the_login_page(page):
    login(page, username="admin", password="bukan-kata-sandinya")

    expect(page).to_have_url(re.compile(r"/masuk"))
    expect(page.locator("input[name=password]")).to_be_visible()
    page.goto("/konsol")
    expect(page).to_have_url(re.compile(r"/masuk"))
