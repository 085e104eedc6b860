"""The "Kondisi Infrastruktur" figures: road length by condition and the "jalan mantap" share, facilities that work,
and assets not inspected for a year, computed by the database in one grouped scan of the active assets.

Definitions (the public page states them too):
- Jalan mantap: the length of kabupaten roads (type on the road scale, attribute `status_jalan` = "kabupaten") in
  Baik or Sedang condition, as a share of the length of ALL kabupaten roads, not inspected ones included: a road
  nobody has inspected is not known to be mantap, and leaving it out would flatter the figure. Its length is shown
  apart as "belum diperiksa". Road lengths are the stored geodesic `length_km`.
- Fasilitas berfungsi: assets of the facility scale in condition Berfungsi, as a share of those inspected; the
  number not inspected is given next to it.
- Belum diperiksa 12 bulan: assets whose latest inspection (`condition_on`) is more than 12 months before today
  (local date), or that were never inspected, per owner OPD.

Two grouped queries (GROUP BY) compute them: every active asset by type, kecamatan, OPD and condition, with the
inspection ages as conditional sums; and the kabupaten roads by kecamatan and condition. Their rows are kept per
process while the registry is unchanged (the newest `updated_at` and the highest id, two index look-ups), because
grouping 250,000 rows costs far more than 200 ms on SQLite (bench/assets_indicators.py has both the cold and the
cached figures). On such a registry a change is counted by a background thread while readers get the rows from
before it (SYNC_SECONDS), so the page never waits for the grouping.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kotacerdas.agencies import service as agencies
from kotacerdas.assets.enums import MANTAP_CONDITIONS, SCALE_CONDITIONS, Condition, ConditionScale
from kotacerdas.assets.models import Asset, AssetType
from kotacerdas.config import Settings
from kotacerdas.i18n import _, get_locale
from kotacerdas.regions import service as regions

KABUPATEN_ROAD = "kabupaten"  # the `status_jalan` of roads the "jalan mantap" indicator counts
UNKNOWN = "unknown"  # the key of assets not inspected yet, in every `by_condition`
NO_KECAMATAN = "none"  # the key of assets whose place is outside every known kecamatan
STALE_MONTHS = 12
ROAD_CONDITIONS = tuple(condition.value for condition in SCALE_CONDITIONS[ConditionScale.ROAD])
FACILITY_CONDITIONS = tuple(condition.value for condition in SCALE_CONDITIONS[ConditionScale.FACILITY])
MANTAP = frozenset(condition.value for condition in MANTAP_CONDITIONS)
FUNCTIONING = Condition.BERFUNGSI.value


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


@dataclass
class RoadFigures:
    """Road length of one area (a kecamatan, or the kabupaten) by condition, and its "jalan mantap" share."""

    key: str
    name: str
    km: dict[str, float]  # by condition value, and "unknown" for roads not inspected
    total_km: float
    mantap_km: float
    inspected_km: float
    unknown_km: float
    mantap_pct: float | None  # mantap_km of total_km (not inspected included); None without roads
    segments: int

    @classmethod
    def build(cls, key: str, name: str, km: dict[str, float], segments: int) -> RoadFigures:
        lengths = {value: round(km.get(value, 0.0), 4) for value in (*ROAD_CONDITIONS, UNKNOWN)}
        # Any other stored value (a condition of another scale) still counts in the total, as not mantap.
        total = sum(km.values())
        mantap = sum(length for value, length in km.items() if value in MANTAP)
        unknown = km.get(UNKNOWN, 0.0)
        return cls(
            key=key,
            name=name,
            km=lengths,
            total_km=round(total, 4),
            mantap_km=round(mantap, 4),
            inspected_km=round(total - unknown, 4),
            unknown_km=round(unknown, 4),
            mantap_pct=_pct(mantap, total),
            segments=segments,
        )


@dataclass
class FacilityFigures:
    """Facilities of one group (a type, a kecamatan, or all) by condition, and the share that works."""

    key: str
    name: str
    counts: dict[str, int]  # by condition value, and "unknown" for facilities not inspected
    total: int
    inspected: int
    not_inspected: int
    functioning: int
    functioning_pct: float | None  # functioning of inspected; None when none is inspected

    @classmethod
    def build(cls, key: str, name: str, counts: dict[str, int]) -> FacilityFigures:
        total = sum(counts.values())
        unknown = counts.get(UNKNOWN, 0)
        functioning = counts.get(FUNCTIONING, 0)
        return cls(
            key=key,
            name=name,
            counts={value: counts.get(value, 0) for value in (*FACILITY_CONDITIONS, UNKNOWN)},
            total=total,
            inspected=total - unknown,
            not_inspected=unknown,
            functioning=functioning,
            functioning_pct=_pct(functioning, total - unknown),
        )


@dataclass
class StaleFigures:
    """Assets of one owner OPD (or all) without an inspection in the last 12 months."""

    key: str
    name: str
    total: int
    stale: int  # never inspected, or last inspected before `since`
    never_inspected: int
    stale_pct: float | None


@dataclass
class InfrastructureIndicators:
    """Every figure of the "Kondisi Infrastruktur" page, JSON-ready (`dataclasses.asdict`)."""

    as_of: date
    stale_before: date  # an inspection before this date is more than 12 months old
    road_status: str
    roads: RoadFigures  # kabupaten roads of the whole kabupaten
    roads_by_kecamatan: list[RoadFigures]
    all_roads: RoadFigures  # every road segment, whatever its status (kabupaten, desa, not given)
    facilities: FacilityFigures
    facilities_by_type: list[FacilityFigures]
    facilities_by_kecamatan: list[FacilityFigures]
    stale: StaleFigures
    stale_by_agency: list[StaleFigures]


def months_before(day: date, months: int) -> date:
    """The same day `months` earlier (the month's last day when it has fewer days)."""
    month = day.month - months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class _Grouped:
    """What the two grouped queries found: every active asset by type, kecamatan, OPD and condition (count, never
    inspected, inspected before the cut-off, length), and the kabupaten roads by kecamatan and condition."""

    assets: list[tuple[Any, ...]]
    kabupaten_roads: list[tuple[Any, ...]]


def _grouped(session: Session, *, road_type_ids: list[int], stale_before: date) -> _Grouped:
    # Grouped by plain columns, the inspection age as conditional sums: a covering index on (active, type_id,
    # kecamatan_code, agency_id, condition, condition_on, length_km) would let SQLite read the groups in order,
    # without the temporary B-tree that costs most of this query on 250,000 rows.
    keys = (Asset.type_id, Asset.kecamatan_code, Asset.agency_id, Asset.condition)
    never = sa.func.sum(sa.case((Asset.condition_on.is_(None), 1), else_=0))
    old = sa.func.sum(sa.case((Asset.condition_on < stale_before, 1), else_=0))
    connection = session.connection()
    assets = connection.execute(
        sa.select(*keys, sa.func.count(), never, old, sa.func.sum(Asset.length_km))
        .where(Asset.active.is_(True))
        .group_by(*keys)
    ).all()
    roads = []
    if road_type_ids:
        roads = connection.execute(
            sa.select(Asset.kecamatan_code, Asset.condition, sa.func.count(), sa.func.sum(Asset.length_km))
            .where(
                Asset.active.is_(True),
                Asset.type_id.in_(road_type_ids),
                Asset.attributes["status_jalan"].as_string() == KABUPATEN_ROAD,
            )
            .group_by(Asset.kecamatan_code, Asset.condition)
        ).all()
    return _Grouped([tuple(row) for row in assets], [tuple(row) for row in roads])


# The grouped rows of each database, per process, while its registry is unchanged: every change of an asset sets
# `updated_at` (and a new asset has a new id), so the newest `updated_at` and the highest id say whether anything
# changed, from two index look-ups. CACHE_SECONDS bounds what that cannot see (a change committed late with an
# older `updated_at`, a clock behind another server's).
CACHE_SECONDS = 300.0
# When the registry has changed and computing the rows took longer than this the last time (a large registry),
# readers get the rows computed before the change while one background thread computes them again: nobody waits
# seconds for the page, and the figures trail a change by one computation at most (docs/assets.md).
SYNC_SECONDS = 0.1


@dataclass
class _Cached:
    key: tuple[Any, ...]  # the newest updated_at and the highest id when the rows were computed
    params: tuple[Any, ...]  # the cut-off date and the road types they were computed for
    at: float  # time.monotonic() when computed
    took: float  # seconds the computation took
    grouped: _Grouped
    refreshing: bool = False


_CACHE: weakref.WeakKeyDictionary[Engine, _Cached] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
log = logging.getLogger(__name__)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _registry_key(connection: sa.Connection) -> tuple[Any, ...]:
    # Two statements: SQLite answers a lone max() from the index, but scans the table for two in one select.
    newest = connection.execute(sa.select(sa.func.max(Asset.updated_at))).scalar()
    highest = connection.execute(sa.select(sa.func.max(Asset.id))).scalar()
    return newest, highest


def _compute(engine: Engine, session: Session, params: tuple[Any, ...]) -> _Cached:
    started = time.perf_counter()
    key = _registry_key(session.connection())
    stale_before, road_type_ids = params
    grouped = _grouped(session, road_type_ids=list(road_type_ids), stale_before=stale_before)
    cached = _Cached(key, params, time.monotonic(), time.perf_counter() - started, grouped)
    with _CACHE_LOCK:
        _CACHE[engine] = cached
    return cached


def _refresh_in_background(engine: Engine, params: tuple[Any, ...]) -> None:
    def refresh() -> None:
        try:
            with Session(engine) as session:
                _compute(engine, session, params)
        except Exception:
            log.warning("infrastructure indicators could not be computed again", exc_info=True)
            with _CACHE_LOCK:
                cached = _CACHE.get(engine)
                if cached is not None:
                    cached.refreshing = False

    threading.Thread(target=refresh, name="kotacerdas-asset-indicators", daemon=True).start()


def _grouped_cached(session: Session, *, road_type_ids: list[int], stale_before: date, fresh: bool) -> _Grouped:
    engine = _engine_of(session)
    params = (stale_before, tuple(road_type_ids))
    if fresh:
        return _compute(engine, session, params).grouped
    key = _registry_key(session.connection())
    with _CACHE_LOCK:
        cached = _CACHE.get(engine)
        if cached is None or cached.params != params:
            cached = None
        elif cached.key == key and time.monotonic() - cached.at < CACHE_SECONDS:
            return cached.grouped
        elif cached.took > SYNC_SECONDS:
            if not cached.refreshing:
                cached.refreshing = True
                _refresh_in_background(engine, params)
            return cached.grouped
    return _compute(engine, session, params).grouped


def infrastructure_indicators(
    session: Session,
    *,
    settings: Settings,
    today: date | None = None,
    locale: str | None = None,
    fresh: bool = False,
) -> InfrastructureIndicators:
    """The "Kondisi Infrastruktur" figures of the active assets, as of `today` (default: the local date). The grouped
    rows are reused while the registry is unchanged (see CACHE_SECONDS and SYNC_SECONDS); `fresh` counts again."""
    locale = locale or get_locale()
    today = today or datetime.now(settings.zone).date()
    stale_before = months_before(today, STALE_MONTHS)
    types = session.connection().execute(
        sa.select(AssetType.id, AssetType.code, AssetType.name_id, AssetType.name_en, AssetType.condition_scale)
        .order_by(AssetType.position, AssetType.name_id)
    ).all()  # fmt: skip
    type_names = {row.id: (row.name_en if locale == "en" else row.name_id) for row in types}
    road_ids = [row.id for row in types if row.condition_scale == ConditionScale.ROAD.value]
    facility_ids = [row.id for row in types if row.condition_scale == ConditionScale.FACILITY.value]
    kecamatan_names = {region.code: region.name for region in regions.list_kecamatan(session, settings=settings)}
    agency_names = agencies.agency_names(session)
    grouped = _grouped_cached(session, road_type_ids=road_ids, stale_before=stale_before, fresh=fresh)

    road_km: dict[str, dict[str, float]] = {}  # kabupaten roads, by kecamatan
    road_segments: dict[str, int] = {}
    for kecamatan, condition, count, length in grouped.kabupaten_roads:
        kecamatan = kecamatan or NO_KECAMATAN
        lengths = road_km.setdefault(kecamatan, {})
        lengths[condition or UNKNOWN] = lengths.get(condition or UNKNOWN, 0.0) + float(length or 0.0)
        road_segments[kecamatan] = road_segments.get(kecamatan, 0) + count
    all_road_km: dict[str, float] = {}
    all_segments = 0
    by_type: dict[int, dict[str, int]] = {}
    by_kecamatan: dict[str, dict[str, int]] = {}
    stale: dict[int, list[int]] = {}  # agency id → [total, stale, never]
    road_set, facility_set = set(road_ids), set(facility_ids)
    for type_id, kecamatan, agency_id, condition, count, never, old, length in grouped.assets:
        condition = condition or UNKNOWN
        kecamatan = kecamatan or NO_KECAMATAN
        if type_id in road_set:
            all_road_km[condition] = all_road_km.get(condition, 0.0) + float(length or 0.0)
            all_segments += count
        elif type_id in facility_set:
            for group in (by_type.setdefault(type_id, {}), by_kecamatan.setdefault(kecamatan, {})):
                group[condition] = group.get(condition, 0) + count
        row = stale.setdefault(agency_id, [0, 0, 0])
        row[0] += count
        row[1] += int(never or 0) + int(old or 0)
        row[2] += int(never or 0)

    def kecamatan_name(code: str) -> str:
        return _("Outside the known kecamatan") if code == NO_KECAMATAN else kecamatan_names.get(code, code)

    def kecamatan_order(code: str) -> tuple[bool, str]:
        return code == NO_KECAMATAN, kecamatan_name(code)

    kabupaten_km: dict[str, float] = {}
    for lengths in road_km.values():
        for condition, length in lengths.items():
            kabupaten_km[condition] = kabupaten_km.get(condition, 0.0) + length
    total_facilities: dict[str, int] = {}
    for counts in by_type.values():
        for condition, count in counts.items():
            total_facilities[condition] = total_facilities.get(condition, 0) + count
    stale_rows = [
        StaleFigures(
            key=str(agency_id),
            name=agency_names.get(agency_id, str(agency_id)),
            total=total,
            stale=old,
            never_inspected=never,
            stale_pct=_pct(old, total),
        )
        for agency_id, (total, old, never) in stale.items()
    ]
    stale_rows.sort(key=lambda row: (-row.stale, row.name))
    all_total = sum(row.total for row in stale_rows)
    all_stale = sum(row.stale for row in stale_rows)
    return InfrastructureIndicators(
        as_of=today,
        stale_before=stale_before,
        road_status=KABUPATEN_ROAD,
        roads=RoadFigures.build(settings.region_code, settings.region_name, kabupaten_km, sum(road_segments.values())),
        roads_by_kecamatan=[
            RoadFigures.build(code, kecamatan_name(code), road_km[code], road_segments[code])
            for code in sorted(road_km, key=kecamatan_order)
        ],
        all_roads=RoadFigures.build(settings.region_code, settings.region_name, all_road_km, all_segments),
        facilities=FacilityFigures.build("all", _("All facilities"), total_facilities),
        facilities_by_type=[
            FacilityFigures.build(code, type_names[type_id], by_type[type_id])
            for type_id, code in ((row.id, row.code) for row in types)
            if type_id in by_type
        ],
        facilities_by_kecamatan=[
            FacilityFigures.build(code, kecamatan_name(code), by_kecamatan[code])
            for code in sorted(by_kecamatan, key=kecamatan_order)
        ],
        stale=StaleFigures(
            key="all",
            name=_("All OPDs"),
            total=all_total,
            stale=all_stale,
            never_inspected=sum(row.never_inspected for row in stale_rows),
            stale_pct=_pct(all_stale, all_total),
        ),
        stale_by_agency=stale_rows,
    )


def preload_in_background(settings: Settings, *, session_factory: Callable[[], Session]) -> threading.Thread:
    """Count the figures in a daemon thread when the app starts, so that the first reader of the page does not wait
    for the grouping (seconds on a large registry). A failure is logged; the first request counts again."""

    def load() -> None:
        try:
            with session_factory() as session:
                infrastructure_indicators(session, settings=settings)
        except Exception:
            log.warning("infrastructure indicators could not be counted at start-up", exc_info=True)

    thread = threading.Thread(target=load, name="kotacerdas-asset-indicators", daemon=True)
    thread.start()
    return thread
