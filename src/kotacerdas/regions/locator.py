"""The point → desa/kelurahan index: built from the stored regions once, shared by every request of a process.

Part of the regions service: other domains use it through `regions/service.py`, which imports it only on the first
lookup, because shapely and numpy take a noticeable share of the app's start-up time.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kotacerdas.config import Settings
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _
from kotacerdas.regions import builtin
from kotacerdas.regions.boundaries import MAX_REPORTED_ERRORS
from kotacerdas.regions.enums import LocateMethod, RegionLevel
from kotacerdas.regions.models import REGION_SUMMARY, Region
from kotacerdas.regions.schemas import LocationBatch, RegionRef

# Metres per degree of latitude (mean Earth radius). Near the equator, where every Indonesian regency lies
# (|lat| < 11°), a degree of longitude is within 2 % of it, which is enough for "about 40 m away".
METRES_PER_DEGREE = 111_195.0
# How often a process asks the database whether the boundaries changed (another process may have imported).
INDEX_CHECK_SECONDS = 3.0

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


def invalidate_index(session: Session) -> None:
    # This process changed the regions: the next lookup compares the stamp at once instead of after a while.
    entry = _INDEXES.get(_engine_of(session))
    if entry is not None:
        entry.checked_at = -math.inf


def _build_index(session: Session, *, settings: Settings, stamp: tuple[Any, ...]) -> _Index:
    rows = session.execute(
        sa.select(
            *REGION_SUMMARY, Region.min_lon, Region.min_lat, Region.max_lon, Region.max_lat, Region.geometry
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
