"""What the public sensor pages read: tiles (a Datastream's current value, its status against the Datastream's
levels, the device's health), chart series over a range (raw points for short ranges, hourly rollups for long
ones, days of rollups for a year) and the rows of a CSV export.

Only public facts leave this module: names of the Thing, its place, what is observed, values and times, battery
and signal. Never the device key, the owner's staff, or a Thing's free-form properties. Reads only; the pages and
the live hub call these, other domains reach them through `sensors.service`."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.config import Settings
from kotacerdas.enums import LabelledEnum
from kotacerdas.i18n import _
from kotacerdas.sensors import devices, store
from kotacerdas.sensors.models import Datastream, ObservedProperty, Thing

# More tiles than this on one page is a wall nobody reads, and a live stream is capped at it too: filter instead.
MAX_TILES = 300
# A short range is drawn from raw observations, at most this many (the newest are kept when there are more).
RAW_RANGE_LIMIT = timedelta(days=2)
MAX_RAW_POINTS = 5_000
# A CSV export covers at most this long a range; rows are read in pages of this many.
MAX_CSV_RANGE = timedelta(days=366)
CSV_PAGE_ROWS = 5_000


class Level(LabelledEnum):
    """A reading against its Datastream's levels (BNPB/BPBD words, the colours of the events' alert levels)."""

    NORMAL = ("normal", "Normal", "Normal", "#2e7d32")
    WASPADA = ("waspada", "Waspada", "Alert", "#f9a825")
    SIAGA = ("siaga", "Siaga", "Standby", "#ef6c00")
    AWAS = ("awas", "Awas", "Warning", "#c62828")


OFFLINE_COLOUR = "#5f6b7a"
NO_LEVEL_COLOUR = "#78909c"
LEVEL_ORDER = (Level.WASPADA, Level.SIAGA, Level.AWAS)


def level_of(value: Any, levels: dict[str, Any] | None) -> Level | None:
    """The level a numeric `value` is at, or None when there are no levels or the value is not a number.

    Levels rise with the value (a river: waspada 250 < siaga 300 < awas 350 cm) unless they are given falling
    (waspada above awas, e.g. dissolved oxygen), then a value at or below a level reaches it."""
    if not levels or type(value) not in (int, float) or not math.isfinite(value):
        return None
    known = [
        (level, float(levels[level.value]))
        for level in LEVEL_ORDER
        if type(levels.get(level.value)) in (int, float) and math.isfinite(levels[level.value])
    ]
    if not known:
        return None
    falling = len(known) > 1 and known[0][1] > known[-1][1]
    reached = Level.NORMAL
    for level, threshold in known:
        if (value <= threshold) if falling else (value >= threshold):
            reached = level
    return reached


def format_value(value: Any) -> str:
    """A result as shown on a tile: numbers in the request's language, text as is, JSON compact."""
    if value is None:
        return "–"
    if type(value) is bool:
        return _("yes") if value else _("no")
    if type(value) in (int, float):
        from kotacerdas.charts import format_number

        return format_number(value)
    if isinstance(value, str):
        return value[:200]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))[:200]


def unit_symbol(unit: dict[str, Any] | None) -> str:
    """The unit's symbol (or name) for display."""
    if not isinstance(unit, dict):
        return ""
    return str(unit.get("symbol") or unit.get("name") or "")[:40]


@dataclass(frozen=True, slots=True)
class Health:
    """A device's health as last reported, and whether it is offline by now."""

    last_seen_at: datetime | None
    battery_percent: float | None
    signal_dbm: float | None
    offline: bool


@dataclass(frozen=True, slots=True)
class TileMeta:
    """What a tile shows besides its value: the Datastream, its Thing and place, its levels."""

    datastream_id: int
    name: str
    thing_id: int
    thing_name: str
    desa_code: str | None
    kecamatan_code: str | None
    property_id: int
    property_name: str
    unit: str
    levels: dict[str, float] | None
    asset_id: int | None
    last_seen_at: datetime | None
    battery_percent: float | None
    signal_dbm: float | None
    offline_after_minutes: int  # the Thing's own limit, else the setting's (devices.offline_limit)


@dataclass(frozen=True, slots=True)
class Tile:
    """One Datastream's tile: its meta, place names, the current value and its level."""

    meta: TileMeta
    desa_name: str | None
    kecamatan_name: str | None
    value: Any
    value_text: str
    observed_at: datetime | None
    level: Level | None
    health: Health

    @property
    def datastream_id(self) -> int:
        return self.meta.datastream_id

    @property
    def colour(self) -> str:
        """The tile's status colour: its level's, grey when offline or without levels."""
        if self.health.offline:
            return OFFLINE_COLOUR
        return self.level.colour if self.level is not None else NO_LEVEL_COLOUR


def health_of(
    meta: TileMeta, current: store.CurrentValue | None, now: datetime, thing_newest: datetime | None = None
) -> Health:
    """The device's health now, by the device console's rule (`devices.heard_from`, `devices.is_offline`): heard
    from at the newer of its `last_seen_at` and its Thing's newest reading (`thing_newest`, from
    `devices.newest_readings`: a station's other Datastreams count too) or this Datastream's, a time ahead of now
    counted as now; offline when that is longer ago than its limit, or never."""
    times = [t for t in (thing_newest, current.phenomenon_time if current is not None else None) if t is not None]
    seen = devices.heard_from(meta.last_seen_at, max(times) if times else None, now)
    offline = devices.is_offline(seen, meta.offline_after_minutes, now)
    return Health(seen, meta.battery_percent, meta.signal_dbm, offline)


_META_COLUMNS = (
    Datastream.id,
    Datastream.name,
    Datastream.unit_of_measurement,
    Datastream.levels,
    Thing.id,
    Thing.name,
    Thing.desa_code,
    Thing.kecamatan_code,
    Thing.asset_id,
    Thing.last_seen_at,
    Thing.battery_percent,
    Thing.signal_dbm,
    Thing.offline_after_minutes,
    ObservedProperty.id,
    ObservedProperty.name,
)


def _meta_select() -> sa.Select:
    return (
        sa.select(*_META_COLUMNS)
        .join(Thing, Thing.id == Datastream.thing_id)
        .join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)
    )


def _meta(row: Sequence[Any], settings: Settings) -> TileMeta:
    (ds_id, name, unit, levels, thing_id, thing_name, desa, kecamatan, asset_id, seen, battery, signal, minutes,
     prop_id, prop_name) = row  # fmt: skip
    return TileMeta(
        datastream_id=ds_id,
        name=name,
        thing_id=thing_id,
        thing_name=thing_name,
        desa_code=desa,
        kecamatan_code=kecamatan,
        property_id=prop_id,
        property_name=prop_name,
        unit=unit_symbol(unit),
        levels=levels if isinstance(levels, dict) else None,
        asset_id=asset_id,
        last_seen_at=seen,
        battery_percent=battery,
        signal_dbm=signal,
        offline_after_minutes=devices.offline_limit(minutes, settings=settings),
    )


def read_meta(session: Session, *, settings: Settings, datastream_ids: Iterable[int]) -> dict[int, TileMeta]:
    """The tile meta of these Datastreams (unknown ids left out), by id: what the live hub refreshes now and then."""
    ids = sorted(set(datastream_ids))
    if not ids:
        return {}
    rows = session.execute(_meta_select().where(Datastream.id.in_(ids))).all()
    return {row[0]: _meta(row, settings) for row in rows}


def region_names(session: Session, metas: Iterable[TileMeta]) -> dict[str, str]:
    """Names of the desa and kecamatan of these tiles, by code."""
    from kotacerdas.regions import service as regions

    codes = {code for meta in metas for code in (meta.desa_code, meta.kecamatan_code) if code}
    return {code: region.name for code, region in regions.get_regions(session, codes=codes).items()}


def _tiles(session: Session, metas: list[TileMeta], now: datetime) -> list[Tile]:
    names = region_names(session, metas)
    current = store.current_values(session, [meta.datastream_id for meta in metas])
    newest = devices.newest_readings(session, {meta.thing_id for meta in metas})
    return [make_tile(meta, current.get(meta.datastream_id), names, now, newest.get(meta.thing_id)) for meta in metas]


def make_tile(
    meta: TileMeta,
    current: store.CurrentValue | None,
    names: dict[str, str],
    now: datetime,
    thing_newest: datetime | None = None,
) -> Tile:
    """A tile from its meta, current value and its Thing's newest reading (texts in the request's language)."""
    value = current.result if current is not None else None
    return Tile(
        meta=meta,
        desa_name=names.get(meta.desa_code or ""),
        kecamatan_name=names.get(meta.kecamatan_code or ""),
        value=value,
        value_text=format_value(value) if current is not None else "–",
        observed_at=current.phenomenon_time if current is not None else None,
        level=level_of(value, meta.levels),
        health=health_of(meta, current, now, thing_newest),
    )


def local_time(value: datetime | None, settings: Settings) -> str:
    """A time in the regency's zone as the pages show it (the `local_time` filter of the templates)."""
    if value is None:
        return "–"
    local = value.astimezone(settings.zone)
    return f"{local.strftime('%d-%m-%Y %H:%M')} {local.tzname()}"


def tile_view(tile: Tile, settings: Settings) -> dict[str, Any]:
    """What a tile shows, as texts in the request's language: the page renders it and the live stream sends it, so
    the two never differ."""
    from kotacerdas.charts import format_number

    health = tile.health
    if tile.level is not None:
        status = tile.level.label
    elif tile.meta.levels and tile.observed_at is not None:
        status = _("Not a number")
    else:
        status = _("No thresholds")
    return {
        "id": tile.datastream_id,
        "name": tile.meta.name,
        "thing_name": tile.meta.thing_name,
        "property_name": tile.meta.property_name,
        "desa_name": tile.desa_name,
        "kecamatan_name": tile.kecamatan_name,
        "value": tile.value_text,
        "unit": tile.meta.unit if tile.observed_at is not None else "",
        "time": _iso(tile.observed_at) or None,
        "time_text": local_time(tile.observed_at, settings) if tile.observed_at else _("No reading yet"),
        "level": tile.level.value if tile.level is not None else None,
        "status": status,
        "colour": tile.colour,
        "offline": health.offline,
        "device": _("Offline") if health.offline else _("Online"),
        "last_seen": local_time(health.last_seen_at, settings) if health.last_seen_at else _("never"),
        "battery": format_number(health.battery_percent) + " %" if health.battery_percent is not None else None,
        "signal": format_number(health.signal_dbm) + " dBm" if health.signal_dbm is not None else None,
    }


@dataclass(frozen=True, slots=True)
class TileGroup:
    """Tiles of one observed property (all the water levels, all the rainfall …)."""

    property_id: int
    name: str
    tiles: list[Tile]


@dataclass(frozen=True, slots=True)
class TilePage:
    groups: list[TileGroup]
    total: int  # Datastreams matching the filters, of which at most MAX_TILES are shown

    @property
    def datastream_ids(self) -> list[int]:
        return [tile.datastream_id for group in self.groups for tile in group.tiles]

    @property
    def shown(self) -> int:
        return sum(len(group.tiles) for group in self.groups)


def list_tiles(
    session: Session,
    *,
    settings: Settings,
    kecamatan_code: str | None = None,
    property_id: int | None = None,
    limit: int = MAX_TILES,
    now: datetime | None = None,
) -> TilePage:
    """Tiles of every Datastream (filtered by kecamatan and observed property), grouped by observed property, the
    groups by name and the tiles by Thing name; at most `limit`."""
    now = now or datetime.now(UTC)
    where = []
    if kecamatan_code:
        where.append(Thing.kecamatan_code == kecamatan_code)
    if property_id:
        where.append(ObservedProperty.id == property_id)
    total = session.scalar(
        sa.select(sa.func.count())
        .select_from(Datastream)
        .join(Thing, Thing.id == Datastream.thing_id)
        .join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)
        .where(*where)
    )
    rows = session.execute(
        _meta_select()
        .where(*where)
        .order_by(ObservedProperty.name, ObservedProperty.id, Thing.name, Datastream.name, Datastream.id)
        .limit(limit)
    ).all()
    tiles = _tiles(session, [_meta(row, settings) for row in rows], now)
    groups: list[TileGroup] = []
    for tile in tiles:
        if not groups or groups[-1].property_id != tile.meta.property_id:
            groups.append(TileGroup(tile.meta.property_id, tile.meta.property_name, []))
        groups[-1].tiles.append(tile)
    return TilePage(groups=groups, total=int(total or 0))


def tiles_for_asset(session: Session, *, settings: Settings, asset_id: int, now: datetime | None = None) -> list[Tile]:
    """Tiles of the Datastreams of the Things linked to an asset, by Thing and Datastream name."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        _meta_select()
        .where(Thing.asset_id == asset_id)
        .order_by(Thing.name, Datastream.name, Datastream.id)
        .limit(MAX_TILES)
    ).all()
    return _tiles(session, [_meta(row, settings) for row in rows], now)


def get_tile(session: Session, *, settings: Settings, datastream_id: int, now: datetime | None = None) -> Tile | None:
    """One Datastream's tile, or None when there is no such Datastream."""
    now = now or datetime.now(UTC)
    row = session.execute(_meta_select().where(Datastream.id == datastream_id)).first()
    return None if row is None else _tiles(session, [_meta(row, settings)], now)[0]


def observed_properties(session: Session) -> list[tuple[int, str]]:
    """(id, name) of the observed properties that have a Datastream, for the page's filter."""
    statement = (
        sa.select(ObservedProperty.id, ObservedProperty.name)
        .where(sa.exists().where(Datastream.observed_property_id == ObservedProperty.id))
        .order_by(ObservedProperty.name, ObservedProperty.id)
    )
    return [(row[0], row[1]) for row in session.execute(statement)]


# --- charts ------------------------------------------------------------------------------------------------------


class ChartRange(LabelledEnum):
    """The ranges a Datastream's chart offers; the value is the URL parameter."""

    DAY = ("24j", "24 jam", "24 hours")
    WEEK = ("7h", "7 hari", "7 days")
    MONTH = ("30h", "30 hari", "30 days")
    YEAR = ("1t", "1 tahun", "1 year")

    @property
    def length(self) -> timedelta:
        return {"24j": timedelta(hours=24), "7h": timedelta(days=7), "30h": timedelta(days=30)}.get(
            self.value, timedelta(days=365)
        )


@dataclass(frozen=True, slots=True)
class ChartRow:
    """One point of a chart series: a raw observation (min = avg = max), an hour or a day of rollups."""

    at: datetime
    label: str
    min: float | None
    avg: float | None
    max: float | None
    count: int


@dataclass(frozen=True, slots=True)
class ChartData:
    """A Datastream's series over a range, and how it was made (raw, hourly or daily)."""

    kind: str  # raw, hourly, daily
    start: datetime
    end: datetime
    rows: list[ChartRow]
    truncated: bool = False  # raw points beyond MAX_RAW_POINTS were left out (the oldest)

    @property
    def values(self) -> list[float]:
        return [row.avg for row in self.rows if row.avg is not None]


def _local(value: datetime, settings: Settings, fmt: str) -> str:
    return value.astimezone(settings.zone).strftime(fmt)


def chart_data(
    session: Session, *, settings: Settings, datastream_id: int, chart_range: ChartRange, now: datetime | None = None
) -> ChartData:
    """The series of a Datastream's chart over `chart_range` up to now: raw numeric observations for ranges of at
    most two days (a gap where readings stop for long), hourly min/avg/max from the rollups for longer ones, and the
    hours merged into days (in the regency's zone) for a year, so that the SVG stays small."""
    now = now or datetime.now(UTC)
    end = now
    start = end - chart_range.length
    if chart_range.length <= RAW_RANGE_LIMIT:
        observations = store.list_observations(
            session, datastream_id=datastream_id, start=start, end=end, limit=MAX_RAW_POINTS + 1, order="desc"
        )
        truncated = len(observations) > MAX_RAW_POINTS
        numeric = [
            obs for obs in reversed(observations[:MAX_RAW_POINTS]) if type(obs.result) in (int, float)
        ]  # fmt: skip
        rows = _with_gaps(
            [
                ChartRow(obs.phenomenon_time, _local(obs.phenomenon_time, settings, "%H:%M"), v, v, v, 1)
                for obs in numeric
                for v in (float(obs.result),)
            ]
        )
        return ChartData("raw", start, end, rows, truncated)
    hours = store.hourly(session, datastream_id=datastream_id, start=start, end=end)
    if chart_range is not ChartRange.YEAR:
        by_hour = {row.hour: row for row in hours}
        first = start.replace(minute=0, second=0, microsecond=0)
        slots = []
        hour = first
        while hour < end:
            found = by_hour.get(hour)
            label = _local(hour, settings, "%d-%m %H:00")
            if found is None:
                slots.append(ChartRow(hour, label, None, None, None, 0))
            else:
                slots.append(ChartRow(hour, label, found.min, found.avg, found.max, found.count))
            hour += timedelta(hours=1)
        return ChartData("hourly", start, end, slots)
    zone = settings.zone
    days: dict[date, list[store.HourlyRow]] = {}
    for row in hours:
        days.setdefault(row.hour.astimezone(zone).date(), []).append(row)
    slots = []
    day = start.astimezone(zone).date()
    while day <= end.astimezone(zone).date():
        found = days.get(day)
        at = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        label = day.strftime("%d-%m-%Y")
        if not found:
            slots.append(ChartRow(at, label, None, None, None, 0))
        else:
            count = sum(row.count for row in found)
            total = sum(row.sum for row in found)
            low = min(row.min for row in found)
            high = max(row.max for row in found)
            slots.append(ChartRow(at, label, low, total / count, high, count))
        day += timedelta(days=1)
    return ChartData("daily", start, end, slots)


def _with_gaps(rows: list[ChartRow]) -> list[ChartRow]:
    """Raw rows with an empty row where the readings stop for more than three times their usual interval (at least
    15 minutes), so that the line breaks there instead of bridging hours without data."""
    if len(rows) < 3:
        return rows
    steps = sorted((b.at - a.at) for a, b in zip(rows, rows[1:], strict=False))
    usual = steps[len(steps) // 2]
    limit = max(usual * 3, timedelta(minutes=15))
    out = [rows[0]]
    for previous, row in zip(rows, rows[1:], strict=False):
        if row.at - previous.at > limit:
            out.append(ChartRow(previous.at + (row.at - previous.at) / 2, "", None, None, None, 0))
        out.append(row)
    return out


def summary_rows(data: ChartData, settings: Settings) -> list[ChartRow]:
    """The table beside a chart (its text alternative), at most a few dozen rows: hours for a day of raw points,
    days for a week or a month, months for a year."""
    zone = settings.zone
    if data.kind == "raw":
        key_fmt, label_fmt = "%Y-%m-%d %H", "%d-%m-%Y %H:00"
    elif data.kind == "hourly":
        key_fmt, label_fmt = "%Y-%m-%d", "%d-%m-%Y"
    else:
        key_fmt, label_fmt = "%Y-%m", "%m-%Y"
    buckets: dict[str, list[ChartRow]] = {}
    for row in data.rows:
        if row.avg is None:
            continue
        buckets.setdefault(row.at.astimezone(zone).strftime(key_fmt), []).append(row)
    result = []
    for rows in buckets.values():
        count = sum(row.count for row in rows)
        total = sum(row.avg * row.count for row in rows)
        result.append(
            ChartRow(
                rows[0].at,
                rows[0].at.astimezone(zone).strftime(label_fmt),
                min(row.min for row in rows),
                total / count if count else None,
                max(row.max for row in rows),
                count,
            )
        )
    return result


def chart_svg(data: ChartData, *, title: str, unit: str, levels: dict[str, float] | None) -> str:
    """The SVG line chart of `data`: one line for raw points, min/avg/max lines for rollups; the levels dashed."""
    from kotacerdas.charts import format_number, line_chart

    labels = [row.label for row in data.rows]
    if data.kind == "raw":
        series = {_("Reading"): [row.avg for row in data.rows]}
    else:
        # The average first: the chart labels the first series' last value.
        series = {
            _("Average"): [row.avg for row in data.rows],
            _("Maximum"): [row.max for row in data.rows],
            _("Minimum"): [row.min for row in data.rows],
        }
    references = [
        (level.label, levels[level.value], level.colour)
        for level in LEVEL_ORDER
        if levels and type(levels.get(level.value)) in (int, float)
    ]
    values = data.values
    suffix = f" {unit}" if unit else ""
    if values:
        description = _("%(count)s points; lowest %(low)s, highest %(high)s.") % {
            "count": len(values),
            "low": format_number(min(row.min for row in data.rows if row.min is not None)) + suffix,
            "high": format_number(max(row.max for row in data.rows if row.max is not None)) + suffix,
        }
    else:
        description = _("No readings in this range.")
    return line_chart(
        series,
        labels=labels,
        title=title,
        description=description,
        width=760,
        height=320,
        unit=unit,
        references=references,
        markers=len(labels) <= 60,
        colours=("#0b5394",) if data.kind == "raw" else ("#0b5394", "#b91c1c", "#047857"),
        empty_text=_("No readings in this range."),
    )


# --- CSV ---------------------------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _csv_result(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def iter_csv(
    session: Session, *, datastream_id: int, unit: str, start: datetime, end: datetime, page_rows: int = CSV_PAGE_ROWS
) -> Iterator[str]:
    """The observations of a Datastream with start <= phenomenon time < end as CSV text, a header row first (the
    result column names the unit), read in pages so that memory stays flat. Times are ISO 8601 in UTC."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    result_header = f"result ({unit})" if unit else "result"
    writer.writerow(["id", "phenomenonTime", "phenomenonTimeEnd", "resultTime", result_header, "resultQuality"])
    yield buffer.getvalue()
    cursor = start
    seen_at_cursor: set[int] = set()
    while True:
        # Rows at the cursor's time already written come first (by time, then id) and are skipped: asking for that
        # many more keeps every page moving, even when more rows than a page share one time.
        limit = page_rows + len(seen_at_cursor)
        page = store.list_observations(session, datastream_id=datastream_id, start=cursor, end=end, limit=limit)
        fresh = [obs for obs in page if not (obs.phenomenon_time == cursor and obs.id in seen_at_cursor)]
        if not fresh:
            return
        buffer.seek(0)
        buffer.truncate()
        for obs in fresh:
            writer.writerow(
                [
                    obs.id,
                    _iso(obs.phenomenon_time),
                    _iso(obs.phenomenon_time_end),
                    _iso(obs.result_time),
                    _csv_result(obs.result),
                    obs.result_quality or "",
                ]
            )
        yield buffer.getvalue()
        if len(page) < limit:
            return
        last = page[-1].phenomenon_time
        if last != cursor:
            seen_at_cursor = set()
        cursor = last
        seen_at_cursor |= {obs.id for obs in page if obs.phenomenon_time == last}
