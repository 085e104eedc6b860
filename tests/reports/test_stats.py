"""Dashboard figures of citizen reports: counts, SLA compliance, medians, ratings, grouping, filters, league table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from conftest import TEST_ACTOR
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import reset_locale, set_locale
from kotacerdas.reports import service, stats
from kotacerdas.reports.enums import ReportStatus
from kotacerdas.reports.models import Report
from kotacerdas.reports.stats import FigureRow, kabupaten_summary, league_table, report_figures

from .conftest import agency_id

# A Tuesday; every deadline below is placed relative to it.
NOW = datetime(2026, 12, 15, 5, 0, tzinfo=UTC)
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
DRAIN = "drainase-tersumbat"  # Dinas PUPR
RUBBISH = "sampah-menumpuk"  # DLH
BARU = ReportStatus.BARU.value
VERIFIED = ReportStatus.TERVERIFIKASI.value
DISPOSED = ReportStatus.DIDISPOSISIKAN.value
IN_PROGRESS = ReportStatus.DITINDAKLANJUTI.value
DONE = ReportStatus.SELESAI.value
REJECTED = ReportStatus.DITOLAK.value


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


@pytest.fixture
def add(make_report, session):
    """Submit a report through the service at `created`, then set its workflow columns exactly (Core update)."""

    def add(*, created: datetime = T0, category: str = DRAIN, **values) -> int:
        report_id = make_report(category_code=category, now=created).report.id
        if values:
            session.execute(sa.update(Report).where(Report.id == report_id).values(**values))
            session.commit()
        return report_id

    return add


def handled(created: datetime = T0, **values) -> dict:
    """Columns of a report verified and disposed at `created` + 1 h, with follow-up and resolve deadlines."""
    return {
        "created": created,
        "verified_at": created + hours(1),
        "disposed_at": created + hours(1),
        "follow_up_due_at": created + hours(120),
        "resolve_due_at": created + hours(240),
        **values,
    }


def only(rows: list[FigureRow]) -> FigureRow:
    assert len(rows) == 1, rows
    return rows[0]


def by_key(rows: list[FigureRow]) -> dict[str, FigureRow]:
    return {row.key: row for row in rows}


def figures(session, settings, by: str = "category", **kwargs) -> list[FigureRow]:
    return report_figures(session, settings=settings, by=by, now=NOW, **kwargs)


# --- empty database ---------------------------------------------------------------------------------------------


def test_an_empty_database_gives_empty_lists_and_a_zero_summary(seeded, session, settings):
    for by in stats.GROUPINGS:
        assert figures(session, settings, by) == []
        assert figures(session, settings, by, since=date(2026, 1, 1), until=date(2026, 12, 31)) == []
    assert league_table(session, settings=settings, now=NOW) == []

    summary = kabupaten_summary(session, settings=settings, now=NOW)
    assert summary.key == settings.region_code and summary.label == settings.region_name
    assert summary.counts == {status.value: 0 for status in ReportStatus}
    assert (summary.total, summary.open, summary.rated) == (0, 0, 0)
    assert summary.verified_in_sla_pct is summary.followed_up_in_sla_pct is summary.resolved_in_sla_pct is None
    assert summary.median_verify_hours is summary.median_follow_up_hours is summary.median_resolve_hours is None
    assert summary.avg_rating is None


# --- counts -----------------------------------------------------------------------------------------------------


def test_counts_every_status_with_totals_and_open(add, session, settings):
    for status in (BARU, BARU, VERIFIED, DISPOSED, IN_PROGRESS, DONE, REJECTED):
        add(status=status)
    add(category=RUBBISH, status=ReportStatus.DUPLIKAT.value)

    rows = by_key(figures(session, settings))
    drain = rows[DRAIN]
    assert set(drain.counts) == {status.value for status in ReportStatus}
    assert drain.counts == {
        **{status.value: 0 for status in ReportStatus},
        BARU: 2, VERIFIED: 1, DISPOSED: 1, IN_PROGRESS: 1, DONE: 1, REJECTED: 1,
    }  # fmt: skip
    assert (drain.total, drain.open) == (7, 5)
    assert drain.label == "Saluran air/drainase tersumbat"
    assert (rows[RUBBISH].total, rows[RUBBISH].open, rows[RUBBISH].counts["duplikat"]) == (1, 0, 1)

    summary = kabupaten_summary(session, settings=settings, now=NOW)
    assert (summary.total, summary.open) == (8, 5)
    assert summary.counts[BARU] == 2 and summary.counts["duplikat"] == 1


def test_category_labels_follow_the_language(add, session, settings):
    add()
    assert only(figures(session, settings, locale="en")).label == "Blocked drain"
    token = set_locale("en")
    try:
        assert only(figures(session, settings)).label == "Blocked drain"
    finally:
        reset_locale(token)


# --- within SLA -------------------------------------------------------------------------------------------------


def test_verified_within_sla_counts_hits_and_misses_and_leaves_pending_reports_out(add, session, settings):
    due_passed = NOW - hours(24)
    add(verify_due_at=T0 + hours(72), verified_at=T0 + hours(71), status=VERIFIED)  # hit
    add(verify_due_at=T0 + hours(72), verified_at=T0 + hours(73), status=VERIFIED)  # late
    add(verify_due_at=due_passed, status=BARU)  # still new, deadline passed: missed
    add(created=NOW - hours(5), verify_due_at=NOW + hours(48), status=BARU)  # still inside its deadline: not yet
    # Rejected while still new, before the deadline: the triage decision was on time.
    add(verify_due_at=T0 + hours(72), closed_at=T0 + hours(10), status=REJECTED)

    row = only(figures(session, settings))
    assert row.verified_in_sla_pct == 50.0  # 2 of 4 decided
    assert row.total == 5

    # Seen earlier, the new report whose deadline has passed by now was still inside it: 2 of 3 decided.
    early = report_figures(session, settings=settings, by="category", now=T0 + hours(80))
    assert only(early).verified_in_sla_pct == 66.7
    # When nothing is decided yet there is no percentage at all.
    session.execute(sa.update(Report).values(verified_at=None, closed_at=None, status=BARU))
    session.commit()
    assert only(report_figures(session, settings=settings, by="category", now=T0)).verified_in_sla_pct is None


def test_followed_up_within_sla_applies_only_to_reports_with_an_opd(add, session, settings):
    due = T0 + hours(120)
    add(**handled(status=DISPOSED, follow_up_due_at=NOW - hours(1)))  # no plan, deadline passed: missed
    add(**handled(status=IN_PROGRESS, followed_up_at=due - hours(1)))  # hit
    add(**handled(status=DONE, followed_up_at=due + hours(1), resolved_at=due + hours(2)))  # late
    add(**handled(status=DISPOSED, follow_up_due_at=NOW + hours(48)))  # pending
    # Rejected after disposal without a plan and past the deadline: it never needed a follow-up.
    add(**handled(status=REJECTED, closed_at=due + hours(5), follow_up_due_at=due))
    add(status=BARU)  # never disposed

    row = only(figures(session, settings))
    assert row.followed_up_in_sla_pct == 33.3  # 1 of 3
    assert row.counts[REJECTED] == 1


def test_resolved_within_sla_counts_resolved_and_overdue_reports(add, session, settings):
    due = T0 + hours(240)
    plan = T0 + hours(100)
    add(**handled(status=DONE, followed_up_at=plan, resolved_at=due - hours(1)))  # hit
    add(**handled(status=DONE, followed_up_at=plan, resolved_at=due))  # exactly at the deadline: hit
    add(**handled(status=DONE, followed_up_at=plan, resolved_at=due + hours(1)))  # late
    add(**handled(status=IN_PROGRESS, followed_up_at=plan, resolve_due_at=NOW - hours(1)))  # overdue: missed
    add(**handled(status=IN_PROGRESS, followed_up_at=plan, resolve_due_at=NOW + hours(1)))  # pending
    add(**handled(status=DISPOSED, resolve_due_at=NOW + hours(100)))  # pending
    add(**handled(status=ReportStatus.DIARSIPKAN.value, resolve_due_at=T0 + hours(2)))  # archived: not counted

    row = only(figures(session, settings))
    assert row.resolved_in_sla_pct == 50.0  # 2 of 4
    assert row.open == 3


# --- medians and ratings ----------------------------------------------------------------------------------------


def test_medians_per_group_in_hours(add, session, settings):
    for taken in (2, 4, 10):
        add(status=VERIFIED, verified_at=T0 + hours(taken))
    for taken in (2, 4, 10, 20):
        add(category=RUBBISH, status=VERIFIED, verified_at=T0 + hours(taken))
    # Follow-up: disposed → plan; resolve: created → resolved.
    add(**handled(status=IN_PROGRESS, followed_up_at=T0 + hours(1 + 24)))
    add(**handled(status=DONE, followed_up_at=T0 + hours(1 + 48), resolved_at=T0 + hours(100)))
    add(**handled(status=DONE, followed_up_at=T0 + hours(1 + 12), resolved_at=T0 + hours(30.25)))

    rows = by_key(figures(session, settings))
    drain, rubbish = rows[DRAIN], rows[RUBBISH]
    assert drain.median_verify_hours == 1.5  # three handled reports verified at 1 h, then 2, 4, 10: (1 + 2) / 2
    assert rubbish.median_verify_hours == 7.0  # mean of the middle two of 2, 4, 10, 20
    assert drain.median_follow_up_hours == 24.0  # 12, 24, 48
    assert drain.median_resolve_hours == 65.1  # mean of 30.25 and 100, one decimal
    assert rubbish.median_follow_up_hours is None and rubbish.median_resolve_hours is None

    summary = kabupaten_summary(session, settings=settings, now=NOW)
    assert summary.median_verify_hours == 3.0  # 1,1,1,2,2,4,4,10,10,20
    assert summary.median_follow_up_hours == 24.0


def test_a_report_closed_while_new_counts_its_closing_as_the_verification_time(add, session, settings):
    add(status=REJECTED, closed_at=T0 + hours(6))
    add(status=VERIFIED, verified_at=T0 + hours(2))
    add(status=BARU)  # not measured yet
    assert only(figures(session, settings)).median_verify_hours == 4.0


def test_average_rating_of_rated_reports(add, session, settings):
    for rating in (5, 4, 2):
        add(**handled(status=DONE, followed_up_at=T0 + hours(5), resolved_at=T0 + hours(9), rating=rating))
    add(**handled(status=DONE, followed_up_at=T0 + hours(5), resolved_at=T0 + hours(9)))  # not rated

    row = only(figures(session, settings))
    assert (row.avg_rating, row.rated) == (3.67, 3)
    assert only(figures(session, settings, by="agency")).avg_rating == 3.67


# --- grouping ---------------------------------------------------------------------------------------------------


def test_months_follow_the_regency_time_zone(add, session, settings):
    add(created=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 23:00 WIB: November
    add(created=datetime(2026, 11, 30, 20, 0, tzinfo=UTC))  # 03:00 WIB on 1 December
    add(created=datetime(2027, 1, 31, 17, 30, tzinfo=UTC))  # 00:30 WIB on 1 February
    add(created=datetime(2026, 12, 31, 16, 59, tzinfo=UTC))  # 23:59 WIB: still December

    rows = figures(session, settings, by="month", locale="id")
    assert [(row.key, row.label, row.total) for row in rows] == [
        ("2026-11", "November 2026", 1),
        ("2026-12", "Desember 2026", 2),
        ("2027-02", "Februari 2027", 1),
    ]  # a month without reports is left out
    assert [row.label for row in figures(session, settings, by="month", locale="en")][1] == "December 2026"


def test_months_over_several_years_land_in_their_own_month(add, session, settings):
    # More months than one CASE level: every report still lands in its own month.
    months = [datetime(2024 + index // 12, index % 12 + 1, 15, 3, 0, tzinfo=UTC) for index in range(0, 36, 5)]
    for created in months:
        add(created=created)
    rows = figures(session, settings, by="month")
    assert [row.key for row in rows] == [f"{created.year:04d}-{created.month:02d}" for created in months]
    assert all(row.total == 1 for row in rows)


def test_by_agency_and_kecamatan(add, session, settings):
    first = add()
    add(category=RUBBISH)
    add(category=RUBBISH)
    add(agency_id=None)
    add(category=RUBBISH, kecamatan_code=None)

    rows = figures(session, settings, by="agency", locale="en")
    pupr, dlh = agency_id(session, "Dinas PUPR"), agency_id(session, "DLH")
    # By name (Dinas Lingkungan Hidup before Dinas Pekerjaan Umum …), the reports without an OPD last.
    assert [(row.key, row.label, row.total) for row in rows] == [
        (str(dlh), "Dinas Lingkungan Hidup", 3),
        (str(pupr), "Dinas Pekerjaan Umum dan Penataan Ruang", 1),
        ("none", "No OPD", 1),
    ]

    kecamatan = session.scalar(sa.select(Report.kecamatan_code).where(Report.id == first))
    name = session.scalar(sa.text("SELECT name FROM regions WHERE code = :code"), {"code": kecamatan})
    rows = figures(session, settings, by="kecamatan", locale="en")
    assert [(row.key, row.label, row.total) for row in rows] == [(kecamatan, name, 4), ("none", "No kecamatan", 1)]


# --- filters ----------------------------------------------------------------------------------------------------


def test_dates_filter_on_the_local_day_and_agency_filter(add, session, settings):
    add(created=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 30 November WIB
    add(created=datetime(2026, 11, 30, 20, 0, tzinfo=UTC))  # 1 December WIB
    add(created=datetime(2026, 12, 31, 16, 59, tzinfo=UTC), category=RUBBISH)  # 31 December WIB
    add(created=datetime(2026, 12, 31, 17, 0, tzinfo=UTC))  # 1 January 2027 WIB

    def total(**kwargs) -> int:
        return kabupaten_summary(session, settings=settings, now=NOW, **kwargs).total

    assert total() == 4
    assert total(since=date(2026, 12, 1)) == 3
    assert total(until=date(2026, 11, 30)) == 1
    assert total(since=date(2026, 12, 1), until=date(2026, 12, 31)) == 2
    assert total(since=date(2026, 12, 1), until=date(2026, 12, 1)) == 1

    dlh = agency_id(session, "DLH")
    rows = figures(session, settings, by="month", agency_id=dlh)
    assert [(row.key, row.total) for row in rows] == [("2026-12", 1)]
    rows = figures(session, settings, by="category", agency_id=dlh, since=date(2027, 1, 1))
    assert rows == []
    assert [row.key for row in figures(session, settings, by="month", since=date(2026, 12, 1))] == [
        "2026-12",
        "2027-01",
    ]


def test_bad_grouping_or_period_is_refused(seeded, session, settings):
    with pytest.raises(InvalidInput) as error:
        report_figures(session, settings=settings, by="desa")
    assert error.value.errors == [{"field": "by", "reason": "unknown"}]
    with pytest.raises(InvalidInput) as error:
        report_figures(session, settings=settings, by="month", since=date(2026, 12, 2), until=date(2026, 12, 1))
    assert error.value.errors[0]["field"] == "since"


# --- league table and the real workflow -------------------------------------------------------------------------


def test_league_table_ranks_opds_by_resolution_within_sla(add, session, settings):
    due = T0 + hours(240)
    # PUPR: one of two resolved in time.
    add(**handled(status=DONE, followed_up_at=T0 + hours(5), resolved_at=due - hours(1)))
    add(**handled(status=DONE, followed_up_at=T0 + hours(5), resolved_at=due + hours(1)))
    # DLH: all resolved in time.
    add(**handled(category=RUBBISH, status=DONE, followed_up_at=T0 + hours(5), resolved_at=due - hours(1)))
    # Dishub: nothing decided yet; and a report without an OPD stays out of the table.
    add(**handled(category="pju-mati", status=DISPOSED, follow_up_due_at=NOW + hours(5), resolve_due_at=NOW + hours(9)))
    add(agency_id=None)

    table = league_table(session, settings=settings, now=NOW)
    keys = [row.key for row in table]
    assert keys == [str(agency_id(session, name)) for name in ("DLH", "Dinas PUPR", "Dishub")]
    assert [row.resolved_in_sla_pct for row in table] == [100.0, 50.0, None]
    assert "none" not in keys


def test_figures_of_reports_handled_through_the_workflow(make_report, staff, session, settings):
    operator, pupr = staff("operator"), staff("pupr_staff")
    actor = TEST_ACTOR
    submitted = make_report(now=T0)
    report_id = submitted.report.id
    steps = [
        (service.verify_report, {"by": operator}, 3),
        (service.dispose_report, {"by": operator, "agency_id": None}, 5),
        (service.follow_up_report, {"by": pupr, "plan": "Tim dikirim untuk membersihkan saluran."}, 29),
        (service.resolve_report, {"by": pupr, "note": "Saluran sudah dibersihkan."}, 53),
    ]
    for step, kwargs, at in steps:
        step(session, settings=settings, report_id=report_id, actor=actor, now=T0 + hours(at), **kwargs)
        session.commit()
    service.rate_report(session, settings=settings, code=submitted.report.tracking_code, pin=submitted.pin, rating=4)
    session.commit()
    make_report(now=NOW - hours(1))  # a new one, inside its verify deadline

    summary = kabupaten_summary(session, settings=settings, now=NOW)
    assert (summary.total, summary.open, summary.counts[DONE], summary.counts[BARU]) == (2, 1, 1, 1)
    assert summary.verified_in_sla_pct == summary.followed_up_in_sla_pct == summary.resolved_in_sla_pct == 100.0
    assert summary.median_verify_hours == 3.0
    assert summary.median_follow_up_hours == 24.0
    assert summary.median_resolve_hours == 53.0
    assert (summary.avg_rating, summary.rated) == (4.0, 1)

    # Reopened by the reporter: back with the OPD under a new resolution deadline, so not decided any more.
    reopened_at = NOW - hours(2)
    service.reopen_report(
        session, settings=settings, code=submitted.report.tracking_code, pin=submitted.pin,
        reason="Saluran tersumbat lagi setelah hujan.", now=reopened_at,
    )  # fmt: skip
    session.commit()
    summary = kabupaten_summary(session, settings=settings, now=NOW)
    assert (summary.open, summary.counts[DONE], summary.counts[IN_PROGRESS]) == (2, 0, 1)
    assert summary.resolved_in_sla_pct is None and summary.median_resolve_hours is None
    assert summary.followed_up_in_sla_pct == 100.0
