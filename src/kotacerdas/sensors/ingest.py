"""The MQTT ingest worker (`kotacerdas ingest`, or a thread of `serve` with KOTACERDAS_INGEST_IN_APP).

It subscribes at QoS 1 with a persistent session (MQTT 5, a fixed client id, clean start off, a session that does not
expire) through a shared subscription (`$share/<group>/…`), so several workers split the messages. Messages are
acknowledged by hand, only after the transaction holding them committed:

1. the network thread queues each message; the worker thread takes a batch (up to `ingest_batch_size` messages, or
   what came within `ingest_batch_ms` of the first);
2. each message is read and checked on its own (sensors.messages): a bad one becomes a dead letter with its reason;
3. one transaction: the good messages' observations (sensors.store.add_observations), the devices' health, the
   dead letters; commit; then PUBACK for every message of the batch.

If the process dies before the commit, the broker sends the unacknowledged messages again (flagged DUP) when the
worker reconnects: a redelivered message whose (datastream, phenomenonTime) is already stored is skipped, so an
acknowledged observation is stored once. Only DUP-flagged messages are looked up, so the common path does not
query. If the batch insert fails anyway, the batch is retried one message at a time and the message that fails
becomes a dead letter; if the database is unreachable nothing is acknowledged and the batch is tried again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.config import Settings
from kotacerdas.db import WRITE_OPTION, make_engine, make_sessionmaker, utcnow
from kotacerdas.sensors import store
from kotacerdas.sensors.devices import record_health
from kotacerdas.sensors.messages import (
    DatastreamInfo,
    DeviceInfo,
    Directory,
    Health,
    Parsed,
    Refused,
    parse_message,
)
from kotacerdas.sensors.models import Datastream, DeadLetter, Thing
from kotacerdas.sensors.store import NewObservation, StoreError

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from kotacerdas.middleware import Metrics

log = logging.getLogger("kotacerdas.ingest")

# How often the directory of Datastreams and devices is read again, and at most how often a message naming one
# that is not in it makes the worker look again before refusing it.
DIRECTORY_MAX_AGE_S = 60.0
DIRECTORY_RETRY_S = 2.0
# The first bytes of a refused message kept in its dead letter.
DEAD_LETTER_PAYLOAD = 4096
# A broker session that outlives the worker (MQTT 5 session expiry, seconds): 0xFFFFFFFF never expires.
SESSION_EXPIRY_S = 0xFFFFFFFF
# A Thing's last_seen_at is written at most this often by one worker (its battery and signal whenever they change).
HEALTH_EVERY_S = 10.0
# A retiring worker ends its session once no message came for this long after it unsubscribed.
RETIRE_QUIET_S = 3.0
# Wait before trying a batch again when the database does not answer.
DATABASE_RETRY_S = 2.0


def subscriptions(settings: Settings) -> list[str]:
    """The topic filters the worker subscribes to: shared among the workers of one group unless the group is empty."""
    filters = ["v1.1/+/Observations", "kotacerdas/+/up"]
    group = settings.mqtt_shared_group
    return [f"$share/{group}/{topic}" for topic in filters] if group else filters


@dataclass(slots=True)
class Message:
    """A message as received, waiting for its batch."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    dup: bool
    received_at: datetime


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    messages: int = 0
    observations: int = 0
    duplicates: int = 0
    dead_letters: list[tuple[Message, Refused]] = field(default_factory=list)


def load_directory(session: Session) -> Directory:
    """Every Datastream (id, Thing, observationType, short name) and every device key id, for parsing messages."""
    directory = Directory()
    rows = session.execute(
        sa.select(Datastream.id, Datastream.thing_id, Datastream.observation_type, Datastream.properties)
    ).all()
    keys = dict(session.execute(sa.select(Thing.id, Thing.device_key_id).where(Thing.device_key_id.is_not(None))).all())
    devices = {thing_id: DeviceInfo(thing_id) for thing_id in keys}
    for datastream_id, thing_id, observation_type, properties in rows:
        directory.datastreams[datastream_id] = DatastreamInfo(datastream_id, thing_id, observation_type)
        device = devices.get(thing_id)
        if device is None:
            continue
        device.datastreams[str(datastream_id)] = datastream_id
        short_name = (properties or {}).get("short_name")
        if isinstance(short_name, str) and short_name and not short_name.isdecimal():
            device.datastreams.setdefault(short_name, datastream_id)
    directory.devices = {keys[thing_id]: device for thing_id, device in devices.items()}
    return directory


class IngestWorker:
    """Reads batches of queued MQTT messages, stores them in one transaction, then acknowledges them."""

    def __init__(
        self,
        settings: Settings,
        *,
        session_factory: sessionmaker[Session],
        metrics: Metrics | None = None,
        ack: Any = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.metrics = metrics
        # ack(mid, qos) after commit; the MQTT client's, or a test's.
        self.ack = ack
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.directory = Directory()
        self._directory_at = -1e9
        self.stored = 0
        # Thing id → (when its health was last written, battery, signal): see HEALTH_EVERY_S.
        self._health_written: dict[int, tuple[float, float | None, float | None]] = {}

    # --- the batch loop ------------------------------------------------------------------------------------------

    def next_batch(self, *, wait_s: float) -> list[Message]:
        """The next batch: waits up to `wait_s` for a first message, then takes what comes within the batch time."""
        try:
            first = self.inbox.get(timeout=wait_s)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.settings.ingest_batch_size
        deadline = time.monotonic() + self.settings.ingest_batch_ms / 1000
        while len(batch) < limit:
            try:
                batch.append(self.inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def run(self, stop_event: threading.Event) -> None:
        """Store batches until `stop_event` is set; a batch in hand is finished first."""
        while not stop_event.is_set():
            batch = self.next_batch(wait_s=0.2)
            if batch:
                self.handle_with_retry(batch, stop_event)

    def handle_with_retry(self, batch: list[Message], stop_event: threading.Event) -> BatchResult | None:
        """Handle a batch; while the database does not answer, wait and try again (nothing is acknowledged)."""
        while True:
            try:
                return self.handle(batch)
            except (sa.exc.OperationalError, sa.exc.InterfaceError):
                log.exception("ingest: the database failed; the batch of %d messages is tried again", len(batch))
                if stop_event.wait(DATABASE_RETRY_S):
                    return None

    def handle(self, batch: Sequence[Message]) -> BatchResult:
        """Check, store and commit a batch, then acknowledge its messages."""
        self._refresh_directory_if_old()
        result = BatchResult(messages=len(batch))
        good: list[tuple[Message, Parsed]] = []
        for message in batch:
            try:
                good.append((message, self._parse(message)))
            except Refused as refused:
                result.dead_letters.append((message, refused))
            except (sa.exc.OperationalError, sa.exc.InterfaceError):
                raise  # the database (reading the directory again), not the message: the batch is retried
            except Exception as error:  # a message no rule foresaw must not stop the worker (nor come back forever)
                log.exception("ingest: a message on %s could not be read", message.topic[:200])
                result.dead_letters.append((message, Refused("invalid", f"unreadable ({type(error).__name__})")))
        try:
            self._store(good, result)
        except (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError, StoreError) as error:
            log.warning("ingest: the batch insert failed (%s); storing its messages one at a time", error)
            result = self._store_one_by_one(batch, good, result)
        self._count(result)
        if self.ack is not None:
            for message in batch:
                self.ack(message.mid, message.qos)
        return result

    def _parse(self, message: Message) -> Parsed:
        try:
            return parse_message(
                message.topic, message.payload, directory=self.directory, received_at=message.received_at
            )
        except Refused as refused:
            # A Datastream or device added since the directory was read: look again (not on every bad message).
            if refused.code in ("unknown_datastream", "unknown_device", "not_owner") and self._may_reload():
                return parse_message(
                    message.topic, message.payload, directory=self.directory, received_at=message.received_at
                )
            raise

    def _store(self, good: list[tuple[Message, Parsed]], result: BatchResult) -> None:
        with self.session_factory() as session:
            self._begin_writing(session)
            rows, healths = self._rows(session, good, result)
            if rows:
                store.add_observations(session, rows, settings=self.settings)
            healths = self._health_due(healths)
            self._update_health(session, healths)
            self._dead_letters(session, result.dead_letters)
            session.commit()
        result.observations += len(rows)
        now = time.monotonic()
        for health in healths:
            self._health_written[health.thing_id] = (now, health.battery_percent, health.signal_dbm)

    def _store_one_by_one(
        self, batch: Sequence[Message], good: list[tuple[Message, Parsed]], first: BatchResult
    ) -> BatchResult:
        result = BatchResult(messages=len(batch), dead_letters=list(first.dead_letters))
        for message, parsed in good:
            single = BatchResult()
            try:
                self._store([(message, parsed)], single)
            except (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError, StoreError) as error:
                detail = " ".join(str(getattr(error, "orig", None) or error).split())[:400]
                result.dead_letters.append((message, Refused("store_error", detail, thing_id=parsed.thing_id)))
            else:
                result.observations += single.observations
                result.duplicates += single.duplicates
        # The dead letters: of the messages refused before the insert and of those the store refused.
        with self.session_factory() as session:
            self._begin_writing(session)
            self._dead_letters(session, result.dead_letters)
            session.commit()
        return result

    # --- pieces of the transaction ---------------------------------------------------------------------------------

    def _begin_writing(self, session: Session) -> None:
        # On SQLite the transaction takes the writer queue at BEGIN (db.py); elsewhere this only opens it.
        session.connection(execution_options={WRITE_OPTION: True})

    def _rows(self, session: Session, good: list[tuple[Message, Parsed]], result: BatchResult) -> tuple[list, list]:
        redelivered = [row for message, parsed in good if message.dup and parsed.timed for row in parsed.readings]
        stored = self._existing(session, redelivered) if redelivered else set()
        # Keys of this batch, kept only when a redelivered message is in it (the broker may send the first copy
        # and the DUP copy in one batch).
        seen: set[tuple[int, Any]] | None = set() if redelivered else None
        rows: list[NewObservation] = []
        healths: dict[int, Health] = {}
        for message, parsed in good:
            if seen is None:
                rows += parsed.readings
            else:
                for row in parsed.readings:
                    key = (row.datastream_id, row.phenomenon_time)
                    if message.dup and parsed.timed and (key in stored or key in seen):
                        result.duplicates += 1
                        continue
                    seen.add(key)
                    rows.append(row)
            health = parsed.health
            if health is not None:
                earlier = healths.get(health.thing_id)
                healths[health.thing_id] = _merge_health(earlier, health)
        return rows, list(healths.values())

    def _existing(self, session: Session, rows: Iterable[NewObservation]) -> set[tuple[int, Any]]:
        """Which (datastream, phenomenonTime) of redelivered observations are stored already."""
        return set(store.existing_keys(session, {(row.datastream_id, row.phenomenon_time) for row in rows}))

    def _health_due(self, healths: list[Health]) -> list[Health]:
        """The health reports worth an UPDATE: a Thing's first, a changed battery or signal, or HEALTH_EVERY_S since
        the last one (a device sending every second would otherwise cost an UPDATE per batch)."""
        now = time.monotonic()
        due = []
        for health in healths:
            written = self._health_written.get(health.thing_id)
            if (
                written is None
                or now - written[0] >= HEALTH_EVERY_S
                or (health.battery_percent is not None and health.battery_percent != written[1])
                or (health.signal_dbm is not None and health.signal_dbm != written[2])
            ):
                due.append(health)
        return due

    def _update_health(self, session: Session, healths: list[Health]) -> None:
        record_health(session, healths)

    def _dead_letters(self, session: Session, refused: list[tuple[Message, Refused]]) -> None:
        if not refused:
            return
        session.connection().execute(
            sa.insert(DeadLetter),
            [
                {
                    "received_at": message.received_at,
                    "channel": "mqtt",
                    "topic": message.topic[:300],
                    "thing_id": why.thing_id,
                    "reason": why.reason,
                    "payload": shown_payload(message.payload),
                }
                for message, why in refused
            ],
        )

    # --- the rest -----------------------------------------------------------------------------------------------

    def _count(self, result: BatchResult) -> None:
        self.stored += result.observations
        for message, why in result.dead_letters:
            log.info("ingest: refused a message on %s: %s", message.topic[:200], why.reason)
        if result.duplicates:
            log.info("ingest: skipped %d redelivered observations already stored", result.duplicates)
        if self.metrics is None:
            return
        if result.observations:
            self.metrics.ingest_observations.inc(result.observations)
        for _message, why in result.dead_letters:
            self.metrics.ingest_dead_letters.labels(why.code).inc()

    def _refresh_directory_if_old(self) -> None:
        if time.monotonic() - self._directory_at > DIRECTORY_MAX_AGE_S:
            self.reload_directory()

    def _may_reload(self) -> bool:
        if time.monotonic() - self._directory_at < DIRECTORY_RETRY_S:
            return False
        self.reload_directory()
        return True

    def reload_directory(self) -> None:
        """Read the Datastreams and device keys again."""
        with self.session_factory() as session:
            self.directory = load_directory(session)
        self._directory_at = time.monotonic()


def _merge_health(earlier: Health | None, later: Health) -> Health:
    if earlier is None:
        return later
    return Health(
        later.thing_id,
        max(earlier.seen_at, later.seen_at),
        later.battery_percent if later.battery_percent is not None else earlier.battery_percent,
        later.signal_dbm if later.signal_dbm is not None else earlier.signal_dbm,
    )


def shown_payload(payload: bytes) -> str:
    """The first 4 KB of a message as text, or the bytes' repr when they are not UTF-8."""
    head = payload[:DEAD_LETTER_PAYLOAD]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        # A cut inside a multi-byte character is not a reason to show bytes.
        try:
            return head.decode("utf-8", errors="strict") if len(head) < DEAD_LETTER_PAYLOAD else _cut_text(head)
        except UnicodeDecodeError:
            return repr(head)


def _cut_text(head: bytes) -> str:
    for cut in range(len(head), max(len(head) - 4, 0), -1):
        try:
            return head[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", head, 0, len(head), "not UTF-8")


# --- the MQTT side ------------------------------------------------------------------------------------------------


def make_client(
    settings: Settings,
    worker: IngestWorker,
    *,
    client_id: str,
    ready: threading.Event | None = None,
    retire: bool = False,
) -> mqtt.Client:
    """A paho client with a persistent MQTT 5 session and manual acknowledgements that feeds `worker.inbox`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True)
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
    if settings.mqtt_tls:
        client.tls_set(ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    topics = subscriptions(settings)

    def on_connect(client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("ingest: the broker refused the connection: %s", reason_code)
            return
        log.info("ingest: connected to %s:%s as %s", settings.mqtt_host, settings.mqtt_port, client_id)
        if retire:
            # The broker stops giving this session a share; what it queued for it still comes.
            client.unsubscribe(topics)
            return
        # Subscribing again on a resumed session changes nothing; on a new one it is needed.
        client.subscribe([(topic, 1) for topic in topics])

    def on_unsubscribe(_client: mqtt.Client, _userdata: Any, _mid: int, _codes: Any, _properties: Any) -> None:
        log.info("ingest: unsubscribed from %s; storing what was queued for this session", ", ".join(topics))
        if ready is not None:
            ready.set()

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        worker.inbox.put(Message(message.mid, message.qos, message.topic, message.payload, bool(message.dup), utcnow()))

    def on_subscribe(_client: mqtt.Client, _userdata: Any, _mid: int, reason_codes: Any, _properties: Any) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error("ingest: the broker refused the subscriptions %s: %s", topics, failed)
            return
        log.info("ingest: subscribed to %s", ", ".join(topics))
        if ready is not None:
            ready.set()

    def on_disconnect(_client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
        log.warning("ingest: disconnected from the broker (%s); reconnecting", reason_code)

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_unsubscribe = on_unsubscribe
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    # How many unacknowledged messages the broker may send: a batch and the next one arriving meanwhile.
    properties.ReceiveMaximum = min(65535, 2 * settings.ingest_batch_size)
    client.connect_async(settings.mqtt_host, settings.mqtt_port, keepalive=30, clean_start=False, properties=properties)
    return client


def run_ingest(
    settings: Settings,
    *,
    stop_event: threading.Event,
    session_factory: sessionmaker[Session] | None = None,
    metrics: Metrics | None = None,
    client_id: str | None = None,
    ready: threading.Event | None = None,
    retire: bool = False,
) -> IngestWorker:
    """Run the ingest worker until `stop_event` is set (with its own engine unless `session_factory` is given).

    `retire`: unsubscribe, store what the broker had queued for this client id, then end its session for good (a
    worker leaving a group: its offline session would otherwise keep being given a share of the messages)."""
    engine = None
    if session_factory is None:
        engine = make_engine(settings)
        session_factory = make_sessionmaker(engine)
    worker = IngestWorker(settings, session_factory=session_factory, metrics=metrics)
    worker.reload_directory()
    ready = ready or threading.Event()
    client = make_client(settings, worker, client_id=client_id or settings.mqtt_client_id, ready=ready, retire=retire)
    worker.ack = client.ack
    client.loop_start()
    properties = None
    try:
        if retire:
            properties = _retire(worker, ready, stop_event)
        else:
            worker.run(stop_event)
    finally:
        client.disconnect(properties=properties)
        client.loop_stop()
        if engine is not None:
            engine.dispose()
    return worker


def _retire(worker: IngestWorker, unsubscribed: threading.Event, stop_event: threading.Event) -> Any:
    """Store messages until none came for RETIRE_QUIET_S after unsubscribing; the DISCONNECT properties that end
    the session (or None when stopped before, keeping it)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    quiet_since = None
    while not stop_event.is_set():
        batch = worker.next_batch(wait_s=0.2)
        if batch:
            worker.handle_with_retry(batch, stop_event)
            quiet_since = None
        elif unsubscribed.is_set():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= RETIRE_QUIET_S:
                properties = Properties(PacketTypes.DISCONNECT)
                properties.SessionExpiryInterval = 0
                log.info("ingest: nothing more queued; the session ends")
                return properties
    return None


def start_ingest_thread(
    settings: Settings, *, session_factory: sessionmaker[Session], metrics: Metrics | None = None
) -> tuple[threading.Thread, threading.Event]:
    """Run the ingest worker in a daemon thread of this process (KOTACERDAS_INGEST_IN_APP); its stop event."""
    stop_event = threading.Event()

    def target() -> None:
        try:
            run_ingest(settings, stop_event=stop_event, session_factory=session_factory, metrics=metrics)
        except Exception:
            log.exception("ingest: the in-app worker stopped")

    thread = threading.Thread(target=target, name="kotacerdas-ingest", daemon=True)
    thread.start()
    return thread, stop_event
