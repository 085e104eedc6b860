"""The live stream: published changes reach Server-Sent Events subscribers of a real server, filtered, only after
commit, and on PostgreSQL every app process streams a change published through any of them."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from conftest import bearer, new_api_token, running_server
from kotacerdas.events import live, service, stream
from kotacerdas.events.models import Event

from .helpers import DESA, KECAMATAN, OTHER_KECAMATAN, act, activity, flood

STREAM = "/api/v1/events/stream"
WAIT_S = 15.0


def with_stream_route(app):
    """The app with the stream's route ahead of /api/v1/events/{event_id} (the app factory registers it so)."""
    if not any(getattr(route, "path", None) == STREAM for route in app.router.routes):
        app.router.routes[:0] = stream.router.routes
    return app


class Subscription:
    """An SSE client with its own event loop in a thread, as a browser's EventSource: its events arrive in a queue."""

    def __init__(self, base: str, params: dict | list | None = None, headers: dict | None = None) -> None:
        self.events: queue.Queue[ServerSentEvent | None] = queue.Queue()
        self.opened = threading.Event()
        self.response: httpx.Response | None = None
        self._base, self._params, self._headers = base, params, dict(headers or {})
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),), daemon=True)
        self._thread.start()
        assert self.opened.wait(WAIT_S), "the stream did not open"
        assert self.response is not None and self.response.status_code == 200, self.response

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        try:
            async with (
                httpx.AsyncClient(base_url=self._base, timeout=httpx.Timeout(5.0, read=None)) as client,
                aconnect_sse(client, "GET", STREAM, params=self._params, headers=self._headers) as source,
            ):
                self.response = source.response
                self.opened.set()
                async for sse in source.aiter_sse():
                    if sse.data:  # a browser dispatches no event for a block without data (the retry hint)
                        self.events.put(sse)
        except (asyncio.CancelledError, httpx.HTTPError):  # closed by the test, or the server went away
            pass
        finally:
            self.opened.set()
            self.events.put(None)  # the stream ended

    def next(self) -> ServerSentEvent:
        """The next event; fails when none arrives in time or the stream ended."""
        try:
            sse = self.events.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail("no event arrived on the stream")
        assert sse is not None, "the stream ended"
        return sse

    def next_view(self) -> dict:
        sse = self.next()
        assert sse.event == "event"
        return json.loads(sse.data)

    def ended(self, timeout: float = WAIT_S) -> bool:
        """True when the server ended the stream within `timeout` seconds (events before the end are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.events.get(timeout=max(0.01, deadline - time.monotonic())) is None:
                    return True
            except queue.Empty:
                return False
        return False

    def close(self) -> None:
        if self._thread.is_alive() and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5)


@contextmanager
def subscriptions(base: str, *params, headers: dict | None = None) -> Iterator[list[Subscription]]:
    opened = [Subscription(base, param, headers) for param in params]
    try:
        yield opened
    finally:
        # Clients leave first: a server waits for open responses before it stops.
        for subscription in opened:
            subscription.close()


@pytest.fixture
def server(app, seeded) -> Iterator[str]:
    with running_server(with_stream_route(app)) as base:
        yield base


def test_a_published_warning_arrives_with_its_public_view(server, session, settings, staff):
    with subscriptions(server, None) as (subscription,):
        event = service.raise_event(session, settings=settings, data=flood(), **act(staff("operator")))
        session.commit()
        sse = subscription.next()

    headers = subscription.response.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"
    assert sse.event == "event" and int(sse.id) >= 1
    view = json.loads(sse.data)
    assert (view["id"], view["title"], view["version"]) == (event.id, "Banjir Sungai Kelingi", 1)
    assert (view["level"]["label"], view["status"]["label"]) == ("Siaga", "Aktif")
    assert [area["code"] for area in view["areas"]] == [DESA]
    assert "created_by_id" not in view and "timeline" not in json.dumps(view["areas"])


def test_changes_through_the_api_arrive_in_order_in_each_language(server, session, staff):
    session.commit()
    headers = bearer(new_api_token(session, staff("operator")))
    body = {"category": "banjir", "level": "siaga", "title": "Banjir Sungai Kelingi", "description": "Air naik.",
            "region_codes": [DESA]}  # fmt: skip
    seen, seen_en = [], []
    with subscriptions(server, None, {"lang": "en"}) as (indonesian, english), httpx.Client(base_url=server) as api:
        created = api.post("/api/v1/events", json=body, headers=headers)
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]
        seen.append(indonesian.next()), seen_en.append(english.next_view())
        assert api.patch(f"/api/v1/events/{event_id}", json={"level": "awas"}, headers=headers).status_code == 200
        seen.append(indonesian.next()), seen_en.append(english.next_view())
        assert api.post(f"/api/v1/events/{event_id}/end", json={"note": "Surut."}, headers=headers).status_code == 200
        seen.append(indonesian.next()), seen_en.append(english.next_view())
        # Changes in quick succession may arrive as one: the event as it is after the last of them.
        burst = api.post("/api/v1/events", json=body | {"title": "Banjir kedua"}, headers=headers).json()
        api.post(f"/api/v1/events/{burst['id']}/cancel", json={}, headers=headers)
        last = indonesian.next_view()
        while last["id"] != burst["id"] or last["version"] != 2:
            last = indonesian.next_view()

    views = [json.loads(sse.data) for sse in seen]
    assert [(v["id"], v["version"], v["status"]["value"]) for v in views] == [
        (event_id, 1, "aktif"),
        (event_id, 2, "diperbarui"),
        (event_id, 3, "selesai"),
    ]
    assert [int(sse.id) for sse in seen] == sorted({int(sse.id) for sse in seen})
    assert [v["status"]["label"] for v in views] == ["Aktif", "Diperbarui", "Selesai"]
    assert [v["status"]["label"] for v in seen_en] == ["Active", "Updated", "Ended"]
    assert seen_en[1]["level"]["label"] == "Warning" and seen_en[0]["category"]["label"] == "Flood"
    assert last["status"]["label"] == "Dibatalkan"


def test_each_subscriber_gets_only_what_its_filters_match(server, session, settings, staff):
    operator = staff("operator")
    with subscriptions(
        server,
        {"kecamatan": KECAMATAN},  # the flood names a desa of this kecamatan
        {"desa": DESA},
        {"kecamatan": OTHER_KECAMATAN},
        [("kategori", "posyandu_vaksinasi"), ("kategori", "acara")],
        {"kategori": "tanah_longsor,banjir", "level_min": "awas"},
    ) as (by_kecamatan, by_desa, other_kecamatan, activities, severe):
        siaga = service.raise_event(session, settings=settings, data=flood(), **act(operator))
        posyandu = service.raise_event(session, settings=settings, data=activity(), **act(operator))
        awas = service.raise_event(session, settings=settings, data=flood(level="awas"), **act(operator))
        session.commit()

        assert [by_kecamatan.next_view()["id"] for _n in range(2)] == [siaga.id, awas.id]
        assert [by_desa.next_view()["id"] for _n in range(2)] == [siaga.id, awas.id]
        assert other_kecamatan.next_view()["id"] == posyandu.id
        assert activities.next_view()["id"] == posyandu.id
        assert severe.next_view()["id"] == awas.id
        # Nothing else came: a change that matches them all arrives next on each.
        last = service.raise_event(
            session, settings=settings, data=activity(category="acara", region_codes=[DESA, OTHER_KECAMATAN]),
            **act(operator),
        )  # fmt: skip
        session.commit()
        assert by_desa.next_view()["id"] == last.id and other_kecamatan.next_view()["id"] == last.id
        assert activities.next_view()["id"] == last.id


def test_a_rolled_back_change_and_a_draft_are_not_announced(server, session, settings, staff):
    operator = staff("operator")
    with subscriptions(server, None) as (subscription,):
        service.raise_event(session, settings=settings, data=flood(title="Tidak jadi"), **act(operator))
        session.rollback()
        settings.events_require_approval = True
        service.raise_event(session, settings=settings, data=flood(title="Menunggu persetujuan"), **act(operator))
        session.commit()
        settings.events_require_approval = False
        published = service.raise_event(session, settings=settings, data=flood(title="Terbit"), **act(operator))
        session.commit()

        view = subscription.next_view()

    assert (view["id"], view["title"]) == (published.id, "Terbit")


def test_a_reconnecting_browser_is_sent_what_it_missed_and_only_that(server, session, settings, staff):
    operator = staff("operator")
    with subscriptions(server, None) as (subscription,):
        seen = service.raise_event(session, settings=settings, data=flood(title="Dilihat"), **act(operator))
        session.commit()
        last_event_id = subscription.next().id
    # While the browser was away: one change in its filter, one outside it.
    missed = service.raise_event(session, settings=settings, data=flood(title="Terlewat"), **act(operator))
    service.raise_event(
        session, settings=settings, data=activity(title="Di kecamatan lain", region_codes=[OTHER_KECAMATAN]),
        **act(operator),
    )  # fmt: skip
    session.commit()

    params = {"kecamatan": KECAMATAN}
    with subscriptions(server, params, headers={"Last-Event-ID": last_event_id}) as (back,):
        view = back.next_view()
        with pytest.raises(queue.Empty):
            back.events.get(timeout=0.5)
    with subscriptions(server, params, headers={"Last-Event-ID": "not-ours"}) as (fresh,):
        nothing_replayed = fresh.events.empty()

    assert (view["id"], view["title"]) == (missed.id, "Terlewat") and seen.id != missed.id
    assert nothing_replayed


def test_idle_streams_get_a_heartbeat_and_bad_filters_a_problem(app, seeded, monkeypatch):
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.2)
    with running_server(with_stream_route(app)) as base, httpx.Client(base_url=base, timeout=10) as client:
        with client.stream("GET", STREAM) as response:
            first = []
            for line in response.iter_lines():
                first.append(line)
                if line == ": ping" or len(first) > 10:
                    break
        bad = client.get(STREAM, params={"level_min": "merah"})

    assert first[0].startswith("retry: ") and ": ping" in first
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_a_subscriber_that_cannot_keep_up_is_dropped_and_the_others_are_not(settings):
    async def scenario() -> tuple[bool, int, bool]:
        hub = live.Hub(settings=settings, session_factory=None, loop=asyncio.get_running_loop())
        slow, fast = hub.subscribe(live.StreamFilter()), hub.subscribe(live.StreamFilter())
        change = live.Change(1, frozenset(), "banjir", 2, (0, 0, 0, 0), {"id": b"{}"}, stamp=1)
        received = 0
        for _n in range(live.QUEUE_LIMIT + 5):
            hub._fan_out(change)
            received += (await fast.next_frame()) is not None
        ended = await slow.next_frame() is None
        await hub.stop()
        return ended, received, fast.closed

    ended, received, fast_closed_after_stop = asyncio.run(scenario())
    assert ended and received == live.QUEUE_LIMIT + 5 and fast_closed_after_stop


# --- several app processes on PostgreSQL ---------------------------------------------------------------------------


def test_every_app_process_streams_a_change_published_through_any(backend, settings, session, staff, tmp_path):
    if backend != "postgres":
        pytest.skip("several app processes share a database on PostgreSQL only")
    from bench.server import start_server, stop

    session.commit()
    headers = bearer(new_api_token(session, staff("operator")))
    servers = [start_server(settings, workers=1, log=tmp_path / f"server-{n}.log", timeout=60) for n in range(2)]
    try:
        bases = [f"http://127.0.0.1:{port}" for _process, port in servers]
        first, second = Subscription(bases[0]), Subscription(bases[1], {"kecamatan": KECAMATAN})
        try:
            # Published through the second process's API, and through the service on a third connection.
            body = {"category": "banjir", "level": "awas", "title": "Banjir lewat API", "description": "Air naik.",
                    "region_codes": [DESA]}  # fmt: skip
            created = httpx.post(f"{bases[1]}/api/v1/events", json=body, headers=headers, timeout=10)
            assert created.status_code == 201, created.text
            direct = service.raise_event(session, settings=settings, data=flood(), **act(staff("operator")))
            session.commit()

            for subscription in (first, second):
                views = [subscription.next_view() for _n in range(2)]
                assert [view["id"] for view in views] == [created.json()["id"], direct.id]
                assert views[0]["title"] == "Banjir lewat API" and views[1]["level"]["label"] == "Siaga"
            # Stopping a server ends its streams at once instead of waiting for the visitors to leave.
            began = time.monotonic()
            stop(servers[0][0], timeout=15)
            assert first.ended(timeout=5) and time.monotonic() - began < 10
        finally:
            first.close()
            second.close()
    finally:
        for process, _port in servers:
            stop(process)
    assert session.get(Event, direct.id) is not None
