"""Console pages of the reports domain: the inbox (with bulk triage), a report's staff view with the workflow steps
the user may take, report categories, response templates and the OPD league table.

Every page calls `reports.service` (and the figures in `reports.stats`); the forms post to one route per step, which
calls the one service function and redirects back (PRG), or shows the page again with the refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kotacerdas import charts
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, utcnow
from kotacerdas.deps import CsrfChecked, CurrentUser, SessionDep, SettingsDep, actor_of, require
from kotacerdas.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from kotacerdas.i18n import _, get_locale
from kotacerdas.pagination import PageQuery, PageRequest
from kotacerdas.regions import service as regions
from kotacerdas.reports import service
from kotacerdas.reports.enums import (
    OPEN_STATUSES,
    CategoryGroup,
    Deadline,
    PhotoKind,
    ReportSource,
    ReportStatus,
    ReportType,
    SlaTier,
    UpdateKind,
)
from kotacerdas.reports.models import Report, ReportCategory, ResponseTemplate
from kotacerdas.reports.photos import MAX_PHOTO_BYTES, MAX_PHOTOS
from kotacerdas.web.forms import PostedForm, chosen_agency_id, kept_filters, read_uploads, render_form
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

IdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
FilterText = Annotated[str, Query(max_length=100)]
# Generous caps on what a form field may carry; the service says what the real limit is, in the user's language.
LongText = Annotated[str, Form(max_length=20_000)]
ShortText = Annotated[str, Form(max_length=1_000)]
INBOX = "/konsol/aduan"
CATEGORIES = "/konsol/kategori-aduan"
TEMPLATES = "/konsol/template-tanggapan"


def _reports_staff(user: CurrentUser, _csrf: Annotated[None, CsrfChecked]) -> User:
    """The current user when their role triages or handles citizen reports."""
    if not (accounts.user_can(user, Permission.REPORTS_TRIAGE) or accounts.user_can(user, Permission.REPORTS_HANDLE)):
        raise PermissionDenied(_("You do not have permission to do this."))
    return user


ReportsStaff = Annotated[User, Depends(_reports_staff)]
CategoryManager = Annotated[User, Depends(require(Permission.REPORTS_CATEGORIES))]
FiguresReader = Annotated[User, Depends(require(Permission.REPORTS_FIGURES))]


def _id_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdecimal() and 1 <= int(value) <= MAX_INT_ID else None


def _agency_names(session: Session) -> dict[int, str]:
    return {agency.id: agency.short_name for agency in agencies.list_agency_choices(session)}


def _active_agency_options(session: Session) -> list[tuple[int, str]]:
    return [(agency.id, agency.short_name) for agency in agencies.list_agency_choices(session, active_only=True)]


def _category_label(category: ReportCategory | None) -> str:
    return service.category_name(category, get_locale()) if category else "–"


# --- inbox -----------------------------------------------------------------------------------------------------

INBOX_FILTER_KEYS = ("status", "kecamatan", "category", "agency", "assignee", "overdue", "q", "sort")


def _sort_options() -> list[tuple[str, str]]:
    return [
        ("due", _("Due date first")),
        ("-created", _("Newest first")),
        ("created", _("Oldest first")),
        ("-updated", _("Recently updated")),
    ]


def _status_options() -> list[tuple[str, str]]:
    return [("open", _("All open")), *ReportStatus.choices()]


def _inbox_filters(values: Mapping[str, str], *, triage: bool, kecamatan_codes: set[str]) -> dict[str, str]:
    """The inbox filters from a query string, unknown values dropped, for the service and for the paging links."""
    status = values.get("status", "")
    sort = values.get("sort", "")
    return kept_filters(
        status=status if status in {value for value, _label in _status_options()} else "",
        kecamatan=values.get("kecamatan", "") if values.get("kecamatan", "") in kecamatan_codes else "",
        category=str(_id_or_none(values.get("category")) or ""),
        # Only Diskominfo and the command center choose the OPD; an OPD's inbox is always its own.
        agency=str(_id_or_none(values.get("agency")) or "") if triage else "",
        assignee="mine" if values.get("assignee") == "mine" else "",
        overdue="1" if values.get("overdue") in ("1", "true", "on") else "",
        q=(values.get("q") or "").strip()[:100],
        sort=sort if sort in service.INBOX_SORTS and sort != "due" else "",
    )


@dataclass(frozen=True)
class InboxRow:
    """One report as the inbox table shows it."""

    report: Report
    status: ReportStatus
    category: str
    kecamatan: str
    agency: str
    assignee: str
    due_at: datetime | None
    due_label: str
    overdue: bool


def _user_names(session: Session, user_ids: set[int]) -> dict[int, str]:
    names = {}
    for user_id in user_ids:
        try:
            names[user_id] = accounts.get_user(session, user_id=user_id).username
        except NotFound:
            continue
    return names


def _inbox_rows(session: Session, *, settings: Settings, reports: list[Report]) -> list[InboxRow]:
    categories = {category.id: category for category in service.list_categories(session, active_only=False)}
    kecamatan = {region.code: region.name for region in regions.list_kecamatan(session, settings=settings)}
    agency_names = _agency_names(session)
    assignees = _user_names(session, {report.assignee_id for report in reports if report.assignee_id})
    now = utcnow()
    rows = []
    for report in reports:
        due = service.next_due(report)
        rows.append(
            InboxRow(
                report=report,
                status=ReportStatus(report.status),
                category=_category_label(categories.get(report.category_id)),
                kecamatan=kecamatan.get(report.kecamatan_code or "", report.kecamatan_code or "–"),
                agency=agency_names.get(report.agency_id, "–") if report.agency_id else "–",
                assignee=assignees.get(report.assignee_id, "–") if report.assignee_id else "–",
                due_at=due[1] if due else None,
                due_label=due[0].label if due else "",
                overdue=bool(due and due[1] < now),
            )
        )
    return rows


def _render_inbox(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    user: User,
    page: PageRequest,
    values: Mapping[str, str],
    error: DomainError | None = None,
    selected: set[int] | None = None,
    bulk: Mapping[str, str] | None = None,
) -> HTMLResponse:
    triage = service.can_triage(user)
    kecamatan = regions.list_kecamatan(session, settings=settings)
    filters = _inbox_filters(values, triage=triage, kecamatan_codes={region.code for region in kecamatan})
    paged = service.list_inbox(
        session,
        by=user,
        page=page,
        status=filters.get("status"),
        kecamatan_code=filters.get("kecamatan"),
        category_id=_id_or_none(filters.get("category")),
        agency_id=_id_or_none(filters.get("agency")),
        assignee_id=user.id if filters.get("assignee") == "mine" else None,
        overdue=bool(filters.get("overdue")),
        q=filters.get("q"),
        sort=filters.get("sort", "due"),
    )
    categories = service.list_categories(session, active_only=False)
    return render_form(
        request,
        "reports/console_inbox.html",
        {
            "paged": paged,
            "rows": _inbox_rows(session, settings=settings, reports=paged.items),
            "filters": filters,
            "back": urlencode({**filters, **({"page": str(page.page)} if page.page > 1 else {})}),
            "triage": triage,
            "status_options": _status_options(),
            "sort_options": _sort_options(),
            "kecamatan_options": [(region.code, region.name) for region in kecamatan],
            "category_options": [(category.id, _category_label(category)) for category in categories],
            "agency_options": _active_agency_options(session),
            "selected": selected or set(),
            "bulk": bulk or {},
            "done": request.query_params.get("done", ""),
            "done_count": _id_or_none(request.query_params.get("count")) or 0,
        },
        error=error,
    )


@router.get("/konsol/aduan", response_class=HTMLResponse)
def inbox(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    page: PageQuery,
    status: FilterText = "",
    kecamatan: FilterText = "",
    category: FilterText = "",
    agency: FilterText = "",
    assignee: FilterText = "",
    overdue: FilterText = "",
    q: FilterText = "",
    sort: FilterText = "",
) -> HTMLResponse:
    """The report inbox: every report for Diskominfo and the command center, the OPD's own for OPD staff."""
    values = {
        "status": status, "kecamatan": kecamatan, "category": category, "agency": agency, "assignee": assignee,
        "overdue": overdue, "q": q, "sort": sort,
    }  # fmt: skip
    return _render_inbox(request, session, settings, user=user, page=page, values=values)


def _chosen_ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        report_id = _id_or_none(value)
        if report_id is None:
            raise InvalidInput(_("Choose reports from the list."), errors=[{"field": "report_ids", "reason": "format"}])
        ids.append(report_id)
    return ids


@router.post("/konsol/aduan/massal", response_class=HTMLResponse)
def bulk_triage(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_ids: Annotated[list[str], Form(max_length=200)] = [],  # noqa: B006 (FastAPI copies defaults)
    action: Annotated[str, Form(max_length=20)] = "",
    agency_id: Annotated[str, Form(max_length=20)] = "",
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Verify, or dispose to an OPD, the reports ticked in the inbox: all of them or none."""
    values = dict(parse_qsl(back))
    page = PageRequest(page=_id_or_none(values.get("page")) or 1)
    try:
        done = service.bulk_triage(
            session,
            settings=settings,
            report_ids=_chosen_ids(report_ids),
            action=action,
            agency_id=chosen_agency_id(agency_id, field="agency_id", max_id=MAX_INT_ID),
            by=user,
            actor=actor_of(request, user),
        )
    except DomainError as exc:
        session.rollback()
        return _render_inbox(
            request, session, settings, user=user, page=page, values=values, error=exc,
            selected={int(value) for value in report_ids if value.isdecimal()},
            bulk={"action": action, "agency_id": agency_id},
        )  # fmt: skip
    filters = {key: value for key, value in values.items() if key in (*INBOX_FILTER_KEYS, "page")}
    query = urlencode({**filters, "done": f"bulk-{action}", "count": str(len(done))})
    return RedirectResponse(f"{INBOX}?{query}", status_code=303)


# --- one report ------------------------------------------------------------------------------------------------


def _done_notices() -> dict[str, str]:
    return {
        "verify": _("The report is verified."),
        "dispose": _("The report is sent to the OPD."),
        "redispose": _("The report is moved to the other OPD."),
        "follow-up": _("The follow-up plan is published."),
        "resolve": _("The report is resolved."),
        "close": _("The report is closed."),
        "duplicate": _("The report is marked as a duplicate."),
        "assign": _("The assignment is saved."),
        "note": _("The note is added to the timeline."),
        "response": _("The response is published on the timeline."),
        "hide": _("The report is hidden from the public."),
        "asset": _("The report's asset is saved."),
        "proposal": _("The new condition is proposed to the asset's owner OPD."),
        "unhide": _("The report is shown to the public again."),
    }


@dataclass(frozen=True)
class DeadlineRow:
    """One of a report's three deadlines, as the staff page shows it."""

    deadline: Deadline
    due_at: datetime | None
    done_at: datetime | None
    breached: bool
    current: bool


def _deadlines(report: Report, *, now: datetime) -> list[DeadlineRow]:
    current = service.next_due(report)
    rows = []
    for deadline, due_at, done_at, breached_at in (
        (Deadline.VERIFY, report.verify_due_at, report.verified_at, report.verify_breached_at),
        (Deadline.FOLLOW_UP, report.follow_up_due_at, report.followed_up_at, report.follow_up_breached_at),
        (Deadline.RESOLVE, report.resolve_due_at, report.resolved_at, report.resolve_breached_at),
    ):
        late_done = done_at is not None and due_at is not None and done_at > due_at
        late_open = done_at is None and due_at is not None and due_at < now and ReportStatus(report.status).is_open
        rows.append(
            DeadlineRow(
                deadline=deadline,
                due_at=due_at,
                done_at=done_at,
                breached=breached_at is not None or late_done or late_open,
                current=current is not None and current[0] == deadline,
            )
        )
    return rows


@dataclass(frozen=True)
class Actions:
    """The workflow steps the user may take on the report in its current state (nothing that would 403 or 409)."""

    verify: bool
    dispose: bool
    redispose: bool
    follow_up: bool
    resolve: bool
    close: bool
    duplicate: bool
    assign: bool
    note: bool
    public_note: bool
    hide: bool

    @classmethod
    def of(cls, user: User, report: Report) -> Actions:
        status = ReportStatus(report.status)
        triage = service.can_triage(user)
        handle = service.can_handle(user, report)
        is_open = status in OPEN_STATUSES
        return cls(
            verify=triage and status == ReportStatus.BARU,
            dispose=triage and status in (ReportStatus.BARU, ReportStatus.TERVERIFIKASI),
            redispose=(triage or handle) and status in (ReportStatus.DIDISPOSISIKAN, ReportStatus.DITINDAKLANJUTI),
            follow_up=handle and status == ReportStatus.DIDISPOSISIKAN,
            resolve=handle and status == ReportStatus.DITINDAKLANJUTI,
            close=triage and is_open,
            duplicate=(triage or handle) and is_open,
            assign=handle and is_open and report.agency_id is not None,
            note=service.can_view(user, report),
            public_note=triage or handle,
            hide=triage,
        )

    @property
    def any_step(self) -> bool:
        return any(
            (self.verify, self.dispose, self.redispose, self.follow_up, self.resolve, self.close, self.duplicate,
             self.assign)
        )  # fmt: skip


def _attribute_rows(category: ReportCategory | None, values: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The report's answers to its category's extra questions, as (question, answer) in the page's language."""
    if not values:
        return []
    english = get_locale() == "en"
    definitions = {item["code"]: item for item in (category.attributes if category else []) or []}
    rows = []
    for code, value in values.items():
        definition = definitions.get(code)
        if definition is None:
            rows.append((code, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
            continue
        names = {
            choice["key"]: (choice.get("name_en") if english else None) or choice.get("name_id") or choice["key"]
            for choice in definition.get("values") or []
        }
        chosen = value if isinstance(value, list) else [value]
        if isinstance(value, float) and value.is_integer():
            chosen = [int(value)]
        question = (definition.get("description_en") if english else None) or definition.get("description_id")
        rows.append((question or code, ", ".join(names.get(str(item), str(item)) for item in chosen)))
    return rows


def _region_name(session: Session, code: str | None) -> str | None:
    if not code:
        return None
    try:
        return regions.get_region(session, code=code).name
    except NotFound:
        return code


def _template_prefill(session: Session, *, user: User, template: str, target: str) -> dict[str, str]:
    """The text a chosen response template puts into the plan, resolution or response form (`?template=`)."""
    template_id = _id_or_none(template)
    if template_id is None or target not in ("plan", "resolve", "note"):
        return {}
    for item in service.list_response_templates(session, by=user):
        if item.id == template_id:
            return {target: item.body}
    return {}


def _render_detail(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    user: User,
    report: Report,
    error: DomainError | None = None,
    error_form: str = "",
    values: Mapping[str, Any] | None = None,
) -> HTMLResponse:
    category = service.get_category(session, category_id=report.category_id)
    agency_names = _agency_names(session)
    actions = Actions.of(user, report)
    now = utcnow()
    prefill = _template_prefill(
        session,
        user=user,
        template=request.query_params.get("template", ""),
        target=request.query_params.get("for", "plan"),
    )
    duplicate_of = service.get_report(session, report_id=report.duplicate_of_id) if report.duplicate_of_id else None
    staff = service.list_assignable_staff(session, report=report) if actions.assign else []
    assignee = _user_names(session, {report.assignee_id}).get(report.assignee_id) if report.assignee_id else None
    default_agency = report.agency_id or category.agency_id
    return render_form(
        request,
        "reports/console_detail.html",
        {
            "report": report,
            "status": ReportStatus(report.status),
            "report_type": ReportType(report.type),
            "source": ReportSource(report.source),
            "category": category,
            "category_label": _category_label(category),
            "group": CategoryGroup(category.group) if category.group in {g.value for g in CategoryGroup} else None,
            "desa": _region_name(session, report.desa_code),
            "kecamatan": _region_name(session, report.kecamatan_code),
            "agency": agency_names.get(report.agency_id) if report.agency_id else None,
            "agency_names": agency_names,
            "assignee": assignee,
            "duplicate_of": duplicate_of,
            "photos": service.list_photos(session, report_id=report.id),
            "photo_kind": PhotoKind,
            "attribute_rows": _attribute_rows(category, report.attributes),
            "deadlines": _deadlines(report, now=now),
            "contact_visible": service.can_see_contact(user, report),
            "timeline": service.staff_timeline(session, report=report),
            "update_kind": UpdateKind,
            "internal_kinds": {kind.value for kind in service.INTERNAL_KINDS},
            "deadline_of": Deadline,
            "deadline_values": {deadline.value for deadline in Deadline},
            "report_status": ReportStatus,
            "actions": actions,
            "agency_options": _active_agency_options(session),
            "default_agency": default_agency or "",
            "staff_options": [(member.id, f"{member.full_name} ({member.username})") for member in staff],
            "templates": service.list_response_templates(session, by=user)
            if actions.follow_up or actions.resolve or actions.public_note
            else [],
            "prefill": prefill,
            "error_form": error_form if error else "",
            "values": values or {},
            "notice": _done_notices().get(request.query_params.get("done", ""), ""),
            "is_public": service.is_public(report),
            "max_photos": MAX_PHOTOS,
            "asset_panel": _asset_panel(session, report=report, user=user),
        },
        error=error,
    )


def _asset_panel(session: Session, *, report: Report, user: User) -> Any:
    # Imported on use: the assets domain builds on this one (its service imports the reports service).
    from kotacerdas.assets import service as assets

    return assets.report_asset_panel(session, report=report, by=user)


@router.get("/konsol/aduan/{report_id}", response_class=HTMLResponse)
def report_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: ReportsStaff, report_id: IdPath
) -> HTMLResponse:
    """One report as its handlers see it, with the steps the user may take now."""
    report = service.get_staff_report(session, report_id=report_id, by=user)
    return _render_detail(request, session, settings, user=user, report=report)


def _step(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    user: User,
    report_id: int,
    form: str,
    values: Mapping[str, Any],
    run: Callable[[Report], Any],
    done: str,
) -> Response:
    """Run one workflow step: redirect back with a notice, or show the page again with the refusal."""
    report = service.get_staff_report(session, report_id=report_id, by=user)
    try:
        run(report)
    except DomainError as exc:
        # Nothing of a refused step may be committed by the request's transaction (nor a photo file kept).
        session.rollback()
        report = service.get_staff_report(session, report_id=report_id, by=user)
        return _render_detail(
            request, session, settings, user=user, report=report, error=exc, error_form=form, values=values
        )
    return RedirectResponse(f"{INBOX}/{report_id}?done={done}", status_code=303)


@router.post("/konsol/aduan/{report_id}/verifikasi", response_class=HTMLResponse)
def verify(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    note: LongText = "",
) -> Response:
    """Verify a new report."""
    return _step(
        request, session, settings, user=user, report_id=report_id, form="verify", values={"note": note},
        run=lambda report: service.verify_report(
            session, settings=settings, report_id=report.id, by=user, actor=actor_of(request, user), note=note or None
        ),
        done="verify",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/disposisi", response_class=HTMLResponse)
def dispose(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    agency_id: ShortText = "",
    note: LongText = "",
) -> Response:
    """Send a report to the OPD that will handle it."""
    return _step(
        request, session, settings, user=user, report_id=report_id, form="dispose",
        values={"agency_id": agency_id, "note": note},
        run=lambda report: service.dispose_report(
            session, settings=settings, report_id=report.id, by=user, actor=actor_of(request, user),
            agency_id=chosen_agency_id(agency_id, field="agency_id", max_id=MAX_INT_ID), note=note or None,
        ),
        done="dispose",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/disposisi-ulang", response_class=HTMLResponse)
def redispose(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    agency_id: ShortText = "",
    reason: LongText = "",
) -> Response:
    """Move a report to another OPD, with a reason."""

    def run(report: Report) -> None:
        chosen = chosen_agency_id(agency_id, field="agency_id", max_id=MAX_INT_ID)
        if chosen is None:
            raise InvalidInput(
                _("Choose the OPD that will handle the report."),
                errors=[{"field": "agency_id", "reason": "required"}],
            )
        service.redispose_report(
            session, settings=settings, report_id=report.id, agency_id=chosen, reason=reason, by=user,
            actor=actor_of(request, user),
        )  # fmt: skip

    return _step(
        request, session, settings, user=user, report_id=report_id, form="redispose",
        values={"agency_id": agency_id, "reason": reason}, run=run, done="redispose",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/tindak-lanjut", response_class=HTMLResponse)
def follow_up(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    plan: LongText = "",
) -> Response:
    """Publish the OPD's follow-up plan."""
    return _step(
        request, session, settings, user=user, report_id=report_id, form="plan", values={"plan": plan},
        run=lambda report: service.follow_up_report(
            session, settings=settings, report_id=report.id, plan=plan, by=user, actor=actor_of(request, user)
        ),
        done="follow-up",
    )  # fmt: skip


def _read_photos(form: FormData) -> list[bytes]:
    return read_uploads(form, field="photos", max_bytes=MAX_PHOTO_BYTES, max_files=MAX_PHOTOS)


@router.post("/konsol/aduan/{report_id}/selesai", response_class=HTMLResponse)
def resolve(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    form: PostedForm,
    note: LongText = "",
) -> Response:
    """Resolve a report with a note and up to three "after" photos (multipart)."""
    return _step(
        request, session, settings, user=user, report_id=report_id, form="resolve", values={"note": note},
        run=lambda report: service.resolve_report(
            session, settings=settings, report_id=report.id, note=note, by=user, actor=actor_of(request, user),
            photos=_read_photos(form),
        ),
        done="resolve",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/tutup", response_class=HTMLResponse)
def close(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    outcome: ShortText = "",
    reason: LongText = "",
) -> Response:
    """Close a report as rejected, not the regency's authority, or archived, with a reason."""
    return _step(
        request, session, settings, user=user, report_id=report_id, form="close",
        values={"outcome": outcome, "reason": reason},
        run=lambda report: service.close_report(
            session, settings=settings, report_id=report.id, outcome=outcome, reason=reason, by=user,
            actor=actor_of(request, user),
        ),
        done="close",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/duplikat", response_class=HTMLResponse)
def duplicate(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    master_code: Annotated[str, Form(max_length=100)] = "",
    reason: LongText = "",
) -> Response:
    """Close a report as a duplicate of another (by tracking code)."""
    return _step(
        request, session, settings, user=user, report_id=report_id, form="duplicate",
        values={"master_code": master_code, "reason": reason},
        run=lambda report: service.mark_duplicate(
            session, settings=settings, report_id=report.id, master_code=master_code, reason=reason or None, by=user,
            actor=actor_of(request, user),
        ),
        done="duplicate",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/tugaskan", response_class=HTMLResponse)
def assign(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    assignee_id: ShortText = "",
) -> Response:
    """Give a report to a staff member of its OPD, or take it back (the empty choice)."""

    def run(report: Report) -> None:
        chosen = None
        if assignee_id.strip():
            chosen = _id_or_none(assignee_id)
            if chosen is None:
                raise InvalidInput(
                    _("Choose an active staff member of the responsible OPD."),
                    errors=[{"field": "assignee_id", "reason": "format"}],
                )
        service.assign_report(
            session, settings=settings, report_id=report.id, assignee_id=chosen, by=user,
            actor=actor_of(request, user),
        )  # fmt: skip

    return _step(
        request, session, settings, user=user, report_id=report_id, form="assign",
        values={"assignee_id": assignee_id}, run=run, done="assign",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/catatan", response_class=HTMLResponse)
def note(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    note: LongText = "",
    visibility: ShortText = "internal",
) -> Response:
    """Add an internal note, or a public response, to the report's timeline."""
    public = visibility == "public"
    return _step(
        request, session, settings, user=user, report_id=report_id, form="note",
        values={"note": note, "visibility": visibility},
        run=lambda report: service.add_note(
            session, settings=settings, report_id=report.id, note=note, public=public, by=user,
            actor=actor_of(request, user),
        ),
        done="response" if public else "note",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/sembunyikan", response_class=HTMLResponse)
def hide(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    hidden: ShortText = "1",
    reason: LongText = "",
) -> Response:
    """Hide a report from the public (with a reason), or show it again."""
    hide_it = hidden != "0"
    return _step(
        request, session, settings, user=user, report_id=report_id, form="hide", values={"reason": reason},
        run=lambda report: service.hide_report(
            session, settings=settings, report_id=report.id, hidden=hide_it, reason=reason or None, by=user,
            actor=actor_of(request, user),
        ),
        done="hide" if hide_it else "unhide",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/aset", response_class=HTMLResponse)
def link_asset(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    asset_id: ShortText = "",
) -> Response:
    """Link the report to an asset (by id), or unlink it (the empty choice)."""

    def run(report: Report) -> None:
        chosen = None
        if asset_id.strip():
            chosen = _id_or_none(asset_id)
            if chosen is None:
                raise InvalidInput(
                    _("There is no active asset with that id."), errors=[{"field": "asset_id", "reason": "unknown"}]
                )
        service.link_report_asset(session, report_id=report.id, asset_id=chosen, by=user, actor=actor_of(request, user))

    return _step(
        request, session, settings, user=user, report_id=report_id, form="asset", values={"asset_id": asset_id},
        run=run, done="asset",
    )  # fmt: skip


@router.post("/konsol/aduan/{report_id}/usulan-kondisi", response_class=HTMLResponse)
def propose_asset_condition(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReportsStaff,
    report_id: IdPath,
    condition: ShortText = "",
    note: LongText = "",
) -> Response:
    """Propose a new condition for the report's asset to its owner OPD (a resolved report only)."""
    from kotacerdas.assets import service as assets

    return _step(
        request, session, settings, user=user, report_id=report_id, form="proposal",
        values={"condition": condition, "note": note},
        run=lambda report: assets.propose_condition(
            session, settings=settings, actor=actor_of(request, user), by=user, report_id=report.id,
            condition=condition or None, note=note or None,
        ),
        done="proposal",
    )  # fmt: skip


# --- categories ------------------------------------------------------------------------------------------------

ATTRIBUTES_EXAMPLE = json.dumps(
    [
        {
            "code": "nomor_tiang",
            "datatype": "string",
            "required": False,
            "description_id": "Nomor tiang lampu, bila ada",
            "description_en": "Pole number, if any",
        },
        {
            "code": "tingkat_kerusakan",
            "datatype": "singlevaluelist",
            "required": True,
            "description_id": "Seberapa parah kerusakannya?",
            "description_en": "How bad is the damage?",
            "values": [
                {"key": "ringan", "name_id": "Ringan", "name_en": "Light"},
                {"key": "berat", "name_id": "Berat", "name_en": "Severe"},
            ],
        },
    ],
    ensure_ascii=False,
    indent=2,
)


@dataclass(frozen=True)
class CategoryRow:
    """A category as the category list shows it."""

    category: ReportCategory
    name: str
    group: str
    agency: str
    tier: str


def _whole_number(value: str, *, field: str, label: str, default: int | None = None) -> int | None:
    value = value.strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(
            _("%(field)s must be a whole number.") % {"field": label}, errors=[{"field": field, "reason": "format"}]
        ) from None


class CategoryForm(BaseModel):
    """The fields of the category form, as typed (checked by the service, re-shown on error)."""

    code: str = ""
    name_id: str = ""
    name_en: str = ""
    description_id: str = ""
    description_en: str = ""
    group: str = ""
    agency_id: str = ""
    sla_tier: str = ""
    resolution_days: str = ""
    photo_required: str | None = None
    duplicate_radius_m: str = "100"
    attributes: str = "[]"
    position: str = "0"
    active: str | None = None

    @classmethod
    def of(cls, category: ReportCategory) -> CategoryForm:
        return cls(
            code=category.code,
            name_id=category.name_id,
            name_en=category.name_en,
            description_id=category.description_id or "",
            description_en=category.description_en or "",
            group=category.group,
            agency_id=str(category.agency_id or ""),
            sla_tier=category.sla_tier,
            resolution_days=str(category.resolution_days),
            photo_required="on" if category.photo_required else None,
            duplicate_radius_m=str(category.duplicate_radius_m),
            attributes=json.dumps(category.attributes or [], ensure_ascii=False, indent=2),
            position=str(category.position),
            active="on" if category.active else None,
        )

    def values(self) -> dict[str, Any]:
        """Keyword arguments for the service; an empty resolution time means the tier's default."""
        try:
            attributes = json.loads(self.attributes) if self.attributes.strip() else []
        except ValueError as exc:
            raise InvalidInput(
                _("The extra questions are not valid JSON (line %(line)d, column %(column)d).")
                % {"line": exc.lineno, "column": exc.colno}
                if isinstance(exc, json.JSONDecodeError)
                else _("The extra questions are not valid JSON."),
                errors=[{"field": "attributes", "reason": "json"}],
            ) from None
        values: dict[str, Any] = {
            "code": self.code,
            "name_id": self.name_id,
            "name_en": self.name_en or self.name_id,
            "description_id": self.description_id or None,
            "description_en": self.description_en or None,
            "group": self.group,
            "agency_id": chosen_agency_id(self.agency_id, field="agency_id", max_id=MAX_INT_ID),
            "sla_tier": self.sla_tier,
            "photo_required": self.photo_required is not None,
            "duplicate_radius_m": _whole_number(
                self.duplicate_radius_m, field="duplicate_radius_m", label=_("Duplicate radius"), default=100
            ),
            "attributes": attributes,
            "position": _whole_number(self.position, field="position", label=_("Position"), default=0),
            "active": self.active is not None,
        }
        days = _whole_number(self.resolution_days, field="resolution_days", label=_("Resolution time"))
        if days is not None:
            values["resolution_days"] = days
        return values


def _category_error(error: DomainError) -> DomainError:
    """The error with its field named as the form names it (`attributes[2].code` is the attributes box)."""
    errors = [
        {**item, "field": "attributes"} if str(item.get("field", "")).startswith("attributes") else item
        for item in error.errors
    ]
    renamed = type(error)(error.detail, errors=errors, headers=error.headers)
    return renamed


def _render_category_form(
    request: Request,
    session: Session,
    *,
    form: CategoryForm,
    category: ReportCategory | None,
    error: DomainError | None = None,
    saved: bool = False,
) -> HTMLResponse:
    return render_form(
        request,
        "reports/console_category_form.html",
        {
            "form": form,
            "category": category,
            "saved": saved,
            "groups": CategoryGroup.choices(),
            "tiers": [(tier.value, tier.label) for tier in SlaTier],
            "agency_options": [(agency.id, agency.short_name) for agency in agencies.list_agency_choices(session)],
            "example": ATTRIBUTES_EXAMPLE,
        },
        error=_category_error(error) if error else None,
    )


@router.get("/konsol/kategori-aduan", response_class=HTMLResponse)
def categories_page(request: Request, session: SessionDep, _user: CategoryManager) -> HTMLResponse:
    """The report categories with their OPD, resolution time and duplicate radius."""
    agency_names = _agency_names(session)
    groups = dict(CategoryGroup.choices())
    # The tier's name without its default days: the category's own resolution time is shown beside it.
    tiers = {tier.value: tier.label.split(" (")[0] for tier in SlaTier}
    rows = [
        CategoryRow(
            category=category,
            name=_category_label(category),
            group=groups.get(category.group, category.group),
            agency=agency_names.get(category.agency_id, "–") if category.agency_id else "–",
            tier=tiers.get(category.sla_tier, category.sla_tier),
        )
        for category in service.list_categories(session, active_only=False)
    ]
    return render(request, "reports/console_categories.html", {"rows": rows})


@router.get("/konsol/kategori-aduan/baru", response_class=HTMLResponse)
def new_category_form(request: Request, session: SessionDep, _user: CategoryManager) -> HTMLResponse:
    """The form for a new report category."""
    form = CategoryForm(group=CategoryGroup.LAINNYA.value, sla_tier=SlaTier.NORMATIF.value, active="on")
    return _render_category_form(request, session, form=form, category=None)


@router.post("/konsol/kategori-aduan/baru", response_class=HTMLResponse)
def create_category(
    request: Request, session: SessionDep, user: CategoryManager, form: Annotated[CategoryForm, Form()]
) -> Response:
    """Add a report category from the form."""
    try:
        category = service.create_category(session, actor=actor_of(request, user), **form.values())
    except DomainError as exc:
        session.rollback()
        return _render_category_form(request, session, form=form, category=None, error=exc)
    return RedirectResponse(f"{CATEGORIES}/{category.id}?saved=1", status_code=303)


@router.get("/konsol/kategori-aduan/{category_id}", response_class=HTMLResponse)
def edit_category_form(
    request: Request, session: SessionDep, _user: CategoryManager, category_id: IdPath, saved: bool = False
) -> HTMLResponse:
    """The form to change a report category."""
    category = service.get_category(session, category_id=category_id)
    return _render_category_form(request, session, form=CategoryForm.of(category), category=category, saved=saved)


@router.post("/konsol/kategori-aduan/{category_id}", response_class=HTMLResponse)
def update_category(
    request: Request,
    session: SessionDep,
    user: CategoryManager,
    category_id: IdPath,
    form: Annotated[CategoryForm, Form()],
) -> Response:
    """Save the changes to a report category (an unticked "active" box takes it off the citizens' form)."""
    category = service.get_category(session, category_id=category_id)
    try:
        service.update_category(session, actor=actor_of(request, user), category_id=category.id, **form.values())
    except DomainError as exc:
        session.rollback()
        category = service.get_category(session, category_id=category_id)
        return _render_category_form(request, session, form=form, category=category, error=exc)
    return RedirectResponse(f"{CATEGORIES}/{category_id}?saved=1", status_code=303)


# --- response templates ----------------------------------------------------------------------------------------


def _may_edit_template(user: User, agency_id: int | None) -> bool:
    """Whether to offer the edit and delete buttons (the service enforces the same rule)."""
    if service.can_triage(user):
        return True
    return user.role == Role.OPD_ADMIN.value and agency_id is not None and agency_id == user.agency_id


def _may_create_template(user: User) -> bool:
    return service.can_triage(user) or (user.role == Role.OPD_ADMIN.value and user.agency_id is not None)


class TemplateForm(BaseModel):
    """The fields of the response-template form, as typed."""

    title: str = ""
    body: str = ""
    agency_id: str = ""


def _render_templates(
    request: Request,
    session: Session,
    *,
    user: User,
    form: TemplateForm,
    editing: ResponseTemplate | None = None,
    error: DomainError | None = None,
) -> HTMLResponse:
    templates = service.list_response_templates(session, by=user)
    return render_form(
        request,
        "reports/console_templates.html",
        {
            "templates": templates,
            "editable": {item.id for item in templates if _may_edit_template(user, item.agency_id)},
            "may_create": _may_create_template(user),
            "triage": service.can_triage(user),
            "agency_names": _agency_names(session),
            "agency_options": _active_agency_options(session),
            "form": form,
            "editing": editing,
            "done": request.query_params.get("done", ""),
        },
        error=error,
    )


def _find_template(session: Session, *, user: User, template_id: int) -> ResponseTemplate:
    for item in service.list_response_templates(session, by=user):
        if item.id == template_id:
            return item
    raise NotFound(_("There is no such response template."))


def _template_agency(user: User, form: TemplateForm) -> int | None:
    # Diskominfo chooses the OPD (none: shared by all); an OPD admin's templates are always their own OPD's.
    if service.can_triage(user):
        return chosen_agency_id(form.agency_id, field="agency_id", max_id=MAX_INT_ID)
    return user.agency_id


@router.get("/konsol/template-tanggapan", response_class=HTMLResponse)
def templates_page(request: Request, session: SessionDep, user: ReportsStaff) -> HTMLResponse:
    """Response templates: the OPD's own and the shared ones, with the form for a new one."""
    return _render_templates(request, session, user=user, form=TemplateForm())


@router.post("/konsol/template-tanggapan", response_class=HTMLResponse)
def create_template(
    request: Request, session: SessionDep, user: ReportsStaff, form: Annotated[TemplateForm, Form()]
) -> Response:
    """Add a response template."""
    try:
        service.save_response_template(
            session, by=user, actor=actor_of(request, user), agency_id=_template_agency(user, form), title=form.title,
            body=form.body,
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        return _render_templates(request, session, user=user, form=form, error=exc)
    return RedirectResponse(f"{TEMPLATES}?done=saved", status_code=303)


@router.get("/konsol/template-tanggapan/{template_id}", response_class=HTMLResponse)
def edit_template_form(request: Request, session: SessionDep, user: ReportsStaff, template_id: IdPath) -> HTMLResponse:
    """The form to change a response template."""
    template = _find_template(session, user=user, template_id=template_id)
    if not _may_edit_template(user, template.agency_id):
        raise PermissionDenied(_("Only Diskominfo, or an OPD's admin for its own OPD, may edit response templates."))
    form = TemplateForm(title=template.title, body=template.body, agency_id=str(template.agency_id or ""))
    return _render_templates(request, session, user=user, form=form, editing=template)


@router.post("/konsol/template-tanggapan/{template_id}", response_class=HTMLResponse)
def update_template(
    request: Request,
    session: SessionDep,
    user: ReportsStaff,
    template_id: IdPath,
    form: Annotated[TemplateForm, Form()],
) -> Response:
    """Save the changes to a response template."""
    template = _find_template(session, user=user, template_id=template_id)
    try:
        service.save_response_template(
            session, by=user, actor=actor_of(request, user), template_id=template.id,
            agency_id=_template_agency(user, form), title=form.title, body=form.body,
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        template = _find_template(session, user=user, template_id=template_id)
        return _render_templates(request, session, user=user, form=form, editing=template, error=exc)
    return RedirectResponse(f"{TEMPLATES}?done=saved", status_code=303)


@router.post("/konsol/template-tanggapan/{template_id}/hapus")
def delete_template(request: Request, session: SessionDep, user: ReportsStaff, template_id: IdPath) -> Response:
    """Remove a response template."""
    service.delete_response_template(session, by=user, actor=actor_of(request, user), template_id=template_id)
    return RedirectResponse(f"{TEMPLATES}?done=deleted", status_code=303)


# --- figures: the OPD league table -----------------------------------------------------------------------------

LEAGUE_SORTS = (
    "label",
    "total",
    "open",
    "verified_in_sla_pct",
    "followed_up_in_sla_pct",
    "resolved_in_sla_pct",
    "median_verify_hours",
    "median_follow_up_hours",
    "median_resolve_hours",
    "avg_rating",
)
BREAKDOWNS = ("category", "kecamatan", "month")


def _periods() -> list[tuple[str, str]]:
    return [
        ("month", _("This month")),
        ("3m", _("Last 3 months")),
        ("year", _("This year")),
        ("all", _("All time")),
    ]


def period_start(period: str, today: date) -> date | None:
    """The first day of a period of the figures page (this month, the last three months, this year), or None."""
    if period == "month":
        return today.replace(day=1)
    if period == "3m":
        month = today.month - 2
        year = today.year + (month - 1) // 12
        return date(year, (month - 1) % 12 + 1, 1)
    if period == "year":
        return date(today.year, 1, 1)
    return None


def _sorted_rows(rows: list[Any], sort: str) -> list[Any]:
    key = sort.lstrip("-")
    if key not in LEAGUE_SORTS:
        return rows
    descending = sort.startswith("-")
    present = [row for row in rows if getattr(row, key, None) is not None]
    missing = [row for row in rows if getattr(row, key, None) is None]

    def value(row: Any) -> Any:
        item = getattr(row, key)
        return item.casefold() if isinstance(item, str) else item

    # Rows without a value (no report of that kind yet) stay at the bottom either way.
    return sorted(present, key=value, reverse=descending) + missing


def format_hours(hours: float | None) -> str:
    """A median duration: hours below two days, else days."""
    if hours is None:
        return "–"
    if hours < 48:
        return _("%(value)s h") % {"value": charts.format_number(round(hours, 1))}
    return _("%(value)s d") % {"value": charts.format_number(round(hours / 24, 1))}


def format_pct(value: float | None) -> str:
    """A percentage in the page's language, or a dash when there is nothing to count."""
    return "–" if value is None else f"{charts.format_number(round(value, 1))} %"


@router.get("/konsol/kinerja-aduan", response_class=HTMLResponse)
def figures_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: FiguresReader,
    period: FilterText = "3m",
    sort: FilterText = "",
    by: FilterText = "category",
) -> HTMLResponse:
    """The OPD league table: how fast each OPD verifies, follows up and resolves, against the SLA."""
    # Imported on use: the figures module belongs to the dashboards' side of the domain and is heavier to load.
    from kotacerdas.reports import stats

    period = period if period in {key for key, _label in _periods()} else "3m"
    by = by if by in BREAKDOWNS else "category"
    since = period_start(period, datetime.now(settings.zone).date())
    rows = _sorted_rows(list(stats.league_table(session, settings=settings, since=since)), sort)
    breakdown = stats.report_figures(session, settings=settings, by=by, since=since)
    chart = charts.bar_chart(
        # Only OPDs with decided reports: "nothing decided yet" is not 0 %.
        [(row.label, row.resolved_in_sla_pct) for row in rows if row.resolved_in_sla_pct is not None],
        title=_("Reports resolved within the SLA, by OPD"),
        horizontal=True,
        unit="%",
        empty_text=_("No report with a decided resolution deadline in this period."),
    )
    return render(
        request,
        "reports/console_figures.html",
        {
            "rows": rows,
            "breakdown": breakdown,
            "chart": chart,
            "period": period,
            "periods": _periods(),
            "since": since,
            "sort": sort if sort.lstrip("-") in LEAGUE_SORTS else "",
            "by": by,
            "breakdowns": [
                ("category", _("Category")),
                ("kecamatan", _("Kecamatan")),
                ("month", _("Month")),
            ],
            "format_hours": format_hours,
            "format_pct": format_pct,
            "format_number": charts.format_number,
        },
    )
