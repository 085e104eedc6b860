"""HTML pages of the agencies domain: the public OPD list and the console's OPD registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service
from kotacerdas.agencies.enums import AgencyKind
from kotacerdas.agencies.models import Agency
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, actor_of, require
from kotacerdas.errors import DomainError
from kotacerdas.pagination import PageQuery
from kotacerdas.web.forms import active_filter, chosen_agency_id, kept_filters, render_form
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

AgencyManager = Annotated[User, Depends(require(Permission.AGENCIES_MANAGE))]
AgencyIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
FilterText = Annotated[str, Query(max_length=100)]


class AgencyForm(BaseModel):
    """The fields of the OPD form, as typed (checked by the service, re-shown on error)."""

    name: str = ""
    short_name: str = ""
    kind: str = ""
    parent_id: str = ""
    region_code: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""
    website: str = ""
    active: str | None = None

    @classmethod
    def of(cls, agency: Agency) -> AgencyForm:
        return cls(
            name=agency.name,
            short_name=agency.short_name,
            kind=agency.kind,
            parent_id=str(agency.parent_id or ""),
            region_code=agency.region_code or "",
            email=agency.email or "",
            phone=agency.phone or "",
            address=agency.address or "",
            website=agency.website or "",
            active="on" if agency.active else None,
        )

    def values(self) -> dict[str, Any]:
        """Keyword arguments for the service (empty text means "none")."""
        return {
            "name": self.name,
            "short_name": self.short_name,
            "kind": self.kind,
            "parent_id": chosen_agency_id(self.parent_id, field="parent_id", max_id=MAX_INT_ID),
            "region_code": self.region_code or None,
            "email": self.email or None,
            "phone": self.phone or None,
            "address": self.address or None,
            "website": self.website or None,
        }


def _kind_filter(value: str) -> str | None:
    return value if value in {kind.value for kind in AgencyKind} else None


# --- public ----------------------------------------------------------------------------------------------------


@router.get("/opd", response_class=HTMLResponse)
def public_list(
    request: Request, session: SessionDep, page: PageQuery, kind: FilterText = "", q: FilterText = ""
) -> HTMLResponse:
    """The public list of OPDs."""
    paged = service.list_agencies(session, page=page, kind=_kind_filter(kind), active=True, q=q)
    filters = kept_filters(kind=_kind_filter(kind), q=q.strip())
    return render(
        request,
        "agencies/public_list.html",
        {"paged": paged, "filters": filters, "kinds": AgencyKind, "kind_of": AgencyKind},
    )


# --- console ---------------------------------------------------------------------------------------------------


@router.get("/konsol/opd", response_class=HTMLResponse)
def console_list(
    request: Request,
    session: SessionDep,
    _user: AgencyManager,
    page: PageQuery,
    kind: FilterText = "",
    active: FilterText = "",
    q: FilterText = "",
) -> HTMLResponse:
    """The console's OPD registry."""
    paged = service.list_agencies(session, page=page, kind=_kind_filter(kind), active=active_filter(active), q=q)
    filters = kept_filters(kind=_kind_filter(kind), active=active if active in ("true", "false") else "", q=q)
    return render(
        request,
        "agencies/console_list.html",
        {"paged": paged, "filters": filters, "kinds": AgencyKind, "kind_of": AgencyKind},
    )


def _render_form(
    request: Request,
    session: Session,
    *,
    form: AgencyForm,
    agency: Agency | None,
    error: DomainError | None = None,
    saved: bool = False,
) -> HTMLResponse:
    parent_options = [
        (choice.id, choice.short_name)
        for choice in service.list_agency_choices(session)
        if agency is None or choice.id != agency.id
    ]
    return render_form(
        request,
        "agencies/form.html",
        {"form": form, "agency": agency, "parent_options": parent_options, "kinds": AgencyKind, "saved": saved},
        error=error,
    )


@router.get("/konsol/opd/baru", response_class=HTMLResponse)
def new_form(request: Request, session: SessionDep, _user: AgencyManager) -> HTMLResponse:
    """The form for a new OPD."""
    return _render_form(request, session, form=AgencyForm(kind=AgencyKind.DINAS.value), agency=None)


@router.post("/konsol/opd/baru", response_class=HTMLResponse)
def create(
    request: Request, session: SessionDep, user: AgencyManager, form: Annotated[AgencyForm, Form()]
) -> HTMLResponse:
    """Register an OPD from the form."""
    try:
        agency = service.create_agency(session, actor=actor_of(request, user), **form.values())
    except DomainError as exc:
        # Nothing of a refused form may be committed by the request's transaction.
        session.rollback()
        return _render_form(request, session, form=form, agency=None, error=exc)
    return RedirectResponse(f"/konsol/opd/{agency.id}?saved=1", status_code=303)


@router.get("/konsol/opd/{agency_id}", response_class=HTMLResponse)
def edit_form(
    request: Request, session: SessionDep, _user: AgencyManager, agency_id: AgencyIdPath, saved: bool = False
) -> HTMLResponse:
    """The form to change an OPD."""
    agency = service.get_agency(session, agency_id=agency_id)
    return _render_form(request, session, form=AgencyForm.of(agency), agency=agency, saved=saved)


@router.post("/konsol/opd/{agency_id}", response_class=HTMLResponse)
def update(
    request: Request,
    session: SessionDep,
    user: AgencyManager,
    agency_id: AgencyIdPath,
    form: Annotated[AgencyForm, Form()],
) -> HTMLResponse:
    """Save the changes to an OPD from the form (an unticked "active" box deactivates it)."""
    agency = service.get_agency(session, agency_id=agency_id)
    try:
        service.update_agency(
            session, actor=actor_of(request, user), agency_id=agency.id, active=form.active is not None, **form.values()
        )
    except DomainError as exc:
        session.rollback()
        agency = service.get_agency(session, agency_id=agency_id)
        return _render_form(request, session, form=form, agency=agency, error=exc)
    return RedirectResponse(f"/konsol/opd/{agency.id}?saved=1", status_code=303)
