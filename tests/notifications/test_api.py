"""The outbox and webhook API: notifications.manage only (recipients are personal data), problem+json errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TEST_ACTOR, assert_problem, bearer, new_api_token, stored
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.app import create_app
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications.models import OutboxMessage, WebhookEndpoint

ENDPOINTS = [
    ("get", "/api/v1/outbox"),
    ("get", "/api/v1/outbox/1"),
    ("post", "/api/v1/outbox/1/retry"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/1"),
    ("patch", "/api/v1/webhooks/1"),
    ("post", "/api/v1/webhooks/1/secret"),
]


@pytest.fixture
def api(mail_settings):
    """A client of an app whose webhook allowlist holds 127.0.0.1 and lapor.go.id."""
    allowed = mail_settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1", "lapor.go.id"]})
    with TestClient(create_app(allowed)) as client:
        yield client


@pytest.fixture
def admin(session, make_user):
    return bearer(new_api_token(session, make_user("admin", "admin")))


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_callers_get_401(api, method, path):
    body = {"json": {"name": "x", "url": "https://lapor.go.id/h"}} if method in ("post", "patch") else {}
    assert_problem(getattr(api, method)(path, **body), 401)


@pytest.mark.parametrize("role", ["operator", "pimpinan"])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_staff_without_notifications_manage_get_403(api, session, make_user, role, method, path):
    headers = bearer(new_api_token(session, make_user(f"staf_{role}", role)))
    body = {"json": {"name": "x", "url": "https://lapor.go.id/h"}} if method in ("post", "patch") else {}
    assert_problem(getattr(api, method)(path, headers=headers, **body), 403)


def test_the_outbox_lists_messages_with_filters_and_labels(api, session, admin, mail_settings):
    for n in range(3):
        notifications.queue_test_email(session, actor=TEST_ACTOR, to=f"w{n}@example.id", settings=mail_settings)
    failed = session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)).first()
    failed.status, failed.last_error = "failed", "HTTP 503"
    session.commit()

    everything = api.get("/api/v1/outbox", headers=admin).json()
    only_failed = api.get("/api/v1/outbox", params={"status": "failed"}, headers=admin).json()
    webhooks_only = api.get("/api/v1/outbox", params={"channel": "webhook"}, headers=admin).json()

    assert everything["total"] == 3
    assert [item["id"] for item in only_failed["items"]] == [failed.id]
    assert only_failed["items"][0]["status_label"] == "Gagal"
    assert only_failed["items"][0]["recipient"] == "w0@example.id"
    assert "body_text" not in only_failed["items"][0]
    assert webhooks_only["total"] == 0
    assert_problem(api.get("/api/v1/outbox", params={"status": "lost"}, headers=admin), 422)


def test_one_message_with_its_content_and_retry(api, session, admin, mail_settings):
    message = notifications.queue_test_email(session, actor=TEST_ACTOR, to="w@example.id", settings=mail_settings)
    message.status, message.attempts = "failed", 12
    session.commit()

    detail = api.get(f"/api/v1/outbox/{message.id}", headers=admin).json()
    retried = api.post(f"/api/v1/outbox/{message.id}/retry", headers=admin)
    again = api.post(f"/api/v1/outbox/{message.id}/retry", headers=admin)

    assert "Pesan ini dikirim otomatis" in detail["body_text"]
    assert retried.status_code == 200 and (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
    assert again.status_code == 200  # a waiting message may be sent "now"
    assert stored(session, sa.select(sa.func.count()).where(AuditEntry.action == "outbox.retry")) == 2
    assert_problem(api.get("/api/v1/outbox/999999", headers=admin), 404)


def test_a_sent_message_cannot_be_retried(api, session, admin, mail_settings):
    message = notifications.queue_test_email(session, actor=TEST_ACTOR, to="w@example.id", settings=mail_settings)
    message.status = "sent"
    session.commit()

    body = assert_problem(api.post(f"/api/v1/outbox/{message.id}/retry", headers=admin), 409)
    assert body["detail"] == "Hanya pesan yang gagal atau sedang menunggu yang dapat dikirim ulang."


def test_webhook_crud_shows_the_secret_only_once(api, session, admin):
    created = api.post(
        "/api/v1/webhooks",
        json={"name": "SP4N-LAPOR!", "url": "https://lapor.go.id/kotacerdas", "events": ["report.*"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert len(endpoint["secret"]) >= 32 and endpoint["events"] == ["report.*"] and endpoint["active"] is True

    one = api.get(f"/api/v1/webhooks/{endpoint['id']}", headers=admin).json()
    listed = api.get("/api/v1/webhooks", headers=admin).json()
    changed = api.patch(
        f"/api/v1/webhooks/{endpoint['id']}", json={"active": False, "events": ["*"]}, headers=admin
    ).json()
    rotated = api.post(f"/api/v1/webhooks/{endpoint['id']}/secret", headers=admin).json()

    assert "secret" not in one and "secret" not in listed["items"][0] and "secret" not in changed
    assert (changed["active"], changed["events"]) == (False, ["*"])
    assert rotated["secret"] != endpoint["secret"]
    assert stored(session, sa.select(WebhookEndpoint.secret)) == rotated["secret"]
    audit = str(session.execute(sa.select(AuditEntry.before, AuditEntry.after)).all())
    assert endpoint["secret"] not in audit and rotated["secret"] not in audit


def test_a_webhook_to_a_host_outside_the_allowlist_is_422(api, session, admin):
    response = api.post(
        "/api/v1/webhooks", json={"name": "Dalam", "url": "http://10.0.0.8/admin", "events": ["*"]}, headers=admin
    )

    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "url", "reason": "host_not_allowed"}]
    assert "10.0.0.8" in body["detail"] and "daftar yang diizinkan" in body["detail"]
    assert stored(session, sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "url": "https://lapor.go.id/h"},
        {"name": "A", "url": "https://lapor.go.id/h", "events": []},
        {"name": "A", "url": "https://lapor.go.id/h", "events": ["Bukan Nama"]},
        {"name": "A", "url": "https://lapor.go.id/h", "secret": "pendek"},
        {"name": "A", "url": "https://lapor.go.id/h", "surplus": 1},
        {"name": "A", "url": "ftp://lapor.go.id/h"},
    ],
)
def test_bad_webhook_bodies_are_422(api, admin, body):
    assert_problem(api.post("/api/v1/webhooks", json=body, headers=admin), 422)


def test_patch_with_null_name_is_422(api, session, admin, mail_settings):
    allowed = mail_settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})
    endpoint = notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=allowed, name="A", url="https://lapor.go.id/h", events=["*"]
    )
    session.commit()

    assert_problem(api.patch(f"/api/v1/webhooks/{endpoint.id}", json={"name": None}, headers=admin), 422)
    assert_problem(api.patch("/api/v1/webhooks/424242", json={"name": "B"}, headers=admin), 404)
