"""Accounts pages: login and logout, expired sessions, CSRF, staff accounts, own API tokens, the audit log."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import CSRF, TEST_PASSWORD, csrf_from, post_login, row_count, stored, translated
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import ApiToken, AuditEntry, LoginAttempt, User, UserSession
from kotacerdas.db import utcnow

ACTOR = accounts.Actor.system("test")


@pytest.fixture
def english(client):
    client.cookies.set("kc_lang", "en")  # the visitor chose English
    return client


@pytest.fixture
def admin_client(english, make_user):
    make_user("admin", "admin")
    assert post_login(english, "admin").status_code == 303
    return english


# --- log in and out --------------------------------------------------------------------------------------------


def test_login_page_is_an_accessible_form(english):
    page = english.get("/masuk", params={"next": "/konsol/audit"})

    assert page.status_code == 200
    for field in ("login-username", "login-password"):
        assert f'<label for="{field}">' in page.text and f'id="{field}"' in page.text
    assert 'name="csrf_token"' in page.text and 'name="next" value="/konsol/audit"' in page.text
    assert english.cookies.get("kc_csrf")


def test_login_sets_a_safe_cookie_and_goes_to_next(english, make_user, session):
    make_user("admin", "admin")

    response = post_login(english, "admin", next_url="/konsol/token")

    assert response.status_code == 303 and response.headers["location"] == "/konsol/token"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("kc_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert english.get("/konsol/token").status_code == 200
    assert row_count(session, LoginAttempt, LoginAttempt.succeeded.is_(True)) == 1


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/", "/\\evil.example", "konsol", "", "/masuk?next=/x"]
)
def test_login_never_redirects_off_site(english, make_user, next_url):
    make_user("admin", "admin")

    response = post_login(english, "admin", next_url=next_url)

    assert response.status_code == 303 and response.headers["location"] == "/konsol"


def test_wrong_password_is_401_and_the_attempt_is_stored(english, make_user, session):
    make_user("admin", "admin")

    response = post_login(english, "admin", password="bukan-ini")

    assert response.status_code == 401
    assert 'role="alert"' in response.text and "The username or password is wrong." in response.text
    assert 'value="admin"' in response.text and "kc_session" not in response.headers.get("set-cookie", "")
    assert row_count(session, LoginAttempt, LoginAttempt.username == "admin", LoginAttempt.succeeded.is_(False)) == 1


def test_login_with_a_nul_in_the_username_is_just_wrong(english, make_user, session):
    make_user("admin", "admin")

    assert post_login(english, "ad\x00min", password="bukan-ini").status_code == 401
    assert post_login(english, "\x00", password="bukan-ini").status_code == 401


def test_wrong_password_message_is_indonesian_by_default(client, make_user):
    make_user("admin", "admin")
    expected = translated("The username or password is wrong.", "id")

    response = post_login(client, "admin", password="bukan-ini")

    assert expected == "Nama pengguna atau kata sandi salah."
    assert response.status_code == 401 and expected in response.text
    assert response.headers["content-language"] == "id"


def test_sixth_failed_login_is_429(english, make_user, settings, session):
    make_user("admin", "admin")
    for _ in range(settings.login_max_failures):
        assert post_login(english, "admin", password="bukan-ini").status_code == 401

    response = post_login(english, "admin")

    assert response.status_code == 429
    assert "Too many failed logins" in response.text and 'role="alert"' in response.text
    assert response.headers["retry-after"] == str(settings.login_window_minutes * 60)
    assert row_count(session, LoginAttempt) == settings.login_max_failures


@pytest.mark.parametrize("token", [None, "forged"])
def test_login_with_a_forged_or_missing_csrf_token_is_403_and_stores_nothing(english, make_user, session, token):
    make_user("admin", "admin")
    english.get("/masuk")
    data = {"username": "admin", "password": TEST_PASSWORD}
    if token is not None:
        data["csrf_token"] = token

    response = english.post("/masuk", data=data, follow_redirects=False)

    assert response.status_code == 403
    assert row_count(session, LoginAttempt) == 0 and row_count(session, UserSession) == 0


def test_expired_session_sends_to_login_with_a_message(admin_client, session):
    session.execute(sa.update(UserSession).values(expires_at=utcnow() - timedelta(minutes=1)))
    session.commit()

    response = admin_client.get("/konsol/token", follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"] == "/masuk?next=/konsol/token"
    login_page = admin_client.get(response.headers["location"])
    assert "Your session has expired. Please log in again." in login_page.text
    assert 'name="next" value="/konsol/token"' in login_page.text
    # The stale cookie is dropped, so the message is not repeated.
    assert "expired" not in admin_client.get("/masuk").text


def test_a_session_in_use_is_extended_after_the_page_is_served(admin_client, session, settings):
    long_ago = utcnow() - timedelta(minutes=10)
    session.execute(sa.update(UserSession).values(last_seen_at=long_ago, expires_at=long_ago + timedelta(hours=1)))
    session.commit()

    assert admin_client.get("/konsol/token").status_code == 200

    session.expire_all()
    row = session.scalar(sa.select(UserSession))
    assert row.last_seen_at > long_ago + timedelta(minutes=9)
    assert row.expires_at > utcnow() + timedelta(hours=settings.session_hours - 1)


def test_logout_ends_the_session(admin_client, session):
    token = csrf_from(admin_client, "/konsol/token")

    response = admin_client.post("/keluar", data={"csrf_token": token}, follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"] == "/"
    assert 'kc_session=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    assert row_count(session, UserSession, UserSession.revoked_at.is_(None)) == 0
    assert row_count(session, AuditEntry, AuditEntry.action == "user.logout") == 1
    assert admin_client.get("/konsol/token", follow_redirects=False).status_code == 303


def test_logout_with_a_forged_csrf_token_is_403_and_keeps_the_session(admin_client, session):
    response = admin_client.post("/keluar", data={"csrf_token": "forged"}, follow_redirects=False)

    assert response.status_code == 403
    assert row_count(session, UserSession, UserSession.revoked_at.is_(None)) == 1
    assert admin_client.get("/konsol/token").status_code == 200


# --- staff accounts --------------------------------------------------------------------------------------------


def new_user_form(token: str, **values) -> dict[str, str]:
    return {
        "username": "staf.pupr",
        "full_name": "Staf PUPR",
        "email": "",
        "role": "opd_staff",
        "agency_id": "",
        "password": TEST_PASSWORD,
        "csrf_token": token,
        **values,
    }


def test_admin_creates_a_user_from_the_form(admin_client, session, agency):
    token = csrf_from(admin_client, "/konsol/pengguna")

    response = admin_client.post(
        "/konsol/pengguna", data=new_user_form(token, agency_id=str(agency.id)), follow_redirects=False
    )

    assert response.status_code == 303
    user = stored(session, sa.select(User).where(User.username == "staf.pupr"))
    assert response.headers["location"] == f"/konsol/pengguna/{user.id}?saved=1"
    assert (user.role, user.agency_id) == ("opd_staff", agency.id)
    listing = admin_client.get("/konsol/pengguna")
    assert "staf.pupr" in listing.text and "Dinas PUPR" in listing.text and "Agency staff" in listing.text


def test_opd_role_without_agency_in_the_form_is_422_with_the_values(admin_client, session):
    token = csrf_from(admin_client, "/konsol/pengguna")

    response = admin_client.post("/konsol/pengguna", data=new_user_form(token))

    assert response.status_code == 422
    assert "OPD roles need an OPD." in response.text and 'role="alert"' in response.text
    assert 'value="staf.pupr"' in response.text and TEST_PASSWORD not in response.text
    assert row_count(session, User) == 1


def test_duplicate_username_in_the_form_is_409(admin_client, session):
    token = csrf_from(admin_client, "/konsol/pengguna")

    response = admin_client.post("/konsol/pengguna", data=new_user_form(token, username="ADMIN", role="operator"))

    assert response.status_code == 409 and "That username is already taken." in response.text
    assert row_count(session, User) == 1


def test_user_form_with_a_forged_csrf_token_is_403_and_stores_nothing(admin_client, session):
    response = admin_client.post(
        "/konsol/pengguna", data=new_user_form("forged", role="operator"), follow_redirects=False
    )

    assert response.status_code == 403
    assert row_count(session, User) == 1 and row_count(session, AuditEntry, AuditEntry.action == "user.create") == 1


def test_admin_edits_and_deactivates_a_user(admin_client, session, make_user):
    user = make_user("operator", "operator")
    page = admin_client.get(f"/konsol/pengguna/{user.id}")
    token = CSRF.search(page.text).group(1)

    response = admin_client.post(
        f"/konsol/pengguna/{user.id}",
        data={"full_name": "Operator BPBD", "email": "", "role": "operator", "agency_id": "", "csrf_token": token},
        follow_redirects=False,
    )

    assert response.status_code == 303
    saved = stored(session, sa.select(User).where(User.id == user.id))
    assert (saved.full_name, saved.active) == ("Operator BPBD", False)
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert entry.before["active"] is True and entry.after["active"] is False
    assert entry.after["full_name"] == "Operator BPBD"


def test_admin_cannot_lock_everyone_out(admin_client, session):
    admin = stored(session, sa.select(User).where(User.username == "admin"))
    token = csrf_from(admin_client, f"/konsol/pengguna/{admin.id}")

    response = admin_client.post(
        f"/konsol/pengguna/{admin.id}",
        data={"full_name": "Admin", "role": "admin", "agency_id": "", "csrf_token": token},
    )

    assert response.status_code == 409 and "last active administrator" in response.text
    assert stored(session, sa.select(User.active).where(User.id == admin.id)) is True


def test_password_reset_from_the_form_is_audited_without_the_hash(admin_client, session, make_user, settings):
    user = make_user("operator", "operator")
    token = csrf_from(admin_client, f"/konsol/pengguna/{user.id}")

    short = admin_client.post(f"/konsol/pengguna/{user.id}/sandi", data={"password": "pendek", "csrf_token": token})
    response = admin_client.post(
        f"/konsol/pengguna/{user.id}/sandi",
        data={"password": "sandi-baru-123", "csrf_token": token},
        follow_redirects=False,
    )

    assert short.status_code == 422 and "at least 8 characters" in short.text
    assert response.status_code == 303
    assert "The password has been changed." in admin_client.get(response.headers["location"]).text
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert entry.after["password"] == "changed"
    hashes = stored(session, sa.select(User.password_hash).where(User.id == user.id))
    audit = str(session.execute(sa.select(AuditEntry.before, AuditEntry.after)).all())
    assert hashes not in audit and "sandi-baru-123" not in audit and "$argon2" not in audit
    assert accounts.login(session, settings=settings, username="operator", password="sandi-baru-123", ip="x")


def test_agency_staff_get_403_on_admin_pages(english, make_user, agency):
    make_user("staf", "opd_staff", agency.id)
    post_login(english, "staf")

    for url in ("/konsol/pengguna", "/konsol/pengguna/1", "/konsol/audit"):
        assert english.get(url).status_code == 403, url
    assert english.get("/konsol/token").status_code == 200


# --- API tokens ------------------------------------------------------------------------------------------------


def test_token_page_shows_a_new_token_once_and_revokes_it(admin_client, session):
    token = csrf_from(admin_client, "/konsol/token")

    created = admin_client.post("/konsol/token", data={"name": "Integrasi SIMDA", "csrf_token": token})

    assert created.status_code == 201
    plain = re.search(r"<code>(kc_[^<]+)</code>", created.text).group(1)
    assert admin_client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    again = admin_client.get("/konsol/token")
    assert "Integrasi SIMDA" in again.text and plain not in again.text
    row = stored(session, sa.select(ApiToken).where(ApiToken.name == "Integrasi SIMDA"))

    revoked = admin_client.post(f"/konsol/token/{row.id}/cabut", data={"csrf_token": token}, follow_redirects=False)

    assert revoked.status_code == 303
    assert admin_client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 401


def test_token_page_refuses_an_empty_name_and_forged_csrf(admin_client, session):
    token = csrf_from(admin_client, "/konsol/token")

    empty = admin_client.post("/konsol/token", data={"name": " ", "csrf_token": token})
    forged = admin_client.post("/konsol/token", data={"name": "x", "csrf_token": "forged"})

    assert empty.status_code == 422 and 'role="alert"' in empty.text
    assert forged.status_code == 403
    assert row_count(session, ApiToken) == 0


# --- audit log -------------------------------------------------------------------------------------------------


def test_audit_page_lists_who_did_what_when(admin_client, session, make_user):
    user = make_user("operator", "operator")
    accounts.update_user(session, actor=ACTOR, user_id=user.id, full_name="Operator BPBD")
    session.commit()

    page = admin_client.get("/konsol/audit", params={"entity_type": "user", "entity_id": str(user.id)})

    assert page.status_code == 200
    assert "user.update" in page.text and "user.create" in page.text and "user.login" not in page.text
    assert "Operator BPBD" in page.text and "WIB" in page.text
    assert "password_hash" not in page.text and "$argon2" not in page.text
    everything = admin_client.get("/konsol/audit", params={"per_page": 2})
    assert 'rel="next"' in everything.text


def test_leadership_reads_the_audit_log(english, make_user):
    make_user("bupati", "pimpinan")
    post_login(english, "bupati")

    assert english.get("/konsol/audit").status_code == 200
    assert english.get("/konsol/pengguna").status_code == 403
