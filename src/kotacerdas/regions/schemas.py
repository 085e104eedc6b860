"""Pydantic models and result types of the regions domain."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from kotacerdas.i18n import _
from kotacerdas.pagination import Page
from kotacerdas.regions.enums import LocateMethod, RegionLevel
from kotacerdas.regions.models import Region

if TYPE_CHECKING:
    # Only for the hints of LocationBatch: numpy is loaded with the locator, not when the app starts.
    import numpy as np

__all__ = [
    "ImportResult",
    "ImportResultRead",
    "LatLon",
    "Location",
    "LocationBatch",
    "RegionDetail",
    "RegionLevel",
    "RegionPage",
    "RegionRead",
    "RegionRef",
]


class LatLon(BaseModel):
    """A WGS 84 position."""

    lat: float = Field(description="Latitude in degrees")
    lon: float = Field(description="Longitude in degrees")


class RegionRef(BaseModel):
    """A region named by code, name and level."""

    code: str = Field(description="Kemendagri code, e.g. 16.05.09.1003", examples=["16.05.09"])
    name: str = Field(description="Name of the region", examples=["Muara Beliti"])
    level: RegionLevel = Field(description="kabupaten, kecamatan, desa or kelurahan")

    @classmethod
    def of(cls, region: Region) -> RegionRef:
        return cls(code=region.code, name=region.name, level=region.level)


class RegionRead(BaseModel):
    """A region with its place in the hierarchy and, once boundaries are imported, its extent."""

    code: str = Field(description="Kemendagri code, e.g. 16.05.09.1003")
    name: str
    level: RegionLevel
    level_label: str = Field(description="The level in the request's language")
    parent_code: str | None = Field(description="Code of the parent region (the province for the kabupaten)")
    centroid: LatLon | None = Field(description="A point inside or at the centre of the region")
    bbox: list[float] | None = Field(
        description="Bounding box [min_lon, min_lat, max_lon, max_lat] (RFC 7946 order); null until boundaries "
        "are imported"
    )
    has_boundary: bool = Field(description="Whether the region's boundary is imported")
    updated_at: datetime

    @classmethod
    def of(cls, region: Region) -> RegionRead:
        level = RegionLevel(region.level)
        has_bbox = region.min_lon is not None
        return cls(
            code=region.code,
            name=region.name,
            level=level,
            level_label=level.label,
            parent_code=region.parent_code,
            centroid=LatLon(lat=region.centroid_lat, lon=region.centroid_lon)
            if region.centroid_lat is not None and region.centroid_lon is not None
            else None,
            bbox=[region.min_lon, region.min_lat, region.max_lon, region.max_lat] if has_bbox else None,
            has_boundary=has_bbox,
            updated_at=region.updated_at,
        )


class RegionDetail(RegionRead):
    """A region with its parent and its children."""

    parent: RegionRef | None = Field(description="The parent region when it is stored")
    children: list[RegionRef] = Field(description="The regions one level below, by code")


class RegionPage(Page[RegionRead]):
    """A page of regions."""


class Location(BaseModel):
    """Where a point lies: its desa/kelurahan and kecamatan, or outside the kabupaten, and how that was decided."""

    lat: float
    lon: float
    inside: bool = Field(description="Whether the point is inside the kabupaten")
    method: LocateMethod = Field(
        description="boundary: inside an imported boundary; nearest_boundary: in a gap between simplified "
        "boundaries, the nearest one; centroid: no boundaries imported, the nearest kecamatan centre"
    )
    approximate: bool = Field(description="True unless the point lies inside an imported boundary")
    desa: RegionRef | None = Field(description="The desa or kelurahan; null when outside or unknown")
    kecamatan: RegionRef | None = Field(description="The kecamatan; null when outside")
    distance_m: float | None = Field(
        None,
        description="For nearest_boundary, the distance to that desa's boundary; for centroid, to the kecamatan "
        "centre (metres, approximate)",
    )
    note: str | None = Field(None, description="What the answer means, in the request's language")

    @classmethod
    def build(
        cls,
        *,
        lat: float,
        lon: float,
        inside: bool,
        method: LocateMethod,
        desa: RegionRef | None,
        kecamatan: RegionRef | None,
        distance_m: float | None,
    ) -> Location:
        """A location with its `approximate` flag and its note in the request's language."""
        approximate = inside and method != LocateMethod.BOUNDARY
        if not inside:
            note = _("The point is outside the kabupaten.")
        elif method == LocateMethod.CENTROID:
            note = _(
                "Approximate: boundaries are not imported, so this is the kecamatan with the nearest centre and the "
                "desa is unknown."
            )
        elif method == LocateMethod.NEAREST_BOUNDARY:
            note = _(
                "Approximate: the point lies in a gap between the simplified boundaries; this is the nearest desa."
            )
        elif desa is None:
            note = _("The desa is unknown: no desa boundaries are imported for this kecamatan.")
        else:
            note = None
        return cls(
            lat=lat,
            lon=lon,
            inside=inside,
            method=method,
            approximate=approximate,
            desa=desa,
            kecamatan=kecamatan,
            distance_m=distance_m,
            note=note,
        )


@dataclass(frozen=True)
class LocationBatch:
    """Where many points lie, as arrays aligned with the input points (see `Location` for the meaning)."""

    lat: np.ndarray
    lon: np.ndarray
    inside: np.ndarray
    method: np.ndarray
    desa_code: np.ndarray
    kecamatan_code: np.ndarray
    distance_m: np.ndarray
    # One reference per region, not one per point.
    refs: dict[str, RegionRef]

    @property
    def approximate(self) -> np.ndarray:
        return self.inside & (self.method != LocateMethod.BOUNDARY.value)

    def __len__(self) -> int:
        return len(self.lat)

    def __getitem__(self, index: int) -> Location:
        return self.location(index)

    def __iter__(self) -> Iterator[Location]:
        return (self.location(i) for i in range(len(self)))

    def location(self, index: int) -> Location:
        """The answer for one point, as `locate` gives it."""
        desa, kecamatan = self.desa_code[index], self.kecamatan_code[index]
        distance = float(self.distance_m[index])
        return Location.build(
            lat=float(self.lat[index]),
            lon=float(self.lon[index]),
            inside=bool(self.inside[index]),
            method=LocateMethod(str(self.method[index])),
            desa=self.refs[desa] if desa is not None else None,
            kecamatan=self.refs[kecamatan] if kecamatan is not None else None,
            distance_m=None if math.isnan(distance) else round(distance, 1),
        )


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, in a dry run, would do)."""

    created: int
    updated: int
    total: int


class ImportResultRead(BaseModel):
    """What a boundary import did (or, in a dry run, would do)."""

    created: int = Field(description="Regions that were not stored before")
    updated: int = Field(description="Stored regions whose name, boundary and centre were replaced")
    total: int = Field(description="Features in the file")
    dry_run: bool = Field(description="True when the file was only checked and nothing was stored")
