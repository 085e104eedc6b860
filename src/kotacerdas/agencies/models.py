"""Tables of the agencies (OPD) domain."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kotacerdas.db import Base, UTCDateTime, utcnow


class Agency(Base):
    """A perangkat daerah (OPD): dinas, badan, sekretariat, kecamatan office, kelurahan/desa or UPT."""

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    short_name: Mapped[str] = mapped_column(sa.String(60), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(20), index=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agencies.id", ondelete="SET NULL"), index=True)
    region_code: Mapped[str | None] = mapped_column(sa.ForeignKey("regions.code", ondelete="SET NULL"))
    email: Mapped[str | None] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(40))
    address: Mapped[str | None] = mapped_column(sa.String(300))
    website: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
