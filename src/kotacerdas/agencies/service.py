"""OPD registry. Services flush; the caller commits."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kotacerdas.accounts.service import (
    UNSET,
    Actor,
    Unset,
    clean_email,
    clean_text,
    like_pattern,
    record_change,
    search_text,
    snapshot,
)
from kotacerdas.agencies.enums import AgencyKind
from kotacerdas.agencies.models import Agency
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.errors import Conflict, InvalidInput, NotFound
from kotacerdas.i18n import _
from kotacerdas.pagination import Paged, PageRequest, paginate

# The regions domain has no service function for "does this code exist" yet; reading its table here is the
# whole dependency (a lookup by primary key), so it stays a model import until that service exists.
from kotacerdas.regions import service as regions

NAME_MAX = 200
SHORT_NAME_MAX = 60
PHONE_MAX = 40
ADDRESS_MAX = 300
WEBSITE_MAX = 200
REGION_CODE_MAX = 20

# The OPDs of a typical kabupaten (Perda on perangkat daerah): short name, full name, kind. The kecamatan
# offices are added from the regions table, one per kecamatan of the installation's kabupaten.
DEFAULT_AGENCIES: tuple[tuple[str, str, AgencyKind], ...] = (
    ("Sekretariat Daerah", "Sekretariat Daerah", AgencyKind.SEKRETARIAT),
    ("Inspektorat", "Inspektorat Daerah", AgencyKind.BADAN),
    ("Bappeda", "Badan Perencanaan Pembangunan Daerah", AgencyKind.BADAN),
    ("BPKAD", "Badan Pengelolaan Keuangan dan Aset Daerah", AgencyKind.BADAN),
    ("Bapenda", "Badan Pendapatan Daerah", AgencyKind.BADAN),
    ("BPBD", "Badan Penanggulangan Bencana Daerah", AgencyKind.BADAN),
    ("Diskominfo", "Dinas Komunikasi dan Informatika", AgencyKind.DINAS),
    ("Dinas PUPR", "Dinas Pekerjaan Umum dan Penataan Ruang", AgencyKind.DINAS),
    ("Dinas Perkim", "Dinas Perumahan dan Kawasan Permukiman", AgencyKind.DINAS),
    ("DLH", "Dinas Lingkungan Hidup", AgencyKind.DINAS),
    ("Dishub", "Dinas Perhubungan", AgencyKind.DINAS),
    ("Dinas Kesehatan", "Dinas Kesehatan", AgencyKind.DINAS),
    ("Dinas Pendidikan", "Dinas Pendidikan", AgencyKind.DINAS),
    ("Satpol PP & Damkar", "Satuan Polisi Pamong Praja dan Pemadam Kebakaran", AgencyKind.DINAS),
    ("Dinas Sosial", "Dinas Sosial", AgencyKind.DINAS),
    ("DPMPTSP", "Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu", AgencyKind.DINAS),
    ("DPMD", "Dinas Pemberdayaan Masyarakat dan Desa", AgencyKind.DINAS),
    ("Disdukcapil", "Dinas Kependudukan dan Pencatatan Sipil", AgencyKind.DINAS),
    ("Dinas Pertanian", "Dinas Pertanian", AgencyKind.DINAS),
    ("Dinas Pariwisata", "Dinas Pariwisata", AgencyKind.DINAS),
)
KECAMATAN_SHORT_PREFIX = "Kec. "


# --- reads -----------------------------------------------------------------------------------------------------


def get_agency(session: Session, *, agency_id: int) -> Agency:
    """The OPD with this id, or NotFound."""
    agency = session.get(Agency, agency_id) if 1 <= agency_id <= MAX_INT_ID else None
    if agency is None:
        raise NotFound(_("OPD not found."))
    return agency


def get_agency_by_short_name(session: Session, *, short_name: str) -> Agency:
    """The OPD with this short name (any letter case), or NotFound."""
    agency = _find_short_name(session, short_name)
    if agency is None:
        raise NotFound(_("OPD not found."))
    return agency


def list_agencies(
    session: Session,
    *,
    page: PageRequest,
    kind: str | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> Paged[Agency]:
    """OPDs by name, optionally of one kind, active or not, or whose name or short name contains `q`."""
    statement = sa.select(Agency).order_by(Agency.name, Agency.id)
    if kind:
        statement = statement.where(Agency.kind == kind)
    if active is not None:
        statement = statement.where(Agency.active.is_(active))
    if q and q.strip():
        pattern = like_pattern(q)
        statement = statement.where(
            sa.or_(Agency.name.ilike(pattern, escape="\\"), Agency.short_name.ilike(pattern, escape="\\"))
        )
    return paginate(session, statement, page)


def list_agency_choices(session: Session, *, active_only: bool = False) -> list[Agency]:
    """Every OPD ordered by short name, for select boxes."""
    statement = sa.select(Agency).order_by(Agency.short_name)
    if active_only:
        statement = statement.where(Agency.active.is_(True))
    return list(session.scalars(statement))


def agency_names(session: Session) -> dict[int, str]:
    """Every OPD's name by id (a plain query: lists that name the OPD of each row call it once)."""
    return dict(session.connection().execute(sa.select(Agency.id, Agency.name)).all())


def _find_short_name(session: Session, short_name: str) -> Agency | None:
    short_name = search_text(short_name) or ""
    # SQLite's lower() folds ASCII letters only: the exact match catches the rest.
    return session.scalar(
        sa.select(Agency)
        .where(sa.or_(Agency.short_name == short_name, sa.func.lower(Agency.short_name) == short_name.lower()))
        .order_by(Agency.id)
        .limit(1)
    )


def _flush_unique(session: Session) -> None:
    # Two administrators saving the same short name at the same moment: the unique index decides.
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            _("Another OPD already has this short name."), errors=[{"field": "short_name", "reason": "taken"}]
        ) from None


# --- checks ----------------------------------------------------------------------------------------------------


def _check_kind(kind: str | None) -> str:
    try:
        return AgencyKind(kind).value
    except ValueError:
        raise InvalidInput(_("Unknown kind of OPD."), errors=[{"field": "kind", "reason": "unknown"}]) from None


def _check_parent(session: Session, parent_id: int | None, agency_id: int | None) -> int | None:
    if parent_id is None:
        return None
    if agency_id is not None and parent_id == agency_id:
        raise InvalidInput(_("An OPD cannot be its own parent."), errors=[{"field": "parent_id", "reason": "cycle"}])
    try:
        parent = get_agency(session, agency_id=parent_id)
    except NotFound:
        raise InvalidInput(
            _("The parent OPD does not exist."), errors=[{"field": "parent_id", "reason": "not_found"}]
        ) from None
    # Walk up from the new parent: meeting the agency itself means the change would close a loop.
    seen: set[int] = set()
    ancestor: Agency | None = parent
    while ancestor is not None and ancestor.id not in seen:
        if agency_id is not None and ancestor.id == agency_id:
            raise InvalidInput(
                _("The parent OPD cannot be one of this OPD's own units."),
                errors=[{"field": "parent_id", "reason": "cycle"}],
            )
        seen.add(ancestor.id)
        ancestor = session.get(Agency, ancestor.parent_id) if ancestor.parent_id is not None else None
    return parent.id


def _check_region(session: Session, region_code: str | None) -> str | None:
    code = clean_text(region_code, field="region_code", label=_("Region code"), max_length=REGION_CODE_MAX)
    if code is not None and not regions.region_exists(session, code=code):
        raise InvalidInput(
            _("No region has this code. Use a Kemendagri code such as 16.05.09."),
            errors=[{"field": "region_code", "reason": "not_found"}],
        )
    return code


def _check_website(website: str | None) -> str | None:
    website = clean_text(website, field="website", label=_("Website"), max_length=WEBSITE_MAX)
    if website is not None and not website.lower().startswith(("http://", "https://")):
        raise InvalidInput(
            _("The website address must start with http:// or https://."),
            errors=[{"field": "website", "reason": "format"}],
        )
    return website


def _check_short_name(session: Session, short_name: str | None, agency_id: int | None) -> str:
    short_name = clean_text(
        short_name, field="short_name", label=_("Short name"), max_length=SHORT_NAME_MAX, required=True
    )
    existing = _find_short_name(session, short_name)
    if existing is not None and existing.id != agency_id:
        raise Conflict(
            _("Another OPD already has this short name."), errors=[{"field": "short_name", "reason": "taken"}]
        )
    return short_name


def _clean(session: Session, values: dict[str, Any], agency_id: int | None) -> dict[str, Any]:
    """Check the given fields; the cleaned values, or InvalidInput/Conflict before anything is changed."""
    checks = {
        "name": lambda v: clean_text(v, field="name", label=_("Full name"), max_length=NAME_MAX, required=True),
        "short_name": lambda v: _check_short_name(session, v, agency_id),
        "kind": _check_kind,
        "parent_id": lambda v: _check_parent(session, v, agency_id),
        "region_code": lambda v: _check_region(session, v),
        "email": clean_email,
        "phone": lambda v: clean_text(v, field="phone", label=_("Phone"), max_length=PHONE_MAX),
        "address": lambda v: clean_text(v, field="address", label=_("Address"), max_length=ADDRESS_MAX),
        "website": _check_website,
        "active": _check_active,
    }
    return {key: checks[key](value) for key, value in values.items()}


def _check_active(active: bool | None) -> bool:
    if active is None:
        raise InvalidInput(_("Say whether the OPD is active."), errors=[{"field": "active", "reason": "required"}])
    return bool(active)


# --- changes ---------------------------------------------------------------------------------------------------


def create_agency(
    session: Session,
    *,
    actor: Actor,
    name: str,
    short_name: str,
    kind: str,
    parent_id: int | None = None,
    region_code: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    address: str | None = None,
    website: str | None = None,
) -> Agency:
    """Register an OPD."""
    values = _clean(
        session,
        {
            "name": name,
            "short_name": short_name,
            "kind": kind,
            "parent_id": parent_id,
            "region_code": region_code,
            "email": email,
            "phone": phone,
            "address": address,
            "website": website,
        },
        None,
    )
    agency = Agency(**values, active=True)
    session.add(agency)
    _flush_unique(session)
    record_change(
        session, actor=actor, action="agency.create", entity_type="agency", entity_id=agency.id, after=snapshot(agency)
    )
    return agency


def update_agency(
    session: Session,
    *,
    actor: Actor,
    agency_id: int,
    name: str | Unset = UNSET,
    short_name: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    parent_id: int | None | Unset = UNSET,
    region_code: str | None | Unset = UNSET,
    email: str | None | Unset = UNSET,
    phone: str | None | Unset = UNSET,
    address: str | None | Unset = UNSET,
    website: str | None | Unset = UNSET,
    active: bool | Unset = UNSET,
) -> Agency:
    """Change an OPD; only the given fields change (None clears an optional field)."""
    agency = get_agency(session, agency_id=agency_id)
    given = {
        key: value
        for key, value in {
            "name": name,
            "short_name": short_name,
            "kind": kind,
            "parent_id": parent_id,
            "region_code": region_code,
            "email": email,
            "phone": phone,
            "address": address,
            "website": website,
            "active": active,
        }.items()
        if value is not UNSET
    }
    values = _clean(session, given, agency.id)
    before = snapshot(agency)
    for key, value in values.items():
        setattr(agency, key, value)
    _flush_unique(session)
    after = snapshot(agency)
    if before != after:
        action = "agency.update"
        if before["active"] != after["active"]:
            action = "agency.activate" if after["active"] else "agency.deactivate"
        record_change(
            session, actor=actor, action=action, entity_type="agency", entity_id=agency.id, before=before, after=after
        )
    return agency


def deactivate_agency(session: Session, *, actor: Actor, agency_id: int) -> Agency:
    """Mark an OPD inactive: it stays in the registry and in history but takes no new work."""
    return update_agency(session, actor=actor, agency_id=agency_id, active=False)


def activate_agency(session: Session, *, actor: Actor, agency_id: int) -> Agency:
    """Mark an OPD active again."""
    return update_agency(session, actor=actor, agency_id=agency_id, active=True)


def seed_default_agencies(session: Session, *, settings: Settings, actor: Actor) -> int:
    """Add the default OPDs and one office per kecamatan that are missing; returns how many OPDs are stored.

    An OPD counts as present when its short name or its full name is already registered, so running this again
    neither duplicates nor overwrites what an administrator has edited since. Kecamatan offices come from the
    kecamatan in the regions table: seed the regions first.
    """
    existing = session.execute(sa.select(Agency.short_name, Agency.name, Agency.region_code, Agency.kind)).all()
    short_names = {row.short_name.lower() for row in existing}
    names = {row.name.lower() for row in existing}
    kecamatan_codes = {row.region_code for row in existing if row.kind == AgencyKind.KECAMATAN.value}

    wanted: list[dict[str, Any]] = [
        {"short_name": short, "name": name, "kind": kind.value} for short, name, kind in DEFAULT_AGENCIES
    ]
    offices = [(region.code, region.name) for region in regions.list_kecamatan(session, settings=settings)]
    if not offices:
        # Regions not seeded yet: the built-in list of the kabupaten, without codes (the regions table is where
        # codes must exist); the offices are then matched by name when the seed runs again.
        offices = [(None, region.name) for region in _builtin_kecamatan(settings)]
    for code, region_name in offices:
        if code is not None and code in kecamatan_codes:
            continue
        wanted.append(
            {
                "short_name": (KECAMATAN_SHORT_PREFIX + region_name)[:SHORT_NAME_MAX],
                "name": ("Kecamatan " + region_name)[:NAME_MAX],
                "kind": AgencyKind.KECAMATAN.value,
                "region_code": code,
            }
        )
    for values in wanted:
        if values["short_name"].lower() in short_names or values["name"].lower() in names:
            continue
        create_agency(session, actor=actor, **values)
        short_names.add(values["short_name"].lower())
        names.add(values["name"].lower())
    return session.scalar(sa.select(sa.func.count()).select_from(Agency)) or 0


def _builtin_kecamatan(settings: Settings) -> tuple[Any, ...]:
    try:
        from kotacerdas.regions import builtin
    except ImportError:
        return ()
    return builtin.KECAMATAN if builtin.KABUPATEN_CODE == settings.region_code else ()
