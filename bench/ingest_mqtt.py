"""MQTT ingest through Mosquitto at QoS 1 with zero loss: `kotacerdas ingest` against a bare paho-to-paho relay.

Our own Mosquitto 2 on a free loopback port, configured as docs/mqtt.md says (`devices.mosquitto_conf`: no
per-client queue limit, persistence). A fresh SQLite database (the default install) with DEVICES devices of
READINGS Datastreams each. One publisher (paho, QoS 1, up to 1,000 messages in flight) in this process publishes
as fast as it can for DURATION seconds; the subscriber is another process, as in production:

1. baseline: a bare paho subscriber (QoS 1, automatic acknowledgements, counting only) on a plain topic;
2. `single`: `kotacerdas ingest` (a subprocess, its own engine, batches of 1,000 / 50 ms, acknowledged after
   commit), one observation per message on the SensorThings topic v1.1/Datastreams(ID)/Observations;
3. `batch50`: the same worker, 50 readings per message on the compact topic kotacerdas/{device_key_id}/up, offered
   at 1,500 messages (75,000 observations) a second.

A rate is messages (or observations) received and stored, divided by the time from the first publish to the last
one received or stored (the worker's kotacerdas_ingest_observations_total, read from its metrics port while it
runs). At the end every published message is counted in the database (zero loss: every PUBACK the publisher got is
an observation stored, exactly once).

Targets (issue 6): `single` ≥ 85 % of the baseline; `batch50` ≥ 50,000 observations/s; no loss anywhere.
The machine is shared: the load average before and after is recorded.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import write_result
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database
from kotacerdas.sensors.devices import issue_device_key, mosquitto_conf
from kotacerdas.sensors.models import Datastream, ObservedProperty, Sensor, Thing

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
DEVICES = 200
READINGS = 50
TARGET_RATIO = 0.85
TARGET_BATCH50_OBS_S = 50_000
INFLIGHT = 1000
START = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (folder / "mosquitto").mkdir()
    config = folder / "mosquitto.conf"
    config.write_text(mosquitto_conf(port=port, persistence_dir=f"{folder / 'mosquitto'}/"))
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


def seed(settings: Settings) -> list[tuple[str, list[int]]]:
    """DEVICES devices with READINGS Datastreams each; their key ids and Datastream ids."""
    engine = make_engine(settings)
    upgrade_database(engine)
    devices = []
    with make_sessionmaker(engine)() as session:
        sensor = Sensor(name="bench", encoding_type="application/pdf")
        prop = ObservedProperty(name="level", definition="http://example.org/level")
        session.add_all([sensor, prop])
        session.flush()
        for n in range(DEVICES):
            thing = Thing(name=f"bench {n}")
            session.add(thing)
            session.flush()
            streams = [
                Datastream(name=f"bench {n}.{k}", observation_type=MEASUREMENT, unit_of_measurement={"symbol": "cm"},
                           thing_id=thing.id, sensor_id=sensor.id, observed_property_id=prop.id)
                for k in range(READINGS)
            ]  # fmt: skip
            session.add_all(streams)
            session.flush()
            key = issue_device_key(session, thing_id=thing.id)
            devices.append((key.key_id, [stream.id for stream in streams]))
        session.commit()
    engine.dispose()
    return devices


def stored_count(settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            table = "sensor_observations_all" if settings.is_sqlite else "sensor_observations"
            return session.connection().exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    finally:
        engine.dispose()


class Publisher:
    """QoS 1 publisher at full speed, with a bounded number of messages in flight."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.infos: list = []

    def publish_for(self, seconds: float, make, max_rate: float | None = None) -> tuple[int, float]:
        """Publish make(n) → (topic, payload) for `seconds` (at most `max_rate` a second); how many, and when the
        first was sent."""
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < seconds:
            if max_rate is not None and n > max_rate * (time.monotonic() - began):
                time.sleep(0.005)
                continue
            for _ in range(200):
                topic, payload = make(n)
                self.infos.append(self.client.publish(topic, payload, qos=1))
                n += 1
            # paho keeps every message beyond the in-flight window in its own queue: keep it short, so that the
            # rate measured is the broker's and the subscriber's, not a backlog drained after the clock stops.
            while len(self.client._out_messages) > 4 * INFLIGHT:  # noqa: SLF001
                time.sleep(0.001)
        return n, began

    def acked(self) -> int:
        return sum(1 for info in self.infos if info.is_published())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _relay(port: int, topic: str, received: Any, ready: Any, last: Any) -> None:
    """The baseline subscriber process: paho, QoS 1, persistent session, counting only."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-relay", clean_session=False)

    def on_message(_client, _userdata, _message) -> None:
        received.value += 1
        last.value = time.time()

    client.on_message = on_message
    client.on_subscribe = lambda *_args: ready.set()
    client.on_connect = lambda c, *_args: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_forever()


def measure_baseline(port: int, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    received, last, ready = context.Value("q", 0, lock=False), context.Value("d", 0.0, lock=False), context.Event()
    relay = context.Process(target=_relay, args=(port, "bench/relay", received, ready, last), daemon=True)
    relay.start()
    ready.wait(10)
    publisher = Publisher(port)
    payload = orjson.dumps({"phenomenonTime": START.isoformat(), "result": 231.5})
    try:
        sent, began_mono = publisher.publish_for(seconds, lambda _n: ("bench/relay", payload))
        began = time.time() - (time.monotonic() - began_mono)
        deadline = time.monotonic() + 120
        while received.value < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        acked = publisher.acked()
    finally:
        publisher.close()
        relay.terminate()
        relay.join(5)
    elapsed = last.value - began
    return {"published": sent, "acked": acked, "received": received.value, "lost": sent - received.value,
            "seconds": round(elapsed, 2), "messages_per_s": round(received.value / elapsed, 1)}  # fmt: skip


def ingest_metric(metrics_port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("kotacerdas_ingest_observations_total "):
            return float(line.split()[1])
    return 0.0


def start_worker(settings: Settings, port: int, folder: Path, name: str) -> tuple[subprocess.Popen, int]:
    metrics_port = free_port()
    env = {
        **os.environ,
        "KOTACERDAS_DATABASE_URL": settings.database_url,
        "KOTACERDAS_DATA_DIR": str(settings.data_dir),
        "KOTACERDAS_SECRET_KEY": settings.secret_key,
        "KOTACERDAS_MQTT_PORT": str(port),
        "KOTACERDAS_MQTT_CLIENT_ID": f"bench-{name}",
        # A group per run: the session of the previous run's worker stays at the broker and, in the same group,
        # would be given its share of the messages (queued for it until it comes back).
        "KOTACERDAS_MQTT_SHARED_GROUP": f"bench{name}",
        "KOTACERDAS_WORKER_IN_APP": "false",
    }
    log = (folder / f"worker-{name}.log").open("wb")
    command = [sys.executable, "-c", "from kotacerdas.cli import main; main()", "ingest"]
    process = subprocess.Popen(
        [*command, "--metrics-port", str(metrics_port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    deadline = time.monotonic() + 30
    while b"ingest: subscribed" not in (folder / f"worker-{name}.log").read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((folder / f"worker-{name}.log").read_text())
        time.sleep(0.05)
    return process, metrics_port


def measure_ingest(
    settings: Settings, port: int, folder: Path, seconds: float, make, per_message: int, name: str,
    max_rate: float | None = None,
):  # fmt: skip
    before = stored_count(settings)
    worker, metrics_port = start_worker(settings, port, folder, name)
    publisher = Publisher(port)
    try:
        sent, began = publisher.publish_for(seconds, make, max_rate)
        expected = sent * per_message
        deadline = time.monotonic() + 180
        done_at = None
        while time.monotonic() < deadline:
            if ingest_metric(metrics_port) >= expected:
                done_at = time.monotonic()
                break
            time.sleep(0.02)
        acked = publisher.acked()
    finally:
        publisher.close()
        worker.terminate()
        worker.wait(30)
    stored = stored_count(settings) - before
    elapsed = (done_at or time.monotonic()) - began
    return {
        "published": sent, "acked": acked, "observations_expected": expected, "observations_stored": stored,
        "lost": expected - stored if stored < expected else 0, "duplicates": max(stored - expected, 0),
        "seconds": round(elapsed, 2), "messages_per_s": round(sent / elapsed, 1),
        "observations_per_s": round(stored / elapsed, 1),
    }  # fmt: skip


def run(quick: bool) -> bool:
    seconds = 5.0 if quick else 60.0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kc-bench-mqtt-") as tmp:
        folder = Path(tmp)
        settings = Settings(
            data_dir=folder / "data", database_url=f"sqlite:///{folder / 'ingest.db'}",
            secret_key="bench-secret-" + "x" * 32, worker_in_app=False, map_index_preload=False,
        )  # fmt: skip
        devices = seed(settings)
        broker, port = start_broker(folder)
        try:
            baseline = measure_baseline(port, seconds)

            def single(n: int) -> tuple[str, bytes]:
                _key, streams = devices[n % DEVICES]
                moment = (START + timedelta(seconds=n // DEVICES)).isoformat()
                return (f"v1.1/Datastreams({streams[n // DEVICES % READINGS]})/Observations",
                        orjson.dumps({"phenomenonTime": moment, "result": n % 1000 / 3}))  # fmt: skip

            def batch50(n: int) -> tuple[str, bytes]:
                key, streams = devices[n % DEVICES]
                moment = (START + timedelta(days=30, seconds=n // DEVICES)).isoformat()
                readings = {str(stream): (n + k) % 1000 / 3 for k, stream in enumerate(streams)}
                return f"kotacerdas/{key}/up", orjson.dumps({"t": moment, "r": readings, "battery": 80, "rssi": -70})

            single_figures = measure_ingest(settings, port, folder, seconds, single, 1, "single")
            # Offered at 1.5 times the target, so that the run's length stays bounded (unpaced, the publisher sends
            # 4,000 messages, 200,000 observations, a second) while the publisher is never what limits the rate.
            batch_figures = measure_ingest(
                settings, port, folder, seconds, batch50, READINGS, "batch50",
                max_rate=1.5 * TARGET_BATCH50_OBS_S / READINGS,
            )  # fmt: skip
        finally:
            broker.terminate()
            broker.wait(10)
    ratio = single_figures["messages_per_s"] / baseline["messages_per_s"] if baseline["messages_per_s"] else 0
    no_loss = baseline["lost"] == 0 and all(
        f["lost"] == 0 and f["duplicates"] == 0 for f in (single_figures, batch_figures)
    )
    passed = bool(no_loss and ratio >= TARGET_RATIO and batch_figures["observations_per_s"] >= TARGET_BATCH50_OBS_S)
    figures = {
        "seconds_per_run": seconds,
        "database": "sqlite",
        "devices": DEVICES,
        "datastreams": DEVICES * READINGS,
        "baseline_paho_relay_qos1": baseline,
        "single_observation_messages": {**single_figures, "ratio_to_baseline": round(ratio, 3)},
        "fifty_readings_per_message": batch_figures,
        "zero_loss": no_loss,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    write_result(
        "ingest_mqtt",
        figures,
        targets={"single_ratio_to_paho_relay": TARGET_RATIO, "fifty_readings_obs_per_s": TARGET_BATCH50_OBS_S,
                 "lost": 0, "duplicates": 0},
        passed=passed,
    )  # fmt: skip
    return passed


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
