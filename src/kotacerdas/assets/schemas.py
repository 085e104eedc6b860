"""Pydantic models of the assets domain: what the API accepts and answers, and the one public view of an asset.

Geometry goes in and out as a GeoJSON geometry object (RFC 7946, WGS 84 longitude/latitude); WKT text is accepted
too on the way in. Conditions carry their label (in the request's language) and colour next to the value.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from kotacerdas.db import MAX_INT_ID
from kotacerdas.pagination import Page

IdField = Annotated[int, Field(ge=1, le=MAX_INT_ID)]
# Shown to the API as "a GeoJSON geometry object"; the service checks it (assets/geometry.py).
GeometryIn = Annotated[
    dict[str, Any] | str,
    Field(
        description="A GeoJSON geometry (Point for point types, LineString/MultiLineString for line types) in "
        "WGS 84 longitude/latitude, or WKT text",
        examples=[{"type": "Point", "coordinates": [102.93, -3.06]}],
    ),
]
ExternalIds = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=100)]],
    Field(
        max_length=20,
        description="The asset's number in other inventories, by system (simbada, npsn, kode_ruas …)",
        examples=[{"simbada": "1.3.2.05.01.001"}],
    ),
]


class RegionRef(BaseModel):
    """A desa or kecamatan by code and name."""

    code: str
    name: str


class ConditionRead(BaseModel):
    """A condition with its label in the request's language and its map colour."""

    value: str
    label: str
    colour: str


# --- asset types ----------------------------------------------------------------------------------------------


class AssetTypeRead(BaseModel):
    """An asset type: how it is drawn, the conditions it is rated on, its default owner OPD, its attributes."""

    id: int
    code: str
    name_id: str
    name_en: str
    name: str = Field(description="The name in the request's language")
    geometry_kind: str = Field(description="`point` or `line`")
    condition_scale: str = Field(description="`road`, `structure` or `facility`")
    conditions: list[ConditionRead] = Field(description="The conditions of the type's scale, best first")
    agency_id: int | None = Field(description="The OPD that owns new assets of this type by default")
    attribute_schema: dict[str, Any] = Field(description="JSON Schema (draft 2020-12) of the attributes")
    position: int
    active: bool


class AssetTypeUpdate(BaseModel):
    """Changes to an asset type; only the fields sent change (code, geometry and scale are fixed)."""

    model_config = ConfigDict(extra="forbid")

    name_id: str | None = Field(None, max_length=120)
    name_en: str | None = Field(None, max_length=120)
    agency_id: IdField | None = None
    attribute_schema: dict[str, Any] | None = None
    position: int | None = Field(None, ge=0, le=10_000)
    active: bool | None = None


# --- assets ---------------------------------------------------------------------------------------------------


class AssetCreate(BaseModel):
    """A new asset. `type` is an asset type's code; `agency_id` empty means the type's default OPD; `condition`
    (with `condition_on`, default today) records a first inspection."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=40, description="Asset type code, e.g. jembatan")
    name: str = Field(max_length=200)
    geometry: GeometryIn
    agency_id: IdField | None = Field(None, description="Owner OPD; the type's default OPD when left out")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Values for the type's JSON Schema")
    description: str | None = Field(None, max_length=4000)
    address: str | None = Field(None, max_length=300)
    external_ids: ExternalIds = Field(default_factory=dict)
    condition: str | None = Field(None, max_length=40, description="A condition on the type's scale, e.g. baik")
    condition_on: date | None = Field(None, description="The date of that first condition (default today)")


class AssetUpdate(BaseModel):
    """Changes to an asset; only the fields sent change. The condition changes through inspections only."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, min_length=1, max_length=40)
    name: str | None = Field(None, max_length=200)
    geometry: GeometryIn | None = None
    agency_id: IdField | None = None
    attributes: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=4000)
    address: str | None = Field(None, max_length=300)
    external_ids: ExternalIds | None = Field(None, description="Replaces the asset's external ids")


class AssetRead(BaseModel):
    """An asset as staff and integrations see it."""

    id: int
    type_id: int
    type_code: str
    type_name: str
    name: str
    description: str | None
    address: str | None
    agency_id: int
    agency: str | None = Field(description="The owner OPD's name")
    geometry: dict[str, Any] = Field(description="GeoJSON geometry (WGS 84)")
    lat: float = Field(description="A point on the asset (the point itself, or the middle of a line)")
    lon: float
    bbox: list[float] = Field(description="west, south, east, north")
    length_km: float | None = Field(description="Geodesic length of a line, in km")
    desa_code: str | None
    kecamatan_code: str | None
    attributes: dict[str, Any]
    external_ids: dict[str, str]
    condition: ConditionRead | None = Field(description="The latest inspection's condition; null if never inspected")
    condition_on: date | None
    active: bool
    created_at: datetime
    updated_at: datetime


AssetPage = Page[AssetRead]


class NearbyAsset(BaseModel):
    """An active asset near a place, for the report form ("is it about this bridge?")."""

    id: int
    name: str
    type_code: str
    type_name: str
    condition: ConditionRead | None
    distance_m: float
    url: str = Field(description="The asset's public page")


# --- inspections ----------------------------------------------------------------------------------------------


class InspectionCreate(BaseModel):
    """An inspection: the date, who inspected, the condition found, notes and up to 3 photos (base64)."""

    model_config = ConfigDict(extra="forbid")

    inspected_on: date
    inspector: str | None = Field(None, max_length=120, description="Default: your full name")
    condition: str = Field(min_length=1, max_length=40, description="A condition on the asset type's scale")
    notes: str | None = Field(None, max_length=4000)
    photos: list[str] = Field(default_factory=list, max_length=3, description="Up to 3 photos, base64")


class AssetPhotoRead(BaseModel):
    """A photo of an asset, re-encoded without metadata."""

    id: int
    url: str
    thumb_url: str
    width: int
    height: int
    inspection_id: int | None


class InspectionRead(BaseModel):
    """An inspection as staff see it."""

    id: int
    asset_id: int
    inspected_on: date
    inspector: str
    condition: ConditionRead
    notes: str | None
    source: str = Field(description="`inspection`, `import` or `report` (an accepted proposal)")
    report_id: int | None
    created_at: datetime
    photos: list[AssetPhotoRead] = Field(default_factory=list)


# --- proposals ------------------------------------------------------------------------------------------------


class ProposalCreate(BaseModel):
    """A condition update proposed from a resolved report linked to an asset."""

    model_config = ConfigDict(extra="forbid")

    condition: str = Field(min_length=1, max_length=40)
    note: str | None = Field(None, max_length=4000)


class ProposalDecision(BaseModel):
    """The owner OPD's answer to a proposed condition update."""

    model_config = ConfigDict(extra="forbid")

    accept: bool


class ProposalRead(BaseModel):
    """A proposed condition update and what became of it."""

    id: int
    asset_id: int
    report_id: int | None
    tracking_code: str | None
    condition: ConditionRead
    note: str | None
    status: str = Field(description="`pending`, `accepted` or `rejected`")
    status_label: str
    decided_at: datetime | None
    inspection_id: int | None
    created_at: datetime


class ReportAssetLink(BaseModel):
    """Link a report to an asset, or unlink it with `asset_id: null`."""

    model_config = ConfigDict(extra="forbid")

    asset_id: IdField | None


class ReportAssetLinked(BaseModel):
    """A report's link to an asset after the change."""

    report_id: int
    tracking_code: str
    asset_id: int | None


# --- the public view -----------------------------------------------------------------------------------------


class PublicAttribute(BaseModel):
    """One attribute with its title from the type's schema."""

    key: str
    label: str
    value: Any


class PublicInspection(BaseModel):
    """One entry of the public condition history: the date, the condition and the OPD (never a person)."""

    inspected_on: date
    condition: ConditionRead
    agency: str | None
    source: str


class PublicAssetPhoto(BaseModel):
    """A photo of the asset."""

    url: str
    thumb_url: str
    width: int
    height: int
    inspected_on: date | None


class PublicAssetReport(BaseModel):
    """An open citizen report about the asset, as the public sees it (no personal data)."""

    tracking_code: str
    category_name: str
    status: str
    status_label: str
    status_colour: str
    description: str | None
    created_at: str
    url: str


class PublicAsset(BaseModel):
    """What anyone may see of an asset: no inspector names, no citizens' personal data."""

    id: int
    type_code: str
    type_name: str
    geometry_kind: str
    name: str
    description: str | None
    address: str | None
    agency: str | None = Field(description="The owner OPD")
    geometry: dict[str, Any]
    lat: float
    lon: float
    length_km: float | None
    desa: RegionRef | None
    kecamatan: RegionRef | None
    condition: ConditionRead | None
    condition_on: date | None
    attributes: list[PublicAttribute]
    external_ids: dict[str, str]
    history: list[PublicInspection]
    photos: list[PublicAssetPhoto]
    open_reports: list[PublicAssetReport]
    report_url: str = Field(description="The report form with this asset and its place filled in")
    updated_at: datetime
