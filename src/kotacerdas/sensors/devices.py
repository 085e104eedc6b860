"""Device keys: issued once per Thing (the secret shown once, its SHA-256 kept), checked, and the Mosquitto ACL that
confines each device to its own topics (docs/mqtt.md); the devices an OPD manages with their health, by the one rule
of "offline" (`heard_from`, `offline_limit`, `is_offline`) that the public tiles and the device_offline rule share.

A key has two parts: `device_key_id`, public (the MQTT username and the `kotacerdas/{device_key_id}/up` topic), and
a random secret (the MQTT password, or the HTTP key). The plain key is `<device_key_id>.<secret>`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts.enums import Role
from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor, record_change
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import NotFound, PermissionDenied
from kotacerdas.i18n import _
from kotacerdas.sensors.messages import Health
from kotacerdas.sensors.models import Datastream, Thing
from kotacerdas.sensors.schemas import DeviceRead

# The account of the ingest workers in the broker's ACL (docs/mqtt.md); devices never get this name.
INGEST_ACCOUNT = "kotacerdas-ingest"


@dataclass(frozen=True)
class IssuedKey:
    """A new device key: `key_id` is public; `secret` is shown this once and never stored."""

    key_id: str
    secret: str

    @property
    def plain(self) -> str:
        return f"{self.key_id}.{self.secret}"


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) kept in Thing.device_key_hash: the secret is random and long, so a slow hash adds nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_device_key(session: Session, *, thing_id: int) -> IssuedKey:
    """Give a Thing a new key (replacing any earlier one, which stops working); flushes, never commits."""
    key = IssuedKey(key_id="d" + secrets.token_hex(8), secret=secrets.token_urlsafe(24))
    updated = session.execute(
        sa.update(Thing)
        .where(Thing.id == thing_id)
        .values(device_key_id=key.key_id, device_key_hash=hash_secret(key.secret), updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if updated.rowcount != 1:
        raise LookupError(f"no Thing {thing_id}")
    return key


def heard_from(last_seen_at: datetime | None, newest_reading_at: datetime | None, now: datetime) -> datetime | None:
    """When a device was last heard from, the one rule of the console, the public tiles and the rules: the newer of
    its own messages (`last_seen_at`, written by the ingest) and its newest reading (a station fed through the API
    with a staff token never sets `last_seen_at`), a time ahead of `now` counted as `now` (a fast device clock, or
    the simulator's `--speed`, stamps readings ahead); None when never."""
    times = [time for time in (last_seen_at, newest_reading_at) if time is not None]
    return min(max(times), now) if times else None


def offline_limit(offline_after_minutes: int | None, *, settings: Settings, fallback: int | None = None) -> int:
    """How many minutes a Thing may be silent before it is offline: its own `offline_after_minutes`, else `fallback`
    (a device_offline rule's duration), else the setting `sensor_offline_after_minutes`."""
    return offline_after_minutes or fallback or settings.sensor_offline_after_minutes


def is_offline(heard_at: datetime | None, limit_minutes: int, now: datetime) -> bool:
    """Whether a device last heard from at `heard_at` (`heard_from`) is offline by `now`: never heard from, or silent
    for longer than `limit_minutes` (`offline_limit`)."""
    return heard_at is None or now - heard_at > timedelta(minutes=limit_minutes)


# What the console shows of a Thing (a row of these columns, or the Thing itself).
_DEVICE_COLUMNS = (
    Thing.id,
    Thing.name,
    Thing.agency_id,
    Thing.desa_code,
    Thing.kecamatan_code,
    Thing.device_key_id,
    Thing.last_seen_at,
    Thing.battery_percent,
    Thing.signal_dbm,
    Thing.offline_after_minutes,
)


@dataclass(frozen=True)
class _Streams:
    """A Thing's number of Datastreams and the time of its newest reading."""

    count: int = 0
    newest: datetime | None = None


def list_devices(session: Session, *, settings: Settings, by: User, now: datetime | None = None) -> list[DeviceRead]:
    """The Things `by` manages (an admin every OPD's, OPD staff their own OPD's), by name, with their health."""
    from kotacerdas.agencies import service as agencies
    from kotacerdas.sensors.service import can_manage_agency

    if not can_manage_agency(by, by.agency_id):
        raise PermissionDenied(_("Managing devices needs the sensors.manage permission."))
    now = now or utcnow()
    managed = sa.true() if by.role == Role.ADMIN.value else Thing.agency_id == by.agency_id
    names = agencies.agency_names(session)
    streams = _streams(session, managed)
    rows = session.execute(sa.select(*_DEVICE_COLUMNS).where(managed).order_by(Thing.name, Thing.id))
    return [_device(row, names.get(row.agency_id), streams.get(row.id, _Streams()), settings, now) for row in rows]


def get_device(
    session: Session, *, settings: Settings, thing_id: int, by: User, now: datetime | None = None
) -> DeviceRead:
    """One Thing of the device console, if `by` manages it, from that Thing and its own Datastreams only."""
    return _device_of(session, _managed_thing(session, thing_id, by), settings, now or utcnow())


def _device_of(session: Session, thing: Thing, settings: Settings, now: datetime) -> DeviceRead:
    from kotacerdas.agencies import service as agencies

    agency_name = agencies.get_agency(session, agency_id=thing.agency_id).name if thing.agency_id is not None else None
    streams = _streams(session, Thing.id == thing.id).get(thing.id, _Streams())
    return _device(thing, agency_name, streams, settings, now)


def _device(
    thing: Thing | sa.Row, agency_name: str | None, streams: _Streams, settings: Settings, now: datetime
) -> DeviceRead:
    seen = heard_from(thing.last_seen_at, streams.newest, now)
    return DeviceRead(
        id=thing.id,
        name=thing.name,
        agency_id=thing.agency_id,
        agency_name=agency_name,
        desa_code=thing.desa_code,
        kecamatan_code=thing.kecamatan_code,
        device_key_id=thing.device_key_id,
        last_seen_at=seen,
        battery_percent=thing.battery_percent,
        signal_dbm=thing.signal_dbm,
        offline=is_offline(seen, offline_limit(thing.offline_after_minutes, settings=settings), now),
        datastreams=streams.count,
    )


def _streams(session: Session, things: sa.ColumnElement[bool]) -> dict[int, _Streams]:
    """The Datastreams and newest reading (from the current values) of each of the Things `things` selects."""
    from kotacerdas.sensors import store

    pairs = session.execute(
        sa.select(Datastream.id, Datastream.thing_id).join(Thing, Thing.id == Datastream.thing_id).where(things)
    ).all()
    current = store.current_values(session, [datastream_id for datastream_id, _thing in pairs])
    counts: dict[int, int] = {}
    newest: dict[int, datetime] = {}
    for datastream_id, thing_id in pairs:
        counts[thing_id] = counts.get(thing_id, 0) + 1
        value = current.get(datastream_id)
        if value is not None and (thing_id not in newest or value.phenomenon_time > newest[thing_id]):
            newest[thing_id] = value.phenomenon_time
    return {thing_id: _Streams(count, newest.get(thing_id)) for thing_id, count in counts.items()}


def newest_readings(session: Session, thing_ids: Iterable[int]) -> dict[int, datetime]:
    """The time of each Thing's newest reading, over all its Datastreams (the reading half of `heard_from`), for
    the Things that have one: what the console, the public tiles and the device_offline rule all judge by."""
    ids = sorted(set(thing_ids))
    if not ids:
        return {}
    streams = _streams(session, Thing.id.in_(ids))
    return {thing_id: found.newest for thing_id, found in streams.items() if found.newest is not None}


def _managed_thing(session: Session, thing_id: int, by: User) -> Thing:
    """The Thing `thing_id` if `by` may manage it (404 unknown, 403 another OPD's)."""
    from kotacerdas.sensors.service import can_manage_agency

    thing = session.get(Thing, thing_id)
    if thing is None:
        raise NotFound(_("No such device."))
    if not can_manage_agency(by, thing.agency_id):
        raise PermissionDenied(_("Only staff of the OPD that owns this device may manage it."))
    return thing


def renew_device_key(session: Session, *, thing_id: int, by: User, actor: Actor) -> IssuedKey:
    """Issue a new key for a Thing that `by` manages (the old key stops working at once), audited with the key id
    only; the secret is in the answer this once and nowhere else."""
    return _renew_key(session, _managed_thing(session, thing_id, by), actor)


def renew_device_key_and_get_device(
    session: Session, *, settings: Settings, thing_id: int, by: User, actor: Actor, now: datetime | None = None
) -> tuple[IssuedKey, DeviceRead]:
    """`renew_device_key`, and the device as the console then shows it (`get_device`), from one look-up of the Thing."""
    thing = _managed_thing(session, thing_id, by)
    key = _renew_key(session, thing, actor)
    return key, _device_of(session, thing, settings, now or utcnow())


def _renew_key(session: Session, thing: Thing, actor: Actor) -> IssuedKey:
    before = {"device_key_id": thing.device_key_id}
    key = issue_device_key(session, thing_id=thing.id)  # updates `thing` in the session too (synchronize "fetch")
    record_change(
        session, actor=actor, action="sensor.device_key.issue", entity_type="sensor_thing", entity_id=thing.id,
        before=before, after={"device_key_id": key.key_id},
    )  # fmt: skip
    return key


def record_health(session: Session, healths: Iterable[Health]) -> None:
    """Write what devices reported about themselves in the caller's transaction: last seen only moves forward, and
    battery and signal are kept when a message does not say."""
    rows = [
        {"thing": h.thing_id, "seen": h.seen_at, "battery": h.battery_percent, "signal": h.signal_dbm}
        for h in sorted(healths, key=lambda h: h.thing_id)  # one lock order for concurrent writers
    ]
    if not rows:
        return
    table = Thing.__table__
    seen = sa.bindparam("seen", type_=table.c.last_seen_at.type)
    statement = (
        table.update()
        .where(table.c.id == sa.bindparam("thing"))
        .values(
            last_seen_at=sa.case(
                (sa.or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < seen), seen),
                else_=table.c.last_seen_at,
            ),
            battery_percent=sa.func.coalesce(sa.bindparam("battery", type_=sa.Float), table.c.battery_percent),
            signal_dbm=sa.func.coalesce(sa.bindparam("signal", type_=sa.Float), table.c.signal_dbm),
        )
    )
    session.connection().execute(statement, rows)


def verify_device_key(session: Session, *, plain: str) -> int | None:
    """The id of the Thing whose key `plain` (`<key_id>.<secret>`) is, or None."""
    key_id, _dot, secret = plain.partition(".")
    if not key_id or not secret:
        return None
    row = session.execute(sa.select(Thing.id, Thing.device_key_hash).where(Thing.device_key_id == key_id)).one_or_none()
    if row is None or row.device_key_hash is None:
        return None
    return row.id if hmac.compare_digest(row.device_key_hash, hash_secret(secret)) else None


def mosquitto_acl(session: Session, *, ingest_account: str = INGEST_ACCOUNT) -> str:
    """A Mosquitto `acl_file`: the ingest account reads every ingest topic; each device (username = its key id)
    writes only its compact topic and the SensorThings topics of its own Datastreams."""
    lines = [
        "# Generated by kotacerdas (sensors.devices.mosquitto_acl); see docs/mqtt.md.",
        f"user {ingest_account}",
        "topic read kotacerdas/+/up",
        "topic read v1.1/#",
        "",
    ]
    rows = session.execute(
        sa.select(Thing.device_key_id, Datastream.id)
        .join(Datastream, Datastream.thing_id == Thing.id, isouter=True)
        .where(Thing.device_key_id.is_not(None))
        .order_by(Thing.device_key_id, Datastream.id)
    ).all()
    current = None
    for key_id, datastream_id in rows:
        if key_id != current:
            if current is not None:
                lines.append("")
            lines += [f"user {key_id}", f"topic write kotacerdas/{key_id}/up"]
            current = key_id
        if datastream_id is not None:
            lines.append(f"topic write v1.1/Datastreams({datastream_id})/Observations")
    return "\n".join(lines) + "\n"


def mosquitto_conf(
    *,
    port: int = 1883,
    bind: str = "127.0.0.1",
    persistence_dir: str | None = "/var/lib/mosquitto/",
    password_file: str | None = None,
    acl_file: str | None = None,
    max_queued_messages: int = 0,
) -> str:
    """The Mosquitto 2 configuration docs/mqtt.md explains: no per-client queue limit (Mosquitto's default of
    1,000 queued QoS 1 messages silently drops the rest when the ingest worker falls behind), persistence, and
    device accounts with an ACL when the files are given (else anonymous, for tests on loopback)."""
    lines = [
        f"listener {port} {bind}",
        # The default, 1000, drops QoS 1 messages above it for a slow or restarting subscriber, silently.
        f"max_queued_messages {max_queued_messages}",
        "max_queued_bytes 0",
        # Messages to MQTT 3.1.1 clients in flight at once; MQTT 5 clients (the worker) set their receive maximum.
        "max_inflight_messages 1000",
        "set_tcp_nodelay true",
    ]
    if persistence_dir:
        lines += ["persistence true", f"persistence_location {persistence_dir}", "autosave_interval 60"]
    else:
        lines.append("persistence false")
    if password_file:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if acl_file:
        lines.append(f"acl_file {acl_file}")
    return "\n".join(lines) + "\n"
