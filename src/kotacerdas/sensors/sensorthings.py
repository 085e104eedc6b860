"""The OGC SensorThings API 1.1 (Sensing) over HTTP at /sensorthings/v1.1 (docs/sensorthings.md).

One route takes every resource path (`Things(1)/Datastreams`, `Datastreams(1)/Observations`, `Things(1)/name/$value`)
and walks it through the entity model of `sensors.service`; the query options are parsed and compiled by
`sensors.query`. Reads are public; writes need an API token with sensors.manage (Bearer, or HTTP Basic with the
username and the token) or, for Observations of its own Thing, a device key. Errors are problem+json.

The router is left out of the OpenAPI document: its paths (`Things(1)`) do not fit OpenAPI's path templates. A
hypothesis test throws arbitrary paths, options and bodies at it instead (tests/sensors/test_sensorthings.py)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.deps import SessionDep, SettingsDep, client_ip, writes_late
from kotacerdas.errors import DomainError, NotAuthenticated
from kotacerdas.problems import problem_response
from kotacerdas.sensors import devices, service
from kotacerdas.sensors import query as q
from kotacerdas.sensors.messages import Health
from kotacerdas.sensors.service import SETS, Caller, EntitySet, StaError, StaNotFound

PREFIX = "/sensorthings/v1.1"
router = APIRouter(prefix=PREFIX, include_in_schema=False)
MAX_BODY = 16 * 1024 * 1024
MAX_BATCH = 10_000
REALM = 'Basic realm="kotacerdas"'
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
]
MQTT_CREATE = "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation"
_SEGMENT = re.compile(r"([A-Za-z]+)(?:\((\d{1,18})\))?\Z")
_ENTITY_KEYS = {
    "Things": ("name", "description", "properties"),
    "Locations": ("name", "description", "encodingType", "location", "properties"),
    "HistoricalLocations": ("time",),
    "Sensors": ("name", "description", "encodingType", "metadata", "properties"),
    "ObservedProperties": ("name", "definition", "description", "properties"),
    "Datastreams": (
        "name", "description", "unitOfMeasurement", "observationType", "observedArea", "phenomenonTime", "resultTime",
        "properties",
    ),
    "Observations": ("phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters"),
    "FeaturesOfInterest": ("name", "description", "encodingType", "feature", "properties"),
}  # fmt: skip


async def raw_body(request: Request) -> bytes:
    """The request body, read on the event loop (the endpoint runs in a thread)."""
    if request.method in ("GET", "HEAD", "DELETE"):
        return b""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return b"\x00too-large"
        chunks.append(chunk)
    return b"".join(chunks)


Body = Annotated[bytes, Depends(raw_body)]


# --- answers ----------------------------------------------------------------------------------------------------


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json", headers=headers)


def _problem(request: Request, error: DomainError) -> Response:
    title = {400: "Bad request", 401: "Not logged in", 403: "Not allowed", 404: "Not found", 405: "Method not allowed",
             409: "Conflict", 413: "Payload too large", 501: "Not implemented", 503: "Busy"}  # fmt: skip
    headers = dict(error.headers)
    if error.status_code == 401:
        headers["WWW-Authenticate"] = REALM
    return problem_response(
        status=error.status_code,
        slug=error.slug,
        title=title.get(error.status_code, "Error"),
        detail=error.detail,
        instance=request.url.path,
        errors=error.errors,
        headers=headers,
    )


def base_url(request: Request, settings: Settings) -> str:
    """The absolute address of the service root, for selfLinks: the public address, else the request's."""
    configured = settings.public_base_url.rstrip("/")
    if configured and configured != "http://127.0.0.1:8000":
        return configured + PREFIX
    return str(request.base_url).rstrip("/") + PREFIX


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _interval(start: datetime | None, end: datetime | None) -> str | None:
    if start is None:
        return None
    return iso(start) if end is None else f"{iso(start)}/{iso(end)}"


def _values(entity_set: EntitySet, row: dict[str, Any]) -> dict[str, Any]:
    """The properties of an entity as SensorThings names them."""
    name = entity_set.name
    if name == "Observations":
        return {
            "phenomenonTime": _interval(row["phenomenon_time"], row["phenomenon_time_end"]),
            "resultTime": iso(row["result_time"]),
            "result": service.result_of(row),
            "resultQuality": row["result_quality"],
            "validTime": _interval(row["valid_time_start"], row["valid_time_end"]),
            "parameters": row["parameters"],
        }
    if name == "Datastreams":
        properties = dict(row["properties"] or {})
        if row["levels"] is not None:
            properties["levels"] = row["levels"]
        return {
            "name": row["name"],
            "description": row["description"],
            "unitOfMeasurement": row["unit_of_measurement"],
            "observationType": row["observation_type"],
            "observedArea": row["observed_area"],
            "phenomenonTime": _interval(row["phenomenon_time_start"], row["phenomenon_time_end"]),
            "resultTime": _interval(row["result_time_start"], row["result_time_end"]),
            "properties": properties or None,
        }
    if name == "HistoricalLocations":
        return {"time": iso(row["time"])}
    values = {key: row[column] for key, column in entity_set.fields.items()}
    if name == "Things":
        # The platform's own facts, read-only; the device key never leaves the server.
        values["properties"] = {
            **(row["properties"] or {}),
            "kotacerdas": {
                "agency_id": row["agency_id"],
                "asset_id": row["asset_id"],
                "desa_code": row["desa_code"],
                "kecamatan_code": row["kecamatan_code"],
                "last_seen_at": iso(row["last_seen_at"]),
                "battery_percent": row["battery_percent"],
                "signal_dbm": row["signal_dbm"],
            },
        }
    return values


class _Renderer:
    def __init__(self, session: Session, base: str) -> None:
        self.session = session
        self.base = base
        self.dialect = service.dialect_of(session)

    def entity(self, entity_set: EntitySet, row: dict[str, Any], options: q.QueryOptions) -> dict[str, Any]:
        link = f"{self.base}/{entity_set.name}({row['id']})"
        selected = {path[0] for path in options.select} if options.select is not None else None
        out: dict[str, Any] = {}
        if selected is None or "id" in selected:
            out["@iot.id"] = row["id"]
            out["@iot.selfLink"] = link
        for key, value in _values(entity_set, row).items():
            if selected is None or key in selected:
                out[key] = value
        for nav in entity_set.navs:
            if selected is None or nav in selected:
                out[f"{nav}@iot.navigationLink"] = f"{link}/{nav}"
        for item in options.expand:
            self.expand(entity_set, row, item, out)
        return out

    def expand(self, entity_set: EntitySet, row: dict[str, Any], item: q.ExpandItem, out: dict[str, Any]) -> None:
        name = item.name
        if name not in entity_set.navs:
            raise q.QueryError(
                f"{entity_set.singular} has no navigation property {name!r} (known: {', '.join(entity_set.navs)})",
                "$expand",
            )
        target = SETS[entity_set.navs[name].target]
        nav = entity_set.navs[name]
        table = target.table(self.dialect)
        if nav.kind == "one":
            if row[nav.fk] is None:
                return
            where = [table.c.id == row[nav.fk]]
        else:
            where = [service.nav_condition(entity_set, name, row["id"], self.dialect)]
        page = service.list_entities(self.session, entity_set=target, options=item.options, where=where)
        if nav.kind == "one":
            if page.rows:
                out[name] = self.entity(target, page.rows[0], item.options)
            return
        if page.count is not None:
            out[f"{name}@iot.count"] = page.count
        out[name] = [self.entity(target, child, item.options) for child in page.rows]


def _next_link(request: Request, base: str, path: str, options: q.QueryOptions) -> str:
    size = q.LIMITS.page_size(options.top)
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("$top", "$skip")]
    params += [("$top", str(size)), ("$skip", str((options.skip or 0) + size))]
    return f"{base}/{path}?{urlencode(params, safe='$')}"


def _data_array(renderer: _Renderer, rows: list[dict[str, Any]], options: q.QueryOptions) -> list[dict[str, Any]]:
    components = ["id", "phenomenonTime", "resultTime", "result"]
    if options.select is not None:
        components = [path[0] for path in options.select if path[0] in ("id", *_ENTITY_KEYS["Observations"])]
    groups: dict[int, list[list[Any]]] = {}
    for row in rows:
        values = _values(SETS["Observations"], row)
        values["id"] = row["id"]
        groups.setdefault(row["datastream_id"], []).append([values[c] for c in components])
    return [
        {
            "Datastream@iot.navigationLink": f"{renderer.base}/Datastreams({ds})",
            "components": components,
            "dataArray@iot.count": len(data),
            "dataArray": data,
        }
        for ds, data in groups.items()
    ]


# --- resource paths ---------------------------------------------------------------------------------------------


class Target:
    """Where a resource path leads: an entity set (collection), one entity, or one property of it."""

    def __init__(self) -> None:
        self.entity_set: EntitySet | None = None
        self.entity_id: int | None = None
        self.where: list[Any] = []
        self.parent: tuple[EntitySet, int, str] | None = None
        self.property: str | None = None
        self.raw_value = False
        self.ref = False  # `…/$ref`: the association links, not the entities
        self.path = ""


def resolve(session: Session, path: str) -> Target:
    """Walk a resource path; StaNotFound for an entity that is not there, StaError for a path that is wrong."""
    target = Target()
    segments = path.strip("/").split("/")
    dialect = service.dialect_of(session)
    for i, segment in enumerate(segments):
        if target.property is not None:
            if segment == "$value" and i == len(segments) - 1:
                target.raw_value = True
                continue
            raise StaNotFound(f"nothing at {path!r}: only $value may follow a property")
        if segment == "$ref" and target.entity_set is not None and i == len(segments) - 1:
            target.ref = True
            continue
        match = _SEGMENT.match(segment)
        if match is None:
            raise StaNotFound(f"nothing at {path!r}: {segment[:60]!r} is not an entity set or property")
        name, given = match.group(1), match.group(2)
        given_id = int(given) if given is not None else None
        if given_id is not None and not 1 <= given_id < 2**63:
            raise StaNotFound(f"no entity with @iot.id {given}")
        current = target.entity_set
        if current is None:
            if name not in SETS:
                raise StaNotFound(f"no entity set {name!r} (known: {', '.join(SETS)})")
            target.entity_set = SETS[name]
            target.entity_id = given_id
            if given_id is not None:
                service.get_entity(session, entity_set=SETS[name], entity_id=given_id)
            continue
        if target.entity_id is None:
            raise StaNotFound(f"nothing at {path!r}: name one entity, e.g. {current.name}(1), before {name}")
        if name in current.navs:
            nav = current.navs[name]
            child = SETS[nav.target]
            condition = service.nav_condition(current, name, target.entity_id, dialect)
            parent = (current, target.entity_id, name)
            table = child.table(dialect)
            if nav.kind == "one":
                if given_id is not None:
                    raise StaNotFound(f"{name} is one entity: no id after it")
                found = session.scalar(table.select().with_only_columns(table.c.id).where(condition))
                if found is None:
                    raise StaNotFound(f"{current.singular}({target.entity_id}) has no {name}")
                target.entity_set, target.entity_id, target.where, target.parent = child, found, [], parent
                continue
            if given_id is not None:
                found = session.scalar(
                    table.select().with_only_columns(table.c.id).where(condition, table.c.id == given_id)
                )
                if found is None:
                    raise StaNotFound(f"{current.singular}({target.entity_id})/{name} has no @iot.id {given_id}")
                target.entity_set, target.entity_id, target.where, target.parent = child, found, [], parent
                continue
            target.entity_set, target.entity_id, target.where, target.parent = child, None, [condition], parent
            continue
        if given_id is None and (name == "id" or name in _ENTITY_KEYS[current.name]):
            target.property = name
            continue
        raise StaNotFound(f"{current.singular} has no property or navigation {name!r}")
    target.path = path.strip("/")
    return target


# --- auth -------------------------------------------------------------------------------------------------------


def caller_of(request: Request, session: Session) -> Caller:
    """Who writes: an API token (Bearer, or Basic with username and token) or a device key (Bearer)."""
    header = request.headers.get("authorization", "")
    scheme, _sep, value = header.partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    ip = client_ip(request)
    if scheme == "bearer" and value:
        try:
            user, _token = accounts.get_token_user(session, token=value)
        except NotAuthenticated:
            thing_id = devices.verify_device_key(session, plain=value) if len(value) < 200 else None
            if thing_id is None:
                raise StaUnauthorized("the API token or device key is invalid or revoked") from None
            return Caller(thing_id=thing_id, ip=ip)
        return Caller(user=user, ip=ip)
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise StaUnauthorized("HTTP Basic credentials are not base64 of username:token") from None
        username, colon, token = decoded.partition(":")
        if not colon or not token:
            raise StaUnauthorized("HTTP Basic credentials are username:token (an API token, not the password)")
        try:
            user, _token = accounts.get_token_user(session, token=token)
        except NotAuthenticated:
            raise StaUnauthorized("the API token is invalid or revoked") from None
        if user.username != username:
            raise StaUnauthorized("the API token does not belong to this username")
        return Caller(user=user, ip=ip)
    raise StaUnauthorized(
        "writing needs an API token: Authorization: Bearer <token>, or HTTP Basic with username and token"
    )


class StaUnauthorized(StaError):
    status_code = 401
    slug = "not-authenticated"


# --- endpoints --------------------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
def service_root(request: Request, settings: SettingsDep) -> Response:
    """The service root: the entity sets and the server's settings (what it conforms to)."""
    base = base_url(request, settings)
    conformance = list(CONFORMANCE)
    settings_body: dict[str, Any] = {"conformance": conformance}
    try:
        from kotacerdas.sensors import ingest  # noqa: F401
    except ImportError:
        pass
    else:
        conformance.append(MQTT_CREATE)
        settings_body[MQTT_CREATE] = {"endpoints": [f"mqtt://{settings.mqtt_host}:{settings.mqtt_port}"]}
    return _json(
        {
            "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
            "serverSettings": settings_body,
        }
    )


@router.post("/CreateObservations")
@writes_late
def create_observations(request: Request, session: SessionDep, settings: SettingsDep, body: Body) -> Response:
    """The dataArray extension: many Observations in one request, all stored or none (400 naming the bad row)."""
    try:
        data = _parse(body)
        caller = caller_of(request, session)
        ids = service.create_observations_batch(
            session, settings=settings, caller=caller, groups=data, max_observations=MAX_BATCH
        )
        _device_seen(session, caller)
        # Committed here, not after the endpoint returns: the commit gives SQLite's writer queue back at once,
        # while the thousand links of the answer are built, instead of after a hop back to the event loop and
        # into another thread (bench/ingest_http.py).
        session.commit()
    except DomainError as error:
        session.rollback()
        return _problem(request, error)
    except (IntegrityError, DataError) as error:
        session.rollback()
        return _problem(request, StaError(f"the database refused the change ({type(error.orig).__name__})"))
    base = base_url(request, settings) + "/Observations("
    return _json([f"{base}{i})" for i in ids], status=201)


def _device_seen(session: Session, caller: Caller) -> None:
    """A device that posted Observations with its key was heard from now, as over MQTT (its health on the pages)."""
    if caller.thing_id is not None:
        devices.record_health(session, [Health(caller.thing_id, utcnow())])


def _parse(body: bytes) -> Any:
    if body == b"\x00too-large":
        raise service.StaTooLarge(f"the body is larger than {MAX_BODY // 1024 // 1024} MB")
    if not body:
        raise StaError("the body is empty: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise StaError(f"the body is not valid JSON ({error})") from None


@router.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
def resource(request: Request, path: str, session: SessionDep, settings: SettingsDep, body: Body) -> Response:
    """Every resource path: read, create, update or delete entities."""
    try:
        return _resource(request, path, session, settings, body)
    except DomainError as error:
        session.rollback()
        return _problem(request, error)
    except (IntegrityError, DataError) as error:
        # A race the checks could not see (a linked entity deleted meanwhile), or a value the database refuses.
        session.rollback()
        return _problem(request, StaError(f"the database refused the change ({type(error.orig).__name__})"))


def _resource(request: Request, path: str, session: Session, settings: Settings, body: bytes) -> Response:
    method = request.method
    base = base_url(request, settings)
    if method != "GET":
        # Authentication first: a visitor learns nothing about what exists from a write.
        caller = caller_of(request, session)
    target = resolve(session, path)
    entity_set = target.entity_set
    if target.ref:
        if method != "GET":
            raise service.StaMethodNotAllowed(
                "association links are read here; change one through its entity, e.g. PATCH /Datastreams(1) with "
                '{"Sensor": {"@iot.id": 2}}'
            )
        return _links(request, session, target, base)
    if method == "GET":
        options = q.parse_query(request.query_params.multi_items())
        renderer = _Renderer(session, base)
        if target.entity_id is None:
            return _collection(request, renderer, target, options, base)
        row = service.get_entity(session, entity_set=entity_set, entity_id=target.entity_id)
        if target.property is not None:
            values = _values(entity_set, row) | {"id": row["id"]}
            value = values.get(target.property)
            if target.raw_value:
                text = value if isinstance(value, str) else orjson.dumps(value).decode()
                return Response(text, media_type="text/plain; charset=utf-8")
            return _json({"@iot.id" if target.property == "id" else target.property: value})
        return _json(renderer.entity(entity_set, row, options))
    if target.property is not None:
        raise service.StaMethodNotAllowed(f"{method} on a property: {method} the entity instead")
    if method == "POST":
        if target.entity_id is not None:
            raise service.StaMethodNotAllowed(f"POST creates in a collection: POST to /{entity_set.name}")
        data = _parse(body)
        created = service.create_entity(
            session,
            settings=settings,
            caller=caller,
            entity_set=entity_set,
            body=data,
            parent=target.parent,
        )
        if entity_set.name == "Observations":
            _device_seen(session, caller)
        session.flush()
        row = service.get_entity(session, entity_set=entity_set, entity_id=created.id)
        link = f"{base}/{entity_set.name}({created.id})"
        return _json(_Renderer(session, base).entity(entity_set, row, q.QueryOptions()), 201, {"Location": link})
    if target.entity_id is None:
        raise service.StaMethodNotAllowed(f"{method} needs one entity, e.g. /{entity_set.name}(1)")
    if method in ("PATCH", "PUT"):
        data = _parse(body)
        if method == "PUT":
            missing = [name for name in entity_set.required if name not in data] if isinstance(data, dict) else []
            if missing:
                raise StaError(f"PUT replaces the whole {entity_set.singular}: {', '.join(missing)} missing")
        service.update_entity(
            session, settings=settings, caller=caller, entity_set=entity_set, entity_id=target.entity_id, body=data
        )
        session.flush()
        row = service.get_entity(session, entity_set=entity_set, entity_id=target.entity_id)
        return _json(_Renderer(session, base).entity(entity_set, row, q.QueryOptions()))
    service.delete_entity(session, settings=settings, caller=caller, entity_set=entity_set, entity_id=target.entity_id)
    return Response(status_code=200)


def _links(request: Request, session: Session, target: Target, base: str) -> Response:
    """`…/$ref`: the self links of an association (one entity, or a collection paged and filtered as entities are)."""
    entity_set = target.entity_set
    options = q.parse_query(request.query_params.multi_items())
    if options.select is not None or options.expand or options.result_format is not None:
        raise StaError("$ref answers links only: $select, $expand and $resultFormat do not apply")
    if target.entity_id is not None:
        return _json({"@iot.selfLink": f"{base}/{entity_set.name}({target.entity_id})"})
    page = service.list_entities(session=session, entity_set=entity_set, options=options, where=target.where)
    out = _page_head(request, base, target, options, page)
    out["value"] = [{"@iot.selfLink": f"{base}/{entity_set.name}({row['id']})"} for row in page.rows]
    return _json(out)


def _page_head(request: Request, base: str, target: Target, options: q.QueryOptions, page: Any) -> dict[str, Any]:
    """A collection's `@iot.count` (when asked) and `@iot.nextLink` (when more follow), before its `value`."""
    out: dict[str, Any] = {}
    if page.count is not None:
        out["@iot.count"] = page.count
    if page.more:
        out["@iot.nextLink"] = _next_link(request, base, target.path, options)
    return out


def _collection(request: Request, renderer: _Renderer, target: Target, options: q.QueryOptions, base: str) -> Response:
    entity_set = target.entity_set
    page = service.list_entities(session=renderer.session, entity_set=entity_set, options=options, where=target.where)
    out = _page_head(request, base, target, options, page)
    if options.result_format == "dataArray":
        if entity_set.name != "Observations":
            raise StaError("$resultFormat=dataArray is for Observations only")
        out["value"] = _data_array(renderer, page.rows, options)
    else:
        out["value"] = [renderer.entity(entity_set, row, options) for row in page.rows]
    return _json(out)
