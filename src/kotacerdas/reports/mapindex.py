"""The public map of reports: viewport queries, clustered by zoom, over an in-process index of the public reports.

A map viewport at a low zoom covers the whole regency: with a million reports stored, any SQL that groups the
rows of a bounding box reads most of the table on every pan. So each process keeps the few columns the map needs
of every PUBLIC report (not confidential, not hidden) in numpy arrays, addressed by report id, loaded once on
first use, and brought up to date before every query by reading only the rows changed since the last look
(`reports.updated_at` is indexed, and every service change sets it). A query is then a few vectorised masks over
the arrays and, when too many reports match, one histogram of the matches over a grid of 64-pixel cells in Web
Mercator (bench/reports_map.py measures it; docs/performance.md has the figures).

Privacy: the index never holds a confidential or hidden report, nor the exact position of an anonymous one: it
reads `public_lat`/`public_lon` only. The reports returned as points (code, position, status) are read from the
database at query time, with the public filter again, so a report hidden a moment ago is not shown as a point.

numpy is imported on first use (like the regions locator), so that the app starts without it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _
from kotacerdas.reports.enums import OPEN_STATUSES, ReportStatus
from kotacerdas.reports.models import Report, ReportCategory

log = logging.getLogger("kotacerdas.reports.mapindex")

# With at most this many reports in the viewport, each is returned as a point; with more, they are clustered.
POINTS_MAX = 300
# Cluster cells are this many screen pixels wide (Leaflet's own marker clustering uses 80); a power of two, so that
# a cell is a bit shift of the integer coordinates below.
CELL_PX = 64
TILE_PX = 256
# Positions are kept as integer Web Mercator coordinates on a 2^32 × 2^32 world (about 1 cm at the equator):
# comparisons, bit shifts and sums on 4-byte integers are what makes a viewport over a million reports quick.
WORLD_BITS = 32
# The grid never has more cells than this (a very large screen gets coarser cells): it bounds the features, and so
# the size of the answer, whatever the viewport.
CELLS_MAX = 1000
MAX_ZOOM = 22
# Web Mercator's latitude limit.
MERCATOR_MAX_LAT = 85.05112878
# A refresh reads again the rows changed up to this long before the newest change it has seen: a transaction that
# set `updated_at` earlier but committed later (PostgreSQL, several app processes) is not missed, as long as it
# commits within this time. Also covers small clock differences between app servers.
REFRESH_SLACK = timedelta(seconds=10)
# ... but never rows older than this (plus the slack): after a burst of changes, queries stop reading it again a
# minute later. Assumes the caller's transaction (its snapshot) is younger than this, as a request's is.
REFRESH_HORIZON = timedelta(seconds=60)
LOAD_CHUNK = 100_000
# How often a process checks that no report was removed under its index (which only an emptied test database or a
# restored backup does) and reads the category codes again.
CHECK_SECONDS = 3.0

_STATUSES = list(ReportStatus)
_STATUS_INDEX = {status.value: i for i, status in enumerate(_STATUSES)}
_NO_KECAMATAN = -1


def _numpy():
    import numpy

    return numpy


@dataclass
class _Columns:
    """The indexed columns, one slot per report id (`slot = id - base`); `present` is false for a slot whose report
    is missing or not public. Arrays are grown by doubling, so a new report is usually an in-place write."""

    base: int
    size: int = 0  # slots in use: 0 .. size-1
    present: Any = None
    x: Any = None  # Web Mercator x of the public position, 0 at 180° west
    y: Any = None  # Web Mercator y of the public position, 0 at the north edge of the world
    category: Any = None
    status: Any = None
    kecamatan: Any = None
    day: Any = None  # local day of `created_at`, in days since 1970-01-01

    DTYPES = {
        "present": "bool",
        "x": "uint32",
        "y": "uint32",
        "category": "int32",
        "status": "int8",
        "kecamatan": "int16",
        "day": "int32",
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
            # Queries running now keep the old arrays (they took their references first); the swap is atomic.
            setattr(self, name, grown)

    def snapshot(self) -> _Columns:
        """The arrays as they are now: a refresh that grows them later swaps them here, not in the snapshot."""
        return _Columns(base=self.base, size=self.size, **{name: getattr(self, name) for name in self.DTYPES})

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.DTYPES)


@dataclass
class _Index:
    """The public reports of one database as seen by this process, and how far its refresh has read."""

    columns: _Columns
    zone_offset_s: int
    kecamatan_codes: list[str] = field(default_factory=list)
    kecamatan_index: dict[str, int] = field(default_factory=dict)
    # The next refresh reads every row with `updated_at >= watermark - REFRESH_SLACK` or `id > max_id`.
    watermark: datetime | None = None
    max_id: int = 0
    load_seconds: float = 0.0
    refreshed_rows: int = 0
    categories: dict[int, str] = field(default_factory=dict)
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


# One index per engine (one per app process). Weak keys: a disposed test engine frees its index.
_INDEXES: weakref.WeakKeyDictionary[Engine, _Index] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _zone_offset_s(settings: Settings) -> int:
    # Indonesian zones (WIB, WITA, WIT) have no daylight saving time: one offset serves every date.
    offset = settings.zone.utcoffset(datetime.now())
    return int(offset.total_seconds()) if offset else 0


def _created_epoch(session: Session) -> sa.ColumnElement:
    """`created_at` as whole seconds since 1970, computed by the database (much faster than datetimes in Python)."""
    if session.get_bind().dialect.name == "sqlite":
        return sa.cast(sa.func.strftime("%s", Report.created_at), sa.BigInteger)
    return sa.cast(sa.func.floor(sa.extract("epoch", Report.created_at)), sa.BigInteger)


def _status_number() -> sa.ColumnElement:
    return sa.case(_STATUS_INDEX, value=Report.status, else_=-1)


def _row_columns(session: Session) -> tuple[sa.ColumnElement, ...]:
    return (
        Report.id,
        Report.public_lat,
        Report.public_lon,
        Report.category_id,
        _status_number(),
        Report.kecamatan_code,
        _created_epoch(session),
    )


def _world_xy(lat, lon):
    """Integer Web Mercator coordinates (arrays or scalars) of WGS 84 positions."""
    np = _numpy()
    radians = np.radians(np.clip(np.asarray(lat, dtype=np.float64), -MERCATOR_MAX_LAT, MERCATOR_MAX_LAT))
    y = (1.0 - np.log(np.tan(radians) + 1.0 / np.cos(radians)) / math.pi) / 2.0
    x = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0
    top = 2**WORLD_BITS - 1
    return (
        np.clip(np.floor(x * 2**WORLD_BITS), 0, top).astype(np.uint32),
        np.clip(np.floor(y * 2**WORLD_BITS), 0, top).astype(np.uint32),
    )


def _lat_lon(x, y):
    """WGS 84 positions of integer Web Mercator coordinates (float arrays)."""
    np = _numpy()
    lon = x / 2**WORLD_BITS * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(math.pi * (1.0 - 2.0 * y / 2**WORLD_BITS))))
    return lat, lon


def _write_rows(index: _Index, rows: list[Any], public: Any | None = None) -> None:
    """Put `rows` (as `_row_columns` selects them) into their slots; `public` false drops a row from the map."""
    if not rows:
        return
    np = _numpy()
    columns = index.columns
    ids, lats, lons, categories, statuses, kecamatans, created = zip(*rows, strict=True)
    slots = np.asarray(ids, dtype=np.int64) - columns.base
    columns.reserve(int(slots.max()) + 1)
    columns.x[slots], columns.y[slots] = _world_xy(lats, lons)
    columns.category[slots] = np.asarray(categories, dtype=np.int32)
    columns.status[slots] = np.asarray(statuses, dtype=np.int8)
    numbers = {code: index.kecamatan_number(code) for code in set(kecamatans)}
    columns.kecamatan[slots] = np.fromiter(map(numbers.__getitem__, kecamatans), dtype=np.int16, count=len(kecamatans))
    seconds = np.asarray([value or 0 for value in created], dtype=np.int64) + index.zone_offset_s
    columns.day[slots] = seconds // 86_400
    columns.present[slots] = True if public is None else public
    columns.size = max(columns.size, int(slots.max()) + 1)


def _load(session: Session, *, settings: Settings) -> _Index:
    """Read every public report in chunks of `LOAD_CHUNK`, in id order."""
    started = time.perf_counter()
    clock = utcnow()
    low, high, newest = session.execute(
        sa.select(sa.func.min(Report.id), sa.func.max(Report.id), sa.func.max(Report.updated_at))
    ).one()
    span = (high - low + 1) if high is not None else 0
    index = _Index(
        columns=_Columns.empty(base=low or 1, capacity=int(span * 1.1) + 1024),
        zone_offset_s=_zone_offset_s(settings),
        # Rows changed while the chunks are read are read again by the first refresh.
        watermark=min(newest, clock) if newest is not None else clock,
        max_id=high or 0,
    )
    last = (low or 1) - 1
    columns = _row_columns(session)
    # The DBAPI cursor of the session's connection: SQLAlchemy's row handling would cost more than the query.
    dialect = session.get_bind().dialect
    cursor = session.connection().connection.cursor()
    try:
        while high is not None and last < high:
            statement = (
                sa.select(*columns)
                .where(Report.id > last, Report.id <= high, Report.confidential.is_(False), Report.hidden.is_(False))
                .order_by(Report.id)
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


def _refresh(session: Session, index: _Index) -> bool:
    """Bring `index` up to date with the rows changed since its watermark; False when it must be loaded anew."""
    clock = utcnow()
    # Core on the session's connection: the ORM's handling of a statement costs more than these queries.
    connection = session.connection()
    if time.monotonic() - index.checked_at >= CHECK_SECONDS:
        high = connection.execute(sa.select(sa.func.max(Report.id))).scalar()
        if (high or 0) < index.max_id:
            return False  # rows were removed (a test database emptied, a restore): start over
        index.categories = dict(connection.execute(sa.select(ReportCategory.id, ReportCategory.code)).all())
        index.checked_at = time.monotonic()
    np = _numpy()
    rows = connection.execute(
        sa.select(*_row_columns(session), Report.confidential, Report.hidden, Report.updated_at).where(
            sa.or_(Report.updated_at >= index.watermark - REFRESH_SLACK, Report.id > index.max_id)
        )
    ).all()
    # Never beyond this process's clock: a row stamped in the future (a skewed server) must not hide later changes.
    newest = min(max((row[9] for row in rows), default=index.watermark), clock)
    index.watermark = max(index.watermark, newest, clock - REFRESH_HORIZON)
    if not rows:
        return True
    if min(row[0] for row in rows) < index.columns.base:
        return False
    public = np.asarray([not (row[7] or row[8]) for row in rows], dtype=bool)
    _write_rows(index, [row[:7] for row in rows], public)
    index.max_id = max(index.max_id, max(row[0] for row in rows))
    index.refreshed_rows += len(rows)
    return True


def _current_index(session: Session, *, settings: Settings) -> tuple[_Index, _Columns]:
    """This engine's index, refreshed, and a snapshot of its columns to query (taken under the lock)."""
    engine = _engine_of(session)
    with _LOCK:
        index = _INDEXES.get(engine)
        if index is None or index.zone_offset_s != _zone_offset_s(settings) or not _refresh(session, index):
            index = _load(session, settings=settings)
            _INDEXES[engine] = index
        return index, index.columns.snapshot()


def load_index(session: Session, *, settings: Settings) -> dict[str, Any]:
    """Load (or refresh) this process's map index now, e.g. at start-up, instead of at the first map request;
    returns what `index_stats` returns."""
    _current_index(session, settings=settings)
    return index_stats(session)


def preload_in_background(settings: Settings, *, session_factory: Callable[[], Session]) -> threading.Thread:
    """Load the map index in a daemon thread, so that the app answers at once and the first map request finds the
    index ready (or waits only for the rest of the load). A failure is logged; the first request tries again."""

    def load() -> None:
        try:
            with session_factory() as session:
                stats = load_index(session, settings=settings)
            log.info("report map index loaded: %s public reports in %s s", stats["public_reports"],
                     stats["load_seconds"])  # fmt: skip
        except Exception:
            log.warning("report map index could not be loaded at start-up", exc_info=True)

    thread = threading.Thread(target=load, name="kotacerdas-map-index", daemon=True)
    thread.start()
    return thread


def index_stats(session: Session) -> dict[str, Any]:
    """Size and memory of this process's map index for the session's database (empty when not loaded yet)."""
    index = _INDEXES.get(_engine_of(session))
    if index is None:
        return {"loaded": False}
    columns = index.columns
    return {
        "loaded": True,
        "public_reports": int(_numpy().count_nonzero(columns.present[: columns.size])),
        "slots": columns.size,
        "capacity": columns.capacity,
        "bytes": columns.nbytes,
        "load_seconds": round(index.load_seconds, 3),
        "refreshed_rows": index.refreshed_rows,
    }


# --- the query ----------------------------------------------------------------------------------------------------


def _check_viewport(bbox: Any, zoom: Any) -> tuple[tuple[float, float, float, float], int]:
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


def _status_filter(status: str | None):
    """A lookup table status number → wanted, or None for every status."""
    if not status:
        return None
    np = _numpy()
    if status == "open":
        wanted = set(OPEN_STATUSES)
    elif status == "closed":
        wanted = set(ReportStatus) - set(OPEN_STATUSES)
    elif status in _STATUS_INDEX:
        wanted = {ReportStatus(status)}
    else:
        raise InvalidInput(_("Unknown status."), errors=[{"field": "status", "reason": "unknown"}])
    return np.array([member in wanted for member in _STATUSES], dtype=bool)


def _local_day(value: date) -> int:
    return (value - date(1970, 1, 1)).days


def viewport_geojson(
    session: Session,
    *,
    settings: Settings,
    bbox: tuple[float, float, float, float],
    zoom: int,
    category_id: int | None = None,
    status: str | None = None,
    kecamatan_code: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """The public reports inside `bbox` (west, south, east, north) as a GeoJSON FeatureCollection: each report as a
    point when few match, else clusters of about 60 screen pixels at `zoom` (`cluster`, `count`); always at the
    report's public position. `status` is `open`, `closed` or a status value; `since`/`until` are local dates,
    both included."""
    (west, south, east, north), zoom = _check_viewport(bbox, zoom)
    status_wanted = _status_filter(status)
    np = _numpy()
    index, columns = _current_index(session, settings=settings)
    size = columns.size

    (left, right), (top, bottom) = _world_xy([north, south], [west, east])
    x, y = columns.x[:size], columns.y[:size]
    mask = columns.present[:size].copy()
    mask &= x >= left
    mask &= x <= right
    mask &= y >= top
    mask &= y <= bottom
    if category_id is not None:
        mask &= columns.category[:size] == category_id
    if status_wanted is not None:
        # Status numbers are 0..8; -1 (an unknown stored value) reads the last entry, which is never wanted alone.
        mask &= np.append(status_wanted, False)[columns.status[:size]]
    if kecamatan_code:
        number = index.kecamatan_index.get(kecamatan_code)
        if number is None:
            mask[:] = False
        else:
            mask &= columns.kecamatan[:size] == number
    if since is not None:
        mask &= columns.day[:size] >= _local_day(since)
    if until is not None:
        mask &= columns.day[:size] <= _local_day(until)
    total = int(np.count_nonzero(mask))

    if total <= POINTS_MAX:
        features = _points(session, index, columns, np.flatnonzero(mask))
        clustered = False
    else:
        corners = (int(left), int(top), int(right), int(bottom))
        features = _clusters(session, index, columns, mask, corners=corners, zoom=zoom)
        clustered = True
    return {"type": "FeatureCollection", "features": features, "total": total, "clustered": clustered}


def _cell_grid(corners: tuple[int, int, int, int], zoom: int) -> tuple[int, int, int, int, int]:
    """The cell size as a bit shift of the integer coordinates, and the cell range covering the viewport."""
    left, top, right, bottom = corners
    # 2^32 world units over 256 * 2^zoom pixels: a CELL_PX-pixel cell is 2^(32 - 8 - zoom + 6) units.
    shift = WORLD_BITS - int(math.log2(TILE_PX)) - zoom + int(math.log2(CELL_PX))
    while True:
        x0, x1, y0, y1 = left >> shift, right >> shift, top >> shift, bottom >> shift
        if (x1 - x0 + 1) * (y1 - y0 + 1) <= CELLS_MAX or shift >= WORLD_BITS:
            return shift, x0, x1, y0, y1
        # A huge screen, or an area far larger than the zoom suggests: coarser cells, still on the same grid.
        shift += 1


# Cluster positions are computed on a grid this many times finer than the cells (per side): the mean of the
# members to within an eighth of a cell, from one histogram instead of weighted sums over every member.
SUBCELLS = 4


def _clusters(session: Session, index: _Index, columns: _Columns, mask, *, corners, zoom: int) -> list[dict[str, Any]]:
    np = _numpy()
    shift, x0, x1, y0, y1 = _cell_grid(corners, zoom)
    fine_shift = max(shift - int(math.log2(SUBCELLS)), 0)
    sub = 1 << (shift - fine_shift)
    width, rows = x1 - x0 + 1, y1 - y0 + 1
    x = columns.x[: len(mask)][mask]
    y = columns.y[: len(mask)][mask]
    # The viewport's mask keeps every coordinate inside the cell range: no clipping needed.
    fine = (x >> fine_shift).astype(np.int64)
    fine -= x0 * sub
    fine *= rows * sub
    fine += y >> fine_shift
    fine -= y0 * sub
    histogram = np.bincount(fine, minlength=width * sub * rows * sub).reshape(width, sub, rows, sub)
    counts = histogram.sum(axis=(1, 3))  # per cell: [column, row]
    # Centres of the fine cells, in world units, weighted by their counts.
    centre_x = ((np.arange(width * sub) + x0 * sub) + 0.5) * (1 << fine_shift)
    centre_y = ((np.arange(rows * sub) + y0 * sub) + 0.5) * (1 << fine_shift)
    sum_x = np.einsum("iajb,ia->ij", histogram, centre_x.reshape(width, sub))
    sum_y = np.einsum("iajb,jb->ij", histogram, centre_y.reshape(rows, sub))
    singles = counts == 1
    features = []
    if singles.any():
        # A cell of one report shows the report: find the members of those cells (few, when there are any).
        cell_of = (fine // (rows * sub)) // sub * rows + (fine % (rows * sub)) // sub
        alone = singles.reshape(-1)[cell_of]
        features = _points(session, index, columns, np.flatnonzero(mask)[alone])
    many = counts > 1
    lat, lon = _lat_lon(sum_x[many] / counts[many], sum_y[many] / counts[many])
    for count, y_deg, x_deg in zip(counts[many].tolist(), lat.tolist(), lon.tolist(), strict=True):
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(x_deg, 6), round(y_deg, 6)]},
                "properties": {"cluster": True, "count": count},
            }
        )
    return features


def _points(session: Session, index: _Index, columns: _Columns, slots) -> list[dict[str, Any]]:
    """One feature per report, as the database has it now, with the public filter again (belt and braces)."""
    if slots.size == 0:
        return []
    connection = session.connection()
    rows = connection.execute(
        sa.select(Report.tracking_code, Report.public_lat, Report.public_lon, Report.status, Report.category_id)
        .where(Report.id.in_((slots + columns.base).tolist()), Report.confidential.is_(False), Report.hidden.is_(False))
        .order_by(Report.id)
    ).all()
    categories = index.categories
    if any(row[4] not in categories for row in rows):  # a category made since the last check
        categories = dict(connection.execute(sa.select(ReportCategory.id, ReportCategory.code)).all())
        index.categories = categories
    features = []
    for code, lat, lon, status_value, category_id in rows:
        status = ReportStatus(status_value)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "tracking_code": code,
                    "category_code": categories.get(category_id, ""),
                    "status": status.value,
                    "status_colour": status.colour,
                    "url": f"/lapor/{code}",
                },
            }
        )
    return features
