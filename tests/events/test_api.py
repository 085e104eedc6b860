"""The events JSON API: the public list and detail, and publishing by operators with their permissions; bad input
is a 4xx problem+json with nothing stored."""

from __future__ import annotations

import pytest

from conftest import assert_problem, bearer, new_api_token, row_count
from kotacerdas.events.models import Event

from .helpers import DESA, KECAMATAN, OTHER_KECAMATAN, START

FLOOD = {
    "category": "banjir",
    "level": "siaga",
    "title": "Banjir Sungai Kelingi",
    "description": "Air Sungai Kelingi naik 1,5 m; permukiman di tepi sungai tergenang.",
    "starts_at": START.isoformat(),
    "region_codes": [DESA],
    "impacts": {"kk": 120, "jiwa": 430},
}


@pytest.fixture
def operator_headers(staff, session):
    session.commit()
    return bearer(new_api_token(session, staff("operator")))


def test_an_operator_publishes_and_the_public_reads_it(client, operator_headers):
    created = client.post("/api/v1/events", json=FLOOD, headers=operator_headers)
    assert created.status_code == 201, created.text
    event = created.json()

    listed = client.get("/api/v1/events").json()
    detail = client.get(f"/api/v1/events/{event['id']}").json()
    english = client.get(f"/api/v1/events/{event['id']}", headers={"Accept-Language": "en"}).json()

    assert listed["count"] == 1 and listed["items"][0]["id"] == event["id"]
    assert detail["level"]["label"] == "Siaga" and english["level"]["label"] == "Standby"
    assert [area["code"] for area in detail["areas"]] == [DESA]
    assert [line["kind"]["value"] for line in detail["timeline"]] == ["published"]
    assert {impact["key"]: impact["value"] for impact in detail["impacts"]} == {"kk": 120, "jiwa": 430}
    assert "created_by_id" not in detail and "actor_id" not in str(detail)


def test_update_end_and_filters_through_the_api(client, operator_headers):
    event = client.post("/api/v1/events", json=FLOOD, headers=operator_headers).json()
    updated = client.patch(
        f"/api/v1/events/{event['id']}", json={"level": "awas", "note": "Air terus naik."}, headers=operator_headers
    )
    ended = client.post(f"/api/v1/events/{event['id']}/end", json={"note": "Air surut."}, headers=operator_headers)

    assert updated.status_code == 200 and updated.json()["level"]["value"] == "awas"
    assert ended.json()["status"]["value"] == "selesai" and ended.json()["version"] == 3
    assert client.get("/api/v1/events", params={"kecamatan": KECAMATAN}).json()["count"] == 1
    assert client.get("/api/v1/events", params={"kecamatan": OTHER_KECAMATAN}).json()["count"] == 0
    assert client.get("/api/v1/events", params={"aktif": "true"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_at": "2026-11-30T00:00:00+07:00"}, "ends_at"),
        ({"region_codes": ["16.05.77"]}, "region_codes"),
        ({"category": "acara"}, "level"),
        ({"title": "<img src=x onerror=alert(1)>"}, "title"),
        ({"geometry": {"type": "Point", "coordinates": [106.8, -6.2]}, "region_codes": []}, "geometry"),
    ],
    ids=["end-before-start", "unknown-region", "level-on-activity", "markup", "outside"],
)
def test_bad_input_is_a_422_problem_and_nothing_is_stored(client, session, operator_headers, change, field):
    problem = assert_problem(client.post("/api/v1/events", json={**FLOOD, **change}, headers=operator_headers), 422)
    assert problem["errors"][0]["field"] == field
    assert row_count(session, Event) == 0


def test_publishing_needs_the_permission(client, staff, session):
    session.commit()
    assert_problem(client.post("/api/v1/events", json=FLOOD), 401)
    headers = bearer(new_api_token(session, staff("pupr_staff")))
    assert_problem(client.post("/api/v1/events", json=FLOOD, headers=headers), 403)
    assert row_count(session, Event) == 0


def test_a_draft_is_not_public(client, session, make_event, settings):
    settings.events_require_approval = True
    event = make_event()
    assert_problem(client.get(f"/api/v1/events/{event.id}"), 404)
    assert client.get("/api/v1/events").json()["count"] == 0
