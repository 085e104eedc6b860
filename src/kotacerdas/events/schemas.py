"""Pydantic models of the events domain: what the API accepts, and the one public view of an event that the API, the
pages, the live stream and the feeds share. Labels come in the request's language next to each value."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from kotacerdas.events.enums import IMPACT_FIELDS

Impacts = Annotated[
    dict[str, int | None],
    Field(
        description="Impact figures in the BPBD format: " + ", ".join(IMPACT_FIELDS),
        examples=[{"kk": 120, "jiwa": 430, "rumah": 95, "pengungsi": 60}],
    ),
]
AreaGeometry = Annotated[
    dict[str, Any] | None,
    Field(
        description="The drawn area: a GeoJSON Point, Polygon or MultiPolygon in WGS 84 longitude/latitude",
        examples=[{"type": "Point", "coordinates": [102.93, -3.06]}],
    ),
]
RegionCodes = Annotated[
    list[Annotated[str, Field(max_length=20)]],
    Field(max_length=300, description="Kemendagri codes of the affected desa/kelurahan or kecamatan"),
]
Links = Annotated[
    list[tuple[Literal["report", "asset", "device"], Annotated[int, Field(ge=1)]]],
    Field(max_length=200, description='Linked records as [kind, id] pairs, e.g. [["report", 12], ["asset", 7]]'),
]


class EventCreate(BaseModel):
    """A new event: a disaster warning (with its alert level), a service disruption, a public activity or news."""

    category: str = Field(description="Category code, e.g. banjir, jalan_ditutup, posyandu_vaksinasi")
    level: str | None = Field(None, description="Alert level of a disaster: normal, waspada, siaga or awas")
    title: str = Field(max_length=200)
    description: str = Field(max_length=4000)
    instruction: str | None = Field(None, max_length=4000, description="What people should do")
    starts_at: AwareDatetime | None = Field(None, description="Start; now when left out")
    ends_at: AwareDatetime | None = Field(None, description="Expected end")
    region_codes: RegionCodes = Field(default_factory=list)
    geometry: AreaGeometry = None
    impacts: Impacts = Field(default_factory=dict)
    links: Links = Field(default_factory=list)
    note: str | None = Field(None, max_length=2000, description="A public note for the timeline")


class EventUpdate(BaseModel):
    """A change to an ongoing event; only the fields sent change. A published event gets a new version."""

    category: str | None = None
    level: str | None = None
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    instruction: str | None = Field(None, max_length=4000)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    region_codes: RegionCodes | None = None
    geometry: AreaGeometry = None
    impacts: Impacts | None = None
    links: Links | None = None
    note: str | None = Field(None, max_length=2000, description="A public note for the timeline")


class EventClose(BaseModel):
    """Ending or cancelling an event, with a public note."""

    note: str | None = Field(None, max_length=2000)


class Labelled(BaseModel):
    """A coded value with its label in the request's language and its colour."""

    value: str
    label: str
    colour: str


class AreaRead(BaseModel):
    """A region the event touches."""

    code: str
    name: str
    level: str


class ImpactRead(BaseModel):
    """One impact figure with its label."""

    key: str
    label: str
    value: int


class TimelineEntry(BaseModel):
    """A published step of the event, with its public note (who wrote it is not shown)."""

    kind: Labelled
    version: int
    status: Labelled
    level: Labelled | None
    note: str | None
    at: datetime


class EventRead(BaseModel):
    """The public view of an event: what the API, the pages, the live stream and the feeds show."""

    id: int
    url: str
    category: Labelled
    group: Labelled
    level: Labelled | None
    title: str
    description: str
    instruction: str | None
    status: Labelled
    ongoing: bool
    source: Labelled
    starts_at: datetime
    ends_at: datetime | None
    areas: list[AreaRead]
    lat: float
    lon: float
    geometry: dict[str, Any] | None
    impacts: list[ImpactRead]
    version: int
    published_at: datetime | None
    updated_at: datetime
    timeline: list[TimelineEntry] | None = Field(None, description="Only on the detail answer")


class EventPage(BaseModel):
    """A list of events."""

    items: list[EventRead]
    count: int
