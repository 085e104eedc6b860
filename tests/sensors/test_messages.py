"""MQTT ingest messages: both payload formats read into readings, and every kind of bad message refused with the
reason a device owner would need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kotacerdas.sensors.messages import (
    CATEGORY,
    COUNT,
    MAX_MESSAGE_BYTES,
    MEASUREMENT,
    REASONS,
    TRUTH,
    DatastreamInfo,
    DeviceInfo,
    Directory,
    Refused,
    parse_message,
)

NOW = datetime(2026, 11, 29, 5, 0, 30, tzinfo=UTC)


@pytest.fixture
def directory() -> Directory:
    directory = Directory()
    for datastream_id, thing_id, kind in [(1, 10, MEASUREMENT), (2, 10, COUNT), (3, 10, TRUTH), (4, 10, CATEGORY),
                                          (5, 20, MEASUREMENT)]:  # fmt: skip
        directory.datastreams[datastream_id] = DatastreamInfo(datastream_id, thing_id, kind)
    directory.devices["dgauge"] = DeviceInfo(10, {"1": 1, "2": 2, "3": 3, "4": 4, "level": 1, "rain": 2})
    directory.devices["dother"] = DeviceInfo(20, {"5": 5})
    return directory


def parse(topic: str, payload: bytes | str, directory: Directory):
    data = payload.encode() if isinstance(payload, str) else payload
    return parse_message(topic, data, directory=directory, received_at=NOW)


def refused(topic: str, payload: bytes | str, directory: Directory) -> Refused:
    with pytest.raises(Refused) as caught:
        parse(topic, payload, directory)
    assert caught.value.code in REASONS
    return caught.value


def test_standard_topic_one_observation(directory):
    parsed = parse(
        "v1.1/Datastreams(1)/Observations",
        '{"phenomenonTime": "2026-11-29T12:00:00+07:00", "result": 231.5, "resultTime": "2026-11-29T05:00:01Z",'
        ' "parameters": {"battery": 80}}',
        directory,
    )
    [reading] = parsed.readings
    assert reading.datastream_id == 1 and reading.result == 231.5
    assert reading.phenomenon_time == datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert reading.result_time == datetime(2026, 11, 29, 5, 0, 1, tzinfo=UTC)
    assert reading.parameters == {"battery": 80} and parsed.timed
    assert parsed.thing_id == 10 and parsed.health.seen_at == NOW


def test_standard_topic_time_defaults_to_receive_time(directory):
    parsed = parse("v1.1/Datastreams(3)/Observations", '{"result": true}', directory)
    [reading] = parsed.readings
    assert reading.phenomenon_time == NOW and reading.result is True and not parsed.timed


def test_compact_topic_several_readings_and_health(directory):
    parsed = parse(
        "kotacerdas/dgauge/up", '{"t": "2026-11-29T05:00:00Z", "r": {"level": 231.5, "2": 4}, "battery": 87, '
        '"rssi": -71}', directory,
    )  # fmt: skip
    assert [(r.datastream_id, r.result) for r in parsed.readings] == [(1, 231.5), (2, 4)]
    assert {r.phenomenon_time for r in parsed.readings} == {datetime(2026, 11, 29, 5, 0, tzinfo=UTC)}
    assert (parsed.health.thing_id, parsed.health.battery_percent, parsed.health.signal_dbm) == (10, 87, -71)


def test_compact_topic_epoch_seconds(directory):
    parsed = parse("kotacerdas/dgauge/up", '{"t": 1795928400, "r": {"rain": 0}}', directory)
    assert parsed.readings[0].phenomenon_time == datetime.fromtimestamp(1795928400, UTC)


@pytest.mark.parametrize(
    ("topic", "payload", "code", "says"),
    [
        ("v1.1/Datastreams(1)/Observations", '{"result": 1', "malformed_json", ""),
        ("v1.1/Datastreams(1)/Observations", b"\xff\xfe", "malformed_json", ""),
        ("v1.1/Datastreams(1)/Observations", '{"result": NaN}', "not_finite", "NaN"),
        ("v1.1/Datastreams(1)/Observations", '{"result": Infinity}', "not_finite", "Infinity"),
        ("kotacerdas/dgauge/up", '{"r": {"level": -Infinity}}', "not_finite", "Infinity"),
        ("v1.1/Datastreams(1)/Observations", '{"result": 1e999}', None, ""),
        ("v1.1/Datastreams(99)/Observations", '{"result": 1}', "unknown_datastream", "99"),
        ("v1.1/Datastreams(1)/Observations", '{"result": "high"}', "wrong_result_type", "OM_Measurement"),
        ("v1.1/Datastreams(1)/Observations", '{"result": true}', "wrong_result_type", "not a number"),
        ("v1.1/Datastreams(2)/Observations", '{"result": 1.5}', "wrong_result_type", "integer"),
        ("v1.1/Datastreams(3)/Observations", '{"result": 1}', "wrong_result_type", "true or false"),
        ("v1.1/Datastreams(4)/Observations", '{"result": 3}', "wrong_result_type", "category"),
        ("v1.1/Datastreams(1)/Observations", '{"value": 3}', "invalid", "no result"),
        ("v1.1/Datastreams(1)/Observations", "[1, 2]", "invalid", "JSON object"),
        (
            "v1.1/Datastreams(1)/Observations",
            '{"result": 1, "phenomenonTime": "2026-12-01T00:00:00Z"}',
            "future_time",
            "more than a day",
        ),
        (
            "v1.1/Datastreams(1)/Observations",
            '{"result": 1, "phenomenonTime": "2026-11-29T05:00:00"}',
            "invalid_time",
            "time zone",
        ),
        ("v1.1/Datastreams(1)/Observations", '{"result": 1, "phenomenonTime": "yesterday"}', "invalid_time", ""),
        ("kotacerdas/nobody/up", '{"r": {"1": 1}}', "unknown_device", "nobody"),
        ("kotacerdas/dgauge/up", '{"r": {"5": 1}}', "not_owner", "Thing 20"),
        ("kotacerdas/dgauge/up", '{"r": {"depth": 1}}', "unknown_datastream", "r.depth"),
        ("kotacerdas/dgauge/up", '{"r": {"level": 1, "rain": "x"}}', "wrong_result_type", "r.rain"),
        ("kotacerdas/dgauge/up", '{"r": {}}', "invalid", '"r"'),
        ("kotacerdas/dgauge/up", '{"r": {"level": 1}, "battery": 140}', "invalid", "battery"),
        ("kotacerdas/dgauge/up", '{"t": "2027-01-01T00:00:00Z", "r": {"level": 1}}', "future_time", "t "),
        ("other/topic", "{}", "unknown_topic", "other/topic"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(directory, topic, payload, code, says):
    if code is None:  # 1e999 reads as infinity: refused as not finite
        code = "not_finite"
    why = refused(topic, payload, directory)
    assert why.code == code, why.reason
    assert says in why.detail
    assert why.reason.startswith(f"{code}: ")


def test_refusal_names_the_thing_when_known(directory):
    assert refused("kotacerdas/dgauge/up", '{"r": {"5": 1}}', directory).thing_id == 10
    assert refused("v1.1/Datastreams(5)/Observations", '{"result": "x"}', directory).thing_id == 20
    assert refused("v1.1/Datastreams(99)/Observations", "{}", directory).thing_id is None


def test_oversized_messages_are_refused_unread(directory):
    payload = b'{"result": 1, "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    assert refused("v1.1/Datastreams(1)/Observations", payload, directory).code == "oversized"
    many = "{" + ", ".join(f'"n{i}": 1' for i in range(600)) + "}"
    why = refused("kotacerdas/dgauge/up", '{"r": ' + many + "}", directory)
    assert why.code == "oversized" and "600 readings" in why.detail


def test_a_day_ahead_is_allowed(directory):
    ahead = (NOW + timedelta(hours=23)).isoformat()
    [reading] = parse("v1.1/Datastreams(1)/Observations", f'{{"result": 1, "phenomenonTime": "{ahead}"}}',
                      directory).readings  # fmt: skip
    assert reading.phenomenon_time == NOW + timedelta(hours=23)


def test_every_reason_has_an_indonesian_label():
    from kotacerdas.i18n import reset_locale, set_locale

    def labels(locale: str) -> dict[str, str]:
        token = set_locale(locale)
        try:
            return {code: str(label) for code, label in REASONS.items()}
        finally:
            reset_locale(token)

    indonesian, english = labels("id"), labels("en")
    assert indonesian["not_owner"] == "Datastream milik perangkat lain"
    assert english["not_owner"] == "Datastream of another device"
    assert all(indonesian[code] != english[code] for code in REASONS)
