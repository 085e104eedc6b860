"""Tables of the assets domain: asset types, assets, their external ids, inspections, photos and the condition
updates proposed from resolved citizen reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kotacerdas.db import Base, JSONType, UTCDateTime, utcnow


class AssetType(Base):
    """A kind of asset (jalan, jembatan, sekolah …): how it is drawn, which condition scale it is rated on, the OPD
    that owns new ones by default, and the JSON Schema its `attributes` must satisfy."""

    __tablename__ = "asset_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name_id: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))
    geometry_kind: Mapped[str] = mapped_column(sa.String(10))  # GeometryKind
    condition_scale: Mapped[str] = mapped_column(sa.String(12))  # ConditionScale
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="SET NULL"))
    # A JSON Schema (draft 2020-12) object for the type's attributes, e.g. a road's surface and width.
    attribute_schema: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Asset(Base):
    """One road segment, bridge, school, street light … with its place, owner OPD and current condition.

    `geometry` is the GeoJSON geometry (WGS 84) as text; `lat`/`lon` is a point on it (the point itself, or the
    middle of a line) and the `min_*`/`max_*` columns its bounding box, in indexed plain columns so that both
    databases can select a viewport without a spatial extension. The current condition is the latest inspection's.
    """

    __tablename__ = "assets"
    __table_args__ = (
        sa.Index("ix_assets_type_id_condition", "type_id", "condition"),
        sa.Index("ix_assets_kecamatan_code_type_id", "kecamatan_code", "type_id"),
        sa.Index("ix_assets_agency_id_type_id", "agency_id", "type_id"),
        sa.Index("ix_assets_min_lon_min_lat", "min_lon", "min_lat"),
        sa.Index("ix_assets_lat_lon", "lat", "lon"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("asset_types.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    address: Mapped[str | None] = mapped_column(sa.String(300))
    agency_id: Mapped[int] = mapped_column(sa.ForeignKey("agencies.id", ondelete="RESTRICT"))
    geometry: Mapped[str] = mapped_column(sa.Text)
    lat: Mapped[float] = mapped_column(sa.Float)
    lon: Mapped[float] = mapped_column(sa.Float)
    min_lat: Mapped[float] = mapped_column(sa.Float)
    min_lon: Mapped[float] = mapped_column(sa.Float)
    max_lat: Mapped[float] = mapped_column(sa.Float)
    max_lon: Mapped[float] = mapped_column(sa.Float)
    length_km: Mapped[float | None] = mapped_column(sa.Float)  # lines only, geodesic
    desa_code: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    kecamatan_code: Mapped[str | None] = mapped_column(sa.String(20))
    locate_method: Mapped[str] = mapped_column(sa.String(20))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    condition: Mapped[str | None] = mapped_column(sa.String(20))  # Condition; None until inspected
    condition_on: Mapped[date | None] = mapped_column(sa.Date)  # the date of the inspection it comes from
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AssetExternalId(Base):
    """An asset's number in another inventory (SIMBADA, NPSN, a road's kode ruas …): imports upsert by it."""

    __tablename__ = "asset_external_ids"
    __table_args__ = (sa.UniqueConstraint("system", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(sa.String(40))
    value: Mapped[str] = mapped_column(sa.String(100))


class AssetInspection(Base):
    """A dated condition reading of an asset; the latest by `inspected_on` (then id) is the asset's condition."""

    __tablename__ = "asset_inspections"
    __table_args__ = (sa.Index("ix_asset_inspections_asset_id_inspected_on", "asset_id", "inspected_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("assets.id", ondelete="CASCADE"))
    inspected_on: Mapped[date] = mapped_column(sa.Date)
    inspector: Mapped[str] = mapped_column(sa.String(120))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    condition: Mapped[str] = mapped_column(sa.String(20))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    # Where the reading came from: an inspection, an import, or an accepted proposal from a citizen report.
    source: Mapped[str] = mapped_column(sa.String(20), default="inspection")
    report_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reports.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssetPhoto(Base):
    """A photo of an asset (re-encoded without metadata, as report photos are), usually of an inspection."""

    __tablename__ = "asset_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    inspection_id: Mapped[int | None] = mapped_column(sa.ForeignKey("asset_inspections.id", ondelete="SET NULL"))
    file_key: Mapped[str] = mapped_column(sa.String(200))
    thumb_key: Mapped[str] = mapped_column(sa.String(200))
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssetConditionProposal(Base):
    """A condition update proposed when a citizen report linked to the asset is resolved; the owner OPD accepts it
    (which records an inspection) or rejects it."""

    __tablename__ = "asset_condition_proposals"
    __table_args__ = (sa.Index("ix_asset_condition_proposals_asset_id_status", "asset_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("assets.id", ondelete="CASCADE"))
    report_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reports.id", ondelete="SET NULL"))
    condition: Mapped[str] = mapped_column(sa.String(20))
    note: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")  # ProposalStatus
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    inspection_id: Mapped[int | None] = mapped_column(sa.ForeignKey("asset_inspections.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
