"""Request and response bodies of the accounts API. No schema carries a password hash or a token hash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from kotacerdas.accounts import service
from kotacerdas.accounts.enums import Role
from kotacerdas.db import MAX_INT_ID
from kotacerdas.pagination import Page

Id = Annotated[int, Field(ge=1, le=MAX_INT_ID)]
Username = Annotated[
    str,
    Field(
        min_length=3,
        max_length=64,
        examples=["budi.santoso"],
        description="3 to 64 characters: lowercase letters, digits, dot, dash or underscore",
    ),
]
FullName = Annotated[str, Field(min_length=1, max_length=service.FULL_NAME_MAX)]
Email = Annotated[str, Field(max_length=service.EMAIL_MAX)]
Password = Annotated[str, Field(min_length=service.MIN_PASSWORD_LENGTH, max_length=service.MAX_PASSWORD_LENGTH)]


class UserCreate(BaseModel):
    """A new staff account."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    full_name: FullName
    password: Password
    role: Role
    agency_id: Id | None = Field(None, description="Required for the OPD roles (opd_admin, opd_staff)")
    email: Email | None = None


class UserUpdate(BaseModel):
    """Changes to a staff account: only the fields sent change; `password` resets the password."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    email: Email | None = None
    role: Role | None = None
    agency_id: Id | None = None
    active: bool | None = Field(None, description="false deactivates the account and ends its logins")
    password: Password | None = None


class UserRead(BaseModel):
    """A staff account."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    email: str | None
    role: Role
    agency_id: int | None
    active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None

    @computed_field
    @property
    def role_label(self) -> str:
        """The role in the request's language."""
        return self.role.label


class Me(UserRead):
    """The current user and what their role allows."""

    permissions: list[str] = Field(description="Permissions granted by the role")


class UserPage(Page[UserRead]):
    """One page of staff accounts."""


class ApiTokenCreate(BaseModel):
    """A new API token for yourself."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, examples=["Integrasi SP4N-LAPOR!"])]


class ApiTokenRead(BaseModel):
    """An API token (its secret is never shown again after creation)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The first characters of the token, to recognise it")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenRead):
    """A new API token with its secret, shown this once: send it as `Authorization: Bearer <token>`."""

    token: str


class AuditEntryRead(BaseModel):
    """One state change: who, when, what, and the changed fields before and after."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    actor_label: str
    action: str
    entity_type: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None


class AuditPage(Page[AuditEntryRead]):
    """One page of the audit log, newest first."""
