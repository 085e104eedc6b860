"""The public map index: points or clusters by zoom, filters, privacy, and the refresh after every kind of change."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kotacerdas.accounts.service import Actor
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.errors import InvalidInput
from kotacerdas.reports import mapindex, service
from kotacerdas.reports.enums import ReportStatus

from .helpers import INSIDE

# The whole kabupaten with room around it, and a small window around INSIDE.
KABUPATEN = (102.0, -4.0, 104.0, -2.5)
NEAR_INSIDE = (INSIDE[1] - 0.05, INSIDE[0] - 0.05, INSIDE[1] + 0.05, INSIDE[0] + 0.05)


def query(session, settings, **kwargs):
    """The map as a fresh request sees it (a new snapshot of what is committed)."""
    session.commit()
    kwargs.setdefault("bbox", KABUPATEN)
    kwargs.setdefault("zoom", 10)
    return mapindex.viewport_geojson(session, settings=settings, **kwargs)


def codes(answer) -> set[str]:
    return {f["properties"]["tracking_code"] for f in answer["features"] if not f["properties"].get("cluster")}


def counted(answer) -> int:
    return sum(f["properties"].get("count", 1) for f in answer["features"])


def spread(make_report, count: int, *, step: float = 0.01, **overrides):
    """`count` reports on a line eastwards from INSIDE, `step` degrees apart."""
    return [make_report(lat=INSIDE[0], lon=INSIDE[1] + i * step, **overrides).report for i in range(count)]


@pytest.fixture
def few_points(monkeypatch):
    # Clustering starts above POINTS_MAX reports; a small limit keeps the tests quick.
    monkeypatch.setattr(mapindex, "POINTS_MAX", 5)


def test_a_point_carries_its_public_fields_only(session, settings, make_report):
    report = make_report().report
    answer = query(session, settings)
    assert answer["type"] == "FeatureCollection" and answer["total"] == 1 and not answer["clustered"]
    (feature,) = answer["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [report.public_lon, report.public_lat]}
    assert feature["properties"] == {
        "tracking_code": report.tracking_code,
        "category_code": "drainase-tersumbat",
        "status": "baru",
        "status_colour": ReportStatus.BARU.colour,
        "url": f"/lapor/{report.tracking_code}",
    }


def test_low_zoom_clusters_and_high_zoom_shows_points(session, settings, make_report, few_points):
    reports = spread(make_report, 12, step=0.002)
    wide = query(session, settings, zoom=8)
    assert wide["clustered"] and wide["total"] == 12
    assert counted(wide) == 12
    (cluster,) = wide["features"]  # 0.022 degrees is far less than one 60-pixel cell at zoom 8
    assert cluster["properties"] == {"cluster": True, "count": 12}
    # At the mean of its members, to within an eighth of a cell (64 pixels at zoom 8 are 0.35 degrees).
    lon, lat = cluster["geometry"]["coordinates"]
    assert lat == pytest.approx(INSIDE[0], abs=0.35 / 8) and lon == pytest.approx(INSIDE[1] + 0.011, abs=0.35 / 8)
    # At zoom 18 one 60-pixel cell is about 0.0003 degrees: every report stands alone.
    street = (INSIDE[1] - 0.001, INSIDE[0] - 0.001, INSIDE[1] + 0.025, INSIDE[0] + 0.001)
    close = query(session, settings, bbox=street, zoom=18)
    assert close["clustered"] and codes(close) == {r.tracking_code for r in reports}
    # A viewport with few reports answers points whatever the zoom.
    window = (INSIDE[1] - 0.001, INSIDE[0] - 0.001, INSIDE[1] + 0.005, INSIDE[0] + 0.001)
    few = query(session, settings, bbox=window, zoom=8)
    assert not few["clustered"] and codes(few) == {r.tracking_code for r in reports[:3]}


def test_the_answer_stays_small_whatever_the_viewport(session, settings, make_report, few_points):
    spread(make_report, 40, step=0.0005)
    answer = query(session, settings, bbox=(-180, -85, 180, 85), zoom=22)
    assert answer["clustered"] and counted(answer) == 40
    assert len(answer["features"]) <= mapindex.CELLS_MAX


def test_filters(session, settings, make_report, staff):
    drain = make_report().report
    light = make_report(category_code="pju-mati", lon=INSIDE[1] + 0.01).report
    old = make_report(lon=INSIDE[1] + 0.02, now=datetime(2025, 3, 10, 3, tzinfo=UTC)).report
    operator = staff("operator")
    service.verify_report(session, settings=settings, report_id=light.id, by=operator, actor=Actor.of(operator))
    service.close_report(
        session, settings=settings, report_id=old.id, outcome="reject", reason="Tidak lengkap.", by=operator,
        actor=Actor.of(operator),
    )  # fmt: skip
    session.commit()
    everything = {drain.tracking_code, light.tracking_code, old.tracking_code}
    assert codes(query(session, settings)) == everything
    light_category = service.get_category_by_code(session, code="pju-mati")
    assert codes(query(session, settings, category_id=light_category.id)) == {light.tracking_code}
    assert codes(query(session, settings, status="open")) == {drain.tracking_code, light.tracking_code}
    assert codes(query(session, settings, status="closed")) == {old.tracking_code}
    assert codes(query(session, settings, status="terverifikasi")) == {light.tracking_code}
    assert codes(query(session, settings, kecamatan_code=drain.kecamatan_code)) >= {drain.tracking_code}
    assert codes(query(session, settings, kecamatan_code="16.05.99")) == set()
    # Dates are local (WIB) days, both ends included.
    assert codes(query(session, settings, until=date(2025, 3, 10))) == {old.tracking_code}
    assert codes(query(session, settings, since=date(2025, 3, 11))) == {drain.tracking_code, light.tracking_code}
    assert codes(query(session, settings, since=date(2025, 3, 10), until=date(2025, 3, 10))) == {old.tracking_code}
    assert query(session, settings, category_id=light_category.id, status="closed")["total"] == 0
    # The viewport itself filters.
    assert codes(query(session, settings, bbox=(INSIDE[1] + 0.015, -3.1, INSIDE[1] + 0.03, -3.0))) == {
        old.tracking_code
    }


def test_confidential_and_hidden_reports_are_never_on_the_map(session, settings, make_report, staff, few_points):
    shown = make_report().report
    secret = make_report(confidential=True).report
    hidden = make_report().report
    operator = staff("operator")
    service.hide_report(
        session, settings=settings, report_id=hidden.id, hidden=True, reason="Memuat data pribadi.", by=operator,
        actor=Actor.of(operator),
    )  # fmt: skip
    session.commit()
    answer = query(session, settings)
    assert answer["total"] == 1 and codes(answer) == {shown.tracking_code}
    # Nor are they counted in clusters.
    spread(make_report, 6, step=0.001, confidential=True)
    clustered = query(session, settings, status="open", zoom=8)
    assert clustered["total"] == 1 and counted(clustered) == 1
    for answer in (clustered, query(session, settings, zoom=8)):
        text = str(answer)
        assert secret.tracking_code not in text and hidden.tracking_code not in text


def test_an_anonymous_report_is_at_its_public_position_not_the_exact_one(session, settings, make_report):
    exact = (INSIDE[0] + 0.0123, INSIDE[1] + 0.0234)
    report = make_report(lat=exact[0], lon=exact[1], anonymous=True).report
    assert (report.public_lat, report.public_lon) != exact
    answer = query(session, settings)
    (feature,) = answer["features"]
    assert feature["geometry"]["coordinates"] == [report.public_lon, report.public_lat]
    assert str(exact[0]) not in str(answer) and str(exact[1]) not in str(answer)
    # A viewport around the exact place alone does not find it.
    around = (exact[1] - 0.001, exact[0] - 0.001, exact[1] + 0.001, exact[0] + 0.001)
    assert query(session, settings, bbox=around, zoom=17)["total"] == 0


def test_the_index_follows_new_reports_status_changes_and_hiding(session, settings, make_report, staff):
    first = make_report().report
    assert codes(query(session, settings)) == {first.tracking_code}  # loads the index
    second = make_report(lon=INSIDE[1] + 0.01).report
    assert codes(query(session, settings)) == {first.tracking_code, second.tracking_code}
    operator = staff("operator")
    service.verify_report(session, settings=settings, report_id=first.id, by=operator, actor=Actor.of(operator))
    session.commit()
    assert codes(query(session, settings, status="terverifikasi")) == {first.tracking_code}
    assert codes(query(session, settings, status="baru")) == {second.tracking_code}
    service.hide_report(
        session, settings=settings, report_id=second.id, hidden=True, reason="Spam.", by=operator,
        actor=Actor.of(operator),
    )  # fmt: skip
    session.commit()
    assert codes(query(session, settings)) == {first.tracking_code}
    service.hide_report(
        session, settings=settings, report_id=second.id, hidden=False, reason=None, by=operator,
        actor=Actor.of(operator),
    )  # fmt: skip
    session.commit()
    assert codes(query(session, settings)) == {first.tracking_code, second.tracking_code}


def test_changes_made_by_another_process_reach_the_index(session, settings, make_report, staff):
    first = make_report().report
    query(session, settings)
    operator = staff("operator")
    # Another app process: its own engine and sessions, the same database.
    other = make_engine(settings)
    try:
        with make_sessionmaker(other)() as elsewhere:
            service.close_report(
                elsewhere, settings=settings, report_id=first.id, outcome="archive", reason="Selesai.",
                by=elsewhere.merge(operator), actor=Actor.of(operator),
            )  # fmt: skip
            elsewhere.commit()
            assert codes(mapindex.viewport_geojson(elsewhere, settings=settings, bbox=KABUPATEN, zoom=10)) == {
                first.tracking_code
            }
    finally:
        other.dispose()
    assert codes(query(session, settings, status="diarsipkan")) == {first.tracking_code}
    assert query(session, settings, status="open")["total"] == 0


def test_a_database_emptied_under_the_index_is_read_again(session, settings, make_report, monkeypatch):
    monkeypatch.setattr(mapindex, "CHECK_SECONDS", 0.0)  # checked at every query, not every few seconds
    make_report()
    assert query(session, settings)["total"] == 1
    from kotacerdas.reports.models import Report, ReportUpdate

    session.query(ReportUpdate).delete()
    session.query(Report).delete()
    session.commit()
    assert query(session, settings)["total"] == 0
    again = make_report().report
    assert codes(query(session, settings)) == {again.tracking_code}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bbox": (103.0, -3.0, 102.0, -2.0)}, "bbox"),
        ({"bbox": (102.0, -3.0, 103.0)}, "bbox"),
        ({"bbox": (102.0, -95.0, 103.0, -2.0)}, "bbox"),
        ({"bbox": (102.0, float("nan"), 103.0, -2.0)}, "bbox"),
        ({"zoom": 23}, "zoom"),
        ({"zoom": -1}, "zoom"),
        ({"status": "hilang"}, "status"),
    ],
)
def test_bad_viewports_are_refused(session, settings, seeded, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        query(session, settings, **kwargs)
    assert caught.value.errors == [{"field": field, "reason": caught.value.errors[0]["reason"]}]
