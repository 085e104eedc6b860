"""JSON API of the accounts domain: the current user, staff accounts, API tokens and the audit log.

API clients authenticate with `Authorization: Bearer <token>`; there is no login endpoint (tokens are made in
the console or with `POST /api/v1/tokens`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from kotacerdas.accounts import service
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.accounts.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    AuditPage,
    Me,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import CurrentUser, SessionDep, actor_of, require
from kotacerdas.pagination import PageQuery
from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=PROBLEM_RESPONSES)

UserIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="User id")]
TokenIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="API token id")]
UserManager = Annotated[User, Depends(require(Permission.USERS_MANAGE))]
TokenOwner = Annotated[User, Depends(require(Permission.TOKENS_OWN))]
AuditReader = Annotated[User, Depends(require(Permission.AUDIT_READ))]


@router.get("/me", response_model=Me)
def get_me(user: CurrentUser) -> Me:
    """The logged-in user or token holder, with the permissions of their role."""
    permissions = [permission.value for permission in Permission if service.user_can(user, permission)]
    return Me.model_validate({**UserRead.model_validate(user).model_dump(), "permissions": permissions})


@router.get("/users", response_model=UserPage)
def list_users(
    session: SessionDep,
    _user: UserManager,
    page: PageQuery,
    role: Annotated[Role | None, Query(description="Only accounts with this role")] = None,
    agency_id: Annotated[int | None, Query(ge=1, le=MAX_INT_ID, description="Only accounts of this OPD")] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) accounts")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in the username or full name")] = None,
) -> UserPage:
    """List staff accounts (needs users.manage)."""
    result = service.list_users(
        session, page=page, role=role.value if role else None, agency_id=agency_id, active=active, q=q
    )
    return UserPage.model_validate(result, from_attributes=True)


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(request: Request, session: SessionDep, user: UserManager, body: UserCreate) -> UserRead:
    """Create a staff account (needs users.manage)."""
    created = service.create_user(
        session,
        actor=actor_of(request, user),
        username=body.username,
        full_name=body.full_name,
        password=body.password,
        role=body.role.value,
        agency_id=body.agency_id,
        email=body.email,
    )
    return UserRead.model_validate(created)


@router.get("/users/{user_id}", response_model=UserRead)
def get_user(session: SessionDep, _user: UserManager, user_id: UserIdPath) -> UserRead:
    """One staff account (needs users.manage)."""
    return UserRead.model_validate(service.get_user(session, user_id=user_id))


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(
    request: Request, session: SessionDep, user: UserManager, user_id: UserIdPath, body: UserUpdate
) -> UserRead:
    """Change a staff account; only the fields sent change. `active: false` deactivates it (needs users.manage)."""
    changes = body.model_dump(exclude_unset=True)
    if isinstance(changes.get("role"), Role):
        changes["role"] = changes["role"].value
    updated = service.update_user(session, actor=actor_of(request, user), user_id=user_id, **changes)
    return UserRead.model_validate(updated)


@router.get("/tokens", response_model=list[ApiTokenRead])
def list_tokens(session: SessionDep, user: TokenOwner) -> list[ApiTokenRead]:
    """Your own API tokens, newest first, revoked ones included."""
    return [ApiTokenRead.model_validate(token) for token in service.list_api_tokens(session, user_id=user.id)]


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201)
def create_token(request: Request, session: SessionDep, user: TokenOwner, body: ApiTokenCreate) -> ApiTokenCreated:
    """Create an API token for yourself; the answer holds the token, which is never shown again."""
    token, plain = service.create_api_token(session, actor=actor_of(request, user), user_id=user.id, name=body.name)
    return ApiTokenCreated.model_validate({**ApiTokenRead.model_validate(token).model_dump(), "token": plain})


@router.delete("/tokens/{token_id}", response_model=ApiTokenRead)
def revoke_token(request: Request, session: SessionDep, user: TokenOwner, token_id: TokenIdPath) -> ApiTokenRead:
    """Revoke one of your API tokens (an administrator may revoke anyone's); it stops working at once."""
    owner_id = None if service.user_can(user, Permission.USERS_MANAGE) else user.id
    token = service.revoke_api_token(session, actor=actor_of(request, user), token_id=token_id, owner_id=owner_id)
    return ApiTokenRead.model_validate(token)


@router.get("/audit", response_model=AuditPage)
def list_audit(
    session: SessionDep,
    _user: AuditReader,
    page: PageQuery,
    entity_type: Annotated[str | None, Query(max_length=40, description="e.g. user, agency, api_token")] = None,
    entity_id: Annotated[str | None, Query(max_length=60, description="Id of the changed thing")] = None,
    action: Annotated[str | None, Query(max_length=60, description="e.g. user.update")] = None,
    actor_id: Annotated[
        int | None, Query(ge=1, le=MAX_INT_ID, description="Id of the user who made the change")
    ] = None,
) -> AuditPage:
    """The audit log, newest first (needs audit.read)."""
    result = service.list_audit(
        session, page=page, entity_type=entity_type, entity_id=entity_id, action=action, actor_id=actor_id
    )
    return AuditPage.model_validate(result, from_attributes=True)
