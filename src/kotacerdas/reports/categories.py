"""Report categories: the seeded defaults, changes by admins, and the extra attributes a category asks for.

A category's attributes are Open311 service-definition attributes, so the same list drives the web form, the JSON
API's checks and `GET /open311/v2/services/{code}`.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts.service import Actor, clean_text, record_change, snapshot
from kotacerdas.agencies import service as agencies
from kotacerdas.errors import Conflict, InvalidInput, NotFound
from kotacerdas.i18n import _
from kotacerdas.reports.enums import CategoryGroup, SlaTier
from kotacerdas.reports.models import ReportCategory

CODE_SHAPE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
ATTRIBUTE_TYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
MAX_ATTRIBUTES = 20
MAX_DUPLICATE_RADIUS_M = 5000

# (code, Indonesian name, English name, group, responsible OPD, tier, photo required, attributes)
DEFAULT_CATEGORIES: tuple[tuple[str, str, str, CategoryGroup, str, SlaTier, bool, list[dict[str, Any]]], ...] = (
    (
        "jalan-rusak",
        "Jalan rusak atau berlubang",
        "Damaged road or pothole",
        CategoryGroup.JALAN_JEMBATAN,
        "Dinas PUPR",
        SlaTier.NON_PENGAWASAN,
        True,
        [
            {
                "code": "tingkat_kerusakan",
                "datatype": "singlevaluelist",
                "required": False,
                "description_id": "Seberapa parah kerusakannya?",
                "description_en": "How bad is the damage?",
                "values": [
                    {"key": "ringan", "name_id": "Ringan (retak, lubang kecil)", "name_en": "Light (cracks)"},
                    {"key": "sedang", "name_id": "Sedang (lubang besar)", "name_en": "Medium (large holes)"},
                    {"key": "berat", "name_id": "Berat (tidak bisa dilalui)", "name_en": "Severe (impassable)"},
                ],
            }
        ],
    ),
    (
        "jembatan-rusak",
        "Jembatan rusak atau putus",
        "Damaged or broken bridge",
        CategoryGroup.JALAN_JEMBATAN,
        "Dinas PUPR",
        SlaTier.PENGAWASAN,
        True,
        [],
    ),
    (
        "drainase-tersumbat",
        "Saluran air/drainase tersumbat",
        "Blocked drain",
        CategoryGroup.DRAINASE_BANJIR,
        "Dinas PUPR",
        SlaTier.NORMATIF,
        False,
        [],
    ),
    (
        "genangan-banjir",
        "Genangan atau banjir",
        "Standing water or flooding",
        CategoryGroup.DRAINASE_BANJIR,
        "BPBD",
        SlaTier.RINGAN,
        False,
        [
            {
                "code": "kedalaman_cm",
                "datatype": "number",
                "required": False,
                "description_id": "Perkiraan kedalaman air (cm)",
                "description_en": "Estimated water depth (cm)",
            }
        ],
    ),
    (
        "pju-mati",
        "Lampu penerangan jalan umum mati",
        "Street light out",
        CategoryGroup.PENERANGAN_JALAN,
        "Dishub",
        SlaTier.NORMATIF,
        False,
        [
            {
                "code": "nomor_tiang",
                "datatype": "string",
                "required": False,
                "description_id": "Nomor tiang lampu, bila ada",
                "description_en": "Pole number, if any",
            }
        ],
    ),
    (
        "sampah-menumpuk",
        "Sampah menumpuk atau tidak diangkut",
        "Uncollected rubbish",
        CategoryGroup.SAMPAH_KEBERSIHAN,
        "DLH",
        SlaTier.RINGAN,
        False,
        [],
    ),
    (
        "air-bersih",
        "Air bersih tidak mengalir atau keruh",
        "No or dirty piped water",
        CategoryGroup.AIR_BERSIH,
        "Dinas Perkim",
        SlaTier.NORMATIF,
        False,
        [],
    ),
    (
        "fasilitas-kesehatan",
        "Layanan puskesmas/pustu/posyandu",
        "Health centre service",
        CategoryGroup.FASILITAS_KESEHATAN,
        "Dinas Kesehatan",
        SlaTier.NORMATIF,
        False,
        [],
    ),
    (
        "fasilitas-pendidikan",
        "Sarana sekolah rusak atau tidak layak",
        "School facility problem",
        CategoryGroup.FASILITAS_PENDIDIKAN,
        "Dinas Pendidikan",
        SlaTier.NON_PENGAWASAN,
        False,
        [],
    ),
    (
        "ketertiban-umum",
        "Gangguan ketertiban umum",
        "Public order disturbance",
        CategoryGroup.KETERTIBAN_UMUM,
        "Satpol PP & Damkar",
        SlaTier.RINGAN,
        False,
        [],
    ),
    (
        "administrasi-kependudukan",
        "Pelayanan KTP, KK dan akta",
        "ID card and civil registry services",
        CategoryGroup.PELAYANAN_ADMINISTRASI,
        "Disdukcapil",
        SlaTier.NORMATIF,
        False,
        [],
    ),
    (
        "lainnya",
        "Lainnya",
        "Other",
        CategoryGroup.LAINNYA,
        "Diskominfo",
        SlaTier.NON_PENGAWASAN,
        False,
        [],
    ),
)

EDITABLE = (
    "code",
    "name_id",
    "name_en",
    "description_id",
    "description_en",
    "group",
    "agency_id",
    "sla_tier",
    "resolution_days",
    "photo_required",
    "duplicate_radius_m",
    "attributes",
    "position",
    "active",
)


def category_name(category: ReportCategory, locale: str) -> str:
    """The category's name in `locale`."""
    return category.name_en if locale == "en" else category.name_id


def get_category(session: Session, *, category_id: int) -> ReportCategory:
    """One category by id."""
    category = session.get(ReportCategory, category_id)
    if category is None:
        raise NotFound(_("There is no report category with that id."))
    return category


def get_category_by_code(session: Session, *, code: str) -> ReportCategory:
    """One category by its code (the Open311 service_code)."""
    category = session.scalar(sa.select(ReportCategory).where(ReportCategory.code == code))
    if category is None:
        raise NotFound(_("There is no report category with that code."))
    return category


def list_categories(session: Session, *, active_only: bool = True) -> list[ReportCategory]:
    """Categories in display order (group, then position, then name)."""
    statement = sa.select(ReportCategory).order_by(
        ReportCategory.group, ReportCategory.position, ReportCategory.name_id
    )
    if active_only:
        statement = statement.where(ReportCategory.active.is_(True))
    return list(session.scalars(statement))


def _invalid(message: str, field: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "reason": reason}])


def _clean_attribute(index: int, raw: Any) -> dict[str, Any]:
    field = f"attributes[{index}]"
    if not isinstance(raw, dict):
        raise _invalid(_("Each extra attribute must be an object."), field, "type")
    code = str(raw.get("code") or "").strip()
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", code):
        raise _invalid(
            _("An attribute code is lowercase letters, digits and underscores, starting with a letter."), field, "code"
        )
    datatype = raw.get("datatype", "string")
    if datatype not in ATTRIBUTE_TYPES:
        raise _invalid(_("Unknown attribute type."), field, "datatype")
    description_id = clean_text(
        raw.get("description_id"), field=f"{field}.description_id", label=_("Question"), max_length=300, required=True
    )
    description_en = clean_text(
        raw.get("description_en"), field=f"{field}.description_en", label=_("Question"), max_length=300
    )
    values = []
    if datatype in ("singlevaluelist", "multivaluelist"):
        for value in raw.get("values") or []:
            key = str((value or {}).get("key") or "").strip()
            name_id = str((value or {}).get("name_id") or "").strip()
            if not key or not name_id or len(key) > 40 or len(name_id) > 120:
                raise _invalid(_("Each choice needs a key and a name."), field, "values")
            values.append({"key": key, "name_id": name_id, "name_en": str(value.get("name_en") or name_id)[:120]})
        if not values:
            raise _invalid(_("A list attribute needs at least one choice."), field, "values")
    return {
        "code": code,
        "datatype": datatype,
        "required": bool(raw.get("required", False)),
        "description_id": description_id,
        "description_en": description_en or description_id,
        "values": values,
    }


def clean_attribute_definitions(raw: Any) -> list[dict[str, Any]]:
    """Check a category's extra attribute definitions and return them normalised."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_ATTRIBUTES:
        raise _invalid(_("Extra attributes must be a list of at most 20."), "attributes", "type")
    cleaned = [_clean_attribute(index, item) for index, item in enumerate(raw)]
    codes = [item["code"] for item in cleaned]
    if len(set(codes)) != len(codes):
        raise _invalid(_("Two attributes have the same code."), "attributes", "duplicate")
    return cleaned


def clean_attribute_values(category: ReportCategory, values: dict[str, Any] | None) -> dict[str, Any] | None:
    """The citizen's answers to a category's extra questions, checked against its definitions."""
    values = {key: value for key, value in (values or {}).items() if value not in (None, "", [])}
    definitions = {item["code"]: item for item in category.attributes or []}
    unknown = sorted(set(values) - set(definitions))
    if unknown:
        raise _invalid(_("This category has no such question."), f"attribute[{unknown[0]}]", "unknown")
    cleaned: dict[str, Any] = {}
    for code, definition in definitions.items():
        field = f"attribute[{code}]"
        value = values.get(code)
        if value is None:
            if definition.get("required"):
                raise _invalid(_("Please answer every required question."), field, "required")
            continue
        keys = {choice["key"] for choice in definition.get("values") or []}
        datatype = definition["datatype"]
        if datatype == "number":
            try:
                cleaned[code] = float(value)
            except (TypeError, ValueError):
                raise _invalid(_("This answer must be a number."), field, "number") from None
        elif datatype == "multivaluelist":
            chosen = value if isinstance(value, list) else [value]
            if not all(str(item) in keys for item in chosen):
                raise _invalid(_("Choose from the listed answers."), field, "choice")
            cleaned[code] = [str(item) for item in chosen]
        elif datatype == "singlevaluelist":
            if str(value) not in keys:
                raise _invalid(_("Choose from the listed answers."), field, "choice")
            cleaned[code] = str(value)
        else:
            label = definition.get("description_id") or code
            cleaned[code] = clean_text(
                str(value), field=field, label=label, max_length=1000, multiline=datatype == "text"
            )
    return cleaned or None


def _clean_category(session: Session, values: dict[str, Any], category_id: int | None) -> dict[str, Any]:
    cleaned = dict(values)
    if "code" in values:
        code = str(values["code"] or "").strip().lower()
        if not CODE_SHAPE.match(code):
            raise _invalid(
                _("The code is 2 to 40 lowercase letters, digits and dashes (it is the Open311 service code)."),
                "code",
                "format",
            )
        clash = session.scalar(sa.select(ReportCategory.id).where(ReportCategory.code == code))
        if clash is not None and clash != category_id:
            raise Conflict(_("Another category already has this code."), errors=[{"field": "code", "reason": "taken"}])
        cleaned["code"] = code
    for key, label, limit, required in (
        ("name_id", _("Name (Indonesian)"), 120, True),
        ("name_en", _("Name (English)"), 120, True),
        ("description_id", _("Description (Indonesian)"), 500, False),
        ("description_en", _("Description (English)"), 500, False),
    ):
        if key in values:
            cleaned[key] = clean_text(values[key], field=key, label=label, max_length=limit, required=required)
    if "group" in values and values["group"] not in {group.value for group in CategoryGroup}:
        raise _invalid(_("Unknown category group."), "group", "unknown")
    if "sla_tier" in values and values["sla_tier"] not in {tier.value for tier in SlaTier}:
        raise _invalid(_("Unknown resolution-time tier."), "sla_tier", "unknown")
    if values.get("agency_id") is not None:
        agencies.get_agency(session, agency_id=values["agency_id"])
    if "resolution_days" in values and values["resolution_days"] is not None:
        if not isinstance(values["resolution_days"], int) or not 1 <= values["resolution_days"] <= 365:
            raise _invalid(_("Resolution time is 1 to 365 working days."), "resolution_days", "range")
    if "duplicate_radius_m" in values:
        radius = values["duplicate_radius_m"]
        if not isinstance(radius, int) or not 0 <= radius <= MAX_DUPLICATE_RADIUS_M:
            raise _invalid(_("The duplicate radius is 0 to 5000 metres."), "duplicate_radius_m", "range")
    if "attributes" in values:
        cleaned["attributes"] = clean_attribute_definitions(values["attributes"])
    return cleaned


def create_category(session: Session, *, actor: Actor, **values: Any) -> ReportCategory:
    """Add a report category (admins)."""
    values = {key: values[key] for key in EDITABLE if key in values}
    for key in ("code", "name_id", "group", "sla_tier"):
        values.setdefault(key, None)
    values.setdefault("name_en", values.get("name_id"))
    cleaned = _clean_category(session, values, None)
    if cleaned.get("resolution_days") is None:
        cleaned["resolution_days"] = SlaTier(cleaned["sla_tier"]).default_days
    cleaned.setdefault("attributes", [])
    category = ReportCategory(**cleaned)
    session.add(category)
    session.flush()
    record_change(
        session, actor=actor, action="report_category.create", entity_type="report_category",
        entity_id=category.id, after=snapshot(category),
    )  # fmt: skip
    return category


def update_category(session: Session, *, actor: Actor, category_id: int, **values: Any) -> ReportCategory:
    """Change a report category; only the given fields change (admins)."""
    category = get_category(session, category_id=category_id)
    before = snapshot(category)
    values = {key: values[key] for key in EDITABLE if key in values}
    if "resolution_days" not in values and values.get("sla_tier") in {tier.value for tier in SlaTier}:
        values["resolution_days"] = SlaTier(values["sla_tier"]).default_days
    cleaned = _clean_category(session, values, category_id)
    for key, value in cleaned.items():
        if value is None and key not in ("description_id", "description_en", "agency_id"):
            raise _invalid(_("This field cannot be empty."), key, "required")
        setattr(category, key, value)
    session.flush()
    record_change(
        session, actor=actor, action="report_category.update", entity_type="report_category",
        entity_id=category.id, before=before, after=snapshot(category),
    )  # fmt: skip
    return category


def seed_default_categories(session: Session, *, actor: Actor) -> int:
    """Store the default categories that are not there yet, routed to the default OPDs; returns how many."""
    existing = set(session.scalars(sa.select(ReportCategory.code)))
    created = 0
    for position, (code, name_id, name_en, group, agency, tier, photo, attributes) in enumerate(DEFAULT_CATEGORIES):
        if code in existing:
            continue
        try:
            agency_id = agencies.get_agency_by_short_name(session, short_name=agency).id
        except NotFound:
            agency_id = None
        create_category(
            session, actor=actor, code=code, name_id=name_id, name_en=name_en, group=group.value,
            agency_id=agency_id, sla_tier=tier.value, photo_required=photo, attributes=attributes,
            position=position, duplicate_radius_m=100,
        )  # fmt: skip
        created += 1
    return created
