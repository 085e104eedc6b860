"""Tables of the regions domain."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kotacerdas.db import Base, UTCDateTime, utcnow


class Region(Base):
    """A kabupaten/kota, kecamatan, desa or kelurahan, keyed by its Kemendagri code."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    level: Mapped[str] = mapped_column(sa.String(12), index=True)
    # The kabupaten's parent is its province, which is not stored: no foreign key on purpose.
    parent_code: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    centroid_lat: Mapped[float | None] = mapped_column(sa.Float)
    centroid_lon: Mapped[float | None] = mapped_column(sa.Float)
    min_lat: Mapped[float | None] = mapped_column(sa.Float)
    min_lon: Mapped[float | None] = mapped_column(sa.Float)
    max_lat: Mapped[float | None] = mapped_column(sa.Float)
    max_lon: Mapped[float | None] = mapped_column(sa.Float)
    # GeoJSON geometry text (EPSG:4326); exact geometry work happens in shapely, not in the database.
    geometry: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# What names a region and places it in the hierarchy, without its extent or boundary: where most reads start.
REGION_SUMMARY = (Region.code, Region.name, Region.level, Region.parent_code, Region.centroid_lat, Region.centroid_lon)
