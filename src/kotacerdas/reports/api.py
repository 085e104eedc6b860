"""JSON API of the reports domain: citizens send and track reports, staff work the OPD inbox, admins edit categories.

Public endpoints need no login and no CSRF token: sending a report is open to anyone, and the reporter's own steps
(reopen, rate) are authorised by the PIN in the body, not by a cookie. Staff endpoints take a Bearer token or a login
session; a write made with a session cookie must carry the page's CSRF token in `X-CSRF-Token`. Everything public
goes through `service.public_report`, the domain's privacy choke point.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import (
    CsrfChecked,
    CurrentUser,
    SessionDep,
    SettingsDep,
    actor_of,
    client_ip,
    get_current_user,
    get_optional_user,
    require,
    writes_late,
)
from kotacerdas.errors import InvalidInput, NotFound
from kotacerdas.i18n import _, get_locale
from kotacerdas.pagination import PageQuery
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.reports import service
from kotacerdas.reports.enums import ReportSource, ReportStatus
from kotacerdas.reports.models import Report
from kotacerdas.reports.schemas import (
    AssignIn,
    BulkIn,
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    CommentIn,
    DisposeIn,
    DuplicateIn,
    FigureRowRead,
    FollowAccepted,
    FollowIn,
    HideIn,
    MapFeatureCollection,
    NearbyReport,
    NoteIn,
    PlanIn,
    PublicReport,
    PublicReportPage,
    RatingIn,
    ReasonIn,
    RedisposeIn,
    Reporter,
    ReporterAction,
    ReportSubmit,
    ReportSubmitted,
    ResolveIn,
    StaffReport,
    StaffReportDetail,
    StaffReportPage,
    StaffUpdate,
    TemplateIn,
    TemplateRead,
)
from kotacerdas.web.api_inputs import (
    MAX_PHOTO_BODY_BYTES,
    BodyLimitedRoute,
    decode_photos,
    max_body,
    parse_bbox,
)

GEOJSON_MEDIA_TYPE = "application/geo+json"
# Dates outside these are typing mistakes (and would overflow when turned into local midnights).
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)
TRACKING_CODE = re.compile(r"^[A-Za-z0-9-]{1,24}$")
# Category fields a PATCH may leave out but not set to null (the text fields are checked by the service).
NOT_NULL_CATEGORY_FIELDS = ("photo_required", "position", "active", "resolution_days", "duplicate_radius_m")


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON_MEDIA_TYPE


router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES, route_class=BodyLimitedRoute)

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: PROBLEM_RESPONSES[400] | {"description": "The request body is too large"}
}


def _staff(user: CurrentUser, _csrf: Annotated[None, CsrfChecked]) -> User:
    """The logged-in staff member or token holder; what they may do to which report the service decides."""
    return user


Staff = Annotated[User, Depends(_staff)]
CategoryManager = Annotated[User, Depends(require(Permission.REPORTS_CATEGORIES))]
FiguresReader = Annotated[User, Depends(require(Permission.REPORTS_FIGURES))]

ReportIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Report id")]
CategoryIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Report category id")]
TemplateIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Response template id")]
CodePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=24,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Tracking code",
        examples=["MR-2026-000123"],
    ),
]
_STATUSES = "|".join(status.value for status in ReportStatus)
PublicStatusQuery = Annotated[
    str | None,
    Query(pattern=rf"^(open|closed|{_STATUSES})$", description="`open`, `closed` or one status"),
]
InboxStatusQuery = Annotated[str | None, Query(pattern=rf"^(open|{_STATUSES})$", description="`open` or one status")]
CategoryCodeQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$", description="Category code, e.g. jalan-rusak"),
]
KecamatanQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=20, pattern=r"^[0-9.]+$", description="Kecamatan code, e.g. 16.05.09"),
]
SinceQuery = Annotated[date | None, Query(description="Sent on or after this day (regency time)")]
UntilQuery = Annotated[date | None, Query(description="Sent on or before this day (regency time)")]


# --- helpers ----------------------------------------------------------------------------------------------------


def _invalid(message: str, field: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "reason": reason}])


def _check_period(since: date | None, until: date | None) -> None:
    for field, value in (("since", since), ("until", until)):
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise _invalid(_("Dates must lie between the years 2000 and 2100."), field, "range")
    if since is not None and until is not None and since > until:
        raise _invalid(_("The start date is after the end date."), "since", "after_until")


def _local_midnight(day: date, settings: Settings) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=settings.zone).astimezone(UTC)


def _category_id(session: Session, code: str | None) -> int | None:
    """The id of the category with this code (None for no code); 422 for an unknown one."""
    if code is None:
        return None
    try:
        return service.get_category_by_code(session, code=code).id
    except NotFound:
        raise _invalid(_("Unknown report category."), "category", "unknown") from None


def _tracking_code(value: str, field: str) -> str:
    value = value.strip()
    if not TRACKING_CODE.match(value):
        raise _invalid(_("There is no report with that tracking code."), field, "unknown")
    return value


def _known_agency(session: Session, agency_id: int | None) -> None:
    if agency_id is None:
        return
    try:
        agencies.get_agency(session, agency_id=agency_id)
    except NotFound:
        raise _invalid(_("Unknown OPD."), "agency_id", "unknown") from None


def _public(session: Session, settings: Settings, report: Report) -> PublicReport:
    return service.public_report(session, settings=settings, report=report, locale=get_locale(), with_timeline=True)


def _staff_view(session: Session, *, user: User, report: Report, detail: bool = True) -> StaffReport:
    reporter = (
        Reporter(name=report.reporter_name, email=report.reporter_email, phone=report.reporter_phone)
        if service.can_see_contact(user, report)
        else None
    )
    fields = {name: getattr(report, name) for name in StaffReport.model_fields if name != "reporter"}
    if not detail:
        return StaffReport(**fields, reporter=reporter)
    timeline = [StaffUpdate.model_validate(update) for update in service.staff_timeline(session, report=report)]
    return StaffReportDetail(**fields, reporter=reporter, timeline=timeline)


def _staff_step(request: Request, user: User) -> dict[str, Any]:
    return {"settings": request.app.state.settings, "by": user, "actor": actor_of(request, user)}


# --- categories ---------------------------------------------------------------------------------------------------


@router.get("/report-categories", tags=["report-categories"], response_model=list[CategoryRead])
def list_report_categories(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    include_inactive: Annotated[
        bool, Query(alias="all", description="Inactive categories too (needs reports.categories)")
    ] = False,
) -> list[CategoryRead]:
    """List the report categories citizens can choose (public), in display order."""
    if include_inactive:
        user = get_current_user(request, get_optional_user(request, session, settings))
        accounts.require_permission(user, Permission.REPORTS_CATEGORIES)
    categories = service.list_categories(session, active_only=not include_inactive)
    return [CategoryRead.model_validate(category) for category in categories]


@router.get("/report-categories/{category_id}", tags=["report-categories"], response_model=CategoryRead)
def get_report_category(session: SessionDep, category_id: CategoryIdPath) -> CategoryRead:
    """One report category with its extra questions (public)."""
    return CategoryRead.model_validate(service.get_category(session, category_id=category_id))


@router.post(
    "/report-categories",
    tags=["report-categories"],
    response_model=CategoryRead,
    status_code=201,
    responses=BODY_RESPONSES,
)
def create_report_category(
    request: Request, session: SessionDep, user: CategoryManager, body: CategoryCreate
) -> CategoryRead:
    """Add a report category (needs reports.categories)."""
    category = service.create_category(session, actor=actor_of(request, user), **body.model_dump(exclude_none=True))
    return CategoryRead.model_validate(category)


@router.patch(
    "/report-categories/{category_id}",
    tags=["report-categories"],
    response_model=CategoryRead,
    responses=BODY_RESPONSES,
)
def update_report_category(
    request: Request, session: SessionDep, user: CategoryManager, category_id: CategoryIdPath, body: CategoryUpdate
) -> CategoryRead:
    """Change a report category; only the fields sent change (needs reports.categories)."""
    changes = body.model_dump(exclude_unset=True)
    for field in NOT_NULL_CATEGORY_FIELDS:
        if field in changes and changes[field] is None:
            raise _invalid(_("This field cannot be empty."), field, "required")
    category = service.update_category(session, actor=actor_of(request, user), category_id=category_id, **changes)
    return CategoryRead.model_validate(category)


# --- public reports -----------------------------------------------------------------------------------------------


@router.post(
    "/reports",
    tags=["reports"],
    response_model=ReportSubmitted,
    status_code=201,
    responses=BODY_RESPONSES,
)
@writes_late
@max_body(MAX_PHOTO_BODY_BYTES)
def submit_report(request: Request, session: SessionDep, settings: SettingsDep, body: ReportSubmit) -> Response:
    """Send a report (no login); the answer holds its tracking code and the PIN, shown only this once."""
    locale = get_locale()
    submitted = service.submit_report(
        session,
        settings=settings,
        category_code=body.category,
        type=body.type.value,
        description=body.description,
        lat=body.lat,
        lon=body.lon,
        address=body.address,
        name=body.name,
        email=body.email,
        phone=body.phone,
        anonymous=body.anonymous,
        confidential=body.confidential,
        attributes=body.attributes,
        photos=decode_photos(body.photos),
        asset_id=body.asset_id,
        source=ReportSource.API,
        ip=client_ip(request),
        honeypot=body.website,
        locale=locale,
    )
    code = submitted.report.tracking_code
    answer = ReportSubmitted(
        tracking_code=code,
        pin=submitted.pin,
        url=f"{settings.public_base_url}/lapor/{code}",
        # A new report's timeline is only "received": left out, to keep the busiest endpoint lean.
        report=service.public_report(
            session, settings=settings, report=submitted.report, locale=locale, preloaded=submitted.preloaded
        ),
    )
    # Serialized here: the model was just built and checked, and FastAPI's response_model handling would dump it,
    # check it again and serialize it (bench/reports_submit.py, the busiest write endpoint).
    return Response(
        answer.model_dump_json(),
        status_code=201,
        media_type="application/json",
        # The answer holds the PIN: no cache may keep it.
        headers={"Location": f"{router.prefix}/reports/{code}", "Cache-Control": "no-store"},
    )


@router.get("/reports", tags=["reports"], response_model=PublicReportPage)
def list_reports(
    session: SessionDep,
    settings: SettingsDep,
    page: PageQuery,
    category: CategoryCodeQuery = None,
    status: PublicStatusQuery = None,
    kecamatan: KecamatanQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> PublicReportPage:
    """List public reports, newest first (confidential and hidden ones never appear)."""
    _check_period(since, until)
    result = service.list_public_reports(
        session,
        settings=settings,
        page=page,
        category_id=_category_id(session, category),
        status=status,
        kecamatan_code=kecamatan,
        since=_local_midnight(since, settings) if since else None,
        until=_local_midnight(until + timedelta(days=1), settings) if until else None,
        locale=get_locale(),
    )
    return PublicReportPage(items=result.items, total=result.total, page=result.page, per_page=result.per_page)


@router.get("/reports/nearby", tags=["reports"], response_model=list[NearbyReport])
def nearby_reports(
    session: SessionDep,
    settings: SettingsDep,
    category: Annotated[str, Query(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$", description="Category code")],
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="Latitude (WGS 84)")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="Longitude (WGS 84)")],
) -> list[NearbyReport]:
    """Open reports of a category near a place, nearest first, to follow instead of sending the same again."""
    found = service.nearby_open_reports(
        session, settings=settings, category_id=_category_id(session, category), lat=lat, lon=lon,
        locale=get_locale(),
    )  # fmt: skip
    return [NearbyReport(distance_m=distance, report=report) for report, distance in found]


@router.get(
    "/reports/map",
    tags=["reports"],
    response_model=MapFeatureCollection,
    response_class=GeoJSONResponse,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "An RFC 7946 FeatureCollection"}},
)
def reports_map(
    session: SessionDep,
    settings: SettingsDep,
    bbox: Annotated[
        str,
        Query(
            min_length=7,
            max_length=200,
            description="The viewport: west,south,east,north in degrees (WGS 84)",
            examples=["102.5,-3.5,103.5,-2.5"],
        ),
    ],
    zoom: Annotated[int, Query(ge=0, le=22, description="The map's zoom level; clusters get finer as it grows")],
    category: CategoryCodeQuery = None,
    status: PublicStatusQuery = None,
    kecamatan: KecamatanQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> GeoJSONResponse:
    """Public reports in a map viewport as GeoJSON, clustered by zoom, at their public positions."""
    # The map index and the figures load on first use (or with the map's preload), not with the app.
    from kotacerdas.reports import mapindex

    box = parse_bbox(bbox)
    _check_period(since, until)
    collection = mapindex.viewport_geojson(
        session,
        settings=settings,
        bbox=box,
        zoom=zoom,
        category_id=_category_id(session, category),
        status=status,
        kecamatan_code=kecamatan,
        since=since,
        until=until,
    )
    return GeoJSONResponse(collection)


@router.get("/reports/figures", tags=["reports"], response_model=list[FigureRowRead])
def report_figures(
    session: SessionDep,
    settings: SettingsDep,
    _user: FiguresReader,
    by: Annotated[
        Literal["agency", "category", "kecamatan", "month"], Query(description="What to group the reports by")
    ] = "agency",
    since: SinceQuery = None,
    until: UntilQuery = None,
    agency_id: Annotated[int | None, Query(ge=1, le=MAX_INT_ID, description="Only this OPD's reports")] = None,
) -> list[FigureRowRead]:
    """Handling figures per OPD, category, kecamatan or month: counts, SLA compliance, medians, ratings."""
    from kotacerdas.reports import stats

    _check_period(since, until)
    rows = stats.report_figures(
        session, settings=settings, by=by, since=since, until=until, agency_id=agency_id, locale=get_locale()
    )
    return [FigureRowRead.model_validate(row) for row in rows]


@router.get("/reports/{code}", tags=["reports"], response_model=PublicReport)
def get_report(session: SessionDep, settings: SettingsDep, code: CodePath) -> PublicReport:
    """One public report by tracking code, with its public timeline."""
    return _public(session, settings, service.get_public_report(session, code=code))


@router.post(
    "/reports/{code}/follow",
    tags=["reports"],
    response_model=FollowAccepted,
    status_code=202,
    responses=BODY_RESPONSES,
)
def follow_report(session: SessionDep, settings: SettingsDep, code: CodePath, body: FollowIn) -> FollowAccepted:
    """Follow a report's updates by email; a confirmation link is sent first."""
    service.follow_report(session, settings=settings, code=code, email=body.email, locale=get_locale())
    # The same answer whether or not the address follows already: it tells a stranger nothing.
    return FollowAccepted(detail=_("We sent a link to this address. Updates follow once you open it."))


@router.post("/reports/{code}/reopen", tags=["reports"], response_model=PublicReport, responses=BODY_RESPONSES)
def reopen_report(session: SessionDep, settings: SettingsDep, code: CodePath, body: ReporterAction) -> PublicReport:
    """The reporter reopens a resolved report within the reopen window, with the PIN and a reason."""
    report = service.reopen_report(session, settings=settings, code=code, pin=body.pin, reason=body.reason)
    return _public(session, settings, report)


@router.post("/reports/{code}/rating", tags=["reports"], response_model=PublicReport, responses=BODY_RESPONSES)
def rate_report(session: SessionDep, settings: SettingsDep, code: CodePath, body: RatingIn) -> PublicReport:
    """The reporter rates the handling of a resolved report, 1 to 5, with the PIN."""
    report = service.rate_report(
        session, settings=settings, code=code, pin=body.pin, rating=body.rating, comment=body.comment
    )
    return _public(session, settings, report)


# --- the staff inbox --------------------------------------------------------------------------------------------


@router.get("/inbox", tags=["inbox"], response_model=StaffReportPage)
def list_inbox(
    session: SessionDep,
    user: Staff,
    page: PageQuery,
    status: InboxStatusQuery = None,
    kecamatan: KecamatanQuery = None,
    category_id: Annotated[int | None, Query(ge=1, le=MAX_INT_ID, description="Only this category")] = None,
    agency_id: Annotated[
        int | None, Query(ge=1, le=MAX_INT_ID, description="Only this OPD's (Diskominfo and command center)")
    ] = None,
    assignee_id: Annotated[int | None, Query(ge=1, le=MAX_INT_ID, description="Only given to this user")] = None,
    overdue: Annotated[bool, Query(description="Only reports past their current deadline")] = False,
    q: Annotated[str | None, Query(max_length=100, description="Tracking code or text in the description")] = None,
    sort: Annotated[
        Literal[service.INBOX_SORTS],  # type: ignore[valid-type]
        Query(description="`due` (soonest deadline first), `-created`, `created` or `-updated`"),
    ] = "due",
) -> StaffReportPage:
    """The reports you handle: all for Diskominfo and the command center, your OPD's for OPD staff."""
    result = service.list_inbox(
        session,
        by=user,
        page=page,
        status=status,
        kecamatan_code=kecamatan,
        category_id=category_id,
        agency_id=agency_id,
        assignee_id=assignee_id,
        overdue=overdue,
        q=accounts.search_text(q),
        sort=sort,
    )
    return StaffReportPage(
        items=[_staff_view(session, user=user, report=report, detail=False) for report in result.items],
        total=result.total,
        page=result.page,
        per_page=result.per_page,
    )


@router.post("/inbox/bulk", tags=["inbox"], response_model=list[StaffReport], responses=BODY_RESPONSES)
def bulk_triage(request: Request, session: SessionDep, user: Staff, body: BulkIn) -> list[StaffReport]:
    """Verify or dispose many reports at once, all or none (Diskominfo and the command center)."""
    _known_agency(session, body.agency_id)
    done = service.bulk_triage(
        session, report_ids=body.report_ids, action=body.action, agency_id=body.agency_id,
        **_staff_step(request, user),
    )  # fmt: skip
    return [_staff_view(session, user=user, report=report, detail=False) for report in done]


@router.get("/inbox/{report_id}", tags=["inbox"], response_model=StaffReportDetail)
def get_inbox_report(session: SessionDep, user: Staff, report_id: ReportIdPath) -> StaffReport:
    """One report with its whole timeline, internal notes included; the reporter's contact needs reports.contact."""
    report = service.get_staff_report(session, report_id=report_id, by=user)
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/verify", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def verify_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: NoteIn
) -> StaffReport:
    """Confirm that a new report is genuine and complete (Diskominfo and the command center)."""
    report = service.verify_report(session, report_id=report_id, note=body.note, **_staff_step(request, user))
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/dispose", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def dispose_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: DisposeIn
) -> StaffReport:
    """Send a report to the OPD that will handle it (the category's OPD when none is given)."""
    report = service.dispose_report(
        session, report_id=report_id, agency_id=body.agency_id, note=body.note, **_staff_step(request, user)
    )
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/redispose", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def redispose_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: RedisposeIn
) -> StaffReport:
    """Move a report to another OPD with a reason; the follow-up deadline starts again."""
    report = service.redispose_report(
        session, report_id=report_id, agency_id=body.agency_id, reason=body.reason,
        **_staff_step(request, user),
    )  # fmt: skip
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/follow-up", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def follow_up_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: PlanIn
) -> StaffReport:
    """Publish the responsible OPD's follow-up plan; the resolution deadline counts from here."""
    report = service.follow_up_report(session, report_id=report_id, plan=body.plan, **_staff_step(request, user))
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/resolve", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
@max_body(MAX_PHOTO_BODY_BYTES)
def resolve_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: ResolveIn
) -> StaffReport:
    """Close a report as done, with a resolution note and up to 3 "after" photos (base64)."""
    report = service.resolve_report(
        session, report_id=report_id, note=body.note, photos=decode_photos(body.photos),
        **_staff_step(request, user),
    )  # fmt: skip
    return _staff_view(session, user=user, report=report)


def _close(request: Request, session: Session, user: User, report_id: int, outcome: str, reason: str) -> StaffReport:
    report = service.close_report(
        session, report_id=report_id, outcome=outcome, reason=reason, **_staff_step(request, user)
    )
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/reject", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def reject_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: ReasonIn
) -> StaffReport:
    """Close an open report as rejected, with a reason (Diskominfo and the command center)."""
    return _close(request, session, user, report_id, "reject", body.reason)


@router.post(
    "/inbox/{report_id}/not-authority", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES
)
def mark_not_authority(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: ReasonIn
) -> StaffReport:
    """Close an open report as outside the regency's authority, with a reason."""
    return _close(request, session, user, report_id, "not_authority", body.reason)


@router.post("/inbox/{report_id}/archive", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def archive_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: ReasonIn
) -> StaffReport:
    """Archive an open report, with a reason."""
    return _close(request, session, user, report_id, "archive", body.reason)


@router.post("/inbox/{report_id}/duplicate", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def mark_duplicate(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: DuplicateIn
) -> StaffReport:
    """Close a report as a duplicate of another (by tracking code); its reporter follows the other one."""
    report = service.mark_duplicate(
        session, report_id=report_id, master_code=_tracking_code(body.master_code, "master_code"),
        reason=body.reason, **_staff_step(request, user),
    )  # fmt: skip
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/assign", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def assign_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: AssignIn
) -> StaffReport:
    """Give a report to a staff member of its OPD, or take it back with `assignee_id: null`."""
    report = service.assign_report(
        session, report_id=report_id, assignee_id=body.assignee_id, **_staff_step(request, user)
    )
    return _staff_view(session, user=user, report=report)


@router.post("/inbox/{report_id}/notes", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def add_note(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: CommentIn
) -> StaffReport:
    """Add an internal note, or a public response (`public: true`) that the timeline shows, signed by the OPD."""
    service.add_note(session, report_id=report_id, note=body.note, public=body.public, **_staff_step(request, user))
    return _staff_view(session, user=user, report=service.get_report(session, report_id=report_id))


@router.post("/inbox/{report_id}/hide", tags=["inbox"], response_model=StaffReportDetail, responses=BODY_RESPONSES)
def hide_report(
    request: Request, session: SessionDep, user: Staff, report_id: ReportIdPath, body: HideIn
) -> StaffReport:
    """Hide a report from the public with a reason, or show it again (the original is kept)."""
    report = service.hide_report(
        session, report_id=report_id, hidden=body.hidden, reason=body.reason, **_staff_step(request, user)
    )
    return _staff_view(session, user=user, report=report)


# --- response templates -----------------------------------------------------------------------------------------


@router.get("/response-templates", tags=["inbox"], response_model=list[TemplateRead])
def list_response_templates(session: SessionDep, user: Staff) -> list[TemplateRead]:
    """Response templates you may start from: your OPD's and the shared ones."""
    return [TemplateRead.model_validate(item) for item in service.list_response_templates(session, by=user)]


@router.post(
    "/response-templates", tags=["inbox"], response_model=TemplateRead, status_code=201, responses=BODY_RESPONSES
)
def create_response_template(request: Request, session: SessionDep, user: Staff, body: TemplateIn) -> TemplateRead:
    """Add a response template (Diskominfo for any OPD, an OPD admin for their own)."""
    _known_agency(session, body.agency_id)
    template = service.save_response_template(
        session, by=user, actor=actor_of(request, user), agency_id=body.agency_id, title=body.title, body=body.body
    )
    return TemplateRead.model_validate(template)


@router.put("/response-templates/{template_id}", tags=["inbox"], response_model=TemplateRead, responses=BODY_RESPONSES)
def update_response_template(
    request: Request, session: SessionDep, user: Staff, template_id: TemplateIdPath, body: TemplateIn
) -> TemplateRead:
    """Replace a response template's OPD, title and text."""
    _known_agency(session, body.agency_id)
    template = service.save_response_template(
        session, by=user, actor=actor_of(request, user), template_id=template_id, agency_id=body.agency_id,
        title=body.title, body=body.body,
    )  # fmt: skip
    return TemplateRead.model_validate(template)


@router.delete(
    "/response-templates/{template_id}", tags=["inbox"], status_code=204, response_class=Response, response_model=None
)
def delete_response_template(request: Request, session: SessionDep, user: Staff, template_id: TemplateIdPath) -> None:
    """Remove a response template."""
    service.delete_response_template(session, by=user, actor=actor_of(request, user), template_id=template_id)
