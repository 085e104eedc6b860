"""Sensor warning rules through the service, with a controlled clock: a river rising over hours and falling raises,
escalates and ends a flood warning for the Thing's desa; rate of rise, no data, device offline; idempotent and
restart-safe evaluation; bad rules refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from conftest import TEST_ACTOR
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.agencies.models import Agency
from kotacerdas.errors import InvalidInput
from kotacerdas.events import feeds
from kotacerdas.events import service as events
from kotacerdas.events.models import Event, EventArea, EventLink
from kotacerdas.notifications.models import OutboxMessage
from kotacerdas.sensors import rules, store
from kotacerdas.sensors.models import (
    Datastream,
    Location,
    ObservedProperty,
    Sensor,
    SensorRuleState,
    Thing,
    ThingLocation,
)

DESA = "16.05.09.2001"  # a desa of Kecamatan Muara Beliti
T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
LEVELS = {"waspada": 250, "siaga": 300, "awas": 350}


def make_gauge(session, *, name: str = "Pos duga air Musi", levels: dict | None = None, desa: str | None = DESA,
               agency_id: int | None = None, unit: str = "cm") -> Datastream:  # fmt: skip
    """A river gauge Thing in `desa` with its water-level Datastream, committed."""
    thing = Thing(name=name, description="Pos duga air", desa_code=desa, kecamatan_code=desa[:8] if desa else None,
                  agency_id=agency_id)  # fmt: skip
    sensor = Sensor(name="Radar", description="", encoding_type="text/html", sensor_metadata="")
    prop = ObservedProperty(name="Tinggi muka air", definition="https://example.org/water-level", description="")
    session.add_all([thing, sensor, prop])
    session.flush()
    location = Location(name="Jembatan", description="", location={"type": "Point", "coordinates": [102.93, -3.06]},
                        lat=-3.06, lon=102.93)  # fmt: skip
    session.add(location)
    session.flush()
    session.add(ThingLocation(thing_id=thing.id, location_id=location.id))
    datastream = Datastream(
        name=f"Tinggi muka air {name}", description="", thing_id=thing.id, sensor_id=sensor.id,
        observed_property_id=prop.id, levels=LEVELS if levels is None else levels,
        observation_type="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        unit_of_measurement={"name": "centimetre", "symbol": unit, "definition": "ucum:" + unit},
    )  # fmt: skip
    session.add(datastream)
    session.commit()
    return datastream


def observe(session, settings, datastream_id: int, at: datetime, value: Any) -> None:
    session.commit()
    session.connection(execution_options={"kotacerdas_write": True})
    store.add_observations(session, [store.NewObservation(datastream_id, at, value)], settings=settings)
    session.commit()


def evaluate(session, settings, now: datetime, **kwargs) -> list[rules.RuleChange]:
    changes = rules.evaluate_rules(session, settings=settings, now=now, **kwargs)
    session.commit()
    return changes


def rule_events(session) -> list[Event]:
    """The events as committed."""
    session.rollback()
    session.expire_all()
    return list(session.scalars(sa.select(Event).order_by(Event.id)))


def river(start: float, stop: float, per_step: float) -> list[float]:
    values, value = [], start
    step = per_step if stop >= start else -per_step
    while (value <= stop) if step > 0 else (value >= stop):
        values.append(round(value, 3))
        value += step
    return values


# --- the river rises and falls --------------------------------------------------------------------------------------


def test_a_rising_then_falling_river_raises_escalates_and_ends_a_flood_warning(session, settings, seeded):
    datastream = make_gauge(session)
    seeded_rules = rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)
    session.commit()
    threshold_rule = seeded_rules[0]
    # 3 cm every 5 minutes (36 cm an hour, under the 50 cm/h of the rate rule): 200 → 380 → 200 over ten hours.
    series = river(200, 380, 3) + river(377, 200, 3)
    first_siaga = above_awas = None
    levels_seen: list[tuple[float, str | None, str | None]] = []
    now = T0
    for index, value in enumerate(series):
        now = T0 + index * STEP
        observe(session, settings, datastream.id, now, value)
        evaluate(session, settings, now)
        found = rule_events(session)
        assert len(found) <= 1, "one rule, one river: never a second event"
        event = found[0] if found else None
        if value >= 300 and first_siaga is None:
            first_siaga = now
        if value >= 350 and above_awas is None:
            above_awas = now
        if first_siaga is None or now - first_siaga < timedelta(minutes=10):
            assert event is None, f"no event before 10 minutes above siaga ({value} cm at {now})"
        levels_seen.append((value, event.level if event else None, event.status if event else None))
    # raised at siaga after exactly 10 minutes at or above 300 cm
    raised_at = next(i for i, (_v, level, _s) in enumerate(levels_seen) if level)
    assert T0 + raised_at * STEP == first_siaga + timedelta(minutes=10)
    assert levels_seen[raised_at][1] == "siaga"
    # escalated to awas 10 minutes after 350 cm
    escalated_at = next(i for i, (_v, level, _s) in enumerate(levels_seen) if level == "awas")
    assert T0 + escalated_at * STEP == above_awas + timedelta(minutes=10)
    # on the way down: between waspada and siaga nothing changes, still awas and ongoing
    for value, level, status in levels_seen[escalated_at:]:
        if 250 <= value < 300:
            assert level == "awas" and status in ("aktif", "diperbarui")
    # ended 30 minutes after the river went below 250 cm
    below = next(i for i, (value, _l, _s) in enumerate(levels_seen) if i > escalated_at and value < 250)
    ended = next(i for i, (_v, _l, status) in enumerate(levels_seen) if status == "selesai")
    assert (ended - below) * STEP == timedelta(minutes=30)

    event = rule_events(session)[0]
    assert event.source == "sensor_rule" and event.category == "banjir"
    assert "Musi" in event.title
    assert DESA in {
        row.region_code for row in session.scalars(sa.select(EventArea).where(EventArea.event_id == event.id))
    }
    links = {(link.kind, link.target_id) for link in session.scalars(sa.select(EventLink))}
    assert ("device", datastream.thing_id) in links
    timeline = [(line.kind, line.level) for line in events.timeline(session, event_id=event.id)]
    assert timeline == [("published", "siaga"), ("updated", "awas"), ("ended", "awas")]
    # the public view and its CAP message exist, as for an operator's warning
    view = events.public_event(session, settings=settings, event=event)
    assert view.source.value == "sensor_rule" and view.areas[0].code == DESA
    cap = feeds.cap_message(view, settings=settings, sender_name="BPBD")
    assert b"<msgType>Cancel</msgType>" not in cap and b"Banjir" in cap
    # the rule is back to normal, without an event, and every change of its state was audited
    state = session.get(SensorRuleState, threshold_rule.id)
    assert state.state == "normal" and state.event_id is None
    actions = list(
        session.scalars(
            sa.select(AuditEntry.action)
            .where(AuditEntry.entity_type == "sensor_rule", AuditEntry.entity_id == str(threshold_rule.id))
            .order_by(AuditEntry.id)
        )
    )
    assert actions == ["sensor_rule.create", "sensor_rule.pending", "sensor_rule.raise", "sensor_rule.escalate",
                       "sensor_rule.end"]  # fmt: skip
    # evaluating again at the end changes nothing
    assert evaluate(session, settings, now) == []


# --- the other kinds ------------------------------------------------------------------------------------------------


def test_a_fast_rise_raises_a_waspada_warning_that_the_level_rule_takes_over_and_ends(session, settings, seeded):
    datastream = make_gauge(session)
    threshold_rule, rate_rule, _no_data = rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)
    session.commit()
    assert rate_rule.threshold == 50 and rate_rule.window_minutes == 60
    # 10 cm every 5 minutes is 120 cm an hour: from 150 cm the rate rule fires once half an hour of data shows it
    series = river(150, 330, 10) + river(320, 150, 5)
    seen = []
    for index, value in enumerate(series):
        now = T0 + index * STEP
        observe(session, settings, datastream.id, now, value)
        evaluate(session, settings, now)
        found = rule_events(session)
        assert len(found) <= 1, "the rules of one gauge share one event"
        seen.append((value, found[0].level if found else None, found[0].status if found else None))
    first = next(i for i, (_v, level, _s) in enumerate(seen) if level)
    assert seen[first][1] == "waspada" and seen[first][0] < 300, "raised by the rise, before the siaga level"
    assert (first * STEP) == timedelta(minutes=30)
    assert any(level == "siaga" for _v, level, _s in seen), "the level rule raised the same event to siaga"
    assert seen[-1][2] == "selesai"
    event = rule_events(session)[0]
    levels = [line.level for line in events.timeline(session, event_id=event.id)]
    assert levels[:2] == ["waspada", "siaga"]
    states = rules.get_states(session, rule_ids=[threshold_rule.id, rate_rule.id])
    assert {state.state for state in states.values()} == {"normal"}


def test_a_rise_replayed_faster_than_real_time_ends_on_the_readings_clock(session, settings, seeded):
    """Readings five minutes apart arriving every 30 seconds (a late worker catching up, or the simulator's --speed):
    the rate rule's half hour of calm is counted on the readings' times, not on the worker's clock."""
    datastream = make_gauge(session)
    _threshold, rate_rule, _no_data = rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)
    session.commit()
    series = river(150, 240, 10) + [240] * 24  # 120 cm/h for 45 minutes, then two flat hours
    statuses = []
    for index, value in enumerate(series):
        observe(session, settings, datastream.id, T0 + index * STEP, value)
        evaluate(session, settings, T0 + index * timedelta(seconds=30), rule_ids=[rate_rule.id])
        found = rule_events(session)
        statuses.append(found[0].status if found else None)
    assert "aktif" in statuses, "the fast rise raised a warning"
    # Two hours of readings took twelve minutes of the worker's clock: ended all the same.
    assert statuses[-1] == "selesai"


def test_no_data_and_an_offline_device_tell_the_opd_by_email_and_publish_nothing(session, settings, seeded, make_user):
    agency = (
        session.scalars(sa.select(Agency).where(Agency.short_name == "BPBD")).first()
        or session.scalars(sa.select(Agency)).first()
    )
    user = make_user("bpbd.staf", "opd_staff", agency.id)
    user.email = "staf@bpbd.example.id"
    session.commit()
    datastream = make_gauge(session, agency_id=agency.id)
    no_data = rules.create_rule(
        session, data=rules.RuleInput(kind="no_data", datastream_id=datastream.id, duration_minutes=60),
        actor=TEST_ACTOR, now=T0,
    )  # fmt: skip
    offline = rules.create_rule(
        session, data=rules.RuleInput(kind="device_offline", thing_id=datastream.thing_id), actor=TEST_ACTOR, now=T0
    )
    session.commit()
    observe(session, settings, datastream.id, T0, 120.0)
    assert evaluate(session, settings, T0 + timedelta(minutes=30)) == []
    # the Thing's own offline_after_minutes (20) wins over the rule's default
    thing = session.get(Thing, datastream.thing_id)
    assert rules.offline_minutes(offline, thing, settings) == settings.sensor_offline_after_minutes == 60
    thing.offline_after_minutes = 20
    session.commit()
    changes = evaluate(session, settings, T0 + timedelta(minutes=30))
    assert [(change.rule_id, change.action) for change in changes] == [(offline.id, "flag")]
    changes = evaluate(session, settings, T0 + timedelta(minutes=61))
    assert [(change.rule_id, change.action) for change in changes] == [(no_data.id, "flag")]
    assert evaluate(session, settings, T0 + timedelta(minutes=90)) == [], "flagged once"
    assert rule_events(session) == [], "a silent device is not a public event"
    mails = list(session.scalars(sa.select(OutboxMessage).where(OutboxMessage.recipient == "staf@bpbd.example.id")))
    assert len(mails) == 2 and all("Pos duga air Musi" in mail.body_text for mail in mails)
    # the device speaks again: both rules are normal again
    observe(session, settings, datastream.id, T0 + timedelta(minutes=95), 121.0)
    changes = evaluate(session, settings, T0 + timedelta(minutes=96))
    assert sorted(change.action for change in changes) == ["recover", "recover"]
    assert {state.state for state in rules.get_states(session, rule_ids=[no_data.id, offline.id]).values()} == {
        "normal"
    }


def test_evaluation_is_idempotent_restart_safe_and_the_worker_job_applies_it(session, settings, seeded, engine):
    from kotacerdas.db import make_sessionmaker
    from kotacerdas.worker import evaluate_sensor_rules

    datastream = make_gauge(session)
    rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)
    assert len(rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)) == 3
    session.commit()
    assert len(rules.list_rules(session)) == 3, "seeding twice makes no second set"
    for index in range(4):
        observe(session, settings, datastream.id, T0 + index * STEP, 320.0)
    now = T0 + 3 * STEP
    factory = make_sessionmaker(engine)
    # a look changes nothing; the worker's job applies it in its own transactions; again, nothing more happens
    assert [change.action for change in rules.evaluate_rules(session, settings=settings, now=now, dry_run=True)] == [
        "raise"
    ]
    session.rollback()
    assert rule_events(session) == []
    assert evaluate_sensor_rules(factory, settings, now) == 1
    assert evaluate_sensor_rules(factory, settings, now) == 0
    assert evaluate_sensor_rules(factory, settings, now + timedelta(minutes=5)) == 0
    assert len(rule_events(session)) == 1
    # an operator ends the warning while the river is still high: the rule does not raise it again
    event = rule_events(session)[0]
    events.end_event(session, settings=settings, event_id=event.id, by=None, actor=TEST_ACTOR)
    session.commit()
    observe(session, settings, datastream.id, T0 + 4 * STEP, 322.0)
    assert evaluate(session, settings, T0 + 4 * STEP) == []
    assert len(rule_events(session)) == 1


def test_a_level_missing_from_the_datastream_is_shown_as_the_rules_problem(session, settings, seeded, engine):
    from kotacerdas.db import make_sessionmaker
    from kotacerdas.worker import evaluate_sensor_rules

    datastream = make_gauge(session)
    rule = rules.create_rule(
        session, data=rules.RuleInput(kind="threshold", datastream_id=datastream.id, category="banjir", level="siaga"),
        actor=TEST_ACTOR,
    )  # fmt: skip
    session.commit()
    datastream.levels = {"waspada": 250}
    session.commit()
    observe(session, settings, datastream.id, T0, 400.0)
    assert evaluate_sensor_rules(make_sessionmaker(engine), settings, T0) == 0
    session.rollback()
    state = session.get(SensorRuleState, rule.id)
    assert state.state == "normal" and "siaga" in state.problem
    view = rules.rule_views(session, rules=[rule])[0]
    assert view.thresholds is None and view.thresholds_problem


def test_a_thing_without_desa_raises_for_its_location(session, settings, seeded):
    datastream = make_gauge(session, desa=None)
    rules.create_rule(
        session, data=rules.RuleInput(kind="threshold", datastream_id=datastream.id, category="banjir", level="siaga",
                                      duration_minutes=0),
        actor=TEST_ACTOR,
    )  # fmt: skip
    session.commit()
    observe(session, settings, datastream.id, T0, 305.0)
    assert [change.action for change in evaluate(session, settings, T0)] == ["raise"]
    event = rule_events(session)[0]
    assert event.level == "siaga" and event.geometry and '"Point"' in event.geometry


def test_bad_rules_are_refused_naming_the_field(session, settings, seeded):
    datastream = make_gauge(session, unit="m", levels={"waspada": 2.5, "siaga": 3.0})
    made = rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)
    assert made[0].escalate_level is None, "no awas level, no escalation"
    assert made[1].threshold == 0.5, "50 cm per hour in metres"
    for data, field in [
        (rules.RuleInput(kind="threshold", datastream_id=datastream.id, category="banjir", level="awas"), "threshold"),
        (rules.RuleInput(kind="no_data", datastream_id=datastream.id, duration_minutes=0), "duration_minutes"),
        (
            rules.RuleInput(
                kind="rate_of_change",
                datastream_id=datastream.id,
                category="banjir",
                level="siaga",
                threshold=float("inf"),
            ),
            "threshold",
        ),  # fmt: skip
        (rules.RuleInput(kind="threshold", datastream_id=datastream.id, category="acara", level="siaga"), "level"),
    ]:
        try:
            rules.create_rule(session, data=data, actor=TEST_ACTOR)
        except InvalidInput as error:
            assert error.errors[0]["field"] == field, (data, error.errors)
        else:
            raise AssertionError(f"accepted {data}")


def test_two_workers_at_once_raise_one_event(session, settings, seeded, engine, backend):
    """A second worker skips the rule rows the first one holds (PostgreSQL), or waits for the writer queue and then
    finds the rule raised (SQLite): one event either way."""
    from kotacerdas.db import make_sessionmaker

    datastream = make_gauge(session)
    rules.seed_level_rules(session, datastream_id=datastream.id, actor=TEST_ACTOR)
    session.commit()
    for index in range(4):
        observe(session, settings, datastream.id, T0 + index * STEP, 330.0)
    now = T0 + 3 * STEP
    factory = make_sessionmaker(engine)
    with factory() as first:
        first.connection(execution_options={"kotacerdas_write": True})
        assert [change.action for change in rules.evaluate_rules(first, settings=settings, now=now)] == ["raise"]
        if backend == "postgres":
            with factory() as second:
                assert rules.evaluate_rules(second, settings=settings, now=now) == [], "rows held by the first"
                second.commit()
        first.commit()
    with factory() as second:
        second.connection(execution_options={"kotacerdas_write": True})
        assert rules.evaluate_rules(second, settings=settings, now=now) == []
        second.commit()
    assert len(rule_events(session)) == 1
