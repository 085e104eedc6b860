"""Values shared by the reports tests."""

from __future__ import annotations

from kotacerdas.agencies import service as agencies

INSIDE = (-3.06, 102.93)  # Muara Beliti area, inside Musi Rawas
OUTSIDE = (-6.2, 106.8)  # Jakarta
REPORTER = {"name": "Siti Rahmawati", "email": "siti.pelapor@example.com", "phone": "0812-7788-9911"}


def agency_id(session, short_name: str) -> int:
    """The id of a default OPD by its short name."""
    return agencies.get_agency_by_short_name(session, short_name=short_name).id
