"""The accounts API: the current user, staff accounts, own API tokens, the audit log; Bearer and cookie auth."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import (
    TEST_PASSWORD,
    assert_problem,
    bearer,
    csrf_from,
    new_api_token,
    post_login,
    row_count,
    stored,
    translated,
)
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import AuditEntry, User

ACTOR = accounts.Actor.system("test")
TAKEN = "That username is already taken."


def user_count(session) -> int:
    return row_count(session, User)


@pytest.fixture
def staff_headers(session, make_user, agency) -> dict[str, str]:
    return bearer(new_api_token(session, make_user("staf", "opd_staff", agency.id)))


def test_me_answers_who_holds_the_token(client, auth_headers):
    body = client.get("/api/v1/me", headers=auth_headers).json()

    assert (body["username"], body["role"], body["active"]) == ("tokenadmin", "admin", True)
    assert "users.manage" in body["permissions"]
    assert "password_hash" not in body


def test_me_without_a_login_is_401_problem(client):
    body = assert_problem(client.get("/api/v1/me"), 401)

    assert body["type"] == "urn:kotacerdas:problem:not-authenticated"


def test_admin_creates_a_user_and_the_hash_stays_hidden(client, auth_headers, session, agency):
    response = client.post(
        "/api/v1/users",
        json={
            "username": "staf.pupr",
            "full_name": "Staf PUPR",
            "password": TEST_PASSWORD,
            "role": "opd_staff",
            "agency_id": agency.id,
            "email": "staf@musirawaskab.go.id",
        },
        headers=auth_headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["username"], body["agency_id"], body["role_label"]) == ("staf.pupr", agency.id, "Staf OPD")
    assert "password" not in response.text and "$argon2" not in response.text
    entry = stored(
        session,
        sa.select(AuditEntry).where(AuditEntry.action == "user.create", AuditEntry.entity_id == str(body["id"])),
    )
    assert entry.actor_label == "tokenadmin" and "password_hash" not in entry.after
    assert "$argon2" not in str(entry.after)


def test_duplicate_username_is_409_and_nothing_is_stored(client, auth_headers, session):
    body = {"username": "tokenadmin", "full_name": "Lagi", "password": TEST_PASSWORD, "role": "operator"}
    before = user_count(session)

    default = assert_problem(client.post("/api/v1/users", json=body, headers=auth_headers), 409)
    english = assert_problem(client.post("/api/v1/users?lang=en", json=body, headers=auth_headers), 409)

    assert default["detail"] == translated(TAKEN, "id") == "Nama pengguna itu sudah dipakai."
    assert english["detail"] == TAKEN
    assert user_count(session) == before


def test_opd_role_without_agency_is_422(client, auth_headers, session):
    body = {"username": "staf", "full_name": "Staf", "password": TEST_PASSWORD, "role": "opd_staff"}
    before = user_count(session)

    problem = assert_problem(client.post("/api/v1/users", json=body, headers=auth_headers), 422)

    assert problem["errors"] == [{"field": "agency_id", "reason": "required"}]
    english = client.post("/api/v1/users", json=body, headers={**auth_headers, "Accept-Language": "en"}).json()
    assert english["detail"] == "OPD roles need an OPD."
    assert user_count(session) == before


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "full_name": "X", "password": TEST_PASSWORD, "role": "admin"},
        {"username": "budi", "full_name": "X", "password": "pendek", "role": "admin"},
        {"username": "budi", "full_name": "X", "password": TEST_PASSWORD, "role": "raja"},
        {"username": "budi", "full_name": "X", "password": TEST_PASSWORD, "role": "admin", "password_hash": "x"},
        {"username": "budi", "full_name": "X", "password": TEST_PASSWORD, "role": "admin", "agency_id": 0},
    ],
)
def test_bad_user_bodies_are_422(client, auth_headers, body):
    assert_problem(client.post("/api/v1/users", json=body, headers=auth_headers), 422)


def test_patch_deactivates_a_user_and_audits_before_and_after(client, auth_headers, session, make_user):
    user = make_user("operator", "operator")

    response = client.patch(f"/api/v1/users/{user.id}", json={"active": False}, headers=auth_headers)

    assert response.status_code == 200 and response.json()["active"] is False
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert (entry.entity_id, entry.before["active"], entry.after["active"]) == (str(user.id), True, False)
    assert client.get(f"/api/v1/users/{user.id}", headers=auth_headers).json()["active"] is False
    assert_problem(client.get("/api/v1/users/99999", headers=auth_headers), 404)


def test_patch_password_resets_it_without_logging_it(client, auth_headers, session, make_user, settings):
    user = make_user("operator", "operator")

    response = client.patch(f"/api/v1/users/{user.id}", json={"password": "sandi-baru-123"}, headers=auth_headers)

    assert response.status_code == 200
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert entry.after["password"] == "changed"
    assert "sandi-baru-123" not in str(entry.after) and "$argon2" not in str(entry.after)
    assert accounts.login(session, settings=settings, username="operator", password="sandi-baru-123", ip="x")


def test_list_users_filters_and_bounds(client, auth_headers, make_user):
    make_user("operator", "operator")

    body = client.get("/api/v1/users", params={"role": "operator"}, headers=auth_headers).json()

    assert [item["username"] for item in body["items"]] == ["operator"] and body["total"] == 1
    for params in ({"per_page": 0}, {"per_page": 201}, {"page": 0}, {"agency_id": 2**31}, {"role": "raja"}):
        assert_problem(client.get("/api/v1/users", params=params, headers=auth_headers), 422)


def test_agency_staff_get_403_on_admin_endpoints(client, staff_headers):
    assert client.get("/api/v1/me", headers=staff_headers).json()["role"] == "opd_staff"
    assert_problem(client.get("/api/v1/users", headers=staff_headers), 403)
    assert_problem(client.get("/api/v1/users/1", headers=staff_headers), 403)
    assert_problem(client.patch("/api/v1/users/1", json={"active": False}, headers=staff_headers), 403)
    body = {"username": "x.y", "full_name": "X", "password": TEST_PASSWORD, "role": "admin"}
    assert_problem(client.post("/api/v1/users", json=body, headers=staff_headers), 403)
    assert_problem(client.get("/api/v1/audit", headers=staff_headers), 403)


def test_token_lifecycle_create_use_list_revoke(client, staff_headers, session):
    created = client.post("/api/v1/tokens", json={"name": "Integrasi SIMDA"}, headers=staff_headers)

    assert created.status_code == 201, created.text
    new = created.json()
    assert new["token"].startswith(new["prefix"]) and new["revoked_at"] is None
    assert client.get("/api/v1/me", headers=bearer(new["token"])).json()["username"] == "staf"
    listed = client.get("/api/v1/tokens", headers=staff_headers)
    assert [token["name"] for token in listed.json()] == ["Integrasi SIMDA", "test"]
    assert "token_hash" not in listed.text and new["token"] not in listed.text

    revoked = client.delete(f"/api/v1/tokens/{new['id']}", headers=bearer(new["token"]))

    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_problem(client.get("/api/v1/me", headers=bearer(new["token"])), 401)
    assert_problem(client.post("/api/v1/tokens", json={"name": "x"}, headers=bearer(new["token"])), 401)
    actions = stored(session, sa.select(sa.func.count()).where(AuditEntry.entity_type == "api_token"))
    assert actions == 3  # the fixture's token, this one's creation and its revocation


def test_only_an_admin_revokes_someone_elses_token(client, staff_headers, auth_headers, session):
    new = client.post("/api/v1/tokens", json={"name": "punya staf"}, headers=staff_headers).json()
    admin_token = client.post("/api/v1/tokens", json={"name": "punya admin"}, headers=auth_headers).json()

    assert_problem(client.delete(f"/api/v1/tokens/{admin_token['id']}", headers=staff_headers), 404)
    assert client.delete(f"/api/v1/tokens/{new['id']}", headers=auth_headers).status_code == 200
    assert_problem(client.get("/api/v1/me", headers=bearer(new["token"])), 401)
    assert client.get("/api/v1/me", headers=bearer(admin_token["token"])).status_code == 200


def test_token_name_is_checked(client, auth_headers):
    assert_problem(client.post("/api/v1/tokens", json={"name": ""}, headers=auth_headers), 422)
    assert_problem(client.post("/api/v1/tokens", json={"name": "x" * 101}, headers=auth_headers), 422)
    assert_problem(client.post("/api/v1/tokens", json={"name": "   "}, headers=auth_headers), 422)
    assert_problem(client.post("/api/v1/tokens", json={"name": "a\x00b"}, headers=auth_headers), 422)
    assert_problem(client.delete(f"/api/v1/tokens/{2**31}", headers=auth_headers), 422)


def test_audit_lists_changes_newest_first_with_filters(client, auth_headers, make_user):
    user = make_user("operator", "operator")
    client.patch(f"/api/v1/users/{user.id}", json={"full_name": "Operator BPBD"}, headers=auth_headers)

    body = client.get(
        "/api/v1/audit", params={"entity_type": "user", "entity_id": str(user.id)}, headers=auth_headers
    ).json()

    assert [item["action"] for item in body["items"]] == ["user.update", "user.create"]
    update = body["items"][0]
    assert (update["before"]["full_name"], update["after"]["full_name"]) == ("Operator", "Operator BPBD")
    assert update["actor_label"] == "tokenadmin"
    assert client.get("/api/v1/audit", params={"action": "user.update"}, headers=auth_headers).json()["total"] == 1
    for params in ({"actor_id": 0}, {"entity_type": "x" * 41}, {"per_page": 500}):
        assert_problem(client.get("/api/v1/audit", params=params, headers=auth_headers), 422)


def test_cookie_login_needs_the_csrf_header_for_json_writes(client, make_user, session):
    make_user("admin", "admin")
    post_login(client, "admin")
    page_token = csrf_from(client, "/konsol/token")

    assert client.get("/api/v1/me").json()["username"] == "admin"
    refused = assert_problem(client.post("/api/v1/tokens", json={"name": "tanpa csrf"}), 403)
    assert refused["type"] == "urn:kotacerdas:problem:csrf-failed"
    assert_problem(client.post("/api/v1/tokens", json={"name": "palsu"}, headers={"X-CSRF-Token": "0" * 64}), 403)
    accepted = client.post("/api/v1/tokens", json={"name": "dengan csrf"}, headers={"X-CSRF-Token": page_token})
    assert accepted.status_code == 201
    assert stored(session, sa.select(sa.func.count()).where(AuditEntry.action == "api_token.create")) == 1


def test_odd_filter_text_is_answered_not_crashed_on(client, auth_headers):
    for params in ({"q": "\x00"}, {"q": "%_\\"}, {"role": "admin"}):
        assert client.get("/api/v1/users", params=params, headers=auth_headers).status_code == 200, params
    for params in ({"entity_type": "\x00"}, {"action": "a\x00"}, {"entity_id": "\x00"}):
        assert client.get("/api/v1/audit", params=params, headers=auth_headers).status_code == 200, params


def test_a_token_s_first_use_is_recorded_even_on_a_read(client, session, make_user):
    user = make_user("pemakai", "operator")
    token, plain = accounts.create_api_token(session, actor=ACTOR, user_id=user.id, name="sensor")
    session.commit()
    assert token.last_used_at is None

    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 200

    session.expire_all()
    assert session.get(type(token), token.id).last_used_at is not None
