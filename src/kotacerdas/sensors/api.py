"""Device management in the JSON API under /api/v1: the devices an OPD manages, with their health, and new device
keys (`sensors.manage`; OPD staff only for their own OPD's devices). Everything else about devices is the
SensorThings API (/sensorthings/v1.1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.sensors import devices
from kotacerdas.sensors.schemas import DeviceKeyRead, DeviceRead

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES, tags=["sensors"])

Manager = Annotated[User, Depends(require(Permission.SENSORS_MANAGE))]
ThingIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="The device's SensorThings Thing id")]


def key_view(thing_id: int, key: devices.IssuedKey) -> DeviceKeyRead:
    """A new key with what a device needs to use it over HTTP and MQTT."""
    return DeviceKeyRead(
        thing_id=thing_id, key_id=key.key_id, key=key.plain, mqtt_username=key.key_id, mqtt_password=key.secret,
        mqtt_topic=f"kotacerdas/{key.key_id}/up",
    )  # fmt: skip


@router.get("/sensors/devices", response_model=list[DeviceRead])
def list_devices(session: SessionDep, settings: SettingsDep, user: Manager) -> list[DeviceRead]:
    """The devices the caller manages (an admin every OPD's), with last seen, battery, signal and offline."""
    return devices.list_devices(session, settings=settings, by=user)


@router.post("/sensors/devices/{thing_id}/key", response_model=DeviceKeyRead, status_code=201)
def renew_device_key(
    request: Request, response: Response, session: SessionDep, user: Manager, thing_id: ThingIdPath
) -> DeviceKeyRead:
    """Issue a new key for the device; the old one stops working at once. The secret is shown only here."""
    key = devices.renew_device_key(session, thing_id=thing_id, by=user, actor=actor_of(request, user))
    response.headers["Cache-Control"] = "no-store"
    return key_view(thing_id, key)
