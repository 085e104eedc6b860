"""JSON API of the agencies domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service
from kotacerdas.agencies.enums import AgencyKind
from kotacerdas.agencies.schemas import AgencyCreate, AgencyPage, AgencyRead, AgencyUpdate
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, actor_of, require
from kotacerdas.pagination import PageQuery
from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["agencies"], responses=PROBLEM_RESPONSES)

AgencyIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="OPD id")]
AgencyManager = Annotated[User, Depends(require(Permission.AGENCIES_MANAGE))]


@router.get("/agencies", response_model=AgencyPage)
def list_agencies(
    session: SessionDep,
    page: PageQuery,
    kind: Annotated[AgencyKind | None, Query(description="Only OPDs of this kind")] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) OPDs")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in the name or short name")] = None,
) -> AgencyPage:
    """List the OPDs (public)."""
    result = service.list_agencies(session, page=page, kind=kind.value if kind else None, active=active, q=q)
    return AgencyPage.model_validate(result, from_attributes=True)


@router.get("/agencies/{agency_id}", response_model=AgencyRead)
def get_agency(session: SessionDep, agency_id: AgencyIdPath) -> AgencyRead:
    """One OPD (public)."""
    return AgencyRead.model_validate(service.get_agency(session, agency_id=agency_id))


@router.post("/agencies", response_model=AgencyRead, status_code=201)
def create_agency(request: Request, session: SessionDep, user: AgencyManager, body: AgencyCreate) -> AgencyRead:
    """Register an OPD (needs agencies.manage)."""
    agency = service.create_agency(session, actor=actor_of(request, user), **body.model_dump())
    return AgencyRead.model_validate(agency)


@router.patch("/agencies/{agency_id}", response_model=AgencyRead)
def update_agency(
    request: Request, session: SessionDep, user: AgencyManager, agency_id: AgencyIdPath, body: AgencyUpdate
) -> AgencyRead:
    """Change an OPD; only the fields sent change, `active: false` deactivates it (needs agencies.manage)."""
    agency = service.update_agency(
        session, actor=actor_of(request, user), agency_id=agency_id, **body.model_dump(exclude_unset=True)
    )
    return AgencyRead.model_validate(agency)
