"""Public pages of events: the live list and map at /peristiwa (updated through Server-Sent Events, no reload) and
an event's page with its timeline. They read through the same service functions as the API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import OptionalUser, SessionDep, SettingsDep
from kotacerdas.events import service
from kotacerdas.events.api import Filters
from kotacerdas.events.enums import AlertLevel, EventCategory, EventGroup
from kotacerdas.regions import service as regions
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

EventIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
STREAM_URL = "/api/v1/events/stream"


def _category_options() -> list[tuple[str, list[tuple[str, str]]]]:
    return [
        (group.label, [(category.value, category.label) for category in EventCategory if category.group is group])
        for group in EventGroup
    ]


@router.get("/peristiwa", response_class=HTMLResponse)
def events_page(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, filters: Filters
) -> HTMLResponse:
    """The live list and map of events: active warnings first, filters, and "near me" from the browser."""
    found = service.list_public_events(session, filters=filters)
    kecamatan = regions.list_kecamatan(session, settings=settings)
    query = {key: value for key, value in request.query_params.items() if value}
    views = service.public_events(session, settings=settings, events=found)
    return render(
        request,
        "events/public_list.html",
        {
            "events": views,
            # The same views as JSON for the map script (tojson escapes what could end the script element).
            "events_data": [view.model_dump(mode="json") for view in views],
            "query": query,
            "stream_url": f"{STREAM_URL}?{urlencode(query)}" if query else STREAM_URL,
            "kecamatan_options": [(region.code, region.name) for region in kecamatan],
            "category_groups": _category_options(),
            "level_options": AlertLevel.choices(),
            "feed_links": service.feed_links(),
            "near": filters.near,
        },
    )


@router.get("/peristiwa/{event_id}", response_class=HTMLResponse)
def event_page(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, event_id: EventIdPath
) -> HTMLResponse:
    """An event's page: level, area, impacts, the timeline of its updates and its feeds."""
    from kotacerdas.events import feeds  # the feed writers load on first use, not with the app

    event = service.get_public_event(session, event_id=event_id)
    view = service.public_event(session, settings=settings, event=event)
    return render(
        request,
        "events/public_event.html",
        {
            "event": view,
            "has_cap": feeds.has_cap(event.category),
            "is_activity": EventCategory(event.category).is_activity,
            "stream_url": STREAM_URL,
            "feed_links": service.feed_links(),
        },
    )
