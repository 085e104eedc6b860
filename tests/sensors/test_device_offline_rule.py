"""One rule of "offline" (sensors/devices.py `heard_from`, `offline_limit`, `is_offline`): the public tiles at
/sensor, the device console and the device_offline rule say the same of a device, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from conftest import TEST_ACTOR
from kotacerdas.db import utcnow
from kotacerdas.sensors import devices, readings, rules
from kotacerdas.sensors.models import SensorRule, Thing

from .test_pages import tile_html
from .test_sensorthings import OM, ROOT, create, first_datastream, gauge


def fed_gauge(client, tokens, name: str, *, at: datetime, offline_after_minutes: int | None = None) -> tuple[int, int]:
    """A gauge of Dinas PUPR fed one reading stamped `at` with a staff token (so never `last_seen_at`); its Thing
    and Datastream ids."""
    thing = create(client, tokens("pupr_staff"), "/Things", gauge(name))["@iot.id"]
    datastream = first_datastream(client, thing)
    posted = client.post(
        f"{ROOT}/Datastreams({datastream})/Observations",
        json={"phenomenonTime": at.isoformat(), "result": 212},
        headers=tokens("pupr_staff"),
    )
    assert posted.status_code == 201, posted.text
    return thing, datastream


def agree(session, settings, staff, thing: int, datastream: int, now: datetime) -> readings.Health:
    """The public tile's health at `now`, after checking that the device console (its list and the device's own page)
    says the same of the device."""
    session.rollback()
    health = readings.get_tile(session, settings=settings, datastream_id=datastream, now=now).health
    listed = devices.list_devices(session, settings=settings, by=staff("pupr_staff"), now=now)
    (device,) = (device for device in listed if device.id == thing)
    assert (device.last_seen_at, device.offline) == (health.last_seen_at, health.offline)
    one = devices.get_device(session, settings=settings, thing_id=thing, by=staff("pupr_staff"), now=now)
    assert one == device
    return health


def test_a_reading_stamped_ahead_counts_as_heard_now_on_the_tiles_and_in_the_console(
    client, tokens, staff, session, settings
):
    # The simulator's --speed, or a device clock running fast, stamps readings ahead of the server's clock.
    thing, datastream = fed_gauge(client, tokens, "Pos duga air Kelingi", at=utcnow() + timedelta(hours=2))
    now = utcnow()
    health = agree(session, settings, staff, thing, datastream, now)
    assert health.last_seen_at == now and health.offline is False

    # Through HTTP: the console's JSON never names a time after its answer, and the public tile says online too.
    (listed,) = client.get("/api/v1/sensors/devices", headers=tokens("pupr_staff")).json()
    assert listed["offline"] is False and datetime.fromisoformat(listed["last_seen_at"]) <= utcnow()
    assert ">Daring<" in tile_html(client.get("/sensor").text, datastream)


def test_a_device_past_its_own_limit_is_offline_on_the_tiles_in_the_console_and_for_the_rule(
    client, tokens, staff, session, settings
):
    heard = utcnow() - timedelta(minutes=45)
    strict, strict_stream = fed_gauge(client, tokens, "Pos duga air Kelingi", at=heard)
    lenient, lenient_stream = fed_gauge(client, tokens, "Pos duga air Lakitan", at=heard)
    session.execute(sa.update(Thing).where(Thing.id == strict).values(offline_after_minutes=30))
    session.commit()
    now = utcnow()

    # Its own limit of 30 minutes passed: offline; the other falls back on the setting's hour: online.
    assert settings.sensor_offline_after_minutes == 60
    assert agree(session, settings, staff, strict, strict_stream, now).offline is True
    assert agree(session, settings, staff, lenient, lenient_stream, now).offline is False
    # Twenty minutes after its reading the same device was within its limit, by both counts.
    assert agree(session, settings, staff, strict, strict_stream, heard + timedelta(minutes=20)).offline is False

    by_name = {d["name"]: d for d in client.get("/api/v1/sensors/devices", headers=tokens("pupr_staff")).json()}
    assert by_name["Pos duga air Kelingi"]["offline"] is True and by_name["Pos duga air Lakitan"]["offline"] is False
    page = client.get("/sensor").text
    assert ">Luring<" in tile_html(page, strict_stream) and ">Daring<" in tile_html(page, lenient_stream)

    # The device_offline rule reads the same limit: the Thing's own before the rule's duration and the setting.
    rule = SensorRule(kind=rules.RuleKind.DEVICE_OFFLINE.value, thing_id=strict, duration_minutes=90)
    thing = session.get(Thing, strict)
    assert rules.offline_minutes(rule, thing, settings) == 30


def test_at_its_limit_exactly_a_device_is_online_everywhere_and_offline_a_moment_later(
    client, tokens, staff, session, settings
):
    heard = utcnow() - timedelta(hours=3)
    thing, datastream = fed_gauge(client, tokens, "Pos duga air Beliti", at=heard)
    session.execute(sa.update(Thing).where(Thing.id == thing).values(offline_after_minutes=30))
    rules.create_rule(session, data=rules.RuleInput(kind="device_offline", thing_id=thing), actor=TEST_ACTOR, now=heard)
    session.commit()
    edge = heard + timedelta(minutes=30)
    assert agree(session, settings, staff, thing, datastream, edge).offline is False
    assert rules.evaluate_rules(session, settings=settings, now=edge, dry_run=True) == []
    later = edge + timedelta(microseconds=1)
    assert agree(session, settings, staff, thing, datastream, later).offline is True
    changes = rules.evaluate_rules(session, settings=settings, now=later, dry_run=True)
    assert [change.action for change in changes] == ["flag"]


def test_a_station_is_heard_from_when_any_of_its_datastreams_reports(client, tokens, staff, session, settings):
    """A station with two Datastreams whose rain gauge fell silent while its water level still reports: online on
    the silent Datastream's tile too, as in the console and for the device_offline rule."""
    now = utcnow()
    thing, level_stream = fed_gauge(client, tokens, "Pos duga air Musi", at=now - timedelta(minutes=5))
    rain = create(client, tokens("pupr_staff"), "/Datastreams", {
        "name": "Curah hujan", "description": "Curah hujan", "observationType": OM + "OM_Measurement",
        "unitOfMeasurement": {"name": "millimetre", "symbol": "mm", "definition": "ucum:mm"},
        "Thing": {"@iot.id": thing}, "Sensor": {"name": "Tipping bucket", "description": "Penakar hujan",
                                                 "encodingType": "text/html", "metadata": "https://example.org/rain"},
        "ObservedProperty": {"name": "Curah hujan", "definition": "https://example.org/rain", "description": "Hujan"},
    })["@iot.id"]  # fmt: skip
    posted = client.post(f"{ROOT}/Datastreams({rain})/Observations", headers=tokens("pupr_staff"),
                         json={"phenomenonTime": (now - timedelta(hours=5)).isoformat(), "result": 0.0})  # fmt: skip
    assert posted.status_code == 201, posted.text
    health = agree(session, settings, staff, thing, rain, now)
    assert health.offline is False and health.last_seen_at == now - timedelta(minutes=5)
    assert agree(session, settings, staff, thing, level_stream, now) == health
    rule = rules.create_rule(session, data=rules.RuleInput(kind="device_offline", thing_id=thing), actor=TEST_ACTOR,
                             now=now - timedelta(hours=6))  # fmt: skip
    session.commit()
    assert rules.evaluate_rules(session, settings=settings, now=now, dry_run=True) == []
    later = now + timedelta(hours=2)  # both silent past the setting's hour
    assert agree(session, settings, staff, thing, rain, later).offline is True
    assert [change.rule_id for change in rules.evaluate_rules(session, settings=settings, now=later, dry_run=True)] \
        == [rule.id]  # fmt: skip
