"""JSON API of the assets registry under /api/v1: asset types, assets, inspections, nearby assets for the report
form, the links between reports and assets, and the condition updates proposed from resolved reports.

Reading active assets is public (they are the regency's infrastructure); inspections and proposals name staff and
need a login. Writes need `assets.edit`, and the service lets an OPD change only its own assets. Geometry goes in
and out as GeoJSON geometry objects (WGS 84). Bad input is a 4xx problem+json and nothing of it is stored.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import service
from kotacerdas.assets.enums import ConditionScale, ProposalStatus
from kotacerdas.assets.models import Asset, AssetConditionProposal, AssetInspection, AssetType
from kotacerdas.assets.schemas import (
    AssetCreate,
    AssetPage,
    AssetPhotoRead,
    AssetRead,
    AssetTypeRead,
    AssetTypeUpdate,
    AssetUpdate,
    ConditionRead,
    InspectionCreate,
    InspectionRead,
    NearbyAsset,
    ProposalCreate,
    ProposalDecision,
    ProposalRead,
    PublicAsset,
    ReportAssetLink,
    ReportAssetLinked,
)
from kotacerdas.assets.validation import RawAsset
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, get_current_user, get_optional_user, require
from kotacerdas.errors import InvalidInput, NotFound
from kotacerdas.i18n import _, get_locale
from kotacerdas.pagination import PageQuery
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.reports import service as reports

# The shared request-size guard, so that a body of base64 photos is refused before it is read.
from kotacerdas.web.api_inputs import MAX_PHOTO_BODY_BYTES, BodyLimitedRoute, decode_photos, max_body, parse_bbox

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES, route_class=BodyLimitedRoute)

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: PROBLEM_RESPONSES[400] | {"description": "The request body is too large"}
}
AssetEditor = Annotated[User, Depends(require(Permission.ASSETS_EDIT))]
TypeManager = Annotated[User, Depends(require(Permission.ASSETS_TYPES))]
ConsoleUser = Annotated[User, Depends(require(Permission.CONSOLE))]

AssetIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Asset id")]
TypeIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Asset type id")]
ReportIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Report id")]
ProposalIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Proposal id")]
CodeList = Annotated[
    str | None,
    Query(max_length=400, pattern=r"^[a-z0-9_,-]+$", description="One or more codes, separated by commas"),
]
RegionCode = Annotated[str | None, Query(min_length=1, max_length=20, pattern=r"^[0-9.]+$")]
# Fields an update may leave out but not set to null (the OPD may: null means the type's default OPD).
NOT_NULL_FIELDS = ("type", "name", "geometry", "attributes", "external_ids")
NOT_NULL_TYPE_FIELDS = ("name_id", "attribute_schema", "position", "active")


# --- helpers ----------------------------------------------------------------------------------------------------


def _invalid(message: str, field: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "reason": reason}])


def _codes(text: str | None) -> list[str] | None:
    values = [part.strip() for part in (text or "").split(",") if part.strip()]
    return values or None


def _type_read(kind: AssetType, locale: str) -> AssetTypeRead:
    english = locale == "en"
    return AssetTypeRead(
        id=kind.id, code=kind.code, name_id=kind.name_id, name_en=kind.name_en,
        name=service.type_name(kind, locale), geometry_kind=kind.geometry_kind, condition_scale=kind.condition_scale,
        conditions=[
            ConditionRead(value=c.value, label=c.label_en if english else c.label_id, colour=c.colour)
            for c in ConditionScale(kind.condition_scale).conditions
        ],
        agency_id=kind.agency_id, attribute_schema=kind.attribute_schema or {}, position=kind.position,
        active=kind.active,
    )  # fmt: skip


def _asset_reads(session: Session, assets: list[Asset]) -> list[AssetRead]:
    """Assets as the API shows them, with their type, OPD and external ids looked up once for the whole list."""
    locale = get_locale()
    kinds = service.types_by_id(session)
    names = agencies.agency_names(session)
    ids = service.external_ids(session, asset_ids=[asset.id for asset in assets])
    reads = []
    for asset in assets:
        kind = kinds[asset.type_id]
        reads.append(
            AssetRead(
                id=asset.id, type_id=asset.type_id, type_code=kind.code, type_name=service.type_name(kind, locale),
                name=asset.name, description=asset.description, address=asset.address, agency_id=asset.agency_id,
                agency=names.get(asset.agency_id), geometry=_geometry(asset), lat=asset.lat, lon=asset.lon,
                bbox=[asset.min_lon, asset.min_lat, asset.max_lon, asset.max_lat], length_km=asset.length_km,
                desa_code=asset.desa_code, kecamatan_code=asset.kecamatan_code, attributes=asset.attributes or {},
                external_ids=ids[asset.id], condition=service.condition_read(asset.condition, locale),
                condition_on=asset.condition_on, active=asset.active, created_at=asset.created_at,
                updated_at=asset.updated_at,
            )
        )  # fmt: skip
    return reads


def _geometry(asset: Asset) -> dict[str, Any]:
    return json.loads(asset.geometry)


def _asset_read(session: Session, asset: Asset) -> AssetRead:
    return _asset_reads(session, [asset])[0]


def _inspection_reads(session: Session, inspections: list[AssetInspection], asset_id: int) -> list[InspectionRead]:
    locale = get_locale()
    by_inspection: dict[int, list[AssetPhotoRead]] = {}
    for photo in service.list_photos(session, asset_id=asset_id):
        if photo.inspection_id is not None:
            url, thumb = service.photo_paths(photo.id)
            by_inspection.setdefault(photo.inspection_id, []).append(
                AssetPhotoRead(
                    id=photo.id,
                    url=url,
                    thumb_url=thumb,
                    width=photo.width,
                    height=photo.height,
                    inspection_id=photo.inspection_id,
                )  # fmt: skip
            )
    return [
        InspectionRead(
            id=item.id,
            asset_id=item.asset_id,
            inspected_on=item.inspected_on,
            inspector=item.inspector,
            condition=service.condition_read(item.condition, locale),
            notes=item.notes,
            source=item.source,
            report_id=item.report_id,
            created_at=item.created_at,
            photos=sorted(by_inspection.get(item.id, []), key=lambda photo: photo.id),
        )  # fmt: skip
        for item in inspections
    ]


def _proposal_reads(session: Session, proposals: list[AssetConditionProposal]) -> list[ProposalRead]:
    locale = get_locale()
    codes = service.proposal_codes(session, proposals)
    reads = []
    for proposal in proposals:
        status = ProposalStatus(proposal.status)
        reads.append(
            ProposalRead(
                id=proposal.id, asset_id=proposal.asset_id, report_id=proposal.report_id,
                tracking_code=codes.get(proposal.report_id) if proposal.report_id else None,
                condition=service.condition_read(proposal.condition, locale), note=proposal.note,
                status=status.value, status_label=status.label_en if locale == "en" else status.label_id,
                decided_at=proposal.decided_at, inspection_id=proposal.inspection_id, created_at=proposal.created_at,
            )
        )  # fmt: skip
    return reads


def _visible_asset(request: Request, session: Session, settings: Settings, asset_id: int) -> Asset:
    """An active asset for anyone; an archived one only for staff who may edit it."""
    asset = service.get_asset(session, asset_id=asset_id)
    if not asset.active:
        user = get_optional_user(request, session, settings)
        if not service.can_edit(user, asset):
            raise NotFound(_("There is no asset with that id."))
    return asset


def _step(request: Request, user: User) -> dict[str, Any]:
    return {"settings": request.app.state.settings, "by": user, "actor": actor_of(request, user)}


def _api_fields(error: InvalidInput) -> InvalidInput:
    """The error with the owner OPD named as the API names it (`agency_id`; the service says `agency`)."""
    for item in error.errors:
        if item.get("field") == "agency":
            item["field"] = "agency_id"
    return error


def _not_null(changes: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in fields:
        if field in changes and changes[field] is None:
            raise _invalid(_("This field cannot be empty."), field, "required")


# --- asset types ------------------------------------------------------------------------------------------------


@router.get("/asset-types", tags=["assets"], response_model=list[AssetTypeRead])
def list_asset_types(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    include_inactive: Annotated[
        bool, Query(alias="all", description="Inactive types too (needs assets.types)")
    ] = False,
) -> list[AssetTypeRead]:
    """The asset types in display order, with their attribute schemas and condition scales (public)."""
    if include_inactive:
        user = get_current_user(request, get_optional_user(request, session, settings))
        accounts.require_permission(user, Permission.ASSETS_TYPES)
    locale = get_locale()
    return [_type_read(kind, locale) for kind in service.list_types(session, active_only=not include_inactive)]


@router.patch("/asset-types/{type_id:int}", tags=["assets"], response_model=AssetTypeRead, responses=BODY_RESPONSES)
def update_asset_type(
    request: Request, session: SessionDep, user: TypeManager, type_id: TypeIdPath, body: AssetTypeUpdate
) -> AssetTypeRead:
    """Change an asset type's names, default OPD, attribute schema, position or whether it is offered (needs
    assets.types); only the fields sent change."""
    changes = body.model_dump(exclude_unset=True)
    _not_null(changes, NOT_NULL_TYPE_FIELDS)
    kind = service.update_asset_type(session, actor=actor_of(request, user), type_id=type_id, changes=changes)
    return _type_read(kind, get_locale())


# --- assets -------------------------------------------------------------------------------------------------------


@router.get("/assets", tags=["assets"], response_model=AssetPage)
def list_assets(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page: PageQuery,
    type: Annotated[CodeList, Query(description="Asset type codes, e.g. jalan,jembatan")] = None,
    condition: Annotated[CodeList, Query(description="Conditions, e.g. rusak_berat,unknown (never inspected)")] = None,
    kecamatan: Annotated[RegionCode, Query(description="Kecamatan code, e.g. 16.05.09")] = None,
    desa: Annotated[RegionCode, Query(description="Desa/kelurahan code")] = None,
    agency: Annotated[int | None, Query(ge=1, le=MAX_INT_ID, description="Owner OPD id")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in the name, or an external id")] = None,
    bbox: Annotated[
        str | None,
        Query(min_length=7, max_length=200, description="west,south,east,north in degrees (WGS 84)"),
    ] = None,
    archived: Annotated[bool, Query(description="Archived assets instead of active ones (needs assets.edit)")] = False,
) -> AssetPage:
    """Assets by name, filtered; active ones for anyone, archived ones for staff who edit assets."""
    if archived:
        user = get_current_user(request, get_optional_user(request, session, settings))
        accounts.require_permission(user, Permission.ASSETS_EDIT)
    filters = service.AssetFilters(
        type_codes=_codes(type), conditions=_codes(condition), kecamatan_code=kecamatan, desa_code=desa,
        agency_id=agency, q=q, active=not archived, bbox=parse_bbox(bbox) if bbox is not None else None,
    )  # fmt: skip
    result = service.list_assets(session, filters=filters, page=page)
    return AssetPage(
        items=_asset_reads(session, result.items), total=result.total, page=result.page, per_page=result.per_page
    )


@router.post("/assets", tags=["assets"], response_model=AssetRead, status_code=201, responses=BODY_RESPONSES)
def create_asset(request: Request, session: SessionDep, user: AssetEditor, body: AssetCreate) -> AssetRead:
    """Add an asset (needs assets.edit; OPD staff for their own OPD). A `condition` records a first inspection."""
    raw = RawAsset(
        type=body.type, name=body.name, geometry=body.geometry, agency=body.agency_id, attributes=body.attributes,
        description=body.description, address=body.address, external_ids=dict(body.external_ids),
        condition=body.condition, condition_on=body.condition_on,
    )  # fmt: skip
    try:
        asset = service.create_asset(session, raw=raw, **_step(request, user))
    except InvalidInput as error:
        raise _api_fields(error) from None
    return _asset_read(session, asset)


@router.get("/assets/nearby", tags=["assets"], response_model=list[NearbyAsset])
def nearby_assets(
    session: SessionDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="Latitude (WGS 84)")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="Longitude (WGS 84)")],
    radius: Annotated[int, Query(ge=1, le=1000, description="Search radius in metres")] = service.NEARBY_RADIUS_M,
) -> list[NearbyAsset]:
    """Active assets near a place, nearest first (at most 10), for a report to name the asset it is about."""
    locale = get_locale()
    found = service.nearby_assets(session, lat=lat, lon=lon, radius_m=radius)
    kinds = service.types_by_id(session)
    return [
        NearbyAsset(
            id=asset.id,
            name=asset.name,
            type_code=kinds[asset.type_id].code,
            type_name=service.type_name(kinds[asset.type_id], locale),
            condition=service.condition_read(asset.condition, locale),
            distance_m=distance,
            url=service.public_path(asset.id),
        )  # fmt: skip
        for asset, distance in found
    ]


@router.get("/assets/{asset_id:int}", tags=["assets"], response_model=AssetRead)
def get_asset(request: Request, session: SessionDep, settings: SettingsDep, asset_id: AssetIdPath) -> AssetRead:
    """One asset (an archived one only for staff who may edit it)."""
    return _asset_read(session, _visible_asset(request, session, settings, asset_id))


@router.get("/assets/{asset_id:int}/public", tags=["assets"], response_model=PublicAsset)
def get_public_asset(session: SessionDep, settings: SettingsDep, asset_id: AssetIdPath) -> PublicAsset:
    """What the public asset page shows: condition history (dates, conditions, OPD), photos, open reports."""
    asset = service.get_asset(session, asset_id=asset_id)
    if not asset.active:
        raise NotFound(_("There is no asset with that id."))
    return service.public_asset(session, settings=settings, asset=asset, locale=get_locale())


@router.patch("/assets/{asset_id:int}", tags=["assets"], response_model=AssetRead, responses=BODY_RESPONSES)
def update_asset(
    request: Request, session: SessionDep, user: AssetEditor, asset_id: AssetIdPath, body: AssetUpdate
) -> AssetRead:
    """Change an asset; only the fields sent change (`agency_id: null` means the type's default OPD)."""
    changes = body.model_dump(exclude_unset=True)
    _not_null(changes, NOT_NULL_FIELDS)
    if "agency_id" in changes:
        changes["agency"] = changes.pop("agency_id")
    try:
        asset = service.update_asset(session, asset_id=asset_id, changes=changes, **_step(request, user))
    except InvalidInput as error:
        raise _api_fields(error) from None
    return _asset_read(session, asset)


@router.post("/assets/{asset_id:int}/archive", tags=["assets"], response_model=AssetRead)
def archive_asset(request: Request, session: SessionDep, user: AssetEditor, asset_id: AssetIdPath) -> AssetRead:
    """Take an asset off the registry; it is kept with its history and can be restored."""
    return _asset_read(session, service.archive_asset(session, asset_id=asset_id, **_step(request, user)))


@router.post("/assets/{asset_id:int}/restore", tags=["assets"], response_model=AssetRead)
def restore_asset(request: Request, session: SessionDep, user: AssetEditor, asset_id: AssetIdPath) -> AssetRead:
    """Put an archived asset back on the registry."""
    asset = service.archive_asset(session, asset_id=asset_id, active=True, **_step(request, user))
    return _asset_read(session, asset)


# --- inspections ------------------------------------------------------------------------------------------------


@router.get("/assets/{asset_id:int}/inspections", tags=["assets"], response_model=list[InspectionRead])
def list_inspections(session: SessionDep, _user: ConsoleUser, asset_id: AssetIdPath) -> list[InspectionRead]:
    """The asset's inspections, newest first, with inspectors and photos (staff)."""
    asset = service.get_asset(session, asset_id=asset_id)
    return _inspection_reads(session, service.condition_history(session, asset_id=asset.id), asset.id)


@router.post(
    "/assets/{asset_id:int}/inspections",
    tags=["assets"],
    response_model=InspectionRead,
    status_code=201,
    responses=BODY_RESPONSES,
)
@max_body(MAX_PHOTO_BODY_BYTES)
def record_inspection(
    request: Request, session: SessionDep, user: AssetEditor, asset_id: AssetIdPath, body: InspectionCreate
) -> InspectionRead:
    """Record an inspection with up to 3 photos (base64); the asset's condition becomes the latest inspection's."""
    inspection = service.record_inspection(
        session, asset_id=asset_id, inspected_on=body.inspected_on, inspector=body.inspector,
        condition=body.condition, notes=body.notes, photos=decode_photos(body.photos), **_step(request, user),
    )  # fmt: skip
    return _inspection_reads(session, [inspection], asset_id)[0]


# --- proposals and report links ------------------------------------------------------------------------------------


@router.get("/assets/{asset_id:int}/proposals", tags=["assets"], response_model=list[ProposalRead])
def list_asset_proposals(
    session: SessionDep,
    _user: ConsoleUser,
    asset_id: AssetIdPath,
    status: Annotated[
        str | None, Query(pattern=r"^(pending|accepted|rejected)$", description="Only this status")
    ] = None,
) -> list[ProposalRead]:
    """Condition updates proposed for the asset from resolved reports (staff)."""
    asset = service.get_asset(session, asset_id=asset_id)
    return _proposal_reads(session, service.list_proposals(session, asset_id=asset.id, status=status))


@router.post(
    "/inbox/{report_id}/asset-proposal",
    tags=["inbox"],
    response_model=ProposalRead,
    status_code=201,
    responses=BODY_RESPONSES,
)
def propose_condition(
    request: Request, session: SessionDep, user: ConsoleUser, report_id: ReportIdPath, body: ProposalCreate
) -> ProposalRead:
    """Propose a new condition for the asset of a resolved report; the asset's owner OPD decides."""
    proposal = service.propose_condition(
        session, report_id=report_id, condition=body.condition, note=body.note, **_step(request, user)
    )
    return _proposal_reads(session, [proposal])[0]


@router.post(
    "/asset-proposals/{proposal_id}/decision", tags=["assets"], response_model=ProposalRead, responses=BODY_RESPONSES
)
def decide_proposal(
    request: Request, session: SessionDep, user: AssetEditor, proposal_id: ProposalIdPath, body: ProposalDecision
) -> ProposalRead:
    """Accept (recorded as today's inspection) or reject a proposed condition update (the asset's owner OPD)."""
    proposal = service.decide_proposal(session, proposal_id=proposal_id, accept=body.accept, **_step(request, user))
    return _proposal_reads(session, [proposal])[0]


@router.put("/inbox/{report_id}/asset", tags=["inbox"], response_model=ReportAssetLinked, responses=BODY_RESPONSES)
def link_report_asset(
    request: Request, session: SessionDep, user: ConsoleUser, report_id: ReportIdPath, body: ReportAssetLink
) -> ReportAssetLinked:
    """Link a report to the asset it is about, or unlink it with `asset_id: null` (the report's handlers)."""
    report = reports.link_report_asset(
        session, report_id=report_id, asset_id=body.asset_id, by=user, actor=actor_of(request, user)
    )
    return ReportAssetLinked(report_id=report.id, tracking_code=report.tracking_code, asset_id=report.asset_id)
