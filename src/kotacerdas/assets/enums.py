"""Geometry kinds, condition scales and conditions of assets, each with its labels and map colour."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class GeometryKind(LabelledEnum):
    """How an asset type is drawn: a point (a bridge, a school) or a line (a road segment, a drain)."""

    POINT = ("point", "Titik", "Point")
    LINE = ("line", "Garis", "Line")


class ConditionScale(LabelledEnum):
    """Which conditions an asset type is rated on.

    Roads use the Bina Marga road scale (Baik, Sedang, Rusak Ringan, Rusak Berat), on which "jalan mantap" is Baik +
    Sedang; other structures (bridges, drains, buildings) the building scale Baik, Rusak Ringan, Rusak Sedang, Rusak
    Berat; facilities whether they work (Berfungsi, Berfungsi Sebagian, Tidak Berfungsi)."""

    ROAD = ("road", "Jalan (Bina Marga)", "Road (Bina Marga)")
    STRUCTURE = ("structure", "Bangunan/struktur", "Structure")
    FACILITY = ("facility", "Fasilitas", "Facility")

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """The conditions of this scale, best first."""
        return SCALE_CONDITIONS[self]


class Condition(LabelledEnum):
    """An asset's condition, on its type's scale; colours run from green (good) to red (bad)."""

    BAIK = ("baik", "Baik", "Good", "#2e7d32")
    SEDANG = ("sedang", "Sedang", "Fair", "#9e9d24")
    RUSAK_RINGAN = ("rusak_ringan", "Rusak Ringan", "Lightly damaged", "#f9a825")
    RUSAK_SEDANG = ("rusak_sedang", "Rusak Sedang", "Moderately damaged", "#ef6c00")
    RUSAK_BERAT = ("rusak_berat", "Rusak Berat", "Heavily damaged", "#c62828")
    BERFUNGSI = ("berfungsi", "Berfungsi", "Working", "#2e7d32")
    BERFUNGSI_SEBAGIAN = ("berfungsi_sebagian", "Berfungsi Sebagian", "Partly working", "#f9a825")
    TIDAK_BERFUNGSI = ("tidak_berfungsi", "Tidak Berfungsi", "Not working", "#c62828")


SCALE_CONDITIONS: dict[ConditionScale, tuple[Condition, ...]] = {
    ConditionScale.ROAD: (Condition.BAIK, Condition.SEDANG, Condition.RUSAK_RINGAN, Condition.RUSAK_BERAT),
    ConditionScale.STRUCTURE: (
        Condition.BAIK,
        Condition.RUSAK_RINGAN,
        Condition.RUSAK_SEDANG,
        Condition.RUSAK_BERAT,
    ),
    ConditionScale.FACILITY: (Condition.BERFUNGSI, Condition.BERFUNGSI_SEBAGIAN, Condition.TIDAK_BERFUNGSI),
}

# "Jalan mantap" (a road in steady condition): Baik or Sedang on the road scale.
MANTAP_CONDITIONS = frozenset({Condition.BAIK, Condition.SEDANG})
# A facility counts as functioning only when it works fully.
FUNCTIONING_CONDITIONS = frozenset({Condition.BERFUNGSI})
# Colour of an asset not inspected yet.
UNKNOWN_COLOUR = "#78909c"


class ProposalStatus(LabelledEnum):
    """A condition update proposed from a resolved citizen report, waiting for the owner OPD."""

    PENDING = ("pending", "Menunggu", "Pending", "#1e88e5")
    ACCEPTED = ("accepted", "Diterima", "Accepted", "#2e7d32")
    REJECTED = ("rejected", "Ditolak", "Rejected", "#c62828")
