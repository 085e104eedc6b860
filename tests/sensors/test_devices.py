"""Device management: the devices an OPD manages with their health, and device keys issued in the console and the
API, with the OPD-scoped permissions of `sensors.manage` (RBAC on device management, issue 6)."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from conftest import TEST_PASSWORD, assert_problem, csrf_from, post_login
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.db import utcnow
from kotacerdas.sensors.models import Thing

from .test_sensorthings import ROOT, create, first_datastream, gauge, observations


def pupr_gauge(client, tokens) -> dict:
    return create(client, tokens("pupr_staff"), "/Things", gauge("Pos duga air Kelingi"))


def test_opd_staff_see_their_own_devices_and_an_admin_sees_all(client, tokens, session):
    pupr = pupr_gauge(client, tokens)
    dlh = create(client, tokens("dlh_staff"), "/Things", gauge("Stasiun udara Tugumulyo"))
    session.execute(
        sa.update(Thing).where(Thing.id == pupr["@iot.id"]).values(last_seen_at=utcnow(), battery_percent=81.0)
    )
    session.execute(
        sa.update(Thing).where(Thing.id == dlh["@iot.id"]).values(last_seen_at=utcnow() - timedelta(hours=3))
    )
    session.commit()

    mine = client.get("/api/v1/sensors/devices", headers=tokens("pupr_staff")).json()
    assert [device["name"] for device in mine] == ["Pos duga air Kelingi"]
    assert mine[0]["offline"] is False and mine[0]["battery_percent"] == 81.0 and mine[0]["datastreams"] == 1
    every = client.get("/api/v1/sensors/devices", headers=tokens("admin")).json()
    by_name = {device["name"]: device for device in every}
    assert set(by_name) == {"Pos duga air Kelingi", "Stasiun udara Tugumulyo"}
    # Silent for three hours, beyond the default hour: offline.
    assert by_name["Stasiun udara Tugumulyo"]["offline"] is True
    assert "device_key_hash" not in by_name["Pos duga air Kelingi"]


def test_a_new_key_works_once_issued_the_old_one_stops_and_only_the_key_id_is_audited(client, tokens, session):
    thing = pupr_gauge(client, tokens)
    datastream = first_datastream(client, thing["@iot.id"])
    first = client.post(f"/api/v1/sensors/devices/{thing['@iot.id']}/key", headers=tokens("pupr_staff"))
    assert first.status_code == 201, first.text
    assert first.headers["cache-control"] == "no-store"
    key = first.json()
    assert key["key"] == f"{key['key_id']}.{key['mqtt_password']}"
    assert key["mqtt_topic"] == f"kotacerdas/{key['key_id']}/up"

    device = {"Authorization": f"Bearer {key['key']}"}
    posted = client.post(f"{ROOT}/Datastreams({datastream})/Observations", json={"result": 215}, headers=device)
    assert posted.status_code == 201, posted.text
    assert [result for _ds, _t, result in observations(session)] == [215]
    # Heard from over HTTP as over MQTT: its health says online.
    (listed,) = client.get("/api/v1/sensors/devices", headers=tokens("pupr_staff")).json()
    assert listed["offline"] is False and listed["last_seen_at"] is not None

    second = client.post(f"/api/v1/sensors/devices/{thing['@iot.id']}/key", headers=tokens("admin")).json()
    assert second["key_id"] != key["key_id"]
    refused = client.post(f"{ROOT}/Datastreams({datastream})/Observations", json={"result": 1}, headers=device)
    assert refused.status_code == 401
    accepted = client.post(
        f"{ROOT}/Datastreams({datastream})/Observations", json={"result": 216},
        headers={"Authorization": f"Bearer {second['key']}"},
    )  # fmt: skip
    assert accepted.status_code == 201

    session.rollback()
    entries = session.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "sensor.device_key.issue").order_by(AuditEntry.id)
    ).all()
    assert [(entry.before, entry.after) for entry in entries] == [
        ({"device_key_id": None}, {"device_key_id": key["key_id"]}),
        ({"device_key_id": key["key_id"]}, {"device_key_id": second["key_id"]}),
    ]
    assert all(key["mqtt_password"] not in str(entry.after) + str(entry.before) for entry in entries)


def test_a_station_fed_with_a_staff_token_is_heard_from_by_its_readings(client, tokens):
    thing = pupr_gauge(client, tokens)
    datastream = first_datastream(client, thing["@iot.id"])
    (before,) = client.get("/api/v1/sensors/devices", headers=tokens("pupr_staff")).json()
    assert before["offline"] is True and before["last_seen_at"] is None
    posted = client.post(
        f"{ROOT}/Datastreams({datastream})/Observations", json={"result": 199}, headers=tokens("pupr_staff")
    )
    assert posted.status_code == 201
    (after,) = client.get("/api/v1/sensors/devices", headers=tokens("pupr_staff")).json()
    # As the public tile counts it: its newest reading is news of the device.
    assert after["offline"] is False and after["last_seen_at"] is not None


def test_keys_and_device_lists_follow_the_opd_and_the_permission(client, tokens, staff, session):
    thing = pupr_gauge(client, tokens)
    path = f"/api/v1/sensors/devices/{thing['@iot.id']}/key"
    # Another OPD's staff, and a role without sensors.manage: refused, and nothing changes.
    assert_problem(client.post(path, headers=tokens("dlh_staff")), 403)
    assert_problem(client.post(path, headers=tokens("pimpinan")), 403)
    assert_problem(client.get("/api/v1/sensors/devices", headers=tokens("pimpinan")), 403)
    assert_problem(client.post(path), 401)
    assert_problem(client.get("/api/v1/sensors/devices"), 401)
    assert_problem(client.post("/api/v1/sensors/devices/999999/key", headers=tokens("admin")), 404)
    session.rollback()
    assert session.get(Thing, thing["@iot.id"]).device_key_id is None
    # A device key is no staff token: it cannot issue keys either.
    key = client.post(path, headers=tokens("pupr_staff")).json()
    assert_problem(client.post(path, headers={"Authorization": f"Bearer {key['key']}"}), 401)


def test_the_console_lists_devices_and_shows_a_new_key_once(client, tokens, staff):
    thing = pupr_gauge(client, tokens)
    staff("pupr_staff")
    assert post_login(client, "pupr.staff", TEST_PASSWORD).status_code == 303
    listing = client.get("/konsol/sensor")
    assert listing.status_code == 200
    # Never heard from: offline ("Luring" in Indonesian, the default language).
    assert "Pos duga air Kelingi" in listing.text and "Luring" in listing.text
    page_url = f"/konsol/sensor/perangkat/{thing['@iot.id']}"
    token = csrf_from(client, page_url)
    shown = client.post(page_url + "/kunci", data={"csrf_token": token})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    plain = re.search(r'<code id="device-key">([^<]+)</code>', shown.text).group(1)
    key_id, _dot, secret = plain.partition(".")
    # The page with the key already names it as the device's key id (and as the MQTT username).
    assert shown.text.count(f"<code>{key_id}</code>") == 2
    # Shown once: the device's page afterwards names the key id, never the secret.
    again = client.get(page_url).text
    assert key_id in again and secret not in again
    # Without the form's CSRF token nothing is issued.
    assert client.post(page_url + "/kunci", data={}).status_code == 403


def test_the_console_refuses_other_opds_devices_and_roles_without_the_permission(client, tokens, staff, session):
    thing = pupr_gauge(client, tokens)
    own = create(client, tokens("dlh_staff"), "/Things", gauge("Stasiun udara Tugumulyo"))
    staff("pimpinan")
    assert post_login(client, "dlh.staff", TEST_PASSWORD).status_code == 303
    assert client.get(f"/konsol/sensor/perangkat/{thing['@iot.id']}").status_code == 403
    assert client.get("/konsol/sensor/perangkat/999999").status_code == 404
    assert "Pos duga air Kelingi" not in client.get("/konsol/sensor").text
    # No key for another OPD's device, nor for an unknown one, with a valid form.
    token = csrf_from(client, f"/konsol/sensor/perangkat/{own['@iot.id']}")
    refused = client.post(f"/konsol/sensor/perangkat/{thing['@iot.id']}/kunci", data={"csrf_token": token})
    assert refused.status_code == 403
    assert client.post("/konsol/sensor/perangkat/999999/kunci", data={"csrf_token": token}).status_code == 404
    session.rollback()
    assert session.get(Thing, thing["@iot.id"]).device_key_id is None
    client.cookies.clear()
    assert post_login(client, "pimpinan", TEST_PASSWORD).status_code == 303
    assert client.get("/konsol/sensor").status_code == 403
