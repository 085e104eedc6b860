"""Request and response bodies of the agencies (OPD) API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, computed_field

from kotacerdas.accounts.service import EMAIL_MAX
from kotacerdas.agencies import service
from kotacerdas.agencies.enums import AgencyKind
from kotacerdas.db import MAX_INT_ID
from kotacerdas.pagination import Page

AgencyId = Annotated[int, Field(ge=1, le=MAX_INT_ID)]
Name = Annotated[str, Field(min_length=1, max_length=service.NAME_MAX, examples=["Dinas Komunikasi dan Informatika"])]
ShortName = Annotated[str, Field(min_length=1, max_length=service.SHORT_NAME_MAX, examples=["Diskominfo"])]
RegionCode = Annotated[str, Field(max_length=service.REGION_CODE_MAX, description="Kemendagri code, e.g. 16.05.09")]
Email = Annotated[str, Field(max_length=EMAIL_MAX)]
Phone = Annotated[str, Field(max_length=service.PHONE_MAX)]
Address = Annotated[str, Field(max_length=service.ADDRESS_MAX)]
Website = Annotated[str, Field(max_length=service.WEBSITE_MAX, description="Starts with http:// or https://")]


class AgencyCreate(BaseModel):
    """A new OPD."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    short_name: ShortName
    kind: AgencyKind
    parent_id: AgencyId | None = Field(None, description="The OPD this one belongs to (e.g. a UPT's dinas)")
    region_code: RegionCode | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: Address | None = None
    website: Website | None = None


class AgencyUpdate(BaseModel):
    """Changes to an OPD: only the fields sent change; null clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    short_name: ShortName | None = None
    kind: AgencyKind | None = None
    parent_id: AgencyId | None = None
    region_code: RegionCode | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: Address | None = None
    website: Website | None = None
    active: bool | None = Field(None, description="false deactivates the OPD; it stays in the registry")


class AgencyRead(BaseModel):
    """An OPD as the registry holds it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    short_name: str
    kind: AgencyKind
    parent_id: int | None
    region_code: str | None
    email: str | None
    phone: str | None
    address: str | None
    website: str | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @computed_field
    @property
    def kind_label(self) -> str:
        """The kind in the request's language."""
        return self.kind.label


class AgencyPage(Page[AgencyRead]):
    """One page of OPDs."""
