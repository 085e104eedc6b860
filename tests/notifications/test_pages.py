"""Console pages of the outbox and webhooks: Indonesian first, forms with CSRF, the secret shown once."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TEST_ACTOR, csrf_from, post_login, stored
from kotacerdas.app import create_app
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications.models import OutboxMessage, WebhookEndpoint


@pytest.fixture
def console(settings, make_user):
    """An administrator logged in to an app that allows webhooks to lapor.go.id (pages in Indonesian)."""
    make_user("admin", "admin")
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})
    with TestClient(create_app(allowed)) as client:
        assert post_login(client, "admin").status_code == 303
        yield client


def test_the_outbox_page_shows_counts_messages_and_the_missing_mail_server(console, session, settings):
    for n in range(2):
        notifications.queue_test_email(session, actor=TEST_ACTOR, to=f"warga{n}@example.id", settings=settings)
    failed = session.scalars(sa.select(OutboxMessage)).first()
    failed.status, failed.last_error = "failed", "ConnectionRefusedError: [Errno 111] Connection refused"
    session.commit()

    page = console.get("/konsol/notifikasi")

    assert page.status_code == 200
    html = page.text
    assert "<h1>Kotak keluar</h1>" in html
    assert "2 pesan" in html
    assert "Menunggu" in html and "Gagal" in html
    assert "Server surel belum diatur" in html
    assert "warga0@example.id" in html and "Connection refused" in html
    assert "Kirim ulang" in html and "Kirim sekarang" in html
    assert 'href="/konsol/notifikasi"' in html and 'href="/konsol/webhook"' in html  # the console menu

    only_failed = console.get("/konsol/notifikasi", params={"status": "failed"}).text
    assert "1 pesan" in only_failed


def test_the_retry_button_sends_a_failed_message_again(console, session, settings):
    message = notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", settings=settings)
    message.status, message.attempts = "failed", 12
    session.commit()
    token = csrf_from(console, "/konsol/notifikasi")

    response = console.post(
        f"/konsol/notifikasi/{message.id}/ulang", data={"csrf_token": token}, follow_redirects=False
    )
    refused = console.post(f"/konsol/notifikasi/{message.id}/ulang", data={}, follow_redirects=False)

    assert response.status_code == 303
    assert refused.status_code == 403
    assert stored(session, sa.select(OutboxMessage.status)) == "pending"
    assert "Pesan akan segera dikirim ulang." in console.get(response.headers["location"]).text


def test_a_test_email_is_queued_from_the_console(console, session):
    token = csrf_from(console, "/konsol/notifikasi")

    response = console.post("/konsol/notifikasi/uji", data={"csrf_token": token, "to": "admin@musirawaskab.go.id"})
    bad = console.post("/konsol/notifikasi/uji", data={"csrf_token": token, "to": "bukan alamat"})

    assert response.status_code == 200 and "Surel uji sudah masuk kotak keluar" in response.text
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    message = stored(session, sa.select(OutboxMessage))
    assert message.recipient == "admin@musirawaskab.go.id" and message.subject.startswith("Pesan uji dari")


def test_a_webhook_is_created_with_its_secret_shown_once_then_deactivated(console, session):
    token = csrf_from(console, "/konsol/webhook/baru")

    created = console.post(
        "/konsol/webhook/baru",
        data={
            "csrf_token": token,
            "name": "SP4N-LAPOR!",
            "url": "https://lapor.go.id/in",
            "events": "report.*, event.raised",
        },
    )

    assert created.status_code == 201
    endpoint = stored(session, sa.select(WebhookEndpoint))
    assert endpoint.events == ["report.*", "event.raised"]
    first_secret = endpoint.secret
    assert endpoint.secret in created.text and "tidak akan ditampilkan lagi" in created.text
    edit = console.get(f"/konsol/webhook/{endpoint.id}").text
    assert endpoint.secret not in edit
    listing = console.get("/konsol/webhook").text
    assert "SP4N-LAPOR!" in listing and "lapor.go.id" in listing and "Aktif" in listing

    saved = console.post(
        f"/konsol/webhook/{endpoint.id}",
        data={"csrf_token": token, "name": "SP4N-LAPOR!", "url": "https://lapor.go.id/in", "events": "*"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert stored(session, sa.select(WebhookEndpoint.active)) is False

    rotated = console.post(f"/konsol/webhook/{endpoint.id}/rahasia", data={"csrf_token": token})
    new_secret = stored(session, sa.select(WebhookEndpoint.secret))
    assert new_secret != first_secret and new_secret in rotated.text


def test_a_webhook_outside_the_allowlist_is_refused_in_the_form(console, session):
    token = csrf_from(console, "/konsol/webhook/baru")

    response = console.post(
        "/konsol/webhook/baru",
        data={"csrf_token": token, "name": "Dalam", "url": "http://192.168.1.1/", "events": "*"},
    )

    assert response.status_code == 422
    assert "tidak ada dalam daftar yang diizinkan" in response.text
    assert re.search(r'id="f-url"[^>]*aria-invalid="true"', response.text.replace("\n", " "))
    assert stored(session, sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


@pytest.mark.parametrize("path", ["/konsol/notifikasi", "/konsol/webhook", "/konsol/webhook/baru"])
def test_staff_without_the_permission_are_refused(client, make_user, path):
    make_user("operator", "operator")
    post_login(client, "operator")

    response = client.get(path)

    assert response.status_code == 403
    assert 'href="/konsol/notifikasi"' not in client.get("/konsol").text


def test_visitors_are_sent_to_the_login_page(client):
    response = client.get("/konsol/notifikasi", follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"].startswith("/masuk")
