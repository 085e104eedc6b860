"""The events service: publishing, updating, ending and cancelling, approval, bad input, reads and the audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import row_count
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.errors import InvalidInput, NotFound, PermissionDenied
from kotacerdas.events import service
from kotacerdas.events.models import Event, EventArea, EventUpdate

from .helpers import DESA, INSIDE, KECAMATAN, OTHER_KECAMATAN, OUTSIDE, START, act, activity, flood


def test_a_published_warning_is_active_version_1_with_its_areas_timeline_and_audit(session, settings, staff):
    event = service.raise_event(session, settings=settings, data=flood(), **act(staff("operator")))
    session.commit()

    assert (event.status, event.version, event.level, event.source) == ("aktif", 1, "siaga", "operator")
    assert event.published_at is not None and event.impacts == {"kk": 120, "jiwa": 430, "rumah": 95}
    assert service.named_region_codes(session, event_id=event.id) == [DESA]
    # The desa brings its kecamatan, so a kecamatan filter finds the event.
    assert service.region_codes_of(session, event_ids=[event.id])[event.id] == [KECAMATAN, DESA]
    assert [u.kind for u in service.timeline(session, event_id=event.id)] == ["published"]
    audit = session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "event.create")).one()
    assert audit.after["region_codes"] == [DESA] and audit.after["title"] == "Banjir Sungai Kelingi"


def test_updates_make_new_versions_and_ending_closes_the_event(session, settings, staff, make_event):
    event = make_event()
    operator = staff("operator")

    service.update_event(
        session, settings=settings, event_id=event.id, data=flood(level="awas", impacts={"kk": 300}),
        note="Air terus naik.", **act(operator),
    )  # fmt: skip
    service.end_event(session, settings=settings, event_id=event.id, note="Air surut.", **act(operator))
    session.commit()

    assert (event.status, event.version, event.level, event.impacts) == ("selesai", 3, "awas", {"kk": 300})
    kinds = [(u.kind, u.version, u.note) for u in service.timeline(session, event_id=event.id)]
    assert kinds == [("published", 1, None), ("updated", 2, "Air terus naik."), ("ended", 3, "Air surut.")]
    with pytest.raises(InvalidInput):
        service.update_event(session, settings=settings, event_id=event.id, data=flood(title="x" * 20), **act(operator))


def test_a_drawn_area_is_located_and_brings_its_kecamatan(session, settings, staff):
    lat, lon = INSIDE
    square = {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]],
    }
    event = service.raise_event(
        session, settings=settings, data=flood(region_codes=[], geometry=square), **act(staff("operator"))
    )
    assert event.geometry is not None and event.min_lon == pytest.approx(lon)
    assert service.region_codes_of(session, event_ids=[event.id])[event.id]


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (flood(ends_at=START - timedelta(hours=1)), "ends_at", "before_start"),
        (flood(region_codes=["16.05.99.9999"]), "region_codes", "unknown"),
        (flood(region_codes=["32.73.01"]), "region_codes", "unknown"),
        (flood(region_codes=[], geometry={"type": "Point", "coordinates": OUTSIDE[::-1]}), "geometry", "outside"),
        (flood(region_codes=[], geometry={"type": "LineString", "coordinates": [[1, 2], [3, 4]]}), "geometry", "invalid"),  # noqa: E501
        (flood(region_codes=[]), "region_codes", "required"),
        (activity(level="siaga"), "level", "not_hazard"),
        (flood(level=None), "level", "required"),
        (flood(level="merah"), "level", "unknown"),
        (flood(category="gempa"), "category", "unknown"),
        (flood(title="<b>Banjir</b>"), "title", "markup"),
        (flood(description="Air naik <script>alert(1)</script>"), "description", "markup"),
        (flood(title="Banjir\x07"), "title", "control_character"),
        (flood(description="Air \ud800 naik"), "description", "control_character"),
        (flood(impacts={"kk": -1}), "impacts.kk", "range"),
        (flood(impacts={"sapi": 3}), "impacts.sapi", "unknown"),
        (flood(links=[("report", 999999)]), "links", "not_found"),
    ],
    ids=[
        "end-before-start", "unknown-desa", "other-kabupaten", "area-outside", "line-area", "no-area",
        "level-on-activity", "hazard-without-level", "unknown-level", "unknown-category", "markup-title",
        "script-description", "control-title", "surrogate", "negative-impact", "unknown-impact", "missing-report",
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_its_field_and_nothing_is_stored(session, settings, staff, data, field, reason):
    operator = staff("operator")
    session.commit()
    with pytest.raises(InvalidInput) as refused:
        service.raise_event(session, settings=settings, data=data, **act(operator))
    session.rollback()

    assert refused.value.errors[0]["field"] == field and refused.value.errors[0]["reason"] == reason
    assert (
        row_count(session, Event) == 0 and row_count(session, EventArea) == 0 and row_count(session, EventUpdate) == 0
    )


def test_only_publishers_publish(session, settings, staff):
    for name in ("pimpinan", "pupr_staff"):
        with pytest.raises(PermissionDenied):
            service.raise_event(session, settings=settings, data=flood(), **act(staff(name)))


def test_with_approval_a_draft_is_hidden_until_another_operator_approves_it(session, settings, staff):
    approving = settings.model_copy(update={"events_require_approval": True})
    author, other = staff("operator"), staff("operator2")
    event = service.raise_event(session, settings=approving, data=flood(), **act(author))
    session.commit()

    assert (event.status, event.version) == ("draf", 0)
    with pytest.raises(NotFound):
        service.get_public_event(session, event_id=event.id)
    assert service.list_public_events(session) == []
    with pytest.raises(PermissionDenied):
        service.approve_event(session, settings=approving, event_id=event.id, **act(author))

    service.approve_event(session, settings=approving, event_id=event.id, **act(other))
    session.commit()
    assert (event.status, event.version, event.approved_by_id) == ("aktif", 1, other.id)
    assert service.get_public_event(session, event_id=event.id) is event


def test_the_public_list_puts_ongoing_warnings_first_and_filters(session, settings, staff, make_event):
    siaga = make_event()
    awas = make_event(level="awas", title="Banjir Sungai Musi")
    posyandu = make_event(activity())
    ended = make_event(level="awas", title="Longsor lama", category="tanah_longsor")
    service.end_event(session, settings=settings, event_id=ended.id, **act(staff("operator")))
    session.commit()

    assert [e.id for e in service.list_public_events(session)] == [awas.id, siaga.id, posyandu.id, ended.id]
    by_region = service.list_public_events(session, filters=service.EventFilters(region_code=OTHER_KECAMATAN))
    assert [e.id for e in by_region] == [posyandu.id]
    warnings = service.list_public_events(session, filters=service.EventFilters(min_level="awas", ongoing_only=True))
    assert [e.id for e in warnings] == [awas.id]
    near = service.list_public_events(session, filters=service.EventFilters(near=(-3.06, 102.93, 30.0)))
    assert siaga.id in {e.id for e in near}
