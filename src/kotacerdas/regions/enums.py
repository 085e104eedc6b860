"""Region levels and how a point was located."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class RegionLevel(LabelledEnum):
    """A level of the Kemendagri hierarchy; desa and kelurahan are the two kinds of village."""

    KABUPATEN = ("kabupaten", "Kabupaten", "Regency", "#37474f")
    KECAMATAN = ("kecamatan", "Kecamatan", "District", "#1565c0")
    DESA = ("desa", "Desa", "Village", "#2e7d32")
    KELURAHAN = ("kelurahan", "Kelurahan", "Urban village", "#6a1b9a")

    @property
    def code_parts(self) -> int:
        """How many dot-separated parts a code of this level has (16 / 05 / 09 / 1003)."""
        return {"kabupaten": 2, "kecamatan": 3}.get(self.value, 4)

    @property
    def is_village(self) -> bool:
        return self in (RegionLevel.DESA, RegionLevel.KELURAHAN)


class LocateMethod(LabelledEnum):
    """Which data answered a point lookup; only `boundary` is exact."""

    BOUNDARY = ("boundary", "Batas wilayah", "Boundary")
    NEAREST_BOUNDARY = (
        "nearest_boundary",
        "Batas wilayah terdekat (perkiraan)",
        "Nearest boundary (approximate)",
    )
    CENTROID = ("centroid", "Titik pusat kecamatan terdekat (perkiraan)", "Nearest district centre (approximate)")
