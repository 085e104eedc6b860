"""The public asset map API (filters, RFC 7946 GeoJSON, bad input as problem+json), the indicators API, and the pages
/peta-aset and /kondisi-infrastruktur in both languages (the indicators page without any script)."""

from __future__ import annotations

import math
import re
from datetime import date

import pytest
from babel.numbers import format_decimal

from conftest import assert_problem
from kotacerdas.assets.enums import Condition

from .helpers import INSIDE, agency_id, line, point

BBOX = "102.0,-4.0,104.0,-2.5"
ROAD = {"status_jalan": "kabupaten", "permukaan": "aspal"}


@pytest.fixture
def assets(make_asset):
    """A bridge in good condition, a kabupaten road in Sedang condition, a school not working, a light not inspected."""
    return {
        "bridge": make_asset(condition="baik", condition_on=date(2026, 5, 2)),
        "road": make_asset(type="jalan", name="Jalan Poros", geometry=line(), attributes=ROAD, condition="sedang"),
        "school": make_asset(
            type="sekolah",
            name="SD Negeri 3",
            attributes={"jenjang": "SD"},
            condition="tidak_berfungsi",
            geometry=point(lon=INSIDE[1] + 0.01),
        ),  # fmt: skip
        "light": make_asset(type="pju", name="PJU Pasar", attributes={}, geometry=point(lon=INSIDE[1] + 0.02)),
    }


def check_geojson(body: dict) -> None:
    """The parts of RFC 7946 a map client relies on: a FeatureCollection of Features with valid geometries."""
    assert body["type"] == "FeatureCollection" and isinstance(body["features"], list)

    def position(value) -> None:
        assert isinstance(value, list) and len(value) == 2
        lon, lat = value
        assert -180 <= lon <= 180 and -90 <= lat <= 90 and math.isfinite(lon) and math.isfinite(lat)

    for feature in body["features"]:
        assert feature["type"] == "Feature" and isinstance(feature["properties"], dict)
        geometry = feature["geometry"]
        if geometry["type"] == "Point":
            position(geometry["coordinates"])
        elif geometry["type"] == "LineString":
            assert len(geometry["coordinates"]) >= 2
            for item in geometry["coordinates"]:
                position(item)
        else:
            assert geometry["type"] == "MultiLineString"
            for part in geometry["coordinates"]:
                assert len(part) >= 2
                for item in part:
                    position(item)


def shown(client, **params) -> set[int]:
    response = client.get("/api/v1/assets/map", params={"bbox": BBOX, "zoom": 12, **params})
    assert response.status_code == 200, response.text
    return {f["properties"]["id"] for f in response.json()["features"]}


def test_the_map_api_answers_geojson(client, assets):
    response = client.get("/api/v1/assets/map", params={"bbox": BBOX, "zoom": 14})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    check_geojson(body)
    assert body["total"] == 4
    by_id = {f["properties"]["id"]: f for f in body["features"]}
    road = by_id[assets["road"].id]
    assert road["geometry"]["type"] == "LineString"
    assert road["properties"] == {
        "id": assets["road"].id,
        "type": "jalan",
        "name": "Jalan Poros",
        "condition": "sedang",
        "colour": Condition.SEDANG.colour,
        "kind": "line",
    }
    assert by_id[assets["light"].id]["properties"]["condition"] is None


def test_the_map_api_filters(client, session, assets):
    ids = {name: asset.id for name, asset in assets.items()}
    assert shown(client) == set(ids.values())
    assert shown(client, type="sekolah") == {ids["school"]}
    assert shown(client, type="sekolah,jalan") == {ids["school"], ids["road"]}
    assert shown(client, type=["sekolah", "pju"]) == {ids["school"], ids["light"]}
    assert shown(client, condition="unknown") == {ids["light"]}
    assert shown(client, condition=["baik", "sedang"]) == {ids["bridge"], ids["road"]}
    assert shown(client, kecamatan=assets["bridge"].kecamatan_code) >= {ids["bridge"]}
    assert shown(client, kecamatan="16.05.99") == set()
    assert shown(client, agency=agency_id(session, "Dinas PUPR")) == {ids["bridge"], ids["road"]}
    assert shown(client, agency=agency_id(session, "Dishub"), condition="unknown") == {ids["light"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "102,-4,104", "zoom": 10}, "bbox"),
        ({"bbox": "abc,-4,104,-2", "zoom": 10}, "bbox"),
        ({"bbox": "104,-4,102,-2", "zoom": 10}, "bbox"),
        ({"bbox": "102,-4,104,-2", "zoom": 23}, "zoom"),
        ({"bbox": "102,-4,104,-2"}, "zoom"),
        ({"bbox": BBOX, "zoom": 10, "type": "kapal"}, "type"),
        ({"bbox": BBOX, "zoom": 10, "condition": "hancur"}, "condition"),
        ({"bbox": BBOX, "zoom": 10, "agency": "pupr"}, "agency"),
        ({"bbox": BBOX, "zoom": 10, "type": ",".join(["jalan"] * 50)}, "type"),
    ],
)
def test_bad_map_requests_are_problems(client, seeded, params, field):
    body = assert_problem(client.get("/api/v1/assets/map", params=params), 422)
    assert field in {error["field"] for error in body["errors"]}


def test_the_indicators_api(client, assets):
    response = client.get("/api/v1/assets/indicators")
    assert response.status_code == 200
    body = response.json()
    assert body["road_status"] == "kabupaten"
    roads = body["roads"]
    assert roads["km"]["sedang"] == pytest.approx(assets["road"].length_km) and roads["mantap_pct"] == 100.0
    assert {row["key"] for row in body["facilities_by_type"]} == {"sekolah", "pju"}
    assert body["facilities"]["functioning_pct"] == 0.0 and body["facilities"]["not_inspected"] == 1
    assert body["stale"]["total"] == 4 and body["stale"]["never_inspected"] == 1
    assert date.fromisoformat(body["as_of"])
    # The names come in the asked language.
    english = client.get("/api/v1/assets/indicators", params={"lang": "en"}).json()
    assert {row["name"] for row in english["facilities_by_type"]} == {"School", "Street light"}


@pytest.mark.parametrize("locale", ["id", "en"])
def test_the_map_page_renders_in_both_languages(client, assets, locale):
    response = client.get("/peta-aset", params={"lang": locale})
    assert response.status_code == 200
    text = response.text
    assert f'<html lang="{locale}">' in text
    assert 'id="asset-map"' in text and 'data-map-url="/api/v1/assets/map"' in text
    assert "/static/js/asset-map.js" in text and "/static/vendor/leaflet/leaflet.js" in text
    # A form that works without the script, one layer per type, and a legend with every condition's colour.
    assert re.search(r'<form[^>]+method="get" action="/peta-aset"', text)
    for name in ("type", "condition", "kecamatan", "agency"):
        assert f'name="{name}"' in text
    assert "&#34;code&#34;: &#34;jalan&#34;" in text or '"code": "jalan"' in text
    for condition in Condition:
        assert condition.colour in text
    assert 'href="/kondisi-infrastruktur"' in text


def test_the_map_page_keeps_known_filters_only(client, assets):
    text = client.get("/peta-aset", params={"type": "sekolah", "condition": "hancur", "kecamatan": "x"}).text
    assert re.search(r'<option value="sekolah" selected>', text)
    assert 'data-query="type=sekolah"' in text


@pytest.mark.parametrize("locale", ["id", "en"])
def test_the_indicators_page_needs_no_script(client, assets, locale):
    response = client.get("/kondisi-infrastruktur", params={"lang": locale})
    assert response.status_code == 200
    text = response.text
    assert f'<html lang="{locale}">' in text
    assert "<script" not in text  # charts and tables are drawn on the server
    assert text.count("<svg") >= 6 and 'role="img"' in text
    # The key figures, written in the page's language: 100 % mantap, 0 % of the inspected facilities working.
    assert re.search(r'data-indicator="mantap"><strong>100%</strong>', text)
    road_km = format_decimal(round(assets["road"].length_km, 2), format="#,##0.##", locale=locale)
    assert re.search(rf'data-indicator="road-length"><strong>{re.escape(road_km)} km</strong>', text)
    assert 'data-table="roads"' in text and 'data-table="stale"' in text
    assert "Jalan Poros" not in text  # figures, not a list of assets


def test_the_menu_links_the_map_and_the_figures(client, seeded):
    text = client.get("/").text
    assert 'href="/peta-aset"' in text and 'href="/kondisi-infrastruktur"' in text
    page = client.get("/kondisi-infrastruktur").text
    assert re.search(r'<a href="/kondisi-infrastruktur" aria-current="page">', page)


def test_the_pages_work_on_an_empty_registry(client, seeded):
    assert client.get("/peta-aset").status_code == 200
    response = client.get("/kondisi-infrastruktur")
    assert response.status_code == 200 and "no-data" in response.text


def test_the_stacked_bar_chart():
    from xml.etree import ElementTree

    from kotacerdas import charts

    svg = charts.stacked_bar_chart(
        [("Muara <Beliti> & Co", [2.0, 1.0, None, -3]), ("Tuah Negeri", [0, 0, 0, 0])],
        series=["Baik", "Sedang", "Rusak", "Belum"],
        title="Jalan",
        unit="km",
        percent=True,
    )
    root = ElementTree.fromstring(svg)  # well-formed, the label escaped
    ns = {"svg": "http://www.w3.org/2000/svg"}
    bars = root.findall(".//svg:g[@class='bar']", ns)
    assert [bar.get("data-total") for bar in bars] == ["3.0", "0.0"]
    parts = bars[0].findall("svg:rect", ns)
    assert [part.get("data-value") for part in parts] == ["2.0", "1.0"]  # nothing drawn for zero or less
    widths = [float(part.get("width")) for part in parts]
    assert widths[0] == pytest.approx(2 * widths[1], abs=0.02)
    assert "Muara <Beliti> & Co, Baik: 2 km (66,7%)" in [part.findtext("svg:title", namespaces=ns) for part in parts]
    assert bars[1].findall("svg:rect", ns) == []
    empty = charts.stacked_bar_chart([("A", [0])], series=["x"], title="t", empty_text="Kosong")
    assert "Kosong" in empty and 'class="no-data"' in empty
