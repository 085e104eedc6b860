"""Realistic readings of the demo's devices, and the simulator that publishes them (`kotacerdas sensors simulate`).

The models are pure functions of (seed, device, time): the same seed gives the same readings, so the demo's history
(sensors/demo.py) and a later simulation agree, and tests can check the behaviour. Times are UTC; the day's rhythm
follows WIB (UTC+7, Musi Rawas).

- Rain: afternoon and evening storms per river basin and day (about half of the days), plus the storms of a
  scenario (`banjir`: six hours of heavy rain on every basin). A rain gauge reports the millimetres of its
  ten-minute window, in tipping-bucket steps of 0.2 mm.
- River level: a base level below waspada plus the response of the basin's rain through a unit hydrograph
  (g(τ) = (τ/T)^4 e^{4(1-τ/T)}, peak 1 at the gauge's lag T hours): a rise hours after the rain, then a slower
  recession. The gain is chosen so that the `banjir` storm takes the river between its siaga and awas levels.
- Temperature: 23 °C before dawn (06:00 WIB) to 32 °C at 14:00, cooler under rain; humidity the other way round.
- PM2.5: a morning (07:00) and an evening (18:30) peak, log-normal noise, now and then an hour of burning, washed
  out by rain.
- Street lights: on from 18:00 to 06:00 WIB, dimmed to 70 % from midnight to 04:00; a few watts on standby.
- Traffic: vehicles per five minutes with morning and afternoon rush hours, lower at the weekend, Poisson noise.
- CCTV: online, except for an outage of 15 to 120 minutes on some days.

The simulator reads the demo's device file (written by `kotacerdas demo`, mode 0600: each device's key, its
Datastreams by short name and its model parameters) and publishes, for each device every `interval` seconds of
simulated time, one compact MQTT message `kotacerdas/{device_key_id}/up` at QoS 1 with all its readings, or one
HTTP `CreateObservations` request with the device key as Bearer token. Simulated time runs `speed` times faster
than the clock and readings carry it as their time; it never runs more than HORIZON ahead of the clock, since
ingest refuses readings stamped more than a day ahead (a run of a set length that would is refused; an endless
one is held there and goes on at the clock's pace).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

WIB = timezone(timedelta(hours=7), "WIB")
DEVICES_FILE = "sensor-demo-devices.json"
# Simulated time never runs further ahead of the clock than this (ingest refuses a day ahead).
HORIZON = timedelta(hours=23)

# Device kinds (Thing.properties["jenis"]).
FLOOD_GAUGE = "pos_duga_air"
RAIN_GAUGE = "penakar_hujan"
AIR_MONITOR = "kualitas_udara"
STREET_LIGHT = "pju_pintar"
TRAFFIC_COUNTER = "penghitung_lalu_lintas"
CCTV = "cctv"
KINDS = (FLOOD_GAUGE, RAIN_GAUGE, AIR_MONITOR, STREET_LIGHT, TRAFFIC_COUNTER, CCTV)
# Kinds whose reading is defined over a fixed window (seconds), whatever the reporting interval.
FIXED_PERIOD = {RAIN_GAUGE: 600, TRAFFIC_COUNTER: 300}
# Kinds running on a battery charged by a solar panel (they report their battery).
ON_BATTERY = {FLOOD_GAUGE, RAIN_GAUGE, AIR_MONITOR}

SCENARIOS = ("normal", "banjir")
# The `banjir` storm: starts this long after the scenario starts, lasts BANJIR_HOURS at up to BANJIR_PEAK mm/h.
BANJIR_DELAY = timedelta(minutes=30)
BANJIR_HOURS = 6.0
BANJIR_PEAK_MM_H = 40.0
# Where the river peaks during the `banjir` storm: this far from siaga towards awas.
BANJIR_TARGET = 0.5
HYDROGRAPH_N = 4
PULSE_H = 0.5


# --- deterministic noise ------------------------------------------------------------------------------------------


def unit(*keys: Any) -> float:
    """A number in [0, 1) that depends only on `keys` (not on PYTHONHASHSEED or the run)."""
    digest = hashlib.blake2b("\x1f".join(map(str, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def gauss(*keys: Any) -> float:
    """A standard normal number that depends only on `keys` (Box–Muller)."""
    u1 = max(unit(*keys, "a"), 1e-12)
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * unit(*keys, "b"))


def wib_hour(t: datetime) -> float:
    """The hour of the day in WIB, with its fraction (0 ≤ h < 24)."""
    local = t.astimezone(WIB)
    return local.hour + local.minute / 60 + local.second / 3600


# --- rain ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storm:
    """Rain on a basin (None: every basin) from `start` for `hours`, shaped as half a sine peaking at `peak_mm_h`."""

    start: datetime
    hours: float
    peak_mm_h: float
    basin: str | None = None

    def rate(self, t: datetime) -> float:
        into = (t - self.start).total_seconds() / 3600
        if not 0 <= into <= self.hours:
            return 0.0
        return self.peak_mm_h * math.sin(math.pi * into / self.hours)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "hours": self.hours, "peak_mm_h": self.peak_mm_h, "basin": self.basin}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Storm:
        start = datetime.fromisoformat(data["start"]).astimezone(UTC)
        return cls(start, float(data["hours"]), float(data["peak_mm_h"]), data.get("basin"))


def banjir_storm(start: datetime, basin: str | None = None) -> Storm:
    """The storm of the `banjir` scenario begun at `start`."""
    return Storm(start + BANJIR_DELAY, BANJIR_HOURS, BANJIR_PEAK_MM_H, basin)


@dataclass(frozen=True)
class Scenario:
    """What happens besides the daily weather: extra storms (the `banjir` scenario's, the demo's)."""

    name: str = "normal"
    storms: tuple[Storm, ...] = ()

    @classmethod
    def of(cls, name: str, *, start: datetime, storms: Iterable[Storm] = ()) -> Scenario:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
        extra = (banjir_storm(start),) if name == "banjir" else ()
        return cls(name, tuple(storms) + extra)

    def storms_for(self, basin: str | None) -> tuple[Storm, ...]:
        return tuple(s for s in self.storms if s.basin is None or basin is None or s.basin == basin)


@lru_cache(maxsize=4096)
def daily_storms(seed: int, basin: str, day: date) -> tuple[Storm, ...]:
    """The day's (WIB) convective storms on a basin: one in the afternoon or evening on about half of the days,
    and now and then a second at night."""
    storms = []
    midnight = datetime(day.year, day.month, day.day, tzinfo=WIB)
    if unit(seed, "storm", basin, day) < 0.5:
        starts = 13 + 6 * unit(seed, "storm-start", basin, day)
        hours = 0.75 + 2.25 * unit(seed, "storm-hours", basin, day)
        peak = 4 + 22 * unit(seed, "storm-peak", basin, day) ** 1.5
        storms.append(Storm((midnight + timedelta(hours=starts)).astimezone(UTC), hours, peak, basin))
    if unit(seed, "night", basin, day) < 0.15:
        starts = 22 + 4 * unit(seed, "night-start", basin, day)
        hours = 1 + 3 * unit(seed, "night-hours", basin, day)
        peak = 2 + 8 * unit(seed, "night-peak", basin, day)
        storms.append(Storm((midnight + timedelta(hours=starts)).astimezone(UTC), hours, peak, basin))
    return tuple(storms)


def storms_near(seed: int, basin: str, t: datetime, scenario: Scenario, *, days_back: int = 0) -> list[Storm]:
    """The storms that may rain on `basin` at `t` (or, with `days_back`, in the days before)."""
    today = t.astimezone(WIB).date()
    found: list[Storm] = []
    for back in range(days_back + 2):
        found += daily_storms(seed, basin, today - timedelta(days=back))
    return found + list(scenario.storms_for(basin))


def rain_rate(seed: int, basin: str, t: datetime, scenario: Scenario = Scenario()) -> float:
    """Rain intensity on the basin at `t`, mm/h."""
    return sum(storm.rate(t) for storm in storms_near(seed, basin, t, scenario))


def rainfall(seed: int, basin: str, end: datetime, seconds: float, scenario: Scenario = Scenario()) -> float:
    """Millimetres of rain in the window of `seconds` ending at `end`, in tipping-bucket steps of 0.2 mm (Simpson's
    rule on the intensity)."""
    start = end - timedelta(seconds=seconds)
    middle = start + timedelta(seconds=seconds / 2)
    rates = [rain_rate(seed, basin, moment, scenario) for moment in (start, middle, end)]
    depth = (rates[0] + 4 * rates[1] + rates[2]) / 6 * seconds / 3600
    return round(math.floor(depth / 0.2 + 1e-9) * 0.2, 1)


# --- rivers -------------------------------------------------------------------------------------------------------


def hydrograph(hours_after: float, lag_hours: float) -> float:
    """The unit response of a river to a pulse of rain `hours_after` it fell: peak 1 at the lag."""
    if hours_after <= 0:
        return 0.0
    x = hours_after / lag_hours
    return x**HYDROGRAPH_N * math.exp(HYDROGRAPH_N * (1 - x))


@lru_cache(maxsize=4096)
def _pulses(storm: Storm) -> tuple[tuple[float, float], ...]:
    """A storm as pulses of PULSE_H hours: (middle as a POSIX timestamp, mm)."""
    count = max(1, math.ceil(storm.hours / PULSE_H))
    width = storm.hours / count
    pulses = []
    for index in range(count):
        middle = storm.start + timedelta(hours=width * (index + 0.5))
        pulses.append((middle.timestamp(), storm.rate(middle) * width))
    return tuple(pulses)


def storm_response(storms: Iterable[Storm], t: datetime, lag_hours: float) -> float:
    """Millimetres of rain, weighted by the hydrograph, that reach the gauge at `t`."""
    total = 0.0
    now = t.timestamp()
    for storm in storms:
        if storm.start > t:
            continue
        for middle, mm in _pulses(storm):
            total += mm * hydrograph((now - middle) / 3600, lag_hours)
    return total


@lru_cache(maxsize=64)
def banjir_peak_response(lag_hours: float) -> float:
    """The highest `storm_response` of the `banjir` storm alone, for a gauge with this lag."""
    storm = banjir_storm(datetime(2000, 1, 1, tzinfo=UTC))
    steps = int((BANJIR_HOURS + 4 * lag_hours) * 6)
    return max(storm_response([storm], storm.start + timedelta(minutes=10 * i), lag_hours) for i in range(steps))


@dataclass(frozen=True)
class RiverGauge:
    """The model of one flood gauge: its basin, levels (cm) and lag (hours)."""

    basin: str
    waspada: float
    siaga: float
    awas: float
    lag_hours: float = 5.0

    @property
    def base(self) -> float:
        return round(self.waspada * 0.6, 1)

    @property
    def gain(self) -> float:
        """Centimetres of rise per weighted millimetre of rain."""
        target = self.siaga + BANJIR_TARGET * (self.awas - self.siaga)
        return (target - self.base) / banjir_peak_response(self.lag_hours)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RiverGauge:
        levels = params["levels"]
        return cls(params["basin"], levels["waspada"], levels["siaga"], levels["awas"], params.get("lag_hours", 5.0))


def river_level(seed: int, gauge: RiverGauge, t: datetime, scenario: Scenario = Scenario(), *, key: str = "") -> float:
    """Water level at the gauge at `t`, cm (rounded to 1 cm, as radar gauges report)."""
    days_back = math.ceil(4 * gauge.lag_hours / 24) + 1
    storms = storms_near(seed, gauge.basin, t, scenario, days_back=days_back)
    seasonal = 0.06 * gauge.base * math.sin(2 * math.pi * (t.timestamp() / 86400) / 11 + unit(seed, gauge.basin))
    noise = 1.2 * gauss(seed, "level", key, int(t.timestamp()) // 60)
    return round(gauge.base + seasonal + gauge.gain * storm_response(storms, t, gauge.lag_hours) + noise)


# --- weather and air ------------------------------------------------------------------------------------------------

TEMP_MIN, TEMP_MAX = 23.0, 32.0


def temperature(seed: int, key: str, t: datetime, rain_mm_h: float = 0.0) -> float:
    """Air temperature, °C: coolest at 06:00 WIB, warmest at 14:00, cooler under rain."""
    h = wib_hour(t)
    span = TEMP_MAX - TEMP_MIN
    if 6 <= h < 14:
        value = TEMP_MIN + span * (1 - math.cos(math.pi * (h - 6) / 8)) / 2
    else:
        value = TEMP_MAX - span * (1 - math.cos(math.pi * ((h - 14) % 24) / 16)) / 2
    value -= min(3.5, 0.35 * rain_mm_h)
    value += 0.25 * gauss(seed, "temp", key, int(t.timestamp()) // 60)
    return round(value, 1)


def humidity(seed: int, key: str, t: datetime, rain_mm_h: float = 0.0) -> float:
    """Relative humidity, %: high at night and under rain, lowest in the early afternoon."""
    value = 100 - (temperature(seed, key, t, rain_mm_h) - 21) * 4.5 + min(8.0, 1.5 * rain_mm_h)
    value += 1.5 * gauss(seed, "rh", key, int(t.timestamp()) // 60)
    return round(min(100.0, max(40.0, value)), 1)


def _bump(h: float, centre: float, width: float) -> float:
    distance = min(abs(h - centre), 24 - abs(h - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


def pm25(seed: int, key: str, t: datetime, rain_mm_h: float = 0.0, *, base: float = 14.0) -> float:
    """PM2.5, µg/m³: a morning and an evening peak (traffic, cooking), noisy, an hour of burning now and then,
    washed out by rain."""
    h = wib_hour(t)
    value = base + 20 * _bump(h, 7.0, 1.2) + 26 * _bump(h, 18.5, 1.5)
    value *= math.exp(0.22 * gauss(seed, "pm", key, int(t.timestamp()) // 60))
    if unit(seed, "burning", key, int(t.timestamp()) // 3600) < 0.03:
        value *= 2.5
    value /= 1 + 0.15 * rain_mm_h
    return round(max(2.0, value), 1)


# --- street lights, traffic, CCTV -----------------------------------------------------------------------------------

DUSK_H, DAWN_H = 18.0, 6.0


def light_on(t: datetime) -> bool:
    """Whether a street light is on at `t`: from dusk (18:00 WIB) to dawn (06:00 WIB)."""
    h = wib_hour(t)
    return h >= DUSK_H or h < DAWN_H


def light_power(seed: int, key: str, t: datetime, rated_w: float, *, faulty: bool = False) -> float:
    """Power drawn, W: the rated power while on (70 % from midnight to 04:00), standby otherwise; a faulty lamp
    draws only its standby."""
    standby = 0.8
    if not light_on(t) or faulty:
        return standby
    dim = 0.7 if wib_hour(t) < 4 else 1.0
    return round(rated_w * dim * (1 + 0.01 * gauss(seed, "w", key, int(t.timestamp()) // 60)), 1)


def traffic_rate(t: datetime, peak_per_5min: float) -> float:
    """Expected vehicles per five minutes at `t`."""
    h = wib_hour(t)
    weekend = t.astimezone(WIB).weekday() >= 5
    rush = 0.5 if weekend else 1.0
    profile = 0.06 + 0.5 * _bump(h, 12.5, 3.5) * (1.2 if weekend else 1.0)
    profile += rush * (_bump(h, 7.2, 0.9) + 0.9 * _bump(h, 16.8, 1.2))
    return peak_per_5min * min(1.0, profile)


def vehicles(seed: int, key: str, t: datetime, peak_per_5min: float, rain_mm_h: float = 0.0) -> int:
    """Vehicles counted in the five minutes ending at `t` (Poisson around `traffic_rate`; fewer in heavy rain)."""
    rate = traffic_rate(t, peak_per_5min) * (0.8 if rain_mm_h > 10 else 1.0)
    rng = random.Random(f"{seed}:veh:{key}:{int(t.timestamp()) // 60}")
    if rate > 30:
        return max(0, round(rng.gauss(rate, math.sqrt(rate))))
    limit, count, product = math.exp(-rate), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def cctv_online(seed: int, key: str, t: datetime) -> bool:
    """Whether a camera answers at `t`: down for 15–120 minutes on about one day in eight."""
    day = t.astimezone(WIB).date()
    for back in (0, 1):
        when = day - timedelta(days=back)
        if unit(seed, "outage", key, when) < 0.125:
            midnight = datetime(when.year, when.month, when.day, tzinfo=WIB)
            start = midnight + timedelta(hours=24 * unit(seed, "outage-at", key, when))
            length = timedelta(minutes=15 + 105 * unit(seed, "outage-len", key, when))
            if start <= t < start + length:
                return False
    return True


def battery(seed: int, key: str, t: datetime) -> float:
    """Battery of a solar-charged device, %: charges from 08:00 to 16:00 WIB, drains slowly at night."""
    h = wib_hour(t)
    if 8 <= h < 16:
        level = 78 + 20 * (h - 8) / 8
    else:
        level = 98 - 20 * ((h - 16) % 24) / 16
    level += 4 * (unit(seed, "battery", key) - 0.5) + 0.3 * gauss(seed, "bat", key, int(t.timestamp()) // 600)
    return round(min(100.0, max(5.0, level)))


def signal(seed: int, key: str, t: datetime) -> float:
    """Signal strength of the device's cellular link, dBm."""
    site = -70 - 25 * unit(seed, "site", key)
    return round(site + 3 * gauss(seed, "rssi", key, int(t.timestamp()) // 600))


# --- devices --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A demo device as the simulator knows it: its Thing, key, Datastreams by short name and model parameters."""

    kode: str
    kind: str
    name: str
    thing_id: int | None
    key: str | None
    datastreams: dict[str, int]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key_id(self) -> str | None:
        return self.key.partition(".")[0] if self.key else None

    @property
    def period_s(self) -> int | None:
        """The window a reading covers, when fixed by what it measures (rain per 10 minutes, vehicles per 5)."""
        return FIXED_PERIOD.get(self.kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "kode": self.kode, "kind": self.kind, "name": self.name, "thing_id": self.thing_id, "key": self.key,
            "datastreams": self.datastreams, "params": self.params,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        return cls(
            kode=data["kode"], kind=data["kind"], name=data.get("name", data["kode"]), thing_id=data.get("thing_id"),
            key=data.get("key"), datastreams={k: int(v) for k, v in data["datastreams"].items()},
            params=data.get("params") or {},
        )  # fmt: skip


def readings(device: Device, t: datetime, *, seed: int, scenario: Scenario = Scenario()) -> dict[str, Any]:
    """The device's readings at `t`, by Datastream short name."""
    p, key = device.params, device.kode
    basin = p.get("basin")
    kind = device.kind
    rain_now = rain_rate(seed, basin, t, scenario) if basin and kind in (AIR_MONITOR, TRAFFIC_COUNTER) else 0.0
    if kind == FLOOD_GAUGE:
        return {"level": river_level(seed, RiverGauge.from_params(p), t, scenario, key=key)}
    if kind == RAIN_GAUGE:
        return {"rain": rainfall(seed, basin, t, FIXED_PERIOD[RAIN_GAUGE], scenario)}
    if kind == AIR_MONITOR:
        return {
            "pm25": pm25(seed, key, t, rain_now, base=p.get("pm25_base", 14.0)),
            "temp": temperature(seed, key, t, rain_now),
            "rh": humidity(seed, key, t, rain_now),
        }
    if kind == STREET_LIGHT:
        on = light_on(t)
        return {"on": on, "power": light_power(seed, key, t, p.get("rated_w", 90.0), faulty=p.get("faulty", False))}
    if kind == TRAFFIC_COUNTER:
        return {"vehicles": vehicles(seed, key, t, p.get("peak_per_5min", 120.0), rain_now)}
    if kind == CCTV:
        return {"online": cctv_online(seed, key, t)}
    raise ValueError(f"unknown device kind {kind!r}")


def health(device: Device, t: datetime, *, seed: int) -> dict[str, float]:
    """What the device says about itself: battery (% , devices on a solar panel) and signal (dBm)."""
    found = {"rssi": signal(seed, device.kode, t)}
    if device.kind in ON_BATTERY:
        found["battery"] = battery(seed, device.kode, t)
    return found


def compact_message(device: Device, t: datetime, *, seed: int, scenario: Scenario = Scenario()) -> dict[str, Any]:
    """The compact MQTT payload of the device at `t` (docs/mqtt.md)."""
    return {"t": iso(t), "r": readings(device, t, seed=seed, scenario=scenario), **health(device, t, seed=seed)}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- the device file ------------------------------------------------------------------------------------------------


@dataclass
class DeviceFile:
    """What `kotacerdas demo` leaves for the simulator: the seed, the storms already in the history, the devices."""

    seed: int
    devices: list[Device]
    storms: list[Storm] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """Write the file readable by its owner only (it holds the device keys), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "about": "Demo devices of kotacerdas with their keys (secret): read by `kotacerdas sensors simulate`.",
            "seed": self.seed,
            "storms": [storm.as_json() for storm in self.storms],
            "devices": [device.as_json() for device in self.devices],
        }
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> DeviceFile:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            seed=int(data.get("seed", 1605)),
            devices=[Device.from_json(item) for item in data["devices"]],
            storms=[Storm.from_json(item) for item in data.get("storms", [])],
        )


def select_devices(devices: Sequence[Device], wanted: Sequence[str] | None) -> list[Device]:
    """The devices named in `wanted` by kode, Thing id or kind (all when empty); ValueError naming an unknown one."""
    if not wanted:
        return list(devices)
    chosen: dict[str, Device] = {}
    for name in wanted:
        name = name.strip()
        if not name:
            continue
        lowered = name.lower()
        matches = [
            d for d in devices if lowered in (d.kode.lower(), d.kind) or (name.isdecimal() and d.thing_id == int(name))
        ]
        if not matches:
            kinds = ", ".join(KINDS)
            raise ValueError(f"no demo device {name!r} (a kode such as PDA-01, a Thing id, or a kind: {kinds})")
        chosen.update((d.kode, d) for d in matches)
    return [d for d in devices if d.kode in chosen]


# --- publishing -----------------------------------------------------------------------------------------------------


@dataclass
class SimulationOptions:
    """How to simulate: see `kotacerdas sensors simulate --help`."""

    via: str = "mqtt"
    broker: tuple[str, int] = ("127.0.0.1", 1883)
    mqtt_login: str = "device"  # device: one connection per device with its key; shared: one anonymous connection
    url: str = "http://127.0.0.1:8000"
    rate: float = 0.0  # messages (or requests) per second at most; 0: no limit
    duration: float = 60.0  # wall seconds; 0: until stopped
    speed: float = 1.0
    interval: float = 60.0  # simulated seconds between a device's readings
    scenario: str = "normal"
    start: datetime | None = None  # simulated start (default: now)


@dataclass
class SimulationStats:
    """What a run published."""

    messages: int = 0
    observations: int = 0
    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)
    first_time: datetime | None = None
    last_time: datetime | None = None


def schedule(device: Device, start: datetime, interval: float) -> Iterable[datetime]:
    """The device's reading times from `start`: on the grid of its fixed period or of `interval`."""
    step = device.period_s or interval
    epoch = start.timestamp()
    first = math.ceil(epoch / step) * step
    index = 0
    while True:
        yield datetime.fromtimestamp(first + index * step, UTC)
        index += 1


class _MqttSink:
    """Publishes compact messages at QoS 1: one connection per device (its key id and secret as the broker login,
    as a broker with an ACL requires), or one shared connection."""

    def __init__(self, options: SimulationOptions, devices: Sequence[Device]) -> None:
        import paho.mqtt.client as mqtt

        self.pending: list[Any] = []
        self.clients: dict[str, Any] = {}
        host, port = options.broker
        logins = [(d.key_id, d.key) for d in devices] if options.mqtt_login == "device" else [(None, None)]
        for key_id, key in logins:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{key_id or os.getpid()}")
            client.max_inflight_messages_set(200)
            client.max_queued_messages_set(0)
            if key_id and key:
                client.username_pw_set(key_id, key.partition(".")[2])
            client.connect(host, port, keepalive=30)
            client.loop_start()
            self.clients[key_id or ""] = client

    def send(self, device: Device, t: datetime, payload: dict[str, Any]) -> None:
        client = self.clients.get(device.key_id or "") or self.clients[""]
        info = client.publish(f"kotacerdas/{device.key_id}/up", json.dumps(payload), qos=1)
        self.pending.append(info)

    def close(self, timeout: float, stats: SimulationStats) -> None:
        deadline = time.monotonic() + timeout
        for info in self.pending:
            remaining = deadline - time.monotonic()
            if remaining > 0 and not info.is_published():
                try:
                    info.wait_for_publish(remaining)
                except (RuntimeError, ValueError) as error:
                    stats.errors.append(f"MQTT: {error}")
        stats.acknowledged = sum(1 for info in self.pending if info.is_published())
        for client in self.clients.values():
            client.disconnect()
            client.loop_stop()


class _HttpSink:
    """POSTs one SensorThings CreateObservations request per reading time, with the device key as Bearer token."""

    def __init__(self, options: SimulationOptions) -> None:
        import httpx

        self.client = httpx.Client(base_url=options.url.rstrip("/"), timeout=30)
        self.acknowledged = 0
        self.errors: list[str] = []

    def send(self, device: Device, t: datetime, payload: dict[str, Any]) -> None:
        body = [
            {"Datastream": {"@iot.id": device.datastreams[name]}, "components": ["phenomenonTime", "result"],
             "dataArray": [[payload["t"], value]]}
            for name, value in payload["r"].items()
        ]  # fmt: skip
        response = self.client.post(
            "/sensorthings/v1.1/CreateObservations", json=body, headers={"Authorization": f"Bearer {device.key}"}
        )
        if response.status_code == 201:
            self.acknowledged += 1
        else:
            self.errors.append(f"{device.kode} {payload['t']}: HTTP {response.status_code} {response.text[:300]}")

    def close(self, timeout: float, stats: SimulationStats) -> None:
        stats.acknowledged = self.acknowledged
        stats.errors += self.errors
        self.client.close()


def run_simulation(
    devices: Sequence[Device],
    options: SimulationOptions,
    *,
    seed: int,
    storms: Sequence[Storm] = (),
    stop_event: threading.Event | None = None,
    now: Callable[[], datetime] | None = None,
    on_message: Callable[[Device, dict[str, Any]], None] | None = None,
) -> SimulationStats:
    """Publish the devices' readings from `options.start` (default now) for `options.duration` wall seconds with
    simulated time running `options.speed` times faster; every reading due within the simulated span is sent, late
    if `options.rate` holds it back. Waits for the MQTT acknowledgements at the end."""
    now = now or (lambda: datetime.now(UTC))
    stop_event = stop_event or threading.Event()
    if options.via not in ("mqtt", "http"):
        raise ValueError("via must be mqtt or http")
    if options.speed <= 0 or options.interval <= 0 or options.rate < 0 or options.duration < 0:
        raise ValueError("speed and interval must be positive, rate and duration not negative")
    missing = [d.kode for d in devices if not d.key]
    if missing:
        raise ValueError(f"no device key for {', '.join(missing)}")
    sim_start = (options.start or now()).astimezone(UTC)
    scenario = Scenario.of(options.scenario, start=sim_start, storms=storms)
    # A run of a set length must fit under the horizon; an endless one is held at the horizon as the clock moves.
    sim_end = sim_start + timedelta(seconds=options.duration * options.speed) if options.duration else None
    if sim_end is not None and sim_end > now() + HORIZON:
        raise ValueError(
            f"the simulated span ends at {iso(sim_end)}, more than {HORIZON.total_seconds() / 3600:g} hours ahead of "
            "the clock (ingest refuses readings a day ahead): shorten --duration or --speed, or start earlier"
        )
    sink: Any = _MqttSink(options, devices) if options.via == "mqtt" else _HttpSink(options)
    stats = SimulationStats()
    queues = {d.kode: schedule(d, sim_start, options.interval) for d in devices}
    due = {d.kode: next(queues[d.kode]) for d in devices}
    by_kode = {d.kode: d for d in devices}
    wall_start = time.monotonic()
    gap = 1 / options.rate if options.rate else 0.0
    next_send = wall_start
    try:
        while not stop_event.is_set():
            sim_now = sim_start + timedelta(seconds=(time.monotonic() - wall_start) * options.speed)
            held = sim_now > now() + HORIZON
            sim_now = min(sim_now, now() + HORIZON, sim_end or sim_now)
            ready = sorted((t, kode) for kode, t in due.items() if t <= sim_now)
            if not ready:
                if sim_end is not None and min(due.values()) > sim_end:
                    break
                wait = (min(due.values()) - sim_now).total_seconds() / (1 if held else options.speed)
                stop_event.wait(min(max(wait, 0.001), 0.5))
                continue
            for t, kode in ready:
                if stop_event.is_set():
                    break
                if gap:
                    pause = next_send - time.monotonic()
                    if pause > 0:
                        stop_event.wait(pause)
                    next_send = max(next_send + gap, time.monotonic() - 1.0)
                device = by_kode[kode]
                payload = compact_message(device, t, seed=seed, scenario=scenario)
                sink.send(device, t, payload)
                if on_message is not None:
                    on_message(device, payload)
                stats.messages += 1
                stats.observations += len(payload["r"])
                stats.first_time = min(stats.first_time or t, t)
                stats.last_time = max(stats.last_time or t, t)
                due[kode] = next(queues[kode])
    finally:
        sink.close(30.0, stats)
    return stats
