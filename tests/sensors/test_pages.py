"""Public sensor pages on SQLite and PostgreSQL: the tiles at /sensor (value, unit, level colour, place, device
health, nothing private), a sensor's chart over each range (raw points, hourly and daily rollups, thresholds as
lines, the table), the CSV export and its bad input, and the tiles on an asset's page."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from conftest import TEST_ACTOR
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import service as assets
from kotacerdas.assets.validation import RawAsset
from kotacerdas.regions import service as regions
from kotacerdas.sensors import readings
from kotacerdas.sensors.models import Datastream, ObservedProperty, Sensor, Thing
from kotacerdas.sensors.store import NewObservation

from .test_store import add

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
LEVELS = {"waspada": 250, "siaga": 300, "awas": 350}
MUARA_LAKITAN = "16.05.02"
POINT = {"type": "Point", "coordinates": [102.93, -3.06]}
CHART = re.compile(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart.*?</svg>', re.S)


def make_stream(session, *, thing: Thing, prop: ObservedProperty, name: str, unit: str, levels=None) -> int:
    sensor = Sensor(name="Sensor " + name, encoding_type="text/html")
    session.add(sensor)
    session.flush()
    stream = Datastream(
        name=name, observation_type=MEASUREMENT, unit_of_measurement={"name": unit, "symbol": unit},
        thing_id=thing.id, sensor_id=sensor.id, observed_property_id=prop.id, levels=levels,
    )  # fmt: skip
    session.add(stream)
    session.flush()
    return stream.id


@pytest.fixture
def desa(session, settings) -> tuple[str, str]:
    """The built-in regions stored; (code, name) of a desa of Muara Lakitan."""
    regions.seed_builtin_regions(session, settings=settings)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    assets.seed_default_types(session, actor=TEST_ACTOR)
    session.commit()
    village = regions.region_children(session, code=MUARA_LAKITAN)[0]
    return village.code, village.name


@pytest.fixture
def gauges(session, desa) -> dict[str, int]:
    """A river gauge with levels (device key, battery, signal), a rain gauge without levels, and a silent air
    monitor; their Datastream ids by name."""
    now = datetime.now(UTC)
    water = ObservedProperty(name="Tinggi muka air", definition="https://example.org/water-level")
    rain = ObservedProperty(name="Curah hujan", definition="https://example.org/rain")
    pm25 = ObservedProperty(name="PM2.5", definition="https://example.org/pm25")
    river = Thing(
        name="Pos duga air Lakitan", desa_code=desa[0], kecamatan_code=MUARA_LAKITAN, device_key_id="kunci-rahasia-77",
        device_key_hash="f" * 64, last_seen_at=now, battery_percent=81.5, signal_dbm=-71,
        properties={"penjaga": "Pak Budi 0812-3456-7890"},
    )  # fmt: skip
    rain_gauge = Thing(name="Penakar hujan Muara Beliti", last_seen_at=now)
    monitor = Thing(name="Sensor udara Tugumulyo", kecamatan_code="16.05.01", offline_after_minutes=30)
    session.add_all([water, rain, pm25, river, rain_gauge, monitor])
    session.flush()
    ids = {
        "river": make_stream(session, thing=river, prop=water, name="Tinggi muka air", unit="cm", levels=LEVELS),
        "rain": make_stream(session, thing=rain_gauge, prop=rain, name="Curah hujan harian", unit="mm"),
        "air": make_stream(session, thing=monitor, prop=pm25, name="PM2.5", unit="µg/m³", levels=LEVELS),
    }
    session.commit()
    return ids


def tile_html(html: str, datastream_id: int) -> str:
    match = re.search(rf'<li class="card sensor-tile[^"]*" data-datastream-id="{datastream_id}".*?</li>', html, re.S)
    assert match, f"no tile of Datastream {datastream_id}"
    return match.group(0)


def test_sensor_page_shows_a_tile_per_datastream_with_level_place_and_health(client, engine, settings, gauges, desa):
    now = datetime.now(UTC)
    add(engine, settings, [
        NewObservation(gauges["river"], now - timedelta(minutes=10), 280.0),
        NewObservation(gauges["river"], now - timedelta(minutes=1), 312.5),
        NewObservation(gauges["rain"], now - timedelta(minutes=5), 4),
        NewObservation(gauges["air"], now - timedelta(hours=3), 12.0),
    ])  # fmt: skip

    response = client.get("/sensor")
    assert response.status_code == 200
    html = response.text
    # Grouped by what is observed, the groups by name.
    headings = re.findall(r"<h2 id=\"group-\d+\">([^<]+)</h2>", html)
    assert headings == ["Curah hujan", "PM2.5", "Tinggi muka air"]

    river = tile_html(html, gauges["river"])
    assert "Pos duga air Lakitan" in river and desa[1] in river and "Muara Lakitan" in river
    assert "312,5" in river and ">cm<" in river  # Indonesian decimal comma, the unit
    assert "Siaga" in river and "--tile-colour: #ef6c00" in river and 'data-level="siaga"' in river
    assert "81,5 %" in river and "-71 dBm" in river and ">Daring<" in river
    local = (now - timedelta(minutes=1)).astimezone(settings.zone)
    assert local.strftime("%d-%m-%Y %H:%M") + " WIB" in river

    rain = tile_html(html, gauges["rain"])
    assert ">4<" in rain and "Tanpa ambang batas" in rain and 'data-level=""' in rain

    # Silent for three hours with a limit of 30 minutes: offline, grey, whatever its value says.
    air = tile_html(html, gauges["air"])
    assert ">Luring<" in air and "--tile-colour: #5f6b7a" in air and "sensor-offline" in air
    # Nothing private: no device key, no free-form properties of the Thing.
    assert "kunci-rahasia-77" not in html and "0812" not in html and "Pak Budi" not in html
    assert 'href="/sensor/' in river and "data-sensor-live" in html and "/static/js/sensor-live.js" in html


def test_sensor_page_filters_by_kecamatan_and_observed_property(client, gauges):
    html = client.get("/sensor", params={"kecamatan": MUARA_LAKITAN}).text
    assert f'data-datastream-id="{gauges["river"]}"' in html
    assert f'data-datastream-id="{gauges["rain"]}"' not in html
    html = client.get("/sensor?kecamatan=&jenis=").text  # the empty form still works
    assert f'data-datastream-id="{gauges["rain"]}"' in html
    assert client.get("/sensor", params={"jenis": "air"}).status_code == 422
    assert client.get("/sensor", params={"kecamatan": "<script>"}).status_code == 422


def test_a_tile_without_readings_says_so(client, gauges):
    html = tile_html(client.get("/sensor").text, gauges["rain"])
    assert "Belum ada pembacaan" in html and ">–<" in html


@pytest.mark.parametrize(
    ("value", "levels", "expected"),
    [
        (100, LEVELS, readings.Level.NORMAL),
        (250, LEVELS, readings.Level.WASPADA),
        (349.9, LEVELS, readings.Level.SIAGA),
        (400, LEVELS, readings.Level.AWAS),
        (4.5, {"waspada": 5, "siaga": 4, "awas": 3}, readings.Level.WASPADA),  # falling: dissolved oxygen
        (2, {"waspada": 5, "siaga": 4, "awas": 3}, readings.Level.AWAS),
        (320, {"siaga": 300}, readings.Level.SIAGA),
        (320, None, None),
        ("banjir", LEVELS, None),
        (True, LEVELS, None),
    ],
)
def test_level_of_a_reading(value, levels, expected):
    assert readings.level_of(value, levels) is expected


def test_datastream_page_draws_raw_points_for_a_day_and_rollups_for_longer(client, engine, settings, gauges):
    now = datetime.now(UTC)
    rows = [NewObservation(gauges["river"], now - timedelta(minutes=10 * n), 200.0 + n) for n in range(1, 100)]
    rows += [NewObservation(gauges["river"], now - timedelta(days=20, minutes=n), 360.0) for n in range(3)]
    add(engine, settings, rows)

    day = client.get(f"/sensor/{gauges['river']}")
    assert day.status_code == 200
    svg = re.search(CHART, day.text).group(0)
    # Raw points of the last 24 hours: 99 readings, the one 20 days ago left out; one line with the thresholds.
    assert svg.count('<g class="series"') == 1
    assert len(re.findall(r"[ML][\d.]+ [\d.]+", re.search(r'<path d="([^"]+)"', svg).group(1))) == 99
    assert re.findall(r'<line [^>]*stroke="(#[0-9a-f]+)" stroke-width="1.5" stroke-dasharray', svg) == [
        "#f9a825", "#ef6c00", "#c62828",
    ]  # fmt: skip
    assert 'aria-current="page">24 jam' in day.text
    # The table beside the chart: hours with min, average and max.
    table = re.search(r'<table class="table" data-table="readings">.*?</table>', day.text, re.S).group(0)
    assert 15 <= table.count("<tr>") - 1 <= 18 and "299" in table
    assert f"/sensor/{gauges['river']}/data.csv?start=" in day.text

    month = client.get(f"/sensor/{gauges['river']}?rentang=30h").text
    month_svg = re.search(CHART, month).group(0)
    assert month_svg.count('<g class="series"') == 3  # max, avg, min of the hourly rollups
    assert "360" in re.search(r'<table class="table" data-table="readings">.*?</table>', month, re.S).group(0)
    assert month_svg.count("<circle") == 3  # without markers: only each series' last point
    assert len(month_svg) < 80_000

    year = client.get(f"/sensor/{gauges['river']}?rentang=1t").text
    year_svg = re.search(CHART, year).group(0)
    assert year_svg.count('<g class="series"') == 3 and len(year_svg) < 80_000
    assert client.get(f"/sensor/{gauges['river']}?rentang=7h").status_code == 200
    assert client.get(f"/sensor/{gauges['river']}?rentang=2j").status_code == 422
    assert client.get("/sensor/999999").status_code == 404


def test_chart_data_daily_rollups_for_a_year(session, engine, settings, gauges):
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    add(engine, settings, [
        NewObservation(gauges["river"], now - timedelta(days=40, hours=1), 100.0),
        NewObservation(gauges["river"], now - timedelta(days=40, hours=2), 200.0),
        NewObservation(gauges["river"], now - timedelta(days=2), 300.0),
    ])  # fmt: skip
    session.rollback()
    data = readings.chart_data(
        session, settings=settings, datastream_id=gauges["river"], chart_range=readings.ChartRange.YEAR, now=now
    )
    assert data.kind == "daily" and 365 <= len(data.rows) <= 367
    filled = [row for row in data.rows if row.count]
    assert [(row.min, row.avg, row.max, row.count) for row in filled] == [
        (100.0, 150.0, 200.0, 2),
        (300.0, 300.0, 300.0, 1),
    ]
    raw = readings.chart_data(
        session, settings=settings, datastream_id=gauges["river"], chart_range=readings.ChartRange.DAY, now=now
    )
    assert raw.kind == "raw" and raw.rows == []


def test_csv_export_has_a_header_with_the_unit_and_utc_times(client, engine, settings, gauges):
    t0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    add(engine, settings, [
        NewObservation(gauges["river"], t0 + timedelta(hours=n), 250.0 + n, result_quality="baik" if n == 1 else None)
        for n in range(5)
    ])  # fmt: skip
    response = client.get(
        f"/sensor/{gauges['river']}/data.csv", params={"start": "2026-11-01T01:00:00Z", "end": "2026-11-01T04:00:00Z"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["id", "phenomenonTime", "phenomenonTimeEnd", "resultTime", "result (cm)", "resultQuality"]
    # [start, end): three hours, in order, times in UTC.
    assert [(row[1], row[4], row[5]) for row in rows[1:]] == [
        ("2026-11-01T01:00:00Z", "251.0", "baik"),
        ("2026-11-01T02:00:00Z", "252.0", ""),
        ("2026-11-01T03:00:00Z", "253.0", ""),
    ]
    # Dates alone are days in the regency's zone (WIB, UTC+7): 1 November WIB starts at 31 October 17:00 UTC.
    by_day = client.get(f"/sensor/{gauges['river']}/data.csv", params={"start": "2026-11-01", "end": "2026-11-01"})
    assert len(list(csv.reader(io.StringIO(by_day.text)))) == 1 + 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "kemarin"}, "start"),
        ({"end": "2026-13-01"}, "end"),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "start"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "end"),
    ],
)
def test_csv_export_refuses_bad_dates_naming_the_parameter(client, gauges, params, field):
    response = client.get(f"/sensor/{gauges['river']}/data.csv", params=params, headers={"Accept": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field and field in body["detail"] or "366" in body["detail"]


def test_csv_of_an_unknown_sensor_is_404(client):
    assert client.get("/sensor/424242/data.csv", headers={"Accept": "application/json"}).status_code == 404


def test_csv_pages_never_skip_or_repeat_rows_with_the_same_time(session, engine, settings, gauges):
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    times = [t0, t0, t0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=1), t0 + timedelta(seconds=2), t0]
    ids = add(engine, settings, [NewObservation(gauges["rain"], t, n) for n, t in enumerate(times)])
    session.rollback()
    text = "".join(
        readings.iter_csv(
            session, datastream_id=gauges["rain"], unit="mm", start=t0, end=t0 + timedelta(days=1), page_rows=2
        )
    )
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert sorted(int(row[0]) for row in rows) == sorted(ids)


def test_asset_page_shows_the_tiles_of_its_things(client, session, settings, engine, gauges):
    asset = assets.create_asset(
        session, settings=settings, actor=TEST_ACTOR, by=None,
        raw=RawAsset(type="jembatan", name="Jembatan Lakitan", geometry=POINT),
    )  # fmt: skip
    session.execute(sa.update(Thing).where(Thing.name == "Pos duga air Lakitan").values(asset_id=asset.id))
    session.commit()
    add(engine, settings, [NewObservation(gauges["river"], datetime.now(UTC), 360.0)])

    html = client.get(f"/aset/{asset.id}").text
    tile = tile_html(html, gauges["river"])
    assert "360" in tile and "Awas" in tile and "data-sensor-live" in html and "/static/js/sensor-live.js" in html
    assert f'data-datastream-id="{gauges["rain"]}"' not in html
    # An asset without devices has no sensor section.
    other = assets.create_asset(
        session, settings=settings, actor=TEST_ACTOR, by=None,
        raw=RawAsset(type="jembatan", name="Jembatan lain", geometry=POINT),
    )  # fmt: skip
    session.commit()
    assert "data-sensor-live" not in client.get(f"/aset/{other.id}").text


def test_english_page(client, engine, settings, gauges):
    add(engine, settings, [NewObservation(gauges["river"], datetime.now(UTC), 1234.5)])
    html = tile_html(client.get("/sensor?lang=en").text, gauges["river"])
    assert "1,234.5" in html and "Warning" in html and ">Online<" in html
