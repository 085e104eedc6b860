"""MQTT ingest through a real Mosquitto (our own, started per module with the configuration of docs/mqtt.md): both
topic formats stored, device health, dead letters with reasons and counters, a device writing to another device's
Datastream refused, de-duplication of redelivered messages, the crash test (SIGKILL mid-stream, restart, every
acknowledged message stored exactly once) and two workers sharing a subscription."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa

from conftest import free_port
from kotacerdas.config import Settings
from kotacerdas.db import make_sessionmaker, utcnow
from kotacerdas.middleware import Metrics
from kotacerdas.sensors import store
from kotacerdas.sensors.devices import issue_device_key, mosquitto_conf
from kotacerdas.sensors.ingest import IngestWorker, Message, run_ingest
from kotacerdas.sensors.messages import CATEGORY, MEASUREMENT
from kotacerdas.sensors.models import Datastream, DeadLetter, ObservedProperty, Sensor, Thing

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


# --- the broker ----------------------------------------------------------------------------------------------------


@dataclass
class Broker:
    port: int
    process: subprocess.Popen


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Our own Mosquitto on a free loopback port, configured as docs/mqtt.md says (persistent, no queue limit)."""
    folder = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(mosquitto_conf(port=port, persistence_dir=f"{folder}/"))
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), timeout=10, what="mosquitto to listen")
        yield Broker(port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def ingest_settings(settings: Settings, broker: Broker) -> Settings:
    """The test's settings pointed at our broker, with a shared-subscription group of its own (persistent sessions
    of earlier tests stay in the broker and must not take this test's messages)."""
    return settings.model_copy(
        update={"mqtt_port": broker.port, "mqtt_shared_group": "t" + uuid.uuid4().hex[:8], "ingest_batch_ms": 20}
    )


class Publisher:
    """A device-side paho client publishing at QoS 1; `acked` holds the payloads the broker acknowledged."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub-" + uuid.uuid4().hex[:8])
        self.client.max_inflight_messages_set(200)
        self.sent: list[tuple[mqtt.MQTTMessageInfo, bytes]] = []
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    @property
    def acked(self) -> list[bytes]:
        return [payload for info, payload in self.sent if info.is_published()]

    def send(self, topic: str, payload: dict | bytes | str) -> None:
        data = orjson.dumps(payload) if isinstance(payload, dict) else payload
        data = data.encode() if isinstance(data, str) else data
        self.sent.append((self.client.publish(topic, data, qos=1), data))

    def wait_acked(self, count: int, timeout: float = 30) -> None:
        wait_for(lambda: len(self.acked) >= count, timeout=timeout, what=f"{count} PUBACKs")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    publisher = Publisher(broker.port)
    yield publisher
    publisher.close()


@contextmanager
def running_worker(settings: Settings, engine, *, client_id: str | None = None, metrics: Metrics | None = None):
    """The ingest worker in a thread of the test, subscribed before this yields; stopped after."""
    stop, ready = threading.Event(), threading.Event()
    holder: dict = {}

    def target() -> None:
        holder["worker"] = run_ingest(
            settings, stop_event=stop, session_factory=make_sessionmaker(engine), metrics=metrics,
            client_id=client_id or "w-" + uuid.uuid4().hex[:8], ready=ready,
        )  # fmt: skip

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the ingest worker did not subscribe"
        yield holder
    finally:
        stop.set()
        thread.join(timeout=15)


# --- data ----------------------------------------------------------------------------------------------------------


@dataclass
class Device:
    thing_id: int
    key_id: str
    datastreams: list[int]


def make_device(session, name: str, *, kinds: tuple[str, ...] = (MEASUREMENT,), short_names=()) -> Device:
    """A Thing with a device key and one Datastream per kind (committed)."""
    thing = Thing(name=name)
    sensor = Sensor(name=f"{name} sensor", encoding_type="application/pdf")
    prop = ObservedProperty(name="Water level", definition="http://example.org/water-level")
    session.add_all([thing, sensor, prop])
    session.flush()
    datastreams = []
    for index, kind in enumerate(kinds):
        properties = {"short_name": short_names[index]} if index < len(short_names) else None
        datastream = Datastream(
            name=f"{name} {index}", observation_type=kind, unit_of_measurement={"symbol": "cm"}, thing_id=thing.id,
            sensor_id=sensor.id, observed_property_id=prop.id, properties=properties,
        )  # fmt: skip
        session.add(datastream)
        session.flush()
        datastreams.append(datastream.id)
    key = issue_device_key(session, thing_id=thing.id)
    session.commit()
    return Device(thing.id, key.key_id, datastreams)


def stored_rows(engine) -> list[tuple[int, datetime, object]]:
    """Every stored observation as (datastream, phenomenonTime, result)."""
    with make_sessionmaker(engine)() as session:
        return store.all_observations_for_tests(session)


def wait_stored(engine, count: int, timeout: float = 30) -> list:
    return wait_for(lambda: (rows := stored_rows(engine)) and len(rows) >= count and rows, timeout=timeout,
                    what=f"{count} stored observations")  # fmt: skip


def dead_letters(session) -> list[DeadLetter]:
    session.rollback()
    return list(session.scalars(sa.select(DeadLetter).order_by(DeadLetter.id)))


# --- the tests -----------------------------------------------------------------------------------------------------


def test_both_topic_formats_store_observations_and_health(ingest_settings, engine, session, publisher):
    gauge = make_device(session, "Pos Musi", kinds=(MEASUREMENT, MEASUREMENT), short_names=("level", "rain"))
    with running_worker(ingest_settings, engine):
        publisher.send(
            f"v1.1/Datastreams({gauge.datastreams[0]})/Observations",
            {"phenomenonTime": "2026-11-29T04:00:00Z", "result": 231.5, "resultTime": "2026-11-29T04:00:02Z"},
        )
        publisher.send(
            f"kotacerdas/{gauge.key_id}/up",
            {"t": "2026-11-29T05:00:00Z", "r": {"level": 240.0, str(gauge.datastreams[1]): 1.5}, "battery": 87,
             "rssi": -71},
        )  # fmt: skip
        rows = wait_stored(engine, 3)
    assert sorted(rows, key=lambda row: (row[1], row[0])) == [
        (gauge.datastreams[0], datetime(2026, 11, 29, 4, tzinfo=UTC), 231.5),
        (gauge.datastreams[0], datetime(2026, 11, 29, 5, tzinfo=UTC), 240.0),
        (gauge.datastreams[1], datetime(2026, 11, 29, 5, tzinfo=UTC), 1.5),
    ]
    session.rollback()
    thing = session.get(Thing, gauge.thing_id, populate_existing=True)
    assert thing.battery_percent == 87 and thing.signal_dbm == -71
    assert utcnow() - thing.last_seen_at < timedelta(minutes=1)


def test_bad_messages_become_dead_letters_and_the_worker_goes_on(ingest_settings, engine, session, publisher):
    gauge = make_device(session, "Pos Kelingi", kinds=(MEASUREMENT, CATEGORY), short_names=("level", "state"))
    other = make_device(session, "Pos Lakitan")
    level = f"v1.1/Datastreams({gauge.datastreams[0]})/Observations"
    bad = [
        (level, b'{"result": 1', "malformed_json"),
        (level, b'{"result": NaN}', "not_finite"),
        (level, b'{"result": "tinggi"}', "wrong_result_type"),
        (level, b'{"result": 1, "phenomenonTime": "2030-01-01T00:00:00Z"}', "future_time"),
        ("v1.1/Datastreams(999999)/Observations", b'{"result": 1}', "unknown_datastream"),
        (level, b'{"result": 1, "x": "' + b"x" * 70_000 + b'"}', "oversized"),
        (f"kotacerdas/{gauge.key_id}/up", orjson.dumps({"r": {str(other.datastreams[0]): 5}}), "not_owner"),
        ("kotacerdas/dunknown/up", b'{"r": {"1": 1}}', "unknown_device"),
    ]
    metrics = Metrics()
    with running_worker(ingest_settings, engine, metrics=metrics):
        for index, (topic, payload, _code) in enumerate(bad):
            publisher.send(level, {"phenomenonTime": (T0 + timedelta(minutes=index)).isoformat(), "result": index})
            publisher.send(topic, payload)
        publisher.send(f"kotacerdas/{gauge.key_id}/up", {"t": T0.isoformat(), "r": {"state": "normal"}})
        wait_stored(engine, len(bad) + 1)
        wait_for(lambda: len(dead_letters(session)) >= len(bad), timeout=10, what="the dead letters")
    letters = dead_letters(session)
    assert [letter.reason.split(":")[0] for letter in letters] == [code for _t, _p, code in bad]
    assert all(letter.channel == "mqtt" and letter.reason.split(": ", 1)[1] for letter in letters)
    assert letters[2].payload == '{"result": "tinggi"}' and letters[2].thing_id == gauge.thing_id
    assert len(letters[5].payload) == 4096  # the first 4 KB of what came
    assert letters[6].thing_id == gauge.thing_id and f"Thing {other.thing_id}" in letters[6].reason
    # Nothing of the other device's Datastream was stored.
    assert other.datastreams[0] not in {row[0] for row in stored_rows(engine)}
    registry = metrics.registry
    assert registry.get_sample_value("kotacerdas_ingest_observations_total") == len(bad) + 1
    for _topic, _payload, code in bad:
        assert registry.get_sample_value("kotacerdas_ingest_dead_letters_total", {"reason": code}) == 1


def test_metrics_endpoint_shows_the_ingest_counters(settings):
    from fastapi.testclient import TestClient

    from kotacerdas.app import create_app

    app = create_app(settings)
    app.state.metrics.ingest_dead_letters.labels("malformed_json").inc()
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'kotacerdas_ingest_dead_letters_total{reason="malformed_json"} 1.0' in text
    assert "kotacerdas_ingest_observations_total 0.0" in text


def test_redelivered_messages_are_stored_once(ingest_settings, engine, session):
    gauge = make_device(session, "Pos Beliti")
    topic = f"v1.1/Datastreams({gauge.datastreams[0]})/Observations"
    acked: list[int] = []
    worker = IngestWorker(
        ingest_settings, session_factory=make_sessionmaker(engine), ack=lambda mid, _qos: acked.append(mid)
    )
    worker.reload_directory()

    def message(mid: int, minute: int, dup: bool) -> Message:
        payload = orjson.dumps({"phenomenonTime": (T0 + timedelta(minutes=minute)).isoformat(), "result": minute})
        return Message(mid, 1, topic, payload, dup, utcnow())

    first = worker.handle([message(1, 0, False), message(2, 1, False)])
    # The broker sends both again (the PUBACKs were lost in a crash), with a new one, and once more in one batch.
    again = worker.handle([message(1, 0, True), message(2, 1, True), message(3, 2, False), message(3, 2, True)])
    assert (first.observations, again.observations, again.duplicates) == (2, 1, 3)
    assert acked == [1, 2, 1, 2, 3, 3]
    assert sorted(row[2] for row in stored_rows(engine)) == [0, 1, 2]


def test_two_workers_split_a_shared_subscription(ingest_settings, engine, session, publisher):
    gauges = [make_device(session, f"Pos {n}") for n in range(4)]
    count = 2000
    with running_worker(ingest_settings, engine) as one, running_worker(ingest_settings, engine) as two:
        for n in range(count):
            gauge = gauges[n % 4]
            publisher.send(
                f"kotacerdas/{gauge.key_id}/up",
                {"t": (T0 + timedelta(seconds=n)).isoformat(), "r": {str(gauge.datastreams[0]): n}},
            )
        publisher.wait_acked(count)
        wait_stored(engine, count, timeout=40)
    rows = stored_rows(engine)
    assert len(rows) == count and sorted(row[2] for row in rows) == list(range(count))
    assert one["worker"].stored > 0 and two["worker"].stored > 0
    assert one["worker"].stored + two["worker"].stored == count


def test_crash_kill_mid_stream_restart_every_acknowledged_message_stored_once(
    ingest_settings, engine, session, publisher, tmp_path: Path
):
    gauges = [make_device(session, f"Pos {n}") for n in range(10)]
    total = 5000
    env = {
        **os.environ,
        "KOTACERDAS_DATABASE_URL": ingest_settings.database_url,
        "KOTACERDAS_DATA_DIR": str(ingest_settings.data_dir),
        "KOTACERDAS_SECRET_KEY": ingest_settings.secret_key,
        "KOTACERDAS_MQTT_PORT": str(ingest_settings.mqtt_port),
        "KOTACERDAS_MQTT_SHARED_GROUP": ingest_settings.mqtt_shared_group,
        "KOTACERDAS_MQTT_CLIENT_ID": "crash-" + uuid.uuid4().hex[:8],
        "KOTACERDAS_INGEST_BATCH_SIZE": "200",
        "KOTACERDAS_WORKER_IN_APP": "false",
    }

    def start(log_name: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / log_name
        handle = log.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", "from kotacerdas.cli import main; main()", "ingest"],
            env=env, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
        handle.close()
        wait_for(lambda: b"ingest: subscribed" in log.read_bytes() or process.poll() is not None, timeout=20,
                 what="the worker to subscribe")  # fmt: skip
        assert process.poll() is None, log.read_text()
        return process, log

    def publish(numbers) -> None:
        for n in numbers:
            gauge = gauges[n % len(gauges)]
            if n % 2:
                topic, body = f"kotacerdas/{gauge.key_id}/up", {"t": (T0 + timedelta(seconds=n)).isoformat(),
                                                                "r": {str(gauge.datastreams[0]): n}}  # fmt: skip
            else:
                topic = f"v1.1/Datastreams({gauge.datastreams[0]})/Observations"
                body = {"phenomenonTime": (T0 + timedelta(seconds=n)).isoformat(), "result": n}
            publisher.send(topic, body)

    process, _log = start("first.log")
    try:
        publish(range(total // 2))
        # Killed while it is storing: some batches committed, some in hand, some still at the broker.
        wait_for(lambda: len(stored_rows(engine)) >= 500, timeout=30, what="the first batches")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        stored_at_kill = len(stored_rows(engine))
        publish(range(total // 2, total))  # the broker keeps them for the worker's persistent session
        publisher.wait_acked(total)
        process, log = start("second.log")
        rows = wait_stored(engine, total, timeout=40)
        time.sleep(0.5)  # anything more (a duplicate) would arrive now
        rows = stored_rows(engine)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert stored_at_kill < total
    assert len(publisher.acked) == total
    results = sorted(row[2] for row in rows)
    assert results == list(range(total)), "every acknowledged message stored exactly once"
    assert len({(row[0], row[1]) for row in rows}) == total


def test_a_retired_worker_stores_its_queue_and_leaves_the_group(ingest_settings, engine, session, publisher):
    gauge = make_device(session, "Pos Rawas")
    topic = f"v1.1/Datastreams({gauge.datastreams[0]})/Observations"

    def send(numbers) -> None:
        for n in numbers:
            publisher.send(topic, {"phenomenonTime": (T0 + timedelta(seconds=n)).isoformat(), "result": n})

    leaving = "leaving-" + uuid.uuid4().hex[:8]
    with running_worker(ingest_settings, engine, client_id=leaving):
        pass  # subscribed, then stopped: its session stays in the group and is given a share while offline
    with running_worker(ingest_settings, engine):
        send(range(200))
        publisher.wait_acked(200)
        time.sleep(0.5)
        assert len(stored_rows(engine)) < 200  # the offline session's share waits for it
        stop, unsubscribed = threading.Event(), threading.Event()
        retired = run_ingest(
            ingest_settings, stop_event=stop, session_factory=make_sessionmaker(engine), client_id=leaving,
            ready=unsubscribed, retire=True,
        )  # fmt: skip
        assert retired.stored > 0 and len(stored_rows(engine)) == 200
        send(range(200, 300))  # the group is the remaining worker alone now
        rows = wait_stored(engine, 300, timeout=20)
    assert sorted(row[2] for row in rows) == list(range(300))


def test_a_message_the_store_refuses_does_not_hold_back_the_rest_of_its_batch(ingest_settings, engine, session):
    gauge = make_device(session, "Pos Megang", kinds=(MEASUREMENT, MEASUREMENT))
    worker = IngestWorker(ingest_settings, session_factory=make_sessionmaker(engine), ack=lambda _mid, _qos: None)
    worker.reload_directory()
    # The second Datastream is deleted after the worker read its directory: only the insert finds out.
    session.execute(sa.delete(Datastream).where(Datastream.id == gauge.datastreams[1]))
    session.commit()
    store.forget_datastreams(engine)

    def message(mid: int, datastream_id: int) -> Message:
        payload = orjson.dumps({"phenomenonTime": (T0 + timedelta(minutes=mid)).isoformat(), "result": mid})
        return Message(mid, 1, f"v1.1/Datastreams({datastream_id})/Observations", payload, False, utcnow())

    result = worker.handle([message(1, gauge.datastreams[0]), message(2, gauge.datastreams[1]),
                            message(3, gauge.datastreams[0])])  # fmt: skip
    assert result.observations == 2
    assert sorted(row[2] for row in stored_rows(engine)) == [1, 3]
    [letter] = dead_letters(session)
    assert letter.reason.startswith("store_error: ") and f"Datastreams({gauge.datastreams[1]})" in letter.topic
