"""SensorThings query options: the parser (every operator, function and option, precedence, errors, bounds) and the
compiled filters and orderings run against a real table on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kotacerdas.db import JSONType, UTCDateTime
from kotacerdas.errors import DomainError
from kotacerdas.sensors.query import (
    FUNCTIONS,
    Binary,
    BoolOp,
    Call,
    Duration,
    Entity,
    EntityResolver,
    Interval,
    Limits,
    Literal,
    Negate,
    Not,
    NotSupported,
    Path,
    QueryError,
    Relation,
    Target,
    apply_query,
    filter_condition,
    order_by_clauses,
    parse_count,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_query,
    parse_result_format,
    parse_select,
    parse_skip,
    parse_top,
)

WIB = timezone(timedelta(hours=7))


def show(node) -> str:
    """The tree as a fully parenthesised prefix expression, to assert structure and precedence."""
    if isinstance(node, Literal):
        return repr(node.value) if node.kind != "string" else f"'{node.value}'"
    if isinstance(node, Path):
        return "/".join(node.segments)
    if isinstance(node, Binary):
        return f"({node.op} {show(node.left)} {show(node.right)})"
    if isinstance(node, BoolOp):
        return f"({node.op} {' '.join(show(item) for item in node.items)})"
    if isinstance(node, Not):
        return f"(not {show(node.operand)})"
    if isinstance(node, Negate):
        return f"(- {show(node.operand)})"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(show(arg) for arg in node.args)})"
    raise AssertionError(node)


def literal(text: str) -> Literal:
    node = parse_filter(f"x eq {text}")
    assert isinstance(node, Binary)
    return node.right


# --- parser: literals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("5", "number", 5),
        ("-5", "number", -5),
        ("3.25", "number", 3.25),
        ("-0.5", "number", -0.5),
        ("1.5e3", "number", 1500.0),
        ("2E-2", "number", 0.02),
        ("'Musi'", "string", "Musi"),
        ("'O''Brien'", "string", "O'Brien"),
        ("''", "string", ""),
        ("'a,b;c)'", "string", "a,b;c)"),
        ("true", "boolean", True),
        ("False", "boolean", False),
        ("null", "null", None),
        ("2026-11-29T00:00:00Z", "datetime", datetime(2026, 11, 29, tzinfo=UTC)),
        ("2026-11-29T00:00:00.000+07:00", "datetime", datetime(2026, 11, 29, tzinfo=WIB)),
        (
            "2026-11-29T10:11:12.345678-03:30",
            "datetime",
            datetime(2026, 11, 29, 10, 11, 12, 345678, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        ),
        ("2026-11-29T10:11Z", "datetime", datetime(2026, 11, 29, 10, 11, tzinfo=UTC)),
        # an unencoded '+' in a URL arrives as a space
        ("2026-11-29T00:00:00 07:00", "datetime", datetime(2026, 11, 29, tzinfo=WIB)),
        ("2026-11-29", "date", date(2026, 11, 29)),
        ("17:30:00", "time", time(17, 30)),
        ("duration'P1DT2H'", "duration", Duration(0, timedelta(days=1, hours=2))),
        ("PT10M", "duration", Duration(0, timedelta(minutes=10))),
        ("P1Y2M", "duration", Duration(14)),
        ("-PT1.5S", "duration", Duration(0, -timedelta(seconds=1.5))),
        (
            "2026-11-29T00:00:00Z/2026-11-30T00:00:00Z",
            "interval",
            Interval(datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),
        ),
        (
            "2026-11-29T00:00:00Z/PT6H",
            "interval",
            Interval(datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 29, 6, tzinfo=UTC)),
        ),
        ("geography'POINT(103.2 -3.1)'", "geography", "POINT(103.2 -3.1)"),
    ],
)
def test_literals(text, kind, value):
    node = literal(text)
    assert (node.kind, node.value) == (kind, value)
    if kind == "datetime":
        assert node.value.utcoffset() == value.utcoffset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("'unterminated", "unterminated string"),
        ("2026-11-29T00:00:00", "needs a time zone"),
        ("2026-02-30T00:00:00Z", "not a valid date and time"),
        ("0001-01-01T00:00:00+07:00", "not a valid date and time"),
        ("2026-13-01", "not a valid date"),
        ("25:00:00", "not a valid time"),
        ("duration'1D'", "not an ISO 8601 duration"),
        ("duration'PT'", "not an ISO 8601 duration"),
        ("money'5'", "unknown literal type"),
        ("99999999999999999999", "out of range"),
        ("1e999", "out of range"),
        ("5abc", "unexpected 'a'"),
        ("#", "unexpected character"),
    ],
)
def test_bad_literals_are_query_errors(text, message):
    with pytest.raises(QueryError, match=message) as caught:
        parse_filter(f"x eq {text}")
    assert caught.value.option == "$filter"
    assert caught.value.position is not None and caught.value.position >= 5


def test_paths():
    assert literal("Datastream/Thing/name") == Path(5, ("Datastream", "Thing", "name"))
    assert show(parse_filter("properties/owner eq 'pu'")) == "(eq properties/owner 'pu')"
    assert show(parse_filter("Datastream/@iot.id eq 1")) == "(eq Datastream/id 1)"
    assert show(parse_filter("@iot.id eq 1")) == "(eq id 1)"
    # a property that looks like a duration after a slash is a name
    assert show(parse_filter("properties/P1D eq 1")) == "(eq properties/P1D 1)"
    with pytest.raises(QueryError, match="expected a property name"):
        parse_filter("Datastream/1 eq 1")


# --- parser: operators and precedence ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "ge", "lt", "le", "add", "sub", "mul", "div", "mod"])
def test_binary_operators(op):
    assert show(parse_filter(f"result {op} 5")) == f"({op} result 5)"


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a eq 1 and b eq 2", "(and (eq a 1) (eq b 2))"),
        ("a eq 1 or b eq 2 and c eq 3", "(or (eq a 1) (and (eq b 2) (eq c 3)))"),
        ("(a eq 1 or b eq 2) and c eq 3", "(and (or (eq a 1) (eq b 2)) (eq c 3))"),
        ("a eq 1 or b eq 2 or c eq 3", "(or (eq a 1) (eq b 2) (eq c 3))"),
        ("a add b mul c eq 7", "(eq (add a (mul b c)) 7)"),
        ("a mul b add c eq 7", "(eq (add (mul a b) c) 7)"),
        ("a sub b sub c eq 0", "(eq (sub (sub a b) c) 0)"),
        ("a div b mod c eq 0", "(eq (mod (div a b) c) 0)"),
        ("(a add b) mul c gt 1", "(gt (mul (add a b) c) 1)"),
        ("a add 1 gt b sub 2", "(gt (add a 1) (sub b 2))"),
        ("not startswith(name,'x')", "(not startswith(name, 'x'))"),
        ("not not a", "(not (not a))"),
        # not binds tighter than everything: it takes the next value only
        ("not a eq b", "(eq (not a) b)"),
        ("not (a eq b) and c", "(and (not (eq a b)) c)"),
        ("- a mul b eq 1", "(eq (mul (- a) b) 1)"),
        ("result sub -3 eq 1", "(eq (sub result -3) 1)"),
        ("AND_value eq 1 AND b eq 2", "(and (eq AND_value 1) (eq b 2))"),
    ],
)
def test_precedence(text, tree):
    assert show(parse_filter(text)) == tree


def test_every_function_of_the_specification_parses():
    # SensorThings 1.1, table "built-in query functions" (plus OData 4's contains)
    names = (
        "substringof endswith startswith contains length indexof substring tolower toupper trim concat "
        "year month day hour minute second fractionalseconds date time totaloffsetminutes now mindatetime maxdatetime "
        "round floor ceiling geo.intersects geo.length geo.distance st_equals st_disjoint st_touches st_within "
        "st_overlaps st_crosses st_intersects st_contains st_relate"
    ).split()
    assert set(names) == set(FUNCTIONS)
    for name in names:
        fewest, most = FUNCTIONS[name]
        for count in {fewest, most}:
            args = ", ".join(["location", "geography'POINT(1 2)'", "'T********'"][:count])
            node = parse_filter(f"{name}({args}) eq true")
            assert isinstance(node.left, Call) and node.left.name == name and len(node.left.args) == count


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("startswith(name)", "startswith() takes 2 argument(s), not 1", 1),
        ("substring(name)", "substring() takes 2 or 3 argument(s), not 1", 1),
        ("now(1) gt x", "now() takes 0 argument(s), not 1", 1),
        ("frobnicate(name) eq 1", "unknown function 'frobnicate'", 1),
        ("name eq", "expected a value, a property or a function, found the end", 8),
        ("name eq 'x' and", "expected a value, a property or a function, found the end", 16),
        ("name eq 'x' 'y'", "expected an operator or the end of the expression, found \"'y'\"", 13),
        ("(name eq 'x'", "expected ')', found the end", 13),
        ("name eq 'x')", "expected an operator or the end", 12),
        ("startswith(name 'x')", "expected ',' or ')'", 17),
        ("name eq eq", "expected a value", 9),
        ("", "expected a condition", 1),
        ("a eq *", "expected a value", 6),
    ],
)
def test_syntax_errors_name_the_option_and_position(text, message, position):
    with pytest.raises(QueryError) as caught:
        parse_filter(text)
    assert message in caught.value.message
    assert caught.value.position == position - 1
    assert str(caught.value).startswith("$filter: ")
    assert f"(at character {position})" in str(caught.value)


def test_query_errors_are_domain_errors_the_app_answers_as_problems():
    with pytest.raises(DomainError) as caught:
        parse_query({"$filter": "name eq"})
    error = caught.value
    assert (error.status_code, error.slug) == (400, "invalid-query")
    assert error.detail == "$filter: expected a value, a property or a function, found the end (at character 8)"
    assert error.errors == [{"field": "$filter", "reason": "invalid-query", "message": error.detail}]
    assert (NotSupported.status_code, NotSupported.slug) == (501, "not-implemented")


def test_length_and_depth_are_bounded():
    limits = Limits(max_length=100, max_depth=8)
    with pytest.raises(QueryError, match="too long"):
        parse_filter("a eq " + "1" * 100, limits=limits)
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_filter("(" * 9 + "a" + ")" * 9 + " eq 1", limits=limits)
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_filter("not " * 9 + "a", limits=limits)
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_filter("a" + " add a" * 9 + " eq 1", limits=limits)
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_filter("tolower(" * 9 + "a" + ")" * 9 + " eq 'a'", limits=limits)
    # a long flat chain of or is not deep
    assert len(parse_filter(" or ".join(["a eq 1"] * 200)).items) == 200
    with pytest.raises(QueryError, match="NUL"):
        parse_filter("a eq 'x\x00'")


# --- parser: the other options -------------------------------------------------------------------------------------


def test_orderby():
    items = parse_orderby("phenomenonTime desc, Datastream/name,result asc, round(result) DESC")
    assert [(show(item.expr), item.descending) for item in items] == [
        ("phenomenonTime", True),
        ("Datastream/name", False),
        ("result", False),
        ("round(result)", True),
    ]
    for bad, message in [("", "expected a property"), ("a,", "expected a property"), ("a up", "expected asc, desc")]:
        with pytest.raises(QueryError, match=message) as caught:
            parse_orderby(bad)
        assert caught.value.option == "$orderby"


def test_select():
    assert parse_select("id, name,@iot.id,Datastream/name, *") == (("id",), ("name",), ("Datastream", "name"), ("*",))
    for bad in ["", "a,", "a b", "a/", "name eq 1"]:
        with pytest.raises(QueryError) as caught:
            parse_select(bad)
        assert caught.value.option == "$select"


def test_top_skip_count_result_format():
    assert (parse_top("0"), parse_top(" 20 "), parse_skip("300")) == (0, 20, 300)
    assert (parse_count("true"), parse_count("FALSE")) == (True, False)
    assert parse_result_format("dataArray") == "dataArray"
    for parser, bad in [
        (parse_top, "-1"),
        (parse_top, "1.5"),
        (parse_top, "ten"),
        (parse_top, "٣"),
        (parse_skip, "9" * 30),
        (parse_count, "yes"),
        (parse_result_format, "csv"),
    ]:
        with pytest.raises(QueryError):
            parser(bad)
    limits = Limits(default_top=100, max_top=10_000)
    assert (limits.page_size(None), limits.page_size(5), limits.page_size(50_000)) == (100, 5, 10_000)


def test_expand_nests_options_and_paths():
    items = parse_expand(
        "Datastreams($select=name,id;$filter=name eq 'a;b)';"
        "$expand=Observations($top=1;$orderby=phenomenonTime desc),ObservedProperty;$count=true), "
        "Locations, Datastreams/Thing"
    )
    assert [item.name for item in items] == ["Datastreams", "Locations"]
    datastreams = items[0].options
    assert datastreams.select == (("name",), ("id",))
    assert show(datastreams.filter) == "(eq name 'a;b)')"
    assert datastreams.count is True
    assert [item.name for item in datastreams.expand] == ["Observations", "ObservedProperty", "Thing"]
    observations = datastreams.expand[0].options
    assert observations.top == 1
    assert [(show(o.expr), o.descending) for o in observations.orderby] == [("phenomenonTime", True)]
    assert datastreams.origin == observations.origin == "$expand"

    chain = parse_expand("Datastreams/Sensor/Datastreams($top=2)")
    assert chain[0].name == "Datastreams"
    inner = chain[0].options.expand[0].options.expand[0]
    assert (inner.name, inner.options.top) == ("Datastreams", 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected the name of a navigation property"),
        ("Datastreams(", "not closed"),
        ("Datastreams($top=x)", "expected a non-negative integer"),
        ("Datastreams($format=json)", "expected one of $filter"),
        ("Datastreams($top=1;$top=2)", "$top is given twice"),
        ("Datastreams($filter=name eq)", "expected a value"),
        ("Datastreams($top=1),Datastreams($top=2)", "expanded twice with different options"),
        ("Datastreams Things", "expected ',' or the end"),
        ("Datastreams,", "expected the name of a navigation property"),
    ],
)
def test_expand_errors(text, message):
    with pytest.raises(QueryError, match=message.replace("$", r"\$").replace("(", r"\(")) as caught:
        parse_expand(text)
    assert caught.value.option == "$expand"


def test_expand_error_positions_count_in_the_whole_value():
    with pytest.raises(QueryError) as caught:
        parse_expand("Datastreams($select=name;$filter=name eq 'x' eq)")
    assert caught.value.position == len("Datastreams($select=name;$filter=name eq 'x' eq")


def test_expand_depth_is_bounded():
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_expand("A($expand=" * 40 + "B" + ")" * 40)
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_expand("/".join(["Things"] * 250))
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_expand("A($expand=" * 20 + "/".join(["B"] * 20) + ")" * 20)
    assert parse_expand("/".join(["Things"] * 31))


def test_paths_are_bounded():
    assert parse_filter("/".join(["a"] * 8) + " eq 1")
    with pytest.raises(QueryError, match="the path is too long") as caught:
        parse_filter("x eq 1 and " + "/".join(["Thing/Datastreams"] * 60) + " eq 1")
    assert caught.value.position == len("x eq 1 and ")
    with pytest.raises(QueryError, match="the path is too long"):
        parse_select("/".join(["a"] * 9))


def test_parse_query():
    options = parse_query(
        [
            ("$filter", "result gt 5"),
            ("$orderby", "phenomenonTime desc"),
            ("$top", "10"),
            ("$skip", "20"),
            ("$count", "true"),
            ("$select", "result,phenomenonTime"),
            ("$expand", "Datastream"),
            ("$resultFormat", "dataArray"),
            ("lang", "en"),
        ]
    )
    assert show(options.filter) == "(gt result 5)"
    assert (options.top, options.skip, options.count, options.result_format) == (10, 20, True, "dataArray")
    assert options.select == (("result",), ("phenomenonTime",))
    assert options.expand[0].name == "Datastream"
    empty = parse_query({})
    assert (empty.filter, empty.orderby, empty.top, empty.skip, empty.count, empty.select) == (
        None,
        (),
        None,
        None,
        None,
        None,
    )
    with pytest.raises(QueryError, match="given twice"):
        parse_query([("$top", "1"), ("$top", "2")])
    with pytest.raises(QueryError, match="unknown query option") as caught:
        parse_query({"$format": "json"})
    assert caught.value.option == "$format"


PARSERS = [
    parse_filter,
    parse_orderby,
    parse_select,
    parse_expand,
    parse_top,
    parse_skip,
    parse_count,
    parse_result_format,
]
ALPHABET = st.sampled_from(
    list("abAZ019 '(),;/=$-+.:TZP@*_\t") + ["eq", "and", "not", "$expand=", "$filter=", "(", "'", "é", "\x00", "\ud800"]
)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda parser: parser.__name__)
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.lists(ALPHABET, max_size=40).map("".join)))
def test_any_text_is_parsed_or_refused_with_a_query_error(parser, text):
    try:
        parser(text)
    except QueryError as error:
        assert str(error)


@settings(max_examples=200, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["$filter", "$orderby", "$top", "$expand", "$select", "$x", "q"]), st.text(max_size=40)
    )
)
def test_any_parameters_are_parsed_or_refused_with_a_query_error(params):
    try:
        parse_query(params)
    except QueryError:
        pass


# --- compiling and running -----------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
THINGS = [
    {
        "id": 1,
        "name": "Musi gauge",
        "description": "River gauge on the Musi",
        "properties": {"owner": "dinas-pu", "level": 3, "active": True},
    },
    {
        "id": 2,
        "name": "Kelingi rain",
        "description": "Rain gauge",
        "properties": {"owner": "bpbd", "level": 10.5, "active": False},
    },
    {"id": 3, "name": "lakitan air", "description": "  Air monitor  ", "properties": None},
    {"id": 4, "name": "O'Brien 100%_x", "description": "", "properties": {"owner": None, "level": "high"}},
]
OBSERVATIONS = [
    {
        "id": 1,
        "thing_id": 1,
        "phenomenon_time": datetime(2026, 11, 28, 23, 30, tzinfo=UTC),
        "result": 1.5,
        "result_json": None,
        "parameters": {"q": "good"},
    },
    {
        "id": 2,
        "thing_id": 1,
        "phenomenon_time": datetime(2026, 11, 29, 0, 15, 30, 250000, tzinfo=UTC),
        "result": 2.5,
        "result_json": None,
        "parameters": {"q": "bad"},
    },
    {
        "id": 3,
        "thing_id": 1,
        "phenomenon_time": datetime(2026, 11, 29, 17, 0, tzinfo=UTC),
        "result": -3.0,
        "result_json": {"flag": "low"},
        "parameters": None,
    },
    {
        "id": 4,
        "thing_id": 2,
        "phenomenon_time": datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        "result": 10.0,
        "result_json": None,
        "parameters": {"q": "good"},
    },
    {
        "id": 5,
        "thing_id": 2,
        "phenomenon_time": datetime(2025, 1, 1, tzinfo=UTC),
        "result": None,
        "result_json": "offline",
        "parameters": {},
    },
]


class World:
    """A throwaway pair of tables (Things and their Observations) and their SensorThings mapping."""

    def __init__(self, engine: sa.Engine | None) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.engine = engine
        self.metadata = sa.MetaData()
        self.things = sa.Table(
            f"qtest_things_{suffix}",
            self.metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(100)),
            sa.Column("description", sa.Text),
            sa.Column("properties", JSONType),
        )
        self.observations = sa.Table(
            f"qtest_observations_{suffix}",
            self.metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("thing_id", sa.ForeignKey(self.things.c.id)),
            sa.Column("phenomenon_time", UTCDateTime),
            sa.Column("result", sa.Float),
            sa.Column("result_json", JSONType),  # a result that is not a number
            sa.Column("parameters", JSONType),
        )
        self.entities = {
            "Thing": Entity(
                self.things,
                {"id": "id", "name": "name", "description": "description", "properties": "properties"},
                {"Observations": Relation("Observation", lambda thing, obs: obs.c.thing_id == thing.c.id, many=True)},
            ),
            "Observation": Entity(
                self.observations,
                {
                    "id": "id",
                    "phenomenonTime": "phenomenon_time",
                    "result": "result",
                    "parameters": "parameters",
                    # a result kept as a number or, when it is not one, as JSON
                    "resultAny": lambda table: Target(table.c.result_json, number=table.c.result),
                },
                {"Thing": Relation("Thing", lambda obs, thing: thing.c.id == obs.c.thing_id)},
            ),
        }

    def __enter__(self) -> World:
        self.metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            connection.execute(sa.insert(self.things), THINGS)
            connection.execute(sa.insert(self.observations), OBSERVATIONS)
        return self

    def __exit__(self, *exc) -> None:
        self.metadata.drop_all(self.engine)

    def ids(self, entity: str = "Observation", *, limits: Limits | None = None, resolver=None, **params) -> list[int]:
        """The ids a request with these query options (`filter="…"` for `$filter`) returns, in order."""
        table = self.entities[entity].table
        options = parse_query({f"${name}": value for name, value in params.items()})
        statement = apply_query(
            sa.select(table.c.id),
            options,
            resolver=resolver or EntityResolver(self.entities, entity),
            dialect=self.engine.dialect,
            limits=limits or Limits(),
            now=NOW,
            tiebreak=[table.c.id],
        )
        with self.engine.connect() as connection:
            return list(connection.scalars(statement))


@pytest.fixture
def world(engine):
    with World(engine) as world:
        yield world


def check(world: World, entity: str, cases: list[tuple[str, list[int]]]) -> None:
    """Every filter of `cases` returns its ids; the mismatches are all listed at once."""
    wrong = [(condition, world.ids(entity, filter=condition), expected) for condition, expected in cases]
    assert [case for case in wrong if case[1] != case[2]] == []


DATETIME_COMPARISONS_WITH_TIME_ZONES = [
    ("phenomenonTime ge 2026-11-29T00:00:00Z", [2, 3, 4]),
    ("phenomenonTime ge 2026-11-29T07:00:00+07:00", [2, 3, 4]),
    ("phenomenonTime ge 2026-11-29T07:00:00.000+07:00 and phenomenonTime lt 2026-11-30T00:00:01+07:00", [2, 3]),
    ("phenomenonTime eq 2026-11-29T07:15:30.250+07:00", [2]),
    ("phenomenonTime lt 2026-11-29T00:15:30.250Z", [1, 5]),
    ("phenomenonTime gt 2026-11-28T20:00:00-05:00", [3, 4]),
    ("phenomenonTime ge 2026-11-29", [2, 3, 4]),
    ("phenomenonTime lt '2026-01-01T00:00:00Z'", [5]),
    ("phenomenonTime gt now() sub duration'P1D'", [1, 2, 3, 4]),
    ("phenomenonTime gt now() add PT6H", [4]),
    ("phenomenonTime lt now() sub P1Y", [5]),
    ("phenomenonTime ge mindatetime() and phenomenonTime le maxdatetime()", [1, 2, 3, 4, 5]),
]


def test_datetime_comparisons_with_time_zones(world):
    check(world, "Observation", DATETIME_COMPARISONS_WITH_TIME_ZONES)


DATE_FUNCTIONS_IN_UTC = [
    ("year(phenomenonTime) eq 2026", [1, 2, 3, 4]),
    ("year(phenomenonTime) lt 2026", [5]),
    ("month(phenomenonTime) eq 11", [1, 2, 3]),
    ("day(phenomenonTime) eq 29", [2, 3]),
    ("hour(phenomenonTime) eq 17", [3]),
    ("hour(phenomenonTime) eq 0", [2, 5]),
    ("minute(phenomenonTime) eq 15", [2]),
    ("second(phenomenonTime) eq 30", [2]),
    ("second(phenomenonTime) eq 59", [4]),
    ("fractionalseconds(phenomenonTime) gt 0.2", [2]),
    ("date(phenomenonTime) eq 2026-11-29", [2, 3]),
    ("date(phenomenonTime) lt 2026-11-29", [1, 5]),
    ("time(phenomenonTime) eq 17:00:00", [3]),
    ("time(phenomenonTime) lt 00:20:00", [2, 5]),
    ("time(phenomenonTime) eq 00:15:30.250", [2]),
    ("totaloffsetminutes(phenomenonTime) eq 0", [1, 2, 3, 4, 5]),
    ("totaloffsetminutes(2026-11-29T00:00:00+07:00) eq 420", [1, 2, 3, 4, 5]),
    ("year(phenomenonTime) eq year(now())", [1, 2, 3, 4]),
    ("hour(2026-11-29T09:00:00+07:00) eq 9", [1, 2, 3, 4, 5]),
]


def test_date_functions_in_utc(world):
    check(world, "Observation", DATE_FUNCTIONS_IN_UTC)


STRING_FUNCTIONS = [
    ("startswith(name,'Musi')", [1]),
    ("startswith(name,'musi')", []),  # case-sensitive on both databases
    ("endswith(name,'rain')", [2]),
    ("endswith(name,'a very long suffix that is longer than every name')", []),
    ("substringof('gauge', description)", [1, 2]),
    ("contains(name,'100%_')", [4]),  # no LIKE wildcards
    ("contains(name,'%')", [4]),
    ("contains(name,'')", [1, 2, 3, 4]),
    ("startswith(name,'O''Brien')", [4]),
    ("not startswith(name,'Musi')", [2, 3, 4]),
    ("startswith(name,'Musi') eq false", [2, 3, 4]),
    ("startswith(name,'Musi') eq true", [1]),
    ("tolower(name) eq 'musi gauge'", [1]),
    ("toupper(name) eq 'LAKITAN AIR'", [3]),
    ("length(name) eq 10", [1]),
    ("length(description) eq 0", [4]),
    ("indexof(name,'rain') eq 8", [2]),
    ("indexof(name,'zzz') eq -1", [1, 2, 3, 4]),
    ("substring(name,1) eq 'usi gauge'", [1]),
    ("substring(name,1,3) eq 'usi'", [1]),
    ("substring(name,0,4) eq 'Musi'", [1]),
    ("trim(description) eq 'Air monitor'", [3]),
    ("concat(concat(name,': '),description) eq 'Kelingi rain: Rain gauge'", [2]),
    ("concat(name, 'x') eq concat('Musi ', 'gaugex')", [1]),
    ("name eq 'Musi gauge' or name eq 'lakitan air'", [1, 3]),
    ("name ne 'Musi gauge'", [2, 3, 4]),
    ("name gt 'M'", [1, 3, 4]),
    ("name lt 'M'", [2]),
    ("id eq '2'", [2]),
]


def test_string_functions(world):
    check(world, "Thing", STRING_FUNCTIONS)


ARITHMETIC_AND_NUMBERS = [
    ("result add 1 eq 2.5", [1]),
    ("result sub 1 lt 0", [3]),
    ("result mul 2 gt 4", [2, 4]),
    ("result div 2 eq 1.25", [2]),
    ("result mod 2 eq 1.5", [1]),
    ("result div 0 eq 1", []),  # null, not a database error
    ("id mod 2 eq 0", [2, 4]),
    ("id mod 0 eq 0", []),
    ("id div 2 eq 1", [2, 3]),  # integer division
    ("(id add 1) mul 2 eq 6", [2]),
    ("id mul 9000000000000000000 gt 0", [1, 2, 3, 4, 5]),  # no bigint overflow
    ("result gt 1 add 1", [2, 4]),
    ("-result gt 0", [3]),
    ("result eq 2 mul 1.25", [2]),
    ("round(result) eq 3", [2]),  # half away from zero
    ("round(result) eq 2", [1]),
    ("round(result) eq -3", [3]),
    ("floor(result) eq 1", [1]),
    ("ceiling(result) eq 2", [1]),
    ("floor(result) eq -3", [3]),
    ("round(2.5) eq 3 and floor(-0.5) eq -1 and ceiling(0.2) eq 1", [1, 2, 3, 4, 5]),
    ("7 div 2 eq 3 and 7 mod 2 eq 1 and 1 div 0 eq null", [1, 2, 3, 4, 5]),
    ("result eq null", [5]),
    ("result ne null", [1, 2, 3, 4]),
    ("result ne 1.5", [2, 3, 4, 5]),  # null ne 1.5 is true
    ("result gt null", []),
    ("result ge 2.5 and result le 10", [2, 4]),
    ("not (result ge 2.5)", [1, 3]),
    ("id eq 99999999999", []),
    ("true", [1, 2, 3, 4, 5]),
    ("1 eq 2", []),
]


def test_arithmetic_and_numbers(world):
    check(world, "Observation", ARITHMETIC_AND_NUMBERS)


JSON_PROPERTIES = [
    ("properties/owner eq 'bpbd'", [2]),
    ("properties/owner ne 'bpbd'", [1, 3, 4]),
    ("properties/owner eq null", [3, 4]),
    ("properties/owner ne null", [1, 2]),
    ("properties/level gt 5", [2]),  # "high" is not a number: left out, not an error
    ("properties/level eq 3", [1]),
    ("properties/level eq '3'", []),  # typed: the number 3 is not the string '3'
    ("properties/level eq 'high'", [4]),
    ("properties/level add 0 ge 3", [1, 2]),
    ("properties/level mul 2 eq 21", [2]),
    ("properties/active eq true", [1]),
    ("properties/active eq false", [2]),
    ("properties/active", [1]),
    ("startswith(properties/owner,'dinas')", [1]),
    ("length(properties/owner) eq 4", [2]),
    ("properties/missing/deeper eq 'x'", []),
    ("properties/level lt id mul 4", [1]),
]


def test_json_properties(world):
    check(world, "Thing", JSON_PROPERTIES)


NAVIGATION_PATHS = [
    ("Observation", "Thing/name eq 'Musi gauge'", [1, 2, 3]),
    ("Observation", "Thing/properties/owner eq 'bpbd' and result eq null", [5]),
    ("Observation", "result lt Thing/properties/level", [1, 2, 3, 4]),
    ("Observation", "Thing/@iot.id eq 2", [4, 5]),
    ("Thing", "Observations/result gt 5", [2]),
    # each condition is "any of them" on its own: Musi has one above 2 and another below 0
    ("Thing", "Observations/result gt 2 and Observations/result lt 0", [1]),
    ("Thing", "not (Observations/result gt 0)", [3, 4]),
    ("Thing", "Observations/Thing/name eq name", [1, 2]),
    ("Observation", "Thing/Observations/parameters/q eq 'bad'", [1, 2, 3]),
]


def test_navigation_paths(world):
    for entity, condition, expected in NAVIGATION_PATHS:
        assert world.ids(entity, filter=condition) == expected, condition


def test_orderby_several_keys_and_nulls(world):
    assert world.ids(orderby="result") == [5, 3, 1, 2, 4]  # null first ascending, on both databases
    assert world.ids(orderby="result desc") == [4, 2, 1, 3, 5]
    assert world.ids(orderby="Thing/name desc, phenomenonTime desc") == [3, 2, 1, 4, 5]
    assert world.ids(orderby="Thing/name, result desc") == [4, 5, 2, 1, 3]
    assert world.ids(orderby="hour(phenomenonTime), id desc") == [5, 2, 3, 4, 1]
    assert world.ids(orderby="parameters/q, id") == [3, 5, 2, 1, 4]
    assert world.ids("Thing", orderby="length(name) desc") == [4, 2, 3, 1]
    with pytest.raises(QueryError, match="related collection"):
        world.ids("Thing", orderby="Observations/result")


def test_top_and_skip(world):
    assert world.ids(orderby="phenomenonTime", top="2") == [5, 1]
    assert world.ids(orderby="phenomenonTime", top="2", skip="2") == [2, 3]
    assert world.ids(orderby="phenomenonTime", skip="4") == [4]
    assert world.ids(orderby="phenomenonTime", top="0") == []
    assert world.ids(filter="result gt 0", orderby="result desc", top="2") == [4, 2]
    limits = Limits(default_top=2, max_top=3)
    assert world.ids(orderby="id", limits=limits) == [1, 2]
    assert world.ids(orderby="id", top="100", limits=limits) == [1, 2, 3]


def test_a_mapping_resolver(world):
    obs, things = world.observations, world.things
    thing_name = sa.select(things.c.name).where(things.c.id == obs.c.thing_id).scalar_subquery()
    resolver = {
        "id": obs.c.id,
        "result": obs.c.result,
        "phenomenonTime": obs.c.phenomenon_time,
        "parameters": obs.c.parameters,
        "Thing/name": thing_name,
    }
    assert world.ids(filter="parameters/q eq 'good' and result gt 2", resolver=resolver) == [4]
    assert world.ids(filter="Thing/name eq 'Musi gauge'", orderby="result desc", resolver=resolver) == [2, 1, 3]
    with pytest.raises(QueryError, match="unknown property 'Thing/description'") as caught:
        world.ids(filter="result gt 1 and Thing/description eq 'x'", resolver=resolver)
    assert caught.value.position == len("result gt 1 and ")


def test_a_result_kept_as_a_number_or_as_json(world):
    obs = world.observations
    resolver = {"id": obs.c.id, "result": Target(obs.c.result_json, number=obs.c.result)}
    cases = [
        ("result eq 'offline'", [5]),
        ("result gt 2", [2, 4]),
        ("result add 1 gt 3", [2, 4]),
        ("round(result) eq -3", [3]),
        ("result/flag eq 'low'", [3]),
        ("result eq null", []),
        ("result ne null", [1, 2, 3, 4, 5]),
        ("startswith(result, 'off')", [5]),
    ]
    assert [(c, world.ids(filter=c, resolver=resolver)) for c, _ in cases] == cases
    assert world.ids(orderby="result desc", resolver=resolver) == [4, 2, 1, 3, 5]


def test_a_callable_resolver_and_sql_of_both_dialects():
    table = sa.table("t", sa.column("id", sa.Integer), sa.column("at", UTCDateTime))

    def resolve(path):
        return table.c.get(path[0]) if len(path) == 1 else None

    node = parse_filter("year(at) eq 2026 and startswith('abc', 'a')")
    for dialect in ("sqlite", "postgresql"):
        condition = filter_condition(node, resolve, dialect=dialect)
        sql = str(condition.compile(dialect=_dialect(dialect)))
        assert ("strftime" in sql) == (dialect == "sqlite")
        assert ("EXTRACT" in sql) == (dialect == "postgresql")
    assert order_by_clauses(parse_orderby("1, id"), resolve, dialect="sqlite")  # a constant is skipped
    with pytest.raises(ValueError, match="SQLite and PostgreSQL"):
        filter_condition(node, resolve, dialect="mysql")


def test_a_not_null_column_keeps_its_plain_order_for_the_index():
    table = sa.Table("t", sa.MetaData(), sa.Column("at", UTCDateTime, nullable=False), sa.Column("r", sa.Float))
    clauses = order_by_clauses(
        parse_orderby("at desc, r desc, r"), {"at": table.c.at, "r": table.c.r}, dialect="postgresql"
    )
    assert [str(clause.compile(dialect=_dialect("postgresql"))) for clause in clauses] == [
        "t.at DESC",
        "t.r DESC NULLS LAST",
        "t.r ASC NULLS FIRST",
    ]
    clauses = order_by_clauses(parse_orderby("r desc"), {"r": table.c.r}, dialect="sqlite")
    assert str(clauses[0].compile(dialect=_dialect("sqlite"))) == "t.r DESC"  # SQLite's nulls are already first


def _dialect(name: str):
    from sqlalchemy.dialects import postgresql, sqlite

    return {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}[name]


@pytest.mark.parametrize(
    ("condition", "message", "position"),
    [
        ("colour eq 'red'", "Observation has no property 'colour'", 1),
        ("Thing/colour eq 'red'", "Thing has no property 'colour'", 1),
        ("Thing eq 1", "Thing is an entity, not a value", 1),
        ("result/x eq 1", "result has no member 'x'", 1),
        ("result eq 'high'", "expected a number here, not a string", 11),
        ("phenomenonTime gt 5", "expected a datetime here, not a number", 19),
        ("result eq phenomenonTime", "cannot compare a number with a datetime", 8),
        ("not result eq 1", "not applies to the value right after it", 1),
        ("result", "expected a condition (true or false), not a number", 1),
        ("startswith(result, 'x')", "expected text, not a number", 12),
        ("year(result) eq 1", "year() needs a date and time, not a number", 6),
        ("result add 'x' eq 1", "expected a number here, not a string", 12),
        ("substring(parameters/q, 1.5) eq 'x'", "expected a whole number", 25),
        ("result eq 1 and (result eq 2 or 'x' eq 1)", "expected a number here, not a string", 37),
    ],
)
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_compile_errors_name_the_position(dialect, condition, message, position):
    resolver = EntityResolver(World(None).entities, "Observation")
    with pytest.raises(QueryError) as caught:
        filter_condition(parse_filter(condition), resolver, dialect=dialect)
    assert message in caught.value.message
    assert (caught.value.option, caught.value.position) == ("$filter", position - 1)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "condition",
    [
        "st_within(Thing/properties, geography'POLYGON((0 0, 1 0, 1 1, 0 0))')",
        "geo.distance(Thing/properties, geography'POINT(1 2)') lt 5",
        "phenomenonTime eq 2026-11-29T00:00:00Z/2026-11-30T00:00:00Z",
        "phenomenonTime sub duration'P1D' gt now()",
    ],
)
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_not_supported_is_501(dialect, condition):
    resolver = EntityResolver(World(None).entities, "Observation")
    with pytest.raises(NotSupported) as caught:
        filter_condition(parse_filter(condition), resolver, dialect=dialect)
    assert caught.value.status_code == 501
    assert str(caught.value).startswith("$filter: ")


def test_expand_options_compile_with_their_origin(world):
    options = parse_query({"$expand": "Observations($filter=result gt 'x';$orderby=result)"})
    nested = options.expand[0].options
    resolver = EntityResolver(world.entities, "Observation")
    with pytest.raises(QueryError) as caught:
        filter_condition(nested, resolver, dialect=world.engine.dialect)
    assert caught.value.option == "$expand"
    assert caught.value.position == len("Observations($filter=result gt ")
    assert order_by_clauses(nested, resolver, dialect=world.engine.dialect)


# Generated filters run on the database without a database error: each either compiles and runs, or is refused
# with a QueryError. Two generators: one typed (mostly valid filters, to reach the SQL), one of loose pieces.
NUMBERS = [
    "result",
    "resultAny",
    "id",
    "1",
    "-2.5",
    "0",
    "1e300",
    "9223372036854775807",
    "Thing/properties/level",
    "parameters/q",
]
TEXTS = [
    "Thing/name",
    "resultAny",
    "resultAny/flag",
    "parameters/q",
    "Thing/properties/owner",
    "'x'",
    "''",
    "'O''B'",
    "Thing/properties",
]
TIMES = ["phenomenonTime", "now()", "2026-11-29T00:00:00+07:00", "now() sub duration'P1M'", "mindatetime()"]


def typed(kind: str, depth: int = 0):
    """A strategy for filter text whose value is of `kind`: number, text, time or condition."""
    leaves = {
        "number": st.sampled_from(NUMBERS),
        "text": st.sampled_from(TEXTS),
        "time": st.sampled_from(TIMES),
        "condition": st.sampled_from(["true", "Thing/properties/active", "result eq null", "parameters/q ne null"]),
    }[kind]
    if depth >= 3:
        return leaves
    sub = lambda k: typed(k, depth + 1)  # noqa: E731
    compound = {
        "number": [
            st.builds(
                "({} {} {})".format, sub("number"), st.sampled_from(["add", "sub", "mul", "div", "mod"]), sub("number")
            ),
            st.builds("{}({})".format, st.sampled_from(["round", "floor", "ceiling"]), sub("number")),
            st.builds("-{}".format, sub("number")),
            st.builds("{}({})".format, st.sampled_from(["length"]), sub("text")),
            st.builds("indexof({}, {})".format, sub("text"), sub("text")),
            st.builds(
                "{}({})".format,
                st.sampled_from(
                    ["year", "month", "day", "hour", "minute", "second", "fractionalseconds", "totaloffsetminutes"]
                ),
                sub("time"),
            ),
        ],
        "text": [
            st.builds("{}({})".format, st.sampled_from(["tolower", "toupper", "trim"]), sub("text")),
            st.builds("concat({}, {})".format, sub("text"), sub("text")),
            st.builds("substring({}, {})".format, sub("text"), sub("number")),
            st.builds("substring({}, {}, {})".format, sub("text"), sub("number"), sub("number")),
        ],
        "time": [st.builds("date({})".format, sub("time")), st.builds("time({})".format, sub("time"))],
        "condition": [
            st.builds("{} {} {}".format, sub(k), st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), sub(k))
            for k in ("number", "text", "time")
        ]
        + [
            st.builds(
                "{}({}, {})".format,
                st.sampled_from(["startswith", "endswith", "contains", "substringof"]),
                sub("text"),
                sub("text"),
            ),
            st.builds("({} {} {})".format, sub("condition"), st.sampled_from(["and", "or"]), sub("condition")),
            st.builds("not ({})".format, sub("condition")),
            st.builds("{} eq null".format, st.one_of(sub("number"), sub("text"))),
        ],
    }[kind]
    return st.one_of(leaves, *compound)


PIECES = st.sampled_from(
    [*NUMBERS, *TEXTS, *TIMES, "true", "null", "2026-11-29", "10:00:00", "duration'PT1H'", "date(phenomenonTime)"]
)
UNARY_FUNCTIONS = st.sampled_from([name for name, (fewest, _most) in FUNCTIONS.items() if fewest == 1])
BINARY_FUNCTIONS = st.sampled_from([name for name, (_fewest, most) in FUNCTIONS.items() if most >= 2])
OPERATORS = st.sampled_from(["eq", "ne", "gt", "lt", "add", "sub", "mul", "div", "mod", "and", "or"])


@st.composite
def loose(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        return draw(PIECES)
    left, right = draw(loose(depth + 1)), draw(loose(depth + 1))
    shape = draw(st.sampled_from(["{l} {op} {r}", "({l} {op} {r})", "not ({l})", "{f}({l})", "{g}({l}, {r})"]))
    return shape.format(l=left, op=draw(OPERATORS), r=right, f=draw(UNARY_FUNCTIONS), g=draw(BINARY_FUNCTIONS))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    condition=st.one_of(typed("condition"), loose()),
    order=st.lists(st.one_of(typed("number"), typed("text"), typed("time"), loose()), max_size=2),
)
def test_generated_filters_never_fail_in_the_database(world, condition, order):
    try:
        world.ids(filter=condition, **({"orderby": ", ".join(order)} if order else {}))
    except QueryError:
        pass
