"""Import and export of assets over HTTP: the JSON API (`POST /api/v1/assets/import`, `GET
/api/v1/assets/export.{geojson,csv,xlsx}`) and the console page `/konsol/aset/impor`.

Both ways in call `transfer.import_assets`, the same service as `kotacerdas aset import`. An import needs
`assets.import` (an OPD admin: rows of their own OPD only). Exports are public, with the filters of the asset list:
assets hold no personal data, and an export holds no inspection (so no inspector).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile as StarletteUpload

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.assets import service
from kotacerdas.assets.api import CodeList, RegionCode, _codes
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, get_current_user, get_optional_user, require
from kotacerdas.errors import DomainError, InvalidInput
from kotacerdas.i18n import _
from kotacerdas.problems import PROBLEM_RESPONSES

# The request-size guard of the reports API (see the TODO in assets/api.py about moving it to a shared module).
from kotacerdas.web.api_inputs import BodyLimitedRoute, max_body, parse_bbox
from kotacerdas.web.forms import PostedForm, render_form

if TYPE_CHECKING:
    from kotacerdas.assets import transfer

router = APIRouter(route_class=BodyLimitedRoute)

# 100,000 rows of CSV are some 20-30 MB; a GeoJSON of long roads is larger.
MAX_IMPORT_BYTES = 128 * 1024 * 1024
# Row errors shown on the console page (all of them are counted; the CLI writes every one to a file).
MAX_SHOWN_ERRORS = 200
IMPORT_PAGE = "/konsol/aset/impor"
Importer = Annotated[User, Depends(require(Permission.ASSETS_IMPORT))]
MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ImportRowError(BaseModel):
    """One bad row: its CSV `line` (the header is line 1) or GeoJSON `feature` index (from 0), the field, a reason
    code and the message."""

    line: int | None = None
    feature: int | None = None
    field: str
    reason: str
    message: str


class ImportSummary(BaseModel):
    """What an import did, or in a dry run would do."""

    format: str = Field(description="`csv` or `geojson`")
    dry_run: bool
    partial: bool
    rows: int = Field(description="Rows read (blank lines not counted)")
    inserted: int = Field(description="New assets (would be, in a dry run)")
    updated: int = Field(description="Assets updated in place by their external id (would be, in a dry run)")
    inspections: int = Field(description="Inspections recorded from the rows' conditions")
    bad_rows: int
    stored: bool = Field(description="Whether anything was stored")
    errors: list[ImportRowError] = Field(description="The bad rows (the first 1,000), with a partial import")


def _run_import(
    request: Request,
    session: Any,
    settings: Any,
    user: User,
    upload: StarletteUpload,
    *,
    dry_run: bool,
    partial: bool,
) -> transfer.ImportResult:
    if upload.size == 0:
        raise InvalidInput(_("Choose a file to import."), errors=[{"field": "file", "reason": "required"}])
    # The import and export code (CSV, GeoJSON, XLSX) loads on first use, not with the app.
    from kotacerdas.assets import transfer

    upload.file.seek(0)
    return transfer.import_assets(
        session, settings=settings, actor=actor_of(request, user), by=user, source=upload.file,
        filename=upload.filename, dry_run=dry_run, partial=partial,
    )  # fmt: skip


def _refused(result: transfer.ImportResult) -> InvalidInput:
    return InvalidInput(
        _("%(bad)d of %(rows)d rows cannot be imported; nothing was imported.")
        % {"bad": result.bad_rows, "rows": result.rows},
        errors=[error.as_dict() for error in result.errors],
    )


@router.post(
    "/api/v1/assets/import",
    tags=["assets"],
    response_model=ImportSummary,
    responses={**PROBLEM_RESPONSES, 413: PROBLEM_RESPONSES[400] | {"description": "The file is too large"}},
)
@max_body(MAX_IMPORT_BYTES)
def import_assets(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Importer,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, comma-separated) or GeoJSON FeatureCollection")],
    dry_run: Annotated[bool, Form(description="Check the file and store nothing")] = False,
    partial: Annotated[bool, Form(description="Store the good rows even when some are bad")] = False,
) -> ImportSummary:
    """Import assets from a CSV or GeoJSON file (needs assets.import; an OPD admin imports own-OPD rows only).

    A row whose external id (`id.<system>` column) is stored updates that asset. Any bad row: 422 listing every bad
    row with its line or feature and reason, and nothing stored (unless `partial`)."""
    result = _run_import(request, session, settings, user, file, dry_run=dry_run, partial=partial)
    if result.bad_rows and not partial:
        raise _refused(result)
    return ImportSummary(**result.summary(), errors=[error.as_dict() for error in result.errors])


# --- export ----------------------------------------------------------------------------------------------------


def _filters(
    request: Request,
    session: Any,
    settings: Any,
    *,
    type: str | None,
    condition: str | None,
    kecamatan: str | None,
    desa: str | None,
    agency: int | None,
    q: str | None,
    bbox: str | None,
    archived: bool,
) -> service.AssetFilters:
    if archived:
        user = get_current_user(request, get_optional_user(request, session, settings))
        accounts.require_permission(user, Permission.ASSETS_EDIT)
    return service.AssetFilters(
        type_codes=_codes(type), conditions=_codes(condition), kecamatan_code=kecamatan, desa_code=desa,
        agency_id=agency, q=q, active=not archived, bbox=parse_bbox(bbox) if bbox is not None else None,
    )  # fmt: skip


def _stream(request: Request, filters: service.AssetFilters, file_format: str) -> Iterator[Any]:
    from kotacerdas.assets import transfer

    # The request's session ends when the endpoint returns; the rows are read while the answer is sent.
    with request.app.state.sessionmaker() as session:
        export = transfer.Export(session, filters=filters)
        if file_format == "csv":
            for piece in export.iter_csv():
                yield piece.encode()
        elif file_format == "geojson":
            for piece in export.iter_geojson():
                yield piece.encode()
        else:
            yield from export.iter_xlsx()


def export_response(request: Request, filters: service.AssetFilters, file_format: str) -> StreamingResponse:
    """The streamed download of `filters`' assets in `file_format` (geojson, csv or xlsx)."""
    stamp = datetime.now(request.app.state.settings.zone).strftime("%Y%m%d")
    return StreamingResponse(
        _stream(request, filters, file_format),
        media_type=MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="aset-{stamp}.{file_format}"'},
    )


@router.get(
    "/api/v1/assets/export.{file_format}",
    tags=["assets"],
    responses={
        **PROBLEM_RESPONSES,
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "The file"},
    },
)
def export_assets(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    file_format: Annotated[str, PathParam(pattern="^(geojson|csv|xlsx)$", description="geojson, csv or xlsx")],
    type: Annotated[CodeList, Query(description="Asset type codes, e.g. jalan,jembatan")] = None,
    condition: Annotated[CodeList, Query(description="Conditions, e.g. rusak_berat,unknown (never inspected)")] = None,
    kecamatan: Annotated[RegionCode, Query(description="Kecamatan code, e.g. 16.05.09")] = None,
    desa: Annotated[RegionCode, Query(description="Desa/kelurahan code")] = None,
    agency: Annotated[int | None, Query(ge=1, le=MAX_INT_ID, description="Owner OPD id")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in the name, or an external id")] = None,
    bbox: Annotated[
        str | None, Query(min_length=7, max_length=200, description="west,south,east,north in degrees (WGS 84)")
    ] = None,
    archived: Annotated[bool, Query(description="Archived assets instead of active ones (needs assets.edit)")] = False,
) -> Response:
    """Download the assets of the list's filters as GeoJSON (RFC 7946), CSV (the columns the import reads) or XLSX.

    Public for active assets. The CSV and XLSX re-import: `attr.<name>` and `id.<system>` columns, geometry as
    lat/lon (points) or WKT (lines)."""
    filters = _filters(
        request, session, settings, type=type, condition=condition, kecamatan=kecamatan, desa=desa, agency=agency,
        q=q, bbox=bbox, archived=archived,
    )  # fmt: skip
    return export_response(request, filters, file_format)


# --- console page ------------------------------------------------------------------------------------------------


def _page(
    request: Request,
    *,
    result: transfer.ImportResult | None = None,
    error: DomainError | None = None,
    dry_run: bool = True,
    partial: bool = False,
    filename: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    shown = result.errors[:MAX_SHOWN_ERRORS] if result is not None else []
    return render_form(
        request,
        "assets/console_import.html",
        {
            "result": result,
            "shown_errors": shown,
            "dry_run": dry_run,
            "partial": partial,
            "filename": filename,
            "max_mb": MAX_IMPORT_BYTES // (1024 * 1024),
        },
        error=error,
        status_code=status_code,
    )


@router.get(IMPORT_PAGE, response_class=HTMLResponse, include_in_schema=False)
def import_page(request: Request, _user: Importer) -> HTMLResponse:
    """The import form: a CSV or GeoJSON file, checked first (dry run), then imported."""
    return _page(request)


@router.post(IMPORT_PAGE, response_class=HTMLResponse, include_in_schema=False)
@max_body(MAX_IMPORT_BYTES)
def import_upload(
    request: Request, session: SessionDep, settings: SettingsDep, user: Importer, form: PostedForm
) -> HTMLResponse:
    """Check or import the uploaded file; the page shows the counts and the table of bad rows."""
    dry_run = form.get("dry_run") is not None
    partial = form.get("partial") is not None
    upload = form.get("file")
    filename = upload.filename if isinstance(upload, StarletteUpload) else None
    try:
        if not isinstance(upload, StarletteUpload) or not upload.filename:
            raise InvalidInput(_("Choose a file to import."), errors=[{"field": "file", "reason": "required"}])
        result = _run_import(request, session, settings, user, upload, dry_run=dry_run, partial=partial)
    except DomainError as exc:
        session.rollback()
        return _page(request, error=exc, dry_run=dry_run, partial=partial, filename=filename)
    refused = bool(result.bad_rows) and not partial
    return _page(
        request,
        result=result,
        # After a clean dry run the next step is the real import: the box comes unticked.
        dry_run=dry_run and refused,
        partial=partial,
        filename=filename,
        status_code=422 if refused else 200,
    )
