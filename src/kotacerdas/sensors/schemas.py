"""Pydantic shapes of the sensors JSON API under /api/v1 (device management); the SensorThings API at
/sensorthings/v1.1 has its own JSON, written by sensors/sensorthings.py."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeviceRead(BaseModel):
    """A device (SensorThings Thing) with its owner OPD, place and health; never its key."""

    id: int
    name: str
    agency_id: int | None
    agency_name: str | None
    desa_code: str | None
    kecamatan_code: str | None
    device_key_id: str | None = Field(description="The public half of the device key (the MQTT username)")
    last_seen_at: datetime | None
    battery_percent: float | None
    signal_dbm: float | None
    offline: bool
    datastreams: int


class DeviceKeyRead(BaseModel):
    """A new device key, shown this once: the platform keeps only its hash."""

    thing_id: int
    key_id: str = Field(description="Public: the MQTT username and the compact topic's name")
    key: str = Field(description="`<key_id>.<secret>`: the HTTP key (Authorization: Bearer)")
    mqtt_username: str
    mqtt_password: str
    mqtt_topic: str
