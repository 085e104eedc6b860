"""Events and warnings: publish, update, end and cancel them, approve drafts, and read them for the public and the
console. Every change is one function here: it checks its input, changes the rows, writes the timeline and the
audit entry, and announces the change (the live stream, subscribers); the caller commits."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor, clean_text, record_change, snapshot
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput, NotFound, PermissionDenied
from kotacerdas.events import live, schemas, subscriptions
from kotacerdas.events.enums import (
    IMPACT_FIELDS,
    ONGOING_STATUSES,
    PUBLIC_STATUSES,
    AlertLevel,
    EventCategory,
    EventSource,
    EventStatus,
    LinkKind,
    UpdateKind,
)
from kotacerdas.events.models import Event, EventArea, EventLink, EventUpdate
from kotacerdas.i18n import _, get_locale
from kotacerdas.regions import service as regions
from kotacerdas.regions.enums import RegionLevel

TITLE_MAX = 200
TEXT_MAX = 4000
NOTE_MAX = 2000
AREAS_MAX = 300
IMPACT_MAX = 10_000_000
LINKS_MAX = 200
# "<" before a letter, "/", "!" or "?" opens a tag, a comment or a processing instruction: markup, not text.
_MARKUP = re.compile(r"<\s*[A-Za-z/!?]")
_VILLAGE_LEVELS = frozenset({RegionLevel.DESA.value, RegionLevel.KELURAHAN.value})
_AREA_LEVELS = _VILLAGE_LEVELS | {RegionLevel.KECAMATAN.value}


def _invalid(message: str, field_name: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field_name, "reason": reason}])


# --- input ---------------------------------------------------------------------------------------------------------


@dataclass
class EventInput:
    """What a publisher gives for an event; on an update, only the fields named in `given` change."""

    category: str | None = None
    level: str | None = None
    title: str | None = None
    description: str | None = None
    instruction: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    region_codes: list[str] | None = None
    geometry: dict[str, Any] | str | None = None
    impacts: dict[str, Any] | None = None
    links: list[tuple[str, int]] | None = None
    given: frozenset[str] = field(default_factory=frozenset)


def clean_event_text(value: str | None, *, field_name: str, label: str, max_length: int, required: bool) -> str | None:
    """Text of an event (a title, a description, a note): plain text that every feed can carry. Markup, control
    characters and characters XML cannot hold are refused with a reason, never silently dropped."""
    value = clean_text(
        value, field=field_name, label=label, max_length=max_length, required=required, multiline=field_name != "title"
    )
    if value is None:
        return None
    if any(unicodedata.category(char) == "Cs" or char in "\ufffe\uffff" for char in value):
        raise _invalid(
            _("%(field)s contains characters that are not allowed.") % {"field": label}, field_name, "control_character"
        )
    if _MARKUP.search(value):
        raise _invalid(
            _("%(field)s must be plain text, without HTML or other markup.") % {"field": label}, field_name, "markup"
        )
    return unicodedata.normalize("NFC", value)


def _category(value: str | None) -> EventCategory:
    try:
        return EventCategory(value or "")
    except ValueError:
        raise _invalid(_("Unknown event category."), "category", "unknown") from None


def _level(category: EventCategory, value: str | None) -> str | None:
    if not category.is_hazard:
        if value:
            raise _invalid(
                _("Only disasters carry an alert level; leave it empty for this category."), "level", "not_hazard"
            )
        return None
    if not value:
        raise _invalid(_("Choose the alert level of the warning."), "level", "required")
    try:
        return AlertLevel(value).value
    except ValueError:
        raise _invalid(_("Unknown alert level."), "level", "unknown") from None


def _times(starts_at: datetime | None, ends_at: datetime | None) -> tuple[datetime, datetime | None]:
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value is not None and value.tzinfo is None:
            raise _invalid(_("Give the time with its time zone, e.g. 2026-12-01T08:00:00+07:00."), name, "naive")
    if starts_at is None:
        raise _invalid(_("Give the start time."), "starts_at", "required")
    if ends_at is not None and ends_at <= starts_at:
        raise _invalid(_("The expected end must be after the start."), "ends_at", "before_start")
    return starts_at, ends_at


def _impacts(value: dict[str, Any] | None) -> dict[str, int]:
    cleaned: dict[str, int] = {}
    for key, number in (value or {}).items():
        if key not in IMPACT_FIELDS:
            raise _invalid(_("Unknown impact figure: %(name)s.") % {"name": str(key)[:40]}, f"impacts.{key}", "unknown")
        if number is None or number == "":
            continue
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= IMPACT_MAX:
            raise _invalid(
                _("An impact figure is a whole number from 0 to %(max)d.") % {"max": IMPACT_MAX},
                f"impacts.{key}",
                "range",
            )
        cleaned[key] = number
    return cleaned


@dataclass(frozen=True)
class _Area:
    """The checked area of an event: the regions it touches and where it is drawn."""

    codes: dict[str, bool]  # region code → named by the publisher (False: a desa's kecamatan)
    geometry: str | None
    lat: float
    lon: float
    bounds: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat


def _parse_area_geometry(value: dict[str, Any] | str) -> Any:
    import shapely
    from shapely.geometry import shape

    try:
        data = json.loads(value) if isinstance(value, str) else value
        if not isinstance(data, dict) or data.get("type") not in ("Point", "Polygon", "MultiPolygon"):
            raise ValueError("not a Point, Polygon or MultiPolygon")
        if isinstance(data.get("crs"), dict):
            raise ValueError("a CRS other than WGS 84")
        geometry = shape(data)
    except Exception:  # json and shapely raise many kinds; all mean the same to the publisher
        raise _invalid(
            _("The area must be a GeoJSON Point, Polygon or MultiPolygon in WGS 84 longitude/latitude."),
            "geometry",
            "invalid",
        ) from None
    coordinates = shapely.get_coordinates(geometry)
    if geometry.is_empty or not geometry.is_valid:
        raise _invalid(_("The area's geometry is empty or crosses itself."), "geometry", "invalid")
    if not ((abs(coordinates[:, 0]) <= 180).all() and (abs(coordinates[:, 1]) <= 90).all()):
        raise _invalid(_("The area's coordinates are out of range (longitude first)."), "geometry", "coordinates")
    return geometry


def _area(session: Session, *, settings: Settings, codes: list[str] | None, geometry: Any) -> _Area:
    """Check the named regions and the drawn area; both must lie in the kabupaten, at least one must be given."""
    codes = [str(code).strip() for code in codes or [] if str(code).strip()]
    if len(codes) > AREAS_MAX:
        raise _invalid(_("At most %(n)d regions per event.") % {"n": AREAS_MAX}, "region_codes", "too_many")
    if not codes and geometry in (None, "", {}):
        raise _invalid(_("Name the affected desa or kecamatan, or draw the area."), "region_codes", "required")
    found = regions.get_regions(session, codes=codes)
    named: dict[str, bool] = {}
    for code in codes:
        region = found.get(code)
        if region is None or region.level not in _AREA_LEVELS or not _in_kabupaten(settings, code):
            raise _invalid(
                _("Unknown desa or kecamatan code: %(code)s.") % {"code": code[:20]}, "region_codes", "unknown"
            )
        named[code] = True
        if region.level in _VILLAGE_LEVELS and region.parent_code:
            named.setdefault(region.parent_code, False)
    shape_text = None
    if geometry not in (None, "", {}):
        drawn = _parse_area_geometry(geometry)
        point = drawn.representative_point()
        where = regions.locate(session, settings=settings, lat=point.y, lon=point.x)
        if not where.inside:
            raise _invalid(
                _("The area is outside %(region)s.") % {"region": settings.region_name}, "geometry", "outside"
            )
        for ref in (where.desa, where.kecamatan):
            if ref is not None:
                named.setdefault(ref.code, False)
        shape_text = json.dumps(_rounded(drawn.__geo_interface__), separators=(",", ":"))
        min_lon, min_lat, max_lon, max_lat = drawn.bounds
        return _Area(named, shape_text, point.y, point.x, (min_lon, min_lat, max_lon, max_lat))
    # A desa without a stored centre (no boundaries imported yet) is drawn at its kecamatan's.
    parents = regions.get_regions(session, codes={found[code].parent_code or "" for code in codes})
    placed = [
        found[code] if found[code].centroid_lat is not None else parents.get(found[code].parent_code or "")
        for code in codes
    ]
    boxes = [region for region in placed if region is not None and region.min_lat is not None]
    centres = [(region.centroid_lat, region.centroid_lon) for region in placed if region and region.centroid_lat]
    if not centres:
        raise _invalid(_("The named regions have no known position; draw the area."), "geometry", "required")
    lat = sum(c[0] for c in centres) / len(centres)
    lon = sum(c[1] for c in centres) / len(centres)
    bounds = (
        (
            min(b.min_lon for b in boxes),
            min(b.min_lat for b in boxes),
            max(b.max_lon for b in boxes),
            max(b.max_lat for b in boxes),
        )
        if boxes
        else (lon, lat, lon, lat)
    )
    return _Area(named, None, lat, lon, bounds)


def _in_kabupaten(settings: Settings, code: str) -> bool:
    return code.startswith(settings.region_code + ".")


def _rounded(value: Any) -> Any:
    # 7 decimals of a degree is about 1 cm: more is noise in the feeds.
    if isinstance(value, float):
        return round(value, 7)
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def _links(session: Session, value: list[tuple[str, int]] | None) -> list[tuple[str, int]]:
    pairs: list[tuple[str, int]] = []
    for kind, target in value or []:
        try:
            kind = LinkKind(kind).value
        except ValueError:
            raise _invalid(_("Unknown link kind."), "links", "unknown") from None
        if isinstance(target, bool) or not isinstance(target, int) or target <= 0:
            raise _invalid(_("A link names a positive id."), "links", "invalid")
        pairs.append((kind, target))
    pairs = list(dict.fromkeys(pairs))
    if len(pairs) > LINKS_MAX:
        raise _invalid(_("At most %(n)d links per event.") % {"n": LINKS_MAX}, "links", "too_many")
    for kind, table in ((LinkKind.REPORT.value, "reports"), (LinkKind.ASSET.value, "assets")):
        wanted = {target for link_kind, target in pairs if link_kind == kind}
        if wanted:
            ids = sa.table(table, sa.column("id"))
            stored = set(session.scalars(sa.select(ids.c.id).where(ids.c.id.in_(wanted))))
            if wanted - stored:
                raise _invalid(
                    _("Linked %(kind)s not found: %(ids)s.")
                    % {"kind": LinkKind(kind).label, "ids": ", ".join(map(str, sorted(wanted - stored)[:10]))},
                    "links",
                    "not_found",
                )
    # Devices are checked once the sensors capability stores them; until then their ids are kept as given.
    return pairs


# --- access --------------------------------------------------------------------------------------------------------


def can_publish(user: User | None) -> bool:
    """True when `user` may create, update and end events."""
    return user is not None and accounts.user_can(user, Permission.EVENTS_PUBLISH)


def _require_publisher(user: User | None) -> None:
    if not can_publish(user):
        raise PermissionDenied(_("You do not have permission to do this."))


def can_approve(user: User | None, event: Event) -> bool:
    """Four eyes: a draft is approved by an admin, or by a publisher other than its author."""
    if user is None or not accounts.user_can(user, Permission.EVENTS_APPROVE):
        return False
    return user.role == Role.ADMIN.value or user.id != event.created_by_id


# --- changes -------------------------------------------------------------------------------------------------------


def _audit_view(event: Event, areas: dict[str, bool] | None = None, links: list | None = None) -> dict[str, Any]:
    view = snapshot(event)
    if areas is not None:
        view["region_codes"] = sorted(code for code, named in areas.items() if named)
    if links is not None:
        view["links"] = [f"{kind}:{target}" for kind, target in links]
    return view


def _write_areas(session: Session, event: Event, area: _Area) -> None:
    session.execute(sa.delete(EventArea).where(EventArea.event_id == event.id))
    session.add_all(EventArea(event_id=event.id, region_code=code, named=named) for code, named in area.codes.items())


def _write_links(session: Session, event: Event, links: list[tuple[str, int]]) -> None:
    session.execute(sa.delete(EventLink).where(EventLink.event_id == event.id))
    session.add_all(EventLink(event_id=event.id, kind=kind, target_id=target) for kind, target in links)


def _timeline(
    session: Session, event: Event, *, kind: UpdateKind, note: str | None, by: User | None, now: datetime
) -> EventUpdate:
    update = EventUpdate(
        event_id=event.id,
        kind=kind.value,
        version=event.version,
        status=event.status,
        level=event.level,
        note=note,
        actor_id=by.id if by else None,
        created_at=now,
    )
    session.add(update)
    return update


def _announce(session: Session, *, settings: Settings, event: Event, kind: UpdateKind) -> None:
    """A published change goes to the live stream (after commit) and to the subscribers' outbox (in this commit)."""
    live.announce(session, event_id=event.id, version=event.version, kind=kind.value, status=event.status)
    subscriptions.notify_subscribers(session, settings=settings, event=event, kind=kind)


def raise_event(
    session: Session,
    *,
    settings: Settings,
    data: EventInput,
    by: User | None,
    actor: Actor,
    source: EventSource = EventSource.OPERATOR,
    note: str | None = None,
    now: datetime | None = None,
) -> Event:
    """Create an event: published at once, or a draft when approval is required of an operator's events."""
    # An event accepted from a cluster of reports is the accepting operator's: the same permission and approval.
    operator_made = source in (EventSource.OPERATOR, EventSource.REPORT_CLUSTER)
    if operator_made:
        _require_publisher(by)
    now = now or utcnow()
    category = _category(data.category)
    level = _level(category, data.level)
    title = clean_event_text(data.title, field_name="title", label=_("Title"), max_length=TITLE_MAX, required=True)
    description = clean_event_text(
        data.description, field_name="description", label=_("Description"), max_length=TEXT_MAX, required=True
    )
    instruction = clean_event_text(
        data.instruction, field_name="instruction", label=_("Instructions"), max_length=TEXT_MAX, required=False
    )
    note = clean_event_text(note, field_name="note", label=_("Note"), max_length=NOTE_MAX, required=False)
    starts_at, ends_at = _times(data.starts_at or now, data.ends_at)
    impacts = _impacts(data.impacts)
    area = _area(session, settings=settings, codes=data.region_codes, geometry=data.geometry)
    links = _links(session, data.links)
    draft = operator_made and settings.events_require_approval
    event = Event(
        category=category.value,
        level=level,
        title=title,
        description=description,
        instruction=instruction,
        status=(EventStatus.DRAF if draft else EventStatus.AKTIF).value,
        source=source.value,
        starts_at=starts_at,
        ends_at=ends_at,
        geometry=area.geometry,
        lat=area.lat,
        lon=area.lon,
        min_lon=area.bounds[0],
        min_lat=area.bounds[1],
        max_lon=area.bounds[2],
        max_lat=area.bounds[3],
        impacts=impacts,
        version=0 if draft else 1,
        agency_id=by.agency_id if by else None,
        created_by_id=by.id if by else None,
        created_at=now,
        updated_at=now,
        published_at=None if draft else now,
    )
    session.add(event)
    session.flush()
    _write_areas(session, event, area)
    _write_links(session, event, links)
    kind = UpdateKind.SUBMITTED if draft else UpdateKind.PUBLISHED
    _timeline(session, event, kind=kind, note=note, by=by, now=now)
    record_change(
        session, actor=actor, action="event.create", entity_type="event", entity_id=event.id,
        after=_audit_view(event, area.codes, links),
    )  # fmt: skip
    if not draft:
        _announce(session, settings=settings, event=event, kind=kind)
    return event


def _editable(session: Session, event_id: int) -> Event:
    event = get_event(session, event_id=event_id)
    if event.status not in (EventStatus.DRAF.value, *ONGOING_STATUSES):
        raise InvalidInput(
            _("The event has ended or was cancelled; publish a new one."),
            errors=[{"field": "status", "reason": "closed"}],
        )
    return event


def update_event(
    session: Session,
    *,
    settings: Settings,
    event_id: int,
    data: EventInput,
    by: User | None,
    actor: Actor,
    note: str | None = None,
    now: datetime | None = None,
) -> Event:
    """Change an ongoing event (level, text, area, impacts, times); published, it becomes a new version."""
    if by is not None or actor.user_id is not None:
        _require_publisher(by)
    now = now or utcnow()
    event = _editable(session, event_id)
    before = _audit_view(event)
    given = data.given
    category = _category(data.category) if "category" in given else EventCategory(event.category)
    level = _level(category, data.level if "level" in given else event.level)
    values: dict[str, Any] = {"category": category.value, "level": level}
    for name, label, limit, required in (
        ("title", _("Title"), TITLE_MAX, True),
        ("description", _("Description"), TEXT_MAX, True),
        ("instruction", _("Instructions"), TEXT_MAX, False),
    ):
        if name in given:
            values[name] = clean_event_text(
                getattr(data, name), field_name=name, label=label, max_length=limit, required=required
            )
    starts_at = data.starts_at if "starts_at" in given else event.starts_at
    ends_at = data.ends_at if "ends_at" in given else event.ends_at
    values["starts_at"], values["ends_at"] = _times(starts_at, ends_at)
    if "impacts" in given:
        values["impacts"] = _impacts(data.impacts)
    note = clean_event_text(note, field_name="note", label=_("Note"), max_length=NOTE_MAX, required=False)
    area = None
    if "region_codes" in given or "geometry" in given:
        codes = data.region_codes if "region_codes" in given else named_region_codes(session, event_id=event.id)
        geometry = data.geometry if "geometry" in given else (json.loads(event.geometry) if event.geometry else None)
        area = _area(session, settings=settings, codes=codes, geometry=geometry)
        values.update(
            geometry=area.geometry, lat=area.lat, lon=area.lon, min_lon=area.bounds[0], min_lat=area.bounds[1],
            max_lon=area.bounds[2], max_lat=area.bounds[3],
        )  # fmt: skip
    links = _links(session, data.links) if "links" in given else None
    for name, value in values.items():
        setattr(event, name, value)
    if area is not None:
        _write_areas(session, event, area)
    if links is not None:
        _write_links(session, event, links)
    published = event.status != EventStatus.DRAF.value
    if published:
        event.status = EventStatus.DIPERBARUI.value
        event.version += 1
    event.updated_at = now
    session.flush()
    _timeline(session, event, kind=UpdateKind.UPDATED, note=note, by=by, now=now)
    after = _audit_view(event, area.codes if area else None, links)
    record_change(
        session, actor=actor, action="event.update", entity_type="event", entity_id=event.id, before=before,
        after=after,
    )  # fmt: skip
    if published:
        _announce(session, settings=settings, event=event, kind=UpdateKind.UPDATED)
    return event


def _close(
    session: Session,
    *,
    settings: Settings,
    event_id: int,
    by: User | None,
    actor: Actor,
    note: str | None,
    status: EventStatus,
    kind: UpdateKind,
    action: str,
    now: datetime | None,
) -> Event:
    if by is not None or actor.user_id is not None:
        _require_publisher(by)
    now = now or utcnow()
    event = _editable(session, event_id)
    note = clean_event_text(note, field_name="note", label=_("Note"), max_length=NOTE_MAX, required=False)
    before = _audit_view(event)
    was_published = event.status != EventStatus.DRAF.value
    event.status = status.value
    event.updated_at = now
    event.ended_at = now
    if was_published:
        event.version += 1
    session.flush()
    _timeline(session, event, kind=kind, note=note, by=by, now=now)
    record_change(
        session, actor=actor, action=action, entity_type="event", entity_id=event.id, before=before,
        after=_audit_view(event),
    )  # fmt: skip
    if was_published:
        _announce(session, settings=settings, event=event, kind=kind)
    return event


def end_event(
    session: Session,
    *,
    settings: Settings,
    event_id: int,
    by: User | None,
    actor: Actor,
    note: str | None = None,
    now: datetime | None = None,
) -> Event:
    """Mark an event as over (the flood receded, the road reopened)."""
    return _close(
        session, settings=settings, event_id=event_id, by=by, actor=actor, note=note, status=EventStatus.SELESAI,
        kind=UpdateKind.ENDED, action="event.end", now=now,
    )  # fmt: skip


def cancel_event(
    session: Session,
    *,
    settings: Settings,
    event_id: int,
    by: User | None,
    actor: Actor,
    note: str | None = None,
    now: datetime | None = None,
) -> Event:
    """Withdraw an event that should not have been published, or a draft that will not be."""
    return _close(
        session, settings=settings, event_id=event_id, by=by, actor=actor, note=note, status=EventStatus.DIBATALKAN,
        kind=UpdateKind.CANCELLED, action="event.cancel", now=now,
    )  # fmt: skip


def approve_event(
    session: Session, *, settings: Settings, event_id: int, by: User, actor: Actor, now: datetime | None = None
) -> Event:
    """Publish a draft (four eyes: not by its own author unless an admin)."""
    now = now or utcnow()
    event = get_event(session, event_id=event_id)
    if event.status != EventStatus.DRAF.value:
        raise InvalidInput(_("Only a draft waits for approval."), errors=[{"field": "status", "reason": "not_draft"}])
    if not can_approve(by, event):
        raise PermissionDenied(_("A draft is approved by an admin or by another operator than its author."))
    before = _audit_view(event)
    event.status = EventStatus.AKTIF.value
    event.version = 1
    event.approved_by_id = by.id
    event.published_at = now
    event.updated_at = now
    session.flush()
    _timeline(session, event, kind=UpdateKind.PUBLISHED, note=None, by=by, now=now)
    record_change(
        session, actor=actor, action="event.approve", entity_type="event", entity_id=event.id, before=before,
        after=_audit_view(event),
    )  # fmt: skip
    _announce(session, settings=settings, event=event, kind=UpdateKind.PUBLISHED)
    return event


# --- reads ---------------------------------------------------------------------------------------------------------


def get_event(session: Session, *, event_id: int) -> Event:
    """An event by id, drafts included (the console); NotFound otherwise."""
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(_("Event not found."))
    return event


def get_public_event(session: Session, *, event_id: int) -> Event:
    """A published event by id; a draft is NotFound to the public."""
    event = session.get(Event, event_id)
    if event is None or EventStatus(event.status) not in PUBLIC_STATUSES:
        raise NotFound(_("Event not found."))
    return event


def named_region_codes(session: Session, *, event_id: int) -> list[str]:
    """The desa and kecamatan the publisher named for an event."""
    return sorted(_named_codes_of(session, event_ids=[event_id])[event_id])


def region_codes_of(session: Session, *, event_ids: list[int]) -> dict[int, list[str]]:
    """Every region (named, and the kecamatan of named desa) of each event."""
    found: dict[int, list[str]] = {event_id: [] for event_id in event_ids}
    if event_ids:
        rows = session.execute(
            sa.select(EventArea.event_id, EventArea.region_code)
            .where(EventArea.event_id.in_(event_ids))
            .order_by(EventArea.event_id, EventArea.region_code)
        )
        for event_id, code in rows:
            found[event_id].append(code)
    return found


def links_of(session: Session, *, event_id: int) -> list[tuple[str, int]]:
    """An event's links as (kind, id)."""
    return [
        (row.kind, row.target_id)
        for row in session.execute(
            sa.select(EventLink.kind, EventLink.target_id)
            .where(EventLink.event_id == event_id)
            .order_by(EventLink.kind, EventLink.target_id)
        )
    ]


def timeline(session: Session, *, event_id: int) -> list[EventUpdate]:
    """An event's timeline, oldest first (the notes are public; who wrote them is not shown to the public)."""
    return list(
        session.scalars(sa.select(EventUpdate).where(EventUpdate.event_id == event_id).order_by(EventUpdate.id))
    )


@dataclass(frozen=True)
class EventFilters:
    """Filters of the public list, the map and the feeds; None means any."""

    region_code: str | None = None
    categories: tuple[str, ...] | None = None
    min_level: str | None = None
    ongoing_only: bool = False
    activities_only: bool = False
    hazards_only: bool = False
    near: tuple[float, float, float] | None = None  # lat, lon, radius in km
    since: datetime | None = None


def _filtered(statement: sa.Select, filters: EventFilters) -> sa.Select:
    statuses = ONGOING_STATUSES if filters.ongoing_only else PUBLIC_STATUSES
    statement = statement.where(Event.status.in_([status.value for status in statuses]))
    if filters.region_code:
        statement = statement.where(
            Event.id.in_(sa.select(EventArea.event_id).where(EventArea.region_code == filters.region_code))
        )
    categories = set(filters.categories or [category.value for category in EventCategory])
    if filters.activities_only:
        categories &= {category.value for category in EventCategory if category.is_activity}
    if filters.hazards_only:
        categories &= {category.value for category in EventCategory if category.is_hazard}
    if categories != {category.value for category in EventCategory}:
        statement = statement.where(Event.category.in_(sorted(categories)))
    if filters.min_level:
        floor = AlertLevel(filters.min_level).rank
        statement = statement.where(Event.level.in_([level.value for level in AlertLevel if level.rank >= floor]))
    if filters.near:
        lat, lon, radius_km = filters.near
        # A box first (indexes and cheap comparisons); the distance is checked after, in Python.
        dlat = radius_km / 111.0
        dlon = radius_km / (111.0 * max(0.1, abs(math.cos(math.radians(lat)))))
        statement = statement.where(
            Event.max_lat >= lat - dlat, Event.min_lat <= lat + dlat,
            Event.max_lon >= lon - dlon, Event.min_lon <= lon + dlon,
        )  # fmt: skip
    if filters.since:
        statement = statement.where(Event.updated_at >= filters.since)
    return statement


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def list_public_events(session: Session, *, filters: EventFilters = EventFilters(), limit: int = 200) -> list[Event]:
    """Published events matching `filters`: ongoing ones first, warnings by level, then the newest. "Near" keeps
    the events whose area comes within the radius of the point (its box, or its centre for a point)."""
    level_rank = sa.case({level.value: level.rank for level in AlertLevel}, value=Event.level, else_=-1)
    ongoing = sa.case((Event.status.in_([s.value for s in ONGOING_STATUSES]), 1), else_=0)
    statement = _filtered(sa.select(Event), filters).order_by(
        ongoing.desc(), level_rank.desc(), Event.updated_at.desc(), Event.id.desc()
    )
    found = list(session.scalars(statement.limit(limit)))
    if filters.near:
        lat, lon, radius_km = filters.near
        found = [event for event in found if _box_distance_km(event, lat, lon) <= radius_km]
    return found


def _box_distance_km(event: Event, lat: float, lon: float) -> float:
    # The nearest point of the area's box to (lat, lon): zero inside it.
    nearest_lat = min(max(lat, event.min_lat), event.max_lat)
    nearest_lon = min(max(lon, event.min_lon), event.max_lon)
    return distance_km(lat, lon, nearest_lat, nearest_lon)


def list_console_events(session: Session, *, status: str | None = None, limit: int = 200) -> list[Event]:
    """Every event for the console, drafts first, then the newest."""
    statement = sa.select(Event)
    if status:
        statement = statement.where(Event.status == status)
    draft_first = sa.case((Event.status == EventStatus.DRAF.value, 0), else_=1)
    return list(session.scalars(statement.order_by(draft_first, Event.updated_at.desc()).limit(limit)))


# --- the public view -----------------------------------------------------------------------------------------------


def _labelled(member: Any) -> schemas.Labelled:
    return schemas.Labelled(value=member.value, label=member.label, colour=member.colour)


def _impact_rows(impacts: dict[str, int]) -> list[schemas.ImpactRead]:
    english = get_locale() == "en"
    return [
        schemas.ImpactRead(key=key, label=labels[1] if english else labels[0], value=impacts[key])
        for key, labels in IMPACT_FIELDS.items()
        if impacts.get(key) is not None
    ]


ATOM_URL = "/peristiwa/feed.atom"
CAP_INDEX_URL = "/peristiwa/cap.atom"


def feed_links() -> list[dict[str, str]]:
    """The feeds a page announces for autodiscovery (`<link rel="alternate">`): the Atom feed and the CAP index."""
    return [
        {"type": "application/atom+xml", "title": _("Events and warnings (Atom)"), "href": ATOM_URL},
        {"type": "application/atom+xml", "title": _("CAP 1.2 warnings"), "href": CAP_INDEX_URL},
    ]


def event_url(settings: Settings, event_id: int) -> str:
    """The public page of an event."""
    return f"{settings.public_base_url}/peristiwa/{event_id}"


def public_events(
    session: Session, *, settings: Settings, events: list[Event], with_timeline: bool = False
) -> list[schemas.EventRead]:
    """The public view of published events, in the request's language: the one function all public output of
    events goes through (API, pages, live stream, feeds), so none shows a draft, a staff name or a user id."""
    events = [event for event in events if EventStatus(event.status) in PUBLIC_STATUSES]
    return _views(session, settings=settings, events=events, with_timeline=with_timeline)


def draft_view(session: Session, *, settings: Settings, event: Event) -> schemas.EventRead:
    """A draft as its author and approvers see it in the API (the public never does)."""
    return _views(session, settings=settings, events=[event], with_timeline=False)[0]


def _views(
    session: Session, *, settings: Settings, events: list[Event], with_timeline: bool
) -> list[schemas.EventRead]:
    codes = region_codes_of(session, event_ids=[event.id for event in events])
    named = {
        event_id: set(found)
        for event_id, found in _named_codes_of(session, event_ids=[event.id for event in events]).items()
    }
    found_regions = regions.get_regions(session, codes={code for group in codes.values() for code in group})
    lines: dict[int, list[EventUpdate]] = {}
    if with_timeline and events:
        for update in session.scalars(
            sa.select(EventUpdate)
            .where(EventUpdate.event_id.in_([event.id for event in events]))
            .order_by(EventUpdate.id)
        ):
            lines.setdefault(update.event_id, []).append(update)
    views = []
    for event in events:
        category = EventCategory(event.category)
        status = EventStatus(event.status)
        shown = [code for code in codes[event.id] if code in named[event.id]] or codes[event.id]
        views.append(
            schemas.EventRead(
                id=event.id,
                url=event_url(settings, event.id),
                category=_labelled(category),
                group=_labelled(category.group),
                level=_labelled(AlertLevel(event.level)) if event.level else None,
                title=event.title,
                description=event.description,
                instruction=event.instruction,
                status=_labelled(status),
                ongoing=status in ONGOING_STATUSES,
                source=_labelled(EventSource(event.source)),
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                areas=[
                    schemas.AreaRead(code=code, name=found_regions[code].name, level=found_regions[code].level)
                    for code in shown
                    if code in found_regions
                ],
                lat=event.lat,
                lon=event.lon,
                geometry=json.loads(event.geometry) if event.geometry else None,
                impacts=_impact_rows(event.impacts or {}),
                version=event.version,
                published_at=event.published_at,
                updated_at=event.updated_at,
                timeline=[
                    schemas.TimelineEntry(
                        kind=_labelled(UpdateKind(line.kind)),
                        version=line.version,
                        status=_labelled(EventStatus(line.status)),
                        level=_labelled(AlertLevel(line.level)) if line.level else None,
                        note=line.note,
                        at=line.created_at,
                    )
                    for line in lines.get(event.id, [])
                    if line.kind != UpdateKind.SUBMITTED.value
                ]
                if with_timeline
                else None,
            )
        )
    return views


def public_event(
    session: Session, *, settings: Settings, event: Event, with_timeline: bool = True
) -> schemas.EventRead:
    """The public view of one published event, with its timeline."""
    return public_events(session, settings=settings, events=[event], with_timeline=with_timeline)[0]


def _named_codes_of(session: Session, *, event_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {event_id: [] for event_id in event_ids}
    if event_ids:
        for event_id, code in session.execute(
            sa.select(EventArea.event_id, EventArea.region_code).where(
                EventArea.event_id.in_(event_ids), EventArea.named.is_(True)
            )
        ):
            found[event_id].append(code)
    return found
