"""Event suggestions from clusters of citizen reports: when several open flood-type reports come in close together in
place and time, operators are asked whether it is an event (settings `event_cluster_min_reports`,
`event_cluster_radius_km`, `event_cluster_hours`, `event_cluster_report_groups`).

The worker runs `suggest_events` every few minutes. It reads a bounded set of rows (the open reports of those
category groups from the last hours, not yet linked to an event nor held by a suggestion), so its cost does not grow
with the archive; the clustering is greedy in Python over a grid of cells the size of the radius: the earliest
report not yet in a cluster takes every free report within the radius, and becomes a suggestion when they are at
least the minimum. A report near an open suggestion joins it instead of starting a second one, and reports an operator
dismissed do not come back as a suggestion unless enough new ones join them.

Reports are read through the reports service as plain rows: only their ids, positions, regions, times and category,
never the reporters' details.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.accounts.models import User
from kotacerdas.accounts.service import Actor, record_change, snapshot
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, utcnow
from kotacerdas.enums import LabelledEnum
from kotacerdas.errors import Conflict, NotFound, PermissionDenied
from kotacerdas.events import service as events
from kotacerdas.events.enums import EventSource, LinkKind
from kotacerdas.events.models import Event, EventLink, EventSuggestion
from kotacerdas.i18n import _
from kotacerdas.regions import service as regions
from kotacerdas.reports import service as reports

# The newest open reports one run looks at: far more than a flood brings within hours, and a bound on a bad day.
CANDIDATES_MAX = 2000


class SuggestionStatus(LabelledEnum):
    """Where a suggestion is: waiting for an operator, turned into an event, or dismissed."""

    OPEN = ("open", "Menunggu keputusan", "Waiting for a decision", "#ef6c00")
    ACCEPTED = ("accepted", "Diterima", "Accepted", "#2e7d32")
    DISMISSED = ("dismissed", "Diabaikan", "Dismissed", "#78909c")


@dataclass(frozen=True)
class ReportPoint:
    """An open report as the clustering sees it."""

    id: int
    lat: float
    lon: float
    desa_code: str | None
    kecamatan_code: str | None
    created_at: datetime
    category: str


@dataclass
class ClusterRun:
    """What one run did."""

    created: list[int]
    grown: list[int]


# --- reading -------------------------------------------------------------------------------------------------------


def _candidates(session: Session, *, settings: Settings, now: datetime) -> list[ReportPoint]:
    since = now - timedelta(hours=settings.event_cluster_hours)
    linked = sa.select(EventLink.target_id).where(EventLink.kind == LinkKind.REPORT.value)
    rows = reports.list_open_report_points(
        session, groups=list(settings.event_cluster_report_groups), since=since, until=now, excluded_ids=linked,
        limit=CANDIDATES_MAX,
    )  # fmt: skip
    points = [ReportPoint(*row) for row in rows]
    points.sort(key=lambda point: (point.created_at, point.id))
    return points


def _recent_suggestions(session: Session, *, settings: Settings, now: datetime) -> list[EventSuggestion]:
    # A report of the window can only be in a suggestion made after it came in.
    since = now - timedelta(hours=settings.event_cluster_hours)
    return list(
        session.scalars(
            sa.select(EventSuggestion).where(EventSuggestion.created_at >= since).order_by(EventSuggestion.id)
        )
    )


# --- clustering ----------------------------------------------------------------------------------------------------


def _cell(lat: float, lon: float, radius_km: float) -> tuple[int, int]:
    # Cells about `radius_km` wide: a report's neighbours are in its cell and the eight around it.
    size = radius_km / 111.0
    return math.floor(lat / size), math.floor(lon * math.cos(math.radians(lat)) / size)


def cluster_points(points: list[ReportPoint], *, radius_km: float, min_reports: int) -> list[list[ReportPoint]]:
    """Greedy clusters: in time order, each report not yet taken takes every free report within `radius_km` of it;
    the groups of at least `min_reports` are kept."""
    grid: dict[tuple[int, int], list[int]] = {}
    for index, point in enumerate(points):
        grid.setdefault(_cell(point.lat, point.lon, radius_km), []).append(index)
    taken: set[int] = set()
    clusters: list[list[ReportPoint]] = []
    for index, seed in enumerate(points):
        if index in taken:
            continue
        row, column = _cell(seed.lat, seed.lon, radius_km)
        near = [
            other
            for d_row in (-1, 0, 1)
            for d_column in (-1, 0, 1)
            for other in grid.get((row + d_row, column + d_column), [])
            if other not in taken
            and events.distance_km(seed.lat, seed.lon, points[other].lat, points[other].lon) <= radius_km
        ]
        if len(near) >= min_reports:
            taken.update(near)
            clusters.append(sorted((points[other] for other in near), key=lambda p: (p.created_at, p.id)))
    return clusters


def _details(members: list[ReportPoint], settings: Settings) -> dict[str, Any]:
    return {
        "count": len(members),
        "first_at": members[0].created_at.isoformat(),
        "last_at": members[-1].created_at.isoformat(),
        "desa_codes": sorted({point.desa_code for point in members if point.desa_code}),
        "categories": sorted({point.category for point in members}),
        "radius_km": settings.event_cluster_radius_km,
    }


def suggest_from_reports(
    session: Session, *, settings: Settings, now: datetime | None = None, dry_run: bool = False
) -> ClusterRun:
    """Find clusters of open flood-type reports and store them as suggestions (or grow an open one); with `dry_run`,
    only say what would change."""
    now = now or utcnow()
    radius = settings.event_cluster_radius_km
    suggestions = _recent_suggestions(session, settings=settings, now=now)
    held = {
        report_id
        for suggestion in suggestions
        if suggestion.status in (SuggestionStatus.OPEN.value, SuggestionStatus.ACCEPTED.value)
        for report_id in suggestion.report_ids or []
    }
    dismissed = {
        report_id
        for suggestion in suggestions
        if suggestion.status == SuggestionStatus.DISMISSED.value
        for report_id in suggestion.report_ids or []
    }
    free = [point for point in _candidates(session, settings=settings, now=now) if point.id not in held]
    run = ClusterRun(created=[], grown=[])
    actor = Actor.system("worker")

    # A report near an open suggestion is more of the same flood: it joins it.
    open_ones = [s for s in suggestions if s.status == SuggestionStatus.OPEN.value]
    joining: dict[int, list[ReportPoint]] = {}
    rest: list[ReportPoint] = []
    for point in free:
        home = next(
            (s for s in open_ones if events.distance_km(s.lat, s.lon, point.lat, point.lon) <= radius),
            None,
        )
        if home is None:
            rest.append(point)
        else:
            joining.setdefault(home.id, []).append(point)
    for suggestion in open_ones:
        if suggestion.id not in joining:
            continue
        run.grown.append(suggestion.id)
        if dry_run:
            continue
        before = snapshot(suggestion)
        added = joining[suggestion.id]
        suggestion.report_ids = sorted({*suggestion.report_ids, *(point.id for point in added)})
        details = dict(suggestion.details or {})
        details["count"] = len(suggestion.report_ids)
        details["last_at"] = max(details.get("last_at", ""), *(point.created_at.isoformat() for point in added))
        details["desa_codes"] = sorted({*details.get("desa_codes", []), *(p.desa_code for p in added if p.desa_code)})
        details["categories"] = sorted({*details.get("categories", []), *(point.category for point in added)})
        suggestion.details = details
        session.flush()
        record_change(
            session, actor=actor, action="event_suggestion.grow", entity_type="event_suggestion",
            entity_id=suggestion.id, before=before, after=snapshot(suggestion),
        )  # fmt: skip

    for members in cluster_points(rest, radius_km=radius, min_reports=settings.event_cluster_min_reports):
        # Reports an operator dismissed count again only when enough new ones are with them.
        if sum(point.id not in dismissed for point in members) < settings.event_cluster_min_reports:
            continue
        if dry_run:
            run.created.append(0)
            continue
        kecamatan = Counter(p.kecamatan_code for p in members if p.kecamatan_code).most_common(1)
        suggestion = EventSuggestion(
            report_ids=[point.id for point in members],
            lat=round(sum(point.lat for point in members) / len(members), 6),
            lon=round(sum(point.lon for point in members) / len(members), 6),
            kecamatan_code=kecamatan[0][0] if kecamatan else None,
            status=SuggestionStatus.OPEN.value,
            created_at=now,
            details=_details(members, settings),
        )
        session.add(suggestion)
        session.flush()
        record_change(
            session, actor=actor, action="event_suggestion.create", entity_type="event_suggestion",
            entity_id=suggestion.id, after=snapshot(suggestion),
        )  # fmt: skip
        run.created.append(suggestion.id)
    return run


def suggest_events(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """The worker's job: look first in a read-only transaction, and take the write turn only when a suggestion is
    to be made or grown; how many were made or grown."""
    with session_factory() as session:
        planned = suggest_from_reports(session, settings=settings, now=now, dry_run=True)
    if not planned.created and not planned.grown:
        return 0
    with session_factory() as session:
        session.connection(execution_options={"kotacerdas_write": True})
        run = suggest_from_reports(session, settings=settings, now=now)
        session.commit()
    return len(run.created) + len(run.grown)


# --- operators' decisions ------------------------------------------------------------------------------------------


def get_suggestion(session: Session, *, suggestion_id: int) -> EventSuggestion:
    """A suggestion by id, or NotFound."""
    found = session.get(EventSuggestion, suggestion_id) if 1 <= suggestion_id <= MAX_INT_ID else None
    if found is None:
        raise NotFound(_("Suggestion not found."))
    return found


def list_suggestions(session: Session, *, status: str | None = SuggestionStatus.OPEN.value, limit: int = 100):
    """Suggestions, newest first, of one status (None: all)."""
    statement = sa.select(EventSuggestion).order_by(EventSuggestion.created_at.desc(), EventSuggestion.id.desc())
    if status:
        statement = statement.where(EventSuggestion.status == status)
    return list(session.scalars(statement.limit(limit)))


@dataclass(frozen=True)
class SuggestedReport:
    """A report of a suggestion as the console lists it (staff only)."""

    id: int
    tracking_code: str
    status: str
    category_id: str
    category_en: str
    desa_code: str | None
    created_at: datetime


def suggestion_reports(session: Session, *, suggestions: list[EventSuggestion]) -> dict[int, list[SuggestedReport]]:
    """The reports of each suggestion, oldest first, in one query."""
    wanted = {report_id for suggestion in suggestions for report_id in suggestion.report_ids or []}
    rows: dict[int, SuggestedReport] = {}
    if wanted:
        rows = {row.id: SuggestedReport(*row) for row in reports.report_summaries(session, report_ids=sorted(wanted))}
    return {
        suggestion.id: sorted(
            (rows[report_id] for report_id in suggestion.report_ids or [] if report_id in rows),
            key=lambda report: (report.created_at, report.id),
        )
        for suggestion in suggestions
    }


def suggestion_area(session: Session, *, suggestion: EventSuggestion) -> list[str]:
    """The desa of a suggestion's reports (or its kecamatan): the area of the event made from it. Desa rather than
    the reports' exact points, which could tell where an anonymous reporter lives."""
    codes = [code for code in (suggestion.details or {}).get("desa_codes", []) if isinstance(code, str)]
    known = regions.get_regions(session, codes=codes)
    codes = [code for code in codes if code in known]
    if not codes and suggestion.kecamatan_code and regions.region_exists(session, code=suggestion.kecamatan_code):
        codes = [suggestion.kecamatan_code]
    return codes


def _decidable(session: Session, suggestion_id: int) -> EventSuggestion:
    suggestion = get_suggestion(session, suggestion_id=suggestion_id)
    if suggestion.status != SuggestionStatus.OPEN.value:
        raise Conflict(
            _("This suggestion was decided already."), errors=[{"field": "status", "reason": suggestion.status}]
        )
    return suggestion


def accept_suggestion(
    session: Session,
    *,
    settings: Settings,
    suggestion_id: int,
    data: events.EventInput,
    by: User,
    actor: Actor,
    now: datetime | None = None,
) -> Event:
    """Make an event of a suggestion (the operator's text and level; its area the reports' desa; linked to the
    reports; source "report_cluster") and mark the suggestion accepted. A draft when events need approval."""
    now = now or utcnow()
    suggestion = _decidable(session, suggestion_id)
    codes = suggestion_area(session, suggestion=suggestion)
    geometry = None
    if not codes:
        # No region known for the reports: a point at the cluster's centre, rounded to about 100 m.
        geometry = {"type": "Point", "coordinates": [round(suggestion.lon, 3), round(suggestion.lat, 3)]}
    first = (suggestion.details or {}).get("first_at")
    starts_at = data.starts_at or (datetime.fromisoformat(first) if isinstance(first, str) else now)
    values = {
        "category": data.category, "level": data.level, "title": data.title, "description": data.description,
        "instruction": data.instruction, "starts_at": min(starts_at, now), "region_codes": codes,
        "geometry": geometry, "links": [(LinkKind.REPORT.value, report_id) for report_id in suggestion.report_ids],
    }  # fmt: skip
    event = events.raise_event(
        session, settings=settings, data=events.EventInput(**values, given=frozenset(values)), by=by, actor=actor,
        source=EventSource.REPORT_CLUSTER, now=now,
    )  # fmt: skip
    before = snapshot(suggestion)
    suggestion.status = SuggestionStatus.ACCEPTED.value
    suggestion.event_id = event.id
    suggestion.decided_by_id = by.id
    suggestion.decided_at = now
    session.flush()
    record_change(
        session, actor=actor, action="event_suggestion.accept", entity_type="event_suggestion",
        entity_id=suggestion.id, before=before, after=snapshot(suggestion),
    )  # fmt: skip
    return event


def dismiss_suggestion(
    session: Session, *, suggestion_id: int, by: User, actor: Actor, now: datetime | None = None
) -> EventSuggestion:
    """Dismiss a suggestion (not an event); its reports are not suggested again unless enough new ones join them."""
    if not events.can_publish(by):
        raise PermissionDenied(_("You do not have permission to do this."))
    suggestion = _decidable(session, suggestion_id)
    before = snapshot(suggestion)
    suggestion.status = SuggestionStatus.DISMISSED.value
    suggestion.decided_by_id = by.id
    suggestion.decided_at = now or utcnow()
    session.flush()
    record_change(
        session, actor=actor, action="event_suggestion.dismiss", entity_type="event_suggestion",
        entity_id=suggestion.id, before=before, after=snapshot(suggestion),
    )  # fmt: skip
    return suggestion


def draft_text(session: Session, *, settings: Settings, suggestion: EventSuggestion) -> dict[str, str]:
    """The event form's first text for a suggestion, in the request's language; the operator edits it."""
    details = suggestion.details or {}
    place = ""
    if suggestion.kecamatan_code:
        found = regions.get_regions(session, codes=[suggestion.kecamatan_code])
        if suggestion.kecamatan_code in found:
            place = found[suggestion.kecamatan_code].name
    names = regions.get_regions(session, codes=details.get("desa_codes", []))
    villages = ", ".join(names[code].name for code in details.get("desa_codes", []) if code in names)

    def local(value: Any) -> str:
        try:
            return datetime.fromisoformat(value).astimezone(settings.zone).strftime("%d-%m-%Y %H:%M %Z")
        except (TypeError, ValueError):
            return "–"

    title = (
        _("Flooding reported by residents in Kecamatan %(place)s") % {"place": place}
        if place
        else _("Flooding reported by residents")
    )
    description = _(
        "%(n)d citizen reports of flooding within %(km)s km of each other between %(start)s and %(end)s."
    ) % {
        "n": len(suggestion.report_ids or []),
        "km": json.dumps(details.get("radius_km", settings.event_cluster_radius_km)),
        "start": local(details.get("first_at")),
        "end": local(details.get("last_at")),
    }
    if villages:
        description += " " + _("Desa: %(names)s.") % {"names": villages}
    return {"title": title[:200], "description": description}
