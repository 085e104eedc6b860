"""The OPD API: public reads, admin writes with a Bearer token, problem+json errors in the caller's language."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import assert_problem, bearer, new_api_token, row_count, stored, translated
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.agencies import service as agencies
from kotacerdas.agencies.models import Agency

ACTOR = accounts.Actor.system("test")
DUPLICATE = "Another OPD already has this short name."


def agency_count(session) -> int:
    return row_count(session, Agency)


@pytest.fixture
def seeded(session, settings) -> int:
    count = agencies.seed_default_agencies(session, settings=settings, actor=ACTOR)
    session.commit()
    return count


def test_anyone_can_list_agencies_page_by_page(client, seeded):
    response = client.get("/api/v1/agencies", params={"per_page": 5, "page": 2})

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["page"], body["per_page"], len(body["items"])) == (seeded, 2, 5, 5)
    assert {"id", "name", "short_name", "kind", "kind_label", "active"} <= set(body["items"][0])


def test_list_filters_by_kind_and_text(client, seeded):
    badan = client.get("/api/v1/agencies", params={"kind": "badan", "per_page": 200}).json()
    found = client.get("/api/v1/agencies", params={"q": "pekerjaan umum"}).json()

    assert badan["items"] and {item["kind"] for item in badan["items"]} == {"badan"}
    assert "BPBD" in {item["short_name"] for item in badan["items"]}
    assert [item["short_name"] for item in found["items"]] == ["Dinas PUPR"]


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"per_page": 0}, {"per_page": 201}, {"kind": "kementerian"}, {"q": "x" * 101}, {"active": "mungkin"}],
)
def test_bad_list_parameters_are_422(client, params):
    assert_problem(client.get("/api/v1/agencies", params=params), 422)


def test_get_one_agency_or_404(client, seeded, session):
    pupr = agencies.get_agency_by_short_name(session, short_name="Dinas PUPR")

    assert client.get(f"/api/v1/agencies/{pupr.id}").json()["name"] == "Dinas Pekerjaan Umum dan Penataan Ruang"
    assert_problem(client.get("/api/v1/agencies/99999"), 404)
    assert_problem(client.get("/api/v1/agencies/0"), 422)
    assert_problem(client.get(f"/api/v1/agencies/{2**31}"), 422)


def test_admin_token_creates_an_agency_and_the_change_is_audited(client, auth_headers, session):
    response = client.post(
        "/api/v1/agencies",
        json={"name": "Dinas Ketahanan Pangan", "short_name": "DKP", "kind": "dinas", "phone": "0733-451"},
        headers=auth_headers,
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["short_name"], created["active"], created["kind_label"]) == ("DKP", True, "Dinas")
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "agency.create"))
    assert entry.entity_id == str(created["id"])
    assert entry.actor_label == "tokenadmin"
    assert entry.after["short_name"] == "DKP"


def test_duplicate_short_name_is_409_in_the_callers_language_and_nothing_is_stored(
    client, auth_headers, session, seeded
):
    body = {"name": "Dinas Kominfo Kedua", "short_name": "diskominfo", "kind": "dinas"}

    default = assert_problem(client.post("/api/v1/agencies", json=body, headers=auth_headers), 409)
    english = assert_problem(
        client.post("/api/v1/agencies", json=body, headers={**auth_headers, "Accept-Language": "en"}), 409
    )
    query = assert_problem(client.post("/api/v1/agencies?lang=en", json=body, headers=auth_headers), 409)

    assert default["detail"] == translated(DUPLICATE, "id") == "Nama singkat ini sudah dipakai OPD lain."
    assert english["detail"] == query["detail"] == DUPLICATE
    assert default["errors"] == [{"field": "short_name", "reason": "taken"}]
    assert agency_count(session) == seeded


def test_patch_changes_only_the_fields_sent(client, auth_headers, session, seeded):
    dlh = agencies.get_agency_by_short_name(session, short_name="DLH")
    agencies.update_agency(session, actor=ACTOR, agency_id=dlh.id, email="dlh@musirawaskab.go.id", phone="1")
    session.commit()

    response = client.patch(f"/api/v1/agencies/{dlh.id}", json={"email": None, "active": False}, headers=auth_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["email"], body["phone"], body["active"], body["name"]) == (None, "1", False, "Dinas Lingkungan Hidup")
    entry = stored(
        session, sa.select(AuditEntry).where(AuditEntry.entity_id == str(dlh.id)).order_by(AuditEntry.id.desc())
    )
    assert entry.action == "agency.deactivate"
    assert entry.before["email"] == "dlh@musirawaskab.go.id" and entry.after["email"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"kind": "kementerian"},
        {"parent_id": 0},
        {"website": "ftp://x"},
        {"unknown": 1},
        {"name": ""},
        {"name": "Dinas\x00PUPR"},
        {"address": "Jl.\x07 Merdeka"},
    ],
)
def test_patch_with_bad_values_is_422_and_changes_nothing(client, auth_headers, session, seeded, body):
    pupr = agencies.get_agency_by_short_name(session, short_name="Dinas PUPR")

    assert_problem(client.patch(f"/api/v1/agencies/{pupr.id}", json=body, headers=auth_headers), 422)

    assert stored(session, sa.select(Agency.name).where(Agency.id == pupr.id)) == (
        "Dinas Pekerjaan Umum dan Penataan Ruang"
    )


def test_patch_refuses_a_parent_loop(client, auth_headers, session):
    dinas = agencies.create_agency(session, actor=ACTOR, name="Dinas PUPR", short_name="Dinas PUPR", kind="dinas")
    upt = agencies.create_agency(
        session, actor=ACTOR, name="UPT Jalan", short_name="UPT Jalan", kind="upt", parent_id=dinas.id
    )
    session.commit()

    body = assert_problem(
        client.patch(f"/api/v1/agencies/{dinas.id}", json={"parent_id": upt.id}, headers=auth_headers), 422
    )

    assert body["errors"] == [{"field": "parent_id", "reason": "cycle"}]


def test_writes_need_a_login_and_the_permission(client, session, make_user):
    dinsos = agencies.create_agency(session, actor=ACTOR, name="Dinas Sosial", short_name="Dinsos", kind="dinas")
    staff = bearer(new_api_token(session, make_user("staf", "opd_staff", dinsos.id)))
    body = {"name": "Badan Baru", "short_name": "Baru", "kind": "badan"}

    assert_problem(client.post("/api/v1/agencies", json=body), 401)
    assert_problem(client.post("/api/v1/agencies", json=body, headers=staff), 403)
    assert_problem(client.patch("/api/v1/agencies/1", json={"active": False}, headers=staff), 403)
    assert_problem(client.post("/api/v1/agencies", json=body, headers={"Authorization": "Bearer kc_palsu"}), 401)
    assert agency_count(session) == 1


def test_odd_search_text_is_answered_not_crashed_on(client, auth_headers, session, seeded):
    for q in ("\x00", "%", "_", "\\", "Dinas\x00PUPR"):
        assert client.get("/api/v1/agencies", params={"q": q}).status_code == 200, repr(q)
    # Letters outside ASCII: the unique short name is still found, whatever the database folds.
    body = {"name": "Dinas Ó", "short_name": "Ó-Dinas", "kind": "dinas"}
    assert client.post("/api/v1/agencies", json=body, headers=auth_headers).status_code == 201
    assert_problem(client.post("/api/v1/agencies", json=body, headers=auth_headers), 409)
    assert agency_count(session) == seeded + 1
