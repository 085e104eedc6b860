"""Console pages where operators and BPBD publish events: the list (drafts first), a new event, an event's page
to update it, end or cancel it, and to approve a draft. They call the same service functions as the API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.errors import DomainError, InvalidInput
from kotacerdas.events import service
from kotacerdas.events.enums import IMPACT_FIELDS, AlertLevel, EventCategory, EventGroup, EventStatus, UpdateKind
from kotacerdas.events.models import Event
from kotacerdas.i18n import _, get_locale
from kotacerdas.regions import service as regions
from kotacerdas.web.forms import PostedForm, render_form
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

EVENTS = "/konsol/peristiwa"
Publisher = Annotated[User, Depends(require(Permission.EVENTS_PUBLISH))]
Approver = Annotated[User, Depends(require(Permission.EVENTS_APPROVE))]
EventIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
TIME_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass
class EventForm:
    """The event form as posted (text as typed), so a refused form comes back as it was."""

    category: str = ""
    level: str = ""
    title: str = ""
    description: str = ""
    instruction: str = ""
    starts_at: str = ""
    ends_at: str = ""
    region_codes: list[str] = field(default_factory=list)
    geometry: str = ""
    impacts: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @classmethod
    def read(cls, posted: FormData) -> EventForm:
        def text(name: str) -> str:
            value = posted.get(name)
            return value.strip() if isinstance(value, str) else ""

        return cls(
            category=text("category"),
            level=text("level"),
            title=text("title"),
            description=text("description"),
            instruction=text("instruction"),
            starts_at=text("starts_at"),
            ends_at=text("ends_at"),
            region_codes=[code for code in posted.getlist("region_codes") if isinstance(code, str) and code],
            geometry=text("geometry"),
            impacts={key: text(f"impact_{key}") for key in IMPACT_FIELDS},
            note=text("note"),
        )

    @classmethod
    def of(cls, session: Session, settings: Settings, event: Event) -> EventForm:
        def local(value: datetime | None) -> str:
            return value.astimezone(settings.zone).strftime(TIME_FORMAT) if value else ""

        return cls(
            category=event.category,
            level=event.level or "",
            title=event.title,
            description=event.description,
            instruction=event.instruction or "",
            starts_at=local(event.starts_at),
            ends_at=local(event.ends_at),
            region_codes=service.named_region_codes(session, event_id=event.id),
            geometry=event.geometry or "",
            impacts={key: str(value) for key, value in (event.impacts or {}).items()},
        )

    def data(self, settings: Settings) -> service.EventInput:
        """The service's input; times typed in the regency's zone, numbers as whole numbers."""
        impacts: dict[str, Any] = {}
        for key, value in self.impacts.items():
            if value:
                if not value.isdecimal():
                    raise InvalidInput(
                        _("An impact figure is a whole number."),
                        errors=[{"field": f"impacts.{key}", "reason": "range"}],
                    )
                impacts[key] = int(value)
        geometry: Any = None
        if self.geometry:
            try:
                geometry = json.loads(self.geometry)
            except ValueError:
                geometry = self.geometry  # the service names what is wrong with it
        values = {
            "category": self.category,
            "level": self.level or None,
            "title": self.title,
            "description": self.description,
            "instruction": self.instruction or None,
            "starts_at": _local_time(self.starts_at, settings, "starts_at"),
            "ends_at": _local_time(self.ends_at, settings, "ends_at"),
            "region_codes": self.region_codes,
            "geometry": geometry,
            "impacts": impacts,
        }
        return service.EventInput(**values, given=frozenset(values))


def _local_time(value: str, settings: Settings, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:16], TIME_FORMAT).replace(tzinfo=settings.zone)
    except ValueError:
        raise InvalidInput(_("Give the date and time."), errors=[{"field": name, "reason": "format"}]) from None


def _form_context(session: Session, settings: Settings, form: EventForm) -> dict[str, Any]:
    english = get_locale() == "en"
    return {
        "form": form,
        "category_groups": [
            (group.label, [(c.value, c.label) for c in EventCategory if c.group is group]) for group in EventGroup
        ],
        "hazard_codes": [c.value for c in EventCategory if c.is_hazard],
        "level_options": AlertLevel.choices(),
        "regions": regions.list_kecamatan_with_villages(session, settings=settings),
        "impact_fields": [(key, labels[1] if english else labels[0]) for key, labels in IMPACT_FIELDS.items()],
    }


@router.get(EVENTS, response_class=HTMLResponse)
def console_events(request: Request, session: SessionDep, settings: SettingsDep, user: Publisher) -> HTMLResponse:
    """Every event, drafts first, with what the operator may do next."""
    events = service.list_console_events(session)
    return render(
        request,
        "events/console_list.html",
        {
            "events": events,
            "statuses": {status.value: status for status in EventStatus},
            "categories": {category.value: category for category in EventCategory},
            "levels": {level.value: level for level in AlertLevel},
            "done": request.query_params.get("done"),
        },
    )


@router.get(f"{EVENTS}/baru", response_class=HTMLResponse)
def new_event_page(request: Request, session: SessionDep, settings: SettingsDep, user: Publisher) -> HTMLResponse:
    """The form for a new event."""
    now = datetime.now(settings.zone).strftime(TIME_FORMAT)
    return render(request, "events/console_form.html", _form_context(session, settings, EventForm(starts_at=now)))


@router.post(f"{EVENTS}/baru", response_class=HTMLResponse)
def create_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, posted: PostedForm
) -> Response:
    """Publish the event from the form (or submit it for approval)."""
    form = EventForm.read(posted)
    try:
        event = service.raise_event(
            session, settings=settings, data=form.data(settings), by=user, actor=actor_of(request, user),
            note=form.note or None,
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        return render_form(request, "events/console_form.html", _form_context(session, settings, form), error=exc)
    return RedirectResponse(f"{EVENTS}/{event.id}?done=created", status_code=303)


def _event_page(
    request: Request, session: Session, settings: Settings, *, user: User, event: Event, form: EventForm | None = None,
    error: DomainError | None = None,
) -> HTMLResponse:  # fmt: skip
    notices = {
        "created": _("The event is published."),
        "saved": _("The update is published."),
        "ended": _("The event is marked as over."),
        "cancelled": _("The event is cancelled."),
        "approved": _("The draft is approved and published."),
    }
    context = _form_context(session, settings, form or EventForm.of(session, settings, event))
    if event.status == EventStatus.DRAF.value and event.version == 0 and request.query_params.get("done") == "created":
        notices["created"] = _("The event waits for approval by an admin or another operator.")
    context.update(
        event=event,
        status=EventStatus(event.status),
        timeline=service.timeline(session, event_id=event.id),
        statuses={status.value: status for status in EventStatus},
        levels={level.value: level for level in AlertLevel},
        kinds={kind.value: kind for kind in UpdateKind},
        editable=event.status in (EventStatus.DRAF.value, EventStatus.AKTIF.value, EventStatus.DIPERBARUI.value),
        may_approve=event.status == EventStatus.DRAF.value and service.can_approve(user, event),
        notice=notices.get(request.query_params.get("done") or ""),
    )
    return render_form(request, "events/console_event.html", context, error=error)


@router.get(EVENTS + "/{event_id}", response_class=HTMLResponse)
def console_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath
) -> HTMLResponse:
    """An event in the console: its form to publish an update, its timeline and its actions."""
    event = service.get_event(session, event_id=event_id)
    return _event_page(request, session, settings, user=user, event=event)


@router.post(EVENTS + "/{event_id}", response_class=HTMLResponse)
def update_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath,
    posted: PostedForm,
) -> Response:  # fmt: skip
    """Publish an update of the event from the form."""
    form = EventForm.read(posted)
    try:
        service.update_event(
            session, settings=settings, event_id=event_id, data=form.data(settings), by=user,
            actor=actor_of(request, user), note=form.note or None,
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        event = service.get_event(session, event_id=event_id)
        return _event_page(request, session, settings, user=user, event=event, form=form, error=exc)
    return RedirectResponse(f"{EVENTS}/{event_id}?done=saved", status_code=303)


def _close(request, session, settings, user, event_id: int, posted: FormData, *, action, done: str) -> Response:
    note = posted.get("note")
    try:
        action(
            session, settings=settings, event_id=event_id, by=user, actor=actor_of(request, user),
            note=note.strip() if isinstance(note, str) and note.strip() else None,
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        event = service.get_event(session, event_id=event_id)
        return _event_page(request, session, settings, user=user, event=event, error=exc)
    return RedirectResponse(f"{EVENTS}/{event_id}?done={done}", status_code=303)


@router.post(EVENTS + "/{event_id}/selesai", response_class=HTMLResponse)
def end_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath,
    posted: PostedForm,
) -> Response:  # fmt: skip
    """Mark the event as over."""
    return _close(request, session, settings, user, event_id, posted, action=service.end_event, done="ended")


@router.post(EVENTS + "/{event_id}/batal", response_class=HTMLResponse)
def cancel_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, event_id: EventIdPath,
    posted: PostedForm,
) -> Response:  # fmt: skip
    """Cancel the event (published in error, or a draft that will not be published)."""
    return _close(request, session, settings, user, event_id, posted, action=service.cancel_event, done="cancelled")


@router.post(EVENTS + "/{event_id}/setujui", response_class=HTMLResponse)
def approve_event(
    request: Request, session: SessionDep, settings: SettingsDep, user: Approver, event_id: EventIdPath
) -> Response:
    """Approve and publish a draft."""
    try:
        service.approve_event(session, settings=settings, event_id=event_id, by=user, actor=actor_of(request, user))
    except DomainError as exc:
        session.rollback()
        event = service.get_event(session, event_id=event_id)
        return _event_page(request, session, settings, user=user, event=event, error=exc)
    return RedirectResponse(f"{EVENTS}/{event_id}?done=approved", status_code=303)
