"""Regions: built-in codes, boundary import, point → desa lookup and reads. Services flush; the caller commits."""

from __future__ import annotations

import json
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.validation import explain_validity
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, defer

from kotacerdas.accounts.service import Actor, record_change
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput, NotFound
from kotacerdas.i18n import _
from kotacerdas.pagination import Paged, PageRequest, paginate
from kotacerdas.regions import builtin
from kotacerdas.regions.enums import LocateMethod, RegionLevel
from kotacerdas.regions.models import Region
from kotacerdas.regions.schemas import ImportResult, Location, LocationBatch, RegionRef

# Metres per degree of latitude (mean Earth radius). Near the equator, where every Indonesian regency lies
# (|lat| < 11°), a degree of longitude is within 2 % of it, which is enough for "about 40 m away".
METRES_PER_DEGREE = 111_195.0
# How often a process asks the database whether the boundaries changed (another process may have imported).
INDEX_CHECK_SECONDS = 3.0
# Writes of an import go in batches of this many rows, so a large file does not build one huge statement.
IMPORT_BATCH = 500
# A file with thousands of bad features would make an unreadable answer; the count is in the message.
MAX_REPORTED_ERRORS = 1000

ACCEPTED_CRS = frozenset(
    {
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "urn:ogc:def:crs:OGC::CRS84",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "OGC:CRS84",
        "CRS84",
        "EPSG:4326",
        "urn:ogc:def:crs:EPSG::4326",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
    }
)
_CODE_SHAPES = {
    RegionLevel.KABUPATEN: re.compile(r"[0-9]{2}\.[0-9]{2}"),
    RegionLevel.KECAMATAN: re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}"),
    # Kemendagri numbers kelurahan 1xxx and desa 2xxx.
    RegionLevel.KELURAHAN: re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.1[0-9]{3}"),
    RegionLevel.DESA: re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.2[0-9]{3}"),
}


def _parent_of(code: str) -> str:
    return code.rsplit(".", 1)[0]


# --- built-in regions -------------------------------------------------------------------------------------------


def seed_builtin_regions(session: Session, *, settings: Settings) -> int:
    """Store the built-in regions of the configured kabupaten (none for a kabupaten without built-in data)."""
    if settings.region_code != builtin.KABUPATEN_CODE:
        return 0
    stored = {
        row.code: row
        for row in session.execute(
            sa.select(
                Region.code,
                Region.name,
                Region.level,
                Region.parent_code,
                Region.centroid_lat,
                Region.centroid_lon,
                Region.min_lon,
            )
        )
    }
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
        if inserts:
            session.execute(sa.insert(Region), inserts)
        if updates:
            session.execute(sa.update(Region), updates)
        _expire_loaded_regions(session)
        record_change(
            session,
            actor=Actor.system("builtin"),
            action="regions.seed",
            entity_type="region",
            entity_id=settings.region_code,
            after={"created": len(inserts), "updated": len(updates)},
        )
        _invalidate_index(session)
    return len(builtin.BUILTIN_REGIONS)


def _expire_loaded_regions(session: Session) -> None:
    # Bulk statements bypass the identity map; regions already loaded in this session must be read again.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Region):
            session.expire(obj)


# --- boundary import --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Feature:
    index: int
    code: str
    name: str
    level: str
    parent: str
    geometry: shapely.Geometry
    centroid: tuple[float, float] | None  # (lon, lat)


def _error(index: int | None, code: Any, reason: str) -> dict[str, Any]:
    return {"index": index, "kode": code if isinstance(code, str) else None, "reason": reason}


def _crs_problem(member: Any) -> str | None:
    """None when a GeoJSON `crs` member names WGS 84 longitude/latitude, else the reason."""
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if isinstance(name, str) and name.strip() in ACCEPTED_CRS:
        return None
    return _("The coordinate reference system must be WGS 84 longitude/latitude (CRS84 or EPSG:4326).")


def _ring_problem(ring: Any) -> tuple[np.ndarray | None, str | None]:
    """The ring's (lon, lat) array, or the reason it is not a closed GeoJSON ring in degrees."""
    try:
        array = np.asarray(ring)
    except ValueError:
        array = None
    if array is None or array.dtype.kind not in "iuf" or array.ndim != 2 or array.shape[1] not in (2, 3):
        return None, _("The coordinates are malformed: every position must be [longitude, latitude].")
    array = array[:, :2].astype(float)
    if not np.isfinite(array).all():
        return None, _("The coordinates are malformed: every position must be [longitude, latitude].")
    if (np.abs(array[:, 0]) > 180).any() or (np.abs(array[:, 1]) > 90).any():
        return None, _(
            "Coordinates are outside the longitude/latitude range; the file must be in WGS 84 degrees, longitude first."
        )
    if len(array) < 4:
        return None, _("A ring needs at least 4 positions.")
    if not (array[0] == array[-1]).all():
        return None, _("A ring is not closed: its last position must repeat the first.")
    return array, None


def _polygon(rings: Any) -> tuple[shapely.Polygon | None, str | None]:
    if not isinstance(rings, list):
        return None, _("The coordinates are malformed: every position must be [longitude, latitude].")
    if not rings:
        return shapely.Polygon(), None
    arrays = []
    for ring in rings:
        array, problem = _ring_problem(ring)
        if problem:
            return None, problem
        arrays.append(array)
    return shapely.Polygon(arrays[0], arrays[1:]), None


def _geometry(member: Any) -> tuple[shapely.Geometry | None, str | None]:
    """The feature's shapely geometry, or the reason it cannot be a region boundary."""
    if not isinstance(member, dict):
        return None, _("The feature has no geometry.")
    kind = member.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        return None, _("The geometry must be a Polygon or MultiPolygon, not {kind}.").format(kind=kind)
    if "crs" in member and (problem := _crs_problem(member["crs"])):
        return None, problem
    coordinates = member.get("coordinates")
    if kind == "Polygon":
        geometry, problem = _polygon(coordinates)
    else:
        if not isinstance(coordinates, list):
            return None, _("The coordinates are malformed: every position must be [longitude, latitude].")
        parts = []
        for rings in coordinates:
            part, problem = _polygon(rings)
            if problem:
                return None, problem
            if not part.is_empty:
                parts.append(part)
        geometry, problem = shapely.MultiPolygon(parts), None
    if problem:
        return None, problem
    if geometry.is_empty:
        return None, _("The geometry is empty.")
    if not shapely.is_valid(geometry):
        return None, _("The geometry is invalid: {explanation}.").format(explanation=explain_validity(geometry))
    return geometry, None


def _centroid(value: Any) -> tuple[tuple[float, float] | None, str | None]:
    if value is None:
        return None, None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and -180 <= value[0] <= 180
        and -90 <= value[1] <= 90
    ):
        return (float(value[0]), float(value[1])), None
    return None, _("The centroid must be [longitude, latitude] in degrees.")


def _check_feature(index: int, feature: Any, *, region_code: str) -> tuple[_Feature | None, list[dict[str, Any]]]:
    """The feature when it is a good region boundary; otherwise every reason it is not (parents checked later)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, [_error(index, None, _("The item is not a GeoJSON Feature."))]
    properties = feature.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    code = properties.get("kode")
    errors = []
    missing = [key for key in ("kode", "nama", "level", "induk") if not isinstance(properties.get(key), str)]
    missing += [key for key in ("kode", "nama", "level", "induk") if key not in missing and not properties[key].strip()]
    if missing:
        errors.append(_error(index, code, _("Missing property: {names}.").format(names=", ".join(missing))))
    if "crs" in feature and (problem := _crs_problem(feature["crs"])):
        errors.append(_error(index, code, problem))
    level: RegionLevel | None = None
    if "level" not in missing:
        try:
            level = RegionLevel(properties["level"].strip())
        except ValueError:
            errors.append(
                _error(
                    index,
                    code,
                    _("Unknown level {level}; use kabupaten, kecamatan, desa or kelurahan.").format(
                        level=properties["level"]
                    ),
                )
            )
    if "kode" not in missing:
        code = code.strip()
        if code != region_code and not code.startswith(region_code + "."):
            errors.append(
                _error(index, code, _("The code is outside this kabupaten ({region}).").format(region=region_code))
            )
        elif level is not None and not _CODE_SHAPES[level].fullmatch(code):
            errors.append(
                _error(
                    index,
                    code,
                    _("The code does not fit the level {level} (for example {example}).").format(
                        level=level.value, example=_example_code(level, region_code)
                    ),
                )
            )
        elif "induk" not in missing and level is not None:
            parent = properties["induk"].strip()
            expected = code[:2] if level == RegionLevel.KABUPATEN else _parent_of(code)
            if parent != expected:
                errors.append(
                    _error(
                        index,
                        code,
                        _("The parent (induk) {parent} does not match the code; expected {expected}.").format(
                            parent=parent, expected=expected
                        ),
                    )
                )
    if "nama" not in missing and len(properties["nama"].strip()) > 120:
        errors.append(_error(index, code, _("The name is longer than 120 characters.")))
    centroid, problem = _centroid(properties.get("centroid"))
    if problem:
        errors.append(_error(index, code, problem))
    geometry, problem = _geometry(feature.get("geometry"))
    if problem:
        errors.append(_error(index, code, problem))
    if errors:
        return None, errors
    return (
        _Feature(
            index=index,
            code=code,
            name=properties["nama"].strip(),
            level=level.value,
            parent=properties["induk"].strip(),
            geometry=shapely.force_2d(geometry),
            centroid=centroid,
        ),
        [],
    )


def _example_code(level: RegionLevel, region_code: str) -> str:
    return {
        RegionLevel.KABUPATEN: region_code,
        RegionLevel.KECAMATAN: f"{region_code}.09",
        RegionLevel.KELURAHAN: f"{region_code}.09.1003",
        RegionLevel.DESA: f"{region_code}.09.2001",
    }[level]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _parse_collection(data: bytes) -> list[Any]:
    """The features of a GeoJSON FeatureCollection; InvalidInput (one error) when the file is not one."""
    detail = _("The file is not a GeoJSON FeatureCollection; nothing was imported.")
    try:
        document = json.loads(data, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidInput(detail, errors=[_error(None, None, _("The file is not UTF-8 text."))]) from None
    except ValueError as exc:
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        reason = (
            _("The file is not JSON (line {line}, column {column}).").format(line=line, column=column)
            if line
            else _("The file is not JSON.")
        )
        raise InvalidInput(detail, errors=[_error(None, None, reason)]) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        reason = _('The top level must be an object with "type": "FeatureCollection".')
        raise InvalidInput(detail, errors=[_error(None, None, reason)])
    if "crs" in document and (problem := _crs_problem(document["crs"])):
        raise InvalidInput(detail, errors=[_error(None, None, problem)])
    features = document.get("features")
    if not isinstance(features, list):
        raise InvalidInput(detail, errors=[_error(None, None, _('"features" must be a list.'))])
    if not features:
        raise InvalidInput(detail, errors=[_error(None, None, _("The file has no features."))])
    return features


def _check_collection(
    session: Session,
    *,
    settings: Settings,
    data: bytes,
    progress: Callable[[int, int], None] | None,
) -> list[_Feature]:
    """Every feature of the file, or InvalidInput listing every bad one; reads but never writes."""
    items = _parse_collection(data)
    total = len(items)
    errors: list[dict[str, Any]] = []
    bad: set[int] = set()
    features: list[_Feature] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        feature, problems = _check_feature(index, item, region_code=settings.region_code)
        errors += problems
        if problems:
            bad.add(index)
        code = feature.code if feature else (problems[0]["kode"] if problems else None)
        if isinstance(code, str):
            code = code.strip()
            if code in first_index:
                errors.append(
                    _error(
                        index,
                        code,
                        _("Duplicate code; it first appears at feature {first}.").format(first=first_index[code]),
                    )
                )
                bad.add(index)
                feature = None
            else:
                first_index[code] = index
        if feature is not None:
            features.append(feature)
        if progress is not None and index % 25 == 0:
            progress(index, total)
    # A parent may come from the same file or be stored already; the kabupaten's parent is its province.
    wanted = {f.parent for f in features if f.level != RegionLevel.KABUPATEN} - set(first_index)
    stored = set(session.scalars(sa.select(Region.code).where(Region.code.in_(wanted)))) if wanted else set()
    for feature in features:
        if (
            feature.level != RegionLevel.KABUPATEN
            and feature.parent not in first_index
            and feature.parent not in stored
        ):
            errors.append(
                _error(
                    feature.index,
                    feature.code,
                    _("The parent {parent} is neither in the file nor stored.").format(parent=feature.parent),
                )
            )
            bad.add(feature.index)
    if errors:
        errors.sort(key=lambda error: error["index"])
        raise InvalidInput(
            _("{bad} of {total} features are wrong; nothing was imported. See errors.").format(
                bad=len(bad), total=total
            ),
            errors=errors[:MAX_REPORTED_ERRORS],
        )
    if progress is not None:
        progress(total, total)
    return features


def _row(feature: _Feature, now: Any) -> dict[str, Any]:
    geometry = feature.geometry
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    if feature.centroid is not None:
        centroid_lon, centroid_lat = feature.centroid
    else:
        # The representative point is always inside the polygon; the true centroid of a C shape is not.
        point = geometry.representative_point()
        centroid_lon, centroid_lat = point.x, point.y
    return {
        "code": feature.code,
        "name": feature.name,
        "level": feature.level,
        "parent_code": feature.parent,
        "centroid_lat": centroid_lat,
        "centroid_lon": centroid_lon,
        "min_lat": min_lat,
        "min_lon": min_lon,
        "max_lat": max_lat,
        "max_lon": max_lon,
        "geometry": shapely.to_geojson(geometry),
        "updated_at": now,
    }


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
    features = _check_collection(session, settings=settings, data=data, progress=progress)
    codes = [feature.code for feature in features]
    existing: set[str] = set()
    for start in range(0, len(codes), IMPORT_BATCH):
        chunk = codes[start : start + IMPORT_BATCH]
        existing.update(session.scalars(sa.select(Region.code).where(Region.code.in_(chunk))))
    result = ImportResult(created=len(codes) - len(existing), updated=len(existing), total=len(features))
    if dry_run:
        return result
    session.flush()
    now = utcnow()
    for start in range(0, len(features), IMPORT_BATCH):
        rows = [_row(feature, now) for feature in features[start : start + IMPORT_BATCH]]
        new = [row for row in rows if row["code"] not in existing]
        old = [row for row in rows if row["code"] in existing]
        if new:
            session.execute(sa.insert(Region), new)
        if old:
            session.execute(sa.update(Region), old)
    _expire_loaded_regions(session)
    record_change(
        session,
        actor=actor,
        action="regions.import",
        entity_type="region",
        entity_id=settings.region_code,
        after={"created": result.created, "updated": result.updated, "total": result.total},
    )
    _invalidate_index(session)
    return result


# --- point lookup -----------------------------------------------------------------------------------------------

_EMPTY, _MIXED = -1, -2
_METHODS = np.array([m.value for m in LocateMethod])
_BOUNDARY, _NEAREST, _CENTROID = 0, 1, 2  # positions in _METHODS


@dataclass(frozen=True)
class _Grid:
    """A uniform grid over a set of polygons. A cell is inside exactly one polygon (most points are answered by
    one array lookup), touches none, or is mixed (its points are tested exactly against the polygons touching it)."""

    min_x: float
    min_y: float
    size: float
    nx: int
    ny: int
    state: np.ndarray  # polygon index, _EMPTY or _MIXED, per cell
    start: np.ndarray  # candidates of cell c: cands[start[c] : start[c + 1]]
    cands: np.ndarray

    @classmethod
    def build(cls, geometries: np.ndarray, *, cells: int = 256) -> _Grid:
        """Classify each cell; `cells` cells along the longer side of the polygons' extent."""
        min_x, min_y, max_x, max_y = shapely.total_bounds(geometries)
        size = max(max_x - min_x, max_y - min_y, 1e-9) / cells
        nx, ny = int((max_x - min_x) / size) + 1, int((max_y - min_y) / size) + 1
        # Cells are tested a hair larger than they are, so a point rounded into a neighbouring cell is still safe.
        margin = size * 1e-6
        bounds = shapely.bounds(geometries)
        hit_cells, hit_polygons, inner = [], [], []
        for k, geometry in enumerate(geometries):
            i0, j0 = int((bounds[k, 0] - min_x) / size), int((bounds[k, 1] - min_y) / size)
            i1, j1 = min(int((bounds[k, 2] - min_x) / size), nx - 1), min(int((bounds[k, 3] - min_y) / size), ny - 1)
            ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1), indexing="ij")
            ii, jj = ii.ravel(), jj.ravel()
            boxes = shapely.box(
                min_x + ii * size - margin,
                min_y + jj * size - margin,
                min_x + (ii + 1) * size + margin,
                min_y + (jj + 1) * size + margin,
            )
            touches = shapely.intersects(geometry, boxes)
            hit_cells.append((ii * ny + jj)[touches])
            hit_polygons.append(np.full(int(touches.sum()), k, dtype=np.int32))
            inner.append(shapely.contains_properly(geometry, boxes[touches]))
        cell_ids = np.concatenate(hit_cells) if hit_cells else np.zeros(0, dtype=np.int64)
        polygon_ids = np.concatenate(hit_polygons) if hit_polygons else np.zeros(0, dtype=np.int32)
        inside = np.concatenate(inner) if inner else np.zeros(0, dtype=bool)
        count = np.bincount(cell_ids, minlength=nx * ny)
        state = np.where(count > 0, _MIXED, _EMPTY).astype(np.int32)
        alone = inside & (count[cell_ids] == 1)
        state[cell_ids[alone]] = polygon_ids[alone]
        order = np.argsort(cell_ids, kind="stable")
        start = np.concatenate([[0], np.cumsum(count)])
        return cls(float(min_x), float(min_y), float(size), nx, ny, state, start, polygon_ids[order])

    def lookup(
        self, geometries: np.ndarray, x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray
    ) -> np.ndarray:
        """Index of the polygon containing each point, -1 for none. Where simplified polygons overlap, the one
        whose centre is nearest wins, so the answer does not depend on the order of the file."""
        fx, fy = (x - self.min_x) / self.size, (y - self.min_y) / self.size
        on_grid = (fx >= 0) & (fy >= 0) & (fx < self.nx) & (fy < self.ny)
        cell = np.where(on_grid, fx.astype(np.int64) * self.ny + fy.astype(np.int64), 0)
        result = np.where(on_grid, self.state[cell], _EMPTY)
        mixed = np.flatnonzero(result == _MIXED)
        if mixed.size:
            result[mixed] = _EMPTY
            mixed_cells = cell[mixed]
            counts = self.start[mixed_cells + 1] - self.start[mixed_cells]
            point = np.repeat(mixed, counts)
            offset = np.arange(point.size) - np.repeat(np.cumsum(counts) - counts, counts)
            polygon = self.cands[np.repeat(self.start[mixed_cells], counts) + offset]
            inside = shapely.contains_xy(geometries[polygon], x[point], y[point])
            point, polygon = point[inside], polygon[inside]
            if point.size:
                distance = (x[point] - cx[polygon]) ** 2 + (y[point] - cy[polygon]) ** 2
                order = np.lexsort((polygon, distance, point))
                point, polygon = point[order], polygon[order]
                first = np.r_[True, point[1:] != point[:-1]]
                result[point[first]] = polygon[first]
        return result


@dataclass(frozen=True)
class _Layer:
    """The imported boundaries of one level, ready for point-in-polygon tests."""

    geometries: np.ndarray
    codes: np.ndarray  # object array, with a trailing None so that index -1 means "none"
    cx: np.ndarray
    cy: np.ndarray
    grid: _Grid
    tree: shapely.STRtree

    @classmethod
    def build(cls, rows: list[Any]) -> _Layer | None:
        if not rows:
            return None
        geometries = shapely.from_geojson([row.geometry for row in rows])
        shapely.prepare(geometries)
        cx = np.array([row.centroid_lon for row in rows], dtype=float)
        cy = np.array([row.centroid_lat for row in rows], dtype=float)
        # GEOS builds a prepared polygon's point index on its first test; do it now, not in some request later.
        shapely.contains_xy(geometries, cx, cy)
        return cls(
            geometries=geometries,
            codes=np.array([row.code for row in rows] + [None], dtype=object),
            cx=cx,
            cy=cy,
            grid=_Grid.build(geometries),
            tree=shapely.STRtree(geometries),
        )

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.grid.lookup(self.geometries, x, y, self.cx, self.cy)

    def nearest(
        self, x: np.ndarray, y: np.ndarray, subset: tuple[np.ndarray, shapely.STRtree] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest polygon (among a subset: its indexes and their tree) and the distance in degrees."""
        tree = self.tree if subset is None else subset[1]
        pairs, distance = tree.query_nearest(shapely.points(x, y), return_distance=True, all_matches=False)
        found = np.full(len(x), -1, dtype=np.int64)
        far = np.full(len(x), np.nan)
        found[pairs[0]] = pairs[1] if subset is None else subset[0][pairs[1]]
        far[pairs[0]] = distance
        return found, far


@dataclass(frozen=True)
class _Index:
    """Everything `locate` needs, built from the stored regions once and shared by every request of a process."""

    stamp: tuple[Any, ...]
    region_code: str
    refs: dict[str, RegionRef]
    villages: _Layer | None
    village_kecamatan: np.ndarray  # object: the parent kecamatan code of each village polygon
    kecamatan: _Layer | None
    # Village polygons per kecamatan code, for points in a gap inside a known kecamatan.
    villages_by_kecamatan: dict[str, tuple[np.ndarray, shapely.STRtree]]
    kabupaten: shapely.Geometry | None
    # The fallback without boundaries: kecamatan centres and the kabupaten's bounding box.
    centre_codes: np.ndarray
    centre_lat: np.ndarray
    centre_lon: np.ndarray
    bbox: tuple[float, float, float, float] | None

    @property
    def has_boundaries(self) -> bool:
        return self.villages is not None or self.kecamatan is not None


@dataclass
class _CacheEntry:
    index: _Index
    checked_at: float


# One index per engine (one per app or worker process). Weak keys: a disposed test engine frees its index.
_INDEXES: weakref.WeakKeyDictionary[Engine, _CacheEntry] = weakref.WeakKeyDictionary()
_INDEX_LOCK = threading.Lock()


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _stamp(session: Session) -> tuple[Any, ...]:
    """A cheap fingerprint of the stored regions: an import or a seed changes it."""
    count, latest = session.execute(sa.select(sa.func.count(), sa.func.max(Region.updated_at))).one()
    return (count, latest)


def _invalidate_index(session: Session) -> None:
    # This process changed the regions: the next lookup compares the stamp at once instead of after a while.
    entry = _INDEXES.get(_engine_of(session))
    if entry is not None:
        entry.checked_at = -math.inf


def _build_index(session: Session, *, settings: Settings, stamp: tuple[Any, ...]) -> _Index:
    rows = session.execute(
        sa.select(
            Region.code,
            Region.name,
            Region.level,
            Region.parent_code,
            Region.centroid_lat,
            Region.centroid_lon,
            Region.min_lon,
            Region.min_lat,
            Region.max_lon,
            Region.max_lat,
            Region.geometry,
        ).order_by(Region.code)
    ).all()
    refs = {row.code: RegionRef(code=row.code, name=row.name, level=row.level) for row in rows}
    with_shape = [row for row in rows if row.geometry]
    village_rows = [row for row in with_shape if RegionLevel(row.level).is_village]
    kecamatan_rows = [row for row in with_shape if row.level == RegionLevel.KECAMATAN]
    kabupaten_row = next(
        (row for row in rows if row.level == RegionLevel.KABUPATEN and row.code == settings.region_code), None
    )
    villages = _Layer.build(village_rows)
    village_kecamatan = np.array([row.parent_code for row in village_rows] + [None], dtype=object)
    by_kecamatan: dict[str, list[int]] = {}
    for i, row in enumerate(village_rows):
        by_kecamatan.setdefault(row.parent_code, []).append(i)
    kabupaten = None
    if kabupaten_row is not None and kabupaten_row.geometry:
        kabupaten = shapely.from_geojson(kabupaten_row.geometry)
        shapely.prepare(kabupaten)
    centres = [
        row
        for row in rows
        if row.level == RegionLevel.KECAMATAN
        and row.parent_code == settings.region_code
        and row.centroid_lat is not None
    ]
    if not centres and settings.region_code == builtin.KABUPATEN_CODE:
        centres = list(builtin.KECAMATAN)
        refs.update({k.code: RegionRef(code=k.code, name=k.name, level=k.level) for k in builtin.KECAMATAN})
    bbox = None
    if kabupaten_row is not None and kabupaten_row.min_lon is not None:
        bbox = (kabupaten_row.min_lon, kabupaten_row.min_lat, kabupaten_row.max_lon, kabupaten_row.max_lat)
    elif settings.region_code == builtin.KABUPATEN_CODE:
        bbox = builtin.BBOX
    return _Index(
        stamp=stamp,
        region_code=settings.region_code,
        refs=refs,
        villages=villages,
        village_kecamatan=village_kecamatan,
        kecamatan=_Layer.build(kecamatan_rows),
        villages_by_kecamatan={
            code: (np.array(ids), shapely.STRtree(villages.geometries[ids])) for code, ids in by_kecamatan.items()
        },
        kabupaten=kabupaten,
        centre_codes=np.array([row.code for row in centres] + [None], dtype=object),
        centre_lat=np.array([row.centroid_lat for row in centres], dtype=float),
        centre_lon=np.array([row.centroid_lon for row in centres], dtype=float),
        bbox=bbox,
    )


def _get_index(session: Session, *, settings: Settings) -> _Index:
    """The cached index of this engine; rebuilt when the stored regions changed (checked every few seconds)."""
    engine = _engine_of(session)
    now = time.monotonic()
    entry = _INDEXES.get(engine)
    if entry is not None and entry.index.region_code == settings.region_code:
        if now - entry.checked_at < INDEX_CHECK_SECONDS:
            return entry.index
        stamp = _stamp(session)
        if entry.index.stamp == stamp:
            entry.checked_at = now
            return entry.index
    else:
        stamp = _stamp(session)
    with _INDEX_LOCK:
        entry = _INDEXES.get(engine)
        # Another thread may have rebuilt it while this one waited.
        if entry is not None and entry.index.stamp == stamp and entry.index.region_code == settings.region_code:
            return entry.index
        # The stamp is read before the rows: if they change in between, the next check rebuilds again.
        index = _build_index(session, settings=settings, stamp=stamp)
        _INDEXES[engine] = _CacheEntry(index=index, checked_at=now)
        return index


@dataclass
class _Answer:
    """Per-point results while locating: indexes and codes in numpy arrays."""

    desa: np.ndarray  # object: code or None
    kecamatan: np.ndarray  # object: code or None
    method: np.ndarray  # int8 into _METHODS
    distance: np.ndarray  # degrees; NaN when not applicable


def _locate_by_centroid(index: _Index, x: np.ndarray, y: np.ndarray) -> _Answer:
    n = len(x)
    nearest = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    if index.bbox is not None and len(index.centre_lat):
        min_x, min_y, max_x, max_y = index.bbox
        inside = np.flatnonzero((x >= min_x) & (x <= max_x) & (y >= min_y) & (y <= max_y))
        px, py = x[inside], y[inside]
        # Degrees of longitude shrink with the cosine of the latitude; one factor for the kabupaten is enough.
        shrink = math.cos(math.radians(float(np.mean(index.centre_lat))))
        best = np.full(inside.size, np.inf)
        best_index = np.full(inside.size, -1, dtype=np.int64)
        for k in range(len(index.centre_lat)):
            d2 = ((px - index.centre_lon[k]) * shrink) ** 2 + (py - index.centre_lat[k]) ** 2
            closer = d2 < best
            best[closer], best_index[closer] = d2[closer], k
        nearest[inside] = best_index
        distance[inside] = np.sqrt(best)
    return _Answer(
        desa=np.full(n, None, dtype=object),
        kecamatan=index.centre_codes[nearest],
        method=np.full(n, _CENTROID, dtype=np.int8),
        distance=distance,
    )


def _locate_by_boundary(index: _Index, x: np.ndarray, y: np.ndarray) -> _Answer:
    n = len(x)
    villages, kecamatan_layer = index.villages, index.kecamatan
    desa = np.full(n, None, dtype=object)
    kecamatan = np.full(n, None, dtype=object)
    method = np.full(n, _BOUNDARY, dtype=np.int8)
    distance = np.full(n, np.nan)
    village = villages.contains(x, y) if villages is not None else np.full(n, -1, dtype=np.int64)
    hit = np.flatnonzero(village >= 0)
    desa[hit] = villages.codes[village[hit]] if villages is not None else None
    kecamatan[hit] = index.village_kecamatan[village[hit]]
    miss = np.flatnonzero(village < 0)
    if not miss.size:
        return _Answer(desa, kecamatan, method, distance)
    mx, my = x[miss], y[miss]
    in_kecamatan = (
        kecamatan_layer.codes[kecamatan_layer.contains(mx, my)]
        if kecamatan_layer is not None
        else np.full(miss.size, None, dtype=object)
    )
    in_kabupaten = (
        shapely.contains_xy(index.kabupaten, mx, my) if index.kabupaten is not None else np.zeros(miss.size, bool)
    )
    # Inside a kecamatan polygon: that kecamatan is exact; the desa is the nearest of its own villages, if any.
    known = np.flatnonzero(in_kecamatan != None)  # noqa: E711 (element-wise comparison on an object array)
    kecamatan[miss[known]] = in_kecamatan[known]
    rest = np.flatnonzero((in_kecamatan == None) & in_kabupaten)  # noqa: E711
    if villages is not None:
        for code in np.unique(in_kecamatan[known].astype(str)) if known.size else ():
            own = index.villages_by_kecamatan.get(code)
            if own is None:
                continue  # no desa boundaries for this kecamatan: the answer stays the kecamatan alone
            group = known[in_kecamatan[known] == code]
            found, far = villages.nearest(mx[group], my[group], subset=own)
            desa[miss[group]] = villages.codes[found]
            method[miss[group]] = _NEAREST
            distance[miss[group]] = far
        if rest.size:
            found, far = villages.nearest(mx[rest], my[rest])
            desa[miss[rest]] = villages.codes[found]
            kecamatan[miss[rest]] = index.village_kecamatan[found]
            method[miss[rest]] = _NEAREST
            distance[miss[rest]] = far
    elif kecamatan_layer is not None and rest.size:
        found, far = kecamatan_layer.nearest(mx[rest], my[rest])
        kecamatan[miss[rest]] = kecamatan_layer.codes[found]
        method[miss[rest]] = _NEAREST
        distance[miss[rest]] = far
    return _Answer(desa, kecamatan, method, distance)


def _points(points: Any) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of (lat, lon) pairs; InvalidInput naming each point out of range."""
    try:
        array = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.size == 0:
        return np.zeros(0), np.zeros(0)
    if array is None or array.ndim != 2 or array.shape[1] != 2:
        raise InvalidInput(_("Give the points as (latitude, longitude) pairs."), errors=[{"field": "points"}])
    lat, lon = array[:, 0], array[:, 1]
    bad = np.flatnonzero(~(np.abs(lat) <= 90) | ~(np.abs(lon) <= 180))
    if bad.size:
        raise InvalidInput(
            _("Latitude must be between -90 and 90 and longitude between -180 and 180."),
            errors=[
                {"index": int(i), "lat": float(lat[i]), "lon": float(lon[i]), "reason": "out_of_range"}
                for i in bad[:MAX_REPORTED_ERRORS]
            ],
        )
    return lat, lon


def locate_many(
    session: Session, *, settings: Settings, points: Sequence[Sequence[float]] | np.ndarray
) -> LocationBatch:
    """Locate many (latitude, longitude) points at once, as arrays; `batch[i]` is what `locate` says for point i."""
    lat, lon = _points(points)
    index = _get_index(session, settings=settings)
    answer = _locate_by_boundary(index, lon, lat) if index.has_boundaries else _locate_by_centroid(index, lon, lat)
    return LocationBatch(
        lat=lat,
        lon=lon,
        inside=answer.kecamatan != None,  # noqa: E711
        method=_METHODS[answer.method],
        desa_code=answer.desa,
        kecamatan_code=answer.kecamatan,
        distance_m=answer.distance * METRES_PER_DEGREE,
        refs=index.refs,
    )


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
        sa.select(
            Region.code,
            Region.name,
            Region.level,
            Region.parent_code,
            Region.centroid_lat,
            Region.centroid_lon,
            Region.geometry,
        )
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
