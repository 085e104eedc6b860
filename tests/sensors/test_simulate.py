"""The simulator: its models behave (a river rises hours after rain and recedes, lights burn from dusk to dawn,
rush hours, values in plausible ranges, the same seed gives the same readings), its messages are what ingest
accepts, and `kotacerdas sensors simulate` stores readings through the real broker and ingest worker (--via mqtt)
and through a running server (--via http)."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import TEST_ACTOR, free_port, running_server
from kotacerdas.accounts import service as accounts
from kotacerdas.agencies import service as agencies
from kotacerdas.cli import app as cli_app
from kotacerdas.db import make_sessionmaker
from kotacerdas.regions import service as regions
from kotacerdas.sensors import simulate as sim
from kotacerdas.sensors import store
from kotacerdas.sensors.demo import DevicePlan, create_devices
from kotacerdas.sensors.devices import mosquitto_conf
from kotacerdas.sensors.ingest import run_ingest
from kotacerdas.sensors.messages import Directory, parse_message
from kotacerdas.sensors.models import DeadLetter, Thing

SEED = 1605
T0 = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # Tuesday 24 November 2026, 00:00 WIB
GAUGE = sim.RiverGauge("Kelingi", waspada=340, siaga=440, awas=550, lag_hours=5.0)


def _every(start: datetime, hours: float, minutes: int = 10) -> list[datetime]:
    return [start + timedelta(minutes=minutes * i) for i in range(int(hours * 60 / minutes))]


# --- the models ------------------------------------------------------------------------------------------------------


def test_banjir_river_rises_hours_after_the_rain_past_siaga_then_recedes_below_waspada():
    scenario = sim.Scenario.of("banjir", start=T0)
    times = _every(T0, 24)
    levels = [sim.river_level(SEED, GAUGE, t, scenario) for t in times]
    rain = [sim.rain_rate(SEED, "Kelingi", t, scenario) for t in times]
    assert levels[0] < GAUGE.waspada
    rain_peak = times[rain.index(max(rain))]
    level_peak = times[levels.index(max(levels))]
    # The river peaks between siaga and awas, hours after the rain did.
    assert GAUGE.siaga <= max(levels) < GAUGE.awas
    assert timedelta(hours=3) <= level_peak - rain_peak <= timedelta(hours=8)
    # Above siaga for longer than a rule's ten minutes, rising faster than 50 cm an hour on the way up.
    assert sum(level >= GAUGE.siaga for level in levels) * 10 >= 60
    assert max(b - a for a, b in zip(levels, levels[6:], strict=False)) > 50
    # Back below waspada before the day is out.
    assert levels[-1] < GAUGE.waspada
    # Without the scenario's storm the same day stays below waspada.
    calm = [sim.river_level(SEED, GAUGE, t, sim.Scenario()) for t in times]
    assert max(calm) < GAUGE.waspada


def test_rain_gauge_reports_tipping_bucket_steps_only_while_it_rains():
    scenario = sim.Scenario.of("banjir", start=T0)
    before = sim.rainfall(SEED, "Musi", T0, 600, scenario)
    during = sim.rainfall(SEED, "Musi", T0 + timedelta(hours=3), 600, scenario)
    assert before == 0 or sim.rain_rate(SEED, "Musi", T0, scenario) > 0
    assert 4 <= during <= 8  # 40 mm/h at the peak: about 6.6 mm in ten minutes
    assert abs(during / 0.2 - round(during / 0.2)) < 1e-6


def test_daily_storms_are_deterministic_and_rain_about_half_of_the_days():
    days = [T0.date() + timedelta(days=i) for i in range(200)]
    wet = sum(bool(sim.daily_storms(SEED, "Beliti", day)) for day in days)
    assert 70 <= wet <= 130
    assert sim.daily_storms(SEED, "Beliti", days[3]) == sim.daily_storms(SEED, "Beliti", days[3])
    assert [sim.daily_storms(SEED, "Beliti", d) for d in days] != [
        sim.daily_storms(SEED + 1, "Beliti", d) for d in days
    ]


def test_lights_on_from_dusk_to_dawn_dimmed_after_midnight():
    def at(hour: float) -> datetime:  # WIB hour of 24 November
        return T0 + timedelta(hours=hour)

    assert sim.light_on(at(18)) and sim.light_on(at(23.5)) and sim.light_on(at(3)) and sim.light_on(at(5.9))
    assert not sim.light_on(at(6)) and not sim.light_on(at(12)) and not sim.light_on(at(17.9))
    assert sim.light_power(SEED, "x", at(12), 90) < 1
    assert 85 <= sim.light_power(SEED, "x", at(20), 90) <= 95
    assert 60 <= sim.light_power(SEED, "x", at(2), 90) <= 66
    assert sim.light_power(SEED, "x", at(20), 90, faulty=True) < 1


def test_temperature_humidity_and_pm25_follow_the_day_within_plausible_ranges():
    days = range(10)
    dawn = [sim.temperature(SEED, "a", T0 + timedelta(days=d, hours=6)) for d in days]
    afternoon = [sim.temperature(SEED, "a", T0 + timedelta(days=d, hours=14)) for d in days]
    assert sum(afternoon) / 10 - sum(dawn) / 10 > 7
    times = _every(T0, 24 * 7)
    assert all(18 <= sim.temperature(SEED, "a", t) <= 35 for t in times)
    assert all(40 <= sim.humidity(SEED, "a", t) <= 100 for t in times)
    assert sim.temperature(SEED, "a", T0 + timedelta(hours=14), rain_mm_h=20) < afternoon[0] - 2
    pm = {t: sim.pm25(SEED, "a", t) for t in times}
    assert all(2 <= value <= 300 for value in pm.values())

    def mean_at(hour: int) -> float:
        values = [v for t, v in pm.items() if t.astimezone(sim.WIB).hour == hour]
        return sum(values) / len(values)

    assert mean_at(7) > 1.5 * mean_at(12) and mean_at(18) > 1.5 * mean_at(3)
    # Noisy: not the same value twice in a row most of the time.
    values = list(pm.values())
    assert sum(a != b for a, b in zip(values, values[1:], strict=False)) > 0.8 * len(values)


def test_traffic_has_rush_hours_and_cctv_is_mostly_online():
    weekday = T0 + timedelta(days=1)  # Wednesday 00:00 WIB
    rush = [sim.vehicles(SEED, "t", weekday + timedelta(hours=7, minutes=5 * i), 120) for i in range(6)]
    night = [sim.vehicles(SEED, "t", weekday + timedelta(hours=2, minutes=5 * i), 120) for i in range(6)]
    assert min(rush) > 3 * max(night)
    assert all(isinstance(count, int) and count >= 0 for count in rush + night)
    week = _every(T0, 24 * 28, minutes=5)
    online = [sim.cctv_online(SEED, "c", t) for t in week]
    assert 0.97 < sum(online) / len(online) < 1


def _device(kind: str, params: dict | None = None) -> sim.Device:
    shorts = {
        sim.FLOOD_GAUGE: ["level"], sim.RAIN_GAUGE: ["rain"], sim.AIR_MONITOR: ["pm25", "temp", "rh"],
        sim.STREET_LIGHT: ["on", "power"], sim.TRAFFIC_COUNTER: ["vehicles"], sim.CCTV: ["online"],
    }[kind]  # fmt: skip
    streams = {short: 100 + index for index, short in enumerate(shorts)}
    return sim.Device(f"{kind}-1", kind, kind, 7, "dabc.secret", streams, params or {})


def test_compact_messages_are_what_ingest_accepts_and_the_same_seed_gives_the_same_readings():
    from kotacerdas.sensors.messages import COUNT, MEASUREMENT, TRUTH, DatastreamInfo, DeviceInfo

    kinds = {
        sim.FLOOD_GAUGE: {"basin": "Musi", "levels": {"waspada": 300, "siaga": 400, "awas": 500}, "lag_hours": 4},
        sim.RAIN_GAUGE: {"basin": "Musi"},
        sim.AIR_MONITOR: {"basin": "Musi"},
        sim.STREET_LIGHT: {"rated_w": 60},
        sim.TRAFFIC_COUNTER: {"peak_per_5min": 90},
        sim.CCTV: {},
    }
    types = {"on": TRUTH, "online": TRUTH, "vehicles": COUNT}
    for kind, params in kinds.items():
        device = _device(kind, params)
        info = DeviceInfo(7, dict(device.datastreams))
        directory = Directory(
            {i: DatastreamInfo(i, 7, types.get(s, MEASUREMENT)) for s, i in device.datastreams.items()},
            {"dabc": info},
        )
        t = T0 + timedelta(hours=13)
        message = sim.compact_message(device, t, seed=SEED)
        assert message == sim.compact_message(device, t, seed=SEED)
        import orjson

        parsed = parse_message("kotacerdas/dabc/up", orjson.dumps(message), directory=directory, received_at=t)
        assert len(parsed.readings) == len(device.datastreams)
        assert parsed.readings[0].phenomenon_time == t
        assert parsed.health.signal_dbm is not None
        assert (parsed.health.battery_percent is not None) == (kind in sim.ON_BATTERY)


def test_device_file_is_private_and_devices_are_chosen_by_kode_id_or_kind(tmp_path):
    devices = [_device(sim.FLOOD_GAUGE, {"basin": "Musi"}), _device(sim.CCTV)]
    path = tmp_path / "d" / sim.DEVICES_FILE
    storm = sim.banjir_storm(T0, "Kelingi")
    sim.DeviceFile(seed=7, devices=devices, storms=[storm]).write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    read = sim.DeviceFile.read(path)
    assert read.seed == 7 and read.devices == devices and read.storms == [storm]
    assert sim.select_devices(devices, ["cctv"]) == [devices[1]]
    assert sim.select_devices(devices, [devices[0].kode.upper()]) == [devices[0]]
    assert sim.select_devices(devices, None) == devices
    with pytest.raises(ValueError, match="no demo device 'PDA-99'"):
        sim.select_devices(devices, ["PDA-99"])


# --- end to end ------------------------------------------------------------------------------------------------------


@pytest.fixture
def devices(session, settings) -> list[sim.Device]:
    """A flood gauge, a smart street light, a traffic counter and a CCTV of the demo's kinds, with keys."""
    regions.seed_builtin_regions(session, settings=settings)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    admin = accounts.create_user(
        session, actor=TEST_ACTOR, username="admin", full_name="Admin", password="rahasia-uji-123", role="admin"
    )
    kecamatan = {k.code: k for k in regions.list_kecamatan(session, settings=settings)}
    place = kecamatan["16.05.03"]
    levels = {"waspada": 280.0, "siaga": 390.0, "awas": 530.0}
    plans = [
        DevicePlan("PDA-01", sim.FLOOD_GAUGE, "Sensor Tinggi Muka Air Uji", "uji", place.centroid_lat,
                   place.centroid_lon, None, {"basin": "Kelingi", "levels": levels, "lag_hours": 3.0}, levels),
        DevicePlan("PJUP-01", sim.STREET_LIGHT, "PJU Pintar Uji", "uji", place.centroid_lat + 0.001,
                   place.centroid_lon, None, {"rated_w": 90.0}),
        DevicePlan("ATCS-01", sim.TRAFFIC_COUNTER, "Penghitung Uji", "uji", place.centroid_lat,
                   place.centroid_lon + 0.001, None, {"basin": "Kelingi", "peak_per_5min": 100.0}),
        DevicePlan("CCTV-01", sim.CCTV, "Status CCTV Uji", "uji", place.centroid_lat - 0.001,
                   place.centroid_lon, None, {}),
    ]  # fmt: skip
    made = create_devices(session, settings=settings, admin=admin, plans=plans)
    session.commit()
    return made


def _stored(engine) -> list[tuple[int, datetime, object]]:
    with make_sessionmaker(engine)() as session:
        return store.all_observations_for_tests(session)


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def broker_port(tmp_path_factory) -> Iterator[int]:
    """Our own Mosquitto on a free loopback port, configured as docs/mqtt.md says."""
    import socket

    folder = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(mosquitto_conf(port=port, persistence_dir=f"{folder}/"))
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        _wait(answers, 10, "mosquitto to listen")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_simulate_via_mqtt_stores_every_reading_through_the_ingest_worker(
    settings, engine, session, devices, broker_port
):
    ingest_settings = settings.model_copy(
        update={"mqtt_port": broker_port, "mqtt_shared_group": "s" + uuid.uuid4().hex[:8], "ingest_batch_ms": 20}
    )
    path = settings.data_dir / sim.DEVICES_FILE
    sim.DeviceFile(seed=SEED, devices=devices).write(path)
    stop, ready = threading.Event(), threading.Event()
    worker = threading.Thread(
        target=run_ingest,
        kwargs={"settings": ingest_settings, "stop_event": stop, "session_factory": make_sessionmaker(engine),
                "client_id": "sim-" + uuid.uuid4().hex[:8], "ready": ready},
        daemon=True,
    )  # fmt: skip
    worker.start()
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    try:
        assert ready.wait(10), "the ingest worker did not subscribe"
        # Two simulated hours (16:00 to 18:00 WIB and so on) in about two seconds, through the command.
        env = {"KOTACERDAS_DATA_DIR": str(settings.data_dir), "KOTACERDAS_DATABASE_URL": settings.database_url}
        result = CliRunner().invoke(
            cli_app,
            ["sensors", "simulate", "--via", "mqtt", "--broker", f"127.0.0.1:{broker_port}", "--speed", "3600",
             "--duration", "2", "--interval", "600", "--start", start.isoformat(), "--scenario", "banjir"],
            env=env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "acknowledged: " in result.output
        # 13 reading times for the gauge, light and camera (every 10 minutes, both ends), 25 for the counter
        # (every 5 minutes); 2 readings a light message.
        expected = 13 * (1 + 2 + 1) + 25
        rows = _wait(lambda: (found := _stored(engine)) and len(found) >= expected and found, 30, "the readings")
    finally:
        stop.set()
        worker.join(timeout=15)
    assert len(rows) == expected
    assert not session.scalars(sa.select(DeadLetter)).all()
    level = devices[0].datastreams["level"]
    levels = sorted((t, v) for d, t, v in rows if d == level)
    assert levels[0][0] == start and levels[-1][0] == start + timedelta(hours=2)
    assert all(100 < v < 530 for _t, v in levels)
    on = [v for d, _t, v in rows if d == devices[1].datastreams["on"]]
    assert set(on) <= {True, False} and len(on) == 13
    # The devices' health: last seen now, the signal they reported.
    session.expire_all()
    thing = session.get(Thing, devices[0].thing_id)
    assert thing.last_seen_at is not None and thing.signal_dbm is not None and thing.battery_percent is not None


def test_simulate_via_http_posts_create_observations_with_the_device_key(app, engine, devices):
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    with running_server(app) as base:
        options = sim.SimulationOptions(
            via="http", url=base, speed=3600, duration=1, interval=600, start=start, scenario="normal"
        )
        stats = sim.run_simulation(devices, options, seed=SEED)
        assert not stats.errors
        assert stats.acknowledged == stats.messages == 7 * 3 + 13  # one hour: 7 times each, 13 for the counter
        rows = _stored(engine)
        assert len(rows) == stats.observations == 7 * (1 + 2 + 1) + 13
        # A device whose key is wrong is refused (401), and the run says so.
        wrong = [sim.Device(**{**devices[0].__dict__, "key": devices[0].key_id + ".not-the-secret"})]
        refused = sim.run_simulation(wrong, options, seed=SEED)
        assert refused.acknowledged == 0 and refused.errors and "HTTP 401" in refused.errors[0]
    assert len(_stored(engine)) == len(rows)


def test_the_banjir_scenario_makes_the_gauge_rules_raise_then_end_a_flood_warning(session, settings, devices):
    """The simulated flood through the real rules, with the clock at each reading: a warning some time after the
    river reaches siaga, ended once it has been back under waspada for half an hour."""
    from kotacerdas.events.models import Event
    from kotacerdas.sensors import rules

    gauge = devices[0]
    datastream_id = gauge.datastreams["level"]
    levels = gauge.params["levels"]
    rules.seed_level_rules(session, datastream_id=datastream_id, actor=TEST_ACTOR)
    session.commit()
    scenario = sim.Scenario.of("banjir", start=T0)
    seen = []
    for t in _every(T0, 20):
        value = sim.readings(gauge, t, seed=SEED, scenario=scenario)["level"]
        session.commit()
        session.connection(execution_options={"kotacerdas_write": True})
        store.add_observations(session, [store.NewObservation(datastream_id, t, value)], settings=settings)
        session.commit()
        rules.evaluate_rules(session, settings=settings, now=t)
        session.commit()
        session.expire_all()
        events = list(session.scalars(sa.select(Event)))
        assert len(events) <= 1
        seen.append((t, value, events[0].level if events else None, events[0].status if events else None))
    first_siaga = next(t for t, value, _level, _status in seen if value >= levels["siaga"])
    raised = [(t, level) for t, _value, level, _status in seen if level in ("siaga", "awas")]
    assert raised and raised[0][0] >= first_siaga + timedelta(minutes=10)
    assert seen[-1][3] == "selesai" and seen[-1][1] < levels["waspada"]
    assert all(status != "selesai" for t, _v, _l, status in seen if t <= raised[0][0])


def test_simulate_refuses_bad_options_with_one_clear_line(tmp_path):
    env = {"KOTACERDAS_DATA_DIR": str(tmp_path / "data"), "KOTACERDAS_DATABASE_URL": ""}
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli_app, ["sensors", "simulate", *args], env=env)

    missing = run()
    assert missing.exit_code == 2 and "run `kotacerdas demo` first" in missing.output
    sim.DeviceFile(seed=SEED, devices=[_device(sim.CCTV)]).write(tmp_path / "data" / sim.DEVICES_FILE)
    for args, says in (
        (["--via", "coap"], "--via"),
        (["--scenario", "tsunami"], "--scenario"),
        (["--broker", "localhost"], "--broker"),
        (["--start", "2026-11-29T10:00:00"], "time zone"),
        (["--things", "PDA-99"], "no demo device 'PDA-99'"),
        # 100 s at ×3600 is 100 hours: readings stamped days ahead, which ingest refuses.
        (["--speed", "3600", "--duration", "100"], "hours ahead of the clock"),
    ):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert says in " ".join(result.output.split()), (args, result.output)
