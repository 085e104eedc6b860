"""The console page of event suggestions from clusters of citizen reports (/konsol/peristiwa/saran): each open
suggestion with its reports, a prefilled event form to accept it ("Terima") and a button to dismiss it ("Abaikan").
Needs events.publish; every decision is audited by the service."""

from __future__ import annotations

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
from kotacerdas.errors import DomainError, NotFound
from kotacerdas.events import clusters, service
from kotacerdas.events.clusters import SuggestionStatus
from kotacerdas.events.enums import AlertLevel, EventCategory
from kotacerdas.events.models import EventSuggestion
from kotacerdas.i18n import _, get_locale
from kotacerdas.regions import service as regions
from kotacerdas.reports.enums import ReportStatus
from kotacerdas.web.forms import PostedForm, render_form

router = APIRouter(include_in_schema=False)

PAGE = "/konsol/peristiwa/saran"
Publisher = Annotated[User, Depends(require(Permission.EVENTS_PUBLISH))]
SuggestionIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
RECENT_DECIDED = 20


def _form_of(session: Session, settings: Settings, suggestion: EventSuggestion) -> dict[str, str]:
    text = clusters.draft_text(session, settings=settings, suggestion=suggestion)
    return {"category": "banjir", "level": "", "title": text["title"], "description": text["description"],
            "instruction": ""}  # fmt: skip


def _read(posted: FormData) -> dict[str, str]:
    def text(name: str) -> str:
        value = posted.get(name)
        return value.strip() if isinstance(value, str) else ""

    return {name: text(name) for name in ("category", "level", "title", "description", "instruction")}


def _page(
    request: Request, session: Session, settings: Settings, *, failed: int | None = None,
    form: dict[str, str] | None = None, error: DomainError | None = None,
) -> HTMLResponse:  # fmt: skip
    open_ones = clusters.list_suggestions(session, status=SuggestionStatus.OPEN.value)
    decided = clusters.list_suggestions(session, status=None, limit=RECENT_DECIDED + len(open_ones))
    decided = [s for s in decided if s.status != SuggestionStatus.OPEN.value][:RECENT_DECIDED]
    reports = clusters.suggestion_reports(session, suggestions=open_ones)
    codes = {s.kecamatan_code for s in open_ones + decided if s.kecamatan_code}
    codes |= {code for s in open_ones for code in (s.details or {}).get("desa_codes", [])}
    names = {code: region.name for code, region in regions.get_regions(session, codes=codes).items()}
    forms: dict[int, dict[str, Any]] = {s.id: _form_of(session, settings, s) for s in open_ones}
    if failed is not None and form is not None:
        forms[failed] = form
    english = get_locale() == "en"
    done = {
        "dismissed": _("The suggestion is dismissed."),
    }.get(request.query_params.get("done") or "")
    return render_form(
        request,
        "events/console_suggestions.html",
        {
            "suggestions": open_ones,
            "decided": decided,
            "reports": reports,
            "names": names,
            "villages_of": {
                s.id: [names[code] for code in (s.details or {}).get("desa_codes", []) if code in names]
                for s in open_ones
            },
            "report_statuses": {status.value: status for status in ReportStatus},
            "forms": forms,
            "failed": failed,
            "english": english,
            "statuses": {status.value: status for status in SuggestionStatus},
            "hazard_options": [(c.value, c.label) for c in EventCategory if c.is_hazard],
            "level_options": AlertLevel.choices(),
            "notice": done,
            "settings": settings,
        },
        error=error,
    )


@router.get(PAGE, response_class=HTMLResponse)
def suggestions_page(request: Request, session: SessionDep, settings: SettingsDep, user: Publisher) -> HTMLResponse:
    """Open suggestions from clusters of citizen reports, with their reports, to accept or dismiss."""
    return _page(request, session, settings)


@router.post(PAGE + "/{suggestion_id}/terima", response_class=HTMLResponse)
def accept(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, suggestion_id: SuggestionIdPath,
    posted: PostedForm,
) -> Response:  # fmt: skip
    """Make an event of the suggestion from the form (published, or a draft when approval is required)."""
    form = _read(posted)
    data = service.EventInput(
        category=form["category"], level=form["level"] or None, title=form["title"],
        description=form["description"], instruction=form["instruction"] or None,
    )  # fmt: skip
    try:
        event = clusters.accept_suggestion(
            session, settings=settings, suggestion_id=suggestion_id, data=data, by=user, actor=actor_of(request, user)
        )
    except NotFound:
        raise  # a wrong id is a 404 page, not the list
    except DomainError as exc:
        session.rollback()
        return _page(request, session, settings, failed=suggestion_id, form=form, error=exc)
    return RedirectResponse(f"/konsol/peristiwa/{event.id}?done=created", status_code=303)


@router.post(PAGE + "/{suggestion_id}/abaikan", response_class=HTMLResponse)
def dismiss(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher, suggestion_id: SuggestionIdPath
) -> Response:
    """Dismiss the suggestion."""
    try:
        clusters.dismiss_suggestion(session, suggestion_id=suggestion_id, by=user, actor=actor_of(request, user))
    except NotFound:
        raise
    except DomainError as exc:
        session.rollback()
        return _page(request, session, settings, error=exc)
    return RedirectResponse(f"{PAGE}?done=dismissed", status_code=303)
