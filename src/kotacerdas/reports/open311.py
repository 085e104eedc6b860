"""Open311 GeoReport v2 at /open311/v2: discovery, services, service definitions, requests and tokens, JSON and XML.

The specification (http://wiki.open311.org/GeoReport_v2) is the contract here, not this app's conventions: field
and element names are the spec's; errors are its `[{"code", "description"}]` / `<errors><error>…` lists with its
status codes: 403 for a missing or wrong api_key, 404 for what does not exist, 400 for the rest. Where plain HTTP
has a precise code for a case the spec does not cover, that code: 405 a wrong method, 429 the submission rate limit,
500 a failure of ours. No error of these routes reaches the app's problem+json handlers.

The routes are left out of the OpenAPI document: the app's document promises problem+json errors and JSON bodies,
and Open311 answers neither. The real Open311 client in the tests, and their fuzzing of every parameter, check them
instead.

Everything a request shows comes from `service.public_rows`, which applies `public_report`'s privacy rules: no
reporter contact details ever, no text, address or exact place of an anonymous report, and confidential or hidden
reports neither listed nor found.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from kotacerdas import outbound
from kotacerdas.accounts import service as accounts
from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.deps import SessionDep, SettingsDep, client_ip
from kotacerdas.errors import DomainError, InvalidInput, NotAuthenticated, NotFound, PermissionDenied, RateLimited
from kotacerdas.i18n import _, negotiate_locale, reset_locale, set_locale
from kotacerdas.reports import photos, service
from kotacerdas.reports.categories import category_name, clean_attribute_values
from kotacerdas.reports.enums import CLOSED_STATUSES, OPEN_STATUSES, CategoryGroup, ReportSource, ReportStatus
from kotacerdas.reports.models import ReportCategory

log = logging.getLogger("kotacerdas")

router = APIRouter(prefix="/open311/v2", include_in_schema=False)

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
MAX_REQUESTS = 1000
MAX_RANGE = timedelta(days=90)
# The discovery changeset before any category exists.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MEDIA_TIMEOUT_S = 10
# An Open311 POST is a few short fields and a URL; nothing legitimate comes near this.
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 200
# The element name of one item of each XML list (the Spark convention maps these lists to JSON arrays).
XML_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}
# Characters XML 1.0 cannot carry at all (control characters, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# The W3C date-time profile of ISO 8601 the spec asks for; a `+` sent unencoded arrives as a space.
_W3C = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(?P<zone>Z|[+\- ]\d{2}:\d{2}))?$"
)
# What a service_code or a service_request_id can look like; anything else cannot exist and is not looked up.
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
# The submit service's field names, as an Open311 client knows them.
_FIELD_NAMES = {
    "category": "service_code",
    "location": "lat/long",
    "lat": "lat",
    "lon": "long",
    "name": "first_name/last_name",
    "photos": "media_url",
    "url": "media_url",
}


class Open311Error(Exception):
    """An answer in the spec's error format: the HTTP status, the code in the body and what went wrong."""

    def __init__(self, status: int, description: str, *, code: int | None = None, headers: dict | None = None):
        super().__init__(description)
        self.status, self.description = status, description
        self.code = code if code is not None else status
        self.headers = headers or {}


def _from_domain(exc: DomainError) -> Open311Error:
    """A service's error as Open311 reports it: 404 what does not exist, 403 a refused key, 400 all else."""
    fields = [
        _FIELD_NAMES.get(str(item.get("field")), str(item.get("field"))) for item in exc.errors if "field" in item
    ]
    description = exc.detail + (f" ({', '.join(dict.fromkeys(fields))})" if fields else "")
    if isinstance(exc, NotFound):
        return Open311Error(404, description)
    if isinstance(exc, NotAuthenticated | PermissionDenied):
        return Open311Error(403, description)
    if isinstance(exc, RateLimited):
        # Not a case the spec covers; 429 with Retry-After is what HTTP clients know to wait on.
        return Open311Error(429, description, headers=exc.headers)
    return Open311Error(400, description)


# --- output ------------------------------------------------------------------------------------------------------


def _w3c(value: datetime | None, zone: tzinfo) -> str | None:
    """A W3C date-time with the regency's offset, e.g. 2026-03-02T09:15:00+07:00."""
    return value.astimezone(zone).isoformat(timespec="seconds") if value else None


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _xml_element(name: str, value: Any) -> ET.Element:
    element = ET.Element(name)
    if isinstance(value, dict):
        for key, child in value.items():
            element.append(_xml_element(key, child))
    elif isinstance(value, list):
        for child in value:
            element.append(_xml_element(XML_ITEMS[name], child))
    else:
        element.text = _xml_text(value)
    return element


def _json_safe(value: Any) -> Any:
    """`value` with lone surrogates replaced, which orjson (rightly) refuses to encode."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _json_safe(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_json_safe(child) for child in value]
    return value


def _render(fmt: str, root: str, data: Any, *, status: int = 200, headers: dict | None = None) -> Response:
    """`data` as the spec's JSON (the Spark convention: lists are arrays) or XML (under `root`)."""
    if fmt == "json":
        try:
            body = orjson.dumps(data)
        except orjson.JSONEncodeError:
            body = orjson.dumps(_json_safe(data))
    else:
        # Every text goes through ElementTree, which escapes markup; `_xml_text` drops what XML cannot carry.
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
            _xml_element(root, data), encoding="unicode"
        ).encode("utf-8")
    return Response(body, status_code=status, media_type=MEDIA_TYPES[fmt], headers=headers)


def _error_response(fmt: str, error: Open311Error) -> Response:
    return _render(
        fmt, "errors", [{"code": error.code, "description": error.description}], status=error.status,
        headers=error.headers,
    )  # fmt: skip


# --- the frame every route runs in ---------------------------------------------------------------------------------

Form = dict[str, list[str]]


def _locale(request: Request, settings: Settings, form: Form | None) -> str:
    """The answer's language: a `locale` (or `lang`) parameter, else Accept-Language, else the default language."""
    asked = request.query_params.get("locale") or request.query_params.get("lang")
    if not asked and form:
        asked = (form.get("locale") or [""])[0]
    return negotiate_locale(
        query=(asked or "").strip().lower()[:2] or None, cookie=None,
        accept_language=request.headers.get("accept-language"), default=settings.default_locale,
    )  # fmt: skip


def _answer(
    request: Request, settings: Settings, fmt: str, build: Callable[[str], tuple[str, Any]], *, form: Form | None = None
) -> Response:
    """Run `build(locale)`, which returns the root element's name and the data, in the request's language and answer
    in `fmt`; every failure becomes an answer in the spec's error format, never the app's problem+json."""
    locale = _locale(request, settings, form)
    token = set_locale(locale)
    answer_fmt = fmt if fmt in MEDIA_TYPES else "xml"  # XML is the one format every Open311 client reads
    try:
        if fmt not in MEDIA_TYPES:
            raise Open311Error(404, _("Unknown format: use .json or .xml."))
        if _has_nul(request, form):
            # No field may hold one, and PostgreSQL refuses it in a query: refused here, for every field at once.
            raise Open311Error(400, _("The request contains a NUL character, which no field may hold."))
        if "api_key" in request.query_params:
            raise Open311Error(
                400,
                _(
                    "Send api_key in the POST body, never in the URL: addresses end up in logs and browser "
                    "histories, where a key leaks. Treat this key as exposed and ask for a new one."
                ),
            )
        jurisdiction = request.query_params.get("jurisdiction_id") or (form or {}).get("jurisdiction_id", [""])[0]
        jurisdiction = jurisdiction.strip()
        if jurisdiction and jurisdiction.lower() != settings.open311_jurisdiction_id.lower():
            raise Open311Error(
                404,
                _("jurisdiction_id %(given)s was not found; this server serves %(ours)s.")
                % {"given": jurisdiction[:100], "ours": settings.open311_jurisdiction_id},
            )
        root, data = build(locale)
        return _render(answer_fmt, root, data)
    except Open311Error as error:
        return _error_response(answer_fmt, error)
    except DomainError as exc:
        return _error_response(answer_fmt, _from_domain(exc))
    except Exception:
        # Logged like any server error, and answered in the format the client parses.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(
            answer_fmt, Open311Error(500, _("Something went wrong on our side. It has been logged."))
        )
    finally:
        reset_locale(token)


def _has_nul(request: Request, form: Form | None) -> bool:
    texts = [request.url.path, *request.query_params.values()]
    texts += [text for key, values in (form or {}).items() for text in (key, *values)]
    return any("\x00" in text for text in texts)


def _first(values: Form | Any, name: str) -> str | None:
    """A parameter's first value, stripped; empty counts as absent (the spec's rule for optional arguments)."""
    items = values.getlist(name) if hasattr(values, "getlist") else values.get(name, [])
    value = items[0].strip() if items else ""
    return value or None


def _comma_list(request: Request, name: str) -> list[str]:
    """A parameter given comma-separated, or several times, or both."""
    return [part.strip() for value in request.query_params.getlist(name) for part in value.split(",") if part.strip()]


# --- discovery and services -------------------------------------------------------------------------------------


@router.get("/discovery.{fmt}")
def get_discovery(request: Request, session: SessionDep, settings: SettingsDep, fmt: str) -> Response:
    """Service discovery: the GeoReport v2 endpoint, its formats, whom to ask and how to get an API key."""

    def build(locale: str) -> tuple[str, Any]:
        changeset = _w3c(service.categories_changed_at(session) or EPOCH, settings.zone)
        base = settings.public_base_url
        return "discovery", {
            "changeset": changeset,
            "contact": _("Diskominfo of %(region)s, through %(url)s.") % {"region": settings.region_name, "url": base},
            "key_service": _(
                "Partner systems get an API key from Diskominfo: the API token (kc_…) of an account, made at "
                "%(url)s/konsol/token. Send it as the api_key field of the POST body, never in a URL."
            )
            % {"url": base},
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": f"{base}{router.prefix}",
                    "changeset": changeset,
                    "type": "production",
                    "formats": [MEDIA_TYPES["xml"].split(";")[0], MEDIA_TYPES["json"].split(";")[0]],
                }
            ],
        }

    return _answer(request, settings, fmt, build)


def _group_label(group: str, locale: str) -> str:
    try:
        member = CategoryGroup(group)
    except ValueError:
        return group
    return member.label_en if locale == "en" else member.label_id


def _service(category: ReportCategory, locale: str) -> dict[str, Any]:
    other = "id" if locale == "en" else "en"
    # Keywords are synonyms: the name and group in the other language, so a search in either one finds it.
    keywords = dict.fromkeys([category_name(category, other), _group_label(category.group, other)])
    return {
        "service_code": category.code,
        "service_name": category_name(category, locale),
        "description": (category.description_en if locale == "en" else category.description_id) or None,
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": ", ".join(keywords),
        "group": _group_label(category.group, locale),
    }


@router.get("/services.{fmt}")
def get_services(request: Request, session: SessionDep, settings: SettingsDep, fmt: str) -> Response:
    """The service list: one service per active report category, its code the category's code."""

    def build(locale: str) -> tuple[str, Any]:
        return "services", [_service(category, locale) for category in service.list_categories(session)]

    return _answer(request, settings, fmt, build)


def _datatype_description(datatype: str) -> str | None:
    return {
        "number": _("A number, for example 40 or 2.5."),
        "datetime": _("A W3C date-time, for example 2026-03-02T09:15:00+07:00."),
        "singlevaluelist": _("One of the keys listed in values."),
        "multivaluelist": _("One or more of the keys listed in values: send attribute[code][]=key once for each."),
    }.get(datatype)


def _active_category(session: Session, code: str) -> ReportCategory:
    category = None
    if _CODE.match(code):
        try:
            category = service.get_category_by_code(session, code=code)
        except NotFound:
            pass
    if category is None or not category.active:
        raise Open311Error(404, _("service_code %(code)s was not found.") % {"code": code[:60]})
    return category


@router.get("/services/{code}.{fmt}")
def get_service_definition(
    request: Request, session: SessionDep, settings: SettingsDep, code: str, fmt: str
) -> Response:
    """A service definition: the category's extra questions as Open311 attributes."""

    def build(locale: str) -> tuple[str, Any]:
        category = _active_category(session, code)
        attributes = [
            {
                "variable": True,
                "code": item["code"],
                "datatype": item["datatype"],
                "required": bool(item.get("required")),
                "datatype_description": _datatype_description(item["datatype"]),
                "order": order,
                "description": item.get("description_en" if locale == "en" else "description_id")
                or item.get("description_id"),
                "values": [
                    {"key": value["key"], "name": value.get("name_en" if locale == "en" else "name_id") or value["key"]}
                    for value in item.get("values") or []
                ],
            }
            for order, item in enumerate(category.attributes or [], start=1)
        ]
        return "service_definition", {"service_code": category.code, "attributes": attributes}

    return _answer(request, settings, fmt, build)


# --- service requests ------------------------------------------------------------------------------------------


def _notices(session: Session, settings: Settings, categories: list[ReportCategory]) -> dict[str, str]:
    """Each category's service_notice: what happens next, with the deadlines of the workflow."""
    agency_names = agencies.agency_names(session)
    notices = {}
    for category in categories:
        notices[category.code] = _(
            "The report is verified within %(verify)d working days and sent to %(agency)s, which publishes its "
            "follow-up plan within %(follow_up)d working days and resolves the problem within %(resolve)d working "
            "days after that."
        ) % {
            "verify": settings.report_verify_days,
            "agency": agency_names.get(category.agency_id) or _("the responsible OPD"),
            "follow_up": settings.report_follow_up_days,
            "resolve": category.resolution_days,
        }
    return notices


def _request(row: service.PublicRow, notices: dict[str, str], settings: Settings) -> dict[str, Any]:
    """One service request in the spec's fields, from the public row (never the reporter's details)."""
    return {
        "service_request_id": row.tracking_code,
        "status": row.status.open311,
        "status_notes": row.status_note,
        "service_name": row.category_name,
        "service_code": row.category_code,
        "description": row.description,
        "agency_responsible": row.agency,
        "service_notice": notices.get(row.category_code),
        "requested_datetime": row.created_at,
        "updated_datetime": row.updated_at,
        "expected_datetime": row.expected_at,
        "address": row.address,
        "address_id": None,
        "zipcode": None,
        "lat": row.lat,
        "long": row.lon,
        "media_url": f"{settings.public_base_url}{row.photo_path}" if row.photo_path else None,
    }


def _w3c_param(request: Request, name: str, settings: Settings, *, end_of_day: bool) -> datetime | None:
    """A start_date/end_date: a W3C date-time with its zone, or a date (a whole day in the regency's zone)."""
    value = (request.query_params.get(name) or "").strip()
    if not value:
        return None
    match = _W3C.match(value)
    try:
        if match is None:
            raise ValueError(value)
        if match["time"] is None:
            day = datetime.fromisoformat(match["date"]).date()
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=settings.zone)
        else:
            zone = match["zone"].replace("Z", "+00:00").replace(" ", "+")
            moment = datetime.fromisoformat(f"{match['date']}T{match['time']}{zone}")
        # Far-off years are refused here, so that the 90-day arithmetic below cannot overflow.
        if not 1900 <= moment.year <= 9000:
            raise ValueError(value)
        return moment
    except ValueError:
        raise Open311Error(
            400,
            _("%(field)s must be a W3C date-time with its time zone, for example 2026-01-31T00:00:00+07:00.")
            % {"field": name},
        ) from None


def _range(request: Request, settings: Settings) -> tuple[datetime, datetime]:
    """The requested_datetime range: as asked, at most 90 days; the last 90 days when not asked."""
    start = _w3c_param(request, "start_date", settings, end_of_day=False)
    end = _w3c_param(request, "end_date", settings, end_of_day=True)
    if start is None and end is None:
        end = utcnow()
        start = end - MAX_RANGE
    elif start is None:
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    if end < start:
        raise Open311Error(400, _("end_date is before start_date."))
    if end - start > MAX_RANGE:
        raise Open311Error(400, _("start_date and end_date may be at most 90 days apart."))
    return start, end


def _statuses(request: Request) -> frozenset[ReportStatus] | None:
    asked = {value.lower() for value in _comma_list(request, "status")}
    unknown = sorted(asked - {"open", "closed"})
    if unknown:
        raise Open311Error(400, _("Unknown status %(status)s: use open or closed.") % {"status": unknown[0][:40]})
    if len(asked) == 1:
        return OPEN_STATUSES if "open" in asked else CLOSED_STATUSES
    return None


@router.get("/requests.{fmt}")
def get_requests(request: Request, session: SessionDep, settings: SettingsDep, fmt: str) -> Response:
    """Service requests, newest first, at most 1,000: by id (which overrides the rest), or by service_code,
    status and a requested_datetime range of at most 90 days (the last 90 days by default)."""

    def build(locale: str) -> tuple[str, Any]:
        ids = list(dict.fromkeys(code.upper() for code in _comma_list(request, "service_request_id")))
        if len(ids) > MAX_REQUESTS:
            raise Open311Error(400, _("Ask for at most 1000 service_request_id at once."))
        categories = service.list_categories(session, active_only=False)
        notices = _notices(session, settings, categories)
        if ids:
            ids = [code for code in ids if _CODE.match(code)]
            rows = service.public_rows(session, settings=settings, locale=locale, codes=ids, limit=MAX_REQUESTS)
        else:
            codes = list(dict.fromkeys(_comma_list(request, "service_code")))
            category_ids = {category.code: category.id for category in categories}
            unknown = [code for code in codes if code not in category_ids]
            if unknown:
                raise Open311Error(400, _("Unknown service_code %(code)s.") % {"code": unknown[0][:60]})
            statuses = _statuses(request)
            start, end = _range(request, settings)
            rows = service.public_rows(
                session, settings=settings, locale=locale,
                category_ids=[category_ids[code] for code in codes] if codes else None, statuses=statuses,
                start=start, end=end, limit=MAX_REQUESTS,
            )  # fmt: skip
        return "service_requests", [_request(row, notices, settings) for row in rows]

    return _answer(request, settings, fmt, build)


@router.get("/requests/{request_id}.{fmt}")
def get_request(request: Request, session: SessionDep, settings: SettingsDep, request_id: str, fmt: str) -> Response:
    """One service request by its id (the report's tracking code)."""

    def build(locale: str) -> tuple[str, Any]:
        rows = (
            service.public_rows(session, settings=settings, locale=locale, codes=[request_id], limit=1)
            if _CODE.match(request_id)
            else []
        )
        if not rows:
            raise Open311Error(404, _("service_request_id %(id)s was not found.") % {"id": request_id[:40]})
        notices = _notices(session, settings, service.list_categories(session, active_only=False))
        return "service_requests", [_request(rows[0], notices, settings)]

    return _answer(request, settings, fmt, build)


@router.get("/tokens/{token}.{fmt}")
def get_token(request: Request, session: SessionDep, settings: SettingsDep, token: str, fmt: str) -> Response:
    """The service_request_id of a token. Requests are realtime (the POST answers with the id at once); the token
    of a request is its id, so this answers with the same value."""

    def build(locale: str) -> tuple[str, Any]:
        rows = (
            service.public_rows(session, settings=settings, locale=locale, codes=[token], limit=1)
            if _CODE.match(token)
            else []
        )
        if not rows:
            raise Open311Error(404, _("token %(token)s was not found.") % {"token": token[:40]})
        return "service_requests", [{"service_request_id": rows[0].tracking_code, "token": token}]

    return _answer(request, settings, fmt, build)


# --- POST requests ---------------------------------------------------------------------------------------------


class _FormProblem(Exception):
    """The body could not be read as a form; the message is made later, in the answer's language."""


async def _read_form(request: Request) -> Form | _FormProblem:
    """The POST body as a form, with a size cap (Starlette reads an urlencoded body whole, without one)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_BYTES)
        except Exception:  # any malformed or oversized body: answered in the spec's format, not as a 500
            return _FormProblem("unreadable")
        pairs = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    elif content_type in ("application/x-www-form-urlencoded", ""):
        declared = request.headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > MAX_FORM_BYTES:
            return _FormProblem("too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return _FormProblem("too_large")
        try:
            pairs = parse_qsl(
                body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS,
                errors="replace",
            )  # fmt: skip
        except ValueError:
            return _FormProblem("too_large")
    else:
        return _FormProblem("content_type")
    form_values: Form = {}
    for key, value in pairs:
        form_values.setdefault(key, []).append(value)
    return form_values


def _form_problem(problem: _FormProblem) -> Open311Error:
    reason = str(problem)
    if reason == "too_large":
        return Open311Error(400, _("The request is too large for an Open311 service request."))
    if reason == "content_type":
        return Open311Error(400, _("Send the request as application/x-www-form-urlencoded, as GeoReport v2 specifies."))
    return Open311Error(400, _("The request body could not be read as a form."))


_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,60})\](\[\])?$")


def _attributes(form: Form) -> dict[str, Any]:
    """`attribute[code]=value` pairs; `attribute[code][]=value` (or a repeated code) gives a list."""
    answers: dict[str, Any] = {}
    for key, values in form.items():
        match = _ATTRIBUTE.match(key)
        if match:
            kept = [value.strip() for value in values if value.strip()]
            if kept:
                answers[match[1]] = kept if match[2] or len(kept) > 1 else kept[0]
    return answers


def _position(form: Form) -> tuple[float, float]:
    lat, lon = _first(form, "lat"), _first(form, "long")
    if lat is None and lon is None:
        if _first(form, "address_string") or _first(form, "address_id"):
            raise Open311Error(
                400,
                _(
                    "Send lat and long: this server places every report on the map and cannot locate "
                    "address_string or address_id alone. Send address_string with them as the address."
                ),
            )
        raise Open311Error(400, _("The location was not provided: send lat and long."))
    try:
        position = float(lat or "nan"), float(lon or "nan")
    except ValueError:
        position = (float("nan"), float("nan"))
    if not all(-1000 < value < 1000 for value in position):  # also false for NaN and infinity
        raise Open311Error(400, _("Send both lat and long, as numbers in degrees (WGS84)."))
    return position


@router.post("/requests.{fmt}")
def post_request(
    request: Request, settings: SettingsDep, fmt: str, form: Annotated[Form | _FormProblem, Depends(_read_form)]
) -> Response:
    """Create a service request (a citizen report) for a partner system that holds an API key."""
    values = form if isinstance(form, dict) else None

    def build(locale: str) -> tuple[str, Any]:
        if values is None:
            raise _form_problem(form)
        api_key = _first(values, "api_key")
        if api_key is None:
            raise Open311Error(403, _("api_key was not provided: send your API key as the api_key field of the body."))
        # The key and the request are checked in a short read, and the media fetched, before the write transaction
        # starts: on SQLite that transaction holds the database's write lock, which a slow media host must not.
        with request.app.state.sessionmaker() as session:
            try:
                user, api_token = accounts.get_token_user(session, token=api_key)
            except NotAuthenticated:
                raise Open311Error(403, _("Invalid api_key received -- can't proceed with create_request.")) from None
            actor = accounts.Actor.of(user, client_ip(request))
            touch_token = accounts.token_use_due(api_token)
            service_code = _first(values, "service_code")
            if service_code is None:
                raise Open311Error(400, _("service_code was not provided."))
            category = _active_category(session, service_code)
            lat, lon = _position(values)
            attributes = _attributes(values)
            clean_attribute_values(category, attributes)
            service.check_rate_limit(session, settings=settings, ip=client_ip(request))
        name = " ".join(part for part in (_first(values, "first_name"), _first(values, "last_name")) if part) or None
        media_url = _first(values, "media_url")
        media = None
        if media_url is not None:
            try:
                media, _content_type = outbound.fetch_bytes(
                    media_url, allowed_hosts=settings.media_allowed_hosts, max_bytes=photos.MAX_PHOTO_BYTES,
                    timeout=MEDIA_TIMEOUT_S,
                )  # fmt: skip
            except InvalidInput as exc:
                raise Open311Error(400, f"media_url: {exc.detail}") from None
        with request.app.state.sessionmaker() as session:
            session.connection(execution_options={"kotacerdas_write": True})
            try:
                submitted = service.submit_report(
                    session, settings=settings, category_code=category.code, description=_first(values, "description"),
                    lat=lat, lon=lon, address=_first(values, "address_string"), name=name,
                    email=_first(values, "email"), phone=_first(values, "phone"), attributes=attributes,
                    photos=[media] if media else None, source=ReportSource.OPEN311, ip=client_ip(request),
                    locale=locale, actor=actor,
                )  # fmt: skip
                if touch_token:
                    accounts.touch_api_token(session, token_id=api_token.id)
                notice = _notices(session, settings, [category])[category.code]
                session.commit()
            except BaseException:
                session.rollback()
                raise
        # account_id is the caller's own user id for the citizen; this server keeps no citizen accounts.
        return "service_requests", [
            {"service_request_id": submitted.report.tracking_code, "service_notice": notice, "account_id": None}
        ]

    return _answer(request, settings, fmt, build, form=values)


# --- anything else under /open311/v2 -------------------------------------------------------------------------------


@router.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def unknown_resource(request: Request, settings: SettingsDep, path: str) -> Response:
    """An unknown Open311 resource, or a known one with the wrong method, answered in the spec's error format."""
    fmt = "json" if path.endswith(".json") else "xml"
    allowed = sorted(
        {
            method
            for route in router.routes
            if route.endpoint is not unknown_resource and route.path_regex.match(request.url.path)
            for method in route.methods
        }
    )

    def build(locale: str) -> tuple[str, Any]:
        if allowed:
            raise Open311Error(405, _("Use %(methods)s here.") % {"methods": ", ".join(allowed)},
                               headers={"Allow": ", ".join(allowed)})  # fmt: skip
        raise Open311Error(404, _("There is no such Open311 resource; start from discovery.json or services.json."))

    return _answer(request, settings, fmt, build)
