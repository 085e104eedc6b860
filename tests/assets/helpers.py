"""Values and small helpers shared by the assets tests."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor
from kotacerdas.agencies import service as agencies

INSIDE = (-3.06, 102.93)  # Muara Beliti area, inside Musi Rawas (as in tests/reports)
OUTSIDE = (-6.2, 106.8)  # Jakarta
REPORTER = {"name": "Siti Rahmawati", "email": "siti.pelapor@example.com", "phone": "0812-7788-9911"}


def point(lat: float = INSIDE[0], lon: float = INSIDE[1]) -> dict[str, Any]:
    """A GeoJSON Point (longitude first)."""
    return {"type": "Point", "coordinates": [lon, lat]}


def line(*points: tuple[float, float]) -> dict[str, Any]:
    """A GeoJSON LineString through (lat, lon) points; by default a short road near INSIDE."""
    points = points or ((INSIDE[0], INSIDE[1]), (INSIDE[0] + 0.004, INSIDE[1] + 0.006))
    return {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in points]}


def agency_id(session, short_name: str) -> int:
    """The id of a default OPD by its short name."""
    return agencies.get_agency_by_short_name(session, short_name=short_name).id


def act(user: User) -> dict[str, Any]:
    """The `by` and `actor` of a change made by `user`."""
    return {"by": user, "actor": Actor.of(user)}


def jpeg(colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    """A small JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, "JPEG")
    return buffer.getvalue()
