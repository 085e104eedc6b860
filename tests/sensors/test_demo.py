"""The demo's devices: river gauges on the four rivers with their levels and warning rules, the other kinds of
device, each in its desa with its OPD and asset, three days of history with current values, device health, and
the device file with working keys for the simulator; seeding again changes nothing."""

from __future__ import annotations

import os
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from conftest import BOUNDARIES_FILE
from kotacerdas.agencies import service as agencies
from kotacerdas.demo import seed_demo
from kotacerdas.regions import service as regions
from kotacerdas.sensors import simulate as sim
from kotacerdas.sensors import store
from kotacerdas.sensors.demo import HISTORY_DAYS, devices_path, seed_demo_sensors
from kotacerdas.sensors.devices import verify_device_key
from kotacerdas.sensors.models import Datastream, Location, Thing, ThingLocation
from kotacerdas.sensors.rules import list_rules

pytestmark = pytest.mark.skipif(not BOUNDARIES_FILE.is_file(), reason="needs ../shared/data/musi-rawas")


@pytest.fixture
def demo(session, settings):
    """The whole demo seeded as `kotacerdas demo` does (with the boundaries), committed; its summary."""
    summary = seed_demo(session, settings=settings, boundaries=BOUNDARIES_FILE)
    session.commit()
    return summary


def _things(session) -> list[Thing]:
    return list(session.scalars(sa.select(Thing).order_by(Thing.id)))


def test_demo_devices_stand_in_their_desa_with_their_opd_asset_and_levels(session, settings, demo):
    things = _things(session)
    assert demo.sensors == len(things) > 20
    kinds = Counter(thing.properties["jenis"] for thing in things)
    assert set(kinds) == set(sim.KINDS)
    # Flood gauges on the four rivers, two or three on each.
    gauges = [thing for thing in things if thing.properties["jenis"] == sim.FLOOD_GAUGE]
    rivers = Counter(thing.properties["sungai"] for thing in gauges)
    assert set(rivers) == {"Musi", "Kelingi", "Lakitan", "Beliti"} and all(2 <= n <= 3 for n in rivers.values())
    owner = {kind: agencies.get_agency_by_short_name(session, short_name=short).id
             for kind, short in ((sim.FLOOD_GAUGE, "BPBD"), (sim.RAIN_GAUGE, "BPBD"), (sim.AIR_MONITOR, "DLH"),
                                 (sim.STREET_LIGHT, "Dishub"), (sim.TRAFFIC_COUNTER, "Dishub"))}  # fmt: skip
    for thing in things:
        location = session.scalar(
            sa.select(Location).join(ThingLocation, ThingLocation.location_id == Location.id)
            .where(ThingLocation.thing_id == thing.id)
        )  # fmt: skip
        place = regions.locate(session, settings=settings, lat=location.lat, lon=location.lon)
        assert place.inside and place.desa is not None, thing.name
        assert thing.desa_code == place.desa.code and thing.kecamatan_code == place.kecamatan.code
        assert thing.device_key_id is not None
        kind = thing.properties["jenis"]
        if kind in owner:
            assert thing.agency_id == owner[kind], thing.name
        if kind != sim.TRAFFIC_COUNTER:  # a counter's road may lie just out of reach
            assert thing.asset_id is not None, thing.name
    for gauge in gauges:
        (datastream,) = session.scalars(sa.select(Datastream).where(Datastream.thing_id == gauge.id))
        levels = datastream.levels
        assert 0 < levels["waspada"] < levels["siaga"] < levels["awas"]
        assert datastream.unit_of_measurement["symbol"] == "cm"
        assert datastream.properties["short_name"] == "level"


def test_demo_devices_have_history_health_rules_and_keys_for_the_simulator(session, settings, demo):
    things = {thing.id: thing for thing in _things(session)}
    datastreams = list(session.scalars(sa.select(Datastream)))
    current = store.current_values(session)
    assert set(current) == {datastream.id for datastream in datastreams}
    assert demo.sensor_observations >= len(datastreams) * HISTORY_DAYS * 24 * 6
    newest = max(value.phenomenon_time for value in current.values())
    assert datetime.now(UTC) - newest < timedelta(minutes=20)
    # Plausible values: rivers below awas, lights and cameras as truth values, counts as integers.
    for datastream in datastreams:
        value = current[datastream.id].result
        short = datastream.properties["short_name"]
        if short == "level":
            assert 50 < value < datastream.levels["awas"]
        elif short in ("on", "online"):
            assert value in (True, False)
        elif short == "vehicles":
            assert isinstance(value, int) and value >= 0
    # Health: every device was heard from; one camera went silent hours ago; battery where it runs on one.
    silent = [t for t in things.values() if datetime.now(UTC) - t.last_seen_at > timedelta(hours=2)]
    assert [t.properties["jenis"] for t in silent] == [sim.CCTV]
    assert all(t.signal_dbm is not None for t in things.values())
    assert all((t.battery_percent is not None) == (t.properties["jenis"] in sim.ON_BATTERY) for t in things.values())
    # The Kelingi storm in the history: the river at Muara Kelingi is above waspada now (the demo's warning).
    kelingi = next(t for t in things.values() if t.name == "Sensor Tinggi Muka Air Sungai Kelingi – Muara Kelingi")
    (level,) = [d for d in datastreams if d.thing_id == kelingi.id]
    assert current[level.id].result >= level.levels["waspada"]
    # The default rules of every flood gauge: siaga for some minutes, a fast rise, no data.
    for datastream in datastreams:
        kinds = {rule.kind for rule in list_rules(session, datastream_id=datastream.id)}
        assert kinds == ({"threshold", "rate_of_change", "no_data"} if datastream.levels else set()), datastream.name
    # The device file: private, every device's key works and names its Thing and Datastreams.
    path = devices_path(settings)
    assert demo.sensor_devices_file == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    device_file = sim.DeviceFile.read(path)
    assert len(device_file.devices) == len(things)
    for device in device_file.devices:
        assert verify_device_key(session, plain=device.key) == device.thing_id
        assert set(device.datastreams.values()) == {d.id for d in datastreams if d.thing_id == device.thing_id}
    # Seeding again changes nothing.
    assert seed_demo_sensors(session, settings=settings).things == 0
    assert len(_things(session)) == len(things)
    assert sim.DeviceFile.read(path) == device_file
    # A lost device file is written again with new keys (the old ones stop working) and the same devices.
    path.unlink()
    assert seed_demo_sensors(session, settings=settings).devices_file == path
    restored = sim.DeviceFile.read(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [(d.kode, d.thing_id, d.datastreams, d.params) for d in restored.devices] == [
        (d.kode, d.thing_id, d.datastreams, d.params) for d in device_file.devices
    ]
    assert restored.storms == device_file.storms
    for old, new in zip(device_file.devices, restored.devices, strict=True):
        assert verify_device_key(session, plain=old.key) is None
        assert verify_device_key(session, plain=new.key) == new.thing_id


def test_history_is_the_models_readings(session, settings, demo):
    """What the demo stored is what the simulator's models give for the same device and time."""
    device_file = sim.DeviceFile.read(devices_path(settings))
    scenario = sim.Scenario("normal", tuple(device_file.storms))
    rows = store.all_observations_for_tests(session)
    by_stream = {}
    for datastream_id, t, value in rows:
        by_stream.setdefault(datastream_id, {})[t] = value
    for device in device_file.devices[::5]:
        for short, datastream_id in device.datastreams.items():
            t, value = sorted(by_stream[datastream_id].items())[-1]
            assert sim.readings(device, t, seed=device_file.seed, scenario=scenario)[short] == value
