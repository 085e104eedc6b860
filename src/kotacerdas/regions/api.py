"""JSON API of the regions domain."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.errors import PayloadTooLarge
from kotacerdas.i18n import _
from kotacerdas.pagination import MAX_PER_PAGE, PageRequest
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.regions import service
from kotacerdas.regions.enums import RegionLevel
from kotacerdas.regions.schemas import (
    ImportResultRead,
    Location,
    RegionDetail,
    RegionPage,
    RegionRead,
    RegionRef,
)

router = APIRouter(prefix="/api/v1", tags=["regions"], responses=PROBLEM_RESPONSES)

GEOJSON_MEDIA_TYPE = "application/geo+json"
# The whole Musi Rawas file is 0.5 MB; a regency with a detailed survey may be a few tens of MB.
MAX_IMPORT_BYTES = 64 * 1024 * 1024

RegionsManager = Annotated[User, Depends(require(Permission.REGIONS_MANAGE))]
CodePath = Annotated[str, Path(max_length=20, description="Kemendagri code, e.g. 16.05.09", examples=["16.05.09"])]


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON_MEDIA_TYPE


class RegionProperties(BaseModel):
    """What a region feature says about itself (the same properties the import reads)."""

    kode: str
    nama: str
    level: RegionLevel
    induk: str | None
    centroid: list[float] | None = Field(description="[longitude, latitude]")


class RegionFeature(BaseModel):
    """One region with its boundary."""

    type: Literal["Feature"]
    id: str
    geometry: dict[str, Any] = Field(description="Polygon or MultiPolygon, [longitude, latitude] (RFC 7946)")
    properties: RegionProperties


class RegionFeatureCollection(BaseModel):
    """Region boundaries of one level (RFC 7946)."""

    type: Literal["FeatureCollection"]
    features: list[RegionFeature]


@router.get("/regions", response_model=RegionPage)
def list_regions(
    session: SessionDep,
    level: Annotated[RegionLevel | None, Query(description="Only regions of this level")] = None,
    parent: Annotated[
        str | None, Query(max_length=20, description="Only the children of this code, e.g. 16.05.09")
    ] = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the name")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50,
) -> RegionPage:
    """List regions by code, filtered by level, parent or name."""
    paged = service.list_regions(
        session, level=level, parent_code=parent, q=q, page=PageRequest(page=page, per_page=per_page)
    )
    return RegionPage(
        items=[RegionRead.of(region) for region in paged.items],
        total=paged.total,
        page=paged.page,
        per_page=paged.per_page,
    )


@router.get(
    "/regions/geojson",
    response_model=RegionFeatureCollection,
    response_class=GeoJSONResponse,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "An RFC 7946 FeatureCollection"}},
)
def regions_geojson(
    session: SessionDep,
    level: Annotated[RegionLevel, Query(description="Which level's boundaries")] = RegionLevel.KECAMATAN,
) -> GeoJSONResponse:
    """Imported boundaries of one level as GeoJSON (regions without a boundary are left out)."""
    return GeoJSONResponse(service.regions_geojson(session, level=level))


@router.get("/regions/locate", response_model=Location)
def locate(
    session: SessionDep,
    settings: SettingsDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="Latitude (WGS 84)")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="Longitude (WGS 84)")],
) -> Location:
    """Find the desa/kelurahan and kecamatan of a point, and say how exact the answer is."""
    return service.locate(session, settings=settings, lat=lat, lon=lon)


@router.post(
    "/regions/import",
    response_model=ImportResultRead,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A GeoJSON FeatureCollection of Polygon/MultiPolygon features with properties kode, "
            "nama, level, induk and optionally centroid [lon, lat].",
            "content": {
                GEOJSON_MEDIA_TYPE: {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
    responses={413: PROBLEM_RESPONSES[400] | {"description": "The file is too large"}},
)
async def import_regions(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: RegionsManager,
    dry_run: Annotated[bool, Query(description="Only check the file; store nothing")] = False,
) -> ImportResultRead:
    """Import kecamatan and desa/kelurahan boundaries; one bad feature stops the whole import."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise PayloadTooLarge(
                _("The file is larger than {limit} MB.").format(limit=MAX_IMPORT_BYTES // (1024 * 1024))
            )
        chunks.append(chunk)
    # Checking geometry is CPU work: keep it off the event loop.
    result = await run_in_threadpool(
        service.import_boundaries,
        session,
        settings=settings,
        data=b"".join(chunks),
        actor=actor_of(request, user),
        dry_run=dry_run,
    )
    return ImportResultRead(created=result.created, updated=result.updated, total=result.total, dry_run=dry_run)


@router.get("/regions/{code}", response_model=RegionDetail)
def get_region(session: SessionDep, code: CodePath) -> RegionDetail:
    """One region with its parent and children."""
    family = service.get_region_family(session, code=code)
    return RegionDetail(
        **RegionRead.of(family.region).model_dump(),
        parent=RegionRef.of(family.parent) if family.parent else None,
        children=[RegionRef.of(child) for child in family.children],
    )
