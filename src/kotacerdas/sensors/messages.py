"""MQTT ingest messages: the two payload formats read and checked into observation rows, or refused with a reason.

Two topics (docs/mqtt.md):

- `v1.1/Datastreams(ID)/Observations`, the SensorThings MQTT extension: one Observation as JSON, e.g.
  `{"phenomenonTime": "2026-11-29T05:00:00Z", "result": 231.5}` (`phenomenonTime` defaults to the time the
  message was received; `resultTime`, `parameters` are kept when given).
- `kotacerdas/{device_key_id}/up`, the compact topic of one device: several readings at one time,
  `{"t": "2026-11-29T05:00:00Z", "r": {"12": 231.5, "rain": 0.2}, "battery": 87, "rssi": -71}`. The keys of `r`
  are Datastream ids or the `short_name` in a Datastream's properties; every one must belong to the device's
  Thing. `t` is ISO 8601 with a zone or seconds since 1970 (default: receive time); `battery` (%) and `rssi`
  (dBm) update the Thing's health.

A message is taken whole or refused whole: one bad reading refuses the message, with a reason naming it. Parsing
never touches the database: what it needs about Datastreams and devices is in a `Directory` loaded by the worker.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from kotacerdas.i18n import lazy_gettext
from kotacerdas.sensors.store import NewObservation

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
MEASUREMENT = OM + "OM_Measurement"
COUNT = OM + "OM_CountObservation"
TRUTH = OM + "OM_TruthObservation"
CATEGORY = OM + "OM_CategoryObservation"
ANY_RESULT = OM + "OM_Observation"

# A message larger than this is refused unread: a sensor reading is some tens of bytes, 50 readings about 1 KB.
MAX_MESSAGE_BYTES = 64 * 1024
# Readings in one compact message (a batch of 1,000 messages stays a bounded transaction).
MAX_READINGS = 500
# Clocks of cheap devices drift; a reading stamped more than this ahead of the receive time is refused.
MAX_FUTURE = timedelta(days=1)
# A text result (OM_CategoryObservation, OM_Observation) longer than this is refused.
MAX_TEXT_RESULT = 4096

STANDARD_TOPIC = re.compile(r"^v1\.1/Datastreams\(([0-9]{1,10})\)/Observations$")
COMPACT_TOPIC = re.compile(r"^kotacerdas/([A-Za-z0-9_-]{1,40})/up$")

# Why a message is refused: the code (the `reason` label of kotacerdas_ingest_dead_letters_total, the start of
# the stored reason) and its label for people (the console shows it translated, the stored detail stays English).
REASONS: dict[str, Any] = {
    "oversized": lazy_gettext("Message too large"),
    "malformed_json": lazy_gettext("Not valid JSON"),
    "not_finite": lazy_gettext("NaN or Infinity as a value"),
    "invalid": lazy_gettext("Not a valid observation message"),
    "unknown_topic": lazy_gettext("Unknown topic"),
    "unknown_datastream": lazy_gettext("Unknown datastream"),
    "unknown_device": lazy_gettext("Unknown device key"),
    "not_owner": lazy_gettext("Datastream of another device"),
    "wrong_result_type": lazy_gettext("Result of the wrong type for the datastream"),
    "invalid_time": lazy_gettext("Invalid time"),
    "future_time": lazy_gettext("Time more than a day in the future"),
    "store_error": lazy_gettext("Refused by the observation store"),
}


class Refused(Exception):
    """A message that cannot be stored: `code` is one of REASONS, `detail` says what in English."""

    def __init__(self, code: str, detail: str, *, thing_id: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.thing_id = code, detail, thing_id

    @property
    def reason(self) -> str:
        """The text stored in the dead letter: `code: detail` (500 characters at most)."""
        return f"{self.code}: {self.detail}"[:500]


@dataclass(frozen=True, slots=True)
class DatastreamInfo:
    """What parsing needs of a Datastream."""

    id: int
    thing_id: int
    observation_type: str


@dataclass(slots=True)
class DeviceInfo:
    """A device (Thing) addressed by its key id on the compact topic, with its Datastreams by id and short name."""

    thing_id: int
    datastreams: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Directory:
    """The Datastreams and devices messages may name, loaded from the database (`ingest.load_directory`)."""

    datastreams: dict[int, DatastreamInfo] = field(default_factory=dict)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    """What a device reported about itself."""

    thing_id: int
    seen_at: datetime
    battery_percent: float | None = None
    signal_dbm: float | None = None


@dataclass(slots=True)
class Parsed:
    """A message read and checked: its observations and the device's health. `timed` is true when the message gave
    the time: only then is (datastream, phenomenonTime) a natural key for de-duplicating a redelivery."""

    readings: list[NewObservation]
    thing_id: int | None
    health: Health | None = None
    timed: bool = True


def parse_message(topic: str, payload: bytes, *, directory: Directory, received_at: datetime) -> Parsed:
    """Read and check one message; raises Refused naming what is wrong (it never touches the database)."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise Refused("oversized", f"{len(payload)} bytes, at most {MAX_MESSAGE_BYTES}")
    match = STANDARD_TOPIC.match(topic)
    if match:
        return _parse_standard(int(match.group(1)), payload, directory=directory, received_at=received_at)
    match = COMPACT_TOPIC.match(topic)
    if match:
        return _parse_compact(match.group(1), payload, directory=directory, received_at=received_at)
    raise Refused("unknown_topic", f"topic {topic[:200]!r} is neither v1.1/Datastreams(ID)/Observations nor "
                  "kotacerdas/{device_key_id}/up")  # fmt: skip


def _load(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        # orjson refuses NaN and Infinity like any bad token; say which it was, as devices do send them.
        try:
            json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
        except Refused:
            raise
        except (ValueError, UnicodeDecodeError):
            pass
        raise Refused("malformed_json", str(exc)[:300]) from None


def _refuse_constant(name: str) -> Any:
    raise Refused("not_finite", f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused("not_finite", f"{text[:40]} is too large for a number")
    return value


def _parse_standard(datastream_id: int, payload: bytes, *, directory: Directory, received_at: datetime) -> Parsed:
    datastream = directory.datastreams.get(datastream_id)
    if datastream is None:
        raise Refused("unknown_datastream", f"Datastream {datastream_id} does not exist")
    body = _load(payload)
    if not isinstance(body, dict):
        raise Refused("invalid", "the message must be a JSON object (an Observation)", thing_id=datastream.thing_id)
    if "result" not in body:
        raise Refused("invalid", "the Observation has no result", thing_id=datastream.thing_id)
    try:
        given = body.get("phenomenonTime")
        phenomenon_time = _instant(given, "phenomenonTime", received_at) if given is not None else received_at
        result_time = body.get("resultTime")
        result_time = _instant(result_time, "resultTime", received_at) if result_time is not None else None
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise Refused("invalid", "parameters must be a JSON object")
        result = check_result(body["result"], datastream.observation_type, "result")
    except Refused as refused:
        refused.thing_id = datastream.thing_id
        raise
    reading = NewObservation(datastream_id, phenomenon_time, result, result_time=result_time, parameters=parameters)
    return Parsed([reading], datastream.thing_id, Health(datastream.thing_id, received_at), timed=given is not None)


def _parse_compact(key_id: str, payload: bytes, *, directory: Directory, received_at: datetime) -> Parsed:
    device = directory.devices.get(key_id)
    if device is None:
        raise Refused("unknown_device", f"no device has the key id {key_id!r}")
    thing_id = device.thing_id
    try:
        body = _load(payload)
        if not isinstance(body, dict):
            raise Refused("invalid", 'the message must be a JSON object like {"t": …, "r": {…}}')
        readings = body.get("r")
        if not isinstance(readings, dict) or not readings:
            raise Refused("invalid", '"r" must be an object of readings {"<datastream>": value, …}')
        if len(readings) > MAX_READINGS:
            raise Refused("oversized", f"{len(readings)} readings, at most {MAX_READINGS}")
        given = body.get("t")
        moment = _instant(given, "t", received_at) if given is not None else received_at
        rows = []
        streams, datastreams = device.datastreams, directory.datastreams
        for name, value in readings.items():
            datastream_id = streams.get(name)
            if datastream_id is None:
                raise _not_this_device(name, directory, thing_id)
            # The common case, a finite number for a measurement, without a call (50 readings a message).
            if not (type(value) is float and value - value == 0 or type(value) is int) or (
                datastreams[datastream_id].observation_type != MEASUREMENT
            ):
                value = check_result(value, datastreams[datastream_id].observation_type, f"r.{name}")
            rows.append(NewObservation(datastream_id, moment, value))
        battery = _optional_number(body, "battery", 0, 100)
        rssi = _optional_number(body, "rssi", -200, 50)
    except Refused as refused:
        refused.thing_id = thing_id
        raise
    return Parsed(rows, thing_id, Health(thing_id, received_at, battery, rssi), timed=given is not None)


def _not_this_device(name: str, directory: Directory, thing_id: int) -> Refused:
    if name.isdecimal() and int(name) in directory.datastreams:
        owner = directory.datastreams[int(name)].thing_id
        return Refused("not_owner", f"r.{name}: Datastream {name} belongs to Thing {owner}, not to Thing {thing_id}")
    return Refused("unknown_datastream", f"r.{name}: the device has no Datastream with this id or short name")


def _optional_number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused("invalid", f"{name} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise Refused("invalid", f"{name} must be between {low:g} and {high:g}")
    return float(value)


def _instant(value: Any, name: str, received_at: datetime) -> datetime:
    """An ISO 8601 time with a zone (an interval's start), or seconds since 1970; not more than a day ahead."""
    if isinstance(value, bool):
        raise Refused("invalid_time", f"{name} must be an ISO 8601 time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 32503680000:
            raise Refused("invalid_time", f"{name}: {value!r} is not a time in seconds since 1970")
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str) and len(value) <= 80:
        text = value.split("/", 1)[0]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise Refused("invalid_time", f"{name}: {value!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise Refused("invalid_time", f"{name}: {value!r} has no time zone (add Z or +07:00)")
        moment = moment.astimezone(UTC)
    else:
        raise Refused("invalid_time", f"{name} must be an ISO 8601 time")
    if moment - received_at > MAX_FUTURE:
        raise Refused("future_time", f"{name} {moment.isoformat()} is more than a day after the receive time")
    return moment


def check_result(value: Any, observation_type: str, where: str) -> Any:
    """`value` if it fits the Datastream's observationType, else Refused (wrong type, NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise Refused("not_finite", f"{where}: {value!r} is not a finite number")
    if observation_type == MEASUREMENT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Refused("wrong_result_type", f"{where}: {_shown(value)} is not a number (OM_Measurement)")
        return value
    if observation_type == COUNT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused("wrong_result_type", f"{where}: {_shown(value)} is not an integer (OM_CountObservation)")
        if abs(value) >= 2**63:
            raise Refused("wrong_result_type", f"{where}: {value} is too large for a count")
        return value
    if observation_type == TRUTH:
        if not isinstance(value, bool):
            raise Refused("wrong_result_type", f"{where}: {_shown(value)} is not true or false (OM_TruthObservation)")
        return value
    if observation_type == CATEGORY:
        if not isinstance(value, str) or len(value) > MAX_TEXT_RESULT:
            raise Refused("wrong_result_type", f"{where}: {_shown(value)} is not a category text")
        return value
    # OM_Observation (any JSON) and types this version does not know: any finite value, bounded in size.
    if isinstance(value, dict | list):
        _check_finite(value, where)
        if len(orjson.dumps(value)) > MAX_TEXT_RESULT:
            raise Refused("wrong_result_type", f"{where}: the result is longer than {MAX_TEXT_RESULT} bytes")
    elif isinstance(value, str) and len(value) > MAX_TEXT_RESULT:
        raise Refused("wrong_result_type", f"{where}: the result is longer than {MAX_TEXT_RESULT} characters")
    return value


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise Refused("not_finite", f"{where}: {value!r} is not a finite number")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_finite(item, where)


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"
