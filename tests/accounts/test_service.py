"""Accounts through the service: users, logins and their rate limit, sessions, API tokens, the audit log."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import TEST_PASSWORD
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import ApiToken, AuditEntry, LoginAttempt, User, UserSession
from kotacerdas.agencies import service as agencies
from kotacerdas.db import utcnow
from kotacerdas.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, RateLimited
from kotacerdas.pagination import PageRequest

ACTOR = accounts.Actor.system("test")
PAGE = PageRequest(page=1, per_page=50)


@pytest.fixture
def agency(session):
    agency = agencies.create_agency(session, actor=ACTOR, name="Dinas PUPR", short_name="Dinas PUPR", kind="dinas")
    session.commit()
    return agency


def new_user(session, username: str = "budi", role: str = "admin", agency_id: int | None = None, **values) -> User:
    return accounts.create_user(
        session,
        actor=ACTOR,
        username=username,
        full_name=values.pop("full_name", "Budi Santoso"),
        password=values.pop("password", TEST_PASSWORD),
        role=role,
        agency_id=agency_id,
        **values,
    )


def log_in(session, settings, username: str, password: str = TEST_PASSWORD, ip: str = "10.0.0.1"):
    return accounts.login(session, settings=settings, username=username, password=password, ip=ip)


def audit_text(session) -> str:
    rows = session.execute(sa.select(AuditEntry.before, AuditEntry.after)).all()
    return json.dumps([list(row) for row in rows])


def test_create_user_normalises_and_audits_without_the_password(session):
    user = new_user(session, username="  Budi.Santoso ", email=" budi@musirawaskab.go.id ")

    assert (user.username, user.email, user.active) == ("budi.santoso", "budi@musirawaskab.go.id", True)
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "user.create"))
    assert entry.entity_id == str(user.id) and entry.after["username"] == "budi.santoso"
    assert "password_hash" not in entry.after
    assert user.password_hash not in audit_text(session) and TEST_PASSWORD not in audit_text(session)


def test_duplicate_username_is_a_conflict(session):
    new_user(session, username="budi")

    with pytest.raises(Conflict):
        new_user(session, username="BUDI")

    assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "budi santoso"}, "username"),
        ({"password": "pendek"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"role": "raja"}, "role"),
        ({"role": "opd_staff"}, "agency_id"),
        ({"role": "opd_admin", "agency_id": 4242}, "agency_id"),
        ({"full_name": " "}, "full_name"),
        ({"email": "bukan-email"}, "email"),
    ],
)
def test_invalid_user_fields_are_refused_by_name(session, values, field):
    with pytest.raises(InvalidInput) as caught:
        new_user(session, **values)

    assert caught.value.errors[0]["field"] == field
    assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_opd_role_needs_an_agency_and_keeps_it(session, agency):
    staff = new_user(session, username="staf", role="opd_staff", agency_id=agency.id)

    assert staff.agency_id == agency.id
    with pytest.raises(InvalidInput):
        accounts.update_user(session, actor=ACTOR, user_id=staff.id, agency_id=None)


def test_update_changes_only_given_fields_and_audits_before_and_after(session, agency):
    new_user(session, username="admin")
    staff = new_user(session, username="staf", role="opd_staff", agency_id=agency.id, email="staf@example.go.id")

    accounts.update_user(session, actor=ACTOR, user_id=staff.id, full_name="Staf Baru")
    assert (staff.full_name, staff.email, staff.role) == ("Staf Baru", "staf@example.go.id", "opd_staff")
    # A role without an OPD drops the OPD unless one is given.
    accounts.update_user(session, actor=ACTOR, user_id=staff.id, role="operator")
    assert (staff.role, staff.agency_id) == ("operator", None)
    accounts.update_user(session, actor=ACTOR, user_id=staff.id, email=None)
    assert staff.email is None

    entries = session.scalars(
        sa.select(AuditEntry)
        .where(AuditEntry.action == "user.update", AuditEntry.entity_id == str(staff.id))
        .order_by(AuditEntry.id)
    ).all()
    assert [(entry.before["full_name"], entry.after["full_name"]) for entry in entries[:1]] == [
        ("Budi Santoso", "Staf Baru")
    ]
    assert entries[1].before["role"] == "opd_staff" and entries[1].after == {
        "role": "operator",
        "agency_id": None,
        "updated_at": entries[1].after["updated_at"],
    }
    assert "email" not in entries[0].after


def test_password_reset_ends_sessions_and_only_says_changed(session, settings):
    user = new_user(session, username="budi")
    _user, cookie = log_in(session, settings, "budi")

    accounts.update_user(session, actor=ACTOR, user_id=user.id, password="kata-sandi-baru")

    with pytest.raises(NotAuthenticated):
        accounts.get_session_user(session, token=cookie)
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert (entry.before, entry.after["password"]) == (
        {"password": None, "updated_at": entry.before["updated_at"]},
        "changed",
    )
    assert user.password_hash not in audit_text(session) and "kata-sandi-baru" not in audit_text(session)
    assert log_in(session, settings, "budi", "kata-sandi-baru") is not None


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(session):
    admin = new_user(session, username="admin")

    with pytest.raises(Conflict):
        accounts.update_user(session, actor=ACTOR, user_id=admin.id, active=False)
    with pytest.raises(Conflict):
        accounts.update_user(session, actor=ACTOR, user_id=admin.id, role="operator")

    other = new_user(session, username="admin2")
    accounts.update_user(session, actor=ACTOR, user_id=admin.id, active=False)
    assert (admin.active, other.active) == (False, True)


def test_deactivated_user_cannot_log_in_and_loses_sessions(session, settings):
    new_user(session, username="admin")
    user = new_user(session, username="budi", role="operator")
    _user, cookie = log_in(session, settings, "budi")

    accounts.update_user(session, actor=ACTOR, user_id=user.id, active=False)

    with pytest.raises(NotAuthenticated):
        accounts.get_session_user(session, token=cookie)
    assert log_in(session, settings, "budi") is None


def test_wrong_password_returns_none_and_records_the_attempt(session, settings):
    new_user(session, username="budi")

    assert log_in(session, settings, "budi", "salah-salah") is None
    assert log_in(session, settings, "tidak-ada", "salah-salah") is None

    attempts = session.execute(sa.select(LoginAttempt.username, LoginAttempt.succeeded)).all()
    assert sorted(attempts) == [("budi", False), ("tidak-ada", False)]


def test_sixth_try_after_five_failures_is_rate_limited(session, settings):
    new_user(session, username="budi")
    for _ in range(settings.login_max_failures):
        assert log_in(session, settings, "budi", "salah-salah") is None

    with pytest.raises(RateLimited) as caught:
        log_in(session, settings, "budi")

    assert caught.value.headers["Retry-After"] == str(settings.login_window_minutes * 60)
    # Old failures no longer count once the window has passed.
    session.execute(sa.update(LoginAttempt).values(at=utcnow() - timedelta(minutes=settings.login_window_minutes + 1)))
    assert log_in(session, settings, "budi") is not None


def test_login_opens_a_session_that_expires(session, settings):
    user = new_user(session, username="budi")

    logged_in, cookie = log_in(session, settings, " BUDI ")

    assert logged_in.id == user.id and user.last_login_at is not None
    found, row = accounts.get_session_user(session, token=cookie)
    assert found.id == user.id and cookie not in row.token_hash
    session.execute(sa.update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(NotAuthenticated):
        accounts.get_session_user(session, token=cookie)


def test_logout_ends_the_session_and_is_audited(session, settings):
    new_user(session, username="budi")
    _user, cookie = log_in(session, settings, "budi")

    accounts.logout(session, token=cookie, ip="10.0.0.2")

    with pytest.raises(NotAuthenticated):
        accounts.get_session_user(session, token=cookie)
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "user.logout"))
    assert (entry.actor_label, entry.ip) == ("budi", "10.0.0.2")


def test_api_token_is_shown_once_stored_hashed_and_revocable(session):
    user = new_user(session, username="budi")

    token, plain = accounts.create_api_token(session, actor=ACTOR, user_id=user.id, name="Integrasi LAPOR")

    assert plain.startswith("kc_") and plain.startswith(token.prefix) and token.token_hash != plain
    assert accounts.get_token_user(session, token=plain)[0].id == user.id
    assert plain not in audit_text(session) and token.token_hash not in audit_text(session)
    other = new_user(session, username="siti")
    with pytest.raises(NotFound):
        accounts.revoke_api_token(session, actor=ACTOR, token_id=token.id, owner_id=other.id)
    accounts.revoke_api_token(session, actor=ACTOR, token_id=token.id, owner_id=user.id)
    with pytest.raises(NotAuthenticated):
        accounts.get_token_user(session, token=plain)
    assert [
        entry.action for entry in session.scalars(sa.select(AuditEntry).where(AuditEntry.entity_type == "api_token"))
    ] == [
        "api_token.create",
        "api_token.revoke",
    ]
    assert session.get(ApiToken, token.id).revoked_at is not None


def test_list_users_and_audit_filters(session, agency):
    new_user(session, username="admin", full_name="Admin Diskominfo")
    staff = new_user(session, username="staf.pupr", role="opd_staff", agency_id=agency.id, full_name="Staf PUPR")

    assert [u.username for u in accounts.list_users(session, page=PAGE, agency_id=agency.id).items] == ["staf.pupr"]
    assert [u.username for u in accounts.list_users(session, page=PAGE, q="diskominfo").items] == ["admin"]
    assert [u.username for u in accounts.list_users(session, page=PAGE, q="_").items] == []
    assert accounts.list_users(session, page=PAGE, active=False).total == 0

    entries = accounts.list_audit(session, page=PAGE, entity_type="user", entity_id=str(staff.id)).items
    assert [entry.action for entry in entries] == ["user.create"]
    assert accounts.list_audit(session, page=PAGE, action="agency.create").total == 1
