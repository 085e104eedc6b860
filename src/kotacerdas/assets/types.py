"""The default asset types of a kabupaten: how each is drawn, rated and owned, and the attributes it records.

Each type's attributes are a JSON Schema (draft 2020-12), checked by `validation.AssetCleaner` on every way in (the
console, the API, imports). Seeded by `kotacerdas demo` and `kotacerdas db seed`; editable afterwards.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts.service import Actor, record_change, snapshot
from kotacerdas.agencies import service as agencies
from kotacerdas.assets.enums import ConditionScale, GeometryKind
from kotacerdas.assets.models import AssetType
from kotacerdas.errors import NotFound


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _text(title: str, max_length: int = 120) -> dict[str, Any]:
    return {"type": "string", "title": title, "maxLength": max_length}


def _number(title: str, minimum: float = 0, maximum: float | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number", "title": title, "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _choice(title: str, *values: str) -> dict[str, Any]:
    return {"type": "string", "title": title, "enum": list(values)}


def _year(title: str = "Tahun dibangun") -> dict[str, Any]:
    return {"type": "integer", "title": title, "minimum": 1900, "maximum": 2100}


SCHOOL_LEVELS = ("PAUD", "TK", "SD", "SMP", "SMA", "SMK", "SLB", "MI", "MTs", "MA")

# (code, name_id, name_en, geometry, condition scale, default owner OPD (short name), attribute schema)
DEFAULT_TYPES: tuple[tuple[str, str, str, GeometryKind, ConditionScale, str, dict[str, Any]], ...] = (
    (
        "jalan", "Ruas jalan", "Road segment", GeometryKind.LINE, ConditionScale.ROAD, "Dinas PUPR",
        _schema(
            {
                "status_jalan": _choice("Status jalan", "kabupaten", "desa"),
                "permukaan": _choice("Jenis permukaan", "aspal", "beton", "kerikil/agregat", "tanah"),
                "lebar_m": _number("Lebar (m)", 0, 60),
                "kode_ruas": _text("Nomor ruas", 40),
            },
            ("status_jalan", "permukaan"),
        ),
    ),
    (
        "jembatan", "Jembatan", "Bridge", GeometryKind.POINT, ConditionScale.STRUCTURE, "Dinas PUPR",
        _schema(
            {
                "panjang_m": _number("Panjang (m)", 0, 5000),
                "lebar_m": _number("Lebar (m)", 0, 60),
                "konstruksi": _choice("Konstruksi", "beton", "baja", "kayu", "gantung", "komposit", "lainnya"),
                "sungai": _text("Sungai yang dilintasi"),
                "tahun_dibangun": _year(),
            }
        ),
    ),
    (
        "drainase", "Saluran drainase / gorong-gorong", "Drain / culvert", GeometryKind.LINE,
        ConditionScale.STRUCTURE, "Dinas PUPR",
        _schema(
            {
                "jenis": _choice("Jenis", "saluran terbuka", "saluran tertutup", "gorong-gorong"),
                "lebar_m": _number("Lebar (m)", 0, 30),
                "material": _choice("Material", "beton", "pasangan batu", "tanah"),
            }
        ),
    ),
    (
        "pju", "Penerangan jalan umum (PJU)", "Street light", GeometryKind.POINT, ConditionScale.FACILITY, "Dishub",
        _schema(
            {
                "jenis_lampu": _choice("Jenis lampu", "LED", "SON-T", "merkuri", "tenaga surya", "lainnya"),
                "daya_watt": _number("Daya (watt)", 0, 2000),
                "tiang_m": _number("Tinggi tiang (m)", 0, 30),
            }
        ),
    ),
    (
        "sekolah", "Sekolah", "School", GeometryKind.POINT, ConditionScale.FACILITY, "Dinas Pendidikan",
        _schema(
            {
                "jenjang": _choice("Jenjang", *SCHOOL_LEVELS),
                "status": _choice("Status", "negeri", "swasta"),
                "npsn": {"type": "string", "title": "NPSN", "pattern": "^[0-9]{8}$"},
                "jumlah_ruang_kelas": {"type": "integer", "title": "Jumlah ruang kelas", "minimum": 0, "maximum": 500},
            },
            ("jenjang",),
        ),
    ),
    (
        "puskesmas", "Puskesmas", "Community health centre", GeometryKind.POINT, ConditionScale.FACILITY,
        "Dinas Kesehatan",
        _schema(
            {
                "rawat_inap": {"type": "boolean", "title": "Rawat inap"},
                "kode_puskesmas": _text("Kode puskesmas", 20),
            }
        ),
    ),
    (
        "pustu", "Puskesmas pembantu (pustu)", "Auxiliary health post", GeometryKind.POINT, ConditionScale.FACILITY,
        "Dinas Kesehatan", _schema({"puskesmas_induk": _text("Puskesmas induk")}),
    ),
    (
        "posyandu", "Posyandu", "Integrated health post", GeometryKind.POINT, ConditionScale.FACILITY,
        "Dinas Kesehatan", _schema({"strata": _choice("Strata", "pratama", "madya", "purnama", "mandiri")}),
    ),
    (
        "pasar", "Pasar", "Market", GeometryKind.POINT, ConditionScale.FACILITY, "Sekretariat Daerah",
        _schema(
            {
                "jenis": _choice("Jenis", "pasar induk", "pasar desa", "pasar kalangan"),
                "jumlah_kios": {"type": "integer", "title": "Jumlah kios", "minimum": 0, "maximum": 10000},
            }
        ),
    ),
    (
        "kantor", "Kantor pemerintahan", "Government office", GeometryKind.POINT, ConditionScale.STRUCTURE,
        "Sekretariat Daerah", _schema({"instansi": _text("Instansi", 200)}),
    ),
    (
        "air-bersih", "Sarana air bersih", "Water facility", GeometryKind.POINT, ConditionScale.FACILITY,
        "Dinas Perkim",
        _schema(
            {
                "jenis": _choice("Jenis", "sumur bor", "hidran umum", "IPA", "reservoir", "mata air"),
                "kapasitas_liter_detik": _number("Kapasitas (liter/detik)", 0, 10000),
            }
        ),
    ),
    (
        "toilet-umum", "Toilet umum", "Public toilet", GeometryKind.POINT, ConditionScale.FACILITY, "DLH",
        _schema({"jumlah_bilik": {"type": "integer", "title": "Jumlah bilik", "minimum": 0, "maximum": 100}}),
    ),
    (
        "taman", "Taman / ruang terbuka hijau", "Park / open space", GeometryKind.POINT, ConditionScale.FACILITY,
        "DLH", _schema({"luas_m2": _number("Luas (m²)", 0, 10_000_000)}),
    ),
    (
        "cctv", "Kamera CCTV", "CCTV camera", GeometryKind.POINT, ConditionScale.FACILITY, "Diskominfo",
        _schema(
            {
                "arah": _text("Arah pandang", 60),
                "terhubung_command_center": {"type": "boolean", "title": "Terhubung ke command center"},
            }
        ),
    ),
    (
        "menara-telekomunikasi", "Menara telekomunikasi", "Telecommunication tower", GeometryKind.POINT,
        ConditionScale.STRUCTURE, "Diskominfo",
        _schema(
            {
                "tinggi_m": _number("Tinggi (m)", 0, 300),
                "operator": _text("Operator", 120),
            }
        ),
    ),
    (
        "pos-duga-air", "Pos duga air (sungai)", "River gauge site", GeometryKind.POINT, ConditionScale.FACILITY,
        "BPBD",
        _schema(
            {
                "sungai": _text("Sungai"),
                "siaga_cm": _number("Batas siaga (cm)", 0, 5000),
                "waspada_cm": _number("Batas waspada (cm)", 0, 5000),
                "awas_cm": _number("Batas awas (cm)", 0, 5000),
            },
            ("sungai",),
        ),
    ),
)  # fmt: skip


def list_types(session: Session, *, active_only: bool = True) -> list[AssetType]:
    """Asset types in display order."""
    statement = sa.select(AssetType).order_by(AssetType.position, AssetType.name_id)
    if active_only:
        statement = statement.where(AssetType.active.is_(True))
    return list(session.scalars(statement))


def get_type(session: Session, *, type_id: int) -> AssetType:
    """One asset type by id."""
    kind = session.get(AssetType, type_id)
    if kind is None:
        raise NotFound("There is no asset type with that id.")
    return kind


def type_name(kind: AssetType, locale: str) -> str:
    """The type's name in `locale`."""
    return kind.name_en if locale == "en" else kind.name_id


def seed_default_types(session: Session, *, actor: Actor) -> int:
    """Store the default asset types that are not there yet, owned by the default OPDs; returns how many."""
    existing = set(session.scalars(sa.select(AssetType.code)))
    created = 0
    for position, (code, name_id, name_en, geometry, scale, owner, schema) in enumerate(DEFAULT_TYPES):
        if code in existing:
            continue
        try:
            agency_id = agencies.get_agency_by_short_name(session, short_name=owner).id
        except NotFound:
            agency_id = None
        kind = AssetType(
            code=code, name_id=name_id, name_en=name_en, geometry_kind=geometry.value,
            condition_scale=scale.value, agency_id=agency_id, attribute_schema=schema, position=position,
        )  # fmt: skip
        session.add(kind)
        session.flush()
        record_change(
            session, actor=actor, action="asset_type.create", entity_type="asset_type", entity_id=kind.id,
            after=snapshot(kind),
        )  # fmt: skip
        created += 1
    return created
