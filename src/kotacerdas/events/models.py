"""Tables of the events domain: events, the regions they touch, their timeline, links, subscriptions and the
suggestions raised from clusters of citizen reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kotacerdas.db import Base, JSONType, UTCDateTime, utcnow


class Event(Base):
    """An incident, a hazard warning or a public activity, as BPBD and the command center publish it.

    `version` counts the published states: the CAP message of each is identified by the event and its version, and
    an update references the message before it."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_status_starts_at", "status", "starts_at"),
        sa.Index("ix_events_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(sa.String(40))
    level: Mapped[str | None] = mapped_column(sa.String(12))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text)
    instruction: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(12))
    source: Mapped[str] = mapped_column(sa.String(20))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The drawn area, GeoJSON text (a Polygon, MultiPolygon or Point, EPSG:4326); the desa are in event_areas.
    geometry: Mapped[str | None] = mapped_column(sa.Text)
    # Where the event is drawn on the map (the area's centre) and the extent of its area.
    lat: Mapped[float] = mapped_column(sa.Float)
    lon: Mapped[float] = mapped_column(sa.Float)
    min_lat: Mapped[float] = mapped_column(sa.Float)
    min_lon: Mapped[float] = mapped_column(sa.Float)
    max_lat: Mapped[float] = mapped_column(sa.Float)
    max_lon: Mapped[float] = mapped_column(sa.Float)
    # Impact figures in the BPBD format (enums.IMPACT_FIELDS): {"kk": 120, "jiwa": 430, ...}.
    impacts: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    approved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventArea(Base):
    """A desa or kecamatan an event touches; a desa brings its kecamatan along, so either filter finds it."""

    __tablename__ = "event_areas"
    __table_args__ = (sa.Index("ix_event_areas_region_code_event_id", "region_code", "event_id"),)

    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    region_code: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    # True for a region named by the publisher; False for a kecamatan added because one of its desa was named.
    named: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())


class EventUpdate(Base):
    """One line of an event's public timeline: what changed, and the note the public sees."""

    __tablename__ = "event_updates"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(12))
    version: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(12))
    level: Mapped[str | None] = mapped_column(sa.String(12))
    note: Mapped[str | None] = mapped_column(sa.Text)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventLink(Base):
    """An event's link to a citizen report, an asset or a device."""

    __tablename__ = "event_links"

    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    target_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)


class EventSubscription(Base):
    """Who is told of events: a citizen's email (after double opt-in) or an integration's webhook endpoint, for some
    regions (empty: the whole kabupaten), categories (empty: all) and a minimum alert level."""

    __tablename__ = "event_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    email: Mapped[str | None] = mapped_column(sa.String(254), index=True)
    webhook_endpoint_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    region_codes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    min_level: Mapped[str | None] = mapped_column(sa.String(12))
    locale: Mapped[str] = mapped_column(sa.String(5), default="id", server_default="id")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventSuggestion(Base):
    """An event suggested to operators because open flood-type reports cluster in place and time."""

    __tablename__ = "event_suggestions"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    lat: Mapped[float] = mapped_column(sa.Float)
    lon: Mapped[float] = mapped_column(sa.Float)
    kecamatan_code: Mapped[str | None] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(12), default="open", server_default="open", index=True)
    event_id: Mapped[int | None] = mapped_column(sa.ForeignKey("events.id", ondelete="SET NULL"))
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
