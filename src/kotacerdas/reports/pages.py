"""Public pages of citizen reports: send a report, track it by code, follow it by email, the list and the map.

Everything a visitor sees of a report comes from `service.public_report`, the domain's privacy choke point; the
reporter's own view (after the PIN) asks it for `full=True`. Contact details typed into the form are never shown
back on any of these pages, except in the form itself when it is returned to fix an error. Staff pages live in
`console.py`.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kotacerdas import storage
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, utcnow
from kotacerdas.deps import CsrfChecked, OptionalUser, SessionDep, SettingsDep, client_ip, writes_late
from kotacerdas.errors import DomainError, InvalidInput, NotFound
from kotacerdas.i18n import _, get_locale
from kotacerdas.pagination import PageRequest
from kotacerdas.regions import service as regions
from kotacerdas.reports import service
from kotacerdas.reports.enums import CategoryGroup, PhotoKind, ReportSource, ReportStatus, ReportType
from kotacerdas.reports.models import Report, ReportCategory
from kotacerdas.reports.photos import MAX_PHOTO_BYTES, MAX_PHOTOS
from kotacerdas.web.forms import PostedForm, kept_filters, read_uploads
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

CodePath = Annotated[str, Path(max_length=24)]
TokenPath = Annotated[str, Path(max_length=500)]
PhotoIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
FilterText = Annotated[str, Query(max_length=40)]
PinForm = Annotated[str, Form(max_length=40)]
BOUNDARIES_URL = "/api/v1/regions/geojson?level=kecamatan"
LOCATE_URL = "/api/v1/regions/locate"
NEARBY_URL = "/api/v1/reports/nearby"
ASSETS_NEARBY_URL = "/api/v1/assets/nearby"
MAP_URL = "/api/v1/reports/map"
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
# Photos of public reports may be cached a little; a report hidden later stops showing within this time.
PUBLIC_PHOTO_CACHE = "public, max-age=600"
# Shown after a redirect (?pesan=...), so a reload does not send the form again.
NOTICES = {
    "dibuka": lambda: _("The report has been reopened and sent back to the agency."),
    "dinilai": lambda: _("Thank you for your rating."),
}


# --- the form's building blocks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One extra question of a category, as a form field (its name carries the category, so that every
    category's questions can be on the page at once)."""

    code: str
    name: str
    field_id: str
    label: str
    datatype: str
    required: bool
    choices: list[tuple[str, str]]


@dataclass(frozen=True)
class CategoryChoice:
    """A category as the form offers it."""

    id: int
    code: str
    name: str
    group: str
    photo_required: bool
    questions: list[Question]


def _question_name(category_code: str, code: str) -> str:
    return f"attribute[{category_code}][{code}]"


def _question_id(category_code: str, code: str) -> str:
    return f"f-attr-{category_code}-{code}"


def _category_choices(session: Session) -> list[CategoryChoice]:
    locale = get_locale()
    choices = []
    for category in service.list_categories(session):
        questions = [
            Question(
                code=item["code"],
                name=_question_name(category.code, item["code"]),
                field_id=_question_id(category.code, item["code"]),
                label=(item.get("description_en") if locale == "en" else None) or item["description_id"],
                datatype=item["datatype"],
                required=bool(item.get("required")),
                choices=[
                    (value["key"], (value.get("name_en") if locale == "en" else None) or value["name_id"])
                    for value in item.get("values") or []
                ],
            )
            for item in category.attributes or []
        ]
        choices.append(
            CategoryChoice(
                id=category.id,
                code=category.code,
                name=service.category_name(category, locale),
                group=category.group,
                photo_required=category.photo_required,
                questions=questions,
            )
        )
    return choices


def _grouped(choices: list[CategoryChoice]) -> list[tuple[CategoryGroup, list[CategoryChoice]]]:
    """Categories under their group, the groups in their fixed order (not alphabetical)."""
    grouped: dict[str, list[CategoryChoice]] = {}
    for choice in choices:
        grouped.setdefault(choice.group, []).append(choice)
    return [(group, grouped[group.value]) for group in CategoryGroup if group.value in grouped]


@dataclass
class ReportForm:
    """The report form as typed, kept to show it again after an error (photos are not kept)."""

    category: str = ""
    type: str = ReportType.PENGADUAN.value
    lat: str = ""
    lon: str = ""
    address: str = ""
    description: str = ""
    name: str = ""
    email: str = ""
    phone: str = ""
    anonymous: bool = False
    confidential: bool = False
    # Answers by form field name: text, or a list for multiple choice.
    answers: dict[str, Any] = field(default_factory=dict)
    # The id of the asset (road, bridge, facility) the report is about, as typed; empty for none.
    asset: str = ""


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _read_form(form: FormData, categories: list[CategoryChoice]) -> ReportForm:
    answers: dict[str, Any] = {}
    for category in categories:
        for question in category.questions:
            if question.datatype == "multivaluelist":
                chosen = [value for value in form.getlist(question.name) if isinstance(value, str)]
                if chosen:
                    answers[question.name] = chosen
            elif _text(form, question.name).strip():
                answers[question.name] = _text(form, question.name)
    return ReportForm(
        category=_text(form, "category").strip(),
        type=_text(form, "type").strip() or ReportType.PENGADUAN.value,
        lat=_text(form, "lat").strip(),
        lon=_text(form, "lon").strip(),
        address=_text(form, "address"),
        description=_text(form, "description"),
        name=_text(form, "name"),
        email=_text(form, "email"),
        phone=_text(form, "phone"),
        anonymous=bool(_text(form, "anonymous")),
        confidential=bool(_text(form, "confidential")),
        answers=answers,
        asset=_text(form, "asset_id").strip(),
    )


def _asset_id(text: str) -> int | None:
    """The asset chosen on the form: None for none; InvalidInput for a value that is not an id."""
    if not text:
        return None
    if not text.isdecimal() or not 1 <= int(text) <= MAX_INT_ID:
        raise InvalidInput(
            _("There is no active asset with that id."), errors=[{"field": "asset_id", "reason": "unknown"}]
        )
    return int(text)


@dataclass(frozen=True)
class AssetChoice:
    """The asset a report form is about, as the form names it."""

    id: int
    name: str
    type_name: str
    lat: float
    lon: float


def _asset_choice(session: Session, text: str) -> AssetChoice | None:
    """The active asset with this id, for the form to show as chosen; None for anything else."""
    # Imported on use: the assets domain builds on this one (its service imports the reports service).
    from kotacerdas.assets import service as assets

    if not text.isdecimal() or not 1 <= int(text) <= MAX_INT_ID:
        return None
    try:
        asset = assets.get_active_asset(session, asset_id=int(text))
    except DomainError:
        return None
    kind = assets.get_type(session, type_id=asset.type_id)
    return AssetChoice(
        id=asset.id, name=asset.name, type_name=assets.type_name(kind, get_locale()), lat=asset.lat, lon=asset.lon
    )


def _attributes(form: ReportForm, categories: list[CategoryChoice]) -> dict[str, Any] | None:
    """The answers to the chosen category's questions, by question code, as the service takes them."""
    chosen = next((category for category in categories if category.code == form.category), None)
    if chosen is None:
        return None
    return {q.code: form.answers[q.name] for q in chosen.questions if q.name in form.answers}


def _coordinate(text: str) -> float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(
            _("The coordinates must be numbers, for example -3.06 and 102.93."),
            errors=[{"field": "location", "reason": "format"}],
        )
    return value


def _read_photos(form: FormData) -> list[bytes]:
    return read_uploads(form, field="photos", max_bytes=MAX_PHOTO_BYTES, max_files=MAX_PHOTOS)


def _field_anchor(error_field: str | None, form: ReportForm) -> str | None:
    """The id of the control an error is about, for the link in the error summary."""
    if not error_field:
        return None
    if error_field.startswith("attribute[") and error_field.endswith("]"):
        return _question_id(form.category, error_field[len("attribute[") : -1])
    return {
        "category": "f-category",
        "type": f"f-type-{ReportType.PENGADUAN.value}",
        "description": "f-description",
        "address": "f-address",
        "location": "f-lat",
        "lat": "f-lat",
        "lon": "f-lon",
        "photos": "f-photos",
        "name": "f-name",
        "email": "f-email",
        "phone": "f-phone",
        "asset_id": "f-asset-none",
    }.get(error_field)


# --- map settings shared by the pages ---------------------------------------------------------------------------


def _map_bounds(session: Session, settings: Settings) -> str | None:
    """South,west,north,east of the regency for the maps' first view: its boundary's box, or around the kecamatan
    centres when no boundaries are imported."""
    try:
        kabupaten = regions.get_region(session, code=settings.region_code)
    except NotFound:
        kabupaten = None
    if kabupaten is not None and None not in (
        kabupaten.min_lat,
        kabupaten.min_lon,
        kabupaten.max_lat,
        kabupaten.max_lon,
    ):
        south, west, north, east = kabupaten.min_lat, kabupaten.min_lon, kabupaten.max_lat, kabupaten.max_lon
    else:
        points = [
            (k.centroid_lat, k.centroid_lon)
            for k in regions.list_kecamatan(session, settings=settings)
            if k.centroid_lat is not None and k.centroid_lon is not None
        ]
        if not points:
            return None
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        pad = max(0.05, 0.15 * max(max(lats) - min(lats), max(lons) - min(lons)))
        south, west, north, east = min(lats) - pad, min(lons) - pad, max(lats) + pad, max(lons) + pad
    return f"{south:.5f},{west:.5f},{north:.5f},{east:.5f}"


def _map_config(session: Session, settings: Settings) -> dict[str, Any]:
    return {
        "bounds": _map_bounds(session, settings),
        "boundaries_url": BOUNDARIES_URL,
        "tile_url": settings.map_tile_url,
        "tile_attribution": settings.map_tile_attribution,
    }


def _status_labels() -> dict[str, str]:
    return {status.value: status.label for status in ReportStatus}


# --- submitting -------------------------------------------------------------------------------------------------


def _render_form(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    form: ReportForm,
    error: DomainError | None = None,
) -> HTMLResponse:
    categories = _category_choices(session)
    error_field = error.errors[0].get("field") if error is not None and error.errors else None
    response = render(
        request,
        "reports/public_form.html",
        {
            "form": form,
            "groups": _grouped(categories),
            "categories": categories,
            "types": ReportType,
            "map": _map_config(session, settings),
            "locate_url": LOCATE_URL,
            "nearby_url": NEARBY_URL,
            "assets_nearby_url": ASSETS_NEARBY_URL,
            "asset_choice": _asset_choice(session, form.asset),
            "max_photos": MAX_PHOTOS,
            "max_photo_mb": MAX_PHOTO_BYTES // (1024 * 1024),
            "error": error.detail if error else None,
            "error_field": error_field,
            "error_anchor": _field_anchor(error_field, form),
        },
        status_code=error.status_code if error else 200,
    )
    if error is not None:
        response.headers.update(error.headers)
    return response


@router.get("/lapor", response_class=HTMLResponse)
def report_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    aset: Annotated[str, Query(max_length=20)] = "",
    lat: Annotated[str, Query(max_length=30)] = "",
    lon: Annotated[str, Query(max_length=30)] = "",
) -> HTMLResponse:
    """The report form: category, place on the map, what is wrong, photos, optional contact details. From an
    asset's page (`?aset=&lat=&lon=`) the asset and its place come filled in."""
    form = ReportForm()
    choice = _asset_choice(session, aset.strip())
    if choice is not None:
        form.asset = str(choice.id)
        form.lat, form.lon = lat.strip(), lon.strip()
        try:
            located = _coordinate(form.lat) is not None and _coordinate(form.lon) is not None
        except InvalidInput:
            located = False
        if not located:
            form.lat, form.lon = f"{choice.lat:.6f}", f"{choice.lon:.6f}"
    return _render_form(request, session, settings, form=form)


@router.post("/lapor", response_class=HTMLResponse, dependencies=[CsrfChecked])
@writes_late
def submit_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    posted: PostedForm,
) -> HTMLResponse:
    """Store the report and show its tracking code and PIN, once (the answer is never cached)."""
    categories = _category_choices(session)
    form = _read_form(posted, categories)
    try:
        submitted = service.submit_report(
            session,
            settings=settings,
            category_code=form.category or None,
            type=form.type,
            description=form.description,
            lat=_coordinate(form.lat),
            lon=_coordinate(form.lon),
            address=form.address or None,
            name=form.name or None,
            email=form.email or None,
            phone=form.phone or None,
            anonymous=form.anonymous,
            confidential=form.confidential,
            attributes=_attributes(form, categories),
            photos=_read_photos(posted),
            asset_id=_asset_id(form.asset),
            source=ReportSource.WEB,
            ip=client_ip(request),
            honeypot=_text(posted, "website"),
            locale=get_locale(),
        )
    except DomainError as exc:
        session.rollback()
        return _render_form(request, session, settings, form=form, error=exc)
    report = submitted.report
    view = service.public_report(
        session, settings=settings, report=report, locale=get_locale(), preloaded=submitted.preloaded
    )
    # The session commits when this handler returns and before the page is sent: the code is shown after commit.
    response = render(
        request,
        "reports/public_success.html",
        {
            "code": report.tracking_code,
            "pin": submitted.pin,
            "report": view,
            "emailed": bool(report.reporter_email),
            "confidential": report.confidential,
        },
        status_code=201,
    )
    response.headers.update(NO_STORE)
    return response


# --- tracking ---------------------------------------------------------------------------------------------------


@router.get("/lapor/lacak", response_class=HTMLResponse)
def track(
    request: Request, session: SessionDep, _user: OptionalUser, kode: Annotated[str, Query(max_length=40)] = ""
) -> Response:
    """Find a report by its tracking code."""
    code = kode.strip().upper()
    if not code:
        return render(request, "reports/public_track.html", {"code": "", "error": None})
    try:
        report = service.get_report_by_code(session, code=code)
    except NotFound as exc:
        return render(request, "reports/public_track.html", {"code": kode.strip(), "error": exc.detail}, 404)
    return RedirectResponse(f"/lapor/{report.tracking_code}", status_code=303)


@dataclass(frozen=True)
class PhotoView:
    """A photo as the report page shows it: a thumbnail, and the full size when it has a public address."""

    thumb_src: str
    full_href: str | None
    kind: PhotoKind
    width: int
    height: int


def _photo_views(session: Session, settings: Settings, *, report: Report, view: Any, private: bool) -> list[PhotoView]:
    if not private:
        return [PhotoView(p.thumb_url, p.url, PhotoKind(p.kind), p.width, p.height) for p in view.photos]
    # The reporter's own view: photos the public may not load (an anonymous or confidential report's) are put in
    # the page itself as small thumbnails; the page is never cached, and no photo gets a public address.
    views = []
    for photo in service.list_photos(session, report_id=report.id):
        try:
            service.get_photo(session, photo_id=photo.id, by=None)
        except NotFound:
            try:
                data = storage.open_upload(settings, photo.thumb_key).read_bytes()
            except FileNotFoundError:
                continue
            source = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
            views.append(PhotoView(source, None, PhotoKind(photo.kind), photo.width, photo.height))
        else:
            views.append(
                PhotoView(
                    f"/media/laporan/{photo.id}/thumb.jpg",
                    f"/media/laporan/{photo.id}.jpg",
                    PhotoKind(photo.kind),
                    photo.width,
                    photo.height,
                )
            )
    return views


def _reopen_until(report: Report, settings: Settings) -> datetime | None:
    """Until when the reporter may reopen the report, while that is still possible."""
    if report.status != ReportStatus.SELESAI.value or report.resolved_at is None:
        return None
    until = report.resolved_at + timedelta(days=settings.report_reopen_days)
    return until if utcnow() <= until else None


def _render_report(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    report: Report,
    private: bool = False,
    notice: str | None = None,
    section: str | None = None,
    error: DomainError | None = None,
    kept: dict[str, str] | None = None,
) -> HTMLResponse:
    view = service.public_report(
        session, settings=settings, report=report, locale=get_locale(), with_timeline=True, full=private
    )
    error_field = error.errors[0].get("field") if error is not None and error.errors else None
    response = render(
        request,
        "reports/public_report.html",
        {
            "report": view,
            "private": private,
            "public": service.is_public(report),
            "photos": _photo_views(session, settings, report=report, view=view, private=private),
            "reopen_until": _reopen_until(report, settings),
            "can_rate": report.status == ReportStatus.SELESAI.value and report.rating is None,
            "notice": notice,
            "section": section,
            "error": error.detail if error else None,
            "error_field": error_field,
            "kept": kept or {},
            "map": _map_config(session, settings),
            "status_of": ReportStatus,
        },
        status_code=error.status_code if error else 200,
    )
    if private:
        response.headers.update(NO_STORE)
    return response


def _render_pin_form(
    request: Request, *, report: Report, error: str | None = None, notice: str | None = None, status_code: int = 200
) -> HTMLResponse:
    return render(
        request,
        "reports/public_pin.html",
        {
            "code": report.tracking_code,
            "public": service.is_public(report),
            "error": error,
            "notice": notice,
        },
        status_code=status_code,
    )


@router.get("/lapor/{code}", response_class=HTMLResponse)
def report_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    code: CodePath,
    pesan: FilterText = "",
) -> HTMLResponse:
    """A report's public page and timeline; a confidential or hidden one asks for the reporter's PIN."""
    report = service.get_report_by_code(session, code=code)
    notice = NOTICES[pesan]() if pesan in NOTICES else None
    if not service.is_public(report):
        return _render_pin_form(request, report=report, notice=notice)
    return _render_report(request, session, settings, report=report, notice=notice)


@router.post("/lapor/{code}/lihat", response_class=HTMLResponse, dependencies=[CsrfChecked])
def report_with_pin(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, code: CodePath, pin: PinForm = ""
) -> HTMLResponse:
    """The reporter's own view of their report (its text and exact place too), with the PIN; never cached."""
    report = service.get_report_by_code(session, code=code)
    if not service.check_reporter_pin(report, pin):
        message = _("The PIN does not match this report. It was shown when the report was sent and is in the email.")
        return _render_pin_form(request, report=report, error=message, status_code=403)
    return _render_report(request, session, settings, report=report, private=True)


def _after_reporter_error(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    code: str,
    pin: str,
    section: str,
    error: DomainError,
    kept: dict[str, str],
) -> HTMLResponse:
    """The page again after a refused reopen or rating: the reporter's view when the PIN was right, else the
    public page (or the PIN form of a report that is not public)."""
    session.rollback()
    report = service.get_report_by_code(session, code=code)
    private = service.check_reporter_pin(report, pin)
    if not private and not service.is_public(report):
        return _render_pin_form(request, report=report, error=error.detail, status_code=error.status_code)
    return _render_report(
        request, session, settings, report=report, private=private, section=section, error=error, kept=kept
    )


@router.post("/lapor/{code}/buka-kembali", response_class=HTMLResponse, dependencies=[CsrfChecked])
def reopen(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    code: CodePath,
    pin: PinForm = "",
    reason: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    """The reporter reopens a resolved report (with the PIN and a reason)."""
    try:
        report = service.reopen_report(session, settings=settings, code=code, pin=pin, reason=reason)
    except NotFound:
        raise
    except DomainError as exc:
        return _after_reporter_error(
            request, session, settings, code=code, pin=pin, section="reopen", error=exc, kept={"reason": reason}
        )
    return RedirectResponse(f"/lapor/{report.tracking_code}?pesan=dibuka", status_code=303)


@router.post("/lapor/{code}/nilai", response_class=HTMLResponse, dependencies=[CsrfChecked])
def rate(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    code: CodePath,
    pin: PinForm = "",
    rating: Annotated[str, Form(max_length=10)] = "",
    comment: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    """The reporter rates the handling of a resolved report, 1 to 5 stars, with an optional comment."""
    stars = int(rating) if rating.strip().isdecimal() and len(rating.strip()) <= 2 else 0
    try:
        report = service.rate_report(session, settings=settings, code=code, pin=pin, rating=stars, comment=comment)
    except NotFound:
        raise
    except DomainError as exc:
        return _after_reporter_error(
            request, session, settings, code=code, pin=pin, section="rating", error=exc,
            kept={"rating": rating, "comment": comment},
        )  # fmt: skip
    return RedirectResponse(f"/lapor/{report.tracking_code}?pesan=dinilai", status_code=303)


# --- following by email -----------------------------------------------------------------------------------------


@router.post("/lapor/{code}/ikuti", response_class=HTMLResponse, dependencies=[CsrfChecked])
def follow(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    code: CodePath,
    email: Annotated[str, Form(max_length=300)] = "",
) -> HTMLResponse:
    """Ask to follow a report by email; the answer is the same whether or not the address follows it already."""
    try:
        service.follow_report(session, settings=settings, code=code, email=email, locale=get_locale())
    except NotFound:
        raise
    except DomainError as exc:
        session.rollback()
        report = service.get_public_report(session, code=code)
        return _render_report(
            request, session, settings, report=report, section="follow", error=exc, kept={"email": email}
        )
    report = service.get_public_report(session, code=code)
    return render(request, "reports/public_follow.html", {"state": "requested", "code": report.tracking_code})


def _follow_link_page(request: Request, *, state: str, action: str) -> HTMLResponse:
    response = render(request, "reports/public_follow.html", {"state": state, "action": action, "code": None})
    # The link carries a token: keep it out of caches, search engines and other sites' logs.
    response.headers.update({**NO_STORE, "Referrer-Policy": "no-referrer"})
    return response


@router.get("/lapor/ikuti/{token}", response_class=HTMLResponse)
def confirm_follow_page(request: Request, _user: OptionalUser, token: TokenPath) -> HTMLResponse:
    """The emailed confirmation link shows a button; only the button (a POST) confirms, so that mail scanners
    opening links confirm nothing."""
    return _follow_link_page(request, state="confirm", action=f"/lapor/ikuti/{token}")


@router.post("/lapor/ikuti/{token}", response_class=HTMLResponse, dependencies=[CsrfChecked])
def confirm_follow(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, token: TokenPath
) -> HTMLResponse:
    """Confirm following a report."""
    report = service.confirm_follower(session, settings=settings, token=token)
    return render(request, "reports/public_follow.html", {"state": "confirmed", "code": report.tracking_code})


@router.get("/lapor/berhenti/{token}", response_class=HTMLResponse)
def stop_follow_page(request: Request, _user: OptionalUser, token: TokenPath) -> HTMLResponse:
    """The unsubscribe link in every update email shows a button; the button (a POST) stops the emails."""
    return _follow_link_page(request, state="stop", action=f"/lapor/berhenti/{token}")


@router.post("/lapor/berhenti/{token}", response_class=HTMLResponse, dependencies=[CsrfChecked])
def stop_follow(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, token: TokenPath
) -> HTMLResponse:
    """Stop following a report."""
    report = service.stop_following(session, settings=settings, token=token)
    return render(request, "reports/public_follow.html", {"state": "stopped", "code": report.tracking_code})


# --- the public list and map ------------------------------------------------------------------------------------

STATUS_FILTERS = ("open", "closed")
LIST_PER_PAGE = 20  # a phone shows the map above the list: a short page


def _list_page(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = LIST_PER_PAGE,
) -> PageRequest:
    return PageRequest(page=page, per_page=per_page)


def _local_day_start(value: str, settings: Settings, *, days: int = 0) -> datetime | None:
    """The start of a local day (plus `days`) in UTC, for a YYYY-MM-DD filter; None for anything else."""
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return None
    return datetime.combine(day + timedelta(days=days), time.min, tzinfo=settings.zone).astimezone(UTC)


@router.get("/laporan", response_class=HTMLResponse)
def report_list(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    page: Annotated[PageRequest, Depends(_list_page)],
    category: FilterText = "",
    status: FilterText = "",
    kecamatan: FilterText = "",
    since: FilterText = "",
    until: FilterText = "",
) -> HTMLResponse:
    """Public reports, newest first, with a filter and a clustered map."""
    categories = {item.code: item for item in service.list_categories(session, active_only=False)}
    kecamatan_list = regions.list_kecamatan(session, settings=settings)
    chosen: ReportCategory | None = categories.get(category.strip())
    status = status.strip()
    if status not in STATUS_FILTERS and status not in {s.value for s in ReportStatus}:
        status = ""
    kecamatan = kecamatan.strip() if kecamatan.strip() in {k.code for k in kecamatan_list} else ""
    since_at = _local_day_start(since, settings)
    until_at = _local_day_start(until, settings, days=1)
    filters = kept_filters(
        category=chosen.code if chosen else "",
        status=status,
        kecamatan=kecamatan,
        since=since.strip() if since_at else "",
        until=until.strip() if until_at else "",
    )
    locale = get_locale()
    paged = service.list_public_reports(
        session,
        settings=settings,
        page=page,
        category_id=chosen.id if chosen else None,
        status=status or None,
        kecamatan_code=kecamatan or None,
        since=since_at,
        until=until_at,
        locale=locale,
    )
    active = [item for item in categories.values() if item.active]
    return render(
        request,
        "reports/public_list.html",
        {
            "paged": paged,
            "filters": filters,
            "category_options": [(item.code, service.category_name(item, locale)) for item in active],
            "category_names": {code: service.category_name(item, locale) for code, item in categories.items()},
            "status_options": [("open", _("Still being handled")), ("closed", _("Closed"))]
            + [(s.value, s.label) for s in ReportStatus],
            "kecamatan_options": [(k.code, k.name) for k in kecamatan_list],
            "map": _map_config(session, settings),
            "map_url": MAP_URL,
            "status_labels": _status_labels(),
        },
    )


# --- photos -----------------------------------------------------------------------------------------------------


def _photo(session: Session, settings: Settings, *, user: Any, photo_id: int, thumb: bool) -> Response:
    private = False
    try:
        photo, _report = service.get_photo(session, photo_id=photo_id, by=None)
    except NotFound:
        if user is None:
            raise
        photo, _report = service.get_photo(session, photo_id=photo_id, by=user)
        private = True
    try:
        path = storage.open_upload(settings, photo.thumb_key if thumb else photo.file_key)
    except FileNotFoundError:
        raise NotFound(_("There is no such photo.")) from None
    # Always a JPEG that the server encoded itself: never served as anything a browser would run.
    return FileResponse(
        path,
        media_type="image/jpeg",
        filename=f"laporan-{photo.id}{'-thumb' if thumb else ''}.jpg",
        content_disposition_type="inline",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store" if private else PUBLIC_PHOTO_CACHE,
        },
    )


@router.get("/media/laporan/{photo_id}.jpg")
def photo_file(
    session: SessionDep, settings: SettingsDep, user: OptionalUser, photo_id: PhotoIdPath
) -> Response:  # fmt: skip
    """A report's photo (metadata-free JPEG); 404 unless the visitor may see it."""
    return _photo(session, settings, user=user, photo_id=photo_id, thumb=False)


@router.get("/media/laporan/{photo_id}/thumb.jpg")
def photo_thumbnail(session: SessionDep, settings: SettingsDep, user: OptionalUser, photo_id: PhotoIdPath) -> Response:
    """A report photo's thumbnail; 404 unless the visitor may see it."""
    return _photo(session, settings, user=user, photo_id=photo_id, thumb=True)
