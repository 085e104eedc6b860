"""Figures of citizen reports for dashboards: counts by status, SLA compliance, median times and ratings, grouped
by OPD, category, kecamatan or month, plus the OPD league table and the regency-wide summary.

Which reports count
    Every stored report (hidden and confidential ones too: these are staff figures), optionally limited to one OPD
    (`agency_id`) and to a period: `since` and `until` are dates, both inclusive, in the regency's own time zone
    (`settings.zone`), applied to `created_at`. Months are calendar months in that zone too: a report sent at
    2026-11-30 20:00 UTC is a December 2026 report in WIB.

Within SLA (each step is decided, hit or missed, or not counted yet)
    Verification - applies to every report. The step ends when the report is verified (`verified_at`; disposing a
    new report verifies it) or, for a report closed while still new (rejected, not our authority, duplicate,
    archived), when it is closed (`closed_at`): both are the triage decision. Hit: it ended at or before
    `verify_due_at`. Missed: it ended after, or it has not ended and `verify_due_at` has passed. A new report still
    inside its deadline is not counted yet.
    Follow-up - applies to reports with an OPD now or resolved: statuses didisposisikan, ditindaklanjuti, selesai (a
    report rejected, archived, marked duplicate or not our authority never needs a follow-up plan). Hit:
    `followed_up_at` ≤ `follow_up_due_at`. Missed: `followed_up_at` after the deadline, or no plan yet and the
    deadline passed. Pending otherwise. After a re-disposal the clock is the new OPD's (the workflow resets it).
    Resolution - the same statuses, with `resolved_at` against `resolve_due_at` (set at disposal, moved when the
    follow-up plan is published, and again when the reporter reopens a report).
    The percentage is hits / (hits + misses) * 100, rounded to one decimal; None when nothing is decided yet.

Median times (hours, one decimal; None when there is nothing to measure)
    verify: created → verification step ended (as above); follow-up: disposed → follow-up plan published;
    resolve: created → resolved (reports now selesai).

Ratings
    `avg_rating` is the mean of the reporters' 1-5 ratings (two decimals), `rated` how many rated.

Speed
    One Core query, grouped by (group, status), scans the reports once: the counts, the SLA hits and misses as
    SUM(CASE …), the ratings, and each step's durations (whole seconds, computed in SQL) aggregated into one
    comma-separated text per (group, status) that numpy reads in one call and takes the median of. The same SQL runs
    on SQLite and PostgreSQL (only the seconds-between expression is compiled per database). Months come from a
    balanced tree of CASE comparisons against the local month boundaries, so they are right in any time zone. No ORM
    object is loaded but the few OPDs, categories and kecamatan for the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from babel.dates import format_date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _, get_locale, reset_locale, set_locale
from kotacerdas.regions import service as regions
from kotacerdas.reports import categories
from kotacerdas.reports.enums import OPEN_STATUSES, ReportStatus
from kotacerdas.reports.models import Report

if TYPE_CHECKING:
    import numpy as np

GROUPINGS = ("agency", "category", "kecamatan", "month")
# The key of the group of reports without an OPD or without a kecamatan.
NONE_KEY = "none"
# Statuses for which the follow-up and resolution deadlines apply: with an OPD now, or resolved by it.
HANDLED_STATUSES = frozenset({ReportStatus.DIDISPOSISIKAN, ReportStatus.DITINDAKLANJUTI, ReportStatus.SELESAI})


@dataclass(frozen=True)
class FigureRow:
    """The figures of one group of reports (one OPD, category, kecamatan or month, or the whole regency)."""

    key: str  # agency id / category code / kecamatan code / "YYYY-MM" ("none": no OPD / no kecamatan)
    label: str  # OPD name / category name / kecamatan name / "November 2026", in the request's language
    counts: dict[str, int]  # per ReportStatus value, every status present (0 when none)
    total: int
    open: int
    verified_in_sla_pct: float | None
    followed_up_in_sla_pct: float | None
    resolved_in_sla_pct: float | None
    median_verify_hours: float | None
    median_follow_up_hours: float | None
    median_resolve_hours: float | None
    avg_rating: float | None
    rated: int


# --- SQL building blocks ----------------------------------------------------------------------------------------


class seconds_between(FunctionElement):
    """Whole seconds from the first datetime column to the second, as an integer, on SQLite and PostgreSQL."""

    type = sa.BigInteger()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    # SQLite keeps UTC datetimes as ISO text; julianday() reads it (fractions of a second included).
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(round((julianday({end}) - julianday({start})) * 86400.0) AS INTEGER)"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(round(EXTRACT(EPOCH FROM ({end} - {start}))) AS BIGINT)"


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.case((condition, 1), else_=0)


# The verification step ends when the report is verified, or when it is closed without ever being verified.
_VERIFY_END = sa.func.coalesce(Report.verified_at, Report.closed_at)


def _sla_flags(now: datetime) -> dict[str, sa.ColumnElement[int]]:
    """0/1 columns: each step's hit or miss (status applicability is checked afterwards, per status group)."""
    flags: dict[str, sa.ColumnElement[int]] = {}
    for name, done, due in (
        ("verify", _VERIFY_END, Report.verify_due_at),
        ("follow_up", Report.followed_up_at, Report.follow_up_due_at),
        ("resolve", Report.resolved_at, Report.resolve_due_at),
    ):
        flags[f"{name}_hit"] = _flag(sa.and_(done.is_not(None), done <= due))
        flags[f"{name}_miss"] = _flag(
            sa.or_(sa.and_(done.is_not(None), done > due), sa.and_(done.is_(None), due < now))
        )
    return flags


def _local_midnight(day: date, settings: Settings) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=settings.zone).astimezone(UTC)


def _period_filters(settings: Settings, since: date | None, until: date | None) -> list[sa.ColumnElement[bool]]:
    if since is not None and until is not None and since > until:
        raise InvalidInput(
            _("The start date is after the end date."), errors=[{"field": "since", "reason": "after_until"}]
        )
    filters = []
    if since is not None:
        filters.append(Report.created_at >= _local_midnight(since, settings))
    if until is not None:
        filters.append(Report.created_at < _local_midnight(until + timedelta(days=1), settings))
    return filters


def _month_starts(settings: Settings, first: datetime, last: datetime) -> list[tuple[str, datetime]]:
    """("YYYY-MM", the month's first local midnight in UTC) for every local month from `first` to `last`."""
    zone = settings.zone
    day = first.astimezone(zone).date().replace(day=1)
    end = last.astimezone(zone).date()
    months = []
    while day <= end:
        months.append((f"{day.year:04d}-{day.month:02d}", _local_midnight(day, settings)))
        day = (day + timedelta(days=32)).replace(day=1)
    return months


def _month_bucket(column: Any, months: list[tuple[str, datetime]]) -> sa.ColumnElement[str]:
    """The month key of `column`, as a balanced tree of CASEs: a handful of comparisons per row, in any time zone."""
    if len(months) == 1:
        return sa.literal(months[0][0], sa.String)
    middle = len(months) // 2
    return sa.case(
        (column < months[middle][1], _month_bucket(column, months[:middle])),
        else_=_month_bucket(column, months[middle:]),
    )


STEPS = ("verify", "follow_up", "resolve")


def _durations() -> dict[str, sa.ColumnElement[int]]:
    """Seconds each step took, per report (NULL while it has not ended): the median times are made of these."""
    return {
        "verify": seconds_between(Report.created_at, _VERIFY_END),
        "follow_up": seconds_between(Report.disposed_at, Report.followed_up_at),
        "resolve": seconds_between(Report.created_at, Report.resolved_at),
    }


@dataclass
class _Tally:
    """What one group's rows (one per status) add up to."""

    counts: dict[str, int] = field(default_factory=lambda: {status.value: 0 for status in ReportStatus})
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    misses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    durations: dict[str, list[np.ndarray]] = field(default_factory=lambda: {step: [] for step in STEPS})
    rating_sum: int = 0
    rated: int = 0

    def median_hours(self, step: str) -> float | None:
        parts = self.durations[step]
        if not parts:
            return None
        import numpy as np  # on first use: numpy costs start-up time (bench/startup.py)

        return round(float(np.median(np.concatenate(parts))) / 3600.0, 1)


def _pct(hits: int, misses: int) -> float | None:
    decided = hits + misses
    return round(100.0 * hits / decided, 1) if decided else None


# --- the figures ------------------------------------------------------------------------------------------------


def _figures(
    session: Session, *, key: sa.ColumnElement[Any], filters: list[sa.ColumnElement[bool]], now: datetime
) -> dict[Any, _Tally]:
    """One tally per value of the group `key` among the reports that pass `filters`.

    One query, grouped by (group, status): the counts, the SLA hits and misses as SUM(CASE …), the ratings, and each
    step's durations as one comma-separated text of whole seconds per (group, status), which numpy reads in one call.
    That is the same SQL on SQLite and PostgreSQL, scans the reports once, and never builds a Python object per
    report; SQLite has no percentile function, and its window functions would sort the table once per median.
    """
    flags = _sla_flags(now)
    durations = _durations()
    inner = (
        sa.select(
            key.label("g"),
            Report.status.label("status"),
            Report.rating.label("rating"),
            *(flag.label(name) for name, flag in flags.items()),
            *(sa.cast(seconds, sa.Text).label(f"{step}_seconds") for step, seconds in durations.items()),
        )
        .where(*filters)
        .subquery()
    )
    statement = sa.select(
        inner.c.g,
        inner.c.status,
        sa.func.count().label("n"),
        *(sa.func.sum(inner.c[name]).label(name) for name in flags),
        sa.func.sum(inner.c.rating).label("rating_sum"),
        sa.func.count(inner.c.rating).label("rated"),
        *(sa.func.aggregate_strings(inner.c[f"{step}_seconds"], ",").label(f"{step}_seconds") for step in STEPS),
    ).group_by(inner.c.g, inner.c.status)
    import numpy as np  # on first use: numpy costs start-up time (bench/startup.py)

    tallies: dict[Any, _Tally] = {}
    for row in session.connection().execute(statement).mappings():
        tally = tallies.setdefault(row["g"], _Tally())
        status = ReportStatus(row["status"])
        tally.counts[status.value] += row["n"]
        tally.rating_sum += int(row["rating_sum"] or 0)
        tally.rated += int(row["rated"] or 0)
        # Follow-up and resolution apply only to reports with an OPD now or resolved by it.
        for step in STEPS if status in HANDLED_STATUSES else ("verify",):
            tally.hits[step] += int(row[f"{step}_hit"] or 0)
            tally.misses[step] += int(row[f"{step}_miss"] or 0)
            if row[f"{step}_seconds"]:
                tally.durations[step].append(np.fromstring(row[f"{step}_seconds"], dtype=np.int64, sep=","))
    return tallies


def _row(key: str, label: str, tally: _Tally) -> FigureRow:
    return FigureRow(
        key=key,
        label=label,
        counts=dict(tally.counts),
        total=sum(tally.counts.values()),
        open=sum(tally.counts[status.value] for status in OPEN_STATUSES),
        verified_in_sla_pct=_pct(tally.hits["verify"], tally.misses["verify"]),
        followed_up_in_sla_pct=_pct(tally.hits["follow_up"], tally.misses["follow_up"]),
        resolved_in_sla_pct=_pct(tally.hits["resolve"], tally.misses["resolve"]),
        median_verify_hours=tally.median_hours("verify"),
        median_follow_up_hours=tally.median_hours("follow_up"),
        median_resolve_hours=tally.median_hours("resolve"),
        avg_rating=round(tally.rating_sum / tally.rated, 2) if tally.rated else None,
        rated=tally.rated,
    )


def _month_key(
    session: Session, *, settings: Settings, filters: list[sa.ColumnElement[bool]]
) -> sa.ColumnElement[str] | None:
    """The "YYYY-MM" of each report's local month, over the months the filtered reports span; None for no reports."""
    first, last = (
        session.connection()
        .execute(sa.select(sa.func.min(Report.created_at), sa.func.max(Report.created_at)).where(*filters))
        .one()
    )
    if first is None or last is None:
        return None
    return _month_bucket(Report.created_at, _month_starts(settings, first, last))


# The group key of each grouping. COALESCE gives the reports without an OPD or a kecamatan a key of their own, and
# being an expression it keeps SQLite from walking the column's index in key order (a random row read per report)
# where one scan of the table is much faster.
_GROUP_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "agency": sa.func.coalesce(Report.agency_id, 0),
    "category": sa.func.coalesce(Report.category_id, 0),
    "kecamatan": sa.func.coalesce(Report.kecamatan_code, ""),
}


def _describe(
    session: Session, *, settings: Settings, by: str, keys: list[Any], locale: str
) -> dict[Any, tuple[str, str]]:
    """The row key and display name of each group key the query returned, in `locale`."""
    token = set_locale(locale)
    try:
        return _describe_in_locale(session, settings=settings, by=by, keys=keys, locale=locale)
    finally:
        reset_locale(token)


def _describe_in_locale(
    session: Session, *, settings: Settings, by: str, keys: list[Any], locale: str
) -> dict[Any, tuple[str, str]]:
    if by == "agency":
        names = agencies.agency_names(session)
        return {key: (NONE_KEY, _("No OPD")) if key == 0 else (str(key), names.get(key, str(key))) for key in keys}
    if by == "category":
        known = {
            category.id: (category.code, categories.category_name(category, locale))
            for category in categories.list_categories(session, active_only=False)
        }
        return {key: known.get(key, (str(key), str(key))) for key in keys}
    if by == "kecamatan":
        names = {region.code: region.name for region in regions.list_kecamatan(session, settings=settings)}
        return {key: (NONE_KEY, _("No kecamatan")) if key == "" else (key, names.get(key, key)) for key in keys}
    # "2026-12" → "Desember 2026" / "December 2026"
    return {key: (key, format_date(date(int(key[:4]), int(key[5:7]), 1), "LLLL yyyy", locale=locale)) for key in keys}


def report_figures(
    session: Session,
    *,
    settings: Settings,
    by: str,
    since: date | None = None,
    until: date | None = None,
    agency_id: int | None = None,
    now: datetime | None = None,
    locale: str | None = None,
) -> list[FigureRow]:
    """Counts, SLA compliance, median times and ratings of reports per OPD, category, kecamatan or month."""
    if by not in GROUPINGS:
        raise InvalidInput(
            _("Group the figures by agency, category, kecamatan or month."),
            errors=[{"field": "by", "reason": "unknown"}],
        )
    filters = _period_filters(settings, since, until)
    if agency_id is not None:
        filters.append(Report.agency_id == agency_id)
    key = _month_key(session, settings=settings, filters=filters) if by == "month" else _GROUP_KEYS[by]
    if key is None:
        return []
    figures = _figures(session, key=key, filters=filters, now=now or utcnow())
    described = _describe(session, settings=settings, by=by, keys=list(figures), locale=locale or get_locale())
    rows = [_row(*described[group_key], tally) for group_key, tally in figures.items()]
    if by == "month":
        rows.sort(key=lambda row: row.key)
    else:
        # By name; the "no OPD" / "no kecamatan" group last.
        rows.sort(key=lambda row: (row.key == NONE_KEY, row.label.casefold(), row.key))
    return rows


def league_table(
    session: Session,
    *,
    settings: Settings,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
    locale: str | None = None,
) -> list[FigureRow]:
    """OPDs ranked by the share of reports resolved within SLA, then followed up within SLA, then by volume."""
    rows = [
        row
        for row in report_figures(session, settings=settings, by="agency", since=since, until=until, now=now,
                                  locale=locale)
        if row.key != NONE_KEY
    ]  # fmt: skip

    def rank(row: FigureRow) -> tuple[Any, ...]:
        return (
            row.resolved_in_sla_pct is None,
            -(row.resolved_in_sla_pct or 0.0),
            row.followed_up_in_sla_pct is None,
            -(row.followed_up_in_sla_pct or 0.0),
            -row.total,
            row.label.casefold(),
        )

    return sorted(rows, key=rank)


def kabupaten_summary(
    session: Session,
    *,
    settings: Settings,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
) -> FigureRow:
    """The figures of all the regency's reports together (zeros and None when there are none)."""
    figures = _figures(
        session,
        key=sa.literal_column("'all'", sa.String),
        filters=_period_filters(settings, since, until),
        now=now or utcnow(),
    )
    return _row(settings.region_code, settings.region_name, figures.get("all", _Tally()))
