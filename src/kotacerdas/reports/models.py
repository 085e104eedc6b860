"""Tables of the reports domain: categories, reports, their timeline, photos, followers and response templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kotacerdas.db import Base, JSONType, UTCDateTime, utcnow


class ReportCategory(Base):
    """A kind of problem citizens report, routed to its responsible OPD; its `code` is the Open311 service_code."""

    __tablename__ = "report_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name_id: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))
    description_id: Mapped[str | None] = mapped_column(sa.String(500))
    description_en: Mapped[str | None] = mapped_column(sa.String(500))
    group: Mapped[str] = mapped_column(sa.String(40))
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    sla_tier: Mapped[str] = mapped_column(sa.String(20))
    resolution_days: Mapped[int] = mapped_column(sa.Integer)
    photo_required: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    duplicate_radius_m: Mapped[int] = mapped_column(sa.Integer, default=100, server_default="100")
    # Extra questions, as Open311 service-definition attributes: [{code, datatype, required, description_id, ...}].
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Report(Base):
    """A citizen's report (pengaduan, aspirasi or permintaan informasi) and where it is in the workflow.

    The reporter's name, email, phone and, for an anonymous report, the exact position and text are personal data:
    public pages, the public API, Open311 and exports read the `public_*` columns and never these.
    """

    __tablename__ = "reports"
    __table_args__ = (
        sa.Index("ix_reports_status_created_at", "status", "created_at"),
        sa.Index("ix_reports_category_id_created_at", "category_id", "created_at"),
        sa.Index("ix_reports_category_id_lat", "category_id", "lat"),
        sa.Index("ix_reports_agency_id_status", "agency_id", "status"),
        sa.Index("ix_reports_client_key_created_at", "client_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_code: Mapped[str] = mapped_column(sa.String(24), unique=True)
    category_id: Mapped[int] = mapped_column(sa.ForeignKey("report_categories.id", ondelete="RESTRICT"))
    type: Mapped[str] = mapped_column(sa.String(24))
    status: Mapped[str] = mapped_column(sa.String(20))
    source: Mapped[str] = mapped_column(sa.String(10))
    description: Mapped[str] = mapped_column(sa.Text)
    address: Mapped[str | None] = mapped_column(sa.String(300))
    lat: Mapped[float] = mapped_column(sa.Float)
    lon: Mapped[float] = mapped_column(sa.Float)
    # Where the public sees the report: the exact point, or the desa's centre for an anonymous report.
    public_lat: Mapped[float] = mapped_column(sa.Float)
    public_lon: Mapped[float] = mapped_column(sa.Float)
    desa_code: Mapped[str | None] = mapped_column(sa.String(20))
    kecamatan_code: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    # The asset (road, bridge, facility) the report is about, when the citizen or staff picked one.
    asset_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assets.id", ondelete="SET NULL"), index=True)
    locate_method: Mapped[str] = mapped_column(sa.String(20))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="RESTRICT"))
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reports.id", ondelete="SET NULL"), index=True)
    reporter_name: Mapped[str | None] = mapped_column(sa.String(120))
    reporter_email: Mapped[str | None] = mapped_column(sa.String(200))
    reporter_phone: Mapped[str | None] = mapped_column(sa.String(30))
    reporter_locale: Mapped[str] = mapped_column(sa.String(5), default="id", server_default="id")
    # The reporter proves it is them (to reopen or rate) with a PIN shown once at submission; only its hash is kept.
    reporter_pin_hash: Mapped[str] = mapped_column(sa.String(64))
    # A keyed hash of the submitting address, for the per-address rate limit; the address itself is not kept.
    client_key: Mapped[str | None] = mapped_column(sa.String(64))
    anonymous: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    confidential: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    hidden: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    hidden_reason: Mapped[str | None] = mapped_column(sa.String(500))
    follow_up_plan: Mapped[str | None] = mapped_column(sa.Text)
    resolution_note: Mapped[str | None] = mapped_column(sa.Text)
    close_reason: Mapped[str | None] = mapped_column(sa.Text)
    rating: Mapped[int | None] = mapped_column(sa.SmallInteger)
    rating_comment: Mapped[str | None] = mapped_column(sa.String(1000))
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopen_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    followed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verify_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    follow_up_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a deadline was found missed; set once, so each breach escalates once.
    verify_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    follow_up_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReportUpdate(Base):
    """One entry of a report's timeline: a status change, a response or an internal note."""

    __tablename__ = "report_updates"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    status_from: Mapped[str | None] = mapped_column(sa.String(20))
    status_to: Mapped[str | None] = mapped_column(sa.String(20))
    public_note: Mapped[str | None] = mapped_column(sa.Text)
    internal_note: Mapped[str | None] = mapped_column(sa.Text)
    # The OPD the entry speaks for (shown publicly); the staff member is kept for the staff side only.
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportPhoto(Base):
    """A photo of a report, re-encoded without metadata; the files live in the uploads folder."""

    __tablename__ = "report_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    update_id: Mapped[int | None] = mapped_column(sa.ForeignKey("report_updates.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(sa.String(10))
    file_key: Mapped[str] = mapped_column(sa.String(200))
    thumb_key: Mapped[str] = mapped_column(sa.String(200))
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportFollower(Base):
    """An email address that follows a report's public updates, once confirmed (double opt-in)."""

    __tablename__ = "report_followers"
    __table_args__ = (sa.UniqueConstraint("report_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("reports.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(200))
    locale: Mapped[str] = mapped_column(sa.String(5), default="id")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResponseTemplate(Base):
    """A canned response staff can start from; for one OPD, or for all when `agency_id` is empty."""

    __tablename__ = "report_response_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(sa.String(120))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
