"""Public pages of the assets registry: an asset's page (`/aset/{id}`) and its photos.

Everything the page shows comes from `service.public_asset`, the domain's privacy choke point: the condition
history names the OPD, never the inspector, and the open citizen reports appear as the public sees them. The
"Laporkan masalah di sini" button opens the report form with the asset and its place filled in.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from kotacerdas import storage
from kotacerdas.assets import service
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import OptionalUser, SessionDep, SettingsDep
from kotacerdas.errors import NotFound
from kotacerdas.i18n import _, get_locale
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

IdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
BOUNDARIES_URL = "/api/v1/regions/geojson?level=kecamatan"
# Photos of assets may be cached a little; an archived asset's photos stop showing within this time.
PUBLIC_PHOTO_CACHE = "public, max-age=600"


@router.get("/aset/{asset_id:int}", response_class=HTMLResponse)
def asset_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser, asset_id: IdPath
) -> HTMLResponse:
    """An asset's public page: type, condition, place, owner OPD, attributes, history, photos, open reports."""
    asset = service.get_asset(session, asset_id=asset_id)
    if not asset.active:
        raise NotFound(_("There is no asset with that id."))
    view = service.public_asset(session, settings=settings, asset=asset, locale=get_locale())
    from kotacerdas.sensors import service as sensors

    return render(
        request,
        "assets/public_asset.html",
        {
            "asset": view,
            "geometry_json": json.dumps(view.geometry, separators=(",", ":")),
            "bounds": f"{asset.min_lat:.6f},{asset.min_lon:.6f},{asset.max_lat:.6f},{asset.max_lon:.6f}",
            "boundaries_url": BOUNDARIES_URL,
            "staff_url": f"/konsol/aset/{asset.id}" if service.can_edit(user, asset) else None,
            # The live readings of the devices on this asset (a river gauge on a bridge …).
            "sensor_tiles": sensors.tiles_for_asset(session, settings=settings, asset_id=asset.id),
        },
    )


def _photo(session, settings, *, user, photo_id: int, thumb: bool) -> Response:
    photo, asset = service.get_photo(session, photo_id=photo_id, by=user)
    try:
        path = storage.open_upload(settings, photo.thumb_key if thumb else photo.file_key)
    except FileNotFoundError:
        raise NotFound(_("There is no such photo.")) from None
    # Always a JPEG that the server encoded itself: never served as anything a browser would run.
    return FileResponse(
        path,
        media_type="image/jpeg",
        filename=f"aset-{photo.id}{'-thumb' if thumb else ''}.jpg",
        content_disposition_type="inline",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": PUBLIC_PHOTO_CACHE if asset.active else "private, no-store",
        },
    )


@router.get("/media/aset/{photo_id}.jpg")
def photo_file(session: SessionDep, settings: SettingsDep, user: OptionalUser, photo_id: IdPath) -> Response:
    """An asset photo (metadata-free JPEG)."""
    return _photo(session, settings, user=user, photo_id=photo_id, thumb=False)


@router.get("/media/aset/{photo_id}/thumb.jpg")
def photo_thumbnail(session: SessionDep, settings: SettingsDep, user: OptionalUser, photo_id: IdPath) -> Response:
    """An asset photo's thumbnail."""
    return _photo(session, settings, user=user, photo_id=photo_id, thumb=True)
