"""Console pages of device management (`sensors.manage`): the devices an OPD owns with their health, and a new
device key, shown once. They call the same service functions as the API (sensors/devices.py); devices themselves
are created and edited through the SensorThings API (docs/sensorthings.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.regions import service as regions
from kotacerdas.sensors import devices
from kotacerdas.sensors.api import key_view
from kotacerdas.sensors.schemas import DeviceRead
from kotacerdas.web.forms import PostedForm
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

DEVICES = "/konsol/sensor"
Manager = Annotated[User, Depends(require(Permission.SENSORS_MANAGE))]
ThingIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]


def _region_names(session, listed: list[DeviceRead]) -> dict[str, str]:
    codes = {code for device in listed for code in (device.desa_code, device.kecamatan_code) if code}
    return {code: region.name for code, region in regions.get_regions(session, codes=codes).items()}


@router.get(DEVICES, response_class=HTMLResponse)
def console_devices(request: Request, session: SessionDep, settings: SettingsDep, user: Manager) -> HTMLResponse:
    """The devices the user manages, offline ones first, with their last reading time, battery and signal."""
    listed = devices.list_devices(session, settings=settings, by=user)
    listed.sort(key=lambda device: (not device.offline, device.name))
    return render(
        request,
        "sensors/console_devices.html",
        {
            "devices": listed,
            "names": _region_names(session, listed),
            "offline": sum(device.offline for device in listed),
            "can_rules": accounts.user_can(user, Permission.SENSORS_RULES),
        },
    )


@router.get(DEVICES + "/perangkat/{thing_id}", response_class=HTMLResponse)
def console_device(
    request: Request, session: SessionDep, settings: SettingsDep, user: Manager, thing_id: ThingIdPath
) -> HTMLResponse:
    """One device: its health and key id, and the button that issues a new key."""
    device = devices.get_device(session, settings=settings, thing_id=thing_id, by=user)
    return render(request, "sensors/console_device.html", {"device": device, "names": _region_names(session, [device])})


@router.post(DEVICES + "/perangkat/{thing_id}/kunci", response_class=HTMLResponse)
def renew_device_key(
    request: Request, session: SessionDep, settings: SettingsDep, user: Manager, thing_id: ThingIdPath,
    posted: PostedForm,
) -> HTMLResponse:  # fmt: skip
    """Issue a new device key and show it this once (the page is not cached)."""
    key, device = devices.renew_device_key_and_get_device(
        session, settings=settings, thing_id=thing_id, by=user, actor=actor_of(request, user)
    )
    response = render(
        request,
        "sensors/console_device.html",
        {"device": device, "names": _region_names(session, [device]), "new_key": key_view(thing_id, key)},
    )
    response.headers["Cache-Control"] = "no-store"
    return response
