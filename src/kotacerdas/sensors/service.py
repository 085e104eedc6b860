"""SensorThings entities: reads through the query options (sensors.query), creates with deep insert, updates and
deletes with their cascades, who may change what (sensors.manage, scoped to the OPD that owns the Thing, as for
assets), and the FeatureOfInterest an Observation gets when its client names none.

Services flush, never commit; the request owns the transaction, so a deep insert whose inner entity is bad raises
before the request commits and nothing of it is stored. Observations are written and deleted through the
observation store (sensors.store), never by this module; it only reads them, with Core, from the store's table.

Every error is a `StaError` (HTTP 400 unless said otherwise) whose detail names the entity and the field: the
messages quote the SensorThings names an international client sends, in English, as sensors.query does."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time as _time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor, record_change, snapshot
from kotacerdas.config import Settings
from kotacerdas.db import UTCDateTime, utcnow
from kotacerdas.errors import DomainError
from kotacerdas.sensors import query as q
from kotacerdas.sensors import store
from kotacerdas.sensors.models import (
    Datastream,
    FeatureOfInterest,
    HistoricalLocation,
    HistoricalLocationLocation,
    Location,
    ObservedProperty,
    Sensor,
    Thing,
    ThingLocation,
)

# --- errors -----------------------------------------------------------------------------------------------------


class StaError(DomainError):
    """A SensorThings request that cannot be carried out; the detail names the entity and field."""

    status_code = 400
    slug = "bad-request"


class StaNotFound(StaError):
    status_code = 404
    slug = "not-found"


class StaForbidden(StaError):
    status_code = 403
    slug = "forbidden"


class StaConflict(StaError):
    status_code = 409
    slug = "conflict"


class StaTooLarge(StaError):
    status_code = 413
    slug = "payload-too-large"


class StaMethodNotAllowed(StaError):
    status_code = 405
    slug = "method-not-allowed"


# --- the entity model -------------------------------------------------------------------------------------------

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
OBSERVATION_TYPES = {
    OM + "OM_Measurement": "number",
    OM + "OM_CategoryObservation": "string",
    OM + "OM_CountObservation": "integer",
    OM + "OM_TruthObservation": "boolean",
    OM + "OM_Observation": "any",
    OM + "OM_ComplexObservation": "object",
}
GEOJSON_TYPES = ("application/geo+json", "application/vnd.geo+json")
SENSOR_ENCODINGS = ("application/pdf", "http://www.opengis.net/doc/IS/SensorML/2.0", "text/html", "application/json")
MAX_FUTURE = timedelta(days=1)


class MicrosTime(sa.TypeDecorator):
    """The store's SQLite times (integer microseconds since the epoch, UTC) read and compared as datetimes: the
    query compiler sees a datetime column, a bound datetime becomes microseconds, so comparisons and orderings use
    the integer column and its index."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True
    # The query compiler reads this to apply SQLite's date functions to the integers (sensors/query.py).
    epoch_microseconds = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(sa.BigInteger())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else store.to_us(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return store.from_us(value)


_META = sa.MetaData()


def _observation_table(sqlite: bool) -> sa.Table:
    time_type: Any = MicrosTime() if sqlite else UTCDateTime()
    name = "sensor_observations_all" if sqlite else "sensor_observations"
    return sa.Table(
        name,
        _META,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("datastream_id", sa.Integer, nullable=False),
        sa.Column("phenomenon_time", time_type, nullable=False),
        sa.Column("phenomenon_time_end", time_type),
        sa.Column("result_type", sa.SmallInteger),
        sa.Column("result_number", sa.Float),
        sa.Column("result_json", JSONB() if not sqlite else sa.JSON()),
        sa.Column("result_time", time_type),
        sa.Column("result_quality", sa.Text),
        sa.Column("valid_time_start", time_type),
        sa.Column("valid_time_end", time_type),
        sa.Column("parameters", JSONB() if not sqlite else sa.JSON()),
        sa.Column("feature_id", sa.Integer),
    )


OBSERVATIONS = {"sqlite": _observation_table(True), "postgresql": _observation_table(False)}


@dataclass(frozen=True)
class Nav:
    """A navigation property. kind: "one" (`fk` on this table), "many" (`fk` on the target's table), "link"
    (`link` = (link table, column to this, column to the target))."""

    target: str
    kind: str
    fk: str = ""
    link: tuple[sa.Table, str, str] | None = None


@dataclass(frozen=True)
class EntitySet:
    """One entity set: its table, its properties (SensorThings name → column key) and navigation properties."""

    name: str
    singular: str
    model: Any
    fields: Mapping[str, str]
    navs: Mapping[str, Nav]
    required: tuple[str, ...] = ()

    def table(self, dialect: str) -> sa.Table:
        return OBSERVATIONS[dialect] if self.model is None else self.model.__table__


_TL = ThingLocation.__table__
_HLL = HistoricalLocationLocation.__table__

SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EntitySet(
            "Things",
            "Thing",
            Thing,
            {"name": "name", "description": "description", "properties": "properties"},
            {
                "Locations": Nav("Locations", "link", link=(_TL, "thing_id", "location_id")),
                "HistoricalLocations": Nav("HistoricalLocations", "many", "thing_id"),
                "Datastreams": Nav("Datastreams", "many", "thing_id"),
            },
            ("name", "description"),
        ),
        EntitySet(
            "Locations",
            "Location",
            Location,
            {
                "name": "name",
                "description": "description",
                "encodingType": "encoding_type",
                "location": "location",
                "properties": "properties",
            },
            {
                "Things": Nav("Things", "link", link=(_TL, "location_id", "thing_id")),
                "HistoricalLocations": Nav(
                    "HistoricalLocations", "link", link=(_HLL, "location_id", "historical_location_id")
                ),
            },
            ("name", "description", "encodingType", "location"),
        ),
        EntitySet(
            "HistoricalLocations",
            "HistoricalLocation",
            HistoricalLocation,
            {"time": "time"},
            {
                "Thing": Nav("Things", "one", "thing_id"),
                "Locations": Nav("Locations", "link", link=(_HLL, "historical_location_id", "location_id")),
            },
            ("time",),
        ),
        EntitySet(
            "Sensors",
            "Sensor",
            Sensor,
            {
                "name": "name",
                "description": "description",
                "encodingType": "encoding_type",
                "metadata": "metadata",
                "properties": "properties",
            },
            {"Datastreams": Nav("Datastreams", "many", "sensor_id")},
            ("name", "description", "encodingType", "metadata"),
        ),
        EntitySet(
            "ObservedProperties",
            "ObservedProperty",
            ObservedProperty,
            {"name": "name", "definition": "definition", "description": "description", "properties": "properties"},
            {"Datastreams": Nav("Datastreams", "many", "observed_property_id")},
            ("name", "definition", "description"),
        ),
        EntitySet(
            "Datastreams",
            "Datastream",
            Datastream,
            {
                "name": "name",
                "description": "description",
                "unitOfMeasurement": "unit_of_measurement",
                "observationType": "observation_type",
                "observedArea": "observed_area",
                "phenomenonTime": "phenomenon_time_start",
                "resultTime": "result_time_start",
                "properties": "properties",
            },
            {
                "Thing": Nav("Things", "one", "thing_id"),
                "Sensor": Nav("Sensors", "one", "sensor_id"),
                "ObservedProperty": Nav("ObservedProperties", "one", "observed_property_id"),
                "Observations": Nav("Observations", "many", "datastream_id"),
            },
            ("name", "description", "unitOfMeasurement", "observationType"),
        ),
        EntitySet(
            "Observations",
            "Observation",
            None,
            {
                "phenomenonTime": "phenomenon_time",
                "resultTime": "result_time",
                "result": "result_json",
                "resultQuality": "result_quality",
                "validTime": "valid_time_start",
                "parameters": "parameters",
            },
            {
                "Datastream": Nav("Datastreams", "one", "datastream_id"),
                "FeatureOfInterest": Nav("FeaturesOfInterest", "one", "feature_id"),
            },
            ("result",),
        ),
        EntitySet(
            "FeaturesOfInterest",
            "FeatureOfInterest",
            FeatureOfInterest,
            {
                "name": "name",
                "description": "description",
                "encodingType": "encoding_type",
                "feature": "feature",
                "properties": "properties",
            },
            {"Observations": Nav("Observations", "many", "feature_id")},
            ("name", "description", "encodingType", "feature"),
        ),
    )
}
BY_SINGULAR = {s.singular: s for s in SETS.values()}


def nav_set(entity_set: EntitySet, nav: str) -> EntitySet:
    return SETS[entity_set.navs[nav].target]


def _relation(nav: Nav, target: EntitySet) -> q.Relation:
    if nav.kind == "one":
        return q.Relation(target.singular, lambda this, other, fk=nav.fk: other.c.id == this.c[fk])
    if nav.kind == "many":
        return q.Relation(target.singular, lambda this, other, fk=nav.fk: other.c[fk] == this.c.id, many=True)
    link, mine, theirs = nav.link
    return q.Relation(
        target.singular,
        lambda this, other: sa.exists().where(link.c[mine] == this.c.id, link.c[theirs] == other.c.id),
        many=True,
    )


def _properties(entity_set: EntitySet, dialect: str) -> dict[str, Any]:
    props: dict[str, Any] = {"id": "id"}
    for name, column in entity_set.fields.items():
        if entity_set.model is None and name == "result":
            props[name] = lambda t: q.Target(t.c.result_json, json_keys=(), number=t.c.result_number)
        else:
            props[name] = column
    return props


def _schema(dialect: str) -> dict[str, q.Entity]:
    return {
        s.singular: q.Entity(
            s.table(dialect),
            _properties(s, dialect),
            {name: _relation(nav, SETS[nav.target]) for name, nav in s.navs.items()},
        )
        for s in SETS.values()
    }


SCHEMAS = {"sqlite": _schema("sqlite"), "postgresql": _schema("postgresql")}


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


# --- reads ------------------------------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of an entity set: rows (column key → value), the total with $count, whether more remain."""

    rows: list[dict[str, Any]]
    count: int | None = None
    more: bool = False


def nav_condition(entity_set: EntitySet, nav_name: str, parent_id: int, dialect: str) -> sa.ColumnElement:
    """The condition on the target table selecting the entities `nav_name` of `entity_set`'s entity `parent_id`."""
    nav = entity_set.navs[nav_name]
    target = SETS[nav.target].table(dialect)
    parent = entity_set.table(dialect)
    if nav.kind == "one":
        return target.c.id == sa.select(parent.c[nav.fk]).where(parent.c.id == parent_id).scalar_subquery()
    if nav.kind == "many":
        return target.c[nav.fk] == parent_id
    link, mine, theirs = nav.link
    return target.c.id.in_(sa.select(link.c[theirs]).where(link.c[mine] == parent_id))


def list_entities(
    session: Session,
    *,
    entity_set: EntitySet,
    options: q.QueryOptions,
    where: Sequence[sa.ColumnElement] = (),
    limits: q.Limits = q.LIMITS,
    paginate: bool = True,
) -> Page:
    """A page of `entity_set` filtered, ordered and paged by `options` (and `where`)."""
    dialect = dialect_of(session)
    table = entity_set.table(dialect)
    resolver = q.EntityResolver(SCHEMAS[dialect], entity_set.singular)
    base = sa.select(table).where(*where)
    statement = q.apply_query(
        base, options, resolver=resolver, dialect=dialect, limits=limits, tiebreak=[table.c.id], paginate=False
    )
    size = limits.page_size(options.top)
    if paginate:
        statement = statement.limit(size + 1).offset(options.skip or 0)
    rows = [dict(row) for row in session.execute(statement).mappings()]
    more = paginate and len(rows) > size
    if more:
        rows = rows[:size]
    count = None
    if options.count:
        condition = q.filter_condition(options, resolver, dialect=dialect)
        counted = sa.select(sa.func.count()).select_from(table).where(*where)
        if condition is not None:
            counted = counted.where(condition)
        count = session.scalar(counted)
    return Page(rows, count, more)


def get_entity(session: Session, *, entity_set: EntitySet, entity_id: int) -> dict[str, Any]:
    """One entity's row; StaNotFound when there is none."""
    table = entity_set.table(dialect_of(session))
    row = session.execute(sa.select(table).where(table.c.id == entity_id)).mappings().first()
    if row is None:
        raise StaNotFound(f"no {entity_set.singular} with @iot.id {entity_id}")
    return dict(row)


def result_of(row: Mapping[str, Any]) -> Any:
    """An Observation's result from its stored columns (a number stays the type it was posted as)."""
    kind = row["result_type"]
    if kind == store.RESULT_INT:
        return int(row["result_number"])
    if kind == store.RESULT_FLOAT:
        return row["result_number"]
    if kind == store.RESULT_JSON:
        return row["result_json"]
    return None


# --- who may change what ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who writes: a staff user (with an API token) or a device (its Thing, from its key)."""

    user: User | None = None
    thing_id: int | None = None
    ip: str | None = None

    @property
    def actor(self) -> Actor:
        if self.user is not None:
            return Actor.of(self.user, self.ip)
        return Actor(user_id=None, label=f"device:thing-{self.thing_id}", ip=self.ip)

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.role == Role.ADMIN.value

    @property
    def manager(self) -> bool:
        return self.user is not None and accounts.user_can(self.user, Permission.SENSORS_MANAGE)


def can_manage_agency(user: User | None, agency_id: int | None) -> bool:
    """Whether `user` may manage the devices of OPD `agency_id`: an admin any OPD's, OPD staff their own only."""
    if user is None or not accounts.user_can(user, Permission.SENSORS_MANAGE):
        return False
    if user.role == Role.ADMIN.value:
        return True
    return user.agency_id is not None and user.agency_id == agency_id


def _require_manager(caller: Caller) -> None:
    if not caller.manager:
        raise StaForbidden("this needs the sensors.manage permission (staff of the OPD that owns the device)")


def _require_things(session: Session, caller: Caller, thing_ids: Iterable[int], what: str) -> None:
    ids = set(thing_ids)
    if not ids:
        return
    if caller.user is None:
        if ids != {caller.thing_id}:
            raise StaForbidden(f"a device key may only write {what} of its own Thing")
        return
    _require_manager(caller)
    if caller.is_admin:
        return
    agencies = set(session.scalars(sa.select(Thing.agency_id).where(Thing.id.in_(ids))))
    if any(not can_manage_agency(caller.user, agency) for agency in agencies):
        raise StaForbidden(f"only the OPD that owns the Thing may change {what}")


def _things_of(session: Session, entity_set: EntitySet, entity_id: int) -> set[int]:
    """The Things an entity hangs off (whose owners may change it)."""
    name = entity_set.name
    if name == "Things":
        return {entity_id}
    if name == "Locations":
        return set(session.scalars(sa.select(ThingLocation.thing_id).where(ThingLocation.location_id == entity_id)))
    if name == "HistoricalLocations":
        return set(session.scalars(sa.select(HistoricalLocation.thing_id).where(HistoricalLocation.id == entity_id)))
    if name == "Datastreams":
        return set(session.scalars(sa.select(Datastream.thing_id).where(Datastream.id == entity_id)))
    if name in ("Sensors", "ObservedProperties"):
        column = Datastream.sensor_id if name == "Sensors" else Datastream.observed_property_id
        return set(session.scalars(sa.select(Datastream.thing_id).where(column == entity_id)))
    return set()


def require_change(session: Session, *, caller: Caller, entity_set: EntitySet, entity_id: int) -> None:
    """Raise StaForbidden unless `caller` may change or delete this entity."""
    if caller.user is None:
        raise StaForbidden("a device key may only create Observations")
    _require_manager(caller)
    if caller.is_admin:
        return
    if entity_set.name in ("FeaturesOfInterest", "Observations"):
        if entity_set.name == "Observations":
            row = get_entity(session, entity_set=entity_set, entity_id=entity_id)
            thing = session.scalar(sa.select(Datastream.thing_id).where(Datastream.id == row["datastream_id"]))
            _require_things(session, caller, [thing], "its Observations")
            return
        raise StaForbidden("only an administrator may change or delete a FeatureOfInterest")
    _require_things(session, caller, _things_of(session, entity_set, entity_id), entity_set.singular)


# --- values -----------------------------------------------------------------------------------------------------


def _where(entity: str, name: str) -> str:
    return f"{entity}.{name}" if name else entity


def _text(value: Any, entity: str, name: str, *, max_length: int | None = 200, blank: bool = False) -> str:
    if not isinstance(value, str):
        raise StaError(f"{_where(entity, name)} must be a string")
    if not blank and not value.strip():
        raise StaError(f"{_where(entity, name)} must not be empty")
    if max_length is not None and len(value) > max_length:
        raise StaError(f"{_where(entity, name)} is longer than {max_length} characters")
    if "\x00" in value:
        raise StaError(f"{_where(entity, name)} contains a NUL character")
    return value


def _no_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_no_nul(k) and _no_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_nul(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def _object(value: Any, entity: str, name: str, *, nullable: bool = True) -> dict[str, Any] | None:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise StaError(f"{_where(entity, name)} must be a JSON object")
    if not _no_nul(value):
        raise StaError(f"{_where(entity, name)} contains a NUL character or a number that is not finite")
    if len(json.dumps(value)) > 100_000:
        raise StaError(f"{_where(entity, name)} is larger than 100 kB")
    return value


def parse_time(value: Any, entity: str, name: str) -> datetime:
    """An ISO 8601 date and time as a timezone-aware UTC datetime (a time without a zone is UTC)."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise StaError(f"{_where(entity, name)} must be an ISO 8601 date and time, e.g. 2026-11-29T06:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise StaError(f"{_where(entity, name)}: {value!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise StaError(f"{_where(entity, name)}: {value!r} is out of range") from None


def parse_interval(value: Any, entity: str, name: str) -> tuple[datetime, datetime | None]:
    """A time instant or an interval `start/end`."""
    if isinstance(value, str) and "/" in value:
        start, _slash, end = value.partition("/")
        low, high = parse_time(start, entity, name), parse_time(end, entity, name)
        if high < low:
            raise StaError(f"{_where(entity, name)}: the interval ends before it starts")
        return low, high
    return parse_time(value, entity, name), None


GEOMETRY_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def _positions(coords: Any, depth: int, where: str) -> list[tuple[float, float]]:
    if depth == 0:
        if (
            not isinstance(coords, list)
            or not 2 <= len(coords) <= 3
            or not all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in coords)
        ):
            raise StaError(f"{where}: a position is [longitude, latitude] in numbers")
        lon, lat = coords[0], coords[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise StaError(f"{where}: longitude must be within ±180 and latitude within ±90 (longitude first)")
        return [(lon, lat)]
    if not isinstance(coords, list) or not coords:
        raise StaError(f"{where}: coordinates are nested too shallow or empty for the geometry type")
    found: list[tuple[float, float]] = []
    for item in coords:
        found += _positions(item, depth - 1, where)
        if len(found) > 100_000:
            raise StaError(f"{where}: more than 100,000 positions")
    return found


def geojson_positions(value: Any, where: str, *, depth: int = 0) -> list[tuple[float, float]]:
    """The positions of a GeoJSON geometry, Feature or GeometryCollection; StaError when it is not valid GeoJSON."""
    if not isinstance(value, dict) or depth > 4:
        raise StaError(f"{where} must be a GeoJSON geometry or Feature (an object with a type)")
    kind = value.get("type")
    if kind == "Feature":
        return geojson_positions(value.get("geometry"), where, depth=depth + 1)
    if kind == "GeometryCollection":
        members = value.get("geometries")
        if not isinstance(members, list) or not members:
            raise StaError(f"{where}: a GeometryCollection needs geometries")
        found: list[tuple[float, float]] = []
        for member in members:
            found += geojson_positions(member, where, depth=depth + 1)
        return found
    if kind not in GEOMETRY_DEPTH:
        raise StaError(f"{where}: unknown GeoJSON type {kind!r} (Point, LineString, Polygon, Multi…, Feature)")
    return _positions(value.get("coordinates"), GEOMETRY_DEPTH[kind], where)


def _point_of(positions: list[tuple[float, float]]) -> tuple[float, float]:
    """(lat, lon) representing a geometry: the point itself, or the mean of the positions."""
    lon = sum(p[0] for p in positions) / len(positions)
    lat = sum(p[1] for p in positions) / len(positions)
    return lat, lon


def check_result(value: Any, observation_type: str, where: str) -> None:
    """Refuse a result whose type does not fit the Datastream's observationType."""
    kind = OBSERVATION_TYPES.get(observation_type, "any")
    ok = True
    if kind == "number":
        ok = type(value) in (int, float)
    elif kind == "integer":
        ok = type(value) is int
    elif kind == "boolean":
        ok = type(value) is bool
    elif kind == "string":
        ok = type(value) is str
    elif kind == "object":
        ok = type(value) in (dict, list)
    if not ok:
        name = observation_type.rsplit("/", 1)[-1]
        raise StaError(f"{where}: result {json.dumps(value)[:60]} is not a {kind}, as a {name} Datastream needs")
    if type(value) is float and not math.isfinite(value):
        raise StaError(f"{where}: result is NaN or infinite")


# --- the FeatureOfInterest of a Thing's Location ----------------------------------------------------------------


def feature_key(encoding_type: str, feature: Any) -> str:
    """SHA-256 of the canonical JSON of (encodingType, feature): one FeatureOfInterest per distinct feature."""
    canonical = json.dumps([encoding_type, feature], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_or_create_feature(
    session: Session, *, name: str, description: str, encoding_type: str, feature: Any, properties: Any = None
) -> int:
    """The id of the FeatureOfInterest of this feature, created when new: INSERT … ON CONFLICT DO NOTHING, then
    SELECT, so that concurrent first Observations share one row (the loser of the race reads the winner's)."""
    key = feature_key(encoding_type, feature)
    found = session.scalar(sa.select(FeatureOfInterest.id).where(FeatureOfInterest.feature_key == key))
    if found is not None:
        return found
    insert = pg_insert if dialect_of(session) == "postgresql" else sqlite_insert
    statement = (
        insert(FeatureOfInterest)
        .values(
            name=name[:200],
            description=description,
            encoding_type=encoding_type,
            feature=feature,
            properties=properties,
            feature_key=key,
        )
        .on_conflict_do_nothing(index_elements=["feature_key"])
    )
    session.execute(statement)
    return session.scalar(sa.select(FeatureOfInterest.id).where(FeatureOfInterest.feature_key == key))


# Datastream id → (Thing id, observation type, feature id of its Thing's Location or None), per engine: the batch
# path asks for it once per Datastream per batch. The whole cache is read again once it is DS_CACHE_SECONDS old, so
# that a batch's ~950 look-ups are set operations in C instead of a time check each in Python (bench/ingest_http.py).
# Changes made in this process clear it; other processes' changes are seen within DS_CACHE_SECONDS.
_DS_CACHE: weakref.WeakKeyDictionary[Engine, tuple[float, dict[int, tuple[int, str, int | None]]]] = (
    weakref.WeakKeyDictionary()
)
_DS_LOCK = threading.Lock()
DS_CACHE_SECONDS = 30.0


def _targets_cache(engine: Engine) -> dict[int, tuple[int, str, int | None]]:
    """The engine's cache of Datastream targets, empty when it is missing or too old."""
    born, entries = _DS_CACHE.get(engine) or (0.0, {})
    return entries if _time.monotonic() - born < DS_CACHE_SECONDS else {}


def forget_caches(session: Session) -> None:
    """After a change to Datastreams, Things' Locations or FeaturesOfInterest: read them again."""
    engine = session.get_bind()
    with _DS_LOCK:
        _DS_CACHE.pop(engine, None)
    store.forget_datastreams(engine)


def datastream_targets(session: Session, datastream_ids: Iterable[int]) -> dict[int, tuple[int, str, int | None]]:
    """For each known Datastream id: (Thing id, observation type, FeatureOfInterest id of the Thing's Location,
    created on first use; None when the Thing has no Location)."""
    engine = session.get_bind()
    cache = _targets_cache(engine)
    wanted = set(datastream_ids)
    missing = wanted - cache.keys()
    found = {ds: cache[ds] for ds in wanted - missing}
    if missing:
        rows = session.execute(
            sa.select(Datastream.id, Datastream.thing_id, Datastream.observation_type).where(Datastream.id.in_(missing))
        ).all()
        things = {row.thing_id for row in rows}
        locations: dict[int, Location] = {}
        if things:
            first = (
                sa.select(ThingLocation.thing_id, sa.func.min(ThingLocation.location_id).label("location_id"))
                .where(ThingLocation.thing_id.in_(things))
                .group_by(ThingLocation.thing_id)
                .subquery()
            )
            for thing_id, location in session.execute(
                sa.select(first.c.thing_id, Location).join(Location, Location.id == first.c.location_id)
            ):
                locations[thing_id] = location
        features: dict[int, int] = {}
        by_location: dict[int, int] = {}
        for thing_id, location in locations.items():
            if location.id not in by_location:
                by_location[location.id] = get_or_create_feature(
                    session,
                    name=location.name,
                    description=location.description,
                    encoding_type=location.encoding_type,
                    feature=location.location,
                )
            features[thing_id] = by_location[location.id]
        fresh = {}
        for row in rows:
            value = (row.thing_id, row.observation_type, features.get(row.thing_id))
            found[row.id] = value
            fresh[row.id] = value
        with _DS_LOCK:
            current = _targets_cache(engine)
            if not current or len(current) > 200_000:
                # A new generation starts from these rows (the cache was empty, too old or too large).
                _DS_CACHE[engine] = (_time.monotonic(), fresh)
            else:
                current.update(fresh)
    return found


def targets_cached(session: Session, datastream_ids: Iterable[int]) -> bool:
    """Whether `datastream_targets` would answer these ids from its cache alone (reading, never writing)."""
    return _targets_cache(session.get_bind()).keys() >= set(datastream_ids)


# --- creating ---------------------------------------------------------------------------------------------------


@dataclass
class Created:
    """What one create call made: the top entity and every entity made inside it, for the audit and the answer."""

    entity_set: EntitySet
    id: int
    observation_ids: list[int] = field(default_factory=list)


@dataclass
class _Context:
    session: Session
    settings: Settings
    caller: Caller
    now: datetime
    pending_observations: list[tuple[dict[str, Any], int, str]] = field(default_factory=list)


def _link_id(value: Any, entity: str) -> int | None:
    """The id of `{"@iot.id": n}` (a link to an existing entity), or None for an entity given inline."""
    if not isinstance(value, dict):
        raise StaError(f"{entity} must be a JSON object")
    if "@iot.id" not in value:
        return None
    raw = value["@iot.id"]
    if isinstance(raw, str) and raw.isdecimal():
        raw = int(raw)
    if type(raw) is not int or not 1 <= raw < 2**63:
        raise StaError(f"{entity}: @iot.id must be a positive integer")
    return raw


def _existing(session: Session, entity_set: EntitySet, entity_id: int, where: str) -> int:
    table = entity_set.table(dialect_of(session))
    if session.scalar(sa.select(table.c.id).where(table.c.id == entity_id)) is None:
        raise StaError(f"{where}: no {entity_set.singular} with @iot.id {entity_id}")
    return entity_id


def _known_keys(body: dict[str, Any], entity_set: EntitySet, where: str, extra: Iterable[str] = ()) -> None:
    # A Datastream's phenomenonTime, resultTime and observedArea are the server's (from its Observations): accepted
    # and ignored, since clients send back what they read (frost-sta-client's update sends the whole entity).
    allowed = {*entity_set.fields, *entity_set.navs, "@iot.id", *extra}
    for key in body:
        if key not in allowed and not key.endswith(("@iot.navigationLink", "@iot.selfLink")):
            raise StaError(f"{where}: unknown property {key!r} (known: {', '.join(sorted(allowed))})")


def _required(body: dict[str, Any], entity_set: EntitySet, where: str) -> None:
    for name in entity_set.required:
        if body.get(name) is None:
            raise StaError(f"{where}.{name} is required")


def _thing_extras(body_properties: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Split the platform's own keys (`properties.kotacerdas`: agency_id, asset_id) from a Thing's properties."""
    if not body_properties or "kotacerdas" not in body_properties:
        return body_properties, {}
    rest = {k: v for k, v in body_properties.items() if k != "kotacerdas"}
    extras = body_properties["kotacerdas"]
    if not isinstance(extras, dict):
        raise StaError("Thing.properties.kotacerdas must be an object")
    return rest or None, extras


def _agency_for(ctx: _Context, extras: dict[str, Any], current: int | None, where: str) -> int | None:
    from kotacerdas.agencies.models import Agency

    user = ctx.caller.user
    agency = extras.get("agency_id", current if current is not None else (user.agency_id if user else None))
    if agency is not None:
        if type(agency) is not int or not 1 <= agency < 2**31:
            raise StaError(f"{where}.properties.kotacerdas.agency_id must be an OPD id")
        if ctx.session.get(Agency, agency) is None:
            raise StaError(f"{where}.properties.kotacerdas.agency_id: no OPD {agency}")
    if not can_manage_agency(user, agency):
        raise StaForbidden(f"{where}: OPD staff may only manage the devices of their own OPD")
    return agency


def _asset_for(ctx: _Context, extras: dict[str, Any], current: int | None, where: str) -> int | None:
    from kotacerdas.assets.models import Asset

    asset = extras.get("asset_id", current)
    if asset is not None:
        if type(asset) is not int or not 1 <= asset < 2**31 or ctx.session.get(Asset, asset) is None:
            raise StaError(f"{where}.properties.kotacerdas.asset_id: no asset {asset!r}")
    return asset


def _place_thing(ctx: _Context, thing: Thing) -> None:
    """The Thing's desa and kecamatan from its first Location, when that lies inside the kabupaten."""
    from kotacerdas.regions import service as regions

    location = ctx.session.scalar(
        sa.select(Location)
        .join(ThingLocation, ThingLocation.location_id == Location.id)
        .where(ThingLocation.thing_id == thing.id, Location.lat.is_not(None))
        .order_by(Location.id)
        .limit(1)
    )
    if location is None:
        thing.desa_code = thing.kecamatan_code = None
        return
    place = regions.locate(ctx.session, settings=ctx.settings, lat=location.lat, lon=location.lon)
    thing.desa_code = place.desa.code if place.inside and place.desa else None
    thing.kecamatan_code = place.kecamatan.code if place.inside and place.kecamatan else None


def _audit(ctx: _Context, action: str, entity_set: EntitySet, obj: Any, before: dict[str, Any] | None = None) -> None:
    record_change(
        ctx.session,
        actor=ctx.caller.actor,
        action=f"sensors.{entity_set.singular.lower()}.{action}",
        entity_type=entity_set.model.__tablename__,
        entity_id=obj.id,
        before=before,
        after=None if action == "delete" else snapshot(obj, exclude=("device_key_hash",)),
    )


def _set_fields(ctx: _Context, entity_set: EntitySet, obj: Any, body: dict[str, Any], where: str) -> None:
    """Check and set the plain properties given in `body` on `obj`."""
    name = entity_set.name
    for key in ("name", "description", "definition", "metadata"):
        if key in body and key in entity_set.fields:
            limit = {"name": 200, "definition": 500}.get(key)
            value = _text(body[key], where, key, max_length=limit or 100_000, blank=key == "description")
            setattr(obj, "sensor_metadata" if key == "metadata" else entity_set.fields[key], value)
    if "properties" in body:
        props = _object(body["properties"], where, "properties")
        if name == "Things":
            props, _extras = _thing_extras(props)
        obj.properties = props
    if "encodingType" in body and "encodingType" in entity_set.fields:
        value = _text(body["encodingType"], where, "encodingType", max_length=100)
        if name in ("Locations", "FeaturesOfInterest") and value not in GEOJSON_TYPES:
            raise StaError(f"{where}.encodingType must be application/geo+json (or application/vnd.geo+json)")
        obj.encoding_type = value
    if name == "Locations" and "location" in body:
        positions = geojson_positions(body["location"], f"{where}.location")
        _object(body["location"], where, "location", nullable=False)
        obj.location = body["location"]
        obj.lat, obj.lon = _point_of(positions)
    if name == "FeaturesOfInterest" and "feature" in body:
        geojson_positions(body["feature"], f"{where}.feature")
        obj.feature = _object(body["feature"], where, "feature", nullable=False)
        obj.feature_key = feature_key(obj.encoding_type or GEOJSON_TYPES[0], obj.feature)
    if name == "HistoricalLocations" and "time" in body:
        obj.time = parse_time(body["time"], where, "time")
    if name == "Datastreams":
        if "unitOfMeasurement" in body:
            unit = _object(body["unitOfMeasurement"], where, "unitOfMeasurement", nullable=False)
            for part in unit.values():
                if part is not None and not isinstance(part, str):
                    raise StaError(f"{where}.unitOfMeasurement: name, symbol and definition are strings or null")
            obj.unit_of_measurement = unit
        if "observationType" in body:
            kind = body["observationType"]
            if kind not in OBSERVATION_TYPES:
                raise StaError(f"{where}.observationType must be one of {', '.join(OBSERVATION_TYPES)}")
            obj.observation_type = kind
        if "properties" in body and isinstance(body["properties"], dict) and "levels" in body["properties"]:
            levels = body["properties"]["levels"]
            if not isinstance(levels, dict) or not all(
                type(v) in (int, float) and math.isfinite(v) for v in levels.values()
            ):
                raise StaError(f"{where}.properties.levels must map level names to numbers")
            obj.levels = levels


def create_entity(
    session: Session,
    *,
    settings: Settings,
    caller: Caller,
    entity_set: EntitySet,
    body: Any,
    parent: tuple[EntitySet, int, str] | None = None,
) -> Created:
    """Create an entity with what it holds inline (deep insert) or links (`{"@iot.id": n}`); `parent` is the
    (set, id, navigation) of a POST on a navigation path, e.g. (Datastreams, 1, "Observations")."""
    if not isinstance(body, dict):
        raise StaError(f"the body must be a JSON object (a {entity_set.singular})")
    ctx = _Context(session, settings, caller, utcnow())
    if parent is not None:
        parent_set, parent_id, nav_name = parent
        get_entity(session, entity_set=parent_set, entity_id=parent_id)
        body = dict(body)
        back = _back_reference(parent_set, nav_name, entity_set)
        if back is None:
            raise StaMethodNotAllowed(
                f"{entity_set.name} cannot be created under {parent_set.singular}/{nav_name}: "
                f"POST to /{entity_set.name}"
            )
        body[back] = [{"@iot.id": parent_id}] if back in _to_many(entity_set) else {"@iot.id": parent_id}
    if entity_set.name == "Observations":
        ids = _create_observations_inline(ctx, [body], None, entity_set.singular)
        record_change(
            session,
            actor=caller.actor,
            action="sensors.observations.create",
            entity_type="sensor_observations",
            entity_id=ids[0],
            after={"count": 1},
            flush=False,
        )
        return Created(entity_set, ids[0], ids)
    if caller.user is None:
        raise StaForbidden("a device key may only create Observations")
    _require_manager(caller)
    new_id = _create(ctx, entity_set, body, entity_set.singular)
    forget_caches(session)
    observation_ids = _flush_observations(ctx)
    return Created(entity_set, new_id, observation_ids)


def _to_many(entity_set: EntitySet) -> set[str]:
    return {name for name, nav in entity_set.navs.items() if nav.kind != "one"}


def _back_reference(parent_set: EntitySet, nav_name: str, child_set: EntitySet) -> str | None:
    """The navigation property of the child pointing back at the parent (Datastreams(1)/Observations → Datastream)."""
    if nav_name not in parent_set.navs or parent_set.navs[nav_name].target != child_set.name:
        return None
    for name, nav in child_set.navs.items():
        if nav.target == parent_set.name:
            return name
    return None


def _create(ctx: _Context, entity_set: EntitySet, body: Any, where: str) -> int:
    """Create or link one entity; its id."""
    if not isinstance(body, dict):
        raise StaError(f"{where} must be a JSON object")
    link = _link_id(body, where)
    if link is not None:
        return _existing(ctx.session, entity_set, link, where)
    if entity_set.name == "Observations":
        raise StaError(f"{where}: Observations are created after their Datastream (internal)")
    _known_keys(body, entity_set, where)
    _required(body, entity_set, where)
    session = ctx.session
    name = entity_set.name
    if name == "Things":
        return _create_thing(ctx, body, where)
    if name == "Locations":
        location = Location()
        _set_fields(ctx, entity_set, location, body, where)
        session.add(location)
        session.flush()
        things = body.get("Things", [])
        thing_ids = [
            _create(ctx, SETS["Things"], t, f"{where}.Things[{i}]") for i, t in enumerate(_list(things, where))
        ]
        _require_things(session, ctx.caller, thing_ids, "the Locations")
        for thing_id in thing_ids:
            _move_thing(ctx, thing_id, [*_current_locations(session, thing_id), location.id])
        _audit(ctx, "create", entity_set, location)
        return location.id
    if name == "HistoricalLocations":
        if "Thing" not in body:
            raise StaError(f"{where}.Thing is required")
        thing_id = _create(ctx, SETS["Things"], body["Thing"], f"{where}.Thing")
        _require_things(session, ctx.caller, [thing_id], "the HistoricalLocations")
        historical = HistoricalLocation(thing_id=thing_id)
        _set_fields(ctx, entity_set, historical, body, where)
        session.add(historical)
        session.flush()
        for i, item in enumerate(_list(body.get("Locations", []), where)):
            location_id = _create(ctx, SETS["Locations"], item, f"{where}.Locations[{i}]")
            session.add(HistoricalLocationLocation(historical_location_id=historical.id, location_id=location_id))
        _audit(ctx, "create", entity_set, historical)
        return historical.id
    if name in ("Sensors", "ObservedProperties"):
        obj = Sensor() if name == "Sensors" else ObservedProperty()
        _set_fields(ctx, entity_set, obj, body, where)
        session.add(obj)
        session.flush()
        _audit(ctx, "create", entity_set, obj)
        for i, item in enumerate(_list(body.get("Datastreams", []), where)):
            item = dict(item) if isinstance(item, dict) else item
            if isinstance(item, dict):
                item[entity_set.singular] = {"@iot.id": obj.id}
            _create(ctx, SETS["Datastreams"], item, f"{where}.Datastreams[{i}]")
        return obj.id
    if name == "Datastreams":
        return _create_datastream(ctx, body, where, thing_id=None)
    if name == "FeaturesOfInterest":
        feature = FeatureOfInterest()
        _set_fields(ctx, entity_set, feature, body, where)
        existing = session.scalar(
            sa.select(FeatureOfInterest.id).where(FeatureOfInterest.feature_key == feature.feature_key)
        )
        if existing is not None:
            return existing  # the same feature is one FeatureOfInterest
        session.add(feature)
        session.flush()
        _audit(ctx, "create", entity_set, feature)
        return feature.id
    raise StaError(f"{where}: cannot be created")


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise StaError(f"{where}: a navigation property to many entities must be a JSON array")
    if len(value) > 10_000:
        raise StaError(f"{where}: more than 10,000 entities inline")
    return value


def _create_thing(ctx: _Context, body: dict[str, Any], where: str) -> int:
    session = ctx.session
    props = _object(body.get("properties"), where, "properties")
    _props, extras = _thing_extras(props)
    thing = Thing()
    _set_fields(ctx, SETS["Things"], thing, body, where)
    thing.agency_id = _agency_for(ctx, extras, None, where)
    thing.asset_id = _asset_for(ctx, extras, None, where)
    session.add(thing)
    session.flush()
    location_ids = [
        _create(ctx, SETS["Locations"], item, f"{where}.Locations[{i}]")
        for i, item in enumerate(_list(body.get("Locations", []), where))
    ]
    if location_ids:
        _require_locations_free(ctx, location_ids, where)
        _move_thing(ctx, thing.id, location_ids, thing=thing)
    _audit(ctx, "create", SETS["Things"], thing)
    for i, item in enumerate(_list(body.get("Datastreams", []), where)):
        _create_datastream(ctx, item, f"{where}.Datastreams[{i}]", thing_id=thing.id)
    for i, item in enumerate(_list(body.get("HistoricalLocations", []), where)):
        if not isinstance(item, dict):
            raise StaError(f"{where}.HistoricalLocations[{i}] must be a JSON object")
        _create(ctx, SETS["HistoricalLocations"], {**item, "Thing": {"@iot.id": thing.id}}, f"{where}.HL[{i}]")
    return thing.id


def _require_locations_free(ctx: _Context, location_ids: list[int], where: str) -> None:
    """OPD staff may link only Locations that belong to no Thing or to Things of their OPD."""
    things = set(
        ctx.session.scalars(sa.select(ThingLocation.thing_id).where(ThingLocation.location_id.in_(location_ids)))
    )
    _require_things(ctx.session, ctx.caller, things, f"{where}.Locations")


def _current_locations(session: Session, thing_id: int) -> list[int]:
    return list(
        session.scalars(
            sa.select(ThingLocation.location_id).where(ThingLocation.thing_id == thing_id).order_by("location_id")
        )
    )


def _move_thing(ctx: _Context, thing_id: int, location_ids: list[int], *, thing: Thing | None = None) -> None:
    """Set a Thing's Locations; a change adds a HistoricalLocation (spec 8.2.3) and places the Thing again."""
    session = ctx.session
    wanted = list(dict.fromkeys(location_ids))
    if wanted == _current_locations(session, thing_id):
        return
    session.execute(sa.delete(ThingLocation).where(ThingLocation.thing_id == thing_id))
    for location_id in wanted:
        session.add(ThingLocation(thing_id=thing_id, location_id=location_id))
    historical = HistoricalLocation(thing_id=thing_id, time=ctx.now)
    session.add(historical)
    session.flush()
    for location_id in wanted:
        session.add(HistoricalLocationLocation(historical_location_id=historical.id, location_id=location_id))
    thing = thing or session.get(Thing, thing_id)
    session.flush()
    _place_thing(ctx, thing)
    session.flush()


def _create_datastream(ctx: _Context, body: Any, where: str, *, thing_id: int | None) -> int:
    if not isinstance(body, dict):
        raise StaError(f"{where} must be a JSON object")
    link = _link_id(body, where)
    if link is not None:
        if thing_id is not None:
            raise StaError(f"{where}: an existing Datastream cannot move to another Thing by a link")
        return _existing(ctx.session, SETS["Datastreams"], link, where)
    entity_set = SETS["Datastreams"]
    _known_keys(body, entity_set, where)
    _required(body, entity_set, where)
    if thing_id is None:
        if "Thing" not in body:
            raise StaError(f"{where}.Thing is required")
        thing_id = _create(ctx, SETS["Things"], body["Thing"], f"{where}.Thing")
    _require_things(ctx.session, ctx.caller, [thing_id], "its Datastreams")
    for nav in ("Sensor", "ObservedProperty"):
        if nav not in body:
            raise StaError(f"{where}.{nav} is required")
    sensor_id = _create(ctx, SETS["Sensors"], body["Sensor"], f"{where}.Sensor")
    property_id = _create(ctx, SETS["ObservedProperties"], body["ObservedProperty"], f"{where}.ObservedProperty")
    datastream = Datastream(thing_id=thing_id, sensor_id=sensor_id, observed_property_id=property_id)
    _set_fields(ctx, entity_set, datastream, body, where)
    ctx.session.add(datastream)
    ctx.session.flush()
    _audit(ctx, "create", entity_set, datastream)
    for i, item in enumerate(_list(body.get("Observations", []), where)):
        ctx.pending_observations.append((item, datastream.id, f"{where}.Observations[{i}]"))
    return datastream.id


def _flush_observations(ctx: _Context) -> list[int]:
    if not ctx.pending_observations:
        return []
    forget_caches(ctx.session)
    items = ctx.pending_observations
    ctx.pending_observations = []
    ids: list[int] = []
    for body, datastream_id, where in items:
        if not isinstance(body, dict):
            raise StaError(f"{where} must be a JSON object")
        ids += _create_observations_inline(ctx, [{**body, "Datastream": {"@iot.id": datastream_id}}], None, where)
    return ids


OBSERVATION_KEYS = {
    "phenomenonTime",
    "resultTime",
    "result",
    "resultQuality",
    "validTime",
    "parameters",
    "Datastream",
    "FeatureOfInterest",
}


def _create_observations_inline(ctx: _Context, bodies: list[Any], datastream_id: int | None, where: str) -> list[int]:
    """Create Observations from their JSON (single POSTs and deep inserts): checked, then one store call."""
    rows: list[store.NewObservation] = []
    for body in bodies:
        if not isinstance(body, dict):
            raise StaError(f"{where} must be a JSON object")
        for key in body:
            if key not in OBSERVATION_KEYS and not key.endswith(("@iot.navigationLink", "@iot.selfLink")):
                raise StaError(f"{where}: unknown property {key!r} (known: {', '.join(sorted(OBSERVATION_KEYS))})")
        if "result" not in body:
            raise StaError(f"{where}.result is required")
        ds = datastream_id
        if ds is None:
            if "Datastream" not in body:
                raise StaError(f"{where}.Datastream is required")
            ds = _linked_datastream(body["Datastream"], where)
        thing_id, observation_type, feature_id = _datastream_target(ctx, ds, where)
        if ctx.caller.user is None or not ctx.caller.is_admin:
            _require_things(ctx.session, ctx.caller, [thing_id], "Observations")
        check_result(body["result"], observation_type, where)
        if "FeatureOfInterest" in body:
            feature_id = _create(ctx, SETS["FeaturesOfInterest"], body["FeatureOfInterest"], f"{where}.FOI")
        elif feature_id is None:
            raise StaError(f"{where}.FeatureOfInterest is required: the Thing has no Location to derive it from")
        rows.append(_new_observation(ctx, body, ds, feature_id, where))
    try:
        return store.add_observations(ctx.session, rows, settings=ctx.settings)
    except store.StoreError as error:
        raise StaError(f"{where}: {error.reason}") from None


def _linked_datastream(link: Any, where: str) -> int:
    datastream_id = _link_id(link, f"{where}.Datastream")
    if datastream_id is None:
        raise StaError(f"{where}.Datastream must link an existing Datastream by its @iot.id")
    return datastream_id


def _datastream_target(ctx: _Context, datastream_id: int, where: str) -> tuple[int, str, int | None]:
    """(Thing, observationType, default FeatureOfInterest) of the Datastream an Observation goes to; 400 if none."""
    targets = datastream_targets(ctx.session, [datastream_id])
    if datastream_id not in targets:
        raise StaError(f"{where}.Datastream: no Datastream with @iot.id {datastream_id}")
    return targets[datastream_id]


def _new_observation(
    ctx: _Context, body: dict[str, Any], datastream_id: int, feature_id: int | None, where: str
) -> store.NewObservation:
    start, end = (ctx.now, None)
    if body.get("phenomenonTime") is not None:
        start, end = parse_interval(body["phenomenonTime"], where, "phenomenonTime")
    limit = ctx.now + MAX_FUTURE
    if start > limit or (end is not None and end > limit):
        raise StaError(f"{where}.phenomenonTime is more than a day in the future")
    result_time = parse_time(body["resultTime"], where, "resultTime") if body.get("resultTime") else None
    valid = (None, None)
    if body.get("validTime") is not None:
        valid = parse_interval(body["validTime"], where, "validTime")
        if valid[1] is None:
            raise StaError(f"{where}.validTime must be an interval start/end")
    quality = body.get("resultQuality")
    if quality is not None and not isinstance(quality, str):
        quality = json.dumps(quality)
    if quality is not None and (len(quality) > 10_000 or "\x00" in quality):
        raise StaError(f"{where}.resultQuality is too long or contains a NUL")
    parameters = _object(body.get("parameters"), where, "parameters")
    if not _no_nul(body["result"]):
        raise StaError(f"{where}.result contains a NUL character or a number that is not finite")
    return store.NewObservation(
        datastream_id=datastream_id,
        phenomenon_time=start,
        phenomenon_time_end=end,
        result=body["result"],
        result_time=result_time,
        result_quality=quality,
        valid_time_start=valid[0],
        valid_time_end=valid[1],
        parameters=parameters,
        feature_id=feature_id,
    )


# --- CreateObservations (dataArray) -----------------------------------------------------------------------------

DATA_ARRAY_COMPONENTS = {"phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters",
                         "FeatureOfInterest/id"}  # fmt: skip


def _components_plan(components: Any, where: str) -> tuple[int | None, int, bool, bool]:
    """(index of phenomenonTime or None, index of result, only those two, names FeatureOfInterest/id) of a group's
    components; StaError when they are not a list of known names once each, with result among them."""
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise StaError(f"{where}.components must be an array of names")
    unknown = [c for c in components if c not in DATA_ARRAY_COMPONENTS]
    if unknown or len(set(components)) != len(components) or "result" not in components:
        raise StaError(
            f"{where}.components: names once each, 'result' among them, from {', '.join(DATA_ARRAY_COMPONENTS)}"
        )
    t_at = components.index("phenomenonTime") if "phenomenonTime" in components else None
    simple = len(components) == (2 if t_at is not None else 1)
    return t_at, components.index("result"), simple, "FeatureOfInterest/id" in components


def create_observations_batch(
    session: Session, *, settings: Settings, caller: Caller, groups: Any, max_observations: int = 10_000
) -> list[int]:
    """The dataArray extension: every row of every group stored, or nothing (StaError naming group and row).

    The hot path of HTTP ingest (bench ingest_http): the parsed JSON goes straight into the store's rows; the
    components of a group are checked once per distinct list, a plain (phenomenonTime, result) row costs a type
    check and a time parse."""
    if not isinstance(groups, list):
        raise StaError("CreateObservations: the body must be a JSON array of {Datastream, components, dataArray}")
    now = utcnow()
    limit = now + MAX_FUTURE
    plan = _plain_plan(groups, max_observations) or _checked_plan(groups, max_observations)
    from kotacerdas.db import begin_writes

    wanted = set(map(itemgetter(0), plan))
    # On SQLite the request takes the writer queue only for the store's write and the commit (the route is
    # deps.writes_late), so that other requests parse and check their rows meanwhile (bench/ingest_http.py). A
    # Datastream not in the cache may make datastream_targets create a FeatureOfInterest: then it writes from here.
    if not targets_cached(session, wanted):
        begin_writes(session)
    targets = datastream_targets(session, wanted)
    if not targets.keys() >= wanted:
        g, ds = next((g, ds) for ds, _c, _d, g, _f in plan if ds not in targets)
        raise StaError(f"CreateObservations[{g}].Datastream: no Datastream with @iot.id {ds}")
    if not caller.is_admin:
        _require_things(session, caller, {targets[entry[0]][0] for entry in plan}, "Observations")
    plain = _plain_numbers(plan, targets, limit)
    if plain is not None:
        return _store_batch(session, settings, caller, plan, plain)
    rows: list[store.NewObservation] = []
    append = rows.append
    new = store.NewObservation
    fromisoformat = datetime.fromisoformat
    isfinite = math.isfinite
    for ds, components, data, g, (t_at, r_at, simple, named_feature) in plan:
        _thing, observation_type, feature_id = targets[ds]
        kind = OBSERVATION_TYPES.get(observation_type, "any")
        width = len(components)
        if not named_feature and feature_id is None:
            raise StaError(
                f"CreateObservations[{g}]: FeatureOfInterest/id is needed, the Thing has no Location to derive it from"
            )
        for r, row in enumerate(data):
            if type(row) is not list or len(row) != width:
                raise StaError(f"CreateObservations[{g}].dataArray[{r}] must be an array of {width} values")
            result = row[r_at]
            kr = type(result)
            if kr is float:
                if kind != "number" and kind != "any":
                    check_result(result, observation_type, f"CreateObservations[{g}].dataArray[{r}]")
                if not isfinite(result):
                    raise StaError(f"CreateObservations[{g}].dataArray[{r}]: result is NaN or infinite")
            else:
                if not (kr is int and kind == "number") and kind != "any":
                    check_result(result, observation_type, f"CreateObservations[{g}].dataArray[{r}]")
                if kr is not int and kr is not bool and result is not None and not _no_nul(result):
                    # PostgreSQL refuses a NUL in text and JSON: a 400 naming the row, not a failed COPY.
                    raise StaError(f"CreateObservations[{g}].dataArray[{r}]: result contains a NUL character")
            end = None
            if t_at is None or row[t_at] is None:
                moment = now
            else:
                value = row[t_at]
                moment = None
                if type(value) is str:
                    try:
                        moment = fromisoformat(value)
                    except ValueError:
                        moment = None
                    if moment is not None and moment.tzinfo is None:
                        moment = None
                if moment is None:
                    where = f"CreateObservations[{g}].dataArray[{r}]"
                    if type(value) is str and "/" in value:
                        moment, end = parse_interval(value, where, "phenomenonTime")
                    else:
                        moment = parse_time(value, where, "phenomenonTime")
            if moment > limit:
                raise StaError(f"CreateObservations[{g}].dataArray[{r}]: phenomenonTime is more than a day ahead")
            if simple and end is None:
                append(new(ds, moment, result, None, None, None, None, None, None, feature_id))
                continue
            where = f"CreateObservations[{g}].dataArray[{r}]"
            body = dict(zip(components, row, strict=True))
            body.pop("phenomenonTime", None)
            if not _no_nul(result):
                raise StaError(f"{where}.result contains a NUL character or a number that is not finite")
            ctx = _Context(session, settings, caller, now)
            item = _new_observation(ctx, {**body, "phenomenonTime": None}, ds, feature_id, where)
            item.phenomenon_time, item.phenomenon_time_end = moment, end
            if named_feature:
                fid = body["FeatureOfInterest/id"]
                if type(fid) is not int or not 1 <= fid < 2**31:
                    raise StaError(f"{where}: FeatureOfInterest/id must be an id")
                item.feature_id = fid
            append(item)
    features = {targets[ds][2] for ds in targets}
    named = {row.feature_id for row in rows if row.feature_id not in features}
    if named:
        known = set(session.scalars(sa.select(FeatureOfInterest.id).where(FeatureOfInterest.id.in_(named))))
        if named - known:
            raise StaError(f"CreateObservations: no FeatureOfInterest with @iot.id {min(named - known)}")
    return _store_batch(session, settings, caller, plan, rows)


def _store_batch(
    session: Session,
    settings: Settings,
    caller: Caller,
    plan: list,
    rows: list[store.NewObservation] | store.NumericRows,
) -> list[int]:
    """The checked rows of a CreateObservations into the store, holding the writer queue, and the audit row."""
    from kotacerdas.db import begin_writes

    begin_writes(session)
    try:
        ids = store.add_observations(session, rows, settings=settings)
    except store.StoreError as error:
        raise StaError(f"CreateObservations: {_locate_row(plan, error.index)}: {error.reason}") from None
    record_change(
        session,
        actor=caller.actor,
        action="sensors.observations.create",
        entity_type="sensor_datastreams",
        entity_id=None,
        after={"count": len(ids), "datastreams": sorted({entry[0] for entry in plan})[:100]},
        flush=False,
    )
    return ids


def _checked_plan(groups: list, max_observations: int) -> list:
    """The plan of `create_observations_batch`, one (Datastream id, components, dataArray, group index, components'
    plan) per group, every group checked in turn: a StaError names the first bad one."""
    total = 0
    plan = []
    plans: dict[tuple[str, ...], tuple[int | None, int, bool, bool]] = {}
    for g, group in enumerate(groups):
        if type(group) is not dict:
            raise StaError(f"CreateObservations[{g}] must be a JSON object")
        link = group.get("Datastream")
        ds = link.get("@iot.id") if type(link) is dict else None
        if type(ds) is not int or not 1 <= ds < 2**63:
            where = f"CreateObservations[{g}]"
            ds = _link_id(link, f"{where}.Datastream") if "Datastream" in group else None
            if ds is None:
                raise StaError(f"{where}.Datastream must link an existing Datastream by its @iot.id")
        components = group.get("components")
        key = tuple(components) if type(components) is list else None
        found = plans.get(key) if key is not None and len(key) < 10 else None
        if found is None:
            found = _components_plan(components, f"CreateObservations[{g}]")
            if key is not None and len(plans) < 100:
                plans[key] = found
        data = group.get("dataArray")
        if type(data) is not list:
            raise StaError(f"CreateObservations[{g}].dataArray must be an array of rows")
        total += len(data)
        if total > max_observations:
            raise StaTooLarge(f"CreateObservations: more than {max_observations:,} observations in one request")
        plan.append((ds, components, data, g, found))
    return plan


_PLAIN_COMPONENTS = ["phenomenonTime", "result"]
_PLAIN_COMPONENTS_PLAN = (0, 1, True, False)  # _components_plan(_PLAIN_COMPONENTS)


def _plain_plan(groups: Any, max_observations: int) -> list | None:
    """The plan of `create_observations_batch` for a body whose every group is {"Datastream": {"@iot.id": n},
    "components": ["phenomenonTime", "result"], "dataArray": [...]} (what a gauge sends), made by a few passes in C
    over the groups instead of a Python loop over ~950 of them; None for any other body, which the loop then checks
    and names what is wrong in."""
    if type(groups) is not list or not groups or set(map(type, groups)) != {dict}:
        return None
    try:
        links = list(map(itemgetter("Datastream"), groups))
        components = list(map(itemgetter("components"), groups))
        data = list(map(itemgetter("dataArray"), groups))
        if set(map(type, links)) != {dict}:
            return None
        ids = list(map(itemgetter("@iot.id"), links))
    except KeyError:
        return None
    if components.count(_PLAIN_COMPONENTS) != len(groups) or set(map(type, ids)) != {int}:
        return None
    if set(map(type, data)) != {list} or min(ids) < 1 or max(ids) >= 2**63:
        return None
    if sum(map(len, data)) > max_observations:
        raise StaTooLarge(f"CreateObservations: more than {max_observations:,} observations in one request")
    return list(zip(ids, components, data, range(len(groups)), repeat(_PLAIN_COMPONENTS_PLAN), strict=False))


def _plain_numbers(
    plan: list, targets: dict[int, tuple[int, str, int | None]], limit: datetime
) -> store.NumericRows | None:
    """The batch as columns when every group has the components [phenomenonTime, result], every row is an ISO 8601
    time with its offset, at most `limit`, and a finite number, for Datastreams of numbers (or of any result) whose
    FeatureOfInterest comes from their Thing: what a gauge sends, checked with a few passes in C over all rows
    (bench/ingest_http.py: 950 groups of one row cost 9 ms one row at a time). None otherwise: the row-by-row checks
    then name the first bad row."""
    if set(map(itemgetter(4), plan)) != {_PLAIN_COMPONENTS_PLAN}:
        return None
    ids = list(map(itemgetter(0), plan))
    data = list(map(itemgetter(2), plan))
    found = list(map(targets.__getitem__, ids))
    features = list(map(itemgetter(2), found))
    if None in features:
        return None
    if {OBSERVATION_TYPES.get(kind, "any") for kind in set(map(itemgetter(1), found))} - {"number", "any"}:
        return None
    counts = list(map(len, data))
    datastream_ids = list(chain.from_iterable(map(repeat, ids, counts)))
    feature_ids = list(chain.from_iterable(map(repeat, features, counts)))
    flat = list(chain.from_iterable(data))
    if not flat or set(map(type, flat)) != {list} or set(map(len, flat)) != {2}:
        return None
    times = list(map(itemgetter(0), flat))
    numbers = list(map(itemgetter(1), flat))
    if set(map(type, times)) != {str} or not set(map(type, numbers)) <= {float, int}:
        return None
    if not all(map(math.isfinite, numbers)):
        return None
    try:
        moments = list(map(datetime.fromisoformat, times))
    except ValueError:
        return None
    if None in map(attrgetter("tzinfo"), moments) or max(moments) > limit:
        return None
    return store.NumericRows(datastream_ids, moments, numbers, feature_ids)


def _locate_row(plan: list, index: int) -> str:
    for _ds, _components, data, g, _found in plan:
        if index < len(data):
            return f"CreateObservations[{g}].dataArray[{index}]"
        index -= len(data)
    return "a row"


# --- updating ---------------------------------------------------------------------------------------------------


def update_entity(
    session: Session, *, settings: Settings, caller: Caller, entity_set: EntitySet, entity_id: int, body: Any
) -> None:
    """PATCH: change the properties given (and the links to other entities); the rest stays."""
    if not isinstance(body, dict):
        raise StaError(f"the body must be a JSON object (a {entity_set.singular})")
    get_entity(session, entity_set=entity_set, entity_id=entity_id)
    require_change(session, caller=caller, entity_set=entity_set, entity_id=entity_id)
    where = f"{entity_set.singular}({entity_id})"
    _known_keys(body, entity_set, where)
    if "@iot.id" in body and body["@iot.id"] != entity_id:
        raise StaError(f"{where}: @iot.id cannot change")
    for name in entity_set.required:
        if name in body and body[name] is None:
            raise StaError(f"{where}.{name} cannot be null")
    ctx = _Context(session, settings, caller, utcnow())
    if entity_set.name == "Observations":
        _update_observation(ctx, entity_id, body, where)
        return
    obj = session.get(entity_set.model, entity_id)
    before = snapshot(obj, exclude=("device_key_hash",))
    if entity_set.name == "FeaturesOfInterest" and ("feature" in body or "encodingType" in body):
        body = {"feature": obj.feature, **body}
    _set_fields(ctx, entity_set, obj, body, where)
    if entity_set.name == "Things":
        props = body.get("properties")
        _props, extras = _thing_extras(props if isinstance(props, dict) else None)
        if "properties" not in body:
            extras = {}
        obj.agency_id = _agency_for(ctx, extras, obj.agency_id, where)
        obj.asset_id = _asset_for(ctx, extras, obj.asset_id, where)
        obj.updated_at = ctx.now
        if "Locations" in body:
            ids = [
                _create(ctx, SETS["Locations"], item, f"{where}.Locations[{i}]")
                for i, item in enumerate(_list(body["Locations"], where))
            ]
            _require_locations_free(ctx, ids, where)
            _move_thing(ctx, entity_id, ids, thing=obj)
    if entity_set.name == "Datastreams":
        for nav, column in (
            ("Thing", "thing_id"),
            ("Sensor", "sensor_id"),
            ("ObservedProperty", "observed_property_id"),
        ):
            if nav in body:
                target = _link_id(body[nav], f"{where}.{nav}")
                if target is None:
                    raise StaError(f"{where}.{nav}: link an existing entity by its @iot.id")
                _existing(session, nav_set(entity_set, nav), target, f"{where}.{nav}")
                if nav == "Thing":
                    _require_things(session, caller, [target], "its Datastreams")
                setattr(obj, column, target)
    if entity_set.name == "Locations":
        for thing_id in _things_of(session, entity_set, entity_id):
            thing = session.get(Thing, thing_id)
            session.flush()
            _place_thing(ctx, thing)
    if entity_set.name == "HistoricalLocations" and "Thing" in body:
        target = _link_id(body["Thing"], f"{where}.Thing")
        if target is None:
            raise StaError(f"{where}.Thing: link an existing Thing by its @iot.id")
        _existing(session, SETS["Things"], target, f"{where}.Thing")
        _require_things(session, caller, [target], "its HistoricalLocations")
        obj.thing_id = target
    session.flush()
    _audit(ctx, "update", entity_set, obj, before)
    forget_caches(session)


def _update_observation(ctx: _Context, observation_id: int, body: dict[str, Any], where: str) -> None:
    """PATCH of an Observation: the properties given replace the stored ones and are checked as a new
    Observation's are (the result against the Datastream's observation type, times, NUL characters); a new
    Datastream must be one the caller may write to. The store keeps the id and follows with rollups and current
    values (store.update_observation)."""
    old = store.get_observation(ctx.session, observation_id)
    if old is None:
        raise StaNotFound(f"no Observation with @iot.id {observation_id}")
    if "phenomenonTime" in body and body["phenomenonTime"] is None:
        raise StaError(f"{where}.phenomenonTime cannot be null")
    stored = {
        "phenomenonTime": _interval_text(old.phenomenon_time, old.phenomenon_time_end),
        "resultTime": _interval_text(old.result_time, None),
        "result": old.result,
        "resultQuality": old.result_quality,
        "validTime": _interval_text(old.valid_time_start, old.valid_time_end),
        "parameters": old.parameters,
    }
    merged = {**stored, **{key: value for key, value in body.items() if key in stored}}
    datastream_id = _linked_datastream(body["Datastream"], where) if "Datastream" in body else old.datastream_id
    thing_id, observation_type, _feature = _datastream_target(ctx, datastream_id, where)
    if datastream_id != old.datastream_id:
        _require_things(ctx.session, ctx.caller, [thing_id], "Observations")
    check_result(merged["result"], observation_type, where)
    feature_id = old.feature_id
    if "FeatureOfInterest" in body:
        feature_id = _create(ctx, SETS["FeaturesOfInterest"], body["FeatureOfInterest"], f"{where}.FeatureOfInterest")
    new = _new_observation(ctx, merged, datastream_id, feature_id, where)
    try:
        store.update_observation(ctx.session, observation_id, new)
    except store.StoreError as error:
        raise StaError(f"{where}: {error.reason}") from None
    record_change(
        ctx.session,
        actor=ctx.caller.actor,
        action="sensors.observation.update",
        entity_type="sensor_observations",
        entity_id=observation_id,
        before=_observation_audit(old.datastream_id, old.phenomenon_time, old.result, old.feature_id),
        after=_observation_audit(datastream_id, new.phenomenon_time, new.result, feature_id),
    )


def _interval_text(start: datetime | None, end: datetime | None) -> str | None:
    """A stored time or interval as the ISO 8601 text a body carries (parse_interval reads it back)."""
    if start is None:
        return None
    return start.isoformat() if end is None else f"{start.isoformat()}/{end.isoformat()}"


def _observation_audit(datastream_id: int, phenomenon_time: datetime | int, result: Any, feature_id: Any) -> dict:
    return {
        "datastream_id": datastream_id,
        "phenomenon_time": store.to_datetime(phenomenon_time).isoformat(),
        "result": result,
        "feature_id": feature_id,
    }


# --- deleting ---------------------------------------------------------------------------------------------------

MAX_CASCADE_OBSERVATIONS = 10_000


def delete_entity(
    session: Session, *, settings: Settings, caller: Caller, entity_set: EntitySet, entity_id: int
) -> None:
    """DELETE with the cascades of the standard: a Thing takes its Datastreams (and their Observations) and
    HistoricalLocations; a Sensor or ObservedProperty its Datastreams; a Datastream its Observations; a Location
    the HistoricalLocations left without one; a FeatureOfInterest its Observations."""
    row = get_entity(session, entity_set=entity_set, entity_id=entity_id)
    require_change(session, caller=caller, entity_set=entity_set, entity_id=entity_id)
    ctx = _Context(session, settings, caller, utcnow())
    name = entity_set.name
    if name == "Observations":
        store.delete_observation(session, entity_id)
        record_change(
            session,
            actor=caller.actor,
            action="sensors.observation.delete",
            entity_type="sensor_observations",
            entity_id=entity_id,
            before={"datastream_id": row["datastream_id"], "phenomenon_time": row["phenomenon_time"].isoformat()},
        )
        return
    if name == "FeaturesOfInterest":
        table = SETS["Observations"].table(dialect_of(session))
        ids = list(
            session.scalars(
                sa.select(table.c.id).where(table.c.feature_id == entity_id).limit(MAX_CASCADE_OBSERVATIONS + 1)
            )
        )
        if len(ids) > MAX_CASCADE_OBSERVATIONS:
            raise StaConflict(
                f"FeatureOfInterest({entity_id}) has more than {MAX_CASCADE_OBSERVATIONS:,} Observations: "
                "delete their Datastreams instead"
            )
        for observation_id in ids:
            store.delete_observation(session, observation_id)
    datastreams: list[int] = []
    if name == "Things":
        datastreams = list(session.scalars(sa.select(Datastream.id).where(Datastream.thing_id == entity_id)))
    elif name == "Sensors":
        datastreams = list(session.scalars(sa.select(Datastream.id).where(Datastream.sensor_id == entity_id)))
    elif name == "ObservedProperties":
        datastreams = list(
            session.scalars(sa.select(Datastream.id).where(Datastream.observed_property_id == entity_id))
        )
    elif name == "Datastreams":
        datastreams = [entity_id]
    for datastream_id in datastreams:
        store.delete_datastream_observations(session, datastream_id)
        if datastream_id != entity_id or name != "Datastreams":
            session.execute(sa.delete(Datastream).where(Datastream.id == datastream_id))
    obj = session.get(entity_set.model, entity_id)
    before = snapshot(obj, exclude=("device_key_hash",))
    things = _things_of(session, entity_set, entity_id) if name == "Locations" else set()
    session.delete(obj)
    session.flush()
    if name == "Locations":
        orphans = sa.select(HistoricalLocation.id).where(
            ~sa.exists().where(HistoricalLocationLocation.historical_location_id == HistoricalLocation.id)
        )
        session.execute(sa.delete(HistoricalLocation).where(HistoricalLocation.id.in_(orphans)))
        for thing_id in things:
            _place_thing(ctx, session.get(Thing, thing_id))
    record_change(
        session,
        actor=caller.actor,
        action=f"sensors.{entity_set.singular.lower()}.delete",
        entity_type=entity_set.model.__tablename__,
        entity_id=entity_id,
        before=before,
    )
    session.flush()
    forget_caches(session)


# --- public tiles (sensors.readings), for other domains' pages -----------------------------------------------------


def tiles_for_asset(session: Session, *, settings: Settings, asset_id: int) -> list[dict[str, Any]]:
    """The live tiles of the Datastreams of the Things linked to an asset, as the views the sensor tile macro
    renders (texts in the request's language; nothing private)."""
    from kotacerdas.sensors import readings

    tiles = readings.tiles_for_asset(session, settings=settings, asset_id=asset_id)
    return [readings.tile_view(tile, settings) for tile in tiles]
