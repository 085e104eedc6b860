"""The public map of assets: viewport queries over an in-process index of the active assets, points clustered and
roads drawn as lines simplified for the zoom.

Like the report map (`reports/mapindex.py`, whose pattern this follows), a viewport at a low zoom covers the whole
regency, and 250,000 assets with their road geometries are too many to read from the database on every pan. So each
process keeps what the map needs of every ACTIVE asset in numpy arrays addressed by asset id (`slot = id - base`):
its position in integer Web Mercator coordinates, its bounding box, type, condition, kecamatan, owner OPD and name;
and, for line assets (roads, drains), their vertices at a few zoom bands, simplified once at load (Douglas–Peucker
with a tolerance of one screen pixel at the band's zoom). It is loaded on first use (or in the background at start),
and brought up to date before every query by reading only the rows changed since the last look (`assets.updated_at`
is indexed, and every service change sets it).

A query is a few vectorised masks, then:
- lines in view are drawn as LineStrings at the band for the zoom. When more than LINES_MAX are in view (the whole
  road network at zoom 10), only the largest on screen are drawn, at most LINES_MAX and VERTICES_MAX vertices, and
  lines smaller than MIN_LINE_PX are never drawn then: at that zoom they are a few pixels long anyway;
- points, and the lines not drawn (at their middle point), are returned one by one when at most POINTS_MAX, else as
  clusters over a grid of 64-pixel cells, each with its count and its assets' conditions.
The answer therefore has at most LINES_MAX + CELLS_MAX (+ POINTS_MAX) features and stays well under 2 MB at any zoom
(bench/assets_map.py measures it; docs/performance.md has the figures).

Line vertices are stored once per band in a growing pool of integer world coordinates; each line piece (a
MultiLineString has several) points into it. A changed line gets new pieces at the end of the pools; the old ones
are garbage until the index is loaded again, which happens when the garbage outgrows the live pieces.

numpy and shapely are imported on first use, so that the app starts without them.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kotacerdas.assets.enums import UNKNOWN_COLOUR, Condition, GeometryKind
from kotacerdas.assets.models import Asset, AssetType
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _

log = logging.getLogger("kotacerdas.assets.mapindex")

# With at most this many points (and lines not drawn) in the viewport, each is returned; with more, they are clustered.
POINTS_MAX = 300
# At most this many lines are drawn in one answer, with at most this many vertices in all (about 23 bytes each).
LINES_MAX = 2000
VERTICES_MAX = 30_000
# When more lines than LINES_MAX are in view, a line is drawn only when its box is at least this many pixels across.
MIN_LINE_PX = 6
# Cluster cells are this many screen pixels wide; a power of two, so that a cell is a bit shift of the coordinates.
CELL_PX = 64
TILE_PX = 256
# Positions are integer Web Mercator coordinates on a 2^32 × 2^32 world (about 1 cm at the equator).
WORLD_BITS = 32
CELLS_MAX = 1000
MAX_ZOOM = 22
MERCATOR_MAX_LAT = 85.05112878
# Zoom levels at which line vertices are simplified (one pixel of tolerance at that zoom). A query at zoom z uses
# the first band at or above z, so the error is never more than a pixel; above the last band, the stored vertices.
BAND_ZOOMS = (6, 8, 10, 12, 14, 16)
FULL_BAND = len(BAND_ZOOMS)
# Coordinates in answers: 6 decimals of a degree is about 11 cm.
DECIMALS = 6
# See reports/mapindex.py: a refresh reads again the rows changed up to REFRESH_SLACK before the newest change it
# has seen, never rows older than REFRESH_HORIZON (plus the slack).
REFRESH_SLACK = timedelta(seconds=10)
REFRESH_HORIZON = timedelta(seconds=60)
LOAD_CHUNK = 50_000
CHECK_SECONDS = 3.0
# Load the index anew when the pools hold more dead line pieces than this and than live ones.
GARBAGE_PIECES_MIN = 10_000

CONDITIONS = list(Condition)
CONDITION_NUMBER = {condition.value: i for i, condition in enumerate(CONDITIONS)}
# The condition number of an asset not inspected yet; "unknown" in filters and cluster breakdowns.
UNKNOWN = len(CONDITIONS)
UNKNOWN_KEY = "unknown"
_NO_KECAMATAN = -1


def _numpy():
    import numpy

    return numpy


def _shapely():
    import shapely

    return shapely


@dataclass
class _Columns:
    """One slot per asset id; `present` is false for a slot whose asset is missing or archived."""

    base: int
    size: int = 0
    present: Any = None
    line: Any = None  # drawn as a line (its type's geometry kind)
    x: Any = None  # Web Mercator x of the asset's point (a line's middle), 0 at 180° west
    y: Any = None  # Web Mercator y, 0 at the north edge of the world
    x0: Any = None  # bounding box: x0 <= x1, y0 (north) <= y1 (south)
    y0: Any = None
    x1: Any = None
    y1: Any = None
    type: Any = None
    condition: Any = None  # CONDITION_NUMBER, UNKNOWN when not inspected
    kecamatan: Any = None
    agency: Any = None
    first_piece: Any = None  # lines: the first of `pieces` consecutive pieces in `_Lines`
    pieces: Any = None
    geometry_hash: Any = None  # lines: hash of the geometry text the pieces were made from
    name: Any = None

    DTYPES = {
        "present": "bool",
        "line": "bool",
        "x": "uint32",
        "y": "uint32",
        "x0": "uint32",
        "y0": "uint32",
        "x1": "uint32",
        "y1": "uint32",
        "type": "int32",
        "condition": "int8",
        "kecamatan": "int16",
        "agency": "int32",
        "first_piece": "int32",
        "pieces": "int32",
        "geometry_hash": "int64",
        "name": "object",
    }

    @classmethod
    def empty(cls, *, base: int, capacity: int) -> _Columns:
        np = _numpy()
        columns = cls(base=base)
        for name, dtype in cls.DTYPES.items():
            setattr(columns, name, np.zeros(max(capacity, 1024), dtype=dtype))
        return columns

    @property
    def capacity(self) -> int:
        return len(self.present)

    def reserve(self, slots: int) -> None:
        """Make room for slots up to `slots - 1`, copying into larger arrays when needed."""
        if slots <= self.capacity:
            return
        np = _numpy()
        capacity = self.capacity
        while capacity < slots:
            capacity *= 2
        for name, dtype in self.DTYPES.items():
            grown = np.zeros(capacity, dtype=dtype)
            grown[: self.size] = getattr(self, name)[: self.size]
            setattr(self, name, grown)

    def snapshot(self) -> _Columns:
        """The arrays as they are now. The piece references are copied: a refresh that redraws a line points its
        slot at new pieces, which a query holding older pools must not follow."""
        values = {name: getattr(self, name) for name in self.DTYPES}
        values["first_piece"] = self.first_piece[: self.size].copy()
        values["pieces"] = self.pieces[: self.size].copy()
        return _Columns(base=self.base, size=self.size, **values)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.DTYPES)


@dataclass
class _Lines:
    """Vertices of line pieces at each band (BAND_ZOOMS, then the stored vertices), in integer world coordinates.

    `offset[band, piece]` and `count[band, piece]` locate a piece's vertices in `pools[band]` (rows of x, y).
    Pieces and pool rows are only ever appended, so a query's snapshot stays valid while a refresh adds more."""

    pieces: int = 0
    offset: Any = None
    count: Any = None
    pools: list[Any] = field(default_factory=list)
    pool_sizes: list[int] = field(default_factory=list)
    garbage: int = 0

    @classmethod
    def empty(cls, capacity: int = 1024) -> _Lines:
        np = _numpy()
        bands = FULL_BAND + 1
        return cls(
            offset=np.zeros((bands, max(capacity, 1024)), dtype=np.int64),
            count=np.zeros((bands, max(capacity, 1024)), dtype=np.int32),
            pools=[np.zeros((max(capacity, 1024) * 4, 2), dtype=np.uint32) for _band in range(bands)],
            pool_sizes=[0] * bands,
        )

    def _reserve_pieces(self, pieces: int) -> None:
        np = _numpy()
        capacity = self.offset.shape[1]
        if pieces <= capacity:
            return
        while capacity < pieces:
            capacity *= 2
        for name in ("offset", "count"):
            old = getattr(self, name)
            grown = np.zeros((old.shape[0], capacity), dtype=old.dtype)
            grown[:, : self.pieces] = old[:, : self.pieces]
            setattr(self, name, grown)

    def _append_vertices(self, band: int, xy) -> int:
        """Append rows of (x, y) to a band's pool; the row where they start."""
        np = _numpy()
        start = self.pool_sizes[band]
        pool = self.pools[band]
        if start + len(xy) > len(pool):
            capacity = len(pool)
            while capacity < start + len(xy):
                capacity *= 2
            grown = np.zeros((capacity, 2), dtype=np.uint32)
            grown[:start] = pool[:start]
            self.pools[band] = pool = grown
        pool[start : start + len(xy)] = xy
        self.pool_sizes[band] = start + len(xy)
        return start

    def add(self, texts: list[str | None]) -> tuple[Any, Any]:
        """Store the lines of GeoJSON geometry `texts` (None or unreadable: no piece); for each, its first piece and
        number of pieces."""
        np = _numpy()
        shapely = _shapely()
        first = np.full(len(texts), self.pieces, dtype=np.int32)
        counts = np.zeros(len(texts), dtype=np.int32)
        present = [i for i, text in enumerate(texts) if text]
        if not present:
            return first, counts
        geometries = shapely.from_geojson(np.asarray([texts[i] for i in present], dtype=object), on_invalid="ignore")
        parts, owner = shapely.get_parts(geometries, return_index=True)
        if len(parts):
            keep = (shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING) & (
                shapely.get_num_coordinates(parts) >= 2
            )
            parts, owner = parts[keep], owner[keep]
        if not len(parts):
            return first, counts
        owner = np.asarray(present, dtype=np.int64)[owner]
        per_owner = np.bincount(owner, minlength=len(texts)).astype(np.int32)
        counts[:] = per_owner
        first[:] = self.pieces + (np.cumsum(per_owner) - per_owner)
        lonlat, piece_of = shapely.get_coordinates(parts, return_index=True)
        wx, wy = _world_float(lonlat[:, 1], lonlat[:, 0])
        start_piece = self.pieces
        self._reserve_pieces(start_piece + len(parts))
        new = slice(start_piece, start_piece + len(parts))
        # The stored vertices: the full band.
        full_counts = np.bincount(piece_of, minlength=len(parts))
        self._store(FULL_BAND, new, _to_world_int(wx, wy), full_counts)
        world = shapely.linestrings(np.column_stack([wx, wy]), indices=piece_of)
        for band, zoom in enumerate(BAND_ZOOMS):
            pixel = 2.0 ** (WORLD_BITS - math.log2(TILE_PX) - zoom)
            simple = shapely.simplify(world, pixel, preserve_topology=False)
            xy, index = shapely.get_coordinates(simple, return_index=True)
            band_counts = np.bincount(index, minlength=len(parts))
            self._store(band, new, _to_world_int(xy[:, 0], xy[:, 1]), band_counts)
        self.pieces = start_piece + len(parts)
        return first, counts

    def _store(self, band: int, pieces: slice, xy, counts) -> None:
        np = _numpy()
        start = self._append_vertices(band, xy)
        self.offset[band, pieces] = start + (np.cumsum(counts) - counts)
        self.count[band, pieces] = counts

    def snapshot(self) -> _Lines:
        return _Lines(
            pieces=self.pieces,
            offset=self.offset,
            count=self.count,
            pools=list(self.pools),
            pool_sizes=list(self.pool_sizes),
            garbage=self.garbage,
        )

    @property
    def nbytes(self) -> int:
        return self.offset.nbytes + self.count.nbytes + sum(pool.nbytes for pool in self.pools)


@dataclass
class _Index:
    """The active assets of one database as seen by this process, and how far its refresh has read."""

    columns: _Columns
    lines: _Lines
    kecamatan_codes: list[str] = field(default_factory=list)
    kecamatan_index: dict[str, int] = field(default_factory=dict)
    watermark: datetime | None = None
    max_id: int = 0
    load_seconds: float = 0.0
    refreshed_rows: int = 0
    types: dict[int, tuple[str, bool]] = field(default_factory=dict)  # id → (code, drawn as a line)
    checked_at: float = -math.inf

    def kecamatan_number(self, code: str | None) -> int:
        if not code:
            return _NO_KECAMATAN
        number = self.kecamatan_index.get(code)
        if number is None:
            number = len(self.kecamatan_codes)
            self.kecamatan_codes.append(code)
            self.kecamatan_index[code] = number
        return number


_INDEXES: weakref.WeakKeyDictionary[Engine, _Index] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


# --- coordinates --------------------------------------------------------------------------------------------------


def _world_float(lat, lon):
    """Web Mercator coordinates on the 2^32 world, as floats (arrays or scalars) of WGS 84 positions."""
    np = _numpy()
    radians = np.radians(np.clip(np.asarray(lat, dtype=np.float64), -MERCATOR_MAX_LAT, MERCATOR_MAX_LAT))
    y = (1.0 - np.log(np.tan(radians) + 1.0 / np.cos(radians)) / math.pi) / 2.0
    x = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0
    return x * 2.0**WORLD_BITS, y * 2.0**WORLD_BITS


def _to_world_int(wx, wy):
    """Rows of (x, y) as uint32 from float world coordinates."""
    np = _numpy()
    top = 2**WORLD_BITS - 1
    return np.column_stack(
        [np.clip(np.floor(wx), 0, top).astype(np.uint32), np.clip(np.floor(wy), 0, top).astype(np.uint32)]
    )


def _world_xy(lat, lon):
    """Integer Web Mercator coordinates (two uint32 arrays) of WGS 84 positions."""
    np = _numpy()
    wx, wy = _world_float(lat, lon)
    top = 2**WORLD_BITS - 1
    return (
        np.clip(np.floor(wx), 0, top).astype(np.uint32),
        np.clip(np.floor(wy), 0, top).astype(np.uint32),
    )


def _lon_lat(x, y) -> list[tuple[float, float]]:
    """(lon, lat) positions rounded to DECIMALS, from integer world coordinates (the middle of their unit).

    Tuples, not lists: the answer holds tens of thousands of positions, and the garbage collector stops tracking a
    tuple of floats at its first pass, whereas every list it would carry into the oldest generation, whose
    collection (over the whole app's objects) then runs every few queries and costs far more than a query."""
    np = _numpy()
    x = np.asarray(x, dtype=np.float64) + 0.5
    y = np.asarray(y, dtype=np.float64) + 0.5
    lon = x / 2**WORLD_BITS * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(math.pi * (1.0 - 2.0 * y / 2**WORLD_BITS))))
    return list(zip(np.round(lon, DECIMALS).tolist(), np.round(lat, DECIMALS).tolist(), strict=True))


# --- loading and refreshing ---------------------------------------------------------------------------------------


def _condition_number() -> sa.ColumnElement:
    return sa.case(CONDITION_NUMBER, value=Asset.condition, else_=UNKNOWN)


def _row_columns() -> tuple[sa.ColumnElement, ...]:
    return (
        Asset.id,
        Asset.lat,
        Asset.lon,
        Asset.min_lat,
        Asset.min_lon,
        Asset.max_lat,
        Asset.max_lon,
        Asset.type_id,
        _condition_number(),
        Asset.kecamatan_code,
        Asset.agency_id,
        Asset.name,
        # Only lines need their geometry: a point's is its lat/lon.
        sa.case((AssetType.geometry_kind == GeometryKind.LINE.value, Asset.geometry), else_=sa.null()),
    )


def _from_assets() -> sa.Select:
    return sa.select(*_row_columns()).select_from(Asset).join(AssetType, AssetType.id == Asset.type_id)


def _write_rows(index: _Index, rows: list[Any], active: Any | None = None) -> None:
    """Put `rows` (as `_row_columns` selects them) into their slots; `active` false drops a row from the map."""
    if not rows:
        return
    np = _numpy()
    columns = index.columns
    ids, lats, lons, min_lats, min_lons, max_lats, max_lons, types, conditions, kecamatans, agencies, names, texts = (
        zip(*rows, strict=True)
    )
    slots = np.asarray(ids, dtype=np.int64) - columns.base
    columns.reserve(int(slots.max()) + 1)
    columns.x[slots], columns.y[slots] = _world_xy(lats, lons)
    columns.x0[slots], columns.y1[slots] = _world_xy(min_lats, min_lons)
    columns.x1[slots], columns.y0[slots] = _world_xy(max_lats, max_lons)
    columns.type[slots] = np.asarray(types, dtype=np.int32)
    columns.condition[slots] = np.asarray(conditions, dtype=np.int8)
    numbers = {code: index.kecamatan_number(code) for code in set(kecamatans)}
    columns.kecamatan[slots] = np.fromiter(map(numbers.__getitem__, kecamatans), dtype=np.int16, count=len(rows))
    columns.agency[slots] = np.asarray(agencies, dtype=np.int32)
    columns.name[slots] = np.asarray(names, dtype=object)
    is_line = np.asarray([text is not None for text in texts], dtype=bool)
    # A refresh reads a changed row again for a while (REFRESH_SLACK): a line whose geometry text is the same as
    # the one drawn keeps its pieces instead of being simplified again.
    hashes = np.fromiter((hash(text) if text is not None else 0 for text in texts), dtype=np.int64, count=len(rows))
    old_pieces = columns.pieces[slots]
    same = is_line & (old_pieces > 0) & columns.line[slots] & (columns.geometry_hash[slots] == hashes)
    index.lines.garbage += int(old_pieces[~same].sum())
    columns.first_piece[slots[~same]] = 0
    columns.pieces[slots[~same]] = 0
    redraw = np.flatnonzero(is_line & ~same)
    if redraw.size:
        first, counts = index.lines.add([texts[i] for i in redraw.tolist()])
        columns.first_piece[slots[redraw]] = first
        columns.pieces[slots[redraw]] = counts
    columns.geometry_hash[slots] = hashes
    columns.line[slots] = is_line
    columns.present[slots] = True if active is None else active
    columns.size = max(columns.size, int(slots.max()) + 1)


def _load(session: Session) -> _Index:
    """Read every active asset in chunks of `LOAD_CHUNK`, in id order."""
    started = time.perf_counter()
    clock = utcnow()
    # One aggregate a statement: SQLite answers a lone min() or max() from an index, but scans for several.
    low = session.execute(sa.select(sa.func.min(Asset.id))).scalar()
    high = session.execute(sa.select(sa.func.max(Asset.id))).scalar()
    newest = session.execute(sa.select(sa.func.max(Asset.updated_at))).scalar()
    span = (high - low + 1) if high is not None else 0
    index = _Index(
        columns=_Columns.empty(base=low or 1, capacity=int(span * 1.1) + 1024),
        lines=_Lines.empty(),
        watermark=min(newest, clock) if newest is not None else clock,
        max_id=high or 0,
    )
    _read_types(session, index)
    last = (low or 1) - 1
    # The DBAPI cursor of the session's connection: SQLAlchemy's row handling would cost more than the query.
    dialect = session.get_bind().dialect
    cursor = session.connection().connection.cursor()
    try:
        while high is not None and last < high:
            statement = (
                _from_assets()
                .where(Asset.id > last, Asset.id <= high, Asset.active.is_(True))
                .order_by(Asset.id)
                .limit(LOAD_CHUNK)
            )
            cursor.execute(str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
            rows = cursor.fetchall()
            if not rows:
                break
            _write_rows(index, rows)
            last = rows[-1][0]
    finally:
        cursor.close()
    index.load_seconds = time.perf_counter() - started
    return index


def _read_types(session: Session, index: _Index) -> None:
    rows = session.connection().execute(sa.select(AssetType.id, AssetType.code, AssetType.geometry_kind)).all()
    index.types = {row.id: (row.code, row.geometry_kind == GeometryKind.LINE.value) for row in rows}


def _refresh(session: Session, index: _Index) -> bool:
    """Bring `index` up to date with the rows changed since its watermark; False when it must be loaded anew."""
    clock = utcnow()
    connection = session.connection()
    if time.monotonic() - index.checked_at >= CHECK_SECONDS:
        high = connection.execute(sa.select(sa.func.max(Asset.id))).scalar()
        if (high or 0) < index.max_id:
            return False  # rows were removed (a test database emptied, a restore): start over
        _read_types(session, index)
        index.checked_at = time.monotonic()
    np = _numpy()
    rows = connection.execute(
        _from_assets()
        .add_columns(Asset.active, Asset.updated_at)
        .where(sa.or_(Asset.updated_at >= index.watermark - REFRESH_SLACK, Asset.id > index.max_id))
    ).all()
    newest = min(max((row[14] for row in rows), default=index.watermark), clock)
    index.watermark = max(index.watermark, newest, clock - REFRESH_HORIZON)
    if not rows:
        return True
    if min(row[0] for row in rows) < index.columns.base:
        return False
    active = np.asarray([bool(row[13]) for row in rows], dtype=bool)
    _write_rows(index, [row[:13] for row in rows], active)
    index.max_id = max(index.max_id, max(row[0] for row in rows))
    index.refreshed_rows += len(rows)
    lines = index.lines
    # A line's pieces are rewritten at every refresh that reads it: load anew once most pieces are dead.
    return not (lines.garbage > GARBAGE_PIECES_MIN and lines.garbage > lines.pieces - lines.garbage)


def _current_index(session: Session) -> tuple[_Index, _Columns, _Lines]:
    """This engine's index, refreshed, and a snapshot of it to query (taken under the lock)."""
    engine = _engine_of(session)
    with _LOCK:
        index = _INDEXES.get(engine)
        if index is None or not _refresh(session, index):
            index = _load(session)
            _INDEXES[engine] = index
        return index, index.columns.snapshot(), index.lines.snapshot()


def load_index(session: Session) -> dict[str, Any]:
    """Load (or refresh) this process's asset map index now instead of at the first map request; its stats."""
    _current_index(session)
    return index_stats(session)


def settle_heap() -> None:
    """Collect, then move every object alive now (the app's modules, this index) into the garbage collector's
    permanent generation (`gc.freeze`), so that its full collections stop walking them.

    A map answer holds thousands of dicts; they live long enough to reach the oldest generation, whose collection
    then runs every few queries and, over a whole app's objects, takes longer than the query (bench/assets_map.py:
    p95 over 200 ms at zoom 11-13 without this, about 45 ms with it). Called once the index is loaded at start-up;
    objects frozen are still freed by reference counting, only cycles among them would stay."""
    gc.collect()
    gc.freeze()


def preload_in_background(settings: Settings, *, session_factory: Callable[[], Session]) -> threading.Thread:
    """Load the asset map index in a daemon thread, so that the app answers at once and the first map request finds
    it ready. A failure is logged; the first request tries again."""

    def load() -> None:
        try:
            with session_factory() as session:
                stats = load_index(session)
            settle_heap()
            log.info("asset map index loaded: %s assets in %s s", stats["assets"], stats["load_seconds"])
        except Exception:
            log.warning("asset map index could not be loaded at start-up", exc_info=True)

    thread = threading.Thread(target=load, name="kotacerdas-asset-map-index", daemon=True)
    thread.start()
    return thread


def index_stats(session: Session) -> dict[str, Any]:
    """Size and memory of this process's asset map index for the session's database (empty when not loaded)."""
    index = _INDEXES.get(_engine_of(session))
    if index is None:
        return {"loaded": False}
    np = _numpy()
    columns = index.columns
    present = columns.present[: columns.size]
    return {
        "loaded": True,
        "assets": int(np.count_nonzero(present)),
        "lines": int(np.count_nonzero(present & columns.line[: columns.size])),
        "line_pieces": index.lines.pieces - index.lines.garbage,
        "vertices_per_band": dict(zip([*map(str, BAND_ZOOMS), "full"], index.lines.pool_sizes, strict=True)),
        "slots": columns.size,
        "bytes": columns.nbytes + index.lines.nbytes,
        "load_seconds": round(index.load_seconds, 3),
        "refreshed_rows": index.refreshed_rows,
    }


# --- the query ----------------------------------------------------------------------------------------------------


def check_viewport(bbox: Any, zoom: Any) -> tuple[tuple[float, float, float, float], int]:
    """The viewport (west, south, east, north) and zoom as numbers; InvalidInput when they are not a map's."""
    try:
        west, south, east, north = (float(value) for value in bbox)
    except (TypeError, ValueError):
        west = south = east = north = math.nan
    if not (
        all(math.isfinite(value) for value in (west, south, east, north))
        and -180 <= west < east <= 180
        and -90 <= south < north <= 90
    ):
        raise InvalidInput(
            _("The map area must be four numbers, west, south, east and north, with west < east and south < north."),
            errors=[{"field": "bbox", "reason": "invalid"}],
        )
    if isinstance(zoom, bool) or not isinstance(zoom, int) or not 0 <= zoom <= MAX_ZOOM:
        raise InvalidInput(
            _("The zoom level must be a whole number from 0 to %(max)d.") % {"max": MAX_ZOOM},
            errors=[{"field": "zoom", "reason": "range"}],
        )
    return (west, south, east, north), zoom


def _type_ids(session: Session, index: _Index, codes: Iterable[str] | None) -> list[int] | None:
    if not codes:
        return None
    by_code = {code: type_id for type_id, (code, _line) in index.types.items()}
    if any(code not in by_code for code in codes):
        _read_types(session, index)  # a type made since the last check
        by_code = {code: type_id for type_id, (code, _line) in index.types.items()}
    if any(code not in by_code for code in codes):
        raise InvalidInput(_("Unknown asset type."), errors=[{"field": "type", "reason": "unknown"}])
    return [by_code[code] for code in codes]


def _condition_table(conditions: Iterable[str] | None):
    """A lookup table condition number → wanted, or None for every condition."""
    if not conditions:
        return None
    np = _numpy()
    table = np.zeros(UNKNOWN + 1, dtype=bool)
    for value in conditions:
        if value == UNKNOWN_KEY:
            table[UNKNOWN] = True
        elif value in CONDITION_NUMBER:
            table[CONDITION_NUMBER[value]] = True
        else:
            raise InvalidInput(_("Unknown condition."), errors=[{"field": "condition", "reason": "unknown"}])
    return table


def _band(zoom: int) -> int:
    for band, band_zoom in enumerate(BAND_ZOOMS):
        if zoom <= band_zoom:
            return band
    return FULL_BAND


def viewport_geojson(
    session: Session,
    *,
    bbox: tuple[float, float, float, float],
    zoom: int,
    types: Iterable[str] | None = None,
    conditions: Iterable[str] | None = None,
    kecamatan_code: str | None = None,
    agency_id: int | None = None,
) -> dict[str, Any]:
    """The active assets inside `bbox` (west, south, east, north) as a GeoJSON FeatureCollection for a map at
    `zoom`: lines as LineStrings simplified for the zoom, points one by one when few, else clustered (`cluster`,
    `count`, `conditions`). `types` are type codes, `conditions` condition values or "unknown" (not inspected)."""
    (west, south, east, north), zoom = check_viewport(bbox, zoom)
    types = [code for code in types or () if code]
    conditions = [value for value in conditions or () if value]
    condition_wanted = _condition_table(conditions)
    np = _numpy()
    index, columns, lines = _current_index(session)
    type_ids = _type_ids(session, index, types)
    size = columns.size

    (left, right), (top, bottom) = _world_xy([north, south], [west, east])
    left, right, top, bottom = int(left), int(right), int(top), int(bottom)
    mask = columns.present[:size].copy()
    # Every asset by its box (a point's box is the point): a line crossing the viewport is in it.
    mask &= columns.x0[:size] <= right
    mask &= columns.x1[:size] >= left
    mask &= columns.y0[:size] <= bottom
    mask &= columns.y1[:size] >= top
    if type_ids is not None:
        mask &= np.isin(columns.type[:size], np.asarray(type_ids, dtype=np.int32))
    if condition_wanted is not None:
        mask &= condition_wanted[columns.condition[:size]]
    if kecamatan_code:
        number = index.kecamatan_index.get(kecamatan_code)
        if number is None:
            mask[:] = False
        else:
            mask &= columns.kecamatan[:size] == number
    if agency_id is not None:
        mask &= columns.agency[:size] == agency_id
    total = int(np.count_nonzero(mask))

    line_slots = np.flatnonzero(mask & columns.line[:size] & (columns.pieces > 0))
    drawn = _lines_to_draw(columns, lines, line_slots, zoom)
    rest = mask.copy()
    rest[drawn] = False
    features = _line_features(index, columns, lines, drawn, zoom)
    others = int(np.count_nonzero(rest))
    if others <= POINTS_MAX:
        features += _point_features(index, columns, np.flatnonzero(rest))
        clustered = False
    else:
        features += _clusters(index, columns, rest, corners=(left, top, right, bottom), zoom=zoom)
        clustered = True
    return {
        "type": "FeatureCollection",
        "features": features,
        "total": total,
        "lines_drawn": int(drawn.size),
        "clustered": clustered,
    }


def _slot_pieces(columns: _Columns, slots):
    """The piece numbers of `slots` (in order) and how many each slot has."""
    np = _numpy()
    per_slot = columns.pieces[slots].astype(np.int64)
    starts = columns.first_piece[slots].astype(np.int64)
    return _ranges(starts, per_slot), per_slot


def _ranges(starts, lengths):
    """The concatenation of range(start, start + length) for each pair, as one array."""
    np = _numpy()
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shifts = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shifts


def _lines_to_draw(columns: _Columns, lines: _Lines, slots, zoom: int):
    """The line slots to draw, largest on screen first, within LINES_MAX and VERTICES_MAX."""
    np = _numpy()
    if slots.size == 0:
        return slots
    width = columns.x1[slots].astype(np.int64) - columns.x0[slots]
    height = columns.y1[slots].astype(np.int64) - columns.y0[slots]
    extent = np.maximum(width, height)
    if slots.size > LINES_MAX:
        pixel_shift = WORLD_BITS - int(math.log2(TILE_PX)) - zoom
        big = (extent >> pixel_shift) >= MIN_LINE_PX
        slots, extent = slots[big], extent[big]
        if slots.size > LINES_MAX:
            largest = np.argpartition(-extent, LINES_MAX - 1)[:LINES_MAX]
            slots, extent = slots[largest], extent[largest]
    order = np.argsort(-extent, kind="stable")
    slots = slots[order]
    pieces, per_slot = _slot_pieces(columns, slots)
    band = _band(zoom)
    vertices = lines.count[band, pieces].astype(np.int64)
    owner = np.repeat(np.arange(slots.size), per_slot)
    per_line = np.bincount(owner, weights=vertices, minlength=slots.size)
    within = np.cumsum(per_line) <= VERTICES_MAX
    return slots[within]


# Condition number → (value, colour) in answers; the last entry is "not inspected yet".
_CONDITION_VALUES = [condition.value for condition in CONDITIONS] + [None]
_CONDITION_COLOURS = [condition.colour for condition in CONDITIONS] + [UNKNOWN_COLOUR]


def _properties(index: _Index, columns: _Columns, slots, kinds: list[str]) -> list[dict[str, Any]]:
    """The properties of the assets in `slots` (a numpy array), in order: read column by column, not per asset."""
    codes = {type_id: code for type_id, (code, _line) in index.types.items()}
    conditions = columns.condition[slots].tolist()
    return [
        {
            "id": asset_id,
            "type": codes.get(type_id, ""),
            "name": name,
            "condition": _CONDITION_VALUES[condition],
            "colour": _CONDITION_COLOURS[condition],
            "kind": kind,
        }
        for asset_id, type_id, name, condition, kind in zip(
            (slots + columns.base).tolist(),
            columns.type[slots].tolist(),
            columns.name[slots].tolist(),
            conditions,
            kinds,
            strict=True,
        )
    ]


def _line_features(index: _Index, columns: _Columns, lines: _Lines, slots, zoom: int) -> list[dict[str, Any]]:
    np = _numpy()
    if slots.size == 0:
        return []
    band = _band(zoom)
    pieces, per_slot = _slot_pieces(columns, slots)
    counts = lines.count[band, pieces].astype(np.int64)
    offsets = lines.offset[band, pieces]
    rows = _ranges(offsets, counts)
    xy = lines.pools[band][rows]
    pairs = _lon_lat(xy[:, 0], xy[:, 1])
    ends = np.cumsum(counts)
    starts = (ends - counts).tolist()
    ends = ends.tolist()
    properties = _properties(index, columns, slots, ["line"] * slots.size)
    features = []
    piece = 0
    for number, n in enumerate(per_slot.tolist()):
        parts = []
        for _part in range(n):
            part = tuple(pairs[starts[piece] : ends[piece]])
            if len(part) >= 2:  # a piece simplified away to nothing (a tiny loop) is left out
                parts.append(part)
            piece += 1
        if not parts:
            continue
        geometry = (
            {"type": "LineString", "coordinates": parts[0]}
            if len(parts) == 1
            else {"type": "MultiLineString", "coordinates": tuple(parts)}
        )
        features.append({"type": "Feature", "geometry": geometry, "properties": properties[number]})
    return features


def _point_features(index: _Index, columns: _Columns, slots) -> list[dict[str, Any]]:
    """One Point feature per slot, at the asset's point (a line not drawn: its middle)."""
    np = _numpy()
    if slots.size == 0:
        return []
    slots = np.sort(slots)
    positions = _lon_lat(columns.x[slots], columns.y[slots])
    kinds = ["line" if is_line else "point" for is_line in columns.line[slots].tolist()]
    return [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": position}, "properties": properties}
        for position, properties in zip(positions, _properties(index, columns, slots, kinds), strict=True)
    ]


def _cell_grid(corners: tuple[int, int, int, int], zoom: int) -> tuple[int, int, int, int, int]:
    """The cell size as a bit shift of the integer coordinates, and the cell range covering the viewport."""
    left, top, right, bottom = corners
    shift = WORLD_BITS - int(math.log2(TILE_PX)) - zoom + int(math.log2(CELL_PX))
    while True:
        x0, x1, y0, y1 = left >> shift, right >> shift, top >> shift, bottom >> shift
        if (x1 - x0 + 1) * (y1 - y0 + 1) <= CELLS_MAX or shift >= WORLD_BITS:
            return shift, x0, x1, y0, y1
        shift += 1


def _clusters(index: _Index, columns: _Columns, mask, *, corners, zoom: int) -> list[dict[str, Any]]:
    """Clusters of the masked assets over the viewport's cells: at the mean of their members, with their count and
    how many are in each condition; a cell of one asset shows the asset."""
    np = _numpy()
    left, top, right, bottom = corners
    shift, x0, x1, y0, y1 = _cell_grid(corners, zoom)
    rows = y1 - y0 + 1
    cells = (x1 - x0 + 1) * rows
    slots = np.flatnonzero(mask)
    # A line's middle may lie outside the viewport while its box crosses it: count it at the edge.
    x = np.clip(columns.x[slots], left, right)
    y = np.clip(columns.y[slots], top, bottom)
    cell = ((x.astype(np.int64) >> shift) - x0) * rows + ((y.astype(np.int64) >> shift) - y0)
    counts = np.bincount(cell, minlength=cells)
    sum_x = np.bincount(cell, weights=x.astype(np.float64), minlength=cells)
    sum_y = np.bincount(cell, weights=y.astype(np.float64), minlength=cells)
    by_condition = np.bincount(
        cell * (UNKNOWN + 1) + columns.condition[slots].astype(np.int64), minlength=cells * (UNKNOWN + 1)
    ).reshape(cells, UNKNOWN + 1)
    features = []
    singles = counts == 1
    if singles.any():
        features = _point_features(index, columns, slots[singles[cell]])
    many = np.flatnonzero(counts > 1)
    positions = _lon_lat(sum_x[many] / counts[many], sum_y[many] / counts[many])
    keys = [condition.value for condition in CONDITIONS] + [UNKNOWN_KEY]
    for number, position, breakdown in zip(counts[many].tolist(), positions, by_condition[many].tolist(), strict=True):
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": position},
                "properties": {
                    "cluster": True,
                    "count": number,
                    "conditions": {key: n for key, n in zip(keys, breakdown, strict=True) if n},
                },
            }
        )
    return features
