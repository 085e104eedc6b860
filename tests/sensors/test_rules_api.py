"""Sensor warning rules over HTTP: the JSON API (/api/v1/sensors/rules) and the console (/konsol/sensor/aturan) for
admins and operators (sensors.rules); 401 without a login, 403 for OPD staff; bad input a 422 naming the field."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import assert_problem, bearer, csrf_from, new_api_token, post_login, row_count, stored
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.sensors.models import SensorRule

from .test_sensorthings import create, first_datastream, gauge

RULES = "/api/v1/sensors/rules"


def make_gauge(client, tokens, levels: dict | None = None) -> tuple[int, int]:
    """A river gauge posted through SensorThings; (Thing id, Datastream id)."""
    body = gauge()
    body["Datastreams"][0]["properties"]["levels"] = levels or {"waspada": 250, "siaga": 300, "awas": 350}
    thing = create(client, tokens("admin"), "/Things", body)
    return thing["@iot.id"], first_datastream(client, thing["@iot.id"])


def test_an_admin_creates_reads_updates_disables_and_deletes_a_rule(client, tokens, session):
    _thing, datastream = make_gauge(client, tokens)
    headers = tokens("admin")
    body = {"kind": "threshold", "datastream_id": datastream, "category": "banjir", "level": "siaga",
            "escalate_level": "awas", "clear_level": "waspada"}  # fmt: skip
    made = client.post(RULES, json=body, headers=headers)
    assert made.status_code == 201, made.text
    rule = made.json()
    assert rule["kind"]["value"] == "threshold" and rule["state"]["value"] == "normal"
    assert rule["effective"] == {"raise_at": 300.0, "escalate_at": 350.0, "clear_below": 250.0}
    assert rule["duration_minutes"] == 10 and rule["clear_minutes"] == 30
    assert rule["name"] and rule["event"] is None and rule["unit"] == "cm"
    rid = rule["id"]
    assert client.get(f"{RULES}/{rid}", headers=headers).json()["id"] == rid
    listed = client.get(RULES, params={"datastream_id": datastream}, headers=headers).json()
    assert [item["id"] for item in listed["items"]] == [rid]
    changed = client.patch(f"{RULES}/{rid}", json={"duration_minutes": 15, "threshold": 310}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["duration_minutes"] == 15 and changed.json()["effective"]["raise_at"] == 310.0
    assert changed.json()["level"] == "siaga", "fields not sent stay"
    assert client.post(f"{RULES}/{rid}/disable", headers=headers).json()["enabled"] is False
    assert client.post(f"{RULES}/{rid}/enable", headers=headers).json()["enabled"] is True
    assert client.delete(f"{RULES}/{rid}", headers=headers).status_code == 204
    assert_problem(client.get(f"{RULES}/{rid}", headers=headers), 404)
    audited = sa.select(AuditEntry.action).where(
        AuditEntry.entity_type == "sensor_rule", AuditEntry.entity_id == str(rid)
    )
    actions = set(session.scalars(audited))
    assert {"sensor_rule.create", "sensor_rule.update", "sensor_rule.delete"} <= actions


def test_the_default_rules_of_a_gauge_once(client, tokens, session):
    _thing, datastream = make_gauge(client, tokens)
    first = client.post(f"{RULES}/defaults", json={"datastream_id": datastream}, headers=tokens("admin"))
    assert first.status_code == 201, first.text
    kinds = [item["kind"]["value"] for item in first.json()["items"]]
    assert kinds == ["threshold", "rate_of_change", "no_data"]
    again = client.post(f"{RULES}/defaults", json={"datastream_id": datastream}, headers=tokens("admin"))
    assert [item["id"] for item in again.json()["items"]] == [item["id"] for item in first.json()["items"]]
    assert row_count(session, SensorRule) == 3


def test_bad_rules_are_refused_naming_the_field_and_nothing_is_stored(client, tokens, session):
    _thing, datastream = make_gauge(client, tokens, levels={"siaga": 300})
    headers = tokens("admin")
    base = {"kind": "threshold", "datastream_id": datastream, "category": "banjir", "level": "siaga"}
    cases = [
        ({**base, "kind": "magic"}, "kind"),
        ({**base, "datastream_id": 999999}, "datastream_id"),
        ({**base, "category": "nope"}, "category"),
        ({**base, "level": "merah"}, "level"),
        ({**base, "level": None}, "level"),
        ({**base, "escalate_level": "awas"}, "escalate_threshold"),  # the Datastream has no awas level
        ({**base, "escalate_level": "waspada"}, "escalate_level"),
        ({**base, "clear_threshold": 400}, "clear_threshold"),
        ({**base, "level": "waspada"}, "threshold"),  # no waspada level, no threshold given
        ({**base, "duration_minutes": -1}, "duration_minutes"),
        ({**base, "title": "<b>Banjir</b>"}, "title"),
        (
            {"kind": "rate_of_change", "datastream_id": datastream, "category": "banjir", "level": "waspada"},
            "threshold",
        ),
        (
            {
                "kind": "rate_of_change",
                "datastream_id": datastream,
                "category": "banjir",
                "level": "waspada",
                "threshold": -5,
            },
            "threshold",
        ),  # fmt: skip
        ({"kind": "no_data", "datastream_id": datastream, "category": "banjir"}, "category"),
        ({"kind": "device_offline"}, "thing_id"),
    ]
    for body, field in cases:
        problem = assert_problem(client.post(RULES, json=body, headers=headers), 422)
        assert field in str(problem.get("errors")), (body, problem)
    # JSON's NaN, and a field that does not exist
    refused = client.post(RULES, content=b'{"kind": "threshold", "threshold": NaN}', headers={
        **headers, "content-type": "application/json"})  # fmt: skip
    assert refused.status_code == 422
    assert_problem(client.post(RULES, json={**base, "colour": "red"}, headers=headers), 422)
    assert row_count(session, SensorRule) == 0
    # what a rule watches does not change
    rule = client.post(RULES, json=base, headers=headers).json()
    problem = assert_problem(client.patch(f"{RULES}/{rule['id']}", json={"kind": "no_data"}, headers=headers), 422)
    assert "kind" in str(problem["errors"])


def test_only_staff_with_sensors_rules_may_see_or_change_rules(client, tokens, session, make_user):
    _thing, datastream = make_gauge(client, tokens)
    body = {"kind": "no_data", "datastream_id": datastream}
    for method, path in (("get", RULES), ("post", RULES), ("get", f"{RULES}/1"), ("delete", f"{RULES}/1")):
        assert_problem(client.request(method, path, json=body if method == "post" else None), 401)
    for name in ("pupr_staff", "pimpinan"):
        assert_problem(client.get(RULES, headers=tokens(name)), 403)
        assert_problem(client.post(RULES, json=body, headers=tokens(name)), 403)
    assert row_count(session, SensorRule) == 0
    operator = bearer(new_api_token(session, make_user("operator", "operator")))
    made = client.post(RULES, json=body, headers=operator)
    assert made.status_code == 201, made.text
    assert_problem(client.delete(f"{RULES}/{made.json()['id']}", headers=tokens("pupr_staff")), 403)
    assert client.get(RULES, headers=operator).json()["count"] == 1


def test_the_console_lists_creates_edits_and_disables_rules(client, tokens, session, staff):
    _thing, datastream = make_gauge(client, tokens)
    # an OPD's staff do not get the page
    staff("pupr_staff")
    post_login(client, "pupr.staff")
    assert client.get("/konsol/sensor/aturan").status_code == 403
    client.cookies.clear()
    staff("admin")
    post_login(client, "admin")
    page = client.get("/konsol/sensor/aturan")
    assert page.status_code == 200 and "Siaga" not in page.text
    token = csrf_from(client, "/konsol/sensor/aturan/baru")
    form = {"csrf_token": token, "kind": "threshold", "datastream_id": str(datastream), "category": "banjir",
            "level": "siaga", "clear_level": "waspada", "threshold": "abc", "enabled": "on"}  # fmt: skip
    refused = client.post("/konsol/sensor/aturan/baru", data=form)
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
    assert row_count(session, SensorRule) == 0
    form["threshold"] = ""
    made = client.post("/konsol/sensor/aturan/baru", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    location = made.headers["location"].split("?")[0]
    rule_page = client.get(location)
    assert rule_page.status_code == 200 and "300" in rule_page.text
    saved = client.post(location, data={**form, "csrf_token": csrf_from(client, location), "duration_minutes": "20"},
                        follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303
    session.rollback()
    rule = session.scalars(sa.select(SensorRule)).one()
    assert rule.duration_minutes == 20
    client.post(f"{location}/aktif", data={"csrf_token": csrf_from(client, location), "enabled": "0"})
    assert stored(session, sa.select(SensorRule.enabled)) is False
    listing = client.get("/konsol/sensor/aturan")
    assert rule.name in listing.text
    # without the CSRF token nothing changes
    assert client.post(f"{location}/hapus", data={}).status_code == 403
    assert client.post(f"{location}/hapus", data={"csrf_token": csrf_from(client, location)}).status_code == 200
    assert row_count(session, SensorRule) == 0
