"""Event suggestions from clusters of citizen reports: the worker's job suggests one event where open flood reports
come in close together, not for scattered, old, other or closed reports, never twice for the same reports; operators
accept (an event linked to the reports) or dismiss in the console, with events.publish, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import TEST_ACTOR, csrf_from, post_login, row_count
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.db import make_sessionmaker, utcnow
from kotacerdas.errors import Conflict, PermissionDenied
from kotacerdas.events import clusters, service
from kotacerdas.events.models import Event, EventLink, EventSuggestion
from kotacerdas.reports import service as reports
from kotacerdas.reports.enums import ReportSource
from kotacerdas.worker import PERIODIC_JOBS, run_jobs

from .helpers import act

# Around Pasar Muara Beliti; about 100 m apart. FAR is some 10 km away.
SPOT = (-3.2400, 102.9900)
NEAR = [(SPOT[0] + 0.0009 * i, SPOT[1] + 0.0006 * i) for i in range(5)]
FAR = (-3.17, 102.92)


@pytest.fixture
def report(seeded, session, settings):
    """Submit a citizen report (flooding unless told) at a point, `hours_ago` hours ago; its id."""

    def make(lat_lon=SPOT, *, category="genangan-banjir", hours_ago: float = 1.0, anonymous=False) -> int:
        submitted = reports.submit_report(
            session, settings=settings, category_code=category, lat=lat_lon[0], lon=lat_lon[1],
            description="Air setinggi lutut menggenangi jalan dan rumah warga.", name="Warga", email="w@example.id",
            source=ReportSource.API, now=utcnow() - timedelta(hours=hours_ago), anonymous=anonymous,
        )  # fmt: skip
        session.commit()
        return submitted.report.id

    return make


@pytest.fixture
def run(engine, settings):
    """Run the worker's job once; how many suggestions it made or grew."""
    factory = make_sessionmaker(engine)
    return lambda: clusters.suggest_events(factory, settings, utcnow())


def open_suggestions(session) -> list[EventSuggestion]:
    session.rollback()
    session.expire_all()
    return list(session.scalars(sa.select(EventSuggestion).where(EventSuggestion.status == "open")))


def test_close_flood_reports_make_one_suggestion_and_a_second_run_adds_none(session, settings, report, run):
    ids = [report(point, hours_ago=3 - i * 0.5) for i, point in enumerate(NEAR[:3])]
    assert run() == 1
    [suggestion] = open_suggestions(session)
    assert sorted(suggestion.report_ids) == sorted(ids)
    assert suggestion.kecamatan_code == "16.05.09"
    assert abs(suggestion.lat - sum(p[0] for p in NEAR[:3]) / 3) < 1e-6
    assert suggestion.details["count"] == 3 and suggestion.details["categories"] == ["genangan-banjir"]
    assert row_count(session, AuditEntry, AuditEntry.action == "event_suggestion.create") == 1

    assert run() == 0
    assert len(open_suggestions(session)) == 1

    # A fourth report near it joins the open suggestion instead of starting another.
    fourth = report(NEAR[3], hours_ago=0.1)
    assert run() == 1
    [grown] = open_suggestions(session)
    assert grown.id == suggestion.id and fourth in grown.report_ids and grown.details["count"] == 4


def test_the_job_is_registered_and_runs_in_the_worker(engine, settings, report, session):
    for point in NEAR[:3]:
        report(point)
    assert "events.suggest_from_reports" in {job.name for job in PERIODIC_JOBS}
    outcome = run_jobs(make_sessionmaker(engine), settings)
    assert outcome["events.suggest_from_reports"] == "ok"
    assert len(open_suggestions(session)) == 1


def test_no_suggestion_for_scattered_old_other_or_closed_reports(session, settings, report, run, staff):
    report(NEAR[0])
    report(FAR)  # too far away
    report(NEAR[1], hours_ago=settings.event_cluster_hours + 1)  # too old
    report(NEAR[2], category="pju-mati")  # not a flood-type category
    closed = report(NEAR[3])
    reports.close_report(
        session,
        settings=settings,
        report_id=closed,
        outcome="reject",
        reason="Laporan ganda.",
        **act(staff("operator")),
    )
    session.commit()
    assert run() == 0
    assert open_suggestions(session) == []
    # One more flood report close by makes... still only two open ones near each other: nothing.
    report(NEAR[4])
    assert run() == 0
    # The third makes a cluster.
    report(NEAR[1])
    assert run() == 1


def test_greedy_clustering_groups_by_distance():
    now = utcnow()
    points = [
        clusters.ReportPoint(i, lat, lon, None, None, now + timedelta(minutes=i), "genangan-banjir")
        for i, (lat, lon) in enumerate([*NEAR[:3], FAR, (FAR[0] + 0.001, FAR[1]), (FAR[0], FAR[1] + 0.001)])
    ]
    found = clusters.cluster_points(points, radius_km=1.0, min_reports=3)
    assert [[point.id for point in cluster] for cluster in found] == [[0, 1, 2], [3, 4, 5]]
    assert clusters.cluster_points(points, radius_km=0.05, min_reports=3) == []


def test_accepting_publishes_an_event_linked_to_the_reports(client, session, settings, report, run, staff):
    ids = [report(point) for point in NEAR[:3]]
    run()
    [suggestion] = open_suggestions(session)
    log_in(client, staff, "operator")
    page = client.get("/konsol/peristiwa/saran")
    assert page.status_code == 200
    assert "Flooding reported by residents in Kecamatan Muara Beliti" in page.text
    codes = sorted(session.scalars(sa.select(sa.column("tracking_code")).select_from(sa.table("reports"))))
    assert all(f">{code}</a>" in page.text for code in codes)
    token = csrf_from(client, "/konsol/peristiwa/saran")

    refused = client.post(
        f"/konsol/peristiwa/saran/{suggestion.id}/terima",
        data={"csrf_token": token, "category": "banjir", "level": "", "title": "Banjir", "description": "Banjir."},
        follow_redirects=False,
    )
    assert refused.status_code == 422 and "alert level" in refused.text
    assert row_count(session, Event) == 0

    accepted = client.post(
        f"/konsol/peristiwa/saran/{suggestion.id}/terima",
        data={"csrf_token": token, "category": "banjir", "level": "waspada", "title": "Banjir di Muara Beliti",
              "description": "Tiga laporan warga tentang genangan.", "instruction": ""},
        follow_redirects=False,
    )  # fmt: skip
    assert accepted.status_code == 303, accepted.text
    session.rollback()
    session.expire_all()
    event = session.scalar(sa.select(Event))
    assert accepted.headers["location"] == f"/konsol/peristiwa/{event.id}?done=created"
    assert (event.source, event.status, event.level) == ("report_cluster", "aktif", "waspada")
    links = session.execute(sa.select(EventLink.kind, EventLink.target_id).where(EventLink.event_id == event.id))
    assert sorted(target for kind, target in links if kind == "report") == sorted(ids)
    stored = session.get(EventSuggestion, suggestion.id)
    assert (stored.status, stored.event_id, stored.decided_by_id) == ("accepted", event.id, staff("operator").id)
    assert row_count(session, AuditEntry, AuditEntry.action == "event_suggestion.accept") == 1
    # The public sees the desa, not the reports' exact points.
    view = client.get(f"/api/v1/events/{event.id}").json()
    assert view["areas"] and view["geometry"] is None and view["source"]["value"] == "report_cluster"

    # Linked to an event, the reports are not suggested again; a decided suggestion cannot be decided twice.
    assert run() == 0
    with pytest.raises(Conflict):
        clusters.dismiss_suggestion(session, suggestion_id=suggestion.id, **act(staff("operator")))


def test_accepting_makes_a_draft_when_events_need_approval(session, settings, report, run, staff):
    for point in NEAR[:3]:
        report(point)
    run()
    [suggestion] = open_suggestions(session)
    settings.events_require_approval = True
    event = clusters.accept_suggestion(
        session, settings=settings, suggestion_id=suggestion.id, **act(staff("operator")),
        data=service.EventInput(category="banjir", level="siaga", title="Banjir", description="Laporan warga."),
    )  # fmt: skip
    session.commit()
    assert (event.status, event.source) == ("draf", "report_cluster")


def test_dismissing_keeps_the_reports_from_coming_back(client, session, settings, report, run, staff):
    for point in NEAR[:3]:
        report(point)
    run()
    [suggestion] = open_suggestions(session)
    log_in(client, staff, "operator")
    token = csrf_from(client, "/konsol/peristiwa/saran")
    dismissed = client.post(
        f"/konsol/peristiwa/saran/{suggestion.id}/abaikan", data={"csrf_token": token}, follow_redirects=False
    )
    assert dismissed.status_code == 303, dismissed.text
    assert dismissed.headers["location"] == "/konsol/peristiwa/saran?done=dismissed"
    session.expire_all()
    assert session.get(EventSuggestion, suggestion.id).status == "dismissed"
    assert row_count(session, AuditEntry, AuditEntry.action == "event_suggestion.dismiss") == 1
    assert run() == 0
    # Enough new reports in the same place: a new suggestion.
    for point in NEAR[:3]:
        report(point, hours_ago=0.2)
    assert run() == 1
    assert len(open_suggestions(session)) == 1


def log_in(client, staff, name: str) -> None:
    client.cookies.clear()
    client.cookies.set("kc_lang", "en")
    assert post_login(client, staff(name).username).status_code == 303


def test_the_console_page_needs_events_publish(client, session, settings, report, run, staff):
    for point in NEAR[:3]:
        report(point)
    run()
    [suggestion] = open_suggestions(session)
    assert client.get("/konsol/peristiwa/saran", follow_redirects=False).status_code in (302, 303, 401)
    log_in(client, staff, "pimpinan")
    assert client.get("/konsol/peristiwa/saran").status_code == 403
    token = csrf_from(client, "/konsol")
    refused = client.post(f"/konsol/peristiwa/saran/{suggestion.id}/abaikan", data={"csrf_token": token})
    assert refused.status_code == 403
    session.expire_all()
    assert session.get(EventSuggestion, suggestion.id).status == "open"
    with pytest.raises(PermissionDenied):
        clusters.dismiss_suggestion(session, suggestion_id=suggestion.id, by=staff("pupr_staff"), actor=TEST_ACTOR)
    log_in(client, staff, "operator")
    token = csrf_from(client, "/konsol/peristiwa/saran")
    missing = client.post("/konsol/peristiwa/saran/999/abaikan", data={"csrf_token": token})
    assert missing.status_code == 404
