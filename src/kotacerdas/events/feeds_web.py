"""The feeds of events over HTTP: Atom (/peristiwa/feed.atom), the CAP 1.2 messages of warnings and their Atom index
(/peristiwa/{id}/cap.xml, /peristiwa/{id}/cap/{version}.xml, /peristiwa/cap.atom), the iCalendar of public
activities (/peristiwa/kalender.ics, per kecamatan /peristiwa/kalender/{kode}.ics) and the GeoJSON of ongoing events
(/api/v1/events.geojson, the only one in the OpenAPI document).

They read through the public service functions only (published events, the public view), so no draft and no
personal data reaches a feed. Each answer carries an ETag and a short Cache-Control; a matching If-None-Match gets
304. The router is included before the events' pages and API, whose /peristiwa/{id} and /api/v1/events/{id} would
otherwise take these fixed paths."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep
from kotacerdas.errors import NotFound
from kotacerdas.events import service
from kotacerdas.events.api import Categories, Filters, LevelQuery, RegionCode, event_filters
from kotacerdas.events.enums import EventCategory
from kotacerdas.events.models import Event
from kotacerdas.i18n import _
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.regions import service as regions
from kotacerdas.regions.enums import RegionLevel

router = APIRouter(tags=["events"])

ATOM_LIMIT = 100
CAP_INDEX_LIMIT = 200
CALENDAR_LIMIT = 500
GEOJSON_LIMIT = 500
# A closed warning stays in the CAP index this long, so aggregators fetch its all-clear or cancel message.
CAP_INDEX_CLOSED_FOR = timedelta(hours=24)
MAX_AGE_S = 60
CALENDAR_MEDIA_TYPE = "text/calendar; charset=utf-8"
KECAMATAN_CODE = re.compile(r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}\Z")
EventIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Event id")]


class GeoJSONResponse(JSONResponse):
    """A GeoJSON answer (RFC 7946)."""

    media_type = "application/geo+json"


def _cached(request: Request, body: bytes, media_type: str, *, by_language: bool = True) -> Response:
    """`body` with an ETag and a short max-age; 304 when the client already has it."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE_S}"}
    if by_language:
        # Labels follow the visitor's language (?lang=, the cookie, Accept-Language).
        headers["Vary"] = "Accept-Language, Cookie"
    wanted = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in wanted or f"W/{etag}" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _sender_names(session: Session, settings: Settings, events: list[Event]) -> dict[int, str]:
    """The publishing OPD of each event (a public body, never a person), else the regency."""
    names = agencies.agency_names(session) if any(event.agency_id for event in events) else {}
    return {event.id: names.get(event.agency_id or 0) or settings.region_name for event in events}


def _self_url(settings: Settings, request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{settings.public_base_url}{request.url.path}{query}"


@router.get("/peristiwa/feed.atom", include_in_schema=False)
def atom_feed(request: Request, session: SessionDep, settings: SettingsDep, filters: Filters) -> Response:
    """Published events as Atom, newest update first (filters as on /peristiwa: kecamatan, desa, kategori, …)."""
    # The feed writers (Atom, CAP, iCalendar, GeoJSON) load with the first feed asked for, not with the app.
    from kotacerdas.events import feeds

    found = service.list_public_events(session, filters=filters, limit=ATOM_LIMIT)
    views = service.public_events(session, settings=settings, events=found)
    body = feeds.atom_feed(
        views,
        settings=settings,
        title=_("Events and warnings") + f" — {settings.region_name}",
        self_url=_self_url(settings, request),
        alternate_url=f"{settings.public_base_url}/peristiwa",
        sender_names=_sender_names(session, settings, found),
    )
    return _cached(request, body, feeds.ATOM_MEDIA_TYPE)


@router.get("/peristiwa/cap.atom", include_in_schema=False)
def cap_index(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The CAP index: the current CAP message of every ongoing warning and disruption, and of those closed in the
    last 24 hours (their all-clear or cancel message)."""
    from kotacerdas.events import feeds

    categories = tuple(category.value for category in EventCategory if feeds.has_cap(category.value))
    found = service.list_public_events(
        session, filters=service.EventFilters(categories=categories), limit=CAP_INDEX_LIMIT
    )
    recent = datetime.now(UTC) - CAP_INDEX_CLOSED_FOR
    views = service.public_events(session, settings=settings, events=found)
    kept = [view for view in views if view.ongoing or view.updated_at >= recent]
    names = _sender_names(session, settings, found)
    body = feeds.cap_index(
        [feeds.CapIndexEntry(view=view, sender_name=names[view.id]) for view in kept],
        settings=settings,
        title=_("CAP 1.2 warnings") + f" — {settings.region_name}",
        self_url=f"{settings.public_base_url}/peristiwa/cap.atom",
    )
    return _cached(request, body, feeds.ATOM_MEDIA_TYPE)


@router.get("/peristiwa/kalender.ics", include_in_schema=False)
def calendar(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The public activities (events, mobile services, posyandu and vaccination days) as iCalendar."""
    return _calendar(request, session, settings, region=None)


@router.get("/peristiwa/kalender/{kecamatan}.ics", include_in_schema=False)
def kecamatan_calendar(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    kecamatan: Annotated[str, Path(description="Kecamatan code")],
) -> Response:
    """The public activities of one kecamatan (by its Kemendagri code, e.g. 16.05.09) as iCalendar."""
    # Checked before the query: any text can arrive here, and PostgreSQL refuses some (a NUL) outright.
    region = regions.get_regions(session, codes=[kecamatan]).get(kecamatan) if KECAMATAN_CODE.match(kecamatan) else None
    if region is None or region.level != RegionLevel.KECAMATAN.value or region.parent_code != settings.region_code:
        raise NotFound(_("There is no kecamatan with this code."))
    return _calendar(request, session, settings, region=region)


def _calendar(request: Request, session: Session, settings: Settings, *, region: Any) -> Response:
    from kotacerdas.events import feeds

    filters = service.EventFilters(region_code=region.code if region else None, activities_only=True)
    found = service.list_public_events(session, filters=filters, limit=CALENDAR_LIMIT)
    views = service.public_events(session, settings=settings, events=found)
    place = f"{region.name}, {settings.region_name}" if region else settings.region_name
    body = feeds.calendar(views, settings=settings, name=_("Public activities") + f" — {place}")
    return _cached(request, body, CALENDAR_MEDIA_TYPE)


def _cap_view(session: Session, settings: Settings, event_id: int) -> tuple[Any, Event]:
    from kotacerdas.events import feeds

    event = service.get_public_event(session, event_id=event_id)
    if not feeds.has_cap(event.category):
        raise NotFound(_("This event has no CAP message: only warnings and service disruptions do."))
    return service.public_event(session, settings=settings, event=event, with_timeline=True), event


def _cap_answer(request: Request, session: Session, settings: Settings, event_id: int, version: int | None):
    from kotacerdas.events import feeds

    view, event = _cap_view(session, settings, event_id)
    radius = feeds.area_radius_km(
        lat=event.lat, lon=event.lon, bounds=(event.min_lon, event.min_lat, event.max_lon, event.max_lat)
    )
    try:
        body = feeds.cap_message(
            view,
            settings=settings,
            version=version,
            sender_name=_sender_names(session, settings, [event])[event.id],
            radius_km=radius,
        )
    except LookupError:
        raise NotFound(_("This event has no such CAP message version.")) from None
    # A CAP message carries both languages; it does not vary with the visitor's.
    return _cached(request, body, feeds.CAP_MEDIA_TYPE, by_language=False)


@router.get("/peristiwa/{event_id}/cap.xml", include_in_schema=False)
def cap_current(request: Request, session: SessionDep, settings: SettingsDep, event_id: EventIdPath) -> Response:
    """The current CAP 1.2 message of a warning or a service disruption."""
    return _cap_answer(request, session, settings, event_id, None)


@router.get("/peristiwa/{event_id}/cap/{version}.xml", include_in_schema=False)
def cap_version(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    event_id: EventIdPath,
    version: Annotated[str, Path(description="Version number")],
) -> Response:
    """The CAP 1.2 message of one published version of a warning (1 is the first); 404 for any other."""
    if not (version.isascii() and version.isdigit() and len(version) <= 10 and 1 <= int(version) <= MAX_INT_ID):
        raise NotFound(_("This event has no such CAP message version."))
    return _cap_answer(request, session, settings, event_id, int(version))


FEATURE_COLLECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": {"type": "string", "enum": ["Feature"]},
                    "id": {"type": "integer"},
                    "geometry": {
                        "type": "object",
                        "required": ["type", "coordinates"],
                        "properties": {
                            "type": {"type": "string", "enum": ["Point", "Polygon", "MultiPolygon"]},
                            "coordinates": {"type": "array"},
                        },
                    },
                    "properties": {"type": "object"},
                },
            },
        },
    },
}


@router.get(
    "/api/v1/events.geojson",
    response_class=GeoJSONResponse,
    responses={
        **PROBLEM_RESPONSES,
        200: {
            "description": "Ongoing events as an RFC 7946 FeatureCollection",
            "content": {"application/geo+json": {"schema": FEATURE_COLLECTION_SCHEMA}},
        },
        304: {"description": "Not modified (the If-None-Match ETag still holds)"},
    },
)
def events_geojson(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    kecamatan: RegionCode = None,
    desa: RegionCode = None,
    kategori: Categories = None,
    level_min: LevelQuery = None,
) -> Response:
    """Ongoing published events as GeoJSON: the drawn area or the event's point, with its category, level, status,
    times and page; filtered by place, category and level like the list."""
    from kotacerdas.events import feeds

    filters = event_filters(kecamatan=kecamatan, desa=desa, kategori=kategori, level_min=level_min, aktif=True)
    found = service.list_public_events(session, filters=filters, limit=GEOJSON_LIMIT)
    views = service.public_events(session, settings=settings, events=found)
    body = GeoJSONResponse(feeds.feature_collection(views)).body
    return _cached(request, body, GeoJSONResponse.media_type)
