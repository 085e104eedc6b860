"""Regions: built-in codes, boundary import, point → desa lookup and reads. Services flush; the caller commits.

The geometry work is in two modules that only this one imports: `boundaries` (reading and checking a GeoJSON
boundary file) and `locator` (the point-in-polygon index). Both need shapely and numpy, about a fifth of the app's
start-up time, so they are imported inside the functions that first need a geometry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from kotacerdas.accounts.service import Actor, record_change
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput, NotFound
from kotacerdas.i18n import _
from kotacerdas.pagination import Paged, PageRequest, paginate
from kotacerdas.regions import builtin
from kotacerdas.regions.enums import RegionLevel
from kotacerdas.regions.models import REGION_SUMMARY, Region
from kotacerdas.regions.schemas import ImportResult, Location, LocationBatch

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PageRequest",
    "RegionFamily",
    "get_region",
    "get_region_family",
    "import_boundaries",
    "list_kecamatan_with_villages",
    "list_regions",
    "locate",
    "locate_many",
    "region_children",
    "regions_geojson",
    "seed_builtin_regions",
]

# Reads and writes of an import go in batches of this many codes or rows, so a large file does not build one huge
# statement.
IMPORT_BATCH = 500


# --- built-in regions -------------------------------------------------------------------------------------------


def seed_builtin_regions(session: Session, *, settings: Settings) -> int:
    """Store the built-in regions of the configured kabupaten (none for a kabupaten without built-in data)."""
    if settings.region_code != builtin.KABUPATEN_CODE:
        return 0
    stored = {row.code: row for row in session.execute(sa.select(*REGION_SUMMARY, Region.min_lon))}
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for item in builtin.BUILTIN_REGIONS:
        row = stored.get(item.code)
        if row is None:
            inserts.append({**item._asdict(), "updated_at": now})
            continue
        change: dict[str, Any] = {}
        # A region with imported boundaries belongs to its import: its name and centre came from that file.
        if row.min_lon is None and (row.name, row.level, row.parent_code) != (item.name, item.level, item.parent_code):
            change.update(name=item.name, level=item.level, parent_code=item.parent_code)
        if row.centroid_lat is None and item.centroid_lat is not None:
            change.update(centroid_lat=item.centroid_lat, centroid_lon=item.centroid_lon)
        if change:
            updates.append({"code": item.code, **change, "updated_at": now})
    if inserts or updates:
        session.flush()
        _write_rows(session, new=inserts, old=updates)
        _regions_changed(
            session,
            actor=Actor.system("builtin"),
            action="regions.seed",
            settings=settings,
            after={"created": len(inserts), "updated": len(updates)},
        )
    return len(builtin.BUILTIN_REGIONS)


def _write_rows(session: Session, *, new: list[dict[str, Any]], old: list[dict[str, Any]]) -> None:
    """Insert the `new` region rows and update the `old` ones, each in one bulk statement."""
    if new:
        session.execute(sa.insert(Region), new)
    if old:
        session.execute(sa.update(Region), old)


def _regions_changed(session: Session, *, actor: Actor, action: str, settings: Settings, after: dict[str, Any]) -> None:
    """After bulk writes: read the session's regions again, record the change, and tell this process's index."""
    from kotacerdas.regions import locator  # shapely and numpy load on first use: start-up time

    # Bulk statements bypass the identity map; regions already loaded in this session must be read again.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Region):
            session.expire(obj)
    record_change(
        session, actor=actor, action=action, entity_type="region", entity_id=settings.region_code, after=after
    )
    locator.invalidate_index(session)


# --- boundary import --------------------------------------------------------------------------------------------


def import_boundaries(
    session: Session,
    *,
    settings: Settings,
    data: bytes,
    actor: Actor,
    progress: Callable[[int, int], None] | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Import region boundaries from a GeoJSON FeatureCollection; all features are checked before anything is stored."""
    from kotacerdas.regions import boundaries  # shapely and numpy load on first use: start-up time

    features = boundaries.check_collection(
        data,
        region_code=settings.region_code,
        stored_codes=lambda codes: _stored_codes(session, codes),
        progress=progress,
    )
    existing = _stored_codes(session, [feature.code for feature in features])
    result = ImportResult(created=len(features) - len(existing), updated=len(existing), total=len(features))
    if dry_run:
        return result
    session.flush()
    now = utcnow()
    for start in range(0, len(features), IMPORT_BATCH):
        rows = [feature.row(now) for feature in features[start : start + IMPORT_BATCH]]
        _write_rows(
            session,
            new=[row for row in rows if row["code"] not in existing],
            old=[row for row in rows if row["code"] in existing],
        )
    _regions_changed(
        session,
        actor=actor,
        action="regions.import",
        settings=settings,
        after={"created": result.created, "updated": result.updated, "total": result.total},
    )
    return result


def _stored_codes(session: Session, codes: Iterable[str]) -> set[str]:
    """Which of `codes` are stored."""
    codes = list(codes)
    stored: set[str] = set()
    for start in range(0, len(codes), IMPORT_BATCH):
        stored.update(
            session.scalars(sa.select(Region.code).where(Region.code.in_(codes[start : start + IMPORT_BATCH])))
        )
    return stored


# --- point lookup -----------------------------------------------------------------------------------------------


def locate_many(
    session: Session, *, settings: Settings, points: Sequence[Sequence[float]] | np.ndarray
) -> LocationBatch:
    """Locate many (latitude, longitude) points at once, as arrays; `batch[i]` is what `locate` says for point i."""
    from kotacerdas.regions import locator  # shapely and numpy load on first use: start-up time

    return locator.locate_many(session, settings=settings, points=points)


def locate(session: Session, *, settings: Settings, lat: float, lon: float) -> Location:
    """The desa/kelurahan and kecamatan of a point, or outside the kabupaten, and how exact that answer is."""
    errors = []
    if not (isinstance(lat, int | float) and -90 <= lat <= 90):
        errors.append({"field": "lat", "reason": "out_of_range"})
    if not (isinstance(lon, int | float) and -180 <= lon <= 180):
        errors.append({"field": "lon", "reason": "out_of_range"})
    if errors:
        raise InvalidInput(_("Latitude must be between -90 and 90 and longitude between -180 and 180."), errors=errors)
    return locate_many(session, settings=settings, points=[(lat, lon)]).location(0)


# --- reads ------------------------------------------------------------------------------------------------------


def list_regions(
    session: Session,
    *,
    level: RegionLevel | str | None = None,
    parent_code: str | None = None,
    q: str | None = None,
    page: PageRequest,
) -> Paged[Region]:
    """Regions by code, optionally of one level, under one parent, or whose name contains `q`."""
    statement = sa.select(Region).options(defer(Region.geometry)).order_by(Region.code)
    if level:
        statement = statement.where(Region.level == str(level))
    if parent_code:
        statement = statement.where(Region.parent_code == parent_code)
    if q and q.strip():
        statement = statement.where(Region.name.icontains(q.strip(), autoescape=True))
    return paginate(session, statement, page)


def get_region(session: Session, *, code: str) -> Region:
    """One region by its Kemendagri code; NotFound when there is none."""
    region = session.get(Region, code)
    if region is None:
        raise NotFound(_("There is no region with code {code}.").format(code=code))
    return region


def get_regions(session: Session, *, codes: Iterable[str]) -> dict[str, Region]:
    """The stored regions among `codes`, by code (without their boundaries); unknown codes are left out."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    statement = sa.select(Region).options(defer(Region.geometry)).where(Region.code.in_(wanted))
    return {region.code: region for region in session.scalars(statement)}


def region_exists(session: Session, *, code: str) -> bool:
    """True when a region with this code is stored."""
    return session.scalar(sa.select(Region.code).where(Region.code == code)) is not None


def list_kecamatan(session: Session, *, settings: Settings) -> list[Region]:
    """The stored kecamatan of the configured kabupaten/kota, by code."""
    return list(
        session.scalars(
            sa.select(Region)
            .options(defer(Region.geometry))
            .where(Region.level == RegionLevel.KECAMATAN.value, Region.parent_code == settings.region_code)
            .order_by(Region.code)
        )
    )


def region_children(session: Session, *, code: str) -> list[Region]:
    """The regions directly below one region, by code; NotFound when the region does not exist."""
    get_region(session, code=code)
    return list(
        session.scalars(
            sa.select(Region).options(defer(Region.geometry)).where(Region.parent_code == code).order_by(Region.code)
        )
    )


@dataclass(frozen=True)
class RegionFamily:
    """A region with its parent (when stored) and its children."""

    region: Region
    parent: Region | None
    children: list[Region]


def get_region_family(session: Session, *, code: str) -> RegionFamily:
    """A region with its parent and children; NotFound when there is none."""
    region = get_region(session, code=code)
    parent = session.get(Region, region.parent_code) if region.parent_code else None
    return RegionFamily(region=region, parent=parent, children=region_children(session, code=code))


def list_kecamatan_with_villages(session: Session, *, settings: Settings) -> list[tuple[Region, list[Region]]]:
    """The kabupaten's kecamatan by code, each with its desa and kelurahan by code."""
    kecamatan = list(
        session.scalars(
            sa.select(Region)
            .options(defer(Region.geometry))
            .where(Region.level == RegionLevel.KECAMATAN.value, Region.parent_code == settings.region_code)
            .order_by(Region.code)
        )
    )
    villages: dict[str, list[Region]] = {k.code: [] for k in kecamatan}
    if kecamatan:
        for village in session.scalars(
            sa.select(Region)
            .options(defer(Region.geometry))
            .where(
                Region.level.in_([RegionLevel.DESA.value, RegionLevel.KELURAHAN.value]),
                Region.parent_code.in_(list(villages)),
            )
            .order_by(Region.code)
        ):
            villages[village.parent_code].append(village)
    return [(k, villages[k.code]) for k in kecamatan]


def regions_geojson(session: Session, *, level: RegionLevel | str) -> dict[str, Any]:
    """The imported boundaries of one level as an RFC 7946 FeatureCollection (regions without one are left out)."""
    rows = session.execute(
        sa.select(*REGION_SUMMARY, Region.geometry)
        .where(Region.level == str(level), Region.geometry.is_not(None))
        .order_by(Region.code)
    )
    features = [
        {
            "type": "Feature",
            "id": row.code,
            "geometry": json.loads(row.geometry),
            # The same properties the import reads, so an export can be imported again.
            "properties": {
                "kode": row.code,
                "nama": row.name,
                "level": row.level,
                "induk": row.parent_code,
                "centroid": [row.centroid_lon, row.centroid_lat] if row.centroid_lat is not None else None,
            },
        }
        for row in rows
    ]
    return {"type": "FeatureCollection", "features": features}
