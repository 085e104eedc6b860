"""Tables of the connected devices, after the entities of the OGC SensorThings API 1.1 (Sensing part): Things,
Locations, HistoricalLocations, Sensors, ObservedProperties, Datastreams and FeaturesOfInterest, plus what the
platform keeps beside the standard: a Thing's asset, desa, owner OPD, device key and health, and the messages
refused at ingest.

The Observations, their current value per Datastream and the hourly rollups are written by the observation store
(`sensors.store`), whose tables differ per database (partitioned by month on PostgreSQL, a journal merged into a
clustered table on SQLite); they are not ORM classes, so the hot path never builds objects.

Table names carry a `sensor_` prefix: `locations`, `sensors` and `things` are too generic for a shared schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kotacerdas.db import Base, JSONType, UTCDateTime, utcnow


class Thing(Base):
    """A device or station (a river gauge, an air monitor, a smart street light …) with its place and owner.

    `device_key_hash` is the SHA-256 of the device's key (shown once when issued): HTTP ingest presents the key,
    and the MQTT compact topic is addressed by `device_key_id`, a public name for the key."""

    __tablename__ = "sensor_things"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    asset_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assets.id", ondelete="SET NULL"), index=True)
    # The desa the Thing stands in (derived from its Location when inside the kabupaten), and its kecamatan.
    desa_code: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    kecamatan_code: Mapped[str | None] = mapped_column(sa.String(20))
    # The OPD that owns and manages the device: its staff may edit it (RBAC as for assets).
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="SET NULL"), index=True)
    device_key_id: Mapped[str | None] = mapped_column(sa.String(40), unique=True)
    device_key_hash: Mapped[str | None] = mapped_column(sa.String(64))
    # Health, as last reported: when it was last heard from, battery (%) and signal (dBm) if it says.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    battery_percent: Mapped[float | None] = mapped_column(sa.Float)
    signal_dbm: Mapped[float | None] = mapped_column(sa.Float)
    # A device silent for longer than this is offline (None: the setting's default).
    offline_after_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Location(Base):
    """Where Things are: a GeoJSON geometry (`encodingType` application/geo+json), with a point for maps."""

    __tablename__ = "sensor_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    encoding_type: Mapped[str] = mapped_column(sa.String(100), default="application/geo+json")
    location: Mapped[dict[str, Any]] = mapped_column(JSONType)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    lat: Mapped[float | None] = mapped_column(sa.Float)
    lon: Mapped[float | None] = mapped_column(sa.Float)


class ThingLocation(Base):
    """A Thing's current Location(s); changing them adds a HistoricalLocation."""

    __tablename__ = "sensor_thing_locations"

    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor_things.id", ondelete="CASCADE"), primary_key=True)
    location_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_locations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class HistoricalLocation(Base):
    """When a Thing was at its Locations."""

    __tablename__ = "sensor_historical_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor_things.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HistoricalLocationLocation(Base):
    __tablename__ = "sensor_historical_location_locations"

    # Constraint names spelled out: the generated ones pass PostgreSQL's 63-character limit.
    historical_location_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_historical_locations.id", ondelete="CASCADE", name="fk_sensor_hll_historical_location"),
        primary_key=True,
    )
    location_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_locations.id", ondelete="CASCADE", name="fk_sensor_hll_location"),
        primary_key=True,
        index=True,
    )


class Sensor(Base):
    """The instrument that observes (a radar level sensor, a tipping-bucket rain gauge …), with its datasheet."""

    __tablename__ = "sensor_sensors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    encoding_type: Mapped[str] = mapped_column(sa.String(100))
    # `metadata` in the standard; the name is taken by SQLAlchemy's declarative base.
    sensor_metadata: Mapped[str] = mapped_column("metadata", sa.Text, default="")
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class ObservedProperty(Base):
    """What is observed (water level, rainfall, PM2.5 …), defined by a URI."""

    __tablename__ = "sensor_observed_properties"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    definition: Mapped[str] = mapped_column(sa.String(500))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Datastream(Base):
    """A series of Observations of one ObservedProperty by one Sensor on one Thing, in one unit.

    The phenomenon and result time extents are kept up to date by the observation store. `levels` holds the
    thresholds the rules compare with (for a river gauge: {"waspada": 250, "siaga": 300, "awas": 350} in its unit).
    """

    __tablename__ = "sensor_datastreams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    observation_type: Mapped[str] = mapped_column(sa.String(200))
    # {"name": "centimetre", "symbol": "cm", "definition": "http://unitsofmeasure.org/ucum.html#para-30"}
    unit_of_measurement: Mapped[dict[str, Any]] = mapped_column(JSONType)
    observed_area: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    phenomenon_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    levels: Mapped[dict[str, float] | None] = mapped_column(JSONType)
    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor_things.id", ondelete="CASCADE"), index=True)
    sensor_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor_sensors.id", ondelete="RESTRICT"), index=True)
    observed_property_id: Mapped[int] = mapped_column(
        sa.ForeignKey(
            "sensor_observed_properties.id", ondelete="RESTRICT", name="fk_sensor_datastreams_observed_property"
        ),
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeatureOfInterest(Base):
    """What an Observation is about, usually the Thing's Location: one row per distinct feature.

    `feature_key` is the SHA-256 of the canonical JSON of (encodingType, feature), unique, so that devices posting
    their first Observations at the same time share one FeatureOfInterest instead of creating several."""

    __tablename__ = "sensor_features"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    encoding_type: Mapped[str] = mapped_column(sa.String(100), default="application/geo+json")
    feature: Mapped[dict[str, Any]] = mapped_column(JSONType)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    feature_key: Mapped[str] = mapped_column(sa.String(64), unique=True)


class DeadLetter(Base):
    """An ingest message refused (bad JSON, an unknown Datastream, a wrong result type …), kept with the reason so
    that an operator can see what a device sends; the worker goes on with the next message."""

    __tablename__ = "sensor_dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(sa.String(10))  # mqtt, http
    topic: Mapped[str | None] = mapped_column(sa.String(300))
    thing_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sensor_things.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(sa.String(500))
    # The first 4 KB of the message as received (text, or the bytes' repr when not UTF-8).
    payload: Mapped[str] = mapped_column(sa.Text)


class SensorRule(Base):
    """A warning rule on a Datastream or a Thing (sensors/rules.py): a threshold held for a duration, a rate of
    change, no data for a while, or a device not heard from. Levels left empty are read from the Datastream's
    `levels` by name (`level`, `escalate_level`, `clear_level`); a value given here wins."""

    __tablename__ = "sensor_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(20))  # threshold, rate_of_change, no_data, device_offline
    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor_things.id", ondelete="CASCADE"), index=True)
    datastream_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sensor_datastreams.id", ondelete="CASCADE"), index=True
    )
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # The event a rule raises (a hazard category and its alert level); None for the device-health rules, which
    # tell the Thing's OPD instead of publishing an event.
    category: Mapped[str | None] = mapped_column(sa.String(40))
    level: Mapped[str | None] = mapped_column(sa.String(12))
    # threshold: raise at >= threshold, escalate at >= escalate_threshold, end below clear_threshold;
    # rate_of_change: raise when the rise per hour exceeds threshold.
    threshold: Mapped[float | None] = mapped_column(sa.Float)
    escalate_level: Mapped[str | None] = mapped_column(sa.String(12))
    escalate_threshold: Mapped[float | None] = mapped_column(sa.Float)
    clear_level: Mapped[str | None] = mapped_column(sa.String(12))
    clear_threshold: Mapped[float | None] = mapped_column(sa.Float)
    # How long the condition must hold before the rule fires, and how long it must be gone before it ends.
    duration_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    clear_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    # rate_of_change: the window the rise is measured over.
    window_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    title: Mapped[str | None] = mapped_column(sa.String(200))
    instruction: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SensorRuleState(Base):
    """Where a rule is (normal, pending, raised), since when, and the event it raised: one row per rule, locked by
    the worker that evaluates it, so several workers and restarts never raise a second event."""

    __tablename__ = "sensor_rule_states"

    rule_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor_rules.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(12), default="normal", server_default="normal")
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The level the raised event carries (escalations included).
    level: Mapped[str | None] = mapped_column(sa.String(12))
    # When the end condition was first seen (rate of change: the rise back under the limit).
    clear_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_id: Mapped[int | None] = mapped_column(sa.ForeignKey("events.id", ondelete="SET NULL"), index=True)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the rule could not act the last time it tried (e.g. the Thing has no desa), shown in the console.
    problem: Mapped[str | None] = mapped_column(sa.String(500))
