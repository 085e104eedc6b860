"""Console pages of the assets registry: the asset list with filters, the asset form (geometry as GeoJSON or WKT
text, or latitude/longitude for points; attributes as form fields built from the type's JSON Schema), inspections
with photos, the condition history, proposed condition updates, and the asset types (admins).

Every page calls `assets.service`; a form posts to one route, which calls the one service function and redirects
back (PRG), or shows the form again with the refusal and the values as typed (nothing of a refused form is stored).
Viewing needs `assets.edit`; the service decides which assets a user may change (an OPD: its own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import service
from kotacerdas.assets.enums import ConditionScale, GeometryKind, ProposalStatus
from kotacerdas.assets.models import Asset, AssetType
from kotacerdas.assets.validation import RawAsset
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.errors import DomainError, InvalidInput
from kotacerdas.i18n import _, get_locale
from kotacerdas.pagination import PageQuery
from kotacerdas.regions import service as regions
from kotacerdas.reports.photos import MAX_PHOTO_BYTES, MAX_PHOTOS
from kotacerdas.web.forms import PostedForm, kept_filters, read_uploads, render_form
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

ASSETS = "/konsol/aset"
TYPES = "/konsol/jenis-aset"
IdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
FilterText = Annotated[str, Query(max_length=100)]
AssetEditor = Annotated[User, Depends(require(Permission.ASSETS_EDIT))]
TypeManager = Annotated[User, Depends(require(Permission.ASSETS_TYPES))]


def _id_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdecimal() and 1 <= int(value) <= MAX_INT_ID else None


def _type_label(kind: AssetType) -> str:
    return service.type_name(kind, get_locale())


def _condition_options(kind: AssetType) -> list[tuple[str, str]]:
    return [(condition.value, condition.label) for condition in ConditionScale(kind.condition_scale).conditions]


def _all_condition_options() -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for scale in ConditionScale:
        for condition in scale.conditions:
            seen.setdefault(condition.value, condition.label)
    return [*seen.items(), ("unknown", _("Not inspected yet"))]


def _editable_agencies(session: Session, user: User) -> list[tuple[int, str]]:
    """The OPDs whose assets `user` may edit, for the owner select box."""
    return [
        (agency.id, agency.short_name)
        for agency in agencies.list_agency_choices(session, active_only=True)
        if service.can_edit_agency(user, agency.id)
    ]


# --- the list ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetRow:
    """An asset as the console list shows it."""

    asset: Asset
    type_name: str
    agency: str
    kecamatan: str
    condition: Any


@router.get("/konsol/aset", response_class=HTMLResponse)
def assets_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: AssetEditor,
    page: PageQuery,
    type: FilterText = "",
    condition: FilterText = "",
    kecamatan: FilterText = "",
    agency: FilterText = "",
    q: FilterText = "",
    archived: FilterText = "",
) -> HTMLResponse:
    """The registry: assets with their type, OPD, kecamatan and condition, filtered; proposals waiting for the
    user's OPD on top."""
    kinds = service.types_by_id(session)
    kecamatan_list = regions.list_kecamatan(session, settings=settings)
    kecamatan_names = {region.code: region.name for region in kecamatan_list}
    type_codes = {kind.code for kind in kinds.values()}
    conditions = {value for value, _label in _all_condition_options()}
    filters = kept_filters(
        type=type if type in type_codes else "",
        condition=condition if condition in conditions else "",
        kecamatan=kecamatan if kecamatan in kecamatan_names else "",
        agency=str(_id_or_none(agency) or ""),
        q=q.strip()[:100],
        archived="1" if archived in ("1", "on", "true") else "",
    )
    paged = service.list_assets(
        session,
        filters=service.AssetFilters(
            type_codes=[filters["type"]] if filters.get("type") else None,
            conditions=[filters["condition"]] if filters.get("condition") else None,
            kecamatan_code=filters.get("kecamatan"),
            agency_id=_id_or_none(filters.get("agency")),
            q=filters.get("q"),
            active=not filters.get("archived"),
        ),
        page=page,
    )
    names = agencies.agency_names(session)
    rows = [
        AssetRow(
            asset=asset,
            type_name=_type_label(kinds[asset.type_id]),
            agency=names.get(asset.agency_id, "–"),
            kecamatan=kecamatan_names.get(asset.kecamatan_code or "", asset.kecamatan_code or "–"),
            condition=service.condition_read(asset.condition),
        )
        for asset in paged.items
    ]
    own_agency = None if user.role == Role.ADMIN.value else user.agency_id
    proposals = (
        service.list_proposals(session, agency_id=own_agency) if (own_agency or user.role == Role.ADMIN.value) else []
    )
    return render(
        request,
        "assets/console_list.html",
        {
            "paged": paged,
            "rows": rows,
            "filters": filters,
            "type_options": [(kind.code, _type_label(kind)) for kind in kinds.values()],
            "condition_options": _all_condition_options(),
            "kecamatan_options": [(region.code, region.name) for region in kecamatan_list],
            "agency_options": [(a.id, a.short_name) for a in agencies.list_agency_choices(session)],
            "proposals": _proposal_rows(session, proposals),
            "may_create": bool(_editable_agencies(session, user)),
            "may_import": accounts.user_can(user, Permission.ASSETS_IMPORT),
        },
    )


@dataclass(frozen=True)
class ProposalRow:
    """A proposed condition update as the console shows it."""

    id: int
    asset_id: int
    asset_name: str
    tracking_code: str | None
    report_id: int | None
    condition: Any
    note: str | None
    status: ProposalStatus
    created_at: Any


def _proposal_rows(session: Session, proposals: list[Any]) -> list[ProposalRow]:
    codes = service.proposal_codes(session, proposals)
    names: dict[int, str] = {}
    for proposal in proposals:
        if proposal.asset_id not in names:
            names[proposal.asset_id] = service.get_asset(session, asset_id=proposal.asset_id).name
    return [
        ProposalRow(
            id=proposal.id,
            asset_id=proposal.asset_id,
            asset_name=names[proposal.asset_id],
            tracking_code=codes.get(proposal.report_id) if proposal.report_id else None,
            report_id=proposal.report_id,
            condition=service.condition_read(proposal.condition),
            note=proposal.note,
            status=ProposalStatus(proposal.status),
            created_at=proposal.created_at,
        )  # fmt: skip
        for proposal in proposals
    ]


# --- the asset form ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeField:
    """One attribute of the type's JSON Schema as a form field: a choice, a number, yes/no, or text."""

    key: str
    name: str
    label: str
    kind: str  # choice, integer, number, boolean, text
    choices: list[tuple[str, str]]
    required: bool
    minimum: Any = None
    maximum: Any = None
    max_length: int | None = None


def attribute_fields(kind: AssetType) -> list[AttributeField]:
    """The type's attributes as form fields, in the schema's order."""
    schema = kind.attribute_schema or {}
    required = set(schema.get("required") or [])
    fields = []
    for key, definition in (schema.get("properties") or {}).items():
        if not isinstance(definition, dict):
            continue
        declared = definition.get("type")
        if "enum" in definition:
            field_kind = "choice"
        elif declared in ("integer", "number", "boolean"):
            field_kind = declared
        else:
            field_kind = "text"
        fields.append(
            AttributeField(
                key=key,
                name=f"attributes.{key}",
                label=definition.get("title") or key,
                kind=field_kind,
                choices=[(str(value), str(value)) for value in definition.get("enum") or []],
                required=key in required,
                minimum=definition.get("minimum"),
                maximum=definition.get("maximum"),
                max_length=definition.get("maxLength"),
            )  # fmt: skip
        )
    return fields


def _typed(field: AttributeField, text: str) -> Any:
    """A form value as the schema expects it; text that is not a number stays text, so the schema check names it."""
    if field.kind == "boolean":
        return {"1": True, "0": False}.get(text, text)
    if field.kind in ("integer", "number"):
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            return text
        if not math.isfinite(number):
            return text
        return int(number) if field.kind == "integer" and number.is_integer() else number
    if field.kind == "choice":
        return text
    return text


def _external_ids_text(values: Mapping[str, str]) -> str:
    return "\n".join(f"{system}: {value}" for system, value in values.items())


def _parse_external_ids(text: str) -> dict[str, str]:
    """`system: number` lines (or `system=number`) to a dict; InvalidInput for a line without a separator."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        for separator in (":", "="):
            if separator in line:
                system, _sep, value = line.partition(separator)
                break
        else:
            raise InvalidInput(
                _("Write each external id as system: number, e.g. simbada: 1.3.2.05.01.001"),
                errors=[{"field": "external_ids", "reason": "format"}],
            )
        values[system.strip().lower()] = value.strip()
    return values


def _geometry_text(asset: Asset) -> str:
    return json.dumps(json.loads(asset.geometry), ensure_ascii=False)


@dataclass
class AssetForm:
    """The asset form as typed, kept to show it again after an error."""

    type: str = ""
    name: str = ""
    agency: str = ""
    geometry: str = ""
    lat: str = ""
    lon: str = ""
    description: str = ""
    address: str = ""
    external_ids: str = ""
    condition: str = ""
    condition_on: str = ""
    attributes: dict[str, str] | None = None

    @classmethod
    def of(cls, asset: Asset, kind: AssetType, ids: Mapping[str, str]) -> AssetForm:
        point = kind.geometry_kind == GeometryKind.POINT.value
        return cls(
            type=kind.code, name=asset.name, agency=str(asset.agency_id),
            geometry="" if point else _geometry_text(asset),
            lat=f"{asset.lat:.7f}" if point else "", lon=f"{asset.lon:.7f}" if point else "",
            description=asset.description or "", address=asset.address or "", external_ids=_external_ids_text(ids),
            attributes={
                key: ("1" if value is True else "0" if value is False else str(value))
                for key, value in (asset.attributes or {}).items()
            },
        )  # fmt: skip

    @classmethod
    def read(cls, form: FormData) -> AssetForm:
        def text(key: str) -> str:
            value = form.get(key)
            return value.strip() if isinstance(value, str) else ""

        return cls(
            type=text("type"), name=text("name"), agency=text("agency"), geometry=text("geometry"), lat=text("lat"),
            lon=text("lon"), description=text("description"), address=text("address"),
            external_ids=text("external_ids"), condition=text("condition"), condition_on=text("condition_on"),
            attributes={
                key.removeprefix("attributes."): value.strip()
                for key, value in form.multi_items()
                if key.startswith("attributes.") and isinstance(value, str)
            },
        )  # fmt: skip

    def geometry_value(self, kind: AssetType) -> Any:
        """The geometry typed: the GeoJSON/WKT text, or a point from latitude and longitude."""
        if self.geometry or kind.geometry_kind != GeometryKind.POINT.value:
            return self.geometry or None
        if not self.lat and not self.lon:
            return None
        try:
            lat, lon = float(self.lat.replace(",", ".")), float(self.lon.replace(",", "."))
        except ValueError:
            raise InvalidInput(
                _("The coordinates must be numbers, for example -3.06 and 102.93."),
                errors=[{"field": "geometry", "reason": "format"}],
            ) from None
        return {"type": "Point", "coordinates": [lon, lat]}

    def attribute_values(self, kind: AssetType) -> dict[str, Any]:
        """The attributes typed, converted to the schema's types; empty ones left out."""
        values: dict[str, Any] = {}
        for field in attribute_fields(kind):
            text = (self.attributes or {}).get(field.key, "")
            if text != "":
                values[field.key] = _typed(field, text)
        return values

    def condition_date(self) -> date | None:
        if not self.condition_on:
            return None
        try:
            return date.fromisoformat(self.condition_on)
        except ValueError:
            raise InvalidInput(
                _("The date must look like 2026-03-31."), errors=[{"field": "condition_on", "reason": "format"}]
            ) from None

    def raw(self, kind: AssetType, *, with_condition: bool) -> RawAsset:
        return RawAsset(
            type=kind.code, name=self.name, geometry=self.geometry_value(kind), agency=self.agency or None,
            attributes=self.attribute_values(kind), description=self.description or None,
            address=self.address or None, external_ids=_parse_external_ids(self.external_ids),
            condition=(self.condition or None) if with_condition else None,
            condition_on=self.condition_date() if with_condition else None,
        )  # fmt: skip


def _kind_by_code(session: Session, code: str) -> AssetType | None:
    for kind in service.list_types(session):
        if kind.code == code:
            return kind
    return None


def _form_context(session: Session, user: User, kind: AssetType | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "point": kind is not None and kind.geometry_kind == GeometryKind.POINT.value,
        "attribute_fields": attribute_fields(kind) if kind else [],
        "condition_options": _condition_options(kind) if kind else [],
        "type_options": [(item.code, _type_label(item)) for item in service.list_types(session)],
        "agency_options": _editable_agencies(session, user),
    }


def _render_new(
    request: Request, session: Session, *, user: User, form: AssetForm, error: DomainError | None = None
) -> HTMLResponse:
    kind = _kind_by_code(session, form.type)
    if kind is not None and not form.agency and kind.agency_id and service.can_edit_agency(user, kind.agency_id):
        form.agency = str(kind.agency_id)
    return render_form(
        request, "assets/console_form.html", {**_form_context(session, user, kind), "form": form, "asset": None},
        error=error,
    )  # fmt: skip


@router.get("/konsol/aset/baru", response_class=HTMLResponse)
def new_asset_form(
    request: Request, session: SessionDep, user: AssetEditor, jenis: Annotated[str, Query(max_length=40)] = ""
) -> HTMLResponse:
    """The form for a new asset: first its type, then the fields of that type."""
    form = AssetForm(type=jenis)
    if user.role != Role.ADMIN.value and user.agency_id:
        form.agency = str(user.agency_id)
    return _render_new(request, session, user=user, form=form)


@router.post("/konsol/aset/baru", response_class=HTMLResponse)
def create_asset(
    request: Request, session: SessionDep, settings: SettingsDep, user: AssetEditor, posted: PostedForm
) -> Response:
    """Add the asset from the form, with a first inspection when a condition is chosen."""
    form = AssetForm.read(posted)
    kind = _kind_by_code(session, form.type)
    try:
        if kind is None:
            raise InvalidInput(_("Unknown asset type."), errors=[{"field": "type", "reason": "unknown"}])
        asset = service.create_asset(
            session, settings=settings, actor=actor_of(request, user), by=user, raw=form.raw(kind, with_condition=True)
        )
    except DomainError as exc:
        session.rollback()
        return _render_new(request, session, user=user, form=form, error=exc)
    return RedirectResponse(f"{ASSETS}/{asset.id}?done=created", status_code=303)


# --- one asset -----------------------------------------------------------------------------------------------------


def _done_notices() -> dict[str, str]:
    return {
        "created": _("The asset is added to the registry."),
        "saved": _("The changes are saved."),
        "inspected": _("The inspection is recorded."),
        "archived": _("The asset is archived. It no longer shows on the map."),
        "restored": _("The asset is back on the registry."),
        "accepted": _("The proposed condition is accepted and recorded as an inspection."),
        "rejected": _("The proposed condition is rejected."),
    }


def _render_asset(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    user: User,
    asset: Asset,
    form: AssetForm | None = None,
    inspection: Mapping[str, str] | None = None,
    error: DomainError | None = None,
    error_form: str = "",
) -> HTMLResponse:
    kind = service.get_type(session, type_id=asset.type_id)
    ids = service.external_ids(session, asset_ids=[asset.id])[asset.id]
    history = service.condition_history(session, asset_id=asset.id)
    photos = service.list_photos(session, asset_id=asset.id)
    photos_by_inspection: dict[int | None, list[Any]] = {}
    for photo in photos:
        photos_by_inspection.setdefault(photo.inspection_id, []).append(photo)
    proposals = service.list_proposals(session, asset_id=asset.id, status=None)
    editable = service.can_edit(user, asset)
    context = {
        **_form_context(session, user, kind),
        "asset": asset,
        "form": form or AssetForm.of(asset, kind, ids),
        "external_ids": ids,
        "type_name": _type_label(kind),
        "agency": agencies.agency_names(session).get(asset.agency_id, "–"),
        "desa": _region_name(session, asset.desa_code),
        "kecamatan": _region_name(session, asset.kecamatan_code),
        "condition": service.condition_read(asset.condition),
        "history": [(item, service.condition_read(item.condition)) for item in history],
        "photos_by_inspection": photos_by_inspection,
        "photo_path": service.photo_paths,
        "proposals": _proposal_rows(session, proposals),
        "editable": editable,
        "inspection": inspection or {"inspected_on": service.local_today(settings).isoformat()},
        "error_form": error_form if error else "",
        "notice": _done_notices().get(request.query_params.get("done", ""), ""),
        "max_photos": MAX_PHOTOS,
        "public_url": service.public_path(asset.id),
    }
    if not editable:
        # Another OPD's asset: shown, not editable; the owner select box holds its OPD so the page reads right.
        context["agency_options"] = [(asset.agency_id, context["agency"])]
    return render_form(request, "assets/console_asset.html", context, error=error)


def _region_name(session: Session, code: str | None) -> str | None:
    if not code:
        return None
    try:
        return regions.get_region(session, code=code).name
    except DomainError:
        return code


@router.get("/konsol/aset/{asset_id:int}", response_class=HTMLResponse)
def asset_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: AssetEditor, asset_id: IdPath
) -> HTMLResponse:
    """One asset: its form, inspections and condition history, photos and proposed condition updates."""
    asset = service.get_asset(session, asset_id=asset_id)
    return _render_asset(request, session, settings, user=user, asset=asset)


@router.post("/konsol/aset/{asset_id:int}", response_class=HTMLResponse)
def update_asset(
    request: Request, session: SessionDep, settings: SettingsDep, user: AssetEditor, asset_id: IdPath,
    posted: PostedForm,
) -> Response:  # fmt: skip
    """Save the asset form."""
    asset = service.get_asset(session, asset_id=asset_id)
    form = AssetForm.read(posted)
    try:
        kind = service.get_type(session, type_id=asset.type_id)
        raw = form.raw(kind, with_condition=False)
        service.update_asset(
            session, settings=settings, actor=actor_of(request, user), by=user, asset_id=asset.id,
            changes={
                "name": raw.name, "geometry": raw.geometry, "agency": raw.agency, "attributes": raw.attributes,
                "description": raw.description, "address": raw.address, "external_ids": raw.external_ids,
            },
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        asset = service.get_asset(session, asset_id=asset_id)
        return _render_asset(
            request, session, settings, user=user, asset=asset, form=form, error=exc, error_form="edit"
        )
    return RedirectResponse(f"{ASSETS}/{asset_id}?done=saved", status_code=303)


@router.post("/konsol/aset/{asset_id:int}/inspeksi", response_class=HTMLResponse)
def record_inspection(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: AssetEditor,
    asset_id: IdPath,
    posted: PostedForm,
) -> Response:
    """Record an inspection from the form, with up to three photos (multipart)."""
    values = {key: (posted.get(key) or "") for key in ("inspected_on", "inspector", "condition", "notes")}
    values = {key: value if isinstance(value, str) else "" for key, value in values.items()}
    try:
        try:
            day = date.fromisoformat(values["inspected_on"]) if values["inspected_on"] else None
        except ValueError:
            raise InvalidInput(
                _("The date must look like 2026-03-31."), errors=[{"field": "inspected_on", "reason": "format"}]
            ) from None
        service.record_inspection(
            session, settings=settings, actor=actor_of(request, user), by=user, asset_id=asset_id, inspected_on=day,
            inspector=values["inspector"] or None, condition=values["condition"] or None,
            notes=values["notes"] or None,
            photos=read_uploads(posted, field="photos", max_bytes=MAX_PHOTO_BYTES, max_files=MAX_PHOTOS),
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        asset = service.get_asset(session, asset_id=asset_id)
        return _render_asset(
            request, session, settings, user=user, asset=asset, inspection=values, error=exc, error_form="inspect"
        )
    return RedirectResponse(f"{ASSETS}/{asset_id}?done=inspected#history", status_code=303)


@router.post("/konsol/aset/{asset_id:int}/arsip", response_class=HTMLResponse)
def archive_asset(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: AssetEditor,
    asset_id: IdPath,
    active: Annotated[str, Form(max_length=5)] = "0",
) -> Response:
    """Archive the asset, or restore it (`active=1`)."""
    restore = active == "1"
    try:
        service.archive_asset(
            session, settings=settings, actor=actor_of(request, user), by=user, asset_id=asset_id, active=restore
        )
    except DomainError as exc:
        session.rollback()
        asset = service.get_asset(session, asset_id=asset_id)
        return _render_asset(request, session, settings, user=user, asset=asset, error=exc, error_form="archive")
    return RedirectResponse(f"{ASSETS}/{asset_id}?done={'restored' if restore else 'archived'}", status_code=303)


@router.post("/konsol/usulan-aset/{proposal_id}", response_class=HTMLResponse)
def decide_proposal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: AssetEditor,
    proposal_id: IdPath,
    decision: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Accept or reject a proposed condition update."""
    proposal = service.get_proposal(session, proposal_id=proposal_id)
    asset_id = proposal.asset_id
    try:
        if decision not in ("accept", "reject"):
            raise InvalidInput(_("Choose accept or reject."), errors=[{"field": "decision", "reason": "unknown"}])
        service.decide_proposal(
            session, settings=settings, actor=actor_of(request, user), by=user, proposal_id=proposal_id,
            accept=decision == "accept",
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        asset = service.get_asset(session, asset_id=asset_id)
        return _render_asset(request, session, settings, user=user, asset=asset, error=exc, error_form="proposal")
    done = "accepted" if decision == "accept" else "rejected"
    return RedirectResponse(f"{ASSETS}/{asset_id}?done={done}", status_code=303)


# --- asset types (admins) --------------------------------------------------------------------------------------------


@router.get("/konsol/jenis-aset", response_class=HTMLResponse)
def types_page(request: Request, session: SessionDep, _user: TypeManager) -> HTMLResponse:
    """The asset types with their geometry, condition scale, default OPD and number of attributes."""
    names = {agency.id: agency.short_name for agency in agencies.list_agency_choices(session)}
    rows = [
        {
            "kind": kind,
            "name": _type_label(kind),
            "geometry": GeometryKind(kind.geometry_kind).label,
            "scale": ConditionScale(kind.condition_scale).label,
            "agency": names.get(kind.agency_id, "–") if kind.agency_id else "–",
            "attributes": len((kind.attribute_schema or {}).get("properties") or {}),
        }
        for kind in service.list_types(session, active_only=False)
    ]
    return render(request, "assets/console_types.html", {"rows": rows})


def _render_type(
    request: Request, session: Session, *, kind: AssetType, form: Mapping[str, Any], error: DomainError | None = None,
    saved: bool = False,
) -> HTMLResponse:  # fmt: skip
    return render_form(
        request,
        "assets/console_type_form.html",
        {
            "kind": kind,
            "form": form,
            "saved": saved,
            "geometry": GeometryKind(kind.geometry_kind).label,
            "scale": ConditionScale(kind.condition_scale).label,
            "conditions": ", ".join(c.label for c in ConditionScale(kind.condition_scale).conditions),
            "agency_options": [(a.id, a.short_name) for a in agencies.list_agency_choices(session, active_only=True)],
        },
        error=error,
    )


def _type_form(kind: AssetType) -> dict[str, Any]:
    return {
        "name_id": kind.name_id,
        "name_en": kind.name_en,
        "agency_id": str(kind.agency_id or ""),
        "position": str(kind.position),
        "active": kind.active,
        "attribute_schema": json.dumps(kind.attribute_schema or {}, ensure_ascii=False, indent=2),
    }


@router.get("/konsol/jenis-aset/{type_id}", response_class=HTMLResponse)
def edit_type_form(
    request: Request, session: SessionDep, _user: TypeManager, type_id: IdPath, saved: bool = False
) -> HTMLResponse:
    """The form to change an asset type."""
    kind = service.get_type(session, type_id=type_id)
    return _render_type(request, session, kind=kind, form=_type_form(kind), saved=saved)


@router.post("/konsol/jenis-aset/{type_id}", response_class=HTMLResponse)
def update_type(
    request: Request,
    session: SessionDep,
    user: TypeManager,
    type_id: IdPath,
    name_id: Annotated[str, Form(max_length=1000)] = "",
    name_en: Annotated[str, Form(max_length=1000)] = "",
    agency_id: Annotated[str, Form(max_length=20)] = "",
    position: Annotated[str, Form(max_length=20)] = "0",
    attribute_schema: Annotated[str, Form(max_length=200_000)] = "",
    active: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """Save the asset type form (an unticked "active" box takes the type off the forms and the map)."""
    kind = service.get_type(session, type_id=type_id)
    form = {
        "name_id": name_id, "name_en": name_en, "agency_id": agency_id, "position": position,
        "attribute_schema": attribute_schema, "active": active is not None,
    }  # fmt: skip
    try:
        if not position.strip().lstrip("-").isdecimal():
            raise InvalidInput(
                _("The position is a whole number from 0 to 10000."), errors=[{"field": "position", "reason": "format"}]
            )
        chosen = agency_id.strip()
        if chosen and _id_or_none(chosen) is None:
            raise InvalidInput(_("Choose an OPD from the list."), errors=[{"field": "agency_id", "reason": "format"}])
        service.update_asset_type(
            session, actor=actor_of(request, user), type_id=kind.id,
            changes={
                "name_id": name_id, "name_en": name_en, "agency_id": _id_or_none(chosen),
                "position": int(position.strip()), "attribute_schema": attribute_schema, "active": active is not None,
            },
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        kind = service.get_type(session, type_id=type_id)
        return _render_type(request, session, kind=kind, form=form, error=exc)
    return RedirectResponse(f"{TYPES}/{type_id}?saved=1", status_code=303)
