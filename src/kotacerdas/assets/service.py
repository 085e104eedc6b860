"""The registry of infrastructure and facilities: assets, their inspections and condition history, the condition
updates proposed from resolved citizen reports, who may edit what, and the one public view of an asset.

This module is the domain's public API: the console, the JSON API, the public pages, imports and other domains call
these functions and nothing else. Services flush; the caller commits. Every change is audited and sets
`Asset.updated_at`, by which the map index notices it. The privacy rule of the public side lives in `public_asset`:
inspector names are staff data (the public sees the OPD), and linked reports appear only as
`reports.service.public_rows` shows them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas import storage
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor, clean_text, record_change, snapshot
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import types as asset_types
from kotacerdas.assets.enums import Condition, ConditionScale, ProposalStatus
from kotacerdas.assets.models import (
    Asset,
    AssetConditionProposal,
    AssetExternalId,
    AssetInspection,
    AssetPhoto,
    AssetType,
)
from kotacerdas.assets.schemas import (
    ConditionRead,
    PublicAsset,
    PublicAssetPhoto,
    PublicAssetReport,
    PublicAttribute,
    PublicInspection,
    RegionRef,
)
from kotacerdas.assets.types import get_type, list_types, seed_default_types, type_name
from kotacerdas.assets.validation import AssetCleaner, RawAsset, local_today
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, utcnow
from kotacerdas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from kotacerdas.i18n import _, get_locale
from kotacerdas.pagination import Paged, PageRequest, paginate
from kotacerdas.regions import service as regions
from kotacerdas.reports import photos as photo_files
from kotacerdas.reports import service as reports
from kotacerdas.reports.enums import OPEN_STATUSES, ReportStatus

__all__ = [
    "AssetCleaner",
    "RawAsset",
    "get_type",
    "list_types",
    "seed_default_types",
    "type_name",
]

INSPECTOR_MAX = 120
NOTES_MAX = 4000
NAME_MAX = 120
EARLIEST_INSPECTION = date(1900, 1, 1)
# The report form offers assets this close to the chosen place.
NEARBY_RADIUS_M = 150
# Candidates read from the bounding-box pre-selection before the exact distances are computed.
NEARBY_CANDIDATES = 500
# The public page lists at most this many open reports and photos of an asset.
PUBLIC_REPORTS_MAX = 50
PUBLIC_PHOTOS_MAX = 24
METRES_PER_DEGREE = 111_320.0
# Fields `update_asset` accepts; the condition changes through inspections only.
UPDATABLE_FIELDS = frozenset(
    {"type", "name", "geometry", "agency", "attributes", "description", "address", "external_ids"}
)
SOURCES = ("inspection", "import", "report")


# --- small helpers ----------------------------------------------------------------------------------------------


def _invalid(message: str, field: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "reason": reason}])


def _check_no_nul(value: Any, field: str) -> None:
    """Refuse a NUL character anywhere in a JSON value: PostgreSQL cannot store it in JSONB (nor in text)."""
    if isinstance(value, str):
        found = "\x00" in value
    elif isinstance(value, dict):
        found = False
        for key, item in value.items():
            if "\x00" in str(key):
                found = True
                break
            _check_no_nul(item, field)
    elif isinstance(value, list | tuple):
        found = False
        for item in value:
            _check_no_nul(item, field)
    else:
        found = False
    if found:
        raise _invalid(_("The value contains characters that are not allowed."), field, "control_character")


def _archived() -> Conflict:
    return Conflict(_("The asset is archived; restore it first."), errors=[{"field": "active", "reason": "archived"}])


def condition_read(value: str | None, locale: str | None = None) -> ConditionRead | None:
    """A stored condition value with its label in `locale` and its colour; None when not inspected."""
    if not value:
        return None
    condition = Condition(value)
    english = (locale or get_locale()) == "en"
    return ConditionRead(
        value=condition.value, label=condition.label_en if english else condition.label_id, colour=condition.colour
    )


def photo_paths(photo_id: int) -> tuple[str, str]:
    """The public paths of an asset photo and its thumbnail (re-encoded JPEGs without metadata)."""
    return f"/media/aset/{photo_id}.jpg", f"/media/aset/{photo_id}/thumb.jpg"


def public_path(asset_id: int) -> str:
    """The address of an asset's public page."""
    return f"/aset/{asset_id}"


def _audit_view(asset: Asset) -> dict[str, Any]:
    # The geometry can be 20,000 vertices: the audit keeps where it is and its size, not every coordinate.
    view = snapshot(asset, exclude=("geometry",))
    view["geometry_sha"] = _short_hash(asset.geometry)
    return view


def _short_hash(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest()[:16] if text else None


# --- access ----------------------------------------------------------------------------------------------------


def can_edit_agency(user: User | None, agency_id: int | None) -> bool:
    """Whether `user` may edit the assets of OPD `agency_id`: an admin any OPD's, OPD staff their own OPD's only."""
    if user is None or not accounts.user_can(user, Permission.ASSETS_EDIT):
        return False
    if user.role == Role.ADMIN.value:
        return True
    return user.agency_id is not None and user.agency_id == agency_id


def can_edit(user: User | None, asset: Asset) -> bool:
    """Whether `user` may edit `asset`, inspect it and decide on its proposals (admin: all; OPD: its own)."""
    return can_edit_agency(user, asset.agency_id)


def _require_edit_agency(by: User | None, agency_id: int | None) -> None:
    # `by=None` is the system (the CLI, the demo, an import run by an operator on the server): any OPD.
    if by is not None and not can_edit_agency(by, agency_id):
        raise PermissionDenied(_("Only the OPD that owns this asset may change it."))


# --- reads -------------------------------------------------------------------------------------------------------


@dataclass
class AssetFilters:
    """Which assets a list shows: types by code, conditions (`unknown` for never inspected), a kecamatan or desa,
    an owner OPD, text in the name or an external id, active or archived (None: both), a box west,south,east,north
    that the asset's bounding box touches."""

    type_codes: list[str] | None = None
    conditions: list[str] | None = None
    kecamatan_code: str | None = None
    desa_code: str | None = None
    agency_id: int | None = None
    q: str | None = None
    active: bool | None = True
    bbox: tuple[float, float, float, float] | None = None


def filter_statement(statement: sa.Select, filters: AssetFilters) -> sa.Select:
    """`statement` (over `assets`) narrowed by `filters`; shared by lists, exports and the map."""
    if filters.active is not None:
        statement = statement.where(Asset.active.is_(filters.active))
    if filters.type_codes:
        statement = statement.where(
            Asset.type_id.in_(sa.select(AssetType.id).where(AssetType.code.in_(list(filters.type_codes))))
        )
    if filters.conditions:
        known = [value for value in filters.conditions if value != "unknown"]
        parts = []
        if known:
            parts.append(Asset.condition.in_(known))
        if "unknown" in filters.conditions:
            parts.append(Asset.condition.is_(None))
        statement = statement.where(sa.or_(*parts))
    if filters.kecamatan_code:
        statement = statement.where(Asset.kecamatan_code == filters.kecamatan_code)
    if filters.desa_code:
        statement = statement.where(Asset.desa_code == filters.desa_code)
    if filters.agency_id is not None:
        statement = statement.where(Asset.agency_id == filters.agency_id)
    q = accounts.search_text(filters.q)
    if q:
        pattern = accounts.like_pattern(q)
        statement = statement.where(
            sa.or_(
                Asset.name.ilike(pattern, escape="\\"),
                Asset.id.in_(sa.select(AssetExternalId.asset_id).where(AssetExternalId.value == q)),
            )
        )
    if filters.bbox is not None:
        west, south, east, north = filters.bbox
        statement = statement.where(
            Asset.min_lon <= east, Asset.max_lon >= west, Asset.min_lat <= north, Asset.max_lat >= south
        )
    return statement


def get_asset(session: Session, *, asset_id: int) -> Asset:
    """One asset by id, active or archived."""
    asset = session.get(Asset, asset_id) if 1 <= asset_id <= MAX_INT_ID else None
    if asset is None:
        raise NotFound(_("There is no asset with that id."))
    return asset


def get_active_asset(session: Session, *, asset_id: int | None, field: str = "asset_id") -> Asset:
    """An active asset to link something to; InvalidInput naming `field` when there is none (a 422, not a 404:
    the id is a value in the caller's input)."""
    asset = session.get(Asset, asset_id) if asset_id is not None and 1 <= asset_id <= MAX_INT_ID else None
    if asset is None or not asset.active:
        raise _invalid(_("There is no active asset with that id."), field, "unknown")
    return asset


def list_assets(session: Session, *, filters: AssetFilters, page: PageRequest) -> Paged[Asset]:
    """Assets matching `filters`, by name."""
    statement = filter_statement(sa.select(Asset), filters).order_by(Asset.name, Asset.id)
    return paginate(session, statement, page)


def external_ids(session: Session, *, asset_ids: list[int]) -> dict[int, dict[str, str]]:
    """The external ids of each asset, by system."""
    found: dict[int, dict[str, str]] = {asset_id: {} for asset_id in asset_ids}
    if not asset_ids:
        return found
    rows = session.execute(
        sa.select(AssetExternalId.asset_id, AssetExternalId.system, AssetExternalId.value)
        .where(AssetExternalId.asset_id.in_(asset_ids))
        .order_by(AssetExternalId.system)
    )
    for asset_id, system, value in rows:
        found[asset_id][system] = value
    return found


def types_by_id(session: Session) -> dict[int, AssetType]:
    """Every asset type (active or not) by id, for lists that name the type of each row."""
    return {kind.id: kind for kind in asset_types.list_types(session, active_only=False)}


def condition_history(session: Session, *, asset_id: int) -> list[AssetInspection]:
    """The asset's inspections, newest first (by date, then by the order they were recorded)."""
    return list(
        session.scalars(
            sa.select(AssetInspection)
            .where(AssetInspection.asset_id == asset_id)
            .order_by(AssetInspection.inspected_on.desc(), AssetInspection.id.desc())
        )
    )


def list_photos(session: Session, *, asset_id: int, limit: int | None = None) -> list[AssetPhoto]:
    """The asset's photos, newest first."""
    statement = sa.select(AssetPhoto).where(AssetPhoto.asset_id == asset_id).order_by(AssetPhoto.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def get_photo(session: Session, *, photo_id: int, by: User | None) -> tuple[AssetPhoto, Asset]:
    """An asset photo the viewer may see: any photo of an active asset (assets are public infrastructure and the
    photos carry no metadata), an archived asset's only for staff who may edit it."""
    photo = session.get(AssetPhoto, photo_id) if 1 <= photo_id <= MAX_INT_ID else None
    asset = session.get(Asset, photo.asset_id) if photo else None
    if photo is None or asset is None or not (asset.active or can_edit(by, asset)):
        raise NotFound(_("There is no such photo."))
    return photo, asset


# --- writes: assets ------------------------------------------------------------------------------------------


def _store_external_ids(session: Session, *, asset_id: int, values: dict[str, str]) -> None:
    """Make the asset's external ids exactly `values`; a number another asset holds in that system is refused."""
    if values:
        taken = session.execute(
            sa.select(AssetExternalId.system, AssetExternalId.value, AssetExternalId.asset_id).where(
                sa.or_(
                    *(
                        sa.and_(AssetExternalId.system == system, AssetExternalId.value == value)
                        for system, value in values.items()
                    )
                ),
                AssetExternalId.asset_id != asset_id,
            )
        ).first()
        if taken is not None:
            raise Conflict(
                _("Another asset already has %(system)s number %(value)s.")
                % {"system": taken.system, "value": taken.value},
                errors=[{"field": f"external_ids.{taken.system}", "reason": "taken", "asset_id": taken.asset_id}],
            )
    existing = {
        row.system: row
        for row in session.scalars(sa.select(AssetExternalId).where(AssetExternalId.asset_id == asset_id))
    }
    for system, row in existing.items():
        if system not in values:
            session.delete(row)
        elif row.value != values[system]:
            row.value = values[system]
    for system, value in values.items():
        if system not in existing:
            session.add(AssetExternalId(asset_id=asset_id, system=system, value=value))
    session.flush()


def create_asset(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, raw: RawAsset, source: str | None = None
) -> Asset:
    """Store a new asset from raw values (checked by `AssetCleaner`), with its external ids and, when a condition is
    given, a first inspection. `by=None` is the system (CLI, demo): any OPD; a user may create only for OPDs whose
    assets they edit."""
    _check_no_nul(raw.attributes, "attributes")
    clean = AssetCleaner(session, settings).clean(raw)
    _require_edit_agency(by, clean.columns["agency_id"])
    if clean.condition_on is not None and clean.condition_on < EARLIEST_INSPECTION:
        raise _invalid(_("The inspection date is too far in the past."), "condition_on", "range")
    now = utcnow()
    asset = Asset(**clean.columns, created_at=now, updated_at=now)
    session.add(asset)
    session.flush()
    _store_external_ids(session, asset_id=asset.id, values=clean.external_ids)
    record_change(
        session, actor=actor, action="asset.create", entity_type="asset", entity_id=asset.id,
        after={**_audit_view(asset), "external_ids": clean.external_ids},
    )  # fmt: skip
    if clean.condition is not None:
        _add_inspection(
            session, settings=settings, actor=actor, by=by, asset=asset,
            inspected_on=clean.condition_on or local_today(settings), inspector=None, condition=clean.condition,
            notes=None, processed=[], source=source or ("inspection" if by is not None else "import"), now=now,
        )  # fmt: skip
    return asset


def update_asset(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, asset_id: int, changes: dict[str, Any]
) -> Asset:
    """Change an asset: `changes` holds any of type, name, geometry, agency, attributes, description, address,
    external_ids (which replace the asset's). The whole asset is checked again, so a new geometry gets its desa and
    kecamatan again and a new type re-checks the attributes. Handing an asset to another OPD needs the right to
    edit that OPD's assets too (in practice: an admin)."""
    unknown = sorted(set(changes) - UPDATABLE_FIELDS)
    if unknown:
        if "condition" in unknown:
            raise _invalid(_("The condition changes through an inspection."), "condition", "read_only")
        raise _invalid(_("Unknown field: %(field)s.") % {"field": unknown[0]}, unknown[0], "unknown")
    asset = get_asset(session, asset_id=asset_id)
    _require_edit_agency(by, asset.agency_id)
    if not asset.active:
        raise Conflict(
            _("The asset is archived; restore it first."), errors=[{"field": "active", "reason": "archived"}]
        )
    current_ids = external_ids(session, asset_ids=[asset.id])[asset.id]
    merged = {
        "type": asset.type_id,
        "name": asset.name,
        "geometry": asset.geometry,
        "agency": asset.agency_id,
        "attributes": asset.attributes,
        "description": asset.description,
        "address": asset.address,
        "external_ids": current_ids,
        **changes,
    }
    raw = RawAsset(
        type=merged["type"], name=merged["name"], geometry=merged["geometry"], agency=merged["agency"],
        attributes=merged["attributes"], description=merged["description"], address=merged["address"],
        external_ids=merged["external_ids"] or {},
    )  # fmt: skip
    _check_no_nul(raw.attributes, "attributes")
    clean = AssetCleaner(session, settings).clean(raw)
    kind = clean.type
    if asset.condition is not None and kind.id != asset.type_id:
        # A new type may rate on another scale: the current condition must still mean something on it.
        if Condition(asset.condition) not in ConditionScale(kind.condition_scale).conditions:
            raise _invalid(
                _("The asset's condition is not on the new type's scale; choose a type rated like this one."),
                "type",
                "scale",
            )
    _require_edit_agency(by, clean.columns["agency_id"])
    before = {**_audit_view(asset), "external_ids": current_ids}
    for key, value in clean.columns.items():
        if getattr(asset, key) != value:
            setattr(asset, key, value)
    asset.updated_at = utcnow()
    session.flush()
    _store_external_ids(session, asset_id=asset.id, values=clean.external_ids)
    record_change(
        session, actor=actor, action="asset.update", entity_type="asset", entity_id=asset.id, before=before,
        after={**_audit_view(asset), "external_ids": clean.external_ids},
    )  # fmt: skip
    return asset


def archive_asset(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, asset_id: int, active: bool = False
) -> Asset:
    """Take an asset off the registry (it is never deleted: its history stays), or restore it with `active=True`."""
    asset = get_asset(session, asset_id=asset_id)
    _require_edit_agency(by, asset.agency_id)
    if asset.active == active:
        return asset
    before = _audit_view(asset)
    asset.active = active
    asset.updated_at = utcnow()
    session.flush()
    record_change(
        session, actor=actor, action="asset.restore" if active else "asset.archive", entity_type="asset",
        entity_id=asset.id, before=before, after=_audit_view(asset),
    )  # fmt: skip
    return asset


# --- writes: inspections ------------------------------------------------------------------------------------------


def _refresh_condition(session: Session, asset: Asset, *, now: datetime) -> None:
    """The asset's condition becomes its latest inspection's (by date, then by the order recorded)."""
    latest = session.execute(
        sa.select(AssetInspection.condition, AssetInspection.inspected_on)
        .where(AssetInspection.asset_id == asset.id)
        .order_by(AssetInspection.inspected_on.desc(), AssetInspection.id.desc())
        .limit(1)
    ).first()
    asset.condition = latest.condition if latest else None
    asset.condition_on = latest.inspected_on if latest else None
    asset.updated_at = now


def _condition_view(asset: Asset) -> dict[str, Any]:
    day = asset.condition_on.isoformat() if asset.condition_on else None
    return {"condition": asset.condition, "condition_on": day}


def _store_photos(
    session: Session, *, settings: Settings, asset: Asset, inspection: AssetInspection | None, processed: list[Any]
) -> list[AssetPhoto]:
    files: dict[str, bytes] = {}
    rows = []
    for photo in processed:
        file_key = storage.new_upload_key("assets", ".jpg")
        thumb_key = file_key.removesuffix(".jpg") + "-thumb.jpg"
        files[file_key] = photo.full
        files[thumb_key] = photo.thumb
        rows.append(
            AssetPhoto(
                asset_id=asset.id, inspection_id=inspection.id if inspection else None, file_key=file_key,
                thumb_key=thumb_key, width=photo.width, height=photo.height, sha256=photo.sha256,
            )
        )  # fmt: skip
    if rows:
        session.add_all(rows)
        session.flush()
        # Written after the rows, and removed again if the transaction rolls back: no orphan files.
        storage.store_files(session, settings=settings, files=files)
    return rows


def _add_inspection(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, asset: Asset, inspected_on: date,
    inspector: str | None, condition: Condition, notes: str | None, processed: list[Any], source: str,
    report_id: int | None = None, now: datetime | None = None,
) -> AssetInspection:  # fmt: skip
    now = now or utcnow()
    inspection = AssetInspection(
        asset_id=asset.id,
        inspected_on=inspected_on,
        inspector=inspector or (by.full_name[:INSPECTOR_MAX] if by is not None else actor.label[:INSPECTOR_MAX]),
        user_id=by.id if by is not None else None,
        condition=condition.value,
        notes=notes,
        source=source,
        report_id=report_id,
        created_at=now,
    )
    session.add(inspection)
    session.flush()
    _store_photos(session, settings=settings, asset=asset, inspection=inspection, processed=processed)
    before = {
        "condition": asset.condition,
        "condition_on": asset.condition_on.isoformat() if asset.condition_on else None,
    }
    _refresh_condition(session, asset, now=now)
    session.flush()
    record_change(
        session, actor=actor, action="asset.inspect", entity_type="asset", entity_id=asset.id, before=before,
        after={
            "condition": asset.condition,
            "condition_on": asset.condition_on.isoformat() if asset.condition_on else None,
            "inspection": snapshot(inspection),
            "photos": len(processed),
        },
    )  # fmt: skip
    return inspection


def _inspection_date(settings: Settings, value: date | None) -> date:
    if value is None:
        raise _invalid(_("Give the date of the inspection."), "inspected_on", "required")
    if value > local_today(settings):
        raise _invalid(_("The inspection date is in the future."), "inspected_on", "future")
    if value < EARLIEST_INSPECTION:
        raise _invalid(_("The inspection date is too far in the past."), "inspected_on", "range")
    return value


def _condition_of(session: Session, settings: Settings, asset: Asset, value: str | None) -> Condition:
    kind = get_type(session, type_id=asset.type_id)
    condition = AssetCleaner(session, settings).condition(kind, value)
    if condition is None:
        raise _invalid(_("Choose the condition."), "condition", "required")
    return condition


def record_inspection(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, asset_id: int, inspected_on: date | None,
    inspector: str | None, condition: str | None, notes: str | None, photos: list[bytes] | None = None,
) -> AssetInspection:  # fmt: skip
    """Record an inspection (date, inspector, condition, notes, up to 3 photos re-encoded without metadata); the
    asset's condition becomes its latest inspection's, so an older inspection entered late changes nothing."""
    asset = get_asset(session, asset_id=asset_id)
    _require_edit_agency(by, asset.agency_id)
    if not asset.active:
        raise Conflict(
            _("The asset is archived; restore it first."), errors=[{"field": "active", "reason": "archived"}]
        )
    checked_condition = _condition_of(session, settings, asset, condition)
    day = _inspection_date(settings, inspected_on)
    inspector = clean_text(inspector, field="inspector", label=_("Inspector"), max_length=INSPECTOR_MAX)
    notes = clean_text(notes, field="notes", label=_("Notes"), max_length=NOTES_MAX, multiline=True)
    processed = photo_files.process_photos([item for item in photos or [] if item])
    return _add_inspection(
        session, settings=settings, actor=actor, by=by, asset=asset, inspected_on=day, inspector=inspector,
        condition=checked_condition, notes=notes, processed=processed, source="inspection",
    )  # fmt: skip


# --- condition updates proposed from citizen reports ----------------------------------------------------------


def get_proposal(session: Session, *, proposal_id: int) -> AssetConditionProposal:
    """One proposed condition update by id."""
    proposal = session.get(AssetConditionProposal, proposal_id) if 1 <= proposal_id <= MAX_INT_ID else None
    if proposal is None:
        raise NotFound(_("There is no such proposal."))
    return proposal


def list_proposals(
    session: Session, *, asset_id: int | None = None, agency_id: int | None = None, status: str | None = "pending",
    limit: int = 200,
) -> list[AssetConditionProposal]:  # fmt: skip
    """Proposed condition updates, oldest first: of one asset, or of one OPD's assets, in one status (None: all)."""
    statement = sa.select(AssetConditionProposal).order_by(AssetConditionProposal.created_at, AssetConditionProposal.id)
    if asset_id is not None:
        statement = statement.where(AssetConditionProposal.asset_id == asset_id)
    if agency_id is not None:
        statement = statement.where(
            AssetConditionProposal.asset_id.in_(sa.select(Asset.id).where(Asset.agency_id == agency_id))
        )
    if status is not None:
        statement = statement.where(AssetConditionProposal.status == status)
    return list(session.scalars(statement.limit(limit)))


def propose_condition(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, report_id: int, condition: str | None,
    note: str | None,
) -> AssetConditionProposal:  # fmt: skip
    """Propose a new condition for the asset a resolved report is linked to; staff of the report's OPD (or
    Diskominfo) propose, the asset's owner OPD decides. One pending proposal per report."""
    report = reports.get_report(session, report_id=report_id)
    if by is not None and not (reports.can_handle(by, report) or reports.can_triage(by)):
        raise PermissionDenied(_("Only the OPD responsible for this report may do this."))
    if report.asset_id is None:
        raise _invalid(_("The report is not linked to an asset."), "report", "no_asset")
    if report.status != ReportStatus.SELESAI.value:
        raise Conflict(
            _("A condition update can be proposed only from a resolved report."),
            errors=[{"field": "status", "reason": "not_resolved"}],
        )
    asset = get_asset(session, asset_id=report.asset_id)
    if not asset.active:
        raise Conflict(_("The asset is archived."), errors=[{"field": "asset", "reason": "archived"}])
    checked_condition = _condition_of(session, settings, asset, condition)
    note = clean_text(note, field="note", label=_("Note"), max_length=NOTES_MAX, multiline=True)
    pending = session.scalar(
        sa.select(AssetConditionProposal.id).where(
            AssetConditionProposal.report_id == report.id,
            AssetConditionProposal.status == ProposalStatus.PENDING.value,
        )
    )
    if pending is not None:
        raise Conflict(
            _("A proposal from this report is already waiting for the owner OPD."),
            errors=[{"field": "report", "reason": "pending", "proposal_id": pending}],
        )
    proposal = AssetConditionProposal(
        asset_id=asset.id, report_id=report.id, condition=checked_condition.value, note=note,
        status=ProposalStatus.PENDING.value, created_at=utcnow(),
    )  # fmt: skip
    session.add(proposal)
    session.flush()
    record_change(
        session, actor=actor, action="asset.propose_condition", entity_type="asset", entity_id=asset.id,
        after=snapshot(proposal),
    )  # fmt: skip
    return proposal


def decide_proposal(
    session: Session, *, settings: Settings, actor: Actor, by: User | None, proposal_id: int, accept: bool
) -> AssetConditionProposal:
    """The owner OPD accepts a proposed condition (recorded as an inspection of today, source `report`) or rejects
    it."""
    proposal = get_proposal(session, proposal_id=proposal_id)
    asset = get_asset(session, asset_id=proposal.asset_id)
    _require_edit_agency(by, asset.agency_id)
    if proposal.status != ProposalStatus.PENDING.value:
        raise Conflict(_("This proposal has been decided already."), errors=[{"field": "status", "reason": "decided"}])
    before = snapshot(proposal)
    now = utcnow()
    if accept:
        if not asset.active:
            raise Conflict(
                _("The asset is archived; restore it first."), errors=[{"field": "asset", "reason": "archived"}]
            )
        inspection = _add_inspection(
            session, settings=settings, actor=actor, by=by, asset=asset, inspected_on=local_today(settings),
            inspector=None, condition=Condition(proposal.condition), notes=proposal.note, processed=[],
            source="report", report_id=proposal.report_id, now=now,
        )  # fmt: skip
        proposal.inspection_id = inspection.id
    proposal.status = (ProposalStatus.ACCEPTED if accept else ProposalStatus.REJECTED).value
    proposal.decided_by_id = by.id if by is not None else None
    proposal.decided_at = now
    session.flush()
    record_change(
        session, actor=actor, action="asset.decide_proposal", entity_type="asset", entity_id=asset.id,
        before=before, after=snapshot(proposal),
    )  # fmt: skip
    return proposal


def proposal_codes(session: Session, proposals: list[AssetConditionProposal]) -> dict[int, str]:
    """The tracking codes of the proposals' reports, by report id."""
    codes: dict[int, str] = {}
    for report_id in {proposal.report_id for proposal in proposals if proposal.report_id}:
        try:
            codes[report_id] = reports.get_report(session, report_id=report_id).tracking_code
        except NotFound:
            continue
    return codes


@dataclass(frozen=True)
class ReportAssetPanel:
    """What a report's staff page shows about the asset it is about: the asset, the assets near the report to link
    it to, and whether the user may link it and propose a new condition from it."""

    asset: Asset | None
    type_name: str | None
    condition: ConditionRead | None
    condition_options: list[tuple[str, str]]
    link_options: list[tuple[int, str]]
    proposals: list[tuple[ConditionRead | None, str]]
    may_link: bool
    may_propose: bool


def report_asset_panel(session: Session, *, report: Any, by: User, locale: str | None = None) -> ReportAssetPanel:
    """The asset panel of a report's staff page (see `ReportAssetPanel`)."""
    locale = locale or get_locale()
    may_link = reports.can_triage(by) or reports.can_handle(by, report)
    asset = session.get(Asset, report.asset_id) if report.asset_id else None
    kind = get_type(session, type_id=asset.type_id) if asset else None
    proposals = (
        [p for p in list_proposals(session, asset_id=asset.id, status=None) if p.report_id == report.id]
        if asset
        else []
    )
    pending = any(p.status == ProposalStatus.PENDING.value for p in proposals)
    english = locale == "en"
    link_options = []
    if may_link:
        nearby = nearby_assets(session, lat=report.lat, lon=report.lon, radius_m=300)
        link_options = [(item.id, f"{item.name} ({round(distance)} m)") for item, distance in nearby]
        if asset is not None and asset.id not in {item.id for item, _distance in nearby}:
            link_options.insert(0, (asset.id, asset.name))
    return ReportAssetPanel(
        asset=asset,
        type_name=type_name(kind, locale) if kind else None,
        condition=condition_read(asset.condition, locale) if asset else None,
        condition_options=[
            (c.value, c.label_en if locale == "en" else c.label_id)
            for c in ConditionScale(kind.condition_scale).conditions
        ]
        if kind
        else [],
        link_options=link_options,
        proposals=[
            (
                condition_read(p.condition, locale),
                ProposalStatus(p.status).label_en if english else ProposalStatus(p.status).label_id,
            )
            for p in proposals
        ],
        may_link=may_link,
        may_propose=bool(
            asset and asset.active and may_link and report.status == ReportStatus.SELESAI.value and not pending
        ),
    )


# --- asset types ---------------------------------------------------------------------------------------------


def update_asset_type(session: Session, *, actor: Actor, type_id: int, changes: dict[str, Any]) -> AssetType:
    """Change an asset type's names, default OPD, attribute schema, position or whether it is offered. The code,
    the geometry kind and the condition scale are fixed (stored assets depend on them). A new schema applies to
    assets created or edited from now on; stored attributes are not re-checked."""
    allowed = {"name_id", "name_en", "agency_id", "attribute_schema", "position", "active"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise _invalid(_("This field cannot be changed: %(field)s.") % {"field": unknown[0]}, unknown[0], "read_only")
    kind = get_type(session, type_id=type_id)
    before = snapshot(kind)
    values: dict[str, Any] = {}
    if "name_id" in changes:
        values["name_id"] = clean_text(
            changes["name_id"], field="name_id", label=_("Name (Indonesian)"), max_length=NAME_MAX, required=True
        )
    if "name_en" in changes:
        values["name_en"] = clean_text(
            changes["name_en"], field="name_en", label=_("Name (English)"), max_length=NAME_MAX
        ) or values.get("name_id", kind.name_id)
    if "agency_id" in changes:
        agency_id = changes["agency_id"]
        if agency_id is not None:
            try:
                agency = agencies.get_agency(session, agency_id=agency_id)
            except NotFound:
                raise _invalid(_("Unknown OPD."), "agency_id", "unknown") from None
            if not agency.active:
                raise _invalid(_("This OPD is inactive."), "agency_id", "inactive")
        values["agency_id"] = agency_id
    if "attribute_schema" in changes:
        values["attribute_schema"] = check_attribute_schema(changes["attribute_schema"])
    if "position" in changes:
        position = changes["position"]
        if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= 10_000:
            raise _invalid(_("The position is a whole number from 0 to 10000."), "position", "range")
        values["position"] = position
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise _invalid(_("This field cannot be empty."), "active", "required")
        values["active"] = changes["active"]
    for key, value in values.items():
        setattr(kind, key, value)
    kind.updated_at = utcnow()
    session.flush()
    record_change(
        session, actor=actor, action="asset_type.update", entity_type="asset_type", entity_id=kind.id,
        before=before, after=snapshot(kind),
    )  # fmt: skip
    return kind


def check_attribute_schema(value: Any) -> dict[str, Any]:
    """A type's attribute schema: a valid JSON Schema (draft 2020-12) describing an object; InvalidInput otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise _invalid(
                _("The attribute schema is not valid JSON (line %(line)d, column %(column)d).")
                % {"line": exc.lineno, "column": exc.colno},
                "attribute_schema",
                "json",
            ) from None
    if not isinstance(value, dict):
        raise _invalid(_("The attribute schema must be a JSON object."), "attribute_schema", "type")
    _check_no_nul(value, "attribute_schema")
    if value.get("type", "object") != "object":
        raise _invalid(
            _('The attribute schema must describe an object ("type": "object").'), "attribute_schema", "type"
        )
    try:
        import jsonschema  # on first use: it is slow to import, and the app starts without it

        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.SchemaError as exc:
        raise _invalid(
            _("The attribute schema is not a valid JSON Schema: %(reason)s") % {"reason": exc.message},
            "attribute_schema",
            "schema",
        ) from None
    if _outside_refs(value):
        # Validation would try to fetch the other document (and fail on every save): only local references.
        raise _invalid(
            _('The attribute schema may refer only to its own definitions ("$ref": "#/...").'),
            "attribute_schema",
            "ref",
        )
    properties = value.get("properties", {})
    if not isinstance(properties, dict):
        raise _invalid(_("The attribute schema must be a JSON object."), "attribute_schema", "type")
    return value


def _outside_refs(value: Any) -> bool:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("$ref", "$dynamicRef") and not (isinstance(item, str) and item.startswith("#")):
                return True
            if _outside_refs(item):
                return True
    elif isinstance(value, list):
        return any(_outside_refs(item) for item in value)
    return False


# --- the report form --------------------------------------------------------------------------------------------


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6_371_000 * math.asin(min(1.0, math.sqrt(a)))


def _distance_to(asset_geometry: str, lat: float, lon: float, shrink: float) -> float:
    """Metres from (lat, lon) to the nearest point of a line, on a local flat projection (good to a few metres at
    the distances the form cares about)."""
    import shapely  # on first use: shapely and numpy cost start-up time (bench/startup.py)
    from shapely.geometry import shape

    geometry = shape(json.loads(asset_geometry))
    projected = shapely.transform(
        geometry, lambda xy: (xy - [lon, lat]) * [METRES_PER_DEGREE * shrink, METRES_PER_DEGREE]
    )
    return float(shapely.distance(projected, shapely.Point(0.0, 0.0)))


def nearby_assets(
    session: Session, *, lat: float, lon: float, radius_m: float = NEARBY_RADIUS_M, limit: int = 10
) -> list[tuple[Asset, float]]:
    """Active assets within `radius_m` of a place, nearest first, with the distance in metres (to the point, or to
    the nearest point of a line): the report form offers them so that a report can name its bridge or road."""
    shrink = max(math.cos(math.radians(lat)), 0.01)
    dlat = radius_m / METRES_PER_DEGREE
    dlon = radius_m / (METRES_PER_DEGREE * shrink)
    candidates = session.scalars(
        sa.select(Asset)
        .where(
            Asset.active.is_(True),
            Asset.min_lat <= lat + dlat,
            Asset.max_lat >= lat - dlat,
            Asset.min_lon <= lon + dlon,
            Asset.max_lon >= lon - dlon,
        )
        .limit(NEARBY_CANDIDATES)
    ).all()
    found = []
    for asset in candidates:
        if asset.length_km is None:
            distance = _metres(lat, lon, asset.lat, asset.lon)
        else:
            distance = _distance_to(asset.geometry, lat, lon, shrink)
        if distance <= radius_m:
            found.append((asset, round(distance, 1)))
    found.sort(key=lambda item: (item[1], item[0].id))
    return found[:limit]


# --- the public view -------------------------------------------------------------------------------------------


def _region_ref(session: Session, code: str | None) -> RegionRef | None:
    if not code:
        return None
    try:
        return RegionRef(code=code, name=regions.get_region(session, code=code).name)
    except NotFound:
        return RegionRef(code=code, name=code)


def attribute_rows(kind: AssetType, values: dict[str, Any] | None) -> list[PublicAttribute]:
    """The asset's attributes in the schema's order, each with its title (the key when the schema has none)."""
    values = values or {}
    properties = (kind.attribute_schema or {}).get("properties", {}) or {}
    rows = []
    for key, definition in properties.items():
        if key in values and values[key] not in (None, ""):
            title = definition.get("title") if isinstance(definition, dict) else None
            rows.append(PublicAttribute(key=key, label=title or key, value=values[key]))
    for key, value in values.items():
        if key not in properties and value not in (None, ""):
            rows.append(PublicAttribute(key=key, label=key, value=value))
    return rows


def public_asset(session: Session, *, settings: Settings, asset: Asset, locale: str | None = None) -> PublicAsset:
    """What anyone may see of an asset: its type, place, owner OPD, condition and history (dates, conditions and
    the OPD, never the inspector's name), photos, and its open citizen reports as the public sees them."""
    locale = locale or get_locale()
    kind = get_type(session, type_id=asset.type_id)
    agency_names = agencies.agency_names(session)
    history = session.execute(
        sa.select(AssetInspection.inspected_on, AssetInspection.condition, AssetInspection.source, User.agency_id)
        .outerjoin(User, User.id == AssetInspection.user_id)
        .where(AssetInspection.asset_id == asset.id)
        .order_by(AssetInspection.inspected_on.desc(), AssetInspection.id.desc())
    ).all()
    photos = session.execute(
        sa.select(AssetPhoto, AssetInspection.inspected_on)
        .outerjoin(AssetInspection, AssetInspection.id == AssetPhoto.inspection_id)
        .where(AssetPhoto.asset_id == asset.id)
        .order_by(AssetPhoto.id.desc())
        .limit(PUBLIC_PHOTOS_MAX)
    ).all()
    rows = reports.public_rows(
        session, settings=settings, locale=locale, asset_id=asset.id, statuses=OPEN_STATUSES, limit=PUBLIC_REPORTS_MAX
    )
    english = locale == "en"
    return PublicAsset(
        id=asset.id,
        type_code=kind.code,
        type_name=type_name(kind, locale),
        geometry_kind=kind.geometry_kind,
        name=asset.name,
        description=asset.description,
        address=asset.address,
        agency=agency_names.get(asset.agency_id),
        geometry=json.loads(asset.geometry),
        lat=asset.lat,
        lon=asset.lon,
        length_km=asset.length_km,
        desa=_region_ref(session, asset.desa_code),
        kecamatan=_region_ref(session, asset.kecamatan_code),
        condition=condition_read(asset.condition, locale),
        condition_on=asset.condition_on,
        attributes=attribute_rows(kind, asset.attributes),
        external_ids=external_ids(session, asset_ids=[asset.id])[asset.id],
        history=[
            PublicInspection(
                inspected_on=row.inspected_on,
                condition=condition_read(row.condition, locale),
                # The inspector's OPD when known (an OPD staff member), else the owner OPD: never a person.
                agency=agency_names.get(row.agency_id or asset.agency_id),
                source=row.source,
            )
            for row in history
        ],
        photos=[
            PublicAssetPhoto(
                url=photo_paths(photo.id)[0],
                thumb_url=photo_paths(photo.id)[1],
                width=photo.width,
                height=photo.height,
                inspected_on=inspected_on,
            )  # fmt: skip
            for photo, inspected_on in photos
        ],
        open_reports=[
            PublicAssetReport(
                tracking_code=row.tracking_code,
                category_name=row.category_name,
                status=row.status.value,
                status_label=row.status.label_en if english else row.status.label_id,
                status_colour=row.status.colour,
                description=row.description,
                created_at=row.created_at,
                url=f"/lapor/{row.tracking_code}",
            )
            for row in rows
        ],
        report_url=f"/lapor?aset={asset.id}&lat={asset.lat:.6f}&lon={asset.lon:.6f}",
        updated_at=asset.updated_at,
    )
