"""The live stream of events as Server-Sent Events: GET /api/v1/events/stream sends every published change (a new
event, an update, its end) that passes the subscriber's filters, as the public view in JSON.

A subscriber holds no database connection and no thread: it is a small queue in this process's hub
(`events.live`), waited on by the event loop. The endpoint is left out of the OpenAPI document: a response that
never ends cannot be described there, and a fuzzer would wait on it until its timeout (see docs/events.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kotacerdas.errors import Busy
from kotacerdas.events import live
from kotacerdas.events.enums import AlertLevel, EventCategory
from kotacerdas.i18n import _, get_locale

router = APIRouter(tags=["events"])

# More open streams than this in one process is an overload (file descriptors, memory): refuse, and let the
# browser's EventSource try again later (or another process behind the load balancer).
MAX_SUBSCRIBERS = 20_000
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers proxied responses unless told not to; a buffered stream arrives late or never.
    "X-Accel-Buffering": "no",
}

RegionCode = Annotated[
    str | None, Query(min_length=1, max_length=20, pattern=r"^[0-9.]+$", description="Kecamatan or desa code")
]


class EventStreamResponse(Response):
    """A text/event-stream response fed by one hub subscriber until the client leaves or the server stops."""

    media_type = "text/event-stream"

    def __init__(self, hub: live.Hub, key: live.StreamFilter, *, missed_since: datetime | None = None) -> None:
        # No body and so no Content-Length: the response is streamed until it ends.
        self.status_code = 200
        self.background = None
        self.hub, self.key, self.missed_since = hub, key, missed_since
        self.init_headers(STREAM_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.hub.subscribe(self.key)
        watcher = asyncio.ensure_future(_end_on_disconnect(receive, subscriber))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": live.retry_hint() + b": live\n\n", "more_body": True})
            if self.missed_since is not None:
                # Subscribed first, so nothing falls between; a change both missed and queued is sent twice, and
                # the page simply shows it again.
                missed = await self.hub.missed_since(self.missed_since, english=self.key.lang == "en")
                body = b"".join(change.frame(self.key.lang) for change in missed if self.key.matches(change))
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            while (frame := await subscriber.next_frame()) is not None:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client is gone (ASGI servers may say so by raising)
            pass
        finally:
            watcher.cancel()
            self.hub.unsubscribe(subscriber)


async def _end_on_disconnect(receive: Receive, subscriber: live.Subscriber) -> None:
    # Without this a dead connection would only be noticed when the next frame is written.
    while (await receive())["type"] != "http.disconnect":
        pass
    subscriber.close()


def _categories(values: list[str] | None) -> frozenset[str] | None:
    codes = {code.strip() for value in values or [] for code in value.split(",") if code.strip()}
    if not codes:
        return None
    # An unknown code matches nothing, as in the list API.
    return frozenset(codes & {category.value for category in EventCategory}) or frozenset({"-"})


@router.get("/api/v1/events/stream", include_in_schema=False)
async def event_stream(
    request: Request,
    kecamatan: RegionCode = None,
    desa: RegionCode = None,
    kategori: Annotated[
        list[Annotated[str, Query(max_length=400, pattern=r"^[a-z_,]+$")]] | None,
        Query(max_length=40, description="Category codes, repeated or separated by commas"),
    ] = None,
    level_min: Annotated[AlertLevel | None, Query(description="Only disasters at this alert level or above")] = None,
    lang: Annotated[Literal["id", "en"] | None, Query(description="Language of the labels")] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90, description="Near this point (with lon)")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float, Query(gt=0, le=100)] = 10.0,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> Response:
    """Published changes of events as Server-Sent Events (`event: event`, the public view as JSON), filtered like
    the public list; a comment every 15 s keeps the connection open."""
    state = getattr(request.app.state, "live", None)
    if state is None or state.hub.closed or state.hub.subscriber_count >= MAX_SUBSCRIBERS:
        raise Busy(_("The server is busy. Please try again in a moment."), headers={"Retry-After": "10"})
    key = live.StreamFilter(
        lang=lang or get_locale(),
        region_code=desa or kecamatan,
        categories=_categories(kategori),
        min_level=level_min.value if level_min else None,
        near=(lat, lon, radius_km) if lat is not None and lon is not None else None,
    )
    return EventStreamResponse(state.hub, key, missed_since=_missed_since(last_event_id))


def _missed_since(last_event_id: str | None) -> datetime | None:
    """The time of the last change a reconnecting browser saw (its Last-Event-ID, the change's time in µs), or None
    when it has none, or it is not ours, or too old to catch up on."""
    if not last_event_id or not last_event_id.isdecimal() or len(last_event_id) > 18:
        return None
    seen = live.EPOCH + timedelta(microseconds=int(last_event_id))
    return seen if seen >= datetime.now(UTC) - live.REPLAY_WINDOW else None
