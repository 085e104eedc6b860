"""Pydantic shapes of the sensors JSON API under /api/v1 (device management); the SensorThings API at
/sensorthings/v1.1 has its own JSON, written by sensors/sensorthings.py."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


# The one shape of a device: sensors/devices.py builds it, the API serves it and the console pages show it.
class DeviceRead(BaseModel):
    """A device (SensorThings Thing) with its owner OPD, place and health; never its key."""

    id: int
    name: str
    agency_id: int | None
    agency_name: str | None
    desa_code: str | None
    kecamatan_code: str | None
    device_key_id: str | None = Field(description="The public half of the device key (the MQTT username)")
    last_seen_at: datetime | None = Field(
        description="When it was last heard from: the newer of its own messages and its newest reading, never after "
        "now; null when never"
    )
    battery_percent: float | None
    signal_dbm: float | None
    offline: bool = Field(
        description="Not heard from for longer than its Thing's offline_after_minutes, else the installation's "
        "default (the public tiles count it the same)"
    )
    datastreams: int = Field(description="How many Datastreams the Thing has")


class DeviceKeyRead(BaseModel):
    """A new device key, shown this once: the platform keeps only its hash."""

    thing_id: int
    key_id: str = Field(description="Public: the MQTT username and the compact topic's name")
    key: str = Field(description="`<key_id>.<secret>`: the HTTP key (Authorization: Bearer)")
    mqtt_username: str
    mqtt_password: str
    mqtt_topic: str
