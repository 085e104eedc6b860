"""The demo's connected devices: river gauges on the Musi, Kelingi, Lakitan and Beliti (with their waspada, siaga and
awas levels and their warning rules), rain gauges, air-quality monitors, smart street lights, traffic counters and
CCTV health, each placed at a demo asset (so inside its desa) and owned by its OPD, with three days of history
from the models of sensors/simulate.py and the devices' health.

Things are created through the SensorThings service as the demo admin (audited, placed in their desa like any
Thing); the history goes through the observation store in batches. Each device gets a key; the keys, with the
Datastreams and model parameters, are written to `<data_dir>/sensor-demo-devices.json` (mode 0600) for
`kotacerdas sensors simulate`. Nothing is done when Things exist already."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import NotFound
from kotacerdas.sensors import service, store
from kotacerdas.sensors import simulate as sim
from kotacerdas.sensors.devices import issue_device_key
from kotacerdas.sensors.messages import COUNT, MEASUREMENT, TRUTH
from kotacerdas.sensors.models import Datastream, Thing

DEFAULT_SEED = 1605
HISTORY_DAYS = 3
HISTORY_STEP = timedelta(minutes=10)
BATCH = 5000

# Lag (hours) of each river gauge site, by (river, kecamatan): upstream sites answer the rain first.
GAUGE_LAGS = {
    ("Musi", "16.05.14"): 3.0, ("Musi", "16.05.03"): 5.0, ("Musi", "16.05.02"): 7.0,
    ("Kelingi", "16.05.01"): 3.0, ("Kelingi", "16.05.13"): 4.0, ("Kelingi", "16.05.03"): 6.0,
    ("Lakitan", "16.05.10"): 3.0, ("Lakitan", "16.05.02"): 6.0,
    ("Beliti", "16.05.09"): 3.0, ("Beliti", "16.05.20"): 5.0,
}  # fmt: skip
# Rain gauges at the kantor camat of these kecamatan, one per basin upstream.
RAIN_SITES = (("Kantor Camat Tugumulyo", "Kelingi"), ("Kantor Camat STL Ulu Terawas", "Lakitan"),
              ("Kantor Camat BTS. Ulu", "Musi"), ("Kantor Camat Muara Beliti", "Beliti"))  # fmt: skip
# Air-quality monitors: (asset name, basin of the rain there, PM2.5 background µg/m³).
AIR_SITES = (("Taman Kota Musi Rawas", "Beliti", 12.0), ("Kantor Camat Tugumulyo", "Kelingi", 16.0),
             ("Kantor Camat Muara Lakitan", "Lakitan", 19.0))  # fmt: skip
STREET_LIGHTS = 6
TRAFFIC_COUNTERS = 4
# The demo's storm already in the history: rain on the Kelingi basin that began this long before the demo, so that
# the river at Muara Kelingi is near its siaga level now (the demo's events have a Kelingi flood warning).
KELINGI_STORM_BEFORE = timedelta(hours=9)
# A camera that went silent this long before the demo (the offline rule has something to show).
SILENT_CCTV = timedelta(hours=5)

UCUM = "http://unitsofmeasure.org/ucum.html"
UNITS = {
    "cm": {"name": "centimetre", "symbol": "cm", "definition": UCUM + "#para-30"},
    "mm": {"name": "millimetre", "symbol": "mm", "definition": UCUM + "#para-30"},
    "ugm3": {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": UCUM + "#ug/m3"},
    "cel": {"name": "degree Celsius", "symbol": "°C", "definition": UCUM + "#para-30"},
    "pct": {"name": "percent", "symbol": "%", "definition": UCUM + "#para-29"},
    "watt": {"name": "watt", "symbol": "W", "definition": UCUM + "#para-30"},
    "veh": {"name": "vehicles per 5 minutes", "symbol": "{kendaraan}/5min", "definition": UCUM + "#para-17"},
    "none": {"name": None, "symbol": None, "definition": None},
}
# short name → (Datastream name, description, observation type, unit, observed property key)
STREAMS = {
    "level": ("Tinggi muka air", "Tinggi muka air sungai terhadap nol peilschaal", MEASUREMENT, "cm", "level"),
    "rain": ("Curah hujan 10 menit", "Curah hujan dalam 10 menit terakhir", MEASUREMENT, "mm", "rain"),
    "pm25": ("PM2.5", "Konsentrasi partikulat halus PM2.5", MEASUREMENT, "ugm3", "pm25"),
    "temp": ("Suhu udara", "Suhu udara di sekitar alat", MEASUREMENT, "cel", "temp"),
    "rh": ("Kelembapan udara", "Kelembapan relatif udara", MEASUREMENT, "pct", "rh"),
    "on": ("Status lampu", "Lampu menyala (true) atau padam (false)", TRUTH, "none", "on"),
    "power": ("Daya lampu", "Daya listrik yang dipakai lampu", MEASUREMENT, "watt", "power"),
    "vehicles": ("Jumlah kendaraan", "Kendaraan yang melintas per 5 menit, dua arah", COUNT, "veh", "vehicles"),
    "online": ("Status kamera", "Kamera terhubung (true) atau tidak (false)", TRUTH, "none", "online"),
}
PROPERTIES = {
    "level": ("Tinggi muka air", "Tinggi permukaan air sungai"),
    "rain": ("Curah hujan", "Jumlah air hujan yang jatuh"),
    "pm25": ("PM2.5", "Partikulat berdiameter ≤ 2,5 µm di udara"),
    "temp": ("Suhu udara", "Suhu udara ambien"),
    "rh": ("Kelembapan relatif", "Kelembapan relatif udara"),
    "on": ("Status lampu", "Lampu penerangan jalan menyala atau padam"),
    "power": ("Daya listrik", "Daya listrik yang dipakai"),
    "vehicles": ("Volume lalu lintas", "Jumlah kendaraan yang melintas"),
    "online": ("Status perangkat", "Perangkat terhubung ke jaringan"),
}
# kind → (Sensor name, description, OPD short name, Datastream short names)
KINDS = {
    sim.FLOOD_GAUGE: ("Sensor radar tinggi muka air", "AWLR radar, tenaga surya, GSM", "BPBD", ("level",)),
    sim.RAIN_GAUGE: ("Penakar hujan otomatis", "ARG tipping bucket 0,2 mm, tenaga surya, GSM", "BPBD", ("rain",)),
    sim.AIR_MONITOR: ("Pemantau kualitas udara", "Sensor partikulat optik dan suhu-kelembapan", "DLH",
                      ("pm25", "temp", "rh")),
    sim.STREET_LIGHT: ("Pengendali PJU pintar", "Pengendali lampu dengan meter daya", "Dishub", ("on", "power")),
    sim.TRAFFIC_COUNTER: ("Penghitung kendaraan", "Penghitung kendaraan berbasis video", "Dishub", ("vehicles",)),
    sim.CCTV: ("Pemantau status CCTV", "Ping kamera dari command center", "Diskominfo", ("online",)),
}  # fmt: skip


@dataclass
class DemoSensors:
    """What the seeding made."""

    things: int = 0
    datastreams: int = 0
    observations: int = 0
    rules: int = 0
    devices_file: Path | None = None


def devices_path(settings: Settings) -> Path:
    """Where the demo writes its devices and their keys for the simulator."""
    return settings.data_dir / sim.DEVICES_FILE


def _assets_of(session: Session, type_codes: list[str]) -> list[Any]:
    from kotacerdas.assets import service as assets
    from kotacerdas.pagination import PageRequest

    page = assets.list_assets(
        session, filters=assets.AssetFilters(type_codes=type_codes), page=PageRequest(per_page=10_000)
    )
    return sorted(page.items, key=lambda asset: asset.id)


def _nearest_road(session: Session, lat: float, lon: float) -> int | None:
    from kotacerdas.assets import service as assets

    types = assets.types_by_id(session)
    for asset, _distance in assets.nearby_assets(session, lat=lat, lon=lon, radius_m=400, limit=20):
        if types[asset.type_id].code == "jalan":
            return asset.id
    return None


@dataclass
class DevicePlan:
    """A device to create: its kode, kind (sensors.simulate.KINDS), name, place, asset and model parameters."""

    kode: str
    kind: str
    name: str
    description: str
    lat: float
    lon: float
    asset_id: int | None
    params: dict[str, Any]
    levels: dict[str, float] | None = None


def _plan(session: Session) -> list[DevicePlan]:
    """The demo devices, placed at the demo assets (the same on every run of the same asset demo)."""
    plans: list[DevicePlan] = []
    for number, asset in enumerate(_assets_of(session, ["pos-duga-air"]), start=1):
        attributes = asset.attributes or {}
        river = str(attributes.get("sungai", "Sungai Musi")).removeprefix("Sungai ")
        levels = {
            "waspada": float(attributes.get("waspada_cm", 300.0)),
            "siaga": float(attributes.get("siaga_cm", 400.0)),
            "awas": float(attributes.get("awas_cm", 500.0)),
        }
        lag = GAUGE_LAGS.get((river, asset.kecamatan_code), 5.0)
        plans.append(DevicePlan(
            f"PDA-{number:02d}", sim.FLOOD_GAUGE, asset.name.replace("Pos Duga Air", "Sensor Tinggi Muka Air"),
            f"Sensor radar tinggi muka air Sungai {river}; level waspada {levels['waspada']:g} cm, siaga "
            f"{levels['siaga']:g} cm, awas {levels['awas']:g} cm.",
            asset.lat, asset.lon, asset.id, {"basin": river, "levels": levels, "lag_hours": lag}, levels,
        ))  # fmt: skip
    offices = {asset.name: asset for asset in _assets_of(session, ["kantor", "taman"])}
    for number, (office, basin) in enumerate(RAIN_SITES, start=1):
        asset = offices.get(office)
        if asset is not None:
            place = office.removeprefix("Kantor Camat ")
            plans.append(DevicePlan(
                f"ARG-{number:02d}", sim.RAIN_GAUGE, f"Penakar Hujan Otomatis {place}",
                f"Penakar hujan di halaman {office}, daerah aliran Sungai {basin}.",
                asset.lat + 0.0002, asset.lon + 0.0002, asset.id, {"basin": basin},
            ))  # fmt: skip
    for number, (site, basin, background) in enumerate(AIR_SITES, start=1):
        asset = offices.get(site)
        if asset is not None:
            place = site.removeprefix("Kantor Camat ")
            plans.append(DevicePlan(
                f"AQMS-{number:02d}", sim.AIR_MONITOR, f"Pemantau Kualitas Udara {place}",
                f"Stasiun pemantau PM2.5, suhu dan kelembapan di {site}.",
                asset.lat - 0.0002, asset.lon + 0.0002, asset.id, {"basin": basin, "pm25_base": background},
            ))  # fmt: skip
    lights = [a for a in _assets_of(session, ["pju"]) if (a.attributes or {}).get("jenis_lampu") == "LED"]
    for number, asset in enumerate(lights[:STREET_LIGHTS], start=1):
        rated = float((asset.attributes or {}).get("daya_watt", 90))
        plans.append(DevicePlan(
            f"PJUP-{number:02d}", sim.STREET_LIGHT, asset.name.replace("PJU", "PJU Pintar", 1),
            f"Lampu LED {rated:g} W dengan pengendali pintar: menyala 18.00, redup 00.00-04.00, padam 06.00 WIB.",
            asset.lat, asset.lon, asset.id, {"rated_w": rated, "faulty": number == STREET_LIGHTS},
        ))  # fmt: skip
    cameras = _assets_of(session, ["cctv"])
    for number, asset in enumerate(cameras[:TRAFFIC_COUNTERS], start=1):
        junction = asset.name.removeprefix("CCTV ")
        lat, lon = asset.lat + 0.0003, asset.lon
        plans.append(DevicePlan(
            f"ATCS-{number:02d}", sim.TRAFFIC_COUNTER, f"Penghitung Lalu Lintas {junction}",
            f"Penghitung kendaraan per 5 menit di {junction}.", lat, lon, _nearest_road(session, lat, lon),
            {"basin": sim_basin(asset.kecamatan_code), "peak_per_5min": float(60 + 30 * (number % 3))},
        ))  # fmt: skip
    for number, asset in enumerate(cameras, start=1):
        plans.append(DevicePlan(
            f"CCTV-{number:02d}", sim.CCTV, f"Status {asset.name}", f"Status koneksi kamera {asset.name}.",
            asset.lat, asset.lon, asset.id, {"silent": number == len(cameras)},
        ))  # fmt: skip
    return plans


def sim_basin(kecamatan_code: str | None) -> str:
    """The river basin a kecamatan drains to (as the asset demo names its bridges)."""
    from kotacerdas.assets.demo import RIVERS

    return RIVERS.get(kecamatan_code or "", "Musi")


def _shared_entities(session: Session, settings: Settings, caller: service.Caller) -> tuple[dict, dict]:
    """One Sensor per kind and one ObservedProperty per quantity: their ids."""
    sensors, properties = {}, {}
    for kind, (name, description, _owner, _streams) in KINDS.items():
        body = {"name": name, "description": description, "encodingType": "text/html", "metadata": description}
        sensors[kind] = service.create_entity(
            session, settings=settings, caller=caller, entity_set=service.SETS["Sensors"], body=body
        ).id
    for key, (name, description) in PROPERTIES.items():
        body = {"name": name, "description": description, "definition": f"urn:kotacerdas:property:{key}"}
        properties[key] = service.create_entity(
            session, settings=settings, caller=caller, entity_set=service.SETS["ObservedProperties"], body=body
        ).id
    return sensors, properties


def seed_demo_sensors(
    session: Session, *, settings: Settings, now: datetime | None = None, seed: int = DEFAULT_SEED
) -> DemoSensors:
    """Seed the demo devices with their history, health, keys and flood-gauge rules; nothing when Things exist or
    the demo admin or assets are missing. Writes the device file for the simulator."""
    summary = DemoSensors()
    if session.scalar(sa.select(Thing.id).limit(1)) is not None:
        if not devices_path(settings).exists():
            summary.devices_file = restore_devices_file(session, settings=settings, seed=seed)
        return summary
    admin = accounts.get_user_by_username(session, username="admin")
    if admin is None:
        return summary
    plans = _plan(session)
    if not plans:
        return summary
    devices = create_devices(session, settings=settings, admin=admin, plans=plans)
    summary.things = len(devices)
    summary.datastreams = sum(len(device.datastreams) for device in devices)
    flood_streams = [device.datastreams["level"] for device in devices if device.kind == sim.FLOOD_GAUGE]
    now = (now or utcnow()).astimezone(UTC)
    now = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 10)
    storms = [sim.Storm(now - KELINGI_STORM_BEFORE + sim.BANJIR_DELAY, sim.BANJIR_HOURS, sim.BANJIR_PEAK_MM_H,
                        "Kelingi")]  # fmt: skip
    summary.observations = _seed_history(session, settings, devices, now=now, seed=seed, storms=storms)
    summary.rules = _seed_rules(session, flood_streams)
    path = devices_path(settings)
    sim.DeviceFile(seed=seed, devices=devices, storms=storms).write(path)
    summary.devices_file = path
    return summary


def restore_devices_file(session: Session, *, settings: Settings, seed: int = DEFAULT_SEED) -> Path | None:
    """Write the device file again when it was lost: the demo's Things (found by kode) get new keys (their old
    ones stop working, as when staff issue a key), their model parameters are planned again from the assets, and
    the history's storm is placed from the first stored reading. None when no demo Thing is found."""
    things = {
        (thing.properties or {}).get("kode"): thing
        for thing in session.scalars(sa.select(Thing).order_by(Thing.id))
        if isinstance(thing.properties, dict)
    }
    devices, first_seen = [], None
    for plan in _plan(session):
        thing = things.get(plan.kode)
        if thing is None or (thing.properties or {}).get("jenis") != plan.kind:
            continue
        rows = session.execute(sa.select(Datastream.id, Datastream.properties).where(Datastream.thing_id == thing.id))
        streams = {(props or {}).get("short_name"): datastream_id for datastream_id, props in rows}
        if set(streams) != set(KINDS[plan.kind][3]):
            continue
        key = issue_device_key(session, thing_id=thing.id)
        devices.append(sim.Device(plan.kode, plan.kind, thing.name, thing.id, key.plain, streams, plan.params))
        if first_seen is None:
            oldest = store.list_observations(session, datastream_id=next(iter(streams.values())), limit=1)
            first_seen = oldest[0].phenomenon_time if oldest else None
    if not devices:
        return None
    accounts.record_change(
        session, actor=accounts.Actor.system("demo"), action="sensors.demo.keys", entity_type="sensor_things",
        entity_id=None, after={"key_ids": [device.key_id for device in devices]},
    )  # fmt: skip
    storms = []
    if first_seen is not None:
        now = first_seen + timedelta(days=HISTORY_DAYS)
        storms.append(sim.Storm(now - KELINGI_STORM_BEFORE + sim.BANJIR_DELAY, sim.BANJIR_HOURS,
                                sim.BANJIR_PEAK_MM_H, "Kelingi"))  # fmt: skip
    path = devices_path(settings)
    sim.DeviceFile(seed=seed, devices=devices, storms=storms).write(path)
    return path


def create_devices(session: Session, *, settings: Settings, admin: Any, plans: list[DevicePlan]) -> list[sim.Device]:
    """Create the planned devices as `admin` (Things with their Location and Datastreams, one Sensor per kind and
    one ObservedProperty per quantity), each owned by its kind's OPD and with a new key; the simulator's view."""
    from kotacerdas.agencies import service as agencies

    caller = service.Caller(user=admin)
    sensors, properties = _shared_entities(session, settings, caller)
    owners: dict[str, int | None] = {}
    for kind, (_name, _description, owner, _streams) in KINDS.items():
        try:
            owners[kind] = agencies.get_agency_by_short_name(session, short_name=owner).id
        except NotFound:  # an installation without this OPD: the admin's devices
            owners[kind] = None
    devices = []
    for plan in plans:
        thing_id, streams = _create_thing(session, settings, caller, plan, sensors, properties, owners[plan.kind])
        key = issue_device_key(session, thing_id=thing_id)
        devices.append(sim.Device(plan.kode, plan.kind, plan.name, thing_id, key.plain, streams, plan.params))
    service.forget_caches(session)
    return devices


def _create_thing(
    session: Session,
    settings: Settings,
    caller: service.Caller,
    plan: DevicePlan,
    sensors: dict[str, int],
    properties: dict[str, int],
    agency_id: int | None,
) -> tuple[int, dict[str, int]]:
    """Create one Thing with its Location and Datastreams (deep insert); its id and Datastreams by short name."""
    _sensor, _description, _owner, short_names = KINDS[plan.kind]
    datastreams = []
    for short in short_names:
        name, description, observation_type, unit, prop = STREAMS[short]
        extra: dict[str, Any] = {"short_name": short}
        if short == "level" and plan.levels:
            extra["levels"] = plan.levels
        datastreams.append({
            "name": f"{name} – {plan.name}", "description": description, "observationType": observation_type,
            "unitOfMeasurement": UNITS[unit], "properties": extra,
            "Sensor": {"@iot.id": sensors[plan.kind]}, "ObservedProperty": {"@iot.id": properties[prop]},
        })  # fmt: skip
    kotacerdas: dict[str, Any] = {}
    if agency_id is not None:
        kotacerdas["agency_id"] = agency_id
    if plan.asset_id is not None:
        kotacerdas["asset_id"] = plan.asset_id
    thing_properties: dict[str, Any] = {"kode": plan.kode, "jenis": plan.kind, "kotacerdas": kotacerdas}
    if plan.params.get("basin") and plan.kind in (sim.FLOOD_GAUGE, sim.RAIN_GAUGE):
        thing_properties["sungai"] = plan.params["basin"]
    body = {
        "name": plan.name, "description": plan.description, "properties": thing_properties,
        "Locations": [{
            "name": plan.name, "description": plan.description, "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [round(plan.lon, 6), round(plan.lat, 6)]},
        }],
        "Datastreams": datastreams,
    }  # fmt: skip
    created = service.create_entity(
        session, settings=settings, caller=caller, entity_set=service.SETS["Things"], body=body
    )
    rows = session.execute(sa.select(Datastream.id, Datastream.properties).where(Datastream.thing_id == created.id))
    return created.id, {(props or {})["short_name"]: datastream_id for datastream_id, props in rows}


def _seed_history(
    session: Session, settings: Settings, devices: list[sim.Device], *, now: datetime, seed: int, storms: list
) -> int:
    """HISTORY_DAYS of readings up to `now` through the observation store, and each device's health."""
    scenario = sim.Scenario("normal", tuple(storms))
    start = now - timedelta(days=HISTORY_DAYS)
    rows: list[store.NewObservation] = []
    written = 0
    for device in devices:
        until = now - SILENT_CCTV if device.params.get("silent") else now
        step = timedelta(seconds=device.period_s) if device.period_s else HISTORY_STEP
        t = start
        last = None
        while t <= until:
            for short, value in sim.readings(device, t, seed=seed, scenario=scenario).items():
                rows.append(store.NewObservation(device.datastreams[short], t, value))
            last = t
            t += step
        if len(rows) >= BATCH:
            written += len(store.add_observations(session, rows, settings=settings))
            rows = []
        if last is not None:
            reported = sim.health(device, last, seed=seed)
            session.execute(
                sa.update(Thing)
                .where(Thing.id == device.thing_id)
                .values(last_seen_at=last, battery_percent=reported.get("battery"), signal_dbm=reported["rssi"])
            )
    if rows:
        written += len(store.add_observations(session, rows, settings=settings))
    return written


def _seed_rules(session: Session, datastream_ids: list[int]) -> int:
    """The default warning rules of each flood gauge (sensors.rules: siaga for 10 minutes, a fast rise, no data)."""
    from kotacerdas.sensors.rules import seed_level_rules

    actor = accounts.Actor.system("demo")
    return sum(len(seed_level_rules(session, datastream_id=i, actor=actor)) for i in datastream_ids)
