"""Kinds of perangkat daerah (OPD)."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class AgencyKind(LabelledEnum):
    """What sort of government body an OPD is."""

    DINAS = ("dinas", "Dinas", "Service agency (dinas)", "#1e88e5")
    BADAN = ("badan", "Badan", "Board (badan)", "#3949ab")
    SEKRETARIAT = ("sekretariat", "Sekretariat", "Secretariat", "#6d4c41")
    KECAMATAN = ("kecamatan", "Kecamatan", "District office (kecamatan)", "#00897b")
    KELURAHAN_DESA = ("kelurahan_desa", "Kelurahan/Desa", "Village office (kelurahan/desa)", "#43a047")
    UPT = ("upt", "UPT", "Technical unit (UPT)", "#8e24aa")
