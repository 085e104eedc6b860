"""Values and small helpers shared by the events tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor
from kotacerdas.events.service import EventInput

INSIDE = (-3.06, 102.93)  # Muara Beliti area, inside Musi Rawas
OUTSIDE = (-6.2, 106.8)  # Jakarta
DESA = "16.05.09.2001"  # a desa of Kecamatan Muara Beliti (16.05.09)
KECAMATAN = "16.05.09"
OTHER_KECAMATAN = "16.05.01"  # Tugumulyo
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def act(user: User) -> dict[str, Any]:
    """The `by` and `actor` of a change made by `user`."""
    return {"by": user, "actor": Actor.of(user)}


def flood(**overrides: Any) -> EventInput:
    """A flood warning on the Kelingi for one desa, Siaga; fields overridden by keyword."""
    values: dict[str, Any] = {
        "category": "banjir",
        "level": "siaga",
        "title": "Banjir Sungai Kelingi",
        "description": "Air Sungai Kelingi naik 1,5 m; permukiman di tepi sungai tergenang 40-60 cm.",
        "instruction": "Warga di bantaran sungai diminta mengungsi ke balai desa.",
        "starts_at": START,
        "ends_at": START + timedelta(days=2),
        "region_codes": [DESA],
        "impacts": {"kk": 120, "jiwa": 430, "rumah": 95},
    }
    values.update(overrides)
    return EventInput(**values, given=frozenset(overrides))


def activity(**overrides: Any) -> EventInput:
    """A posyandu day in a kecamatan (a public activity, no level)."""
    values: dict[str, Any] = {
        "category": "posyandu_vaksinasi",
        "level": None,
        "title": "Posyandu dan imunisasi",
        "description": "Imunisasi dasar lengkap dan penimbangan balita di balai desa.",
        "starts_at": START,
        "ends_at": START + timedelta(hours=4),
        "region_codes": [OTHER_KECAMATAN],
    }
    values.update(overrides)
    return EventInput(**values, given=frozenset(overrides))
