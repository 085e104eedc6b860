"""The worker's report job: missed deadlines flagged in their own transactions, once."""

from __future__ import annotations

from datetime import timedelta

from conftest import row_count
from kotacerdas.db import make_sessionmaker, utcnow
from kotacerdas.reports import tasks
from kotacerdas.reports.enums import UpdateKind
from kotacerdas.reports.models import ReportUpdate
from kotacerdas.worker import PERIODIC_JOBS, run_jobs


def test_worker_job_flags_missed_deadlines_once(session, engine, settings, make_report):
    make_report(now=utcnow() - timedelta(days=30))
    make_report()
    factory = make_sessionmaker(engine)
    assert tasks.flag_breaches(factory, settings, utcnow()) == 1
    assert tasks.flag_breaches(factory, settings, utcnow()) == 0
    assert row_count(session, ReportUpdate, ReportUpdate.kind == UpdateKind.BREACH.value) == 1


def test_the_worker_runs_the_breach_job(session, engine, settings, make_report):
    make_report(now=utcnow() - timedelta(days=30))
    outcome = run_jobs(make_sessionmaker(engine), settings)
    assert outcome["reports.flag_breaches"] == "ok"
    assert "reports.flag_breaches" in {job.name for job in PERIODIC_JOBS}
    assert row_count(session, ReportUpdate, ReportUpdate.kind == UpdateKind.BREACH.value) == 1
