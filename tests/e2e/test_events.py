"""A citizen keeps the events page open; BPBD publishes a warning through the API and then raises its level: the
warning appears on the open page, and its new level shows, without a reload."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import expect

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.service import Actor
from kotacerdas.db import make_engine, make_sessionmaker

pytestmark = pytest.mark.e2e

TITLE = "Banjir Sungai Lakitan di Muara Lakitan (uji peramban)"


@pytest.fixture(scope="module")
def operator_token(live_server) -> str:
    """An API token of the demo's operator in the live server's database."""
    engine = make_engine(live_server.settings)
    with make_sessionmaker(engine)() as session:
        operator = accounts.get_user_by_username(session, username="operator")
        _token, plain = accounts.create_api_token(session, actor=Actor.system("e2e"), user_id=operator.id, name="e2e")
        session.commit()
    engine.dispose()
    return plain


def test_a_published_warning_appears_on_the_open_page_without_reload(page, live_server, operator_token):
    page.goto("/peristiwa")
    expect(page.locator("#live-status")).to_contain_text("Langsung")  # the stream is open
    page.evaluate("window.stillTheSamePage = true")
    headers = {"Authorization": f"Bearer {operator_token}"}

    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10) as api:
        created = api.post(
            "/api/v1/events",
            json={
                "category": "banjir", "level": "waspada", "title": TITLE,
                "description": "Air Sungai Lakitan naik 80 cm; sawah di tepi sungai tergenang.",
                "starts_at": datetime.now(UTC).isoformat(), "region_codes": ["16.05.02"],
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
        card = page.locator(f'[data-event-id="{created.json()["id"]}"]')
        expect(card).to_contain_text(TITLE)
        expect(card).to_contain_text("Waspada")

        raised = api.patch(f"/api/v1/events/{created.json()['id']}", json={"level": "awas"})
        assert raised.status_code == 200, raised.text
        expect(card).to_contain_text("Awas")
        expect(card).to_contain_text("Diperbarui")

    assert page.evaluate("window.stillTheSamePage") is True
    # The newest change is on top of the list.
    expect(page.locator("#event-list > li").first).to_have_attribute("data-event-id", str(created.json()["id"]))
    assert page.errors == []
