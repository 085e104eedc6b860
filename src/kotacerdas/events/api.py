"""JSON API of events and warnings under /api/v1: the public list and detail, and publishing for operators and BPBD
(create, update, end, cancel, approve; `events.publish` and `events.approve`). Bad input is a 4xx problem+json and
nothing of it is stored; every change is audited and announced (live stream, subscribers) by the service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.events import service
from kotacerdas.events.enums import AlertLevel, EventCategory
from kotacerdas.events.schemas import EventClose, EventCreate, EventPage, EventRead, EventUpdate
from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES, tags=["events"])

Publisher = Annotated[User, Depends(require(Permission.EVENTS_PUBLISH))]
Approver = Annotated[User, Depends(require(Permission.EVENTS_APPROVE))]
EventIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Event id")]
RegionCode = Annotated[
    str | None, Query(min_length=1, max_length=20, pattern=r"^[0-9.]+$", description="Kecamatan or desa code")
]
Categories = Annotated[
    str | None,
    Query(max_length=400, pattern=r"^[a-z_,]+$", description="Category codes separated by commas"),
]
LevelQuery = Annotated[
    AlertLevel | None, Query(description="Only disasters at this alert level or above: normal, waspada, siaga, awas")
]


def _input(body: EventCreate | EventUpdate, given: set[str]) -> service.EventInput:
    values: dict[str, Any] = {name: getattr(body, name) for name in given if name != "note"}
    return service.EventInput(**values, given=frozenset(values))


def _categories(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(code for code in value.split(",") if code)


def event_filters(
    kecamatan: RegionCode = None,
    desa: RegionCode = None,
    kategori: Categories = None,
    level_min: LevelQuery = None,
    aktif: Annotated[bool, Query(description="Only ongoing events")] = False,
    lat: Annotated[float | None, Query(ge=-90, le=90, description="Near this point (with lon)")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float, Query(gt=0, le=100)] = 10.0,
) -> service.EventFilters:
    """The public filters, shared by the API list and the pages."""
    categories = _categories(kategori)
    if categories:
        known = {category.value for category in EventCategory}
        categories = tuple(code for code in categories if code in known) or ("-",)
    return service.EventFilters(
        region_code=desa or kecamatan,
        categories=categories,
        min_level=level_min.value if level_min else None,
        ongoing_only=aktif,
        near=(lat, lon, radius_km) if lat is not None and lon is not None else None,
    )


Filters = Annotated[service.EventFilters, Depends(event_filters)]


@router.get("/events", response_model=EventPage)
def list_events(session: SessionDep, settings: SettingsDep, filters: Filters) -> EventPage:
    """Published events, ongoing warnings first by level, filtered by place, category, level and nearness."""
    found = service.list_public_events(session, filters=filters)
    items = service.public_events(session, settings=settings, events=found)
    return EventPage(items=items, count=len(items))


@router.get("/events/{event_id}", response_model=EventRead)
def get_event(session: SessionDep, settings: SettingsDep, event_id: EventIdPath) -> EventRead:
    """One published event with its public timeline."""
    event = service.get_public_event(session, event_id=event_id)
    return service.public_event(session, settings=settings, event=event)


def _answer(session, settings, event) -> EventRead:
    # A draft is not public yet; its author still gets it back, without a timeline.
    views = service.public_events(session, settings=settings, events=[event], with_timeline=True)
    return views[0] if views else service.draft_view(session, settings=settings, event=event)


@router.post("/events", response_model=EventRead, status_code=201)
def create_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, body: EventCreate
) -> EventRead:
    """Publish an event (or submit a draft when approval is required); needs events.publish."""
    event = service.raise_event(
        session, settings=settings, data=_input(body, body.model_fields_set | {"starts_at"}), by=user,
        actor=actor_of(request, user), note=body.note,
    )  # fmt: skip
    return _answer(session, settings, event)


@router.patch("/events/{event_id}", response_model=EventRead)
def update_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath,
    body: EventUpdate,
) -> EventRead:  # fmt: skip
    """Change an ongoing event; only the fields sent change, and a published event gets a new version."""
    event = service.update_event(
        session, settings=settings, event_id=event_id, data=_input(body, body.model_fields_set), by=user,
        actor=actor_of(request, user), note=body.note,
    )  # fmt: skip
    return _answer(session, settings, event)


@router.post("/events/{event_id}/end", response_model=EventRead)
def end_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath,
    body: EventClose,
) -> EventRead:  # fmt: skip
    """Mark an event as over, with a public note."""
    event = service.end_event(
        session, settings=settings, event_id=event_id, by=user, actor=actor_of(request, user), note=body.note
    )
    return _answer(session, settings, event)


@router.post("/events/{event_id}/cancel", response_model=EventRead)
def cancel_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath,
    body: EventClose,
) -> EventRead:  # fmt: skip
    """Withdraw an event published in error (or a draft), with a public note."""
    event = service.cancel_event(
        session, settings=settings, event_id=event_id, by=user, actor=actor_of(request, user), note=body.note
    )
    return _answer(session, settings, event)


@router.post("/events/{event_id}/approve", response_model=EventRead)
def approve_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Approver, event_id: EventIdPath
) -> EventRead:
    """Publish a draft; by an admin or by another operator than its author."""
    event = service.approve_event(session, settings=settings, event_id=event_id, by=user, actor=actor_of(request, user))
    return _answer(session, settings, event)
