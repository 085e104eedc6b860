"""Live tiles: one poller per app process reads the current values of every Datastream some open page shows, and
pushes the tiles that changed to the Server-Sent Events streams that show them.

Why polling and not notifications: the current value of a Datastream is one primary-key row (sensors.store), so
reading the union of the watched Datastreams every `sensor_live_poll_seconds` costs one indexed query whatever the
number of viewers, and the database is the source of truth for every app process on PostgreSQL (and for the one
on SQLite) whoever stored the observation (the API, the MQTT ingest in another process). Ingest at thousands of
observations a second would make a notification per observation far dearer than this read.

A subscriber is a small bounded queue on the event loop, with no connection and no thread of its own; the read
runs in one thread of the hub. The tile view of a changed Datastream is built once per language and pushed to the
streams of that Datastream; a stream that cannot keep up is dropped (its browser reconnects and gets the whole
state again). A new stream gets the hub's last view of its tiles at once, so a page rendered a moment ago is
brought up to date without waiting for a change."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.config import Settings
from kotacerdas.i18n import SUPPORTED_LOCALES, reset_locale, set_locale
from kotacerdas.web.sse import FrameQueue, end_streams_on_exit

log = logging.getLogger("kotacerdas.sensors.live")

HEARTBEAT_S = 15.0
HEARTBEAT_FRAME = b": ping\n\n"
# Frames waiting for one stream; more means it cannot keep up, and it is dropped.
QUEUE_LIMIT = 64
# The Datastreams' names, levels, places and device health are read again this often (values at every poll).
META_REFRESH_S = 30.0


class TileSubscriber(FrameQueue):
    """One SSE stream's Datastreams and language, with its bounded queue of frames."""

    __slots__ = ("ids", "lang", "registered")

    def __init__(self, ids: frozenset[int], lang: str) -> None:
        super().__init__(QUEUE_LIMIT)
        self.ids = ids
        self.lang = lang
        self.registered = False


def tile_frame(view: dict[str, Any]) -> bytes:
    """The SSE frame of a tile view."""
    return b"event: tile\ndata: %s\n\n" % json.dumps(view, separators=(",", ":"), ensure_ascii=False).encode()


class TileReader:
    """The hub's side that touches the database, in the hub's one thread: the Datastreams' meta (refreshed every
    META_REFRESH_S), and which tiles changed since the last read."""

    def __init__(self, *, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self._session_factory = session_factory
        self._meta: dict[int, Any] = {}
        self._names: dict[str, str] = {}
        self._meta_read_at = 0.0
        self._absent: set[int] = set()  # watched ids with no Datastream: looked for again at the next refresh
        self._signatures: dict[int, tuple] = {}

    def read(self, ids: list[int], fresh: set[int]) -> dict[int, dict[str, bytes]]:
        """The frames (per language) of the tiles among `ids` that changed since the last read, and of every tile
        in `fresh` whether changed or not. Forgets Datastreams no longer watched."""
        from kotacerdas.sensors import devices, readings, store

        wanted = set(ids)
        for gone in set(self._signatures) - wanted:
            del self._signatures[gone]
        now = datetime.now(UTC)
        with self._session_factory() as session:
            missing = wanted - set(self._meta) - self._absent
            if missing or time.monotonic() - self._meta_read_at > META_REFRESH_S:
                self._meta = readings.read_meta(session, settings=self.settings, datastream_ids=wanted)
                self._names = readings.region_names(session, self._meta.values())
                self._meta_read_at = time.monotonic()
                self._absent = wanted - set(self._meta)
            current = store.current_values(session, [i for i in ids if i in self._meta])
            # A station is heard from when any of its Datastreams reports, as the console judges it.
            newest = devices.newest_readings(session, {self._meta[i].thing_id for i in ids if i in self._meta})
        changed: dict[int, dict[str, bytes]] = {}
        for datastream_id in ids:
            meta = self._meta.get(datastream_id)
            if meta is None:  # deleted, or never existed: nothing to show
                continue
            value = current.get(datastream_id)
            thing_newest = newest.get(meta.thing_id)
            tile = readings.make_tile(meta, value, self._names, now, thing_newest)
            signature = (
                value.observation_id if value else None,
                value.phenomenon_time if value else None,
                repr(tile.value),
                tile.level,
                tile.health,
                meta.levels and tuple(sorted(meta.levels.items())),
                meta.unit,
            )
            if self._signatures.get(datastream_id) == signature and datastream_id not in fresh:
                continue
            self._signatures[datastream_id] = signature
            frames = {}
            for lang in SUPPORTED_LOCALES:
                token = set_locale(lang)
                try:
                    tile = readings.make_tile(meta, value, self._names, now, thing_newest)
                    frames[lang] = tile_frame(readings.tile_view(tile, self.settings))
                finally:
                    reset_locale(token)
            changed[datastream_id] = frames
        return changed


class TileHub:
    """This process's live tiles: the streams by Datastream, the last frames sent, and the poller."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        loop: asyncio.AbstractEventLoop,
        poll_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.poll_seconds = poll_seconds or settings.sensor_live_poll_seconds
        self._loop = loop
        self._reader = TileReader(settings=settings, session_factory=session_factory)
        self._by_id: dict[int, set[TileSubscriber]] = {}
        self._frames: dict[int, dict[str, bytes]] = {}  # the last frames of each watched Datastream
        self._fresh: set[int] = set()  # watched Datastreams with no frame yet: read them whether changed or not
        self._woken = asyncio.Event()
        self.subscriber_count = 0
        self.dropped = 0
        self.polls = 0
        self.closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kotacerdas-tiles")
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def watched(self) -> int:
        """How many Datastreams have a stream now (the size of each poll's read)."""
        return len(self._by_id)

    def subscribe(self, ids: Iterable[int], lang: str) -> TileSubscriber:
        """A new stream of these Datastreams' tiles, sent at once with the last frames known of them."""
        subscriber = TileSubscriber(frozenset(ids), lang)
        if self.closed:
            subscriber.close()
            return subscriber
        self.subscriber_count += 1
        subscriber.registered = True
        for datastream_id in subscriber.ids:
            self._by_id.setdefault(datastream_id, set()).add(subscriber)
            frames = self._frames.get(datastream_id)
            if frames is None:
                self._fresh.add(datastream_id)
            else:
                subscriber.push(frames.get(lang) or frames["id"])
        if self._fresh:
            self._woken.set()  # new Datastreams are read at once, not at the next tick
        return subscriber

    def unsubscribe(self, subscriber: TileSubscriber) -> None:
        subscriber.close()
        if not subscriber.registered:
            return
        subscriber.registered = False
        for datastream_id in subscriber.ids:
            members = self._by_id.get(datastream_id)
            if members is None:
                continue
            members.discard(subscriber)
            if not members:
                del self._by_id[datastream_id]
                self._frames.pop(datastream_id, None)
                self._fresh.discard(datastream_id)
        self.subscriber_count -= 1

    def start(self) -> None:
        self._tasks = [self._loop.create_task(self._poll()), self._loop.create_task(self._beat())]

    def close_threadsafe(self) -> None:
        """End every stream (the server is stopping), from any thread or a signal handler."""
        try:
            self._loop.call_soon_threadsafe(self._close_streams)
        except RuntimeError:
            pass

    async def stop(self) -> None:
        self._close_streams()
        for task in self._tasks:
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _close_streams(self) -> None:
        self.closed = True
        for members in list(self._by_id.values()):
            for subscriber in list(members):
                self.unsubscribe(subscriber)

    async def _poll(self) -> None:
        while not self.closed:
            try:
                await asyncio.wait_for(self._woken.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass
            self._woken.clear()
            if not self._by_id:
                continue
            ids = sorted(self._by_id)
            fresh, self._fresh = self._fresh, set()
            try:
                changed = await self._loop.run_in_executor(self._executor, self._reader.read, ids, fresh)
            except Exception:  # a failed read (the database restarting) skips a tick, never ends the hub
                log.warning("live tiles: could not read the current values", exc_info=True)
                self._fresh |= fresh
                await asyncio.sleep(self.poll_seconds)
                continue
            self.polls += 1
            for datastream_id, frames in changed.items():
                members = self._by_id.get(datastream_id)
                if members is None:  # its last stream left during the read
                    continue
                self._frames[datastream_id] = frames
                for subscriber in list(members):
                    if not subscriber.push(frames.get(subscriber.lang) or frames["id"]):
                        self.dropped += 1
                        log.info("live tiles: dropped a stream that could not keep up")
                        self.unsubscribe(subscriber)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            seen: set[int] = set()
            for members in list(self._by_id.values()):
                for subscriber in members:
                    if id(subscriber) not in seen and subscriber.idle:
                        seen.add(id(subscriber))
                        subscriber.push(HEARTBEAT_FRAME)


# --- lifecycle -----------------------------------------------------------------------------------------------------


@dataclass
class LiveTiles:
    """The live tiles of one app: the hub, and how to undo its signal hooks."""

    hub: TileHub
    restore_signals: Callable[[], None]


async def start_tiles(*, settings: Settings, session_factory: sessionmaker[Session]) -> LiveTiles:
    """Start the tile hub on the running loop; called from the app's lifespan. It reads nothing until a page with
    tiles opens a stream."""
    hub = TileHub(settings=settings, session_factory=session_factory, loop=asyncio.get_running_loop())
    hub.start()
    return LiveTiles(hub=hub, restore_signals=end_streams_on_exit(hub.close_threadsafe))


async def stop_tiles(tiles: LiveTiles) -> None:
    """End every stream and stop the poller."""
    tiles.restore_signals()
    await tiles.hub.stop()
