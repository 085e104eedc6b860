"""Live sensor tiles on SQLite and PostgreSQL: a real server's /sensor/live stream sends each tile at once and a new
value after an observation is stored (by anyone: two app servers on one database both see it), ends when the server
stops and when the client leaves; one read per poll serves every stream; a stream that cannot keep up is dropped;
bad ids are refused."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from conftest import running_server
from kotacerdas.app import create_app
from kotacerdas.db import WRITE_OPTION, make_sessionmaker
from kotacerdas.sensors import live, readings, store
from kotacerdas.sensors import pages as sensor_pages
from kotacerdas.sensors.models import Datastream, ObservedProperty, Sensor, Thing
from kotacerdas.sensors.store import NewObservation

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture
def fast(settings):
    """The test's settings with a quick poll, so that a change shows within a fraction of a second."""
    return settings.model_copy(update={"sensor_live_poll_seconds": 0.2})


@pytest.fixture
def gauge(session) -> int:
    """A river gauge's Datastream with levels; its id."""
    thing = Thing(name="Pos duga air Musi", last_seen_at=datetime.now(UTC))
    sensor = Sensor(name="Radar", encoding_type="text/html")
    prop = ObservedProperty(name="Tinggi muka air", definition="https://example.org/water-level")
    session.add_all([thing, sensor, prop])
    session.flush()
    stream = Datastream(
        name="Tinggi muka air", observation_type=MEASUREMENT, unit_of_measurement={"symbol": "cm"},
        thing_id=thing.id, sensor_id=sensor.id, observed_property_id=prop.id,
        levels={"waspada": 250, "siaga": 300, "awas": 350},
    )  # fmt: skip
    session.add(stream)
    session.commit()
    return stream.id


def add(engine, settings, rows) -> None:
    with sa.orm.Session(engine) as session:
        session.connection(execution_options={WRITE_OPTION: True})
        store.add_observations(session, rows, settings=settings)
        session.commit()


class Stream:
    """An SSE stream read in a thread, its tile frames collected as they come."""

    def __init__(self, url: str) -> None:
        self.tiles: list[dict] = []
        self.ended = threading.Event()
        self.opened = threading.Event()
        self.status: int | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _read(self, url: str) -> None:
        try:
            with self._client.stream("GET", url) as response:
                self.status = response.status_code
                self.opened.set()
                event = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "tile":
                        self.tiles.append(json.loads(line[6:]))
                    elif not line:
                        event = None
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def wait_for(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for tile in list(self.tiles):
                if predicate(tile):
                    return tile
            time.sleep(0.02)
        raise AssertionError(f"no such tile within {timeout} s; got {self.tiles}")

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=10)


def test_stream_sends_the_tile_at_once_then_each_new_value(fast, engine, gauge):
    now = datetime.now(UTC)
    add(engine, fast, [NewObservation(gauge, now - timedelta(minutes=5), 280.0)])
    first_app, second_app = create_app(fast), create_app(fast)
    with running_server(first_app) as first, running_server(second_app, name="second-uvicorn") as second:
        streams = [Stream(f"{base}/sensor/live?datastreams={gauge}") for base in (first, second)]
        try:
            for stream in streams:
                assert stream.status == 200
                tile = stream.wait_for(lambda t: t["value"] == "280")
                assert tile["id"] == gauge and tile["level"] == "waspada" and tile["status"] == "Waspada"
                assert tile["unit"] == "cm" and tile["offline"] is False and tile["colour"] == "#f9a825"
                # Public texts only: a new field (a device key, the Thing's properties) must be added here on purpose.
                assert set(tile) == {
                    "id", "name", "thing_name", "property_name", "desa_name", "kecamatan_name", "value", "unit",
                    "time", "time_text", "level", "status", "colour", "offline", "device", "last_seen", "battery",
                    "signal",
                }  # fmt: skip

            # Stored by neither server (the ingest, another process): both see it, through the database.
            add(engine, fast, [NewObservation(gauge, now, 312.5)])
            for stream in streams:
                tile = stream.wait_for(lambda t: t["value"] == "312,5")
                assert tile["level"] == "siaga" and tile["colour"] == "#ef6c00"
                assert tile["time"] == now.isoformat().replace("+00:00", "Z")
            # An older observation arriving late changes nothing: no frame for it.
            count = len(streams[0].tiles)
            add(engine, fast, [NewObservation(gauge, now - timedelta(hours=1), 100.0)])
            time.sleep(1.0)
            assert len(streams[0].tiles) == count

            # The server stops: its hub ends every stream, which does not hang the shutdown.
            first_app.state.sensor_tiles.hub.close_threadsafe()
            assert streams[0].ended.wait(10)
            assert not streams[1].ended.is_set()
        finally:
            for stream in streams:
                stream.close()
        # The client that left is no longer a subscriber.
        hub = second_app.state.sensor_tiles.hub
        deadline = time.monotonic() + 10
        while hub.subscriber_count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.subscriber_count == 0 and hub.watched == 0


@pytest.mark.parametrize(
    ("query", "reason"),
    [("datastreams=1,x", "invalid_ids"), ("datastreams=,", "invalid_ids"), ("datastreams=0", "invalid_ids"),
     ("datastreams=" + ",".join(str(n) for n in range(1, 302)), "too_many")],
)  # fmt: skip
def test_bad_ids_are_refused_naming_the_parameter(client, query, reason):
    # A stream takes as many ids as the /sensor page shows tiles.
    assert sensor_pages.MAX_STREAM_IDS == readings.MAX_TILES == 300
    response = client.get(f"/sensor/live?{query}", headers={"Accept": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "datastreams", "reason": reason, "message": response.json()["errors"][0]["message"],
    }  # fmt: skip
    assert client.get("/sensor/live", headers={"Accept": "application/json"}).status_code == 422


def test_one_read_per_poll_serves_every_stream_and_a_slow_stream_is_dropped(fast, engine, gauge, monkeypatch):
    """The hub without a server: 200 streams of the same tile cost one read of one current value per poll."""
    monkeypatch.setattr(live, "QUEUE_LIMIT", 3)
    reads: list[list[int]] = []
    meta_reads: list[list[int]] = []
    read_meta = readings.read_meta

    def counting_meta(session, *, settings, datastream_ids):
        meta_reads.append(sorted(datastream_ids))
        return read_meta(session, settings=settings, datastream_ids=datastream_ids)

    monkeypatch.setattr(readings, "read_meta", counting_meta)

    async def scenario() -> None:
        hub = live.TileHub(settings=fast, session_factory=make_sessionmaker(engine), loop=asyncio.get_running_loop())
        original = hub._reader.read

        def counting(ids, fresh):
            reads.append(ids)
            return original(ids, fresh)

        hub._reader.read = counting
        hub.start()
        try:
            readers = [hub.subscribe([gauge, 999_999], "id") for _ in range(200)]
            slow = hub.subscribe([gauge], "en")
            assert hub.watched == 2 and hub.subscriber_count == 201
            # An unknown Datastream is simply never sent; the known one is sent at once to every stream.
            frames = [await asyncio.wait_for(reader.next_frame(), 5) for reader in readers]
            assert all(frame.startswith(b"event: tile\n") for frame in frames)
            polls = hub.polls
            base = datetime.now(UTC)
            for n in range(4):
                row = NewObservation(gauge, base + timedelta(seconds=n), 200.0 + n)
                await asyncio.to_thread(add, engine, fast, [row])
                for reader in readers:
                    frame = await asyncio.wait_for(reader.next_frame(), 5)
                    assert f'"value":"{200 + n}"'.encode() in frame
            # Every poll read the two watched ids once, whatever the number of streams.
            assert all(ids == [gauge, 999_999] for ids in reads)
            assert len(reads) == hub.polls >= polls + 4
            # The names, levels and health are read once (again only every 30 s), not at every poll, though one of
            # the ids has no Datastream.
            assert meta_reads == [[gauge, 999_999]]
            # The stream that read nothing overflowed its queue of 3 and was dropped: it ends, the others go on.
            assert slow.closed and hub.dropped == 1 and hub.subscriber_count == 200
            assert await slow.next_frame() is None
        finally:
            await hub.stop()
        assert all(reader.closed for reader in readers) and hub.subscriber_count == 0

    asyncio.run(scenario())


def test_english_stream(fast, engine, gauge):
    add(engine, fast, [NewObservation(gauge, datetime.now(UTC), 1234.5)])
    app = create_app(fast)
    with running_server(app) as url:
        stream = Stream(f"{url}/sensor/live?datastreams={gauge}&lang=en")
        try:
            tile = stream.wait_for(lambda t: t["value"] == "1,234.5")
            assert tile["status"] == "Warning" and tile["device"] == "Online"
        finally:
            app.state.sensor_tiles.hub.close_threadsafe()
            stream.close()
