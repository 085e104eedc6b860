"""The public home (beranda) and the console home: language, map, kecamatan without JavaScript, menu by role."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import TEST_PASSWORD, post_login
from kotacerdas.accounts import service as accounts
from kotacerdas.regions import service as regions
from kotacerdas.regions.models import Region


class _Elements(HTMLParser):
    """Every start tag with its attributes, to look at a page the way a browser parses it."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def elements(html: str, tag: str, **wanted: str) -> list[dict[str, str | None]]:
    parser = _Elements()
    parser.feed(html)
    return [
        attrs for name, attrs in parser.elements if name == tag and all(attrs.get(k) == v for k, v in wanted.items())
    ]


def map_element(html: str) -> dict[str, str | None]:
    (found,) = elements(html, "div", id="region-map")
    return found


@pytest.fixture
def seeded(session, settings):
    """The built-in Musi Rawas regions (14 kecamatan, 199 desa and kelurahan), without boundaries."""
    regions.seed_builtin_regions(session, settings=settings)
    session.commit()


def log_in_as(client, session, settings, make_user, username: str, role: str) -> None:
    make_user(username, role)
    result = accounts.login(session, settings=settings, username=username, password=TEST_PASSWORD, ip="test")
    session.commit()
    _user, token = result
    client.cookies.set("kc_session", token)


def test_home_is_indonesian_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    assert '<html lang="id">' in response.text
    for text in ("Beranda", "Lewati ke konten", "Peringatan aktif", "Laporan warga", "Kondisi infrastruktur"):
        assert text in response.text
    assert "Segera hadir" in response.text
    assert "Active warnings" not in response.text


def test_home_in_english_with_lang(client):
    response = client.get("/?lang=en")
    assert '<html lang="en">' in response.text
    for text in ("Home", "Skip to content", "Active warnings", "Citizen reports", "Infrastructure condition"):
        assert text in response.text
    assert "Peringatan aktif" not in response.text


def test_language_links_keep_the_path_and_other_parameters(client):
    html = client.get("/?tab=peta&lang=id").text
    links = {attrs["hreflang"]: attrs["href"] for attrs in elements(html, "a") if attrs.get("hreflang")}
    # Query-only links: the browser keeps the current path.
    assert links == {"id": "?tab=peta&lang=id", "en": "?tab=peta&lang=en"}


def test_header_has_landmarks_skip_link_and_main_menu(client):
    html = client.get("/").text
    assert elements(html, "a", href="#main", **{"class": "skip-link"})
    assert elements(html, "main", id="main")
    hrefs = {attrs["href"] for attrs in elements(html, "a")}
    assert {"/", "/wilayah", "/opd", "/masuk"} <= hrefs
    assert "/konsol" not in hrefs
    assert elements(html, "a", href="/", **{"aria-current": "page"})


def test_home_has_the_map_with_its_configuration(client):
    html = client.get("/").text
    attrs = map_element(html)
    assert attrs["data-kecamatan-url"] == "/api/v1/regions/geojson?level=kecamatan"
    assert "/api/v1/regions/geojson?level=desa" in attrs["data-village-urls"].split()
    assert attrs["data-centroids-url"] == "/api/v1/regions?level=kecamatan&per_page=200"
    assert "data-tile-url" not in attrs  # no tiles configured: boundaries on a blank background
    assert attrs["data-text-kecamatan"] == "Kecamatan"
    assert elements(html, "link", rel="stylesheet", href="/static/vendor/leaflet/leaflet.css")
    scripts = [a["src"] for a in elements(html, "script")]
    assert scripts[0] == "/static/vendor/leaflet/leaflet.js"
    assert scripts[1].startswith("/static/js/map.js")
    assert all("defer" in a for a in elements(html, "script"))


def test_map_assets_are_served(client):
    for path in (
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/leaflet/leaflet.css",
        "/static/vendor/leaflet/images/layers.png",
        "/static/js/map.js",
        "/static/css/kotacerdas.css",
    ):
        assert client.get(path).status_code == 200, path


def test_the_urls_the_map_reads_answer(client, seeded):
    html = client.get("/").text
    attrs = map_element(html)
    for url in [attrs["data-kecamatan-url"], *attrs["data-village-urls"].split()]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.json()["type"] == "FeatureCollection"
    items = client.get(attrs["data-centroids-url"]).json()["items"]
    assert len(items) == 14
    # map.js reads these fields for the centroid dots shown when no boundaries are imported.
    assert {"code", "name"} <= set(items[0])
    assert isinstance(items[0]["centroid"]["lat"], float) and isinstance(items[0]["centroid"]["lon"], float)


def test_tiles_are_configured_only_when_set(settings):
    from fastapi.testclient import TestClient

    from kotacerdas.app import create_app

    tiled = settings.model_copy(
        update={"map_tile_url": "https://tile.example.org/{z}/{x}/{y}.png", "map_tile_attribution": "© Peta"}
    )
    with TestClient(create_app(tiled)) as client:
        attrs = map_element(client.get("/").text)
    assert attrs["data-tile-url"] == "https://tile.example.org/{z}/{x}/{y}.png"
    assert attrs["data-tile-attribution"] == "© Peta"


def test_kecamatan_are_listed_without_javascript(client, seeded):
    html = client.get("/").text
    assert re.search(r'<th scope="row">Muara Beliti</th><td>16\.05\.09</td><td class="num">\d+</td>', html)
    assert html.count('<th scope="row">') == 14
    assert "199" in html  # desa and kelurahan in all
    attrs = map_element(html)
    south, west, north, east = (float(v) for v in attrs["data-bounds"].split(","))
    assert south < -3.0 < north and west < 103 < east  # a first view around Musi Rawas


def test_home_chart_counts_villages_per_kecamatan(client, session, seeded):
    html = client.get("/").text
    svg = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart .*?</svg>', html, re.S).group(0)
    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    bars = {
        "".join(group.find("{http://www.w3.org/2000/svg}title").itertext()).split(":")[0]: float(
            group.find("{http://www.w3.org/2000/svg}rect").get("data-value")
        )
        for group in root.iter("{http://www.w3.org/2000/svg}g")
        if group.get("class") == "bar"
    }
    assert len(bars) == 14
    villages = regions.list_regions(session, parent_code="16.05.09", page=regions.PageRequest(per_page=1)).total
    assert bars["Muara Beliti"] == villages


def test_home_without_regions_says_so(client):
    html = client.get("/").text
    assert "Data wilayah belum dimuat." in html
    assert "data-bounds" not in map_element(html)


def test_region_names_are_escaped(client, session):
    session.add(Region(code="16.05.99", name="<script>x</script>", level="kecamatan", parent_code="16.05"))
    session.commit()
    html = client.get("/").text
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_console_sends_a_visitor_to_the_login_page(client):
    response = client.get("/konsol", follow_redirects=False)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/masuk"
    assert parse_qs(location.query)["next"] == ["/konsol"]


def test_console_greets_an_admin_and_shows_every_menu_item(client, session, settings, make_user):
    log_in_as(client, session, settings, make_user, "diskominfo", "admin")
    response = client.get("/konsol")
    assert response.status_code == 200
    html = response.text
    assert "Selamat datang, Diskominfo" in html
    assert "Admin (Diskominfo)" in html
    hrefs = {attrs["href"] for attrs in elements(html, "a")}
    assert {"/konsol/opd", "/konsol/pengguna", "/konsol/token", "/konsol/audit"} <= hrefs
    assert {"/konsol/sensor", "/konsol/sensor/aturan"} <= hrefs
    for later in ("Laporan", "Aset", "Peristiwa", "Perangkat sensor", "Rencana Induk"):
        assert later in html
    # The header knows who is logged in: Konsol, and Keluar as a form with the CSRF token.
    assert elements(html, "a", href="/konsol", **{"aria-current": "page"})
    (logout,) = elements(html, "form", action="/keluar")
    assert logout["method"] == "post"
    assert elements(html, "input", type="hidden", name="csrf_token")
    assert "/masuk" not in hrefs


def test_console_menu_follows_the_role(client, session, settings, make_user):
    log_in_as(client, session, settings, make_user, "operator1", "operator")
    html = client.get("/konsol?lang=en").text
    assert "You are logged in as Operator (command center/BPBD)." in html
    hrefs = {attrs["href"] for attrs in elements(html, "a")}
    assert "/konsol/token" in hrefs
    assert not {"/konsol/opd", "/konsol/pengguna", "/konsol/audit"} & hrefs


def test_console_after_logging_in_through_the_form(client, make_user):
    make_user("pimpinan1", "pimpinan")
    response = post_login(client, "pimpinan1", next_url="/konsol")
    assert response.status_code == 303
    assert response.headers["location"] == "/konsol"
    html = client.get("/konsol").text
    assert "Pimpinan (baca saja)" in html
    hrefs = {attrs["href"] for attrs in elements(html, "a")}
    assert "/konsol/audit" in hrefs and "/konsol/pengguna" not in hrefs


def test_error_page_is_translated_and_leads_home(client):
    response = client.get("/tidak-ada")
    assert response.status_code == 404
    assert "Tidak ditemukan" in response.text
    assert elements(response.text, "a", href="/")
