"""Public sensor pages: the tiles of every Datastream at /sensor (live), a Datastream's page with its chart over a
range at /sensor/{id}, the CSV export of its observations, and the Server-Sent Events stream of live tiles
(/sensor/live?datastreams=1,2,3) that these pages and the asset pages follow.

They read through sensors.readings (tiles, chart series, CSV rows); the stream is a subscriber of this process's
tile hub (sensors.live). Nothing here shows a device key, a Thing's free-form properties or who manages it."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import OptionalUser, SessionDep, SettingsDep
from kotacerdas.errors import Busy, InvalidInput, NotFound
from kotacerdas.i18n import _, get_locale
from kotacerdas.web.templating import render

if TYPE_CHECKING:
    from kotacerdas.sensors import live, readings

# sensors.readings (and the chart code) load with the first sensor page, not with the app: its startup is counted.

router = APIRouter(include_in_schema=False)

DatastreamPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
STREAM_PATH = "/sensor/live"
# More open streams than this in one process is an overload: refuse, and the browser's EventSource tries again.
MAX_SUBSCRIBERS = 10_000
MAX_STREAM_IDS = 300  # readings.MAX_TILES: the most tiles a page shows
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _views(tiles: list[readings.Tile], settings) -> list[tuple[readings.Tile, dict]]:
    from kotacerdas.sensors import readings

    return [(tile, readings.tile_view(tile, settings)) for tile in tiles]


@router.get("/sensor", response_class=HTMLResponse)
def sensors_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    kecamatan: Annotated[str | None, Query(max_length=20, pattern=r"^([0-9.]+)?$")] = None,
    jenis: Annotated[str | None, Query(max_length=10, pattern=r"^[0-9]*$", description="ObservedProperty id")] = None,
) -> HTMLResponse:
    """Current readings of every sensor, grouped by what they observe, updated live."""
    from kotacerdas.regions import service as regions
    from kotacerdas.sensors import readings

    property_id = int(jenis) if jenis and 1 <= int(jenis) <= MAX_INT_ID else None
    page = readings.list_tiles(session, settings=settings, kecamatan_code=kecamatan or None, property_id=property_id)
    kecamatan_list = regions.list_kecamatan(session, settings=settings)
    groups = [(group, _views(group.tiles, settings)) for group in page.groups]
    return render(
        request,
        "sensors/public_list.html",
        {
            "groups": groups,
            "page": page,
            "kecamatan_options": [(region.code, region.name) for region in kecamatan_list],
            "property_options": readings.observed_properties(session),
            "query": {"kecamatan": kecamatan or "", "jenis": str(property_id or "")},
            "offline_minutes": settings.sensor_offline_after_minutes,
        },
    )


@router.get("/sensor/{datastream_id:int}", response_class=HTMLResponse)
def datastream_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    datastream_id: DatastreamPath,
    rentang: Annotated[Literal["24j", "7h", "30h", "1t"], Query(description="Chart range")] = "24j",
) -> HTMLResponse:
    """A sensor's page: its current reading (live), a chart over 24 hours, 7 or 30 days or a year, a table of the
    same figures and the CSV download."""
    from kotacerdas.sensors import readings

    chart_range = readings.ChartRange(rentang)
    tile = readings.get_tile(session, settings=settings, datastream_id=datastream_id)
    if tile is None:
        raise NotFound(_("There is no sensor with that id."))
    data = readings.chart_data(session, settings=settings, datastream_id=datastream_id, chart_range=chart_range)
    title = _("%(name)s, %(range)s") % {"name": tile.meta.name, "range": chart_range.label}
    chart = readings.chart_svg(data, title=title, unit=tile.meta.unit, levels=tile.meta.levels)
    levels = [
        (level, tile.meta.levels[level.value])
        for level in readings.LEVEL_ORDER
        if tile.meta.levels and type(tile.meta.levels.get(level.value)) in (int, float)
    ]
    zone = settings.zone
    return render(
        request,
        "sensors/public_datastream.html",
        {
            "tile": tile,
            "view": readings.tile_view(tile, settings),
            "ranges": list(readings.ChartRange),
            "chosen": chart_range,
            "chart": chart,
            "data": data,
            "table": readings.summary_rows(data, settings),
            "fmt": _number,
            "levels": levels,
            "csv_url": f"/sensor/{datastream_id}/data.csv?start={_iso(data.start)}&end={_iso(data.end)}",
            "csv_start": data.start.astimezone(zone).date().isoformat(),
            "csv_end": data.end.astimezone(zone).date().isoformat(),
        },
    )


def _number(value: float | None) -> str:
    from kotacerdas.charts import format_number

    return "–" if value is None else format_number(value)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: str | None, *, name: str, zone, end_of_day: bool = False) -> datetime | None:
    """An ISO 8601 date or date-time from the query; a date alone, or a time without an offset, is in the regency's
    zone (a date as an end means the end of that day). InvalidInput naming the parameter when it is not one."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=zone)
            return (moment + timedelta(days=1) if end_of_day else moment).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            _("%(name)s is not a date or time: use ISO 8601, e.g. 2026-11-29 or 2026-11-29T08:00:00Z.")
            % {"name": name},
            errors=[{"field": name, "reason": "invalid_datetime", "message": "not an ISO 8601 date or date-time"}],
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


@router.get("/sensor/{datastream_id:int}/data.csv")
def datastream_csv(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    datastream_id: DatastreamPath,
    start: Annotated[str | None, Query(max_length=40, description="From (ISO 8601); end - 30 days if empty")] = None,
    end: Annotated[str | None, Query(max_length=40, description="Until, excluded (ISO 8601); now if empty")] = None,
) -> StreamingResponse:
    """A sensor's observations in [start, end) as CSV (UTF-8, a header row naming the unit, times in ISO 8601 UTC),
    at most 366 days at a time."""
    from kotacerdas.sensors import readings

    tile = readings.get_tile(session, settings=settings, datastream_id=datastream_id)
    if tile is None:
        raise NotFound(_("There is no sensor with that id."))
    zone = settings.zone
    until = parse_time(end, name="end", zone=zone, end_of_day=True) or datetime.now(UTC)
    since = parse_time(start, name="start", zone=zone) or until - timedelta(days=30)
    if since >= until:
        raise InvalidInput(
            _("start must be before end."),
            errors=[{"field": "start", "reason": "after_end", "message": "start must be before end"}],
        )
    if until - since > readings.MAX_CSV_RANGE:
        raise InvalidInput(
            _("The range from start to end is at most 366 days; download a longer period in parts."),
            errors=[{"field": "end", "reason": "range_too_long", "message": "at most 366 days from start"}],
        )
    unit = tile.meta.unit
    filename = f"sensor-{datastream_id}-{since.astimezone(zone):%Y%m%d}-{until.astimezone(zone):%Y%m%d}.csv"

    def rows():
        # The request's session ends when the endpoint returns; the rows are read while the answer is sent.
        with request.app.state.sessionmaker() as reader:
            for piece in readings.iter_csv(reader, datastream_id=datastream_id, unit=unit, start=since, end=until):
                yield piece.encode()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- the live stream -----------------------------------------------------------------------------------------------


class TileStreamResponse(Response):
    """A text/event-stream fed by one tile-hub subscriber until the client leaves or the server stops."""

    media_type = "text/event-stream"

    def __init__(self, hub: live.TileHub, ids: list[int], lang: str) -> None:
        self.status_code = 200
        self.background = None
        self.hub, self.ids, self.lang = hub, ids, lang
        self.init_headers(STREAM_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.hub.subscribe(self.ids, self.lang)
        watcher = asyncio.ensure_future(_end_on_disconnect(receive, subscriber))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            # retry: a browser cut off reconnects after a few seconds; the comment opens the stream at once.
            await send({"type": "http.response.body", "body": b"retry: 5000\n\n: live\n\n", "more_body": True})
            while (frame := await subscriber.next_frame()) is not None:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client is gone
            pass
        finally:
            watcher.cancel()
            self.hub.unsubscribe(subscriber)


async def _end_on_disconnect(receive: Receive, subscriber: live.TileSubscriber) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    subscriber.close()


def parse_ids(value: str) -> list[int]:
    """The Datastream ids of `datastreams=1,2,3`: InvalidInput naming the parameter when one is not an id or there
    are none or too many."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts or not all(part.isdecimal() and len(part) <= 10 and 1 <= int(part) <= MAX_INT_ID for part in parts):
        raise InvalidInput(
            _("datastreams must be Datastream ids separated by commas, e.g. 1,2,3."),
            errors=[{"field": "datastreams", "reason": "invalid_ids", "message": "comma-separated ids"}],
        )
    ids = sorted({int(part) for part in parts})
    if len(ids) > MAX_STREAM_IDS:
        raise InvalidInput(
            _("A stream follows at most %(count)s sensors; open several streams for more.") % {"count": MAX_STREAM_IDS},
            errors=[{"field": "datastreams", "reason": "too_many", "message": f"at most {MAX_STREAM_IDS} ids"}],
        )
    return ids


@router.get(STREAM_PATH)
async def tile_stream(
    request: Request,
    datastreams: Annotated[str, Query(min_length=1, max_length=4000, description="Datastream ids, comma-separated")],
) -> Response:
    """Live tiles of these Datastreams as Server-Sent Events (`event: tile`, the tile's texts as JSON): each tile at
    once, then whenever its value, level or device health changes; a comment every 15 s keeps the connection open."""
    ids = parse_ids(datastreams)
    tiles = getattr(request.app.state, "sensor_tiles", None)
    if tiles is None or tiles.hub.closed or tiles.hub.subscriber_count >= MAX_SUBSCRIBERS:
        raise Busy(_("The server is busy. Please try again in a moment."), headers={"Retry-After": "10"})
    return TileStreamResponse(tiles.hub, ids, get_locale())
