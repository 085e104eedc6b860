"""Pydantic models of the reports domain: what the public sees, what staff see, and what the API accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kotacerdas.db import MAX_INT_ID
from kotacerdas.pagination import Page
from kotacerdas.reports.enums import ReportStatus, ReportType, UpdateKind


class RegionName(BaseModel):
    """A desa or kecamatan by code and name."""

    code: str
    name: str


class PublicPhoto(BaseModel):
    """A photo of a report, re-encoded without metadata."""

    kind: str = Field(description="`report` (sent with the report) or `after` (the work done)")
    url: str
    thumb_url: str
    width: int
    height: int


class PublicUpdate(BaseModel):
    """One public entry of a report's timeline, signed by the OPD (never by a staff member's name)."""

    kind: UpdateKind
    label: str
    status: ReportStatus | None
    status_label: str | None
    note: str | None
    agency: str | None
    at: datetime


class PublicReport(BaseModel):
    """A report as the public sees it: no reporter's contact details, no internal notes; an anonymous report
    without its text, address and exact place (`lat`/`lon` are then its desa's centre)."""

    tracking_code: str = Field(examples=["MR-2026-000123"])
    category_code: str
    category_name: str
    group: str
    type: ReportType
    status: ReportStatus
    status_label: str
    status_colour: str
    open: bool
    description: str | None
    address: str | None
    lat: float
    lon: float
    location_approximate: bool = Field(description="True when the position is the desa's centre, not the exact place")
    anonymous: bool
    desa: RegionName | None
    kecamatan: RegionName | None
    agency: str | None = Field(description="The OPD responsible for the report")
    created_at: datetime
    updated_at: datetime
    expected_at: datetime | None = Field(description="When it is due to be resolved (the SLA), while open")
    next_deadline: datetime | None
    follow_up_plan: str | None
    resolution_note: str | None
    close_reason: str | None
    duplicate_of: str | None = Field(description="Tracking code of the report this one duplicates")
    rating: int | None
    photos: list[PublicPhoto]
    timeline: list[PublicUpdate] = Field(default_factory=list)


PublicReportPage = Page[PublicReport]


class ReportSubmit(BaseModel):
    """A new report from a citizen. Photos are base64 (or `data:image/...;base64,` URLs), JPEG, PNG or WebP."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9-]+$",
        description="Category code (see /api/v1/report-categories)",
    )
    type: ReportType = ReportType.PENGADUAN
    description: str = Field(max_length=4000, description="What is wrong, at least 10 characters")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = Field(None, max_length=300)
    name: str | None = Field(None, max_length=120)
    email: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=30)
    anonymous: bool = Field(False, description="Hide the text and the exact place from the public")
    confidential: bool = Field(False, description="Hide the whole report from the public")
    attributes: dict[str, Any] | None = Field(None, description="Answers to the category's extra questions")
    photos: list[str] = Field(default_factory=list, max_length=3, description="Up to 3 photos, base64")
    asset_id: int | None = Field(
        None, ge=1, le=MAX_INT_ID, description="The asset the report is about (see /api/v1/assets/nearby)"
    )
    website: str | None = Field(None, description="Leave empty (spam trap)")


class ReportSubmitted(BaseModel):
    """The answer to a submitted report: keep the tracking code and the PIN (needed to reopen or rate)."""

    tracking_code: str
    pin: str = Field(description="Shown once; needed to reopen or rate the report")
    url: str
    report: PublicReport


class NearbyReport(BaseModel):
    """An open report of the same category near a place, for the citizen to follow instead."""

    distance_m: float
    report: PublicReport


class ReporterAction(BaseModel):
    """The reporter's PIN and the reason for reopening."""

    model_config = ConfigDict(extra="forbid")

    pin: str = Field(min_length=1, max_length=20)
    reason: str = Field(max_length=1000)


class RatingIn(BaseModel):
    """The reporter's rating of a resolved report."""

    model_config = ConfigDict(extra="forbid")

    pin: str = Field(min_length=1, max_length=20)
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=1000)


class FollowIn(BaseModel):
    """Follow a report's updates by email (a confirmation link is sent first)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=200)


class CategoryAttribute(BaseModel):
    """An extra question of a category (an Open311 service-definition attribute)."""

    code: str
    datatype: str
    required: bool
    description_id: str
    description_en: str
    values: list[dict[str, str]] = Field(default_factory=list)


class CategoryRead(BaseModel):
    """A report category."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name_id: str
    name_en: str
    description_id: str | None
    description_en: str | None
    group: str
    agency_id: int | None
    sla_tier: str
    resolution_days: int
    photo_required: bool
    duplicate_radius_m: int
    attributes: list[CategoryAttribute]
    position: int
    active: bool


# Names and questions are single lines: no control characters (PostgreSQL's JSONB refuses NUL outright).
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"


class CategoryChoiceIn(BaseModel):
    """One answer of a list question."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=40, pattern=_ONE_LINE)
    name_id: str = Field(min_length=1, max_length=120, pattern=_ONE_LINE)
    name_en: str | None = Field(None, max_length=120, pattern=_ONE_LINE)


class CategoryAttributeIn(BaseModel):
    """An extra question of a category (an Open311 service-definition attribute), as an admin sends it."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=40, description="Lowercase letters, digits and underscores, starting with a letter")
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"] = "string"
    required: bool = False
    description_id: str = Field(max_length=300)
    description_en: str | None = Field(None, max_length=300)
    values: list[CategoryChoiceIn] = Field(default_factory=list, max_length=100, description="Choices of a list")


class CategoryCreate(BaseModel):
    """A new report category."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=40)
    name_id: str = Field(max_length=120)
    name_en: str | None = Field(None, max_length=120)
    description_id: str | None = Field(None, max_length=500)
    description_en: str | None = Field(None, max_length=500)
    group: str
    agency_id: int | None = Field(None, ge=1, le=MAX_INT_ID)
    sla_tier: str
    resolution_days: int | None = Field(None, ge=1, le=365)
    photo_required: bool = False
    duplicate_radius_m: int = Field(100, ge=0, le=5000)
    attributes: list[CategoryAttributeIn] = Field(default_factory=list, max_length=20)
    position: int = Field(0, ge=0, le=10_000)
    active: bool = True


class CategoryUpdate(BaseModel):
    """Changes to a report category; only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(None, max_length=40)
    name_id: str | None = Field(None, max_length=120)
    name_en: str | None = Field(None, max_length=120)
    description_id: str | None = Field(None, max_length=500)
    description_en: str | None = Field(None, max_length=500)
    group: str | None = None
    agency_id: int | None = Field(None, ge=1, le=MAX_INT_ID)
    sla_tier: str | None = None
    resolution_days: int | None = Field(None, ge=1, le=365)
    photo_required: bool | None = None
    duplicate_radius_m: int | None = Field(None, ge=0, le=5000)
    attributes: list[CategoryAttributeIn] | None = Field(None, max_length=20)
    position: int | None = Field(None, ge=0, le=10_000)
    active: bool | None = None


class StaffUpdate(BaseModel):
    """A timeline entry as staff see it, internal notes included."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: UpdateKind
    status_from: ReportStatus | None
    status_to: ReportStatus | None
    public_note: str | None
    internal_note: str | None
    agency_id: int | None
    actor_label: str
    created_at: datetime


class Reporter(BaseModel):
    """The reporter's contact details; only for staff with the reports.contact permission."""

    name: str | None
    email: str | None
    phone: str | None


class StaffReport(BaseModel):
    """A report as its handlers see it."""

    id: int
    tracking_code: str
    category_id: int
    type: ReportType
    status: ReportStatus
    source: str
    description: str
    address: str | None
    lat: float
    lon: float
    desa_code: str | None
    kecamatan_code: str | None
    agency_id: int | None
    assignee_id: int | None
    anonymous: bool
    confidential: bool
    hidden: bool
    hidden_reason: str | None
    duplicate_of_id: int | None
    asset_id: int | None = Field(None, description="The asset (road, bridge, facility) the report is about")
    attributes: dict[str, Any] | None
    follow_up_plan: str | None
    resolution_note: str | None
    close_reason: str | None
    rating: int | None
    rating_comment: str | None
    created_at: datetime
    updated_at: datetime
    verify_due_at: datetime
    follow_up_due_at: datetime | None
    resolve_due_at: datetime | None
    verify_breached_at: datetime | None
    follow_up_breached_at: datetime | None
    resolve_breached_at: datetime | None
    reporter: Reporter | None = Field(None, description="Only with the reports.contact permission")


StaffReportPage = Page[StaffReport]


class StaffReportDetail(StaffReport):
    """A report with its whole timeline, as its handlers see it."""

    timeline: list[StaffUpdate]


class NoteIn(BaseModel):
    """A note or reason for a workflow step."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=4000)


class ReasonIn(BaseModel):
    """A required reason."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=1000)


class DisposeIn(BaseModel):
    """Where to send a report; the category's OPD when empty."""

    model_config = ConfigDict(extra="forbid")

    agency_id: int | None = Field(None, ge=1, le=MAX_INT_ID)
    note: str | None = Field(None, max_length=4000)


class RedisposeIn(BaseModel):
    """Move a report to another OPD."""

    model_config = ConfigDict(extra="forbid")

    agency_id: int = Field(ge=1, le=MAX_INT_ID)
    reason: str = Field(max_length=1000)


class PlanIn(BaseModel):
    """The OPD's follow-up plan."""

    model_config = ConfigDict(extra="forbid")

    plan: str = Field(max_length=4000)


class ResolveIn(BaseModel):
    """How the report was resolved, with optional "after" photos (base64)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(max_length=4000)
    photos: list[str] = Field(default_factory=list, max_length=3)


class DuplicateIn(BaseModel):
    """The report this one duplicates."""

    model_config = ConfigDict(extra="forbid")

    master_code: str = Field(max_length=24)
    reason: str | None = Field(None, max_length=1000)


class AssignIn(BaseModel):
    """The staff member to give the report to (null takes it back)."""

    model_config = ConfigDict(extra="forbid")

    assignee_id: int | None = Field(None, ge=1, le=MAX_INT_ID)


class CommentIn(BaseModel):
    """A note on the timeline: public (a response) or internal."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(max_length=4000)
    public: bool = False


class HideIn(BaseModel):
    """Hide a report from the public, or show it again."""

    model_config = ConfigDict(extra="forbid")

    hidden: bool
    reason: str | None = Field(None, max_length=1000)


class BulkIn(BaseModel):
    """Verify or dispose many reports at once."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(pattern="^(verify|dispose)$")
    report_ids: list[Annotated[int, Field(ge=1, le=MAX_INT_ID)]] = Field(min_length=1, max_length=200)
    agency_id: int | None = Field(None, ge=1, le=MAX_INT_ID)


class TemplateIn(BaseModel):
    """A response template."""

    model_config = ConfigDict(extra="forbid")

    agency_id: int | None = Field(None, ge=1, le=MAX_INT_ID)
    title: str = Field(max_length=120)
    body: str = Field(max_length=4000)


class TemplateRead(BaseModel):
    """A response template."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    agency_id: int | None
    title: str
    body: str


class FollowAccepted(BaseModel):
    """The answer to a follow request: the same whether or not the address already follows the report."""

    detail: str


class PointGeometry(BaseModel):
    """A GeoJSON point, [longitude, latitude] (RFC 7946)."""

    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=3)


class MapFeature(BaseModel):
    """A cluster (`cluster: true`, `count`) or one public report (`tracking_code`, `category_code`, `status`,
    `status_colour`, `url`) at its public position."""

    type: Literal["Feature"]
    geometry: PointGeometry
    properties: dict[str, Any]


class MapFeatureCollection(BaseModel):
    """Public reports in a map viewport, clustered by zoom (RFC 7946)."""

    type: Literal["FeatureCollection"]
    features: list[MapFeature]


class FigureRowRead(BaseModel):
    """Handling figures of one group of reports (an OPD, category, kecamatan or month)."""

    model_config = ConfigDict(from_attributes=True)

    key: str = Field(description="OPD id, category code, kecamatan code or YYYY-MM; `none` for no OPD/kecamatan")
    label: str
    counts: dict[str, int] = Field(description="Reports per status")
    total: int
    open: int
    verified_in_sla_pct: float | None
    followed_up_in_sla_pct: float | None
    resolved_in_sla_pct: float | None
    median_verify_hours: float | None
    median_follow_up_hours: float | None
    median_resolve_hours: float | None
    avg_rating: float | None
    rated: int
