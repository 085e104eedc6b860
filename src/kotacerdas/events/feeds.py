"""The feeds of events, built from the public view (`service.public_events`) and nothing else: Atom for feed readers,
OASIS CAP 1.2 for warning aggregators, iCalendar (RFC 5545) for calendars and GeoJSON (RFC 7946) for maps.

Pure builders: they take views and settings and return bytes (or a dict); the queries are in `service` and the
endpoints in `feeds_web`. XML goes through a real serializer (ElementTree), and characters XML 1.0 cannot hold are
dropped on the way out, so a feed is well-formed whatever text it carries. Mappings are described in docs/events.md.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kotacerdas.config import Settings
from kotacerdas.events.enums import AlertLevel, EventCategory, EventGroup, EventStatus
from kotacerdas.events.schemas import EventRead, Labelled
from kotacerdas.i18n import _

ATOM_NS = "http://www.w3.org/2005/Atom"
GEORSS_NS = "http://www.georss.org/georss"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"
# The geocode valueName of a Kemendagri region code (e.g. 16.05.09.2001), as Indonesian CAP producers name it.
GEOCODE_NAME = "KEMENDAGRI"
HEADLINE_MAX = 160  # CAP 1.2: "SHOULD be less than 160 characters"
# What XML 1.0 can hold (its `Char` production); anything else is dropped from the output.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# --- which events, and how they map to CAP ---------------------------------------------------------------------

CAP_CATEGORIES: dict[EventCategory, tuple[str, ...]] = {
    EventCategory.BANJIR: ("Met",),  # CAP 1.2: "Met - Meteorological (inc. flood)"
    EventCategory.TANAH_LONGSOR: ("Geo",),  # "Geo - Geophysical (inc. landslide)"
    EventCategory.KARHUTLA: ("Fire", "Env"),  # the fire, and the haze it brings
    EventCategory.PUTING_BELIUNG: ("Met",),
    EventCategory.KEBAKARAN_PERMUKIMAN: ("Fire",),
    EventCategory.JALAN_DITUTUP: ("Transport",),
    EventCategory.JEMBATAN_PUTUS: ("Transport", "Infra"),
    EventCategory.LISTRIK_PADAM: ("Infra",),
    EventCategory.AIR_BERSIH_TERGANGGU: ("Infra",),
    EventCategory.TELEKOMUNIKASI_TERGANGGU: ("Infra",),
}
# Alert level → (urgency, severity, certainty).
LEVEL_CAP: dict[AlertLevel, tuple[str, str, str]] = {
    AlertLevel.NORMAL: ("Future", "Minor", "Possible"),
    AlertLevel.WASPADA: ("Expected", "Moderate", "Possible"),
    AlertLevel.SIAGA: ("Expected", "Severe", "Likely"),
    AlertLevel.AWAS: ("Immediate", "Extreme", "Observed"),
}
# A service disruption has no level: a minor, observed (or, before it starts, likely) event.
DISRUPTION_CAP = ("Immediate", "Minor", "Observed")
DISRUPTION_CAP_AHEAD = ("Expected", "Minor", "Likely")
ENDED_CAP = ("Past", "Minor", "Observed")
CANCELLED_CAP = ("Past", "Minor", "Unlikely")
# An ended or cancelled message stays in aggregators for a day, so they learn the warning is over.
CLOSED_EXPIRES = timedelta(hours=24)


def has_cap(category: str) -> bool:
    """True for the events that get CAP messages: disasters (always with a level) and service disruptions."""
    try:
        return EventCategory(category).group in (EventGroup.BENCANA, EventGroup.GANGGUAN_LAYANAN)
    except ValueError:
        return False


# --- text and time ---------------------------------------------------------------------------------------------


def xml_text(value: Any) -> str:
    """`value` as text XML 1.0 can hold (the characters it cannot are dropped)."""
    return _NOT_XML.sub("", "" if value is None else str(value))


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cap_time(value: datetime, settings: Settings) -> str:
    """A CAP time: in the regency's zone with its offset, whole seconds, never `Z` (2026-12-01T08:00:00+07:00)."""
    return value.astimezone(settings.zone).replace(microsecond=0).isoformat()


def atom_time(value: datetime) -> str:
    """An RFC 3339 time in UTC for Atom."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: Any = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {key: xml_text(value) for key, value in attributes.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _serialize(root: ET.Element, namespace: str) -> bytes:
    # Plain tags under a declared default namespace: ElementTree's own namespace handling registers prefixes
    # globally (shared by every thread) and refuses unqualified attributes with a default namespace.
    root.set("xmlns", namespace)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- CAP 1.2 ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapVersion:
    """One published state of an event, as its timeline stored it: the CAP message of that version."""

    version: int
    status: str
    level: str | None
    sent: datetime
    note: str | None


def cap_versions(view: EventRead) -> list[CapVersion]:
    """The published versions of an event, oldest first, from its public timeline (the view needs one)."""
    found: dict[int, CapVersion] = {}
    for line in view.timeline or []:
        if line.version >= 1:
            found[line.version] = CapVersion(
                version=line.version,
                status=line.status.value,
                level=line.level.value if line.level else None,
                sent=line.at,
                note=line.note,
            )
    if view.version >= 1 and view.version not in found:
        # A published event always has its timeline line; this only keeps the current message reachable.
        found[view.version] = CapVersion(
            view.version, view.status.value, view.level.value if view.level else None, view.updated_at, None
        )
    return [found[number] for number in sorted(found)]


def cap_identifier(settings: Settings, event_id: int, version: int) -> str:
    """The CAP identifier of one version of an event: stable, and without the spaces, commas, `<` or `&` CAP forbids."""
    return f"{_incident(settings, event_id)}:{version}"


def _domain(settings: Settings) -> str:
    return settings.cap_sender.rpartition("@")[2] or "kotacerdas"


def _incident(settings: Settings, event_id: int) -> str:
    # Every version of an event is one incident; CAP's `incidents` groups their messages.
    return f"urn:kotacerdas:{_domain(settings)}:event:{event_id}"


def cap_url(settings: Settings, event_id: int, version: int | None = None) -> str:
    """Where a CAP message is served: the current one, or one version's."""
    base = f"{settings.public_base_url}/peristiwa/{event_id}/cap"
    return f"{base}.xml" if version is None else f"{base}/{version}.xml"


def cap_msg_type(state: CapVersion) -> str:
    """Alert for the first version, Cancel for a cancelled event, Update otherwise (an ended event included)."""
    if state.status == EventStatus.DIBATALKAN.value:
        return "Cancel"
    return "Alert" if state.version == 1 else "Update"


def cap_assessment(view: EventRead, state: CapVersion) -> tuple[str, str, str]:
    """(urgency, severity, certainty) of one version."""
    if state.status == EventStatus.DIBATALKAN.value:
        return CANCELLED_CAP
    if state.status == EventStatus.SELESAI.value:
        return ENDED_CAP
    if state.level:
        return LEVEL_CAP[AlertLevel(state.level)]
    return DISRUPTION_CAP if view.starts_at <= state.sent else DISRUPTION_CAP_AHEAD


def _polygons(geometry: dict[str, Any] | None) -> list[str]:
    """The outer rings of a drawn area as CAP polygons ("lat,lon lat,lon …", closed); CAP has no holes."""
    if not geometry:
        return []
    if geometry.get("type") == "Polygon":
        rings = [geometry["coordinates"][0]]
    elif geometry.get("type") == "MultiPolygon":
        rings = [polygon[0] for polygon in geometry["coordinates"]]
    else:
        return []
    found = []
    for ring in rings:
        points = [(float(point[1]), float(point[0])) for point in ring]
        if points and points[0] != points[-1]:
            points.append(points[0])
        if len(points) >= 4:
            found.append(" ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in points))
    return found


def area_radius_km(*, lat: float, lon: float, bounds: tuple[float, float, float, float] | None) -> float:
    """The radius of a circle around (lat, lon) that covers an area's box (min_lon, min_lat, max_lon, max_lat);
    at least 1 km, so a point still names a place."""
    from kotacerdas.events.service import distance_km

    if bounds is None:
        return 1.0
    min_lon, min_lat, max_lon, max_lat = bounds
    corners = ((min_lat, min_lon), (min_lat, max_lon), (max_lat, min_lon), (max_lat, max_lon))
    return round(max(1.0, *(distance_km(lat, lon, corner[0], corner[1]) for corner in corners)), 1)


def _cap_info(
    alert: ET.Element,
    view: EventRead,
    state: CapVersion,
    *,
    settings: Settings,
    locale: str,
    sender_name: str,
    radius_km: float,
) -> None:
    category = EventCategory(view.category.value)
    english = locale == "en"
    urgency, severity, certainty = cap_assessment(view, state)
    info = _sub(alert, "info")
    _sub(info, "language", "en-US" if english else "id-ID")
    for name in CAP_CATEGORIES.get(category, ("Other",)):
        _sub(info, "category", name)
    _sub(info, "event", category.label_en if english else category.label_id)
    if state.status == EventStatus.SELESAI.value:
        _sub(info, "responseType", "AllClear")
    _sub(info, "urgency", urgency)
    _sub(info, "severity", severity)
    _sub(info, "certainty", certainty)
    code = _sub(info, "eventCode")
    _sub(code, "valueName", "kotacerdas:kategori")
    _sub(code, "value", category.value)
    _sub(info, "effective", cap_time(state.sent, settings))
    _sub(info, "onset", cap_time(view.starts_at, settings))
    if state.status in (EventStatus.SELESAI.value, EventStatus.DIBATALKAN.value):
        _sub(info, "expires", cap_time(state.sent + CLOSED_EXPIRES, settings))
    elif view.ends_at is not None:
        _sub(info, "expires", cap_time(view.ends_at, settings))
    _sub(info, "senderName", sender_name)
    status = EventStatus(state.status)
    prefix = AlertLevel(state.level) if state.level else None
    label = (prefix.label_en if english else prefix.label_id) if prefix else None
    headline = f"{label}: {view.title}" if label else view.title
    if status in (EventStatus.SELESAI, EventStatus.DIBATALKAN):
        headline = f"{status.label_en if english else status.label_id}: {view.title}"
    _sub(info, "headline", _shortened(xml_text(headline), HEADLINE_MAX))
    _sub(info, "description", view.description)
    if view.instruction and status not in (EventStatus.SELESAI, EventStatus.DIBATALKAN):
        _sub(info, "instruction", view.instruction)
    _sub(info, "web", view.url)
    if state.level:
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", "kotacerdas:tingkat")
        _sub(parameter, "value", state.level)
    area = _sub(info, "area")
    _sub(area, "areaDesc", ", ".join(region.name for region in view.areas) or settings.region_name)
    polygons = _polygons(view.geometry)
    for polygon in polygons:
        _sub(area, "polygon", polygon)
    if not polygons:
        _sub(area, "circle", f"{view.lat:.6f},{view.lon:.6f} {radius_km:.1f}")
    for region in view.areas:
        geocode = _sub(area, "geocode")
        _sub(geocode, "valueName", GEOCODE_NAME)
        _sub(geocode, "value", region.code)


def cap_message(
    view: EventRead, *, settings: Settings, version: int | None = None, sender_name: str, radius_km: float = 1.0
) -> bytes:
    """The CAP 1.2 message of one version of an event (the current one by default); LookupError when the event has
    no such version. An earlier version carries that version's level, status, time and note, with the event's
    current text and area (the text of earlier versions is not kept)."""
    versions = cap_versions(view)
    chosen = [state for state in versions if state.version == (version or view.version)]
    if not chosen:
        raise LookupError(version)
    state = chosen[0]
    earlier = [previous for previous in versions if previous.version < state.version]
    plain = ET.Element("alert")
    _sub(plain, "identifier", cap_identifier(settings, view.id, state.version))
    _sub(plain, "sender", settings.cap_sender)
    _sub(plain, "sent", cap_time(state.sent, settings))
    _sub(plain, "status", "Actual")
    _sub(plain, "msgType", cap_msg_type(state))
    _sub(plain, "scope", "Public")
    if state.note:
        _sub(plain, "note", state.note)
    if earlier:
        _sub(
            plain,
            "references",
            " ".join(
                f"{settings.cap_sender},{cap_identifier(settings, view.id, old.version)},{cap_time(old.sent, settings)}"
                for old in earlier
            ),
        )
    _sub(plain, "incidents", _incident(settings, view.id))
    for locale in ("id", "en"):
        _cap_info(plain, view, state, settings=settings, locale=locale, sender_name=sender_name, radius_km=radius_km)
    return _serialize(plain, CAP_NS)


# --- Atom ------------------------------------------------------------------------------------------------------


CATEGORY_SCHEME = "urn:kotacerdas:kategori"
LEVEL_SCHEME = "urn:kotacerdas:tingkat"


def _category(entry: ET.Element, value: Labelled, scheme: str) -> None:
    _sub(entry, "category", term=value.value, label=value.label, scheme=scheme)


def _atom_root(*, feed_id: str, title: str, self_url: str, alternate_url: str, updated: datetime) -> ET.Element:
    feed = ET.Element("feed", {"xmlns:georss": GEORSS_NS})
    _sub(feed, "id", feed_id)
    _sub(feed, "title", title, type="text")
    _sub(feed, "updated", atom_time(updated))
    _sub(feed, "link", rel="self", type=ATOM_MEDIA_TYPE, href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=alternate_url)
    _sub(feed, "generator", "kotacerdas")
    return feed


def _latest(views: Iterable[EventRead]) -> datetime:
    return max((view.updated_at for view in views), default=datetime.now(UTC))


def _plain_content(view: EventRead) -> str:
    """The full text of an event for a feed reader, plain text with labelled lines."""
    lines = [view.description]
    if view.instruction:
        lines += ["", _("What to do: %(text)s") % {"text": view.instruction}]
    lines.append("")
    lines.append(_("Status: %(status)s") % {"status": view.status.label})
    if view.level:
        lines.append(_("Alert level: %(level)s") % {"level": view.level.label})
    if view.areas:
        lines.append(_("Area: %(names)s") % {"names": ", ".join(region.name for region in view.areas)})
    for impact in view.impacts:
        lines.append(f"{impact.label}: {impact.value}")
    return "\n".join(lines)


def atom_feed(
    views: list[EventRead],
    *,
    settings: Settings,
    title: str,
    self_url: str,
    alternate_url: str,
    sender_names: dict[int, str],
) -> bytes:
    """An Atom feed of events, newest update first: each entry links the event's page (and its CAP message for a
    warning), with its category, level and place."""
    views = sorted(views, key=lambda view: (view.updated_at, view.id), reverse=True)
    feed = _atom_root(
        feed_id=f"{settings.public_base_url}/peristiwa/feed.atom",
        title=title,
        self_url=self_url,
        alternate_url=alternate_url,
        updated=_latest(views),
    )
    for view in views:
        entry = _sub(feed, "entry")
        # The event's page is its id: one entry per event, which each update replaces in the reader.
        _sub(entry, "id", view.url)
        _sub(entry, "title", view.title, type="text")
        _sub(entry, "updated", atom_time(view.updated_at))
        _sub(entry, "published", atom_time(view.published_at or view.updated_at))
        author = _sub(entry, "author")
        _sub(author, "name", sender_names.get(view.id) or settings.region_name)
        _sub(entry, "link", rel="alternate", type="text/html", href=view.url)
        if has_cap(view.category.value):
            _sub(entry, "link", rel="related", type=CAP_MEDIA_TYPE, href=cap_url(settings, view.id))
        _category(entry, view)
        if view.level:
            _sub(entry, "category", term=view.level.value, label=view.level.label, scheme="urn:kotacerdas:tingkat")
        _sub(entry, "summary", _shortened(xml_text(view.description), 500), type="text")
        _sub(entry, "content", _plain_content(view), type="text")
        _sub(entry, "georss:point", f"{view.lat:.6f} {view.lon:.6f}")
    return _serialize(feed, ATOM_NS)


def _category(entry: ET.Element, view: EventRead) -> None:
    _sub(entry, "category", term=view.category.value, label=view.category.label, scheme="urn:kotacerdas:kategori")


@dataclass(frozen=True)
class CapIndexEntry:
    """A warning in the CAP index: its public view, the version of its current message and its sender's name."""

    view: EventRead
    sender_name: str


def cap_index(entries: list[CapIndexEntry], *, settings: Settings, title: str, self_url: str) -> bytes:
    """The CAP index as Atom (as alert hubs read it): one entry per current message, linking its CAP XML."""
    entries = sorted(entries, key=lambda entry: (entry.view.updated_at, entry.view.id), reverse=True)
    feed = _atom_root(
        feed_id=f"{settings.public_base_url}/peristiwa/cap.atom",
        title=title,
        self_url=self_url,
        alternate_url=f"{settings.public_base_url}/peristiwa",
        updated=_latest(entry.view for entry in entries),
    )
    for item in entries:
        view = item.view
        entry = _sub(feed, "entry")
        # One entry per message: a new version is a new message with its own identifier.
        _sub(entry, "id", cap_identifier(settings, view.id, view.version))
        headline = f"{view.level.label}: {view.title}" if view.level else view.title
        _sub(entry, "title", headline, type="text")
        _sub(entry, "updated", atom_time(view.updated_at))
        _sub(entry, "published", atom_time(view.updated_at))
        author = _sub(entry, "author")
        _sub(author, "name", item.sender_name)
        _sub(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=cap_url(settings, view.id, view.version))
        _sub(entry, "link", rel="related", type="text/html", href=view.url)
        _category(entry, view)
        _sub(entry, "summary", _shortened(xml_text(view.description), 500), type="text")
        _sub(entry, "georss:point", f"{view.lat:.6f} {view.lon:.6f}")
    return _serialize(feed, ATOM_NS)


# --- iCalendar -------------------------------------------------------------------------------------------------


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def _ical_text(value: str, *, multiline: bool = False) -> str:
    """Text an iCalendar content line can hold: RFC 5545 allows no control character but a tab (line breaks are
    escaped by the serializer in a multi-line value)."""
    value = xml_text(value).replace("\r\n", "\n").replace("\r", "\n")
    if not multiline:
        value = value.replace("\n", " ")
    return _CONTROL.sub("", value)


def calendar(views: list[EventRead], *, settings: Settings, name: str, now: datetime | None = None) -> bytes:
    """An iCalendar (RFC 5545) of public activities: one VEVENT per event, its UID stable, SEQUENCE its version."""
    from icalendar import Calendar, Event, vGeo, vText

    stamp = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    domain = _domain(settings)
    cal = Calendar()
    cal.add("prodid", "-//kotacerdas//peristiwa//ID")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", vText(_ical_text(name)))
    cal.add("x-wr-timezone", settings.timezone)
    for view in sorted(views, key=lambda view: (view.starts_at, view.id)):
        item = Event()
        item.add("uid", f"event-{view.id}@{domain}")
        item.add("dtstamp", stamp)
        item.add("dtstart", view.starts_at.astimezone(UTC).replace(microsecond=0))
        if view.ends_at is not None:
            item.add("dtend", view.ends_at.astimezone(UTC).replace(microsecond=0))
        item.add("last-modified", view.updated_at.astimezone(UTC).replace(microsecond=0))
        item.add("summary", _ical_text(view.title))
        item.add("description", _ical_text(_plain_content(view), multiline=True))
        if view.areas:
            item.add("location", _ical_text(", ".join(region.name for region in view.areas)))
        item.add("url", view.url)
        item.add("geo", vGeo((round(view.lat, 6), round(view.lon, 6))))
        item.add("categories", [_ical_text(view.category.label)])
        item.add("status", "CANCELLED" if view.status.value == EventStatus.DIBATALKAN.value else "CONFIRMED")
        item.add("sequence", view.version)
        item.add("transp", "TRANSPARENT")
        cal.add_component(item)
    return cal.to_ical()


# --- GeoJSON ---------------------------------------------------------------------------------------------------


def _rfc7946_geometry(view: EventRead) -> dict[str, Any]:
    """The drawn area with its outer rings counterclockwise (RFC 7946's right-hand rule), or the event's point."""
    geometry = view.geometry
    if geometry and geometry.get("type") in ("Polygon", "MultiPolygon"):
        from shapely.geometry import mapping, shape
        from shapely.geometry.polygon import orient

        drawn = shape(geometry)
        parts = [orient(polygon, sign=1.0) for polygon in getattr(drawn, "geoms", [drawn])]
        found = mapping(parts[0] if geometry["type"] == "Polygon" else type(drawn)(parts))
        return _lists(found)
    if geometry and geometry.get("type") == "Point":
        return {"type": "Point", "coordinates": list(geometry["coordinates"][:2])}
    return {"type": "Point", "coordinates": [round(view.lon, 7), round(view.lat, 7)]}


def _lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value


def feature_collection(views: list[EventRead]) -> dict[str, Any]:
    """Events as an RFC 7946 FeatureCollection (longitude first; outer rings counterclockwise)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": view.id,
                "geometry": _rfc7946_geometry(view),
                "properties": {
                    "id": view.id,
                    "title": view.title,
                    "category": view.category.value,
                    "category_label": view.category.label,
                    "group": view.group.value,
                    "level": view.level.value if view.level else None,
                    "level_label": view.level.label if view.level else None,
                    "status": view.status.value,
                    "status_label": view.status.label,
                    "colour": (view.level or view.category).colour,
                    "starts_at": view.starts_at.isoformat(),
                    "ends_at": view.ends_at.isoformat() if view.ends_at else None,
                    "updated_at": view.updated_at.isoformat(),
                    "version": view.version,
                    "url": view.url,
                },
            }
            for view in views
        ],
    }
