"""The query options of the SensorThings API 1.1 (OGC 18-088, 9.3 "Requesting data"): parse `$filter`, `$orderby`,
`$top`, `$skip`, `$count`, `$select`, `$expand` and `$resultFormat`, and compile filters and orderings into
SQLAlchemy Core expressions that run the same on SQLite and PostgreSQL.

How the API layer uses it::

    options = parse_query(request.query_params.multi_items(), limits=limits)   # QueryError → HTTP 400 (501)
    resolver = EntityResolver(ENTITIES, "Observation")        # or a {path: column} mapping, or a callable
    statement = apply_query(sa.select(...).select_from(observations), options, resolver=resolver,
                            dialect=session.bind.dialect, limits=limits, tiebreak=[observations.c.id])

and for each `options.expand` item, the same with `item.options` on the related entity. A navigation path in a
condition (`Datastream/Thing/name`, `Datastreams/name`) becomes EXISTS over joins of aliased tables, so a to-many path
means "any of them"; in `$orderby` a to-one path is a scalar subquery. An Observation result kept as a number or as
JSON resolves to `Target(result_json, number=result_number)`. The parser is written by
hand (recursive descent over a small tokenizer); its input is bounded in length and nesting depth, and anything
malformed raises `QueryError` naming the option and the character where it went wrong.

What compiles: comparison (`eq ne gt ge lt le`, with `null`), logic (`and or not`), arithmetic
(`add sub mul div mod`, and `now() sub duration'P1D'` on literals), the string functions (`substringof endswith
startswith length indexof substring tolower toupper trim concat`, and OData 4's `contains`), the date functions
(`year month day hour minute second fractionalseconds date time totaloffsetminutes now mindatetime maxdatetime`,
evaluated in UTC, where the platform keeps every time) and `round floor ceiling`. Every geospatial function
(`geo.*`, `st_*`) parses but compiles to `NotSupported` (HTTP 501), as do interval literals and duration arithmetic
on a stored time.

The messages are in English, outside the translation catalogue: they quote the query syntax of an international
standard to its client programs, as FROST-Server and the OGC test suite do.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Select

from kotacerdas.db import UTCDateTime, utcnow
from kotacerdas.errors import DomainError

# --- errors and limits --------------------------------------------------------------------------------------------


class QueryError(DomainError):
    """A query option that cannot be parsed or carried out: left uncaught, the app answers a 400 problem whose
    detail is `str(error)`, e.g. "$filter: unknown function 'foo' (at character 1)"."""

    status_code = 400
    slug = "invalid-query"

    def __init__(self, message: str, option: str = "", position: int | None = None) -> None:
        self.message = message
        self.option = option
        self.position = position  # 0-based, in the option's value
        where = f" (at character {position + 1})" if position is not None else ""
        detail = f"{option}: {message}{where}" if option else f"{message}{where}"
        super().__init__(detail, errors=[{"field": option, "reason": self.slug, "message": detail}])


class NotSupported(QueryError):
    """Valid SensorThings syntax that this server does not carry out (geospatial functions); HTTP 501."""

    status_code = 501
    slug = "not-implemented"


@dataclass(frozen=True)
class Limits:
    """Page sizes and the bounds that keep a query option from costing too much to parse."""

    default_top: int = 100
    max_top: int = 10_000
    max_length: int = 2_000
    max_depth: int = 32
    max_path: int = 8  # segments of a property path (each navigation is a join)

    def page_size(self, top: int | None) -> int:
        """The number of entities a page holds for this `$top` (the default when absent, never above the max)."""
        return min(self.default_top if top is None else top, self.max_top)


LIMITS = Limits()
MAX_SKIP = 2**63 - 1
_INT64 = 2**63


# --- the syntax tree -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    pos: int

    @property
    def depth(self) -> int:
        """How deeply the node nests (a leaf is 1; an operator or call records its own when parsed)."""
        return getattr(self, "nesting", 1)


@dataclass(frozen=True)
class Literal(Node):
    """A constant. kind: number, string, boolean, null, datetime, date, time, duration, interval, geography."""

    kind: str
    value: Any
    text: str = ""


@dataclass(frozen=True)
class Path(Node):
    """A property path: `name`, `Datastream/Thing/name`, `properties/owner`; `@iot.id` is read as `id`."""

    segments: tuple[str, ...]


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]
    nesting: int = 1


@dataclass(frozen=True)
class Binary(Node):
    """A comparison (eq ne gt ge lt le) or arithmetic (add sub mul div mod)."""

    op: str
    left: Node
    right: Node
    nesting: int = 1


@dataclass(frozen=True)
class BoolOp(Node):
    """`and` / `or` over two or more conditions (a chain is kept flat)."""

    op: str
    items: tuple[Node, ...]
    nesting: int = 1


@dataclass(frozen=True)
class Not(Node):
    operand: Node
    nesting: int = 1


@dataclass(frozen=True)
class Negate(Node):
    operand: Node
    nesting: int = 1


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration: calendar months (years × 12 + months) and a fixed part."""

    months: int = 0
    delta: timedelta = timedelta(0)

    def __neg__(self) -> Duration:
        return Duration(-self.months, -self.delta)

    def added_to(self, value: datetime) -> datetime:
        if self.months:
            year, month0 = divmod(value.year * 12 + value.month - 1 + self.months, 12)
            if not 1 <= year <= 9999:
                raise OverflowError("year out of range")
            day = min(value.day, calendar.monthrange(year, month0 + 1)[1])
            value = value.replace(year=year, month=month0 + 1, day=day)
        return value + self.delta


@dataclass(frozen=True)
class OrderItem:
    expr: Node
    descending: bool = False


@dataclass(frozen=True)
class ExpandItem:
    """One navigation property to expand, with the query options for its entities."""

    name: str
    options: QueryOptions


@dataclass(frozen=True)
class QueryOptions:
    """The parsed query options of one request, or of one `$expand` item. None: the option was not given."""

    filter: Node | None = None
    orderby: tuple[OrderItem, ...] = ()
    top: int | None = None
    skip: int | None = None
    count: bool | None = None
    select: tuple[tuple[str, ...], ...] | None = None
    expand: tuple[ExpandItem, ...] = ()
    result_format: str | None = None
    # Where the positions of `filter` and `orderby` count from: "$filter"/"$orderby", or "$expand" when nested.
    origin: str = ""


# --- tokenizer -----------------------------------------------------------------------------------------------------

_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2}| \d{2}:\d{2}(?![\d:]))?"
_DURATION = r"-?P(?=\d|T\d)(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?"
_RE_DATETIME = re.compile(_DATETIME)
_RE_INTERVAL = re.compile(f"({_DATETIME})/({_DATETIME}|{_DURATION})")
_RE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT:])")
_RE_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
_RE_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_RE_DURATION_AT = re.compile(_DURATION)
_RE_DURATION_PARTS = re.compile(
    r"(-?)P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?\Z"
)
_RE_IDENT = re.compile(r"@?[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_RE_SEGMENT = re.compile(r"[^\W\d]\w*\Z")
_TYPED_LITERALS = {"duration", "geography", "geometry"}


@dataclass(frozen=True)
class _Token:
    type: str  # num str ident datetime date time interval duration geo ( ) , / - * eof
    text: str
    pos: int
    value: Any = None


def _tokenize(text: str, option: str, offset: int) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        pos = offset + i
        if c in " \t\r\n":
            i += 1
        elif c in "(),/-*":
            tokens.append(_Token(c, c, pos))
            i += 1
        elif c == "'":
            value, i = _read_string(text, i, option, offset)
            tokens.append(_Token("str", text[pos - offset : i], pos, value))
        elif c.isdigit() and c.isascii():
            if m := _RE_INTERVAL.match(text, i):
                start = _parse_datetime(m.group(1), option, pos)
                second = m.group(2)
                if second.lstrip("-").startswith("P"):
                    try:
                        end = _parse_duration(second, option, pos).added_to(start)
                    except (OverflowError, ValueError):
                        raise QueryError(f"the interval {m.group(0)!r} is out of range", option, pos) from None
                else:
                    end = _parse_datetime(second, option, pos)
                tokens.append(_Token("interval", m.group(0), pos, Interval(start, end)))
            elif m := _RE_DATETIME.match(text, i):
                tokens.append(_Token("datetime", m.group(0), pos, _parse_datetime(m.group(0), option, pos)))
            elif m := _RE_DATE.match(text, i):
                try:
                    value = date.fromisoformat(m.group(0))
                except ValueError:
                    raise QueryError(f"{m.group(0)!r} is not a valid date", option, pos) from None
                tokens.append(_Token("date", m.group(0), pos, value))
            elif (m := _RE_TIME.match(text, i)) and ":" in m.group(0):
                try:
                    value = time.fromisoformat(m.group(0))
                except ValueError:
                    raise QueryError(f"{m.group(0)!r} is not a valid time of day", option, pos) from None
                tokens.append(_Token("time", m.group(0), pos, value))
            else:
                m = _RE_NUMBER.match(text, i)
                tokens.append(_Token("num", m.group(0), pos, _parse_number(m.group(0), option, pos)))
            i = m.end()
            if i < n and (text[i].isalnum() or text[i] in "_.'@:"):
                raise QueryError(f"unexpected {text[i]!r} after {m.group(0)!r}", option, offset + i)
        elif (
            c == "P"
            and (m := _RE_DURATION_AT.match(text, i))
            and not (m.end() < n and (text[m.end()].isalnum() or text[m.end()] in "_.@'"))
        ):
            tokens.append(_Token("duration", m.group(0), pos, _parse_duration(m.group(0), option, pos)))
            i = m.end()
        elif m := _RE_IDENT.match(text, i):
            word = m.group(0)
            i = m.end()
            if i < n and text[i] == "'":
                if word.lower() not in _TYPED_LITERALS:
                    raise QueryError(f"unknown literal type {word!r} (known: duration'…', geography'…')", option, pos)
                value, i = _read_string(text, i, option, offset)
                if word.lower() == "duration":
                    tokens.append(_Token("duration", text[pos - offset : i], pos, _parse_duration(value, option, pos)))
                else:
                    tokens.append(_Token("geo", text[pos - offset : i], pos, value))
            else:
                tokens.append(_Token("ident", word, pos))
        else:
            raise QueryError(f"unexpected character {c!r}", option, pos)
    tokens.append(_Token("eof", "", offset + n))
    return tokens


def _read_string(text: str, i: int, option: str, offset: int) -> tuple[str, int]:
    """The string literal starting at text[i] == "'" ('' stands for one quote) and the index after it."""
    start, i, parts = i, i + 1, []
    while True:
        j = text.find("'", i)
        if j < 0:
            raise QueryError("unterminated string (a ' is missing)", option, offset + start)
        parts.append(text[i:j])
        if text.startswith("''", j):
            parts.append("'")
            i = j + 2
        else:
            return "".join(parts), j + 1


def _parse_number(text: str, option: str, pos: int) -> int | float:
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise QueryError(f"the number {text} is out of range", option, pos)
        return value
    value = int(text)
    if value >= _INT64:
        raise QueryError(f"the number {text} is out of range (write it as a decimal, e.g. {text}.0)", option, pos)
    return value


def _parse_datetime(text: str, option: str, pos: int) -> datetime:
    if len(text) > 16 and text[-6] == " ":  # a '+' that arrived as a space: the URL was not encoded
        text = text[:-6] + "+" + text[-5:]
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value.astimezone(UTC)  # the UTC instant must exist too (0001-01-01T00:00+07:00 does not)
    except (ValueError, OverflowError):
        raise QueryError(f"{text!r} is not a valid date and time", option, pos) from None
    if value.tzinfo is None:
        raise QueryError(f"{text!r} needs a time zone, e.g. {text}Z or {text}+07:00", option, pos)
    return value


def _parse_duration(text: str, option: str, pos: int) -> Duration:
    m = _RE_DURATION_PARTS.match(text)
    if not m or text.rstrip("T").endswith("P") or text.endswith("T"):
        raise QueryError(f"{text!r} is not an ISO 8601 duration (e.g. P1D, PT10M)", option, pos)
    sign, years, months, weeks, days, hours, minutes, seconds = m.groups()
    try:
        delta = timedelta(
            weeks=int(weeks or 0),
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
        total_months = int(years or 0) * 12 + int(months or 0)
        if total_months > 12 * 10_000:
            raise OverflowError
    except (OverflowError, ValueError):
        raise QueryError(f"the duration {text!r} is out of range", option, pos) from None
    duration = Duration(total_months, delta)
    return -duration if sign else duration


# --- parser --------------------------------------------------------------------------------------------------------

_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_ADDITIVE = {"add", "sub"}
_MULTIPLICATIVE = {"mul", "div", "mod"}
_KEYWORDS = _COMPARISONS | _ADDITIVE | _MULTIPLICATIVE | {"and", "or", "not"}

# name: (fewest, most arguments). `contains` is OData 4's; SensorThings 1.1 lists `substringof`.
FUNCTIONS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(["substringof", "endswith", "startswith", "contains", "indexof", "concat"], (2, 2)),
    **dict.fromkeys(["length", "tolower", "toupper", "trim"], (1, 1)),
    "substring": (2, 3),
    **dict.fromkeys(["year", "month", "day", "hour", "minute", "second", "fractionalseconds", "date", "time"], (1, 1)),
    "totaloffsetminutes": (1, 1),
    **dict.fromkeys(["now", "mindatetime", "maxdatetime"], (0, 0)),
    **dict.fromkeys(["round", "floor", "ceiling"], (1, 1)),
    "geo.intersects": (2, 2),
    "geo.length": (1, 1),
    "geo.distance": (2, 2),
    **dict.fromkeys(
        ["st_equals", "st_disjoint", "st_touches", "st_within", "st_overlaps", "st_crosses", "st_intersects"], (2, 2)
    ),
    "st_contains": (2, 2),
    "st_relate": (3, 3),
}
GEO_FUNCTIONS = frozenset(name for name in FUNCTIONS if name.startswith(("geo.", "st_")))


class _Parser:
    def __init__(self, text: str, *, option: str, offset: int, limits: Limits) -> None:
        _check_text(text, option, limits)
        self.option = option
        self.limits = limits
        self.tokens = _tokenize(text, option, offset)
        self.i = 0
        self.nesting = 0

    # helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        if token.type != "eof":
            self.i += 1
        return token

    def keyword(self, words: set[str]) -> str | None:
        token = self.tok
        if token.type == "ident" and token.text.lower() in words:
            self.i += 1
            return token.text.lower()
        return None

    def expect(self, type_: str, what: str) -> _Token:
        if self.tok.type != type_:
            raise self.error(f"expected {what}")
        return self.advance()

    def error(self, message: str, token: _Token | None = None) -> QueryError:
        token = token or self.tok
        found = "the end" if token.type == "eof" else repr(token.text)
        return QueryError(f"{message}, found {found}", self.option, token.pos)

    def node(self, cls: type, pos: int, *args: Any, children: Iterable[Node] = ()) -> Node:
        depth = 1 + max((child.depth for child in children), default=0)
        if depth > self.limits.max_depth:
            raise QueryError(f"the expression is nested too deeply (at most {self.limits.max_depth})", self.option, pos)
        return cls(pos, *args, nesting=depth)

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > self.limits.max_depth:
            raise QueryError(
                f"the expression is nested too deeply (at most {self.limits.max_depth})", self.option, self.tok.pos
            )

    def finish(self) -> None:
        if self.tok.type != "eof":
            raise self.error("expected an operator or the end of the expression")

    # grammar: or < and < comparison < add/sub < mul/div/mod < not/negation < primary
    def expression(self) -> Node:
        return self.boolean("or", self.conjunction)

    def conjunction(self) -> Node:
        return self.boolean("and", self.comparison)

    def boolean(self, op: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        items = [first]
        while self.keyword({op}):
            items.append(operand())
        if len(items) == 1:
            return first
        return self.node(BoolOp, first.pos, op, tuple(items), children=items)

    def comparison(self) -> Node:
        return self.binary(_COMPARISONS, self.additive)

    def additive(self) -> Node:
        return self.binary(_ADDITIVE, self.multiplicative)

    def multiplicative(self) -> Node:
        return self.binary(_MULTIPLICATIVE, self.unary)

    def binary(self, ops: set[str], operand: Callable[[], Node]) -> Node:
        left = operand()
        while True:
            token = self.tok
            op = self.keyword(ops)
            if op is None:
                return left
            right = operand()
            left = self.node(Binary, token.pos, op, left, right, children=(left, right))

    def unary(self) -> Node:
        token = self.tok
        if self.keyword({"not"}):
            self.enter()
            operand = self.unary()
            self.nesting -= 1
            return self.node(Not, token.pos, operand, children=(operand,))
        if token.type == "-":
            self.advance()
            self.enter()
            operand = self.unary()
            self.nesting -= 1
            if isinstance(operand, Literal) and operand.kind in ("number", "duration"):
                return Literal(token.pos, operand.kind, -operand.value, "-" + operand.text)
            return self.node(Negate, token.pos, operand, children=(operand,))
        return self.primary()

    def primary(self) -> Node:
        token = self.tok
        if token.type == "(":
            self.advance()
            self.enter()
            inner = self.expression()
            self.nesting -= 1
            self.expect(")", "')'")
            return inner
        if token.type in ("num", "str", "datetime", "date", "time", "interval", "duration", "geo"):
            self.advance()
            kind = {"num": "number", "str": "string", "geo": "geography"}.get(token.type, token.type)
            return Literal(token.pos, kind, token.value, token.text)
        if token.type != "ident":
            raise self.error("expected a value, a property or a function")
        word = token.text.lower()
        if self.tokens[self.i + 1].type == "(":
            return self.call()
        if word in ("true", "false"):
            self.advance()
            return Literal(token.pos, "boolean", word == "true", token.text)
        if word == "null":
            self.advance()
            return Literal(token.pos, "null", None, token.text)
        if word in _KEYWORDS:
            raise self.error("expected a value, a property or a function")
        return self.path()

    def path(self) -> Path:
        start = self.tok.pos
        segments = [self.segment()]
        while self.tok.type == "/":
            self.advance()
            segments.append(self.segment())
            if len(segments) > self.limits.max_path:
                raise QueryError(f"the path is too long (at most {self.limits.max_path} parts)", self.option, start)
        return Path(start, tuple(segments))

    def segment(self) -> str:
        token = self.tok
        if token.type == "ident" or token.type == "duration" and _RE_SEGMENT.match(token.text):
            self.advance()
            name = token.text
            if name.lower() == "@iot.id":
                return "id"
            if not _RE_SEGMENT.match(name):
                raise self.error("expected a property name", token)
            return name
        raise self.error("expected a property name")

    def call(self) -> Call:
        token = self.advance()
        name = token.text.lower()
        if name not in FUNCTIONS:
            raise QueryError(f"unknown function {token.text!r}", self.option, token.pos)
        self.advance()  # (
        self.enter()
        args: list[Node] = []
        if self.tok.type != ")":
            args.append(self.expression())
            while self.tok.type == ",":
                self.advance()
                args.append(self.expression())
        self.expect(")", "',' or ')'")
        self.nesting -= 1
        fewest, most = FUNCTIONS[name]
        if not fewest <= len(args) <= most:
            count = str(fewest) if fewest == most else f"{fewest} or {most}"
            raise QueryError(f"{name}() takes {count} argument(s), not {len(args)}", self.option, token.pos)
        return self.node(Call, token.pos, name, tuple(args), children=args)


def _check_text(text: str, option: str, limits: Limits) -> None:
    if len(text) > limits.max_length:
        raise QueryError(f"too long ({len(text)} characters, at most {limits.max_length})", option)
    if "\x00" in text:
        raise QueryError("contains a NUL character", option, text.index("\x00"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise QueryError("is not valid text", option, error.start) from None


def parse_filter(text: str, *, limits: Limits = LIMITS, option: str = "$filter", offset: int = 0) -> Node:
    """The syntax tree of a `$filter` expression."""
    parser = _Parser(text, option=option, offset=offset, limits=limits)
    if parser.tok.type == "eof":
        raise parser.error("expected a condition")
    node = parser.expression()
    parser.finish()
    return node


def parse_orderby(
    text: str, *, limits: Limits = LIMITS, option: str = "$orderby", offset: int = 0
) -> tuple[OrderItem, ...]:
    """The items of `$orderby`: expressions (usually property paths), each `asc` (the default) or `desc`."""
    parser = _Parser(text, option=option, offset=offset, limits=limits)
    items = []
    while True:
        if parser.tok.type == "eof":
            raise parser.error("expected a property to order by")
        expr = parser.expression()
        direction = parser.keyword({"asc", "desc"})
        items.append(OrderItem(expr, direction == "desc"))
        if parser.tok.type != ",":
            break
        parser.advance()
    if parser.tok.type != "eof":
        raise parser.error("expected asc, desc, ',' or the end")
    return tuple(items)


def parse_select(
    text: str, *, limits: Limits = LIMITS, option: str = "$select", offset: int = 0
) -> tuple[tuple[str, ...], ...]:
    """The properties `$select` names, as paths (`@iot.id` is `id`; `*` is all), without duplicates, in order."""
    parser = _Parser(text, option=option, offset=offset, limits=limits)
    items: dict[tuple[str, ...], None] = {}
    while True:
        if parser.tok.type == "*":
            parser.advance()
            items[("*",)] = None
        else:
            items[parser.path().segments] = None
        if parser.tok.type == "eof":
            return tuple(items)
        parser.expect(",", "',' or the end")


def parse_top(text: str, *, option: str = "$top", offset: int = 0) -> int:
    """A `$top` value: a non-negative integer (the page size is capped later by `Limits.page_size`)."""
    return _non_negative(text, option, offset, ceiling=MAX_SKIP)


def parse_skip(text: str, *, option: str = "$skip", offset: int = 0) -> int:
    """A `$skip` value: a non-negative integer."""
    return _non_negative(text, option, offset, ceiling=MAX_SKIP)


def _non_negative(text: str, option: str, offset: int, *, ceiling: int) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit():
        raise QueryError(f"expected a non-negative integer, found {text[:40]!r}", option, offset)
    if len(stripped) > 19 or int(stripped) > ceiling:
        raise QueryError(f"{stripped[:40]} is too large", option, offset)
    return int(stripped)


def parse_count(text: str, *, option: str = "$count", offset: int = 0) -> bool:
    """A `$count` value: true or false."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise QueryError(f"expected true or false, found {text[:40]!r}", option, offset)
    return value == "true"


def parse_result_format(text: str, *, option: str = "$resultFormat") -> str:
    """A `$resultFormat` value: only `dataArray` (for Observations) is known; returned as "dataArray"."""
    if text.strip().lower() != "dataarray":
        raise QueryError(f"unknown result format {text[:40]!r} (known: dataArray)", option)
    return "dataArray"


_EXPAND_OPTIONS = ("$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand")


def parse_expand(
    text: str, *, limits: Limits = LIMITS, option: str = "$expand", offset: int = 0, depth: int = 0
) -> tuple[ExpandItem, ...]:
    """The items of `$expand`, e.g. `Datastreams($select=name;$expand=Observations($top=1)),Locations`.

    A path (`Datastreams/Thing`) becomes nested items; options in parentheses apply to its last segment and are
    separated by `;`. An entity expanded twice (`Datastreams,Datastreams/Thing`) is merged into one item."""
    if depth == 0:
        _check_text(text, option, limits)
    items: list[ExpandItem] = []
    i, n = 0, len(text)
    while True:
        i = _skip_spaces(text, i)
        segments: list[tuple[str, int]] = []
        while True:
            m = _RE_IDENT.match(text, i)
            if not m or "." in m.group(0) or m.group(0).startswith("@"):
                raise QueryError("expected the name of a navigation property", option, offset + i)
            segments.append((m.group(0), offset + i))
            if depth + len(segments) > limits.max_depth:
                raise QueryError(f"$expand is nested too deeply (at most {limits.max_depth})", option, offset + i)
            i = _skip_spaces(text, m.end())
            if i < n and text[i] == "/":
                i = _skip_spaces(text, i + 1)
            else:
                break
        options = QueryOptions(origin=option)
        if i < n and text[i] == "(":
            if depth + 1 >= limits.max_depth:
                raise QueryError(f"$expand is nested too deeply (at most {limits.max_depth})", option, offset + i)
            close = _matching_paren(text, i, option, offset)
            options = _parse_expand_options(text[i + 1 : close], limits, option, offset + i + 1, depth + 1)
            i = _skip_spaces(text, close + 1)
        item = ExpandItem(segments[-1][0], options)
        for name, _pos in reversed(segments[:-1]):
            item = ExpandItem(name, QueryOptions(expand=(item,), origin=option))
        items.append(item)
        if i >= n:
            break
        if text[i] != ",":
            raise QueryError(f"expected ',' or the end, found {text[i]!r}", option, offset + i)
        i += 1
    return _merge_expands(items, option)


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _matching_paren(text: str, i: int, option: str, offset: int) -> int:
    """The index of the ')' that closes the '(' at text[i], skipping quoted strings."""
    level, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "'":
            _value, j = _read_string(text, j, option, offset)
            continue
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
            if level == 0:
                return j
        j += 1
    raise QueryError("a '(' is not closed", option, offset + i)


def _split_options(text: str, option: str, offset: int) -> list[tuple[str, int]]:
    """`$select=a;$top=1` → [("$select=a", 0), ("$top=1", 10)], splitting at `;` outside parentheses and strings."""
    parts, start, level, j = [], 0, 0, 0
    while j < len(text):
        c = text[j]
        if c == "'":
            _value, j = _read_string(text, j, option, offset)
            continue
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
        elif c == ";" and level == 0:
            parts.append((text[start:j], start))
            start = j + 1
        j += 1
    parts.append((text[start:], start))
    return parts


def _parse_expand_options(text: str, limits: Limits, option: str, offset: int, depth: int) -> QueryOptions:
    values: dict[str, Any] = {}
    for part, start in _split_options(text, option, offset):
        lead = len(part) - len(part.lstrip())
        name, equals, value = part.strip().partition("=")
        pos = offset + start + lead
        if not equals or name not in _EXPAND_OPTIONS:
            raise QueryError(
                f"expected one of {', '.join(_EXPAND_OPTIONS)} followed by '=' inside $expand(…), found {part[:40]!r}",
                option,
                pos,
            )
        if name in values:
            raise QueryError(f"{name} is given twice", option, pos)
        at = pos + len(name) + 1
        if name == "$filter":
            values["filter"] = parse_filter(value, limits=limits, option=option, offset=at)
        elif name == "$orderby":
            values["orderby"] = parse_orderby(value, limits=limits, option=option, offset=at)
        elif name == "$top":
            values["top"] = parse_top(value, option=option, offset=at)
        elif name == "$skip":
            values["skip"] = parse_skip(value, option=option, offset=at)
        elif name == "$count":
            values["count"] = parse_count(value, option=option, offset=at)
        elif name == "$select":
            values["select"] = parse_select(value, limits=limits, option=option, offset=at)
        else:
            values["expand"] = parse_expand(value, limits=limits, option=option, offset=at, depth=depth)
        values[name] = True
    fields = {key: value for key, value in values.items() if not key.startswith("$")}
    return QueryOptions(**fields, origin=option)


def _merge_expands(items: list[ExpandItem], option: str) -> tuple[ExpandItem, ...]:
    merged: dict[str, ExpandItem] = {}
    for item in items:
        earlier = merged.get(item.name)
        if earlier is None:
            merged[item.name] = item
            continue
        combined: dict[str, Any] = {}
        for name in ("filter", "orderby", "top", "skip", "count", "select", "result_format"):
            a, b = getattr(earlier.options, name), getattr(item.options, name)
            if a not in (None, ()) and b not in (None, ()) and a != b:
                raise QueryError(f"{item.name} is expanded twice with different options", option)
            combined[name] = b if a in (None, ()) else a
        combined["expand"] = _merge_expands([*earlier.options.expand, *item.options.expand], option)
        merged[item.name] = ExpandItem(item.name, replace(earlier.options, **combined))
    return tuple(merged.values())


QUERY_OPTIONS = ("$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand", "$resultFormat")


def parse_query(params: Mapping[str, str] | Iterable[tuple[str, str]], *, limits: Limits = LIMITS) -> QueryOptions:
    """Parse the SensorThings query options of a request; parameters without a `$` are left to the caller.

    `params` is a mapping or, better, the (name, value) pairs (Starlette: `request.query_params.multi_items()`), so
    that an option given twice is refused rather than silently taking one of the values."""
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, Any] = {}
    for name, value in pairs:
        if not name.startswith("$"):
            continue
        if name not in QUERY_OPTIONS:
            raise QueryError(f"unknown query option (known: {', '.join(QUERY_OPTIONS)})", name)
        if name in values:
            raise QueryError("is given twice", name)
        if name == "$filter":
            values[name] = parse_filter(value, limits=limits)
        elif name == "$orderby":
            values[name] = parse_orderby(value, limits=limits)
        elif name == "$top":
            values[name] = parse_top(value)
        elif name == "$skip":
            values[name] = parse_skip(value)
        elif name == "$count":
            values[name] = parse_count(value)
        elif name == "$select":
            values[name] = parse_select(value, limits=limits)
        elif name == "$expand":
            values[name] = parse_expand(value, limits=limits)
        else:
            values[name] = parse_result_format(value)
    return QueryOptions(
        filter=values.get("$filter"),
        orderby=values.get("$orderby", ()),
        top=values.get("$top"),
        skip=values.get("$skip"),
        count=values.get("$count"),
        select=values.get("$select"),
        expand=values.get("$expand", ()),
        result_format=values.get("$resultFormat"),
    )


# --- resolving property paths --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a property path stands for in SQL. With `json_keys` (possibly empty), `expr` is a JSON document and the
    keys lead to the value inside it (`properties/owner` → the `properties` column, keys ("owner",)).

    `number`: for a JSON value kept beside a column of its numbers (an Observation's `result`, stored as a number
    when it is one and as JSON otherwise): comparisons with numbers, arithmetic and ordering use that column (and its
    index), the rest the JSON; the value is null when both are."""

    expr: ColumnElement
    json_keys: tuple[str, ...] | None = None
    number: ColumnElement | None = None


@dataclass
class JoinScope:
    """The related tables one condition (or one ordering key) reaches through navigation paths. A condition that
    uses any is wrapped in EXISTS over them (so a to-many path means "any of them"); the same path prefix inside
    one condition is the same related row."""

    joins: dict[tuple[str, ...], tuple[FromClause, ColumnElement, bool]] = field(default_factory=dict)

    def join(
        self, key: tuple[str, ...], table: FromClause, on: Callable[[FromClause], ColumnElement], *, many: bool
    ) -> FromClause:
        """The alias of `table` reached by the path `key` (made once per scope); `on(alias)` is its join condition."""
        if key not in self.joins:
            alias = table.alias()
            self.joins[key] = (alias, on(alias), many)
        return self.joins[key][0]

    @property
    def conditions(self) -> list[ColumnElement]:
        return [on for _alias, on, _many in self.joins.values()]

    @property
    def many(self) -> bool:
        return any(many for _alias, _on, many in self.joins.values())


@dataclass(frozen=True)
class Relation:
    """A navigation property: the entity it leads to and the join condition `on(this_table, related_alias)`.

    A many-to-many relation puts its link table inside `on`, e.g. for Thing/Locations:
    `lambda thing, loc: sa.exists().where(links.c.thing_id == thing.c.id, links.c.location_id == loc.c.id)`."""

    target: str
    on: Callable[[FromClause, FromClause], ColumnElement]
    many: bool = False


@dataclass(frozen=True)
class Entity:
    """How one entity type's properties map to SQL: property name → column key of `table`, or a function of the
    table (or its alias) giving the expression or a `Target`. `relations` are its navigation properties."""

    table: FromClause
    properties: Mapping[str, str | Callable[[FromClause], ColumnElement | Target]]
    relations: Mapping[str, Relation] = field(default_factory=dict)


class EntityResolver:
    """Resolves property paths of the entity `root` in a schema of entities: `name`, `properties/owner`,
    `Datastream/Thing/name`, `Datastreams/ObservedProperty/name` (navigations become joins of the condition)."""

    def __init__(self, entities: Mapping[str, Entity], root: str) -> None:
        self.entities = entities
        self.root = root

    def resolve(self, path: tuple[str, ...], scope: JoinScope) -> Target:
        name, entity = self.root, self.entities[self.root]
        table = entity.table
        for i, segment in enumerate(path):
            prop = entity.properties.get(segment)
            if prop is not None:
                found = table.c[prop] if isinstance(prop, str) else prop(table)
                target = _as_target(found)
                rest = path[i + 1 :]
                if rest:
                    if target.json_keys is None:
                        raise QueryError(f"{segment} has no member {rest[0]!r}")
                    target = replace(target, json_keys=target.json_keys + rest)
                return target
            relation = entity.relations.get(segment)
            if relation is None:
                known = ", ".join([*entity.properties, *entity.relations])
                raise QueryError(f"{name} has no property {segment!r} (known: {known})")
            target = self.entities[relation.target]
            table = scope.join(
                path[: i + 1],
                target.table,
                lambda alias, parent=table, r=relation: r.on(parent, alias),
                many=relation.many,
            )
            name, entity = relation.target, target
        raise QueryError(f"{'/'.join(path)} is an entity, not a value: name one of its properties, e.g. {path[-1]}/id")


Resolver = (
    EntityResolver
    | Mapping[str, "ColumnElement | Target"]
    | Callable[[tuple[str, ...]], "ColumnElement | Target | None"]
)


def _is_json(expr: ColumnElement) -> bool:
    return isinstance(expr.type, sa.JSON)


def _resolve(resolver: Resolver, path: tuple[str, ...], scope: JoinScope) -> Target:
    if isinstance(resolver, EntityResolver):
        return resolver.resolve(path, scope)
    if isinstance(resolver, Mapping):
        for size in range(len(path), 0, -1):
            found = resolver.get("/".join(path[:size]))
            if found is None:
                continue
            target = _as_target(found)
            rest = path[size:]
            if rest:
                if target.json_keys is None:
                    break
                target = replace(target, json_keys=target.json_keys + rest)
            return target
        raise QueryError(f"unknown property {'/'.join(path)!r}")
    found = resolver(path)
    if found is None:
        raise QueryError(f"unknown property {'/'.join(path)!r}")
    return _as_target(found)


def _as_target(found: ColumnElement | Target) -> Target:
    """A resolver's answer as a Target; a JSON column is a document whose keys may follow in the path."""
    target = found if isinstance(found, Target) else Target(found)
    if target.json_keys is None and _is_json(target.expr):
        target = replace(target, json_keys=())
    return target


# --- compiling to SQL ----------------------------------------------------------------------------------------------

_NUMERIC_KINDS = {"number"}
_MIN_DATETIME = datetime(1, 1, 1, tzinfo=UTC)
_MAX_DATETIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_INT32 = 2**31


@dataclass(frozen=True)
class _Val:
    """A compiled operand: a Python constant (`sql` None) or an SQL expression of a kind (see `Literal.kind`, plus
    json and any). `integer`: a whole number; `computed`: arithmetic or a function (PostgreSQL then computes in
    NUMERIC); `json`: (document, keys) for a value inside a JSON column."""

    kind: str
    sql: ColumnElement | None = None
    value: Any = None
    integer: bool = False
    computed: bool = False
    json: tuple[ColumnElement, tuple[str, ...]] | None = None
    text: str = ""
    number: ColumnElement | None = None  # see Target.number

    @property
    def literal(self) -> bool:
        return self.sql is None and self.json is None


def _kind_of(type_: sa.types.TypeEngine) -> tuple[str, bool]:
    if isinstance(type_, sa.TypeDecorator):
        type_ = type_.impl_instance
    if isinstance(type_, sa.Boolean):
        return "boolean", False
    if isinstance(type_, sa.Integer):
        return "number", True
    if isinstance(type_, sa.Float | sa.Numeric):
        return "number", False
    if isinstance(type_, sa.DateTime):
        return "datetime", False
    if isinstance(type_, sa.Date):
        return "date", False
    if isinstance(type_, sa.Time):
        return "time", False
    if isinstance(type_, sa.Interval):
        return "duration", False
    if isinstance(type_, sa.JSON):
        return "json", False
    if isinstance(type_, sa.String):
        return "string", False
    return "any", False


def _literal_val(value: Any, kind: str, text: str = "") -> _Val:
    return _Val(kind, value=value, integer=kind == "number" and isinstance(value, int), text=text)


class _Compiler:
    def __init__(self, resolver: Resolver, *, dialect: Dialect | str, now: datetime | None, option: str) -> None:
        name = dialect if isinstance(dialect, str) else dialect.name
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"SensorThings queries compile for SQLite and PostgreSQL, not {name}")
        self.pg = name == "postgresql"
        self.resolver = resolver
        self.now = now or utcnow()
        self.option = option

    def fail(self, message: str, node: Node, cls: type[QueryError] = QueryError) -> QueryError:
        return cls(message, self.option, node.pos)

    # conditions ------------------------------------------------------------------------------------------------
    def condition(self, node: Node) -> ColumnElement:
        if isinstance(node, BoolOp):
            parts = [self.condition(item) for item in node.items]
            return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
        if isinstance(node, Not):
            return sa.not_(self.condition(node.operand))
        scope = JoinScope()
        predicate = self.as_condition(self.value(node, scope), node)
        if scope.joins:
            return sa.exists().where(*scope.conditions, predicate)
        return predicate

    def as_condition(self, val: _Val, node: Node) -> ColumnElement:
        if val.kind == "boolean":
            if val.literal:
                return sa.true() if val.value else sa.false()
            if val.json is not None:
                return self.json_as(val, "boolean") == sa.true()
            return val.sql
        if val.kind == "json":
            return self.json_as(val, "boolean") == sa.true()
        if val.kind == "any":
            return val.sql
        raise self.fail(f"expected a condition (true or false), not a {val.kind}", node)

    # orderings ---------------------------------------------------------------------------------------------------
    def ordering(self, item: OrderItem) -> ColumnElement | None:
        scope = JoinScope()
        val = self.value(item.expr, scope)
        if val.literal:
            return None  # a constant does not change the order
        if val.number is not None:
            expr = val.number
        elif val.json is not None:
            expr = self.json_element(*val.json)
        else:
            expr = val.sql
        if scope.joins:
            if scope.many:
                raise self.fail("cannot order by a property of a related collection (it has many values)", item.expr)
            expr = sa.select(expr).where(*scope.conditions).limit(1).scalar_subquery()
        # OData: null sorts before every value ascending, after every value descending: SQLite's order already, and
        # PostgreSQL's opposite. A NOT NULL column keeps its plain order, so that an index serves "latest first".
        ordered = expr.desc() if item.descending else expr.asc()
        if not self.pg or getattr(expr, "nullable", True) is False:
            return ordered
        return ordered.nulls_last() if item.descending else ordered.nulls_first()

    # values --------------------------------------------------------------------------------------------------------
    def value(self, node: Node, scope: JoinScope) -> _Val:
        if isinstance(node, Literal):
            if node.kind == "interval":
                raise self.fail("time intervals in $filter are not supported", node, NotSupported)
            return _literal_val(node.value, node.kind, node.text)
        if isinstance(node, Path):
            try:
                target = _resolve(self.resolver, node.segments, scope)
            except QueryError as error:
                if error.position is None:
                    raise QueryError(error.message, self.option, node.pos) from None
                raise
            if target.json_keys is not None:
                return _Val("json", json=(target.expr, target.json_keys), number=target.number)
            kind, integer = _kind_of(target.expr.type)
            return _Val(kind, sql=target.expr, integer=integer)
        if isinstance(node, BoolOp | Not):
            if isinstance(node, Not):
                inner = self.value(node.operand, scope)
                if inner.literal and inner.kind == "boolean":
                    return _literal_val(not inner.value, "boolean")
                if inner.kind not in ("boolean", "json", "any"):
                    raise self.fail(
                        f"not applies to the value right after it, here a {inner.kind}: "
                        "put the condition in parentheses, e.g. not (name eq 'x')",
                        node,
                    )
                return _Val("boolean", sql=sa.not_(self.as_condition(inner, node.operand)))
            parts = [self.as_condition(self.value(item, scope), item) for item in node.items]
            return _Val("boolean", sql=sa.and_(*parts) if node.op == "and" else sa.or_(*parts))
        if isinstance(node, Negate):
            inner = self.number(self.value(node.operand, scope), node.operand)
            if inner.literal:
                return _literal_val(-inner.value, "number")
            return _Val("number", sql=-self.num_sql(inner), integer=inner.integer, computed=True)
        if isinstance(node, Binary):
            left, right = self.value(node.left, scope), self.value(node.right, scope)
            if node.op in _COMPARISONS:
                return self.compare(node, left, right)
            return self.arithmetic(node, left, right)
        if isinstance(node, Call):
            return self.call(node, scope)
        raise AssertionError(node)  # pragma: no cover

    # comparison ----------------------------------------------------------------------------------------------------
    def compare(self, node: Binary, a: _Val, b: _Val) -> _Val:
        op = node.op
        if a.kind == "null" or b.kind == "null":
            other = b if a.kind == "null" else a
            if other.kind == "null":
                return _literal_val(op in ("eq", "ge", "le"), "boolean")
            if op not in ("eq", "ne"):
                return _literal_val(False, "boolean")
            if other.literal:
                return _literal_val(op == "ne", "boolean")
            is_null = self.json_is_null(other) if other.json is not None else other.sql.is_(None)
            return _Val("boolean", sql=is_null if op == "eq" else sa.not_(is_null))
        for val, operand in ((a, node.left), (b, node.right)):
            if val.kind in ("geography", "interval"):
                raise self.fail(f"comparing a {val.kind} is not supported", operand, NotSupported)
        if a.literal and b.literal:
            x, y = self.coerce_constants(node, a, b)
            try:
                result = _PY_COMPARE[op](x, y)
            except TypeError:
                raise self.fail(f"cannot compare a {a.kind} with a {b.kind}", node) from None
            return _literal_val(result, "boolean")
        # boolean conditions against true/false: `startswith(name,'x') eq true`
        for cond, const in ((a, b), (b, a)):
            if cond.kind == "boolean" and cond.json is None and const.literal and const.kind == "boolean":
                if op not in ("eq", "ne"):
                    break
                positive = const.value == (op == "eq")
                return _Val("boolean", sql=cond.sql if positive else sa.not_(cond.sql))
        x, y = self.operands(node, a, b)
        if op == "eq":
            return _Val("boolean", sql=x == y)
        if op == "ne":
            return _Val("boolean", sql=x.is_distinct_from(y))  # OData: null ne 5 is true
        return _Val("boolean", sql=_SQL_COMPARE[op](x, y))

    def coerce_constants(self, node: Node, a: _Val, b: _Val) -> tuple[Any, Any]:
        x, y = a.value, b.value
        if a.kind == b.kind:
            return x, y
        if a.kind == "string":
            return self.coerce_literal(a, b.kind, node).value, y
        if b.kind == "string":
            return x, self.coerce_literal(b, a.kind, node).value
        if {a.kind, b.kind} == {"date", "datetime"}:
            return _as_datetime(x), _as_datetime(y)
        raise self.fail(f"cannot compare a {a.kind} with a {b.kind}", node)

    def operands(self, node: Node, a: _Val, b: _Val) -> tuple[ColumnElement, ColumnElement]:
        """Both sides of a comparison as SQL of one kind, the constant bound to suit the other side."""
        kind = self.common_kind(node, a, b)
        if kind == "number":
            a, b = (self.number(val, node) if val.number is not None else val for val in (a, b))
        numeric = self.pg and kind == "number" and (a.computed or b.computed or a.json or b.json)
        like = a if a.sql is not None else b if b.sql is not None else None
        return self.to_sql(a, kind, node.left, like, numeric), self.to_sql(b, kind, node.right, like, numeric)

    def common_kind(self, node: Binary, a: _Val, b: _Val) -> str:
        for first, second in ((a, b), (b, a)):
            if first.kind == "json":
                if second.kind == "json":
                    return "string"  # two JSON values compare as text, as FROST does; `add 0` makes it numeric
                if second.kind in ("string", "number", "boolean"):
                    return second.kind
                if second.kind in ("datetime", "date", "time") and second.literal:
                    return "jsontext"
                if second.kind == "any":
                    return "string"
                raise self.fail(f"cannot compare a JSON value with a {second.kind}", node, NotSupported)
        for first, second in ((a, b), (b, a)):
            if not first.literal and second.literal:
                if first.kind == "any":
                    return second.kind
                return first.kind  # the constant is converted to it (or refused) below
        if a.kind == "any" or b.kind == "any":
            return b.kind if a.kind == "any" else a.kind
        if a.kind != b.kind and {a.kind, b.kind} != {"date", "datetime"}:
            raise self.fail(f"cannot compare a {a.kind} with a {b.kind}", node)
        return a.kind

    def to_sql(self, val: _Val, kind: str, node: Node, like: _Val | None, numeric: bool) -> ColumnElement:
        if val.json is not None:
            if kind == "jsontext":
                return self.json_as(val, "string")
            sql = self.json_as(val, kind)
            return sa.cast(sql, sa.Numeric) if numeric else sql
        if val.literal:
            if kind == "jsontext":
                return sa.literal(val.text, sa.String())
            coerced = self.coerce_literal(val, kind, node)
            return self.bind(coerced, like, numeric)
        if numeric:
            return _as_numeric(val.sql)
        return val.sql

    def coerce_literal(self, val: _Val, kind: str, node: Node) -> _Val:
        """The constant as a `kind`: a string may stand for a number or a time (`id eq '1'`), a date for midnight."""
        if kind in (val.kind, "any"):
            return val
        if val.kind == "string":
            text = val.value
            try:
                if kind == "number":
                    digits = text.strip().removeprefix("-")
                    if not _RE_NUMBER.fullmatch(digits):
                        raise ValueError
                    number = _parse_number(digits, self.option, node.pos)
                    return _literal_val(-number if text.strip().startswith("-") else number, "number")
                if kind == "datetime":
                    return _literal_val(_parse_datetime(text.strip(), self.option, node.pos), "datetime")
                if kind == "date":
                    return _literal_val(date.fromisoformat(text.strip()), "date")
                if kind == "time":
                    return _literal_val(time.fromisoformat(text.strip()), "time")
                if kind == "boolean" and text.lower() in ("true", "false"):
                    return _literal_val(text.lower() == "true", "boolean")
            except (ValueError, QueryError):
                pass
        if kind == "datetime" and val.kind == "date":
            return _literal_val(datetime.combine(val.value, time(0), UTC), "datetime")
        if kind == "date" and val.kind == "datetime":
            raise self.fail("compare date(…) with a date such as 2026-11-29", node)
        raise self.fail(f"expected a {kind} here, not a {val.kind}", node)

    def bind(self, val: _Val, like: _Val | None, numeric: bool = False) -> ColumnElement:
        value, kind = val.value, val.kind
        if kind == "number":
            if numeric:
                return sa.literal(Decimal(repr(value)) if isinstance(value, float) else value, sa.Numeric())
            if isinstance(value, int):
                return sa.literal(value, sa.Integer() if -_INT32 <= value < _INT32 else sa.BigInteger())
            return sa.literal(value, sa.Float())
        if kind == "string":
            return sa.literal(value, sa.String())
        if kind == "boolean":
            return sa.literal(value, sa.Boolean())
        if kind == "datetime":
            type_ = (
                like.sql.type
                if like is not None and like.kind == "datetime" and like.sql is not None
                else UTCDateTime()
            )
            return sa.literal(value.astimezone(UTC), type_)
        if kind == "date":
            return sa.literal(value, sa.Date())
        if kind == "time":
            if like is not None and like.sql is not None and isinstance(like.sql.type, sa.Time):
                return sa.literal(value.replace(tzinfo=None), like.sql.type)  # a stored time
            if not self.pg:  # SQLite's time(…) here is strftime('%H:%M:%f'): milliseconds
                return sa.literal(value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}", sa.String())
            return sa.literal(value.replace(tzinfo=None), sa.Time())
        if kind == "duration":
            raise QueryError("durations can only be added to or subtracted from a date and time", self.option)
        raise QueryError(f"a {kind} cannot be used here", self.option)

    # arithmetic ----------------------------------------------------------------------------------------------------
    def arithmetic(self, node: Binary, a: _Val, b: _Val) -> _Val:
        op = node.op
        if a.kind in ("datetime", "duration") or b.kind in ("datetime", "duration"):
            return self.time_arithmetic(node, a, b)
        a, b = self.number(a, node.left), self.number(b, node.right)
        integer = a.integer and b.integer
        if a.literal and b.literal:
            result = self.fold(node, a.value, b.value, integer)
            return _literal_val(result, "number" if result is not None else "null")
        x, y = self.num_sql(a), self.num_sql(b)
        if op in ("div", "mod"):
            y = sa.func.nullif(y, 0)  # a division by zero is null (PostgreSQL would fail the whole query)
        if self.pg:
            if op == "div" and integer:
                sql = sa.func.trunc(x / y)
            elif op == "mod":
                sql = sa.func.mod(x, y)
            else:
                sql = x.op(_SQL_ARITHMETIC[op], return_type=sa.Numeric())(y)
            return _Val("number", sql=sql, integer=integer, computed=True)
        if op == "mod" and not integer:
            sql = sa.func.mod(x, y, type_=sa.Float())
        else:
            return_type = sa.Integer() if integer else sa.Float()
            sql = x.op(_SQL_ARITHMETIC[op], return_type=return_type)(y)
        return _Val("number", sql=sql, integer=integer, computed=True)

    def fold(self, node: Binary, x: int | float, y: int | float, integer: bool) -> int | float | None:
        op = node.op
        try:
            if op == "add":
                result = x + y
            elif op == "sub":
                result = x - y
            elif op == "mul":
                result = x * y
            elif y == 0:
                return None
            elif op == "div":
                result = int(Decimal(x) / Decimal(y)) if integer else x / y
            else:
                result = int(math.fmod(Decimal(x), Decimal(y))) if integer else math.fmod(x, y)
        except (OverflowError, ArithmeticError):
            raise self.fail("the result is out of range", node) from None
        if isinstance(result, int) and abs(result) >= _INT64 or isinstance(result, float) and not math.isfinite(result):
            raise self.fail("the result is out of range", node)
        return result

    def time_arithmetic(self, node: Binary, a: _Val, b: _Val) -> _Val:
        op = node.op
        if not (a.literal and b.literal):
            raise self.fail(
                "arithmetic with a stored time is not supported; move it to the constant side, "
                "e.g. phenomenonTime gt now() sub duration'P1D'",
                node,
                NotSupported,
            )
        try:
            if a.kind == "datetime" and b.kind == "duration" and op in ("add", "sub"):
                duration = b.value if op == "add" else -b.value
                return _literal_val(duration.added_to(a.value), "datetime")
            if a.kind == "duration" and b.kind == "datetime" and op == "add":
                return _literal_val(a.value.added_to(b.value), "datetime")
            if a.kind == "datetime" and b.kind == "datetime" and op == "sub":
                return _literal_val(Duration(0, a.value - b.value), "duration")
            if a.kind == b.kind == "duration" and op in ("add", "sub"):
                other = b.value if op == "add" else -b.value
                return _literal_val(Duration(a.value.months + other.months, a.value.delta + other.delta), "duration")
        except (OverflowError, ValueError):
            raise self.fail("the resulting time is out of range", node) from None
        raise self.fail(f"cannot {op} a {a.kind} and a {b.kind}", node)

    def number(self, val: _Val, node: Node) -> _Val:
        if val.kind == "number":
            return val
        if val.number is not None:
            return _Val("number", sql=val.number, integer=_kind_of(val.number.type)[1])
        if val.json is not None:
            return _Val("number", sql=self.json_as(val, "number"), computed=self.pg)
        if val.kind == "any":
            return replace(val, kind="number")
        if val.literal and val.kind == "string":
            return self.coerce_literal(val, "number", node)
        raise self.fail(f"expected a number, not a {val.kind}", node)

    def num_sql(self, val: _Val) -> ColumnElement:
        if val.literal:
            return self.bind(val, None, numeric=self.pg)
        return _as_numeric(val.sql) if self.pg else val.sql

    # functions -----------------------------------------------------------------------------------------------------
    def call(self, node: Call, scope: JoinScope) -> _Val:
        name = node.name
        if name in GEO_FUNCTIONS:
            raise self.fail(f"the geospatial function {name}() is not supported by this server", node, NotSupported)
        if name == "now":
            return _literal_val(self.now, "datetime")
        if name == "mindatetime":
            return _literal_val(_MIN_DATETIME, "datetime")
        if name == "maxdatetime":
            return _literal_val(_MAX_DATETIME, "datetime")
        args = [self.value(arg, scope) for arg in node.args]
        if name in _DATE_PARTS or name in ("fractionalseconds", "date", "time", "totaloffsetminutes"):
            return self.date_function(node, args[0])
        if name in ("round", "floor", "ceiling"):
            return self.math_function(node, self.number(args[0], node.args[0]))
        return self.string_function(node, args)

    def text(self, val: _Val, node: Node) -> ColumnElement:
        if val.json is not None:
            return self.json_as(val, "string")
        if val.literal:
            if val.kind != "string":
                raise self.fail(f"expected a string in quotes, not a {val.kind}", node)
            return sa.literal(val.value, sa.String())
        if val.kind not in ("string", "any"):
            raise self.fail(f"expected text, not a {val.kind}", node)
        return val.sql

    def position(self, haystack: ColumnElement, needle: ColumnElement) -> ColumnElement:
        """1-based position of needle in haystack, 0 when absent (case-sensitive on both databases)."""
        if self.pg:
            return sa.func.strpos(haystack, needle, type_=sa.Integer())
        return sa.func.instr(haystack, needle, type_=sa.Integer())

    def int_arg(self, val: _Val, node: Node, *, plus: int = 0) -> ColumnElement:
        """A whole-number argument (of substring) + `plus`, at least `plus`, within PostgreSQL's INTEGER."""
        val = self.number(val, node)
        if val.literal:
            if not isinstance(val.value, int):
                raise self.fail("expected a whole number", node)
            return sa.literal(min(max(val.value, 0) + plus, _INT32 - 1), sa.Integer())
        if not val.integer:
            raise self.fail("expected a whole number", node)
        x = val.sql
        if self.pg:
            x = sa.cast(sa.func.least(sa.func.greatest(self.num_sql(val), 0), _INT32 - 1 - plus), sa.Integer)
            return x + plus if plus else x
        return sa.case((x < 0, plus), else_=x + plus)

    def string_function(self, node: Call, args: list[_Val]) -> _Val:
        name = node.name
        if name == "substring":
            s = self.text(args[0], node.args[0])
            start = self.int_arg(args[1], node.args[1], plus=1)  # OData counts from 0, SQL from 1
            if len(args) == 3:
                count = self.int_arg(args[2], node.args[2])
                return _Val("string", sql=sa.func.substr(s, start, count, type_=sa.String()), computed=True)
            return _Val("string", sql=sa.func.substr(s, start, type_=sa.String()), computed=True)
        texts = [self.text(arg, sub) for arg, sub in zip(args, node.args, strict=True)]
        if name == "length":
            return _Val("number", sql=sa.func.length(texts[0], type_=sa.Integer()), integer=True, computed=True)
        if name in ("tolower", "toupper", "trim"):
            function = {"tolower": sa.func.lower, "toupper": sa.func.upper, "trim": sa.func.trim}[name]
            return _Val("string", sql=function(texts[0], type_=sa.String()), computed=True)
        if name == "concat":
            return _Val("string", sql=texts[0].op("||", return_type=sa.String())(texts[1]), computed=True)
        if name == "indexof":
            return _Val("number", sql=self.position(texts[0], texts[1]) - 1, integer=True, computed=True)
        if name == "substringof":  # substringof(needle, haystack), as OData 3 and SensorThings have it
            return _Val("boolean", sql=self.position(texts[1], texts[0]) > 0)
        if name == "contains":
            return _Val("boolean", sql=self.position(texts[0], texts[1]) > 0)
        s, affix = texts
        length = sa.func.length(affix, type_=sa.Integer())
        if name == "startswith":
            return _Val("boolean", sql=sa.func.substr(s, 1, length, type_=sa.String()) == affix)
        if name == "endswith":
            start = sa.func.length(s, type_=sa.Integer()) - length + 1
            return _Val("boolean", sql=sa.func.substr(s, start, type_=sa.String()) == affix)
        raise AssertionError(name)  # pragma: no cover

    def date_function(self, node: Call, val: _Val) -> _Val:
        name = node.name
        if val.literal:
            return self.fold_date_function(node, val)
        self.check_date_argument(node, val)
        if name == "totaloffsetminutes":
            return _literal_val(0, "number")  # stored times are UTC
        x = val.sql
        if self.pg:
            utc = sa.func.timezone("UTC", x) if val.kind in ("datetime", "any") else x
            if name == "date":
                return _Val("date", sql=sa.cast(utc, sa.Date), computed=True)
            if name == "time":
                return _Val("time", sql=sa.cast(utc, sa.Time), computed=True)
            seconds = sa.extract("second", utc)
            if name == "second":
                return _Val("number", sql=sa.cast(sa.func.floor(seconds), sa.Integer), integer=True, computed=True)
            if name == "fractionalseconds":
                return _Val("number", sql=seconds - sa.func.floor(seconds), computed=True)
            return _Val("number", sql=sa.cast(sa.extract(name, utc), sa.Integer), integer=True, computed=True)
        # SQLite: datetimes are text 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (kotacerdas.db.UTCDateTime), except the
        # observation store's, integer microseconds since the epoch (a type with `epoch_microseconds`): those are
        # turned into the same text first (to the millisecond, as SQLite's %f gives).
        if getattr(x.type, "epoch_microseconds", False):
            x = sa.func.strftime("%Y-%m-%d %H:%M:%f", sa.type_coerce(x, sa.BigInteger()) / 1_000_000.0, "unixepoch")
        if name == "date":
            return _Val("date", sql=sa.func.date(x, type_=sa.Date()), computed=True)
        if name == "time":
            return _Val("time", sql=sa.func.strftime("%H:%M:%f", x, type_=sa.String()), computed=True)
        if name == "fractionalseconds":
            sql = sa.cast(sa.func.strftime("%f", x), sa.Float) - sa.cast(sa.func.strftime("%S", x), sa.Integer)
            return _Val("number", sql=sql, computed=True)
        sql = sa.cast(sa.func.strftime(_DATE_PARTS[name], x), sa.Integer)
        return _Val("number", sql=sql, integer=True, computed=True)

    def check_date_argument(self, node: Call, val: _Val) -> None:
        if val.kind not in ("datetime", "date", "time", "any"):
            raise self.fail(f"{node.name}() needs a date and time, not a {val.kind}", node.args[0])
        if node.name not in _DATE_FUNCTION_ARGUMENTS.get(val.kind, _DATE_FUNCTION_ARGUMENTS["datetime"]):
            raise self.fail(f"{node.name}() has no meaning for a {val.kind}", node.args[0])

    def fold_date_function(self, node: Call, val: _Val) -> _Val:
        name, value = node.name, val.value
        if val.kind == "string":
            val = self.coerce_literal(val, "datetime", node.args[0])
            value = val.value
        self.check_date_argument(node, val)
        if name == "totaloffsetminutes":
            offset = value.utcoffset() if isinstance(value, datetime) else None
            return _literal_val(int(offset.total_seconds() // 60) if offset else 0, "number")
        if name == "date":
            return _literal_val(value if val.kind == "date" else value.date(), "date")
        if name == "time":
            return _literal_val(value if val.kind == "time" else value.timetz().replace(tzinfo=None), "time")
        if name == "fractionalseconds":
            return _literal_val(getattr(value, "microsecond", 0) / 1_000_000, "number")
        part = getattr(value, name, None)
        if part is None:
            raise self.fail(f"{name}() of a {val.kind} has no meaning", node)
        return _literal_val(part, "number")

    def math_function(self, node: Call, val: _Val) -> _Val:
        name = node.name
        if val.literal:
            if isinstance(val.value, int) or abs(val.value) >= 2**52:  # already whole
                return val
            rounding = {"round": ROUND_HALF_UP, "floor": ROUND_FLOOR, "ceiling": ROUND_CEILING}[name]
            return _literal_val(int(Decimal(repr(val.value)).quantize(Decimal(1), rounding=rounding)), "number")
        x = self.num_sql(val)
        if name == "round":
            # half away from zero on both: SQLite's round(), PostgreSQL's round(numeric)
            sql = sa.func.round(x) if self.pg else sa.func.round(x, type_=sa.Float())
        elif name == "floor":
            # not SQLite's floor(): pysqlite connections get SQLAlchemy's Python floor(), which fails on null
            sql = sa.func.floor(x) if self.pg else -sa.func.ceil(-x, type_=sa.Float())
        else:
            sql = sa.func.ceil(x, type_=sa.Float())
        return _Val("number", sql=sql, integer=val.integer, computed=True)

    # JSON ----------------------------------------------------------------------------------------------------------
    def json_path(self, keys: tuple[str, ...]) -> str:
        return "$" + "".join(f'."{key}"' for key in keys)

    def json_element(self, doc: ColumnElement, keys: tuple[str, ...]) -> ColumnElement:
        """The raw value: jsonb on PostgreSQL (ordered by type, then value), a native value on SQLite."""
        if self.pg:
            return sa.cast(doc, JSONB).op("#>", return_type=JSONB())(sa.literal(list(keys), ARRAY(sa.Text())))
        return sa.func.json_extract(doc, self.json_path(keys))

    def json_type(self, doc: ColumnElement, keys: tuple[str, ...]) -> ColumnElement:
        if self.pg:
            return sa.func.jsonb_typeof(self.json_element(doc, keys), type_=sa.String())
        return sa.func.json_type(doc, self.json_path(keys), type_=sa.String())

    def json_as(self, val: _Val, kind: str) -> ColumnElement:
        """The JSON value as a string, number or boolean, or null when it is of another JSON type (so that
        `properties/x gt 5` never compares text with a number, and PostgreSQL never fails a cast)."""
        doc, keys = val.json
        jtype = self.json_type(doc, keys)
        if self.pg:
            text = sa.cast(doc, JSONB).op("#>>", return_type=sa.String())(sa.literal(list(keys), ARRAY(sa.Text())))
            if kind == "number":
                return sa.case((jtype == "number", sa.cast(text, sa.Numeric)))
            if kind == "boolean":
                return sa.case((jtype == "boolean", sa.cast(text, sa.Boolean)))
            return sa.case((jtype == "string", text))
        raw = sa.func.json_extract(doc, self.json_path(keys))
        if kind == "number":
            return sa.case((jtype.in_(["integer", "real"]), raw))
        if kind == "boolean":
            return sa.case((jtype.in_(["true", "false"]), raw == 1))
        return sa.case((jtype == "text", raw))

    def json_is_null(self, val: _Val) -> ColumnElement:
        doc, keys = val.json
        is_null = sa.func.coalesce(self.json_type(doc, keys), "null") == "null"
        return is_null if val.number is None else sa.and_(val.number.is_(None), is_null)


_DATE_FUNCTION_ARGUMENTS = {
    "datetime": {*"year month day hour minute second fractionalseconds date time totaloffsetminutes".split()},
    "date": {"year", "month", "day", "date"},
    "time": {"hour", "minute", "second", "fractionalseconds", "time"},
}
_DATE_PARTS = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S"}
_SQL_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%"}
_SQL_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y,
    "lt": lambda x, y: x < y,
    "le": lambda x, y: x <= y,
}
_PY_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    **_SQL_COMPARE,
    "eq": lambda x, y: x == y,
    "ne": lambda x, y: x != y,
}


def _as_numeric(expr: ColumnElement) -> ColumnElement:
    """On PostgreSQL, numbers are computed in NUMERIC: no integer overflow, mod() and round() of any number."""
    if isinstance(expr.type, sa.Numeric) and not isinstance(expr.type, sa.Float):
        return expr
    return sa.cast(expr, sa.Numeric)


def _as_datetime(value: Any) -> Any:
    """A date as midnight UTC; anything else as it is."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0), UTC)
    return value


def filter_condition(
    node: Node | QueryOptions | None,
    resolver: Resolver,
    *,
    dialect: Dialect | str,
    now: datetime | None = None,
    option: str = "$filter",
) -> ColumnElement | None:
    """The WHERE condition of a `$filter` (a node, or the filter of parsed options); None when there is none.

    `resolver` turns property paths into SQL: an `EntityResolver`, a mapping {"name": column, "properties": json
    column, "Datastream/Thing/name": a correlated scalar subquery, ...}, or a callable path → column or `Target`.
    `now` is the time `now()` stands for (default: the current time)."""
    if isinstance(node, QueryOptions):
        option = node.origin or option
        node = node.filter
    if node is None:
        return None
    return _Compiler(resolver, dialect=dialect, now=now, option=option).condition(node)


def order_by_clauses(
    items: Iterable[OrderItem] | QueryOptions,
    resolver: Resolver,
    *,
    dialect: Dialect | str,
    now: datetime | None = None,
    option: str = "$orderby",
) -> list[ColumnElement]:
    """The ORDER BY clauses of `$orderby`, nulls first ascending and last descending, the same on both databases."""
    if isinstance(items, QueryOptions):
        option = items.origin or option
        items = items.orderby
    compiler = _Compiler(resolver, dialect=dialect, now=now, option=option)
    return [clause for item in items if (clause := compiler.ordering(item)) is not None]


def apply_query(
    statement: Select,
    options: QueryOptions,
    *,
    resolver: Resolver,
    dialect: Dialect | str,
    limits: Limits = LIMITS,
    now: datetime | None = None,
    tiebreak: Iterable[ColumnElement] = (),
    paginate: bool = True,
) -> Select:
    """`statement` with the filter, the order (then `tiebreak`, e.g. the id, so that pages are stable) and, when
    `paginate`, `$top` (capped by `limits`) and `$skip` applied. For `@iot.count`, count
    `statement.where(filter_condition(...))` without the order and the page."""
    condition = filter_condition(options, resolver, dialect=dialect, now=now)
    if condition is not None:
        statement = statement.where(condition)
    clauses = order_by_clauses(options, resolver, dialect=dialect, now=now)
    statement = statement.order_by(*clauses, *tiebreak)
    if paginate:
        statement = statement.limit(limits.page_size(options.top)).offset(options.skip or 0)
    return statement
