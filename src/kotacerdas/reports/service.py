"""Citizen reports: submission, the SP4N-LAPOR! workflow, deadlines, the OPD inbox, public views and followers.

This module is the domain's public API: pages, the JSON API, Open311 and other domains call these functions and
nothing else. Services flush; the caller commits. The privacy rule lives here, in `public_report`: everything the
public sees of a report goes through it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from kotacerdas import storage
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor, clean_email, clean_text, record_change, snapshot
from kotacerdas.agencies import service as agencies
from kotacerdas.agencies.models import Agency
from kotacerdas.config import Settings
from kotacerdas.db import begin_writes, insert_row, utcnow, w3c_text
from kotacerdas.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RateLimited
from kotacerdas.i18n import _, get_locale
from kotacerdas.notifications import service as notifications
from kotacerdas.pagination import Paged, PageRequest, paginate
from kotacerdas.regions import service as regions
from kotacerdas.reports import photos as photo_files
from kotacerdas.reports.categories import (
    category_name,
    clean_attribute_values,
    create_category,
    get_category,
    get_category_by_code,
    list_categories,
    seed_default_categories,
    update_category,
)
from kotacerdas.reports.enums import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Deadline,
    PhotoKind,
    ReportSource,
    ReportStatus,
    ReportType,
    UpdateKind,
)
from kotacerdas.reports.models import (
    Report,
    ReportCategory,
    ReportFollower,
    ReportPhoto,
    ReportUpdate,
    ResponseTemplate,
)
from kotacerdas.reports.schemas import PublicPhoto, PublicReport, PublicUpdate, RegionName
from kotacerdas.reports.workdays import WorkCalendar

__all__ = [
    "PageRequest",
    "category_name",
    "create_category",
    "get_category",
    "get_category_by_code",
    "list_categories",
    "seed_default_categories",
    "update_category",
]

DESCRIPTION_MIN = 10
DESCRIPTION_MAX = 4000
ADDRESS_MAX = 300
NAME_MAX = 120
PHONE_MAX = 30
NOTE_MAX = 4000
REASON_MAX = 1000
PIN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PIN_LENGTH = 8
RATE_LIMIT_WINDOW = timedelta(hours=1)
FOLLOW_REQUESTS_PER_DAY = 5
# Timeline entries the public never sees.
INTERNAL_KINDS = frozenset(
    {UpdateKind.NOTE, UpdateKind.ASSIGNED, UpdateKind.HIDDEN, UpdateKind.UNHIDDEN, UpdateKind.BREACH}
)
# Fields of a report that are personal data: never in the audit log's copy, never public.
PERSONAL_FIELDS = ("reporter_name", "reporter_email", "reporter_phone", "reporter_pin_hash", "client_key")


# --- small helpers ----------------------------------------------------------------------------------------------


def _invalid(message: str, field: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "reason": reason}])


def _audit_view(report: Report) -> dict[str, Any]:
    return snapshot(report, exclude=PERSONAL_FIELDS + ("description", "lat", "lon", "address"))


def _pin_hash(code: str, pin: str) -> str:
    return hashlib.sha256(f"{code}:{pin.strip().upper()}".encode()).hexdigest()


def client_key(settings: Settings, ip: str | None) -> str | None:
    """A keyed hash of a client address, so the rate limit works without keeping the address."""
    if not ip:
        return None
    return hmac.new(settings.secret_key.encode(), ip.encode(), hashlib.sha256).hexdigest()[:40]


def _clean_phone(value: str | None) -> str | None:
    value = clean_text(value, field="phone", label=_("Phone"), max_length=PHONE_MAX)
    if value is None:
        return None
    digits = sum(ch.isdigit() for ch in value)
    if digits < 6 or any(ch not in "0123456789+-() " for ch in value):
        raise _invalid(_("The phone number may contain only digits, spaces, + and -."), "phone", "format")
    return value


def calendar(settings: Settings) -> WorkCalendar:
    """The working-day calendar deadlines are counted in."""
    return WorkCalendar.of(settings)


def tracking_code(settings: Settings, *, year: int, report_id: int) -> str:
    """A report's tracking code, e.g. MR-2026-000123: the prefix, the year it was sent, its number.

    The number is the report's id: it is given out by the database without a lock that concurrent submissions would
    queue on (a counter row per year did that on PostgreSQL, see bench/reports_submit.py), so numbers do not
    restart in January and never repeat."""
    return f"{settings.report_code_prefix}-{year}-{report_id:06d}"


# --- access ----------------------------------------------------------------------------------------------------


def can_triage(user: User) -> bool:
    """Whether `user` verifies and dispatches reports for the whole regency."""
    return accounts.user_can(user, Permission.REPORTS_TRIAGE)


def can_handle(user: User, report: Report) -> bool:
    """Whether `user` may work on `report` as its responsible OPD (admins may for any OPD)."""
    if not accounts.user_can(user, Permission.REPORTS_HANDLE):
        return False
    return can_triage(user) or (report.agency_id is not None and report.agency_id == user.agency_id)


def can_view(user: User, report: Report) -> bool:
    """Whether `user` sees the staff side of `report` (internal notes, the exact place)."""
    return can_triage(user) or can_handle(user, report)


def can_see_contact(user: User, report: Report) -> bool:
    """Whether `user` sees the reporter's name, email and phone: its own permission, not implied by handling."""
    return accounts.user_can(user, Permission.REPORTS_CONTACT) and can_view(user, report)


def _require_view(user: User, report: Report) -> None:
    if not can_view(user, report):
        raise PermissionDenied(_("This report belongs to another OPD."))


def _require_handle(user: User, report: Report) -> None:
    if not can_handle(user, report):
        raise PermissionDenied(_("Only the OPD responsible for this report may do this."))


def _require_triage(user: User) -> None:
    if not can_triage(user):
        raise PermissionDenied(_("Only Diskominfo and the command center may do this."))


def _require_status(report: Report, allowed: set[ReportStatus] | frozenset[ReportStatus]) -> None:
    if ReportStatus(report.status) not in allowed:
        raise Conflict(
            _("This report is %(status)s; that step is not possible now.")
            % {"status": ReportStatus(report.status).label},
            errors=[{"field": "status", "reason": "transition"}],
        )


# --- submission -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preloaded:
    """What `public_report` reads besides the report row, for a caller that has it in hand already (a submission
    does): the category, the names of the report's desa and kecamatan, its OPD's name and its photos."""

    category: ReportCategory | None
    region_names: dict[str, str]
    agency_name: str | None
    photos: list[ReportPhoto]


@dataclass(frozen=True)
class SubmittedReport:
    """A stored report, the PIN its reporter needs to reopen or rate it (shown once), and what `public_report`
    needs to show it without looking anything up again."""

    report: Report
    pin: str
    preloaded: Preloaded


# Built once: building a statement and its cache key on every submission cost more than running it.
# Counting stops at the limit: past it the exact number does not matter, and the index range is not walked.
_RECENT_FROM_CLIENT = sa.select(sa.func.count()).select_from(
    sa.select(Report.id)
    .where(Report.client_key == sa.bindparam("key"), Report.created_at >= sa.bindparam("since"))
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .subquery()
)
_CATEGORY_WITH_AGENCY = sa.select(ReportCategory, Agency.name).outerjoin(Agency, Agency.id == ReportCategory.agency_id)
_CATEGORY_BY_ID = _CATEGORY_WITH_AGENCY.where(ReportCategory.id == sa.bindparam("category_id"))
_CATEGORY_BY_CODE = _CATEGORY_WITH_AGENCY.where(ReportCategory.code == sa.bindparam("category_code"))


def check_rate_limit(session: Session, *, settings: Settings, ip: str | None, now: datetime | None = None) -> None:
    """Refuse a submission when this address has sent the hourly maximum already."""
    key = client_key(settings, ip)
    if key is None:
        return
    since = (now or utcnow()) - RATE_LIMIT_WINDOW
    recent = (
        session.connection()
        .execute(_RECENT_FROM_CLIENT, {"key": key, "since": since, "limit": settings.reports_per_ip_per_hour})
        .scalar()
    )
    if (recent or 0) >= settings.reports_per_ip_per_hour:
        raise RateLimited(
            _("Too many reports from your connection in the last hour. Please try again later."),
            headers={"Retry-After": "600"},
        )


def _public_position(session: Session, *, lat: float, lon: float, desa_code: str | None, kecamatan_code: str | None):
    """Where an anonymous report is shown: its desa's centre, else its kecamatan's, else a point rounded to ~1 km."""
    for code in (desa_code, kecamatan_code):
        if code:
            try:
                region = regions.get_region(session, code=code)
            except NotFound:
                continue
            if region.centroid_lat is not None and region.centroid_lon is not None:
                return region.centroid_lat, region.centroid_lon
    return round(lat, 2), round(lon, 2)


def submit_report(
    session: Session,
    *,
    settings: Settings,
    category_id: int | None = None,
    category_code: str | None = None,
    type: str = ReportType.PENGADUAN.value,
    description: str | None,
    lat: float | None,
    lon: float | None,
    address: str | None = None,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    anonymous: bool = False,
    confidential: bool = False,
    attributes: dict[str, Any] | None = None,
    photos: list[bytes] | None = None,
    source: ReportSource = ReportSource.WEB,
    ip: str | None = None,
    honeypot: str | None = None,
    locale: str | None = None,
    actor: Actor | None = None,
    now: datetime | None = None,
    asset_id: int | None = None,
) -> SubmittedReport:
    """Store a citizen's report with its photos, route it to the category's OPD and set the verify deadline.
    `asset_id` names the asset (road, bridge, facility) the report is about; it must be an active one."""
    now = now or utcnow()
    locale = locale or get_locale()
    if honeypot:
        # Only robots fill the hidden field; the answer does not say why.
        raise _invalid(_("The report could not be accepted."), "website", "rejected")
    if category_id is None and not category_code:
        raise _invalid(_("Choose a category."), "category", "required")
    found = session.execute(
        *(
            (_CATEGORY_BY_ID, {"category_id": category_id})
            if category_id is not None
            else (_CATEGORY_BY_CODE, {"category_code": category_code})
        )
    ).first()
    if found is None or not found[0].active:
        raise _invalid(_("Unknown report category."), "category", "unknown")
    category, agency_name = found
    if type not in {kind.value for kind in ReportType}:
        raise _invalid(_("Unknown report type."), "type", "unknown")
    description = clean_text(
        description,
        field="description",
        label=_("Description"),
        max_length=DESCRIPTION_MAX,
        required=True,
        multiline=True,
    )
    if len(description) < DESCRIPTION_MIN:
        raise _invalid(_("Please describe the problem in at least 10 characters."), "description", "too_short")
    address = clean_text(address, field="address", label=_("Address"), max_length=ADDRESS_MAX)
    name = clean_text(name, field="name", label=_("Name"), max_length=NAME_MAX)
    email = clean_email(email)
    phone = _clean_phone(phone)
    cleaned_attributes = clean_attribute_values(category, attributes)
    if lat is None or lon is None:
        raise _invalid(
            _("Choose the location on the map or allow the browser to use your location."), "location", "required"
        )
    location = regions.locate(session, settings=settings, lat=lat, lon=lon)
    if not location.inside:
        raise _invalid(
            _("The location is outside %(region)s. Reports can only be made for places inside it.")
            % {"region": settings.region_name},
            "location",
            "outside",
        )
    if asset_id is not None:
        _linkable_asset(session, asset_id)
    processed = photo_files.process_photos([item for item in photos or [] if item])
    if category.photo_required and not processed:
        raise _invalid(_("This category needs at least one photo."), "photos", "required")
    desa_code = location.desa.code if location.desa else None
    kecamatan_code = location.kecamatan.code if location.kecamatan else None
    public_lat, public_lon = (
        _public_position(session, lat=lat, lon=lon, desa_code=desa_code, kecamatan_code=kecamatan_code)
        if anonymous
        else (lat, lon)
    )
    pin = "".join(secrets.choice(PIN_ALPHABET) for _ in range(PIN_LENGTH))
    verify_due_at = calendar(settings).add_working_days(now, settings.report_verify_days)

    # Checked and prepared; from here on it writes (on SQLite, holding the writer queue). The rate limit is counted
    # after, so that submissions sent at once from one address cannot all pass it.
    begin_writes(session)
    check_rate_limit(session, settings=settings, ip=ip, now=now)
    # Plain INSERTs, not the unit of work: a flush per row was a third of a submission (bench/reports_submit.py).
    report = insert_row(
        session,
        Report,
        # A unique stand-in until the id, which the code is made of, is known (below, in this transaction).
        tracking_code=f"~{secrets.token_hex(8)}",
        category_id=category.id,
        type=type,
        status=ReportStatus.BARU.value,
        source=ReportSource(source).value,
        description=description,
        address=address,
        lat=lat,
        lon=lon,
        public_lat=public_lat,
        public_lon=public_lon,
        desa_code=desa_code,
        kecamatan_code=kecamatan_code,
        locate_method=location.method.value,
        attributes=cleaned_attributes,
        asset_id=asset_id,
        agency_id=category.agency_id,
        reporter_name=name,
        reporter_email=email,
        reporter_phone=phone,
        reporter_locale=locale if locale in ("id", "en") else "id",
        reporter_pin_hash="",
        client_key=client_key(settings, ip),
        anonymous=bool(anonymous),
        confidential=bool(confidential),
        created_at=now,
        updated_at=now,
        verify_due_at=verify_due_at,
    )
    code = tracking_code(settings, year=now.astimezone(settings.zone).year, report_id=report.id)
    numbered = {"tracking_code": code, "reporter_pin_hash": _pin_hash(code, pin)}
    session.connection().execute(sa.update(Report.__table__).where(Report.__table__.c.id == report.id), numbered)
    for key, value in numbered.items():
        set_committed_value(report, key, value)
    update = _add_update(
        session, report=report, kind=UpdateKind.SUBMITTED, actor=None, status_to=ReportStatus.BARU, now=now
    )
    photos = _store_photos(
        session, settings=settings, report=report, processed=processed, kind=PhotoKind.REPORT, update=update
    )
    preloaded = Preloaded(
        category=category,
        region_names={ref.code: ref.name for ref in (location.desa, location.kecamatan) if ref is not None},
        agency_name=agency_name,
        photos=photos,
    )
    actor = actor or Actor.system(f"warga:{source}")
    record_change(
        session, actor=actor, action="report.submit", entity_type="report", entity_id=report.id,
        after=_audit_view(report), flush=False,
    )  # fmt: skip
    if email:
        notifications.queue_email(
            session,
            settings=settings,
            to=email,
            template="report_received",
            context={
                **_mail_context(session, settings=settings, report=report, locale=report.reporter_locale),
                "pin": pin,
            },
            locale=report.reporter_locale,
            # No dedupe key: the report was made in this transaction, so nothing can have queued this mail before,
            # and the key's look-ups and savepoint were three statements of a submission (bench/reports_submit.py).
            dedupe_key=None,
        )
    _emit(session, settings=settings, report=report, event="report.created", preloaded=preloaded)
    return SubmittedReport(report=report, pin=pin, preloaded=preloaded)


def _store_photos(
    session: Session,
    *,
    settings: Settings,
    report: Report,
    processed: list[Any],
    kind: PhotoKind,
    update: ReportUpdate | None,
) -> list[ReportPhoto]:
    files: dict[str, bytes] = {}
    rows = []
    for photo in processed:
        file_key = storage.new_upload_key("reports", ".jpg")
        thumb_key = file_key.removesuffix(".jpg") + "-thumb.jpg"
        files[file_key] = photo.full
        files[thumb_key] = photo.thumb
        rows.append(
            ReportPhoto(
                report_id=report.id,
                update_id=update.id if update else None,
                kind=kind.value,
                file_key=file_key,
                thumb_key=thumb_key,
                width=photo.width,
                height=photo.height,
                sha256=photo.sha256,
            )
        )
    if rows:
        session.add_all(rows)
        session.flush()
        # Written after the rows are flushed and removed again if the transaction rolls back: no orphan files.
        storage.store_files(session, settings=settings, files=files)
    return rows


# --- the timeline and what follows a change ---------------------------------------------------------------------


def _add_update(
    session: Session,
    *,
    report: Report,
    kind: UpdateKind,
    actor: Actor | None,
    status_from: ReportStatus | None = None,
    status_to: ReportStatus | None = None,
    public_note: str | None = None,
    internal_note: str | None = None,
    agency_id: int | None = None,
    now: datetime | None = None,
) -> ReportUpdate:
    return insert_row(
        session,
        ReportUpdate,
        report_id=report.id,
        kind=kind.value,
        status_from=status_from.value if status_from else None,
        status_to=status_to.value if status_to else None,
        public_note=public_note,
        internal_note=internal_note,
        agency_id=agency_id if agency_id is not None else report.agency_id,
        actor_id=actor.user_id if actor else None,
        actor_label=actor.label if actor else "warga",
        created_at=now or utcnow(),
    )


def _report_url(settings: Settings, report: Report) -> str:
    return f"{settings.public_base_url}/lapor/{report.tracking_code}"


def _mail_context(session: Session, *, settings: Settings, report: Report, locale: str) -> dict[str, Any]:
    category = session.get(ReportCategory, report.category_id)
    return {
        "tracking_code": report.tracking_code,
        "category": category_name(category, locale) if category else "",
        "status": ReportStatus(report.status).label_en if locale == "en" else ReportStatus(report.status).label_id,
        "url": _report_url(settings, report),
        "region_name": settings.region_name,
    }


def _follower_serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key, salt="report-follower")


def _notify_followers(
    session: Session, *, settings: Settings, report: Report, update: ReportUpdate, note: str | None
) -> None:
    """Email the reporter and the confirmed followers about a public change, once per update."""
    recipients: list[tuple[str, str, str | None]] = []
    if report.reporter_email:
        recipients.append((report.reporter_email, report.reporter_locale, None))
    followers = session.scalars(
        sa.select(ReportFollower).where(ReportFollower.report_id == report.id, ReportFollower.confirmed_at.is_not(None))
    )
    serializer = _follower_serializer(settings)
    for follower in followers:
        if follower.email != report.reporter_email:
            stop = serializer.dumps({"f": follower.id, "n": follower.token_hash, "a": "stop"})
            recipients.append((follower.email, follower.locale, f"{settings.public_base_url}/lapor/berhenti/{stop}"))
    for email, locale, unsubscribe_url in recipients:
        notifications.queue_email(
            session,
            settings=settings,
            to=email,
            template="report_updated",
            context={
                **_mail_context(session, settings=settings, report=report, locale=locale),
                "note": note,
                "unsubscribe_url": unsubscribe_url,
            },
            locale=locale,
            dedupe_key=f"report-update:{update.id}:{email}",
        )


def _emit(
    session: Session, *, settings: Settings, report: Report, event: str, preloaded: Preloaded | None = None
) -> None:
    """Tell integrations (for example a forwarder to SP4N-LAPOR!) about the change, with public fields only."""
    # The payload is built only when some endpoint subscribes: it costs about a quarter of a submission.
    notifications.queue_webhooks(
        session,
        event=event,
        payload=lambda: public_report(
            session, settings=settings, report=report, locale="id", preloaded=preloaded
        ).model_dump(mode="json"),
    )


def _change(
    session: Session,
    *,
    settings: Settings,
    report: Report,
    actor: Actor,
    kind: UpdateKind,
    to_status: ReportStatus | None,
    action: str,
    public_note: str | None = None,
    internal_note: str | None = None,
    agency_id: int | None = None,
    now: datetime,
    values: dict[str, Any] | None = None,
    notify: bool = True,
) -> ReportUpdate:
    """Apply one workflow step: set the fields, add the timeline entry, audit it, then notify."""
    before = _audit_view(report)
    status_from = ReportStatus(report.status)
    for key, value in (values or {}).items():
        setattr(report, key, value)
    if to_status is not None:
        report.status = to_status.value
        if to_status in CLOSED_STATUSES:
            report.closed_at = now
    report.updated_at = now
    session.flush()
    update = _add_update(
        session,
        report=report,
        kind=kind,
        actor=actor,
        status_from=status_from if to_status is not None else None,
        status_to=to_status,
        public_note=public_note,
        internal_note=internal_note,
        agency_id=agency_id,
        now=now,
    )
    record_change(
        session, actor=actor, action=action, entity_type="report", entity_id=report.id, before=before,
        after={**_audit_view(report), "note": public_note, "internal_note": internal_note},
    )  # fmt: skip
    if notify and kind not in INTERNAL_KINDS and not report.hidden:
        _notify_followers(session, settings=settings, report=report, update=update, note=public_note)
        _emit(session, settings=settings, report=report, event="report.updated")
    return update


def _note(
    value: str | None, *, field: str, required: bool, label: str | None = None, limit: int = NOTE_MAX
) -> str | None:
    return clean_text(value, field=field, label=label or _("Note"), max_length=limit, required=required, multiline=True)


# --- workflow steps (staff) -------------------------------------------------------------------------------------


def verify_report(
    session: Session, *, settings: Settings, report_id: int, by: User, actor: Actor, note: str | None = None,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """Confirm that a new report is genuine and complete (Diskominfo / command center)."""
    report = get_report(session, report_id=report_id)
    _require_triage(by)
    _require_status(report, {ReportStatus.BARU})
    now = now or utcnow()
    _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.VERIFIED,
        to_status=ReportStatus.TERVERIFIKASI, action="report.verify", now=now,
        public_note=_note(note, field="note", required=False), values={"verified_at": now},
    )  # fmt: skip
    return report


def dispose_report(
    session: Session, *, settings: Settings, report_id: int, agency_id: int | None, by: User, actor: Actor,
    note: str | None = None, now: datetime | None = None,
) -> Report:  # fmt: skip
    """Send a report to the OPD that will handle it; a new report is verified on the way. Starts the follow-up clock."""
    report = get_report(session, report_id=report_id)
    _require_triage(by)
    _require_status(report, {ReportStatus.BARU, ReportStatus.TERVERIFIKASI})
    now = now or utcnow()
    agency = _active_agency(session, agency_id if agency_id is not None else report.agency_id)
    if report.status == ReportStatus.BARU.value:
        report.verified_at = now
    category = get_category(session, category_id=report.category_id)
    cal = calendar(settings)
    follow_up_due = cal.add_working_days(now, settings.report_follow_up_days)
    _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.DISPOSED,
        to_status=ReportStatus.DIDISPOSISIKAN, action="report.dispose", now=now, agency_id=agency.id,
        public_note=_note(note, field="note", required=False),
        values={
            "agency_id": agency.id, "disposed_at": now, "follow_up_due_at": follow_up_due,
            "resolve_due_at": cal.add_working_days(follow_up_due, category.resolution_days),
        },
    )  # fmt: skip
    _notify_agency(session, settings=settings, report=report, template="report_assigned")
    return report


def _existing_agency(session: Session, agency_id: int):
    try:
        return agencies.get_agency(session, agency_id=agency_id)
    except NotFound:
        raise _invalid(_("Unknown OPD."), "agency_id", "unknown") from None


def _active_agency(session: Session, agency_id: int | None):
    if agency_id is None:
        raise _invalid(_("Choose the OPD that will handle the report."), "agency_id", "required")
    agency = _existing_agency(session, agency_id)
    if not agency.active:
        raise _invalid(_("This OPD is inactive."), "agency_id", "inactive")
    return agency


def redispose_report(
    session: Session, *, settings: Settings, report_id: int, agency_id: int, reason: str | None, by: User,
    actor: Actor, now: datetime | None = None,
) -> Report:  # fmt: skip
    """Move a report to another OPD with a reason (the OPD that has it, or Diskominfo); the follow-up clock restarts."""
    report = get_report(session, report_id=report_id)
    if not (can_triage(by) or can_handle(by, report)):
        raise PermissionDenied(_("Only the OPD responsible for this report may do this."))
    _require_status(report, {ReportStatus.DIDISPOSISIKAN, ReportStatus.DITINDAKLANJUTI})
    reason = _note(reason, field="reason", required=True, label=_("Reason"), limit=REASON_MAX)
    agency = _active_agency(session, agency_id)
    if agency.id == report.agency_id:
        raise _invalid(_("The report is already with this OPD."), "agency_id", "same")
    now = now or utcnow()
    category = get_category(session, category_id=report.category_id)
    cal = calendar(settings)
    follow_up_due = cal.add_working_days(now, settings.report_follow_up_days)
    _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.REDISPOSED,
        to_status=ReportStatus.DIDISPOSISIKAN, action="report.redispose", now=now, agency_id=agency.id,
        public_note=reason,
        values={
            "agency_id": agency.id, "disposed_at": now, "assignee_id": None, "followed_up_at": None,
            "follow_up_due_at": follow_up_due, "follow_up_breached_at": None, "resolve_breached_at": None,
            "resolve_due_at": cal.add_working_days(follow_up_due, category.resolution_days),
        },
    )  # fmt: skip
    _notify_agency(session, settings=settings, report=report, template="report_assigned")
    return report


def follow_up_report(
    session: Session, *, settings: Settings, report_id: int, plan: str | None, by: User, actor: Actor,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """Publish the OPD's follow-up plan; the resolution clock starts from here."""
    report = get_report(session, report_id=report_id)
    _require_handle(by, report)
    _require_status(report, {ReportStatus.DIDISPOSISIKAN})
    plan = _note(plan, field="plan", required=True, label=_("Follow-up plan"))
    now = now or utcnow()
    category = get_category(session, category_id=report.category_id)
    _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.FOLLOWED_UP,
        to_status=ReportStatus.DITINDAKLANJUTI, action="report.follow_up", now=now, public_note=plan,
        values={
            "followed_up_at": now, "follow_up_plan": plan,
            "resolve_due_at": calendar(settings).add_working_days(now, category.resolution_days),
        },
    )  # fmt: skip
    return report


def resolve_report(
    session: Session, *, settings: Settings, report_id: int, note: str | None, by: User, actor: Actor,
    photos: list[bytes] | None = None, now: datetime | None = None,
) -> Report:  # fmt: skip
    """Close a report as done, with a resolution note and optional "after" photos."""
    report = get_report(session, report_id=report_id)
    _require_handle(by, report)
    _require_status(report, {ReportStatus.DITINDAKLANJUTI})
    note = _note(note, field="note", required=True, label=_("Resolution note"))
    processed = photo_files.process_photos([item for item in photos or [] if item])
    now = now or utcnow()
    update = _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.RESOLVED,
        to_status=ReportStatus.SELESAI, action="report.resolve", now=now, public_note=note,
        values={"resolved_at": now, "resolution_note": note},
    )  # fmt: skip
    _store_photos(session, settings=settings, report=report, processed=processed, kind=PhotoKind.AFTER, update=update)
    return report


_CLOSING = {
    "reject": (ReportStatus.DITOLAK, UpdateKind.REJECTED),
    "not_authority": (ReportStatus.BUKAN_WEWENANG, UpdateKind.NOT_AUTHORITY),
    "archive": (ReportStatus.DIARSIPKAN, UpdateKind.ARCHIVED),
}


def close_report(
    session: Session, *, settings: Settings, report_id: int, outcome: str, reason: str | None, by: User,
    actor: Actor, now: datetime | None = None,
) -> Report:  # fmt: skip
    """Close an open report as rejected (`reject`), not the regency's authority (`not_authority`) or `archive`."""
    if outcome not in _CLOSING:
        raise _invalid(_("Unknown outcome."), "outcome", "unknown")
    report = get_report(session, report_id=report_id)
    _require_triage(by)
    _require_status(report, OPEN_STATUSES)
    reason = _note(reason, field="reason", required=True, label=_("Reason"), limit=REASON_MAX)
    status, kind = _CLOSING[outcome]
    _change(
        session, settings=settings, report=report, actor=actor, kind=kind, to_status=status,
        action=f"report.{outcome}", now=now or utcnow(), public_note=reason, values={"close_reason": reason},
    )  # fmt: skip
    return report


def _root(session: Session, report: Report) -> Report:
    seen = {report.id}
    while report.duplicate_of_id is not None:
        report = get_report(session, report_id=report.duplicate_of_id)
        if report.id in seen:
            break
        seen.add(report.id)
    return report


def mark_duplicate(
    session: Session, *, settings: Settings, report_id: int, master_code: str, reason: str | None, by: User,
    actor: Actor, now: datetime | None = None,
) -> Report:  # fmt: skip
    """Close a report as a duplicate of another; its reporter then follows the master's updates."""
    report = get_report(session, report_id=report_id)
    if not (can_triage(by) or can_handle(by, report)):
        raise PermissionDenied(_("Only the OPD responsible for this report may do this."))
    _require_status(report, OPEN_STATUSES)
    try:
        master = _root(session, get_report_by_code(session, code=master_code.strip().upper()))
    except NotFound:
        raise _invalid(_("There is no report with that tracking code."), "master_code", "unknown") from None
    if master.id == report.id:
        raise _invalid(_("A report cannot be a duplicate of itself."), "master_code", "self")
    reason = _note(reason, field="reason", required=False, label=_("Reason"), limit=REASON_MAX)
    public_note = reason or _("This problem is already reported as %(code)s.") % {"code": master.tracking_code}
    _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.DUPLICATE,
        to_status=ReportStatus.DUPLIKAT, action="report.duplicate", now=now or utcnow(), public_note=public_note,
        values={"duplicate_of_id": master.id, "close_reason": public_note},
    )  # fmt: skip
    if report.reporter_email:
        _add_follower(
            session, report=master, email=report.reporter_email, locale=report.reporter_locale, confirmed=True
        )
    return report


def assign_report(
    session: Session, *, settings: Settings, report_id: int, assignee_id: int | None, by: User, actor: Actor,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """Give a report to a staff member of its OPD (or take it back with `assignee_id=None`)."""
    report = get_report(session, report_id=report_id)
    _require_handle(by, report)
    label = None
    if assignee_id is not None:
        assignee = session.get(User, assignee_id)
        if assignee is None or not assignee.active or assignee.agency_id != report.agency_id:
            raise _invalid(_("Choose an active staff member of the responsible OPD."), "assignee_id", "unknown")
        label = assignee.username
    _change(
        session, settings=settings, report=report, actor=actor, kind=UpdateKind.ASSIGNED, to_status=None,
        action="report.assign", now=now or utcnow(), internal_note=label or "-", values={"assignee_id": assignee_id},
    )  # fmt: skip
    return report


def add_note(
    session: Session, *, settings: Settings, report_id: int, note: str | None, public: bool, by: User, actor: Actor,
    now: datetime | None = None,
) -> ReportUpdate:  # fmt: skip
    """Add an internal note (staff only) or a public response to a report's timeline."""
    report = get_report(session, report_id=report_id)
    if public:
        if not (can_triage(by) or can_handle(by, report)):
            raise PermissionDenied(_("Only the OPD responsible for this report may do this."))
    else:
        _require_view(by, report)
    text = _note(note, field="note", required=True)
    return _change(
        session, settings=settings, report=report, actor=actor,
        kind=UpdateKind.COMMENT if public else UpdateKind.NOTE, to_status=None,
        action="report.comment" if public else "report.note", now=now or utcnow(),
        public_note=text if public else None, internal_note=None if public else text,
    )  # fmt: skip


def hide_report(
    session: Session, *, settings: Settings, report_id: int, hidden: bool, reason: str | None, by: User, actor: Actor,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """Hide a report from the public (abuse, personal data in the text) or show it again; the original is kept."""
    report = get_report(session, report_id=report_id)
    _require_triage(by)
    reason = _note(reason, field="reason", required=hidden, label=_("Reason"), limit=REASON_MAX)
    if report.hidden == hidden:
        return report
    _change(
        session, settings=settings, report=report, actor=actor,
        kind=UpdateKind.HIDDEN if hidden else UpdateKind.UNHIDDEN, to_status=None,
        action="report.hide" if hidden else "report.unhide", now=now or utcnow(), internal_note=reason,
        values={"hidden": hidden, "hidden_reason": reason if hidden else None},
    )  # fmt: skip
    return report


def _linkable_asset(session: Session, asset_id: int) -> None:
    """Refuse (422) an asset id that names no active asset."""
    # Imported on use: the assets domain builds on this one (its service imports this module).
    from kotacerdas.assets import service as assets

    assets.get_active_asset(session, asset_id=asset_id, field="asset_id")


def link_report_asset(session: Session, *, report_id: int, asset_id: int | None, by: User, actor: Actor) -> Report:
    """Link a report to the asset it is about, or unlink it (`asset_id=None`): staff who handle the report, and
    Diskominfo. Audited; the report's public timeline does not change."""
    report = get_report(session, report_id=report_id)
    if not (can_triage(by) or can_handle(by, report)):
        raise PermissionDenied(_("Only the OPD responsible for this report may do this."))
    if asset_id is not None:
        _linkable_asset(session, asset_id)
    if report.asset_id == asset_id:
        return report
    before = {"asset_id": report.asset_id}
    report.asset_id = asset_id
    session.flush()
    record_change(
        session, actor=actor, action="report.link_asset" if asset_id else "report.unlink_asset",
        entity_type="report", entity_id=report.id, before=before, after={"asset_id": asset_id},
    )  # fmt: skip
    return report


def bulk_triage(
    session: Session, *, settings: Settings, report_ids: list[int], action: str, agency_id: int | None, by: User,
    actor: Actor, now: datetime | None = None,
) -> list[Report]:  # fmt: skip
    """Verify or dispose many reports at once; all or none (the error names the report that failed)."""
    if action not in ("verify", "dispose"):
        raise _invalid(_("Unknown action."), "action", "unknown")
    if not report_ids:
        raise _invalid(_("Choose at least one report."), "report_ids", "required")
    if len(report_ids) > 200:
        raise _invalid(_("At most 200 reports at once."), "report_ids", "too_many")
    _require_triage(by)
    done = []
    for report_id in dict.fromkeys(report_ids):
        try:
            if action == "verify":
                done.append(verify_report(session, settings=settings, report_id=report_id, by=by, actor=actor, now=now))
            else:
                done.append(
                    dispose_report(
                        session,
                        settings=settings,
                        report_id=report_id,
                        agency_id=agency_id,
                        by=by,
                        actor=actor,
                        now=now,
                    )  # fmt: skip
                )
        except (Conflict, NotFound) as exc:
            code = session.scalar(sa.select(Report.tracking_code).where(Report.id == report_id)) or str(report_id)
            raise type(exc)(f"{code}: {exc.detail}", errors=exc.errors) from None
    return done


# --- the reporter's own steps -----------------------------------------------------------------------------------


def check_reporter_pin(report: Report, pin: str | None) -> bool:
    """Whether `pin` is the PIN given to the reporter at submission."""
    return bool(pin) and hmac.compare_digest(report.reporter_pin_hash, _pin_hash(report.tracking_code, pin or ""))


def _require_reporter(report: Report, pin: str | None) -> None:
    if not check_reporter_pin(report, pin):
        raise PermissionDenied(
            _("The PIN does not match this report. It was shown when the report was sent and is in the email."),
            errors=[{"field": "pin", "reason": "mismatch"}],
        )


def reopen_report(
    session: Session, *, settings: Settings, code: str, pin: str | None, reason: str | None,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """The reporter reopens a resolved report within the reopen window; it goes back to the OPD."""
    report = get_report_by_code(session, code=code)
    _require_reporter(report, pin)
    _require_status(report, {ReportStatus.SELESAI})
    now = now or utcnow()
    if report.resolved_at is None or now - report.resolved_at > timedelta(days=settings.report_reopen_days):
        raise Conflict(
            _("A report can be reopened only within %(days)d days of being resolved.")
            % {"days": settings.report_reopen_days},
            errors=[{"field": "status", "reason": "reopen_window"}],
        )
    reason = _note(reason, field="reason", required=True, label=_("Reason"), limit=REASON_MAX)
    category = get_category(session, category_id=report.category_id)
    _change(
        session, settings=settings, report=report, actor=Actor.system("pelapor"), kind=UpdateKind.REOPENED,
        to_status=ReportStatus.DITINDAKLANJUTI, action="report.reopen", now=now, public_note=reason,
        values={
            "resolved_at": None, "closed_at": None, "reopen_count": report.reopen_count + 1,
            "resolve_breached_at": None,
            "resolve_due_at": calendar(settings).add_working_days(now, category.resolution_days),
        },
    )  # fmt: skip
    _notify_agency(session, settings=settings, report=report, template="report_assigned")
    return report


def rate_report(
    session: Session, *, settings: Settings, code: str, pin: str | None, rating: int, comment: str | None = None,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """The reporter rates the handling of a resolved report, 1 to 5, once."""
    report = get_report_by_code(session, code=code)
    _require_reporter(report, pin)
    _require_status(report, {ReportStatus.SELESAI})
    if report.rating is not None:
        raise Conflict(_("This report has been rated already."), errors=[{"field": "rating", "reason": "rated"}])
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise _invalid(_("The rating is a whole number from 1 to 5."), "rating", "range")
    comment = _note(comment, field="comment", required=False, label=_("Comment"), limit=1000)
    now = now or utcnow()
    _change(
        session, settings=settings, report=report, actor=Actor.system("pelapor"), kind=UpdateKind.RATED,
        to_status=None, action="report.rate", now=now, public_note=comment, notify=False,
        values={"rating": rating, "rating_comment": comment, "rated_at": now},
    )  # fmt: skip
    return report


# --- followers --------------------------------------------------------------------------------------------------


def _add_follower(session: Session, *, report: Report, email: str, locale: str, confirmed: bool) -> ReportFollower:
    follower = session.scalar(
        sa.select(ReportFollower).where(ReportFollower.report_id == report.id, ReportFollower.email == email)
    )
    if follower is None:
        follower = ReportFollower(report_id=report.id, email=email, locale=locale, token_hash=secrets.token_hex(16))
        session.add(follower)
    if confirmed and follower.confirmed_at is None:
        follower.confirmed_at = utcnow()
    session.flush()
    return follower


def follow_report(session: Session, *, settings: Settings, code: str, email: str | None, locale: str = "id") -> None:
    """Ask to follow a public report by email; a confirmation link is sent first (double opt-in)."""
    report = get_public_report(session, code=code)
    address = clean_email(email)
    if address is None:
        raise _invalid(_("Enter your email address."), "email", "required")
    # One address receives at most a few confirmation requests a day, so the form cannot bomb a stranger's inbox.
    recent = session.scalar(
        sa.select(sa.func.count())
        .select_from(ReportFollower)
        .where(
            ReportFollower.email == address,
            ReportFollower.confirmed_at.is_(None),
            ReportFollower.created_at >= utcnow() - timedelta(days=1),
        )
    )
    if (recent or 0) >= FOLLOW_REQUESTS_PER_DAY:
        raise RateLimited(_("Too many follow requests for this address today. Please try again tomorrow."))
    follower = _add_follower(
        session, report=report, email=address, locale=locale if locale in ("id", "en") else "id", confirmed=False
    )
    if follower.confirmed_at is not None:
        return  # already following; the answer does not tell a stranger who follows what
    token = _follower_serializer(settings).dumps({"f": follower.id, "n": follower.token_hash, "a": "confirm"})
    notifications.queue_email(
        session,
        settings=settings,
        to=address,
        template="report_follow_confirm",
        context={
            **_mail_context(session, settings=settings, report=report, locale=follower.locale),
            "confirm_url": f"{settings.public_base_url}/lapor/ikuti/{token}",
        },
        locale=follower.locale,
        dedupe_key=f"follow:{follower.id}:{follower.token_hash}",
    )


def _follower_from_token(session: Session, *, settings: Settings, token: str, purpose: str) -> ReportFollower:
    try:
        data = _follower_serializer(settings).loads(token)
    except BadSignature:
        data = None
    follower = (
        session.get(ReportFollower, data.get("f")) if isinstance(data, dict) and data.get("a") == purpose else None
    )
    if follower is None or not hmac.compare_digest(follower.token_hash, str(data.get("n"))):
        raise NotFound(_("This link is no longer valid."))
    return follower


def confirm_follower(session: Session, *, settings: Settings, token: str) -> Report:
    """Confirm a follow request from the emailed link; returns the report followed."""
    follower = _follower_from_token(session, settings=settings, token=token, purpose="confirm")
    if follower.confirmed_at is None:
        follower.confirmed_at = utcnow()
        session.flush()
    return get_report(session, report_id=follower.report_id)


def stop_following(session: Session, *, settings: Settings, token: str) -> Report:
    """Stop following a report (the link in every update email)."""
    follower = _follower_from_token(session, settings=settings, token=token, purpose="stop")
    report = get_report(session, report_id=follower.report_id)
    session.delete(follower)
    session.flush()
    return report


# --- deadlines --------------------------------------------------------------------------------------------------

_DEADLINE_COLUMNS = {
    Deadline.VERIFY: (Report.verify_due_at, Report.verify_breached_at, {ReportStatus.BARU}),
    Deadline.FOLLOW_UP: (Report.follow_up_due_at, Report.follow_up_breached_at, {ReportStatus.DIDISPOSISIKAN}),
    Deadline.RESOLVE: (
        Report.resolve_due_at,
        Report.resolve_breached_at,
        {ReportStatus.DIDISPOSISIKAN, ReportStatus.DITINDAKLANJUTI},
    ),
}


def _escalation_recipients(session: Session, *, agency_id: int | None) -> list[User]:
    """Diskominfo's admins, and the responsible OPD's admins, who have an email address."""
    condition = User.role == Role.ADMIN.value
    if agency_id is not None:
        condition = sa.or_(condition, sa.and_(User.role == Role.OPD_ADMIN.value, User.agency_id == agency_id))
    return list(session.scalars(sa.select(User).where(condition, User.active.is_(True), User.email.is_not(None))))


def flag_breaches(session: Session, *, settings: Settings, now: datetime | None = None, limit: int = 500) -> int:
    """Mark reports whose deadline passed and escalate each breach once to the OPD's admins and Diskominfo."""
    now = now or utcnow()
    actor = Actor.system("worker")
    flagged = 0
    for deadline, (due_column, breached_column, statuses) in _DEADLINE_COLUMNS.items():
        reports = session.scalars(
            sa.select(Report)
            .where(
                Report.status.in_([status.value for status in statuses]),
                due_column < now,
                breached_column.is_(None),
            )
            .order_by(due_column)
            .limit(limit)
            # Several workers on PostgreSQL: each breach is flagged (and escalated) by one of them.
            .with_for_update(skip_locked=True)
        ).all()
        for report in reports:
            before = _audit_view(report)
            setattr(report, breached_column.key, now)
            session.flush()
            _add_update(
                session, report=report, kind=UpdateKind.BREACH, actor=actor, internal_note=deadline.value, now=now
            )
            record_change(
                session, actor=actor, action="report.breach", entity_type="report", entity_id=report.id,
                before=before, after=_audit_view(report),
            )  # fmt: skip
            due_at = getattr(report, due_column.key)
            # Verifying is Diskominfo's work; the OPD hears of a report once it is disposed to it.
            responsible = None if deadline == Deadline.VERIFY else report.agency_id
            for user in _escalation_recipients(session, agency_id=responsible):
                notifications.queue_email(
                    session,
                    settings=settings,
                    to=user.email,
                    template="report_breach",
                    context={
                        **_mail_context(session, settings=settings, report=report, locale=settings.default_locale),
                        "deadline": deadline.label_en if settings.default_locale == "en" else deadline.label_id,
                        "due_at": due_at.astimezone(settings.zone).strftime("%d-%m-%Y %H:%M"),
                        "console_url": f"{settings.public_base_url}/konsol/aduan/{report.id}",
                    },
                    locale=settings.default_locale,
                    dedupe_key=f"breach:{report.id}:{deadline.value}:{user.id}:{due_at.isoformat()}",
                )
            flagged += 1
    return flagged


def _notify_agency(session: Session, *, settings: Settings, report: Report, template: str) -> None:
    """Tell the responsible OPD's admins that a report is waiting for them."""
    if report.agency_id is None:
        return
    admins = session.scalars(
        sa.select(User).where(
            User.role == Role.OPD_ADMIN.value,
            User.agency_id == report.agency_id,
            User.active.is_(True),
            User.email.is_not(None),
        )
    )
    for user in admins:
        notifications.queue_email(
            session,
            settings=settings,
            to=user.email,
            template=template,
            context={
                **_mail_context(session, settings=settings, report=report, locale=settings.default_locale),
                "console_url": f"{settings.public_base_url}/konsol/aduan/{report.id}",
            },
            locale=settings.default_locale,
            dedupe_key=f"assigned:{report.id}:{report.agency_id}:{report.updated_at.isoformat()}:{user.id}",
        )


def next_due(report: Report) -> tuple[Deadline, datetime] | None:
    """The deadline the report is waiting on now, if any."""
    status = ReportStatus(report.status)
    if status == ReportStatus.BARU:
        return Deadline.VERIFY, report.verify_due_at
    if status == ReportStatus.DIDISPOSISIKAN and report.follow_up_due_at:
        return Deadline.FOLLOW_UP, report.follow_up_due_at
    if status == ReportStatus.DITINDAKLANJUTI and report.resolve_due_at:
        return Deadline.RESOLVE, report.resolve_due_at
    return None


# --- reads ------------------------------------------------------------------------------------------------------


def get_report(session: Session, *, report_id: int) -> Report:
    """One report by id (staff side; check access with `can_view`)."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(_("There is no report with that id."))
    return report


def get_report_by_code(session: Session, *, code: str) -> Report:
    """One report by its tracking code."""
    report = session.scalar(sa.select(Report).where(Report.tracking_code == code.strip().upper()))
    if report is None:
        raise NotFound(_("There is no report with that tracking code."))
    return report


def is_public(report: Report) -> bool:
    """Whether the public may see the report at all (not confidential, not hidden by staff)."""
    return not report.confidential and not report.hidden


def get_public_report(session: Session, *, code: str) -> Report:
    """A report the public may see, by tracking code; confidential and hidden reports are not found."""
    report = get_report_by_code(session, code=code)
    if not is_public(report):
        raise NotFound(_("There is no report with that tracking code."))
    return report


def get_staff_report(session: Session, *, report_id: int, by: User) -> Report:
    """A report as staff see it; 403 for another OPD's report."""
    report = get_report(session, report_id=report_id)
    _require_view(by, report)
    return report


def _region_names(session: Session, codes: set[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for code in codes:
        try:
            names[code] = regions.get_region(session, code=code).name
        except NotFound:
            continue
    return names


def _preload(session: Session, report: Report) -> Preloaded:
    agency = agencies.get_agency(session, agency_id=report.agency_id) if report.agency_id else None
    return Preloaded(
        category=session.get(ReportCategory, report.category_id),
        region_names=_region_names(session, {code for code in (report.desa_code, report.kecamatan_code) if code}),
        agency_name=agency.name if agency else None,
        photos=list_photos(session, report_id=report.id),
    )


def public_report(
    session: Session, *, settings: Settings, report: Report, locale: str | None = None,
    with_timeline: bool = False, full: bool = False, preloaded: Preloaded | None = None,
) -> PublicReport:  # fmt: skip
    """What anyone may see of a report: never the reporter's contact details or internal notes, and for an
    anonymous report neither its text nor its exact place (only its desa). `full` is for the reporter with the
    PIN, who may see their own text and place. `preloaded` saves the look-ups when the caller has their results."""
    locale = locale or get_locale()
    preloaded = preloaded or _preload(session, report)
    category = preloaded.category
    status = ReportStatus(report.status)
    names = preloaded.region_names
    # The privacy rules are `public_fields` and `photo_is_public`, shared with `public_rows` (Open311 lists).
    fields = public_fields(
        anonymous=report.anonymous, description=report.description, address=report.address, lat=report.lat,
        lon=report.lon, public_lat=report.public_lat, public_lon=report.public_lon, status=status,
        resolve_due_at=report.resolve_due_at, full=full,
    )  # fmt: skip
    photos = [
        PublicPhoto(
            kind=photo.kind,
            url=photo_path(photo.id),
            thumb_url=f"/media/laporan/{photo.id}/thumb.jpg",
            width=photo.width,
            height=photo.height,
        )
        for photo in preloaded.photos
        if photo_is_public(kind=photo.kind, anonymous=report.anonymous, full=full)
    ]
    due = next_due(report)
    duplicate_of = (
        session.scalar(sa.select(Report.tracking_code).where(Report.id == report.duplicate_of_id))
        if report.duplicate_of_id
        else None
    )
    return PublicReport(
        tracking_code=report.tracking_code,
        category_code=category.code if category else "",
        category_name=category_name(category, locale) if category else "",
        group=category.group if category else "",
        type=ReportType(report.type),
        status=status,
        status_label=status.label_en if locale == "en" else status.label_id,
        status_colour=status.colour,
        open=status.is_open,
        description=fields["description"],
        address=fields["address"],
        lat=fields["lat"],
        lon=fields["lon"],
        location_approximate=fields["location_approximate"],
        anonymous=report.anonymous,
        desa=RegionName(code=report.desa_code, name=names.get(report.desa_code, report.desa_code))
        if report.desa_code
        else None,
        kecamatan=RegionName(code=report.kecamatan_code, name=names.get(report.kecamatan_code, report.kecamatan_code))
        if report.kecamatan_code
        else None,
        agency=preloaded.agency_name,
        created_at=report.created_at,
        updated_at=report.updated_at,
        expected_at=fields["expected_at"],
        next_deadline=due[1] if due else None,
        follow_up_plan=report.follow_up_plan,
        resolution_note=report.resolution_note,
        close_reason=report.close_reason,
        duplicate_of=duplicate_of,
        rating=report.rating,
        photos=photos,
        timeline=public_timeline(session, report=report, locale=locale) if with_timeline else [],
    )


def public_timeline(session: Session, *, report: Report, locale: str | None = None) -> list[PublicUpdate]:
    """The report's public timeline: status changes and responses, signed by the OPD, never internal notes."""
    locale = locale or get_locale()
    updates = session.scalars(
        sa.select(ReportUpdate)
        .where(ReportUpdate.report_id == report.id, ReportUpdate.kind.not_in([kind.value for kind in INTERNAL_KINDS]))
        .order_by(ReportUpdate.created_at, ReportUpdate.id)
    ).all()
    agency_names = agencies.agency_names(session)
    entries = []
    for update in updates:
        kind = UpdateKind(update.kind)
        status = ReportStatus(update.status_to) if update.status_to else None
        entries.append(
            PublicUpdate(
                kind=kind,
                label=kind.label_en if locale == "en" else kind.label_id,
                status=status,
                status_label=(status.label_en if locale == "en" else status.label_id) if status else None,
                note=update.public_note,
                agency=agency_names.get(update.agency_id) if kind != UpdateKind.SUBMITTED else None,
                at=update.created_at,
            )
        )
    return entries


def staff_timeline(session: Session, *, report: Report) -> list[ReportUpdate]:
    """Every timeline entry, internal notes included (staff only)."""
    return list(
        session.scalars(
            sa.select(ReportUpdate)
            .where(ReportUpdate.report_id == report.id)
            .order_by(ReportUpdate.created_at, ReportUpdate.id)
        )
    )


def list_photos(session: Session, *, report_id: int) -> list[ReportPhoto]:
    """A report's photos in upload order."""
    return list(
        session.scalars(sa.select(ReportPhoto).where(ReportPhoto.report_id == report_id).order_by(ReportPhoto.id))
    )


def get_photo(session: Session, *, photo_id: int, by: User | None) -> tuple[ReportPhoto, Report]:
    """A photo and its report, when the viewer may see it: staff of the report, or anyone for a public,
    non-anonymous report (the "after" photos of an anonymous report are public too)."""
    photo = session.get(ReportPhoto, photo_id)
    report = session.get(Report, photo.report_id) if photo else None
    if photo is None or report is None:
        raise NotFound(_("There is no such photo."))
    if by is not None and can_view(by, report):
        return photo, report
    if is_public(report) and (not report.anonymous or photo.kind == PhotoKind.AFTER.value):
        return photo, report
    raise NotFound(_("There is no such photo."))


def _public_filters(
    statement: sa.Select,
    *,
    category_id: int | None = None,
    status: str | None = None,
    kecamatan_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> sa.Select:
    statement = statement.where(Report.confidential.is_(False), Report.hidden.is_(False))
    if category_id is not None:
        statement = statement.where(Report.category_id == category_id)
    if status == "open":
        statement = statement.where(Report.status.in_([s.value for s in OPEN_STATUSES]))
    elif status == "closed":
        statement = statement.where(Report.status.in_([s.value for s in CLOSED_STATUSES]))
    elif status:
        statement = statement.where(Report.status == status)
    if kecamatan_code:
        statement = statement.where(Report.kecamatan_code == kecamatan_code)
    if since is not None:
        statement = statement.where(Report.created_at >= since)
    if until is not None:
        statement = statement.where(Report.created_at < until)
    return statement


def list_public_reports(
    session: Session,
    *,
    settings: Settings,
    page: PageRequest,
    category_id: int | None = None,
    status: str | None = None,
    kecamatan_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    locale: str | None = None,
) -> Paged[PublicReport]:
    """The public list of reports, newest first, as `public_report` shows each."""
    statement = _public_filters(
        sa.select(Report), category_id=category_id, status=status, kecamatan_code=kecamatan_code, since=since,
        until=until,
    ).order_by(Report.created_at.desc(), Report.id.desc())  # fmt: skip
    result = paginate(session, statement, page)
    return Paged(
        items=[public_report(session, settings=settings, report=report, locale=locale) for report in result.items],
        total=result.total,
        page=result.page,
        per_page=result.per_page,
    )


def nearby_open_reports(
    session: Session, *, settings: Settings, category_id: int, lat: float, lon: float, limit: int = 10,
    locale: str | None = None,
) -> list[tuple[PublicReport, float]]:  # fmt: skip
    """Open public reports of the same category within the category's duplicate radius, nearest first, with the
    distance in metres: the citizen may follow one of them instead of sending the same problem again."""
    try:
        category = get_category(session, category_id=category_id)
    except NotFound:
        raise _invalid(_("Unknown report category."), "category", "unknown") from None
    radius = category.duplicate_radius_m
    if radius <= 0:
        return []
    dlat = radius / 111_320
    dlon = radius / (111_320 * max(math.cos(math.radians(lat)), 0.01))
    rows = session.scalars(
        _public_filters(sa.select(Report), category_id=category_id, status="open")
        .where(
            Report.lat.between(lat - dlat, lat + dlat),
            Report.lon.between(lon - dlon, lon + dlon),
            Report.anonymous.is_(False),
        )
        .limit(200)
    ).all()
    found = []
    for report in rows:
        distance = _metres(lat, lon, report.public_lat, report.public_lon)
        if distance <= radius:
            found.append((report, distance))
    found.sort(key=lambda item: item[1])
    return [
        (public_report(session, settings=settings, report=report, locale=locale), round(distance, 1))
        for report, distance in found[:limit]
    ]


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


INBOX_SORTS = ("due", "-created", "created", "-updated")


def list_inbox(
    session: Session,
    *,
    by: User,
    page: PageRequest,
    status: str | None = None,
    kecamatan_code: str | None = None,
    category_id: int | None = None,
    agency_id: int | None = None,
    assignee_id: int | None = None,
    overdue: bool = False,
    q: str | None = None,
    sort: str = "due",
    now: datetime | None = None,
) -> Paged[Report]:
    """The staff inbox: every report for Diskominfo and the command center, only its own OPD's for an OPD."""
    statement = sa.select(Report)
    if not can_triage(by):
        if not accounts.user_can(by, Permission.REPORTS_HANDLE) or by.agency_id is None:
            raise PermissionDenied(_("Your account does not handle citizen reports."))
        statement = statement.where(Report.agency_id == by.agency_id)
    elif agency_id is not None:
        statement = statement.where(Report.agency_id == agency_id)
    if status == "open":
        statement = statement.where(Report.status.in_([s.value for s in OPEN_STATUSES]))
    elif status:
        if status not in {s.value for s in ReportStatus}:
            raise _invalid(_("Unknown status."), "status", "unknown")
        statement = statement.where(Report.status == status)
    if kecamatan_code:
        statement = statement.where(Report.kecamatan_code == kecamatan_code)
    if category_id is not None:
        statement = statement.where(Report.category_id == category_id)
    if assignee_id is not None:
        statement = statement.where(Report.assignee_id == assignee_id)
    due = sa.case(
        (Report.status == ReportStatus.BARU.value, Report.verify_due_at),
        (Report.status == ReportStatus.DIDISPOSISIKAN.value, Report.follow_up_due_at),
        (Report.status == ReportStatus.DITINDAKLANJUTI.value, Report.resolve_due_at),
        else_=None,
    )
    if overdue:
        statement = statement.where(due < (now or utcnow()))
    if q:
        text = q.strip().upper()
        statement = statement.where(
            sa.or_(Report.tracking_code == text, Report.description.ilike(accounts.like_pattern(q.strip())))
        )
    if sort == "due":
        statement = statement.order_by(due.is_(None), due, Report.id)
    elif sort == "created":
        statement = statement.order_by(Report.created_at, Report.id)
    elif sort == "-updated":
        statement = statement.order_by(Report.updated_at.desc(), Report.id.desc())
    else:
        statement = statement.order_by(Report.created_at.desc(), Report.id.desc())
    return paginate(session, statement, page)


def list_assignable_staff(session: Session, *, report: Report) -> list[User]:
    """Active staff of the report's OPD, who may be assigned to it."""
    if report.agency_id is None:
        return []
    return list(
        session.scalars(
            sa.select(User).where(User.agency_id == report.agency_id, User.active.is_(True)).order_by(User.username)
        )
    )


# --- response templates ------------------------------------------------------------------------------------------


def list_response_templates(session: Session, *, by: User) -> list[ResponseTemplate]:
    """Templates the user may start a response from: their OPD's and the shared ones."""
    statement = sa.select(ResponseTemplate).order_by(ResponseTemplate.title)
    if not can_triage(by):
        statement = statement.where(
            sa.or_(ResponseTemplate.agency_id.is_(None), ResponseTemplate.agency_id == by.agency_id)
        )
    return list(session.scalars(statement))


def _require_template_editor(by: User, agency_id: int | None) -> None:
    if can_triage(by):
        return
    if by.role == Role.OPD_ADMIN.value and agency_id is not None and agency_id == by.agency_id:
        return
    raise PermissionDenied(_("Only Diskominfo, or an OPD's admin for its own OPD, may edit response templates."))


def save_response_template(
    session: Session, *, by: User, actor: Actor, template_id: int | None = None, agency_id: int | None,
    title: str | None, body: str | None,
) -> ResponseTemplate:  # fmt: skip
    """Create (no `template_id`) or change a response template."""
    if not can_triage(by) and agency_id is None:
        agency_id = by.agency_id
    _require_template_editor(by, agency_id)
    if agency_id is not None:
        _existing_agency(session, agency_id)
    title = clean_text(title, field="title", label=_("Title"), max_length=120, required=True)
    body = clean_text(body, field="body", label=_("Text"), max_length=NOTE_MAX, required=True)
    if template_id is None:
        template = ResponseTemplate(agency_id=agency_id, title=title, body=body)
        session.add(template)
        before = None
    else:
        template = session.get(ResponseTemplate, template_id)
        if template is None:
            raise NotFound(_("There is no such response template."))
        _require_template_editor(by, template.agency_id)
        before = snapshot(template)
        template.agency_id, template.title, template.body = agency_id, title, body
    session.flush()
    record_change(
        session, actor=actor, action="report_template.save", entity_type="report_template", entity_id=template.id,
        before=before, after=snapshot(template),
    )  # fmt: skip
    return template


def delete_response_template(session: Session, *, by: User, actor: Actor, template_id: int) -> None:
    """Remove a response template."""
    template = session.get(ResponseTemplate, template_id)
    if template is None:
        raise NotFound(_("There is no such response template."))
    _require_template_editor(by, template.agency_id)
    before = snapshot(template)
    session.delete(template)
    session.flush()
    record_change(
        session, actor=actor, action="report_template.delete", entity_type="report_template", entity_id=template_id,
        before=before,
    )  # fmt: skip


# --- public rows in bulk (Open311 lists) ---------------------------------------------------------------------------
# `public_report` reads one report through the ORM, a few queries each; a list of a thousand would cost thousands.
# `public_rows` reads only the needed columns with Core and resolves names once per call, and it applies the SAME
# field rules as `public_report` (`public_fields`, `photo_is_public`, `is_public` as `_public_filters`): the privacy
# rules live in one place, and a change to them changes every public view at once.

# Timeline entries whose public note explains the report's current status (a rating comment does not).
STATUS_NOTE_KINDS = frozenset(set(UpdateKind) - INTERNAL_KINDS - {UpdateKind.SUBMITTED, UpdateKind.RATED})
_STATUSES = {status.value: status for status in ReportStatus}


def public_fields(
    *, anonymous: bool, description: str | None, address: str | None, lat: float, lon: float, public_lat: float,
    public_lon: float, status: ReportStatus, resolve_due_at: datetime | str | None, full: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The privacy rule of a report's public fields: an anonymous report shows neither its text, its address nor
    its exact place (only its desa's centre) unless `full` (the reporter with the PIN). Used by `public_report`
    and `public_rows`."""
    withheld = anonymous and not full
    return {
        "description": None if withheld else description,
        "address": None if withheld else address,
        "lat": lat if full else public_lat,
        "lon": lon if full else public_lon,
        "location_approximate": withheld,
        "expected_at": resolve_due_at if status.is_open else None,
    }


def photo_is_public(*, kind: str, anonymous: bool, full: bool = False) -> bool:
    """Whether the public sees a photo: all of a named report's, only the "after" photos of an anonymous one."""
    return not anonymous or full or kind == PhotoKind.AFTER.value


def photo_path(photo_id: int) -> str:
    """The public path of a report photo (re-encoded, without metadata)."""
    return f"/media/laporan/{photo_id}.jpg"


@dataclass(slots=True)
class PublicRow:
    """A report as the public sees it, for lists: `public_report`'s fields that lists need, plus the latest public
    note on its status and its first public photo."""

    tracking_code: str
    category_code: str
    category_name: str
    status: ReportStatus
    description: str | None
    address: str | None
    lat: float
    lon: float
    location_approximate: bool
    agency: str | None
    # W3C date-times in the regency's zone, as the database formats them (e.g. 2026-03-02T09:15:00+07:00).
    created_at: str
    updated_at: str
    expected_at: str | None
    status_note: str | None
    photo_path: str | None


def _id_in(session: Session, column: Any, ids: list[int]) -> Any:
    """`column IN ids` with one parameter instead of a thousand to render and parse (a quarter of an Open311 list's
    time, bench/open311_list.py): `= ANY(array)` on PostgreSQL, a JSON array read by `json_each` on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.Integer)))
    members = sa.func.json_each(sa.bindparam("ids", json.dumps(ids), type_=sa.String)).table_valued("value")
    return column.in_(sa.select(members.c.value))


def public_rows(
    session: Session,
    *,
    settings: Settings,
    locale: str | None = None,
    codes: list[str] | None = None,
    category_ids: list[int] | None = None,
    statuses: set[ReportStatus] | frozenset[ReportStatus] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
    asset_id: int | None = None,
) -> list[PublicRow]:
    """Public reports, newest first, at most `limit`: those with the given tracking codes, categories and
    statuses, submitted between `start` and `end` (both inclusive), about the asset `asset_id`. Confidential and
    hidden reports never."""
    locale = locale or get_locale()
    dialect = session.get_bind().dialect.name
    offset = settings.zone.utcoffset(datetime.now()) or timedelta(0)
    statement = _public_filters(
        sa.select(
            Report.id, Report.tracking_code, Report.category_id, Report.status, Report.anonymous,
            Report.description, Report.address, Report.lat, Report.lon, Report.public_lat, Report.public_lon,
            Report.agency_id, *(w3c_text(column, dialect=dialect, offset=offset)
                                for column in (Report.created_at, Report.updated_at, Report.resolve_due_at)),
        )
    )  # fmt: skip
    if codes is not None:
        statement = statement.where(Report.tracking_code.in_([code.strip().upper() for code in codes]))
    if category_ids is not None:
        statement = statement.where(Report.category_id.in_(category_ids))
    if statuses is not None:
        statement = statement.where(Report.status.in_([status.value for status in statuses]))
    if start is not None:
        statement = statement.where(Report.created_at >= start)
    if end is not None:
        statement = statement.where(Report.created_at <= end)
    if asset_id is not None:
        statement = statement.where(Report.asset_id == asset_id)
    # Core on the session's connection: the ORM's handling of a thousand rows costs more than the query.
    connection = session.connection()
    rows = connection.execute(statement.order_by(Report.created_at.desc(), Report.id.desc()).limit(limit)).all()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    categories = {
        category.id: (category.code, category_name(category, locale))
        for category in session.execute(
            sa.select(ReportCategory.id, ReportCategory.code, ReportCategory.name_id, ReportCategory.name_en)
        )
    }
    agency_names = agencies.agency_names(session)
    # The latest public note of each: read in time order, so the last one kept per report is the latest.
    notes = dict(
        connection.execute(
            sa.select(ReportUpdate.report_id, ReportUpdate.public_note)
            .where(
                _id_in(session, ReportUpdate.report_id, ids),
                ReportUpdate.public_note.is_not(None),
                ReportUpdate.kind.in_([kind.value for kind in STATUS_NOTE_KINDS]),
            )
            .order_by(ReportUpdate.created_at, ReportUpdate.id)
        ).all()
    )
    anonymous = {row[0]: row[4] for row in rows}
    photos: dict[int, str] = {}
    for photo_id, report_id, kind in connection.execute(
        sa.select(ReportPhoto.id, ReportPhoto.report_id, ReportPhoto.kind)
        .where(_id_in(session, ReportPhoto.report_id, ids))
        .order_by(ReportPhoto.id)
    ):
        if report_id not in photos and photo_is_public(kind=kind, anonymous=anonymous[report_id]):
            photos[report_id] = photo_path(photo_id)
    result = []
    # Rows unpacked as tuples: a thousand of them, where attribute access on each would cost more than the rest.
    for (
        report_id, tracking_code, category_id, status_value, is_anonymous, description, address, lat, lon,
        public_lat, public_lon, agency_id, created_at, updated_at, resolve_due_at,
    ) in rows:  # fmt: skip
        status = _STATUSES[status_value]
        category_code, name = categories.get(category_id, ("", ""))
        fields = public_fields(
            anonymous=is_anonymous, description=description, address=address, lat=lat, lon=lon,
            public_lat=public_lat, public_lon=public_lon, status=status, resolve_due_at=resolve_due_at,
        )  # fmt: skip
        result.append(
            PublicRow(
                tracking_code=tracking_code,
                category_code=category_code,
                category_name=name,
                status=status,
                agency=agency_names.get(agency_id) if agency_id else None,
                created_at=created_at,
                updated_at=updated_at,
                status_note=notes.get(report_id),
                photo_path=photos.get(report_id),
                **fields,
            )
        )
    return result


def categories_changed_at(session: Session) -> datetime | None:
    """When a report category last changed (the Open311 discovery `changeset`)."""
    return session.scalar(sa.select(sa.func.max(ReportCategory.updated_at)))


# --- public counts (the beranda card) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicReportCounts:
    """Public reports still being handled, and those resolved this month."""

    open: int
    resolved_this_month: int


def count_public_reports(session: Session, *, settings: Settings, now: datetime | None = None) -> PublicReportCounts:
    """How many public reports are open now, and how many were resolved since the 1st of this month (local time);
    confidential and hidden reports are not counted."""
    local = (now or utcnow()).astimezone(settings.zone)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    is_open = Report.status.in_([status.value for status in OPEN_STATUSES])
    resolved = sa.and_(Report.status == ReportStatus.SELESAI.value, Report.resolved_at >= month_start)
    row = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((is_open, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((resolved, 1), else_=0)), 0),
        ).where(Report.confidential.is_(False), Report.hidden.is_(False), sa.or_(is_open, resolved))
    ).one()
    return PublicReportCounts(open=int(row[0]), resolved_this_month=int(row[1]))


def list_open_report_points(
    session: Session,
    *,
    groups: list[str],
    since: datetime,
    until: datetime,
    excluded_ids: sa.Select | None = None,
    limit: int,
) -> list[sa.Row]:
    """The newest open, visible reports of the category groups made in [since, until], as (id, lat, lon, desa_code,
    kecamatan_code, created_at, category code) rows: positions and places only, never the reporter's details."""
    statement = (
        sa.select(
            Report.id,
            Report.lat,
            Report.lon,
            Report.desa_code,
            Report.kecamatan_code,
            Report.created_at,
            ReportCategory.code,
        )  # fmt: skip
        .join(ReportCategory, ReportCategory.id == Report.category_id)
        .where(
            ReportCategory.group.in_(groups),
            Report.status.in_([status.value for status in OPEN_STATUSES]),
            Report.created_at >= since,
            Report.created_at <= until,
            Report.hidden.is_(False),
        )
        .order_by(Report.created_at.desc(), Report.id.desc())
        .limit(limit)
    )
    if excluded_ids is not None:
        statement = statement.where(Report.id.not_in(excluded_ids))
    return list(session.execute(statement))


def report_summaries(session: Session, *, report_ids: list[int]) -> list[sa.Row]:
    """(id, tracking_code, status, category name_id, name_en, desa_code, created_at) of the given reports."""
    if not report_ids:
        return []
    statement = (
        sa.select(
            Report.id,
            Report.tracking_code,
            Report.status,
            ReportCategory.name_id,
            ReportCategory.name_en,
            Report.desa_code,
            Report.created_at,
        )  # fmt: skip
        .join(ReportCategory, ReportCategory.id == Report.category_id)
        .where(Report.id.in_(sorted(report_ids)))
    )
    return list(session.execute(statement))
