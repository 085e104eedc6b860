"""The live stream of event changes: announced in the change's own transaction, then fanned out to every Server-Sent
Events subscriber of every app process.

On PostgreSQL a change is a `pg_notify` in its transaction (delivered on commit only); each app process runs one
listener connection that hands every notification to its hub. On SQLite the change waits in the session until the
commit and goes to the hubs of this process (an in-process broker: SQLite serves one app process). The hub reads the
changed events once per change, serializes the public view once per language and pushes it to every subscriber's
bounded queue on the event loop; a subscriber that cannot keep up is dropped (its browser reconnects)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.events.enums import PUBLIC_STATUSES, AlertLevel
from kotacerdas.events.models import Event
from kotacerdas.i18n import reset_locale, set_locale
from kotacerdas.web.sse import FrameQueue, end_streams_on_exit

log = logging.getLogger("kotacerdas.live")

CHANNEL = "kotacerdas_events"
# Comment lines keep idle connections open through proxies that close silent ones (nginx: 60 s by default).
HEARTBEAT_S = 15.0
# Frames waiting for one subscriber; more means it cannot keep up, and it is dropped.
QUEUE_LIMIT = 32
# After a lost listener connection, changes committed this long before the loss are sent again (clocks differ).
RESYNC_SLACK = timedelta(seconds=5)
_PENDING = "kotacerdas_live_pending"
_HOOKED = "kotacerdas_live_hooked"
HEARTBEAT_FRAME = b": ping\n\n"
# A reconnecting browser is sent the changes it missed, up to this many and from at most this long ago (older than
# that, its page is stale anyway and the visitor reloads it).
REPLAY_LIMIT = 200
REPLAY_WINDOW = timedelta(hours=24)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- announcing ----------------------------------------------------------------------------------------------------


def database_key(engine: Engine) -> str:
    """The database an engine points at, so that every engine of this process on it reaches the same hubs."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return "sqlite:" + os.path.realpath(url.database or ":memory:")
    return url.set(drivername=url.get_backend_name(), password=None).render_as_string(hide_password=True)


def announce(session: Session, *, event_id: int, version: int, kind: str, status: str) -> None:
    """Queue a published change of an event for the live stream, delivered when the transaction commits."""
    payload = {"event_id": event_id, "version": version, "kind": kind, "status": status}
    engine = session.get_bind()
    if engine.dialect.name == "postgresql":
        # NOTIFY is transactional: listeners hear it on commit, and never when the transaction rolls back.
        session.execute(sa.select(sa.func.pg_notify(CHANNEL, json.dumps(payload, separators=(",", ":")))))
        return
    if not session.info.get(_HOOKED):
        sa_event.listen(session, "after_commit", _deliver_pending)
        sa_event.listen(session, "after_rollback", _drop_pending)
        session.info[_HOOKED] = True
    session.info.setdefault(_PENDING, []).append((database_key(engine), payload))


def _deliver_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    by_database: dict[str, list[dict[str, Any]]] = {}
    for key, payload in pending:
        by_database.setdefault(key, []).append(payload)
    for key, payloads in by_database.items():
        for hub in _hubs_of(key):
            hub.publish_threadsafe(payloads)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


_HUBS: dict[str, set[Hub]] = {}
_HUBS_LOCK = threading.Lock()


def _hubs_of(key: str) -> list[Hub]:
    with _HUBS_LOCK:
        return list(_HUBS.get(key, ()))


# --- subscribers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """What one subscriber wants: its language and the public filters, checked in memory for every change."""

    lang: str = "id"
    region_code: str | None = None
    categories: frozenset[str] | None = None
    min_level: str | None = None
    near: tuple[float, float, float] | None = None  # lat, lon, radius in km

    def matches(self, change: Change) -> bool:
        """True when the changed event passes the filters (as the public list would show it)."""
        if self.region_code is not None and self.region_code not in change.region_codes:
            return False
        if self.categories is not None and change.category not in self.categories:
            return False
        if self.min_level is not None and change.level_rank < AlertLevel(self.min_level).rank:
            return False
        if self.near is not None:
            from kotacerdas.events.service import distance_km

            lat, lon, radius_km = self.near
            min_lat, min_lon, max_lat, max_lon = change.box
            nearest = (min(max(lat, min_lat), max_lat), min(max(lon, min_lon), max_lon))
            if distance_km(lat, lon, *nearest) > radius_km:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Change:
    """A changed event as the hub fans it out: what the filters look at, and its frames per language."""

    event_id: int
    region_codes: frozenset[str]
    category: str
    level_rank: int
    box: tuple[float, float, float, float]  # min_lat, min_lon, max_lat, max_lon
    views: dict[str, bytes]  # language → the public view as JSON
    stamp: int  # the change's time (the event's updated_at) in microseconds since the epoch, exactly

    def frame(self, lang: str) -> bytes:
        """The SSE frame of this change in `lang` (Indonesian when that language was not read). Its `id` is the
        change's time: a browser that reconnects sends it back as Last-Event-ID, and is sent what it missed."""
        view = self.views.get(lang) or self.views["id"]
        return b"id: %d\nevent: event\ndata: %s\n\n" % (self.stamp, view)


class Subscriber(FrameQueue):
    """One SSE connection of the event stream: its filter and its bounded queue of frames."""

    __slots__ = ("key",)

    def __init__(self, key: StreamFilter) -> None:
        super().__init__(QUEUE_LIMIT)
        self.key = key


# --- the hub -------------------------------------------------------------------------------------------------------


class Hub:
    """This process's fan-out of event changes to its SSE subscribers; lives on the app's event loop."""

    def __init__(
        self, *, settings: Settings, session_factory: sessionmaker[Session], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.settings = settings
        self._session_factory = session_factory
        self._loop = loop
        # Subscribers grouped by identical filters: a change is checked once per group, not once per connection.
        self._groups: dict[StreamFilter, set[Subscriber]] = {}
        self.subscriber_count = 0
        self.dropped = 0
        self._changes: list[dict[str, Any]] = []
        self._builder: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        # One thread reads the changed events, in order, apart from the request threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kotacerdas-live")
        self.closed = False

    # Subscribers come and go on the event loop.
    def subscribe(self, key: StreamFilter) -> Subscriber:
        """A new subscriber with these filters; ended at once when the hub is closed."""
        subscriber = Subscriber(key)
        if self.closed:
            subscriber.close()
            return subscriber
        self._groups.setdefault(key, set()).add(subscriber)
        self.subscriber_count += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.close()
        members = self._groups.get(subscriber.key)
        if members is not None and subscriber in members:
            members.discard(subscriber)
            self.subscriber_count -= 1
            if not members:
                del self._groups[subscriber.key]

    def publish_threadsafe(self, payloads: Iterable[dict[str, Any]]) -> None:
        """Hand announced changes to the hub, from any thread."""
        try:
            self._loop.call_soon_threadsafe(self._received, list(payloads))
        except RuntimeError:  # the loop is closed: the app is gone, and so are its subscribers
            pass

    def close_threadsafe(self) -> None:
        """End every stream (the server is stopping), from any thread or a signal handler."""
        try:
            self._loop.call_soon_threadsafe(self._close_streams)
        except RuntimeError:
            pass

    def start(self) -> None:
        self._heartbeat = self._loop.create_task(self._beat())

    async def stop(self) -> None:
        self._close_streams()
        for task in (self._heartbeat, self._builder):
            if task is not None and not task.done():
                task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _close_streams(self) -> None:
        self.closed = True
        for members in list(self._groups.values()):
            for subscriber in list(members):
                self.unsubscribe(subscriber)

    def _received(self, payloads: list[dict[str, Any]]) -> None:
        if self.closed:
            return
        self._changes.extend(payloads)
        if self._builder is None or self._builder.done():
            self._builder = self._loop.create_task(self._build_and_send())

    async def _build_and_send(self) -> None:
        while self._changes and not self.closed:
            # Changes that arrived while the last read ran are read together: one read, and an event changed
            # twice meanwhile is sent once, as it is now.
            batch, self._changes = self._changes, []
            if not self._groups:
                continue
            english = any(key.lang == "en" for key in self._groups)
            ids = list(dict.fromkeys(int(payload["event_id"]) for payload in batch))
            try:
                changes = await self._loop.run_in_executor(self._executor, self.read_changes, ids, english)
            except Exception:  # a failed read loses these changes for the stream, never the hub
                log.exception("live stream: could not read changed events %s", ids)
                continue
            for change in changes:
                self._fan_out(change)

    def read_changes(self, event_ids: list[int], english: bool) -> list[Change]:
        """The public views of changed events, read once and serialized once per language (in the hub's thread)."""
        from kotacerdas.events import service

        with self._session_factory() as session:
            found = {event.id: event for event in session.scalars(sa.select(Event).where(Event.id.in_(event_ids)))}
            events = [found[event_id] for event_id in event_ids if event_id in found]
            events = [event for event in events if event.status in {status.value for status in PUBLIC_STATUSES}]
            if not events:
                return []
            codes = service.region_codes_of(session, event_ids=[event.id for event in events])
            views: dict[str, dict[int, bytes]] = {}
            for lang in ("id", "en") if english else ("id",):
                token = set_locale(lang)
                try:
                    views[lang] = {
                        view.id: view.model_dump_json().encode()
                        for view in service.public_events(session, settings=self.settings, events=events)
                    }
                finally:
                    reset_locale(token)
        return [
            Change(
                event_id=event.id,
                region_codes=frozenset(codes[event.id]),
                category=event.category,
                level_rank=AlertLevel(event.level).rank if event.level else -1,
                box=(event.min_lat, event.min_lon, event.max_lat, event.max_lon),
                views={lang: views[lang][event.id] for lang in views},
                stamp=(event.updated_at - EPOCH) // timedelta(microseconds=1),
            )
            for event in events
        ]

    async def missed_since(self, since: datetime, *, english: bool) -> list[Change]:
        """Changes of public events after `since`, oldest first and at most REPLAY_LIMIT: what a reconnecting
        browser missed while it was away."""
        return await self._loop.run_in_executor(self._executor, self._read_since, since, english)

    def _read_since(self, since: datetime, english: bool) -> list[Change]:
        with self._session_factory() as session:
            ids = list(
                session.scalars(
                    sa.select(Event.id)
                    .where(Event.updated_at > since, Event.status.in_([status.value for status in PUBLIC_STATUSES]))
                    .order_by(Event.updated_at)
                    .limit(REPLAY_LIMIT)
                )
            )
        return self.read_changes(ids, english) if ids else []

    def _fan_out(self, change: Change) -> None:
        frames = {lang: change.frame(lang) for lang in change.views}
        for key, members in list(self._groups.items()):
            if not key.matches(change):
                continue
            frame = frames.get(key.lang) or frames["id"]
            for subscriber in list(members):
                if not subscriber.push(frame):
                    self.dropped += 1
                    log.info("live stream: dropped a subscriber that could not keep up")
                    self.unsubscribe(subscriber)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            for members in list(self._groups.values()):
                for subscriber in members:
                    if subscriber.idle:
                        subscriber.push(HEARTBEAT_FRAME)


def retry_hint() -> bytes:
    """The reconnection delay a stream asks for: spread over a few seconds, so that thousands of browsers cut off
    together (a restart) do not all come back in the same instant."""
    return b"retry: %d\n\n" % random.randint(2000, 7000)


# --- the PostgreSQL listener ---------------------------------------------------------------------------------------


class Listener:
    """One dedicated connection doing LISTEN in a thread; every notification goes to the hub. After a failure it
    reconnects and sends again the events changed since shortly before the loss, which it may not have heard."""

    def __init__(self, *, hub: Hub, engine: Engine) -> None:
        self._hub = hub
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kotacerdas-live-listen", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        import psycopg

        lost_at: datetime | None = None
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.5
                    if lost_at is not None:
                        self._resync(since=lost_at - RESYNC_SLACK)
                        lost_at = None
                    while not self._stop.is_set():
                        # Each notification is handed on as it comes; the timeout lets the thread see the stop flag.
                        for note in connection.notifies(timeout=1.0):
                            self._hub.publish_threadsafe([json.loads(note.payload)])
            except Exception:  # any failure of the connection: log, wait, reconnect
                if self._stop.is_set():
                    return
                self.connected.clear()
                lost_at = lost_at or utcnow()
                log.warning("live stream: the LISTEN connection failed; reconnecting in %.1f s", delay, exc_info=True)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _resync(self, *, since: datetime) -> None:
        with self._hub._session_factory() as session:
            ids = list(session.scalars(sa.select(Event.id).where(Event.updated_at >= since).order_by(Event.updated_at)))
        if ids:
            self._hub.publish_threadsafe({"event_id": event_id} for event_id in ids)


# --- lifecycle -----------------------------------------------------------------------------------------------------


@dataclass
class Live:
    """The live machinery of one app: its hub, its listener (PostgreSQL) and how to undo the signal hooks."""

    hub: Hub
    key: str
    listener: Listener | None
    restore_signals: Callable[[], None]


async def start_live(*, settings: Settings, engine: Engine, session_factory: sessionmaker[Session]) -> Live:
    """Start the hub (and on PostgreSQL its listener) on the running loop; called from the app's lifespan."""
    hub = Hub(settings=settings, session_factory=session_factory, loop=asyncio.get_running_loop())
    hub.start()
    key = database_key(engine)
    with _HUBS_LOCK:
        _HUBS.setdefault(key, set()).add(hub)
    listener = None
    if engine.dialect.name == "postgresql":
        listener = Listener(hub=hub, engine=engine)
        listener.start()
        # Changes committed once the app answers must be heard: wait (bounded) for the LISTEN to be in place.
        await asyncio.to_thread(listener.connected.wait, 10.0)
    return Live(hub=hub, key=key, listener=listener, restore_signals=end_streams_on_exit(hub.close_threadsafe))


async def stop_live(live: Live) -> None:
    """Stop what start_live started: end every stream, stop the listener, forget the hub."""
    live.restore_signals()
    with _HUBS_LOCK:
        _HUBS.get(live.key, set()).discard(live.hub)
        if not _HUBS.get(live.key):
            _HUBS.pop(live.key, None)
    await live.hub.stop()
    if live.listener is not None:
        await asyncio.to_thread(live.listener.stop)
