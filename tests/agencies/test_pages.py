"""OPD pages: the public list and the console registry (forms with CSRF, re-shown on error)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import CSRF, csrf_from, post_login, row_count, stored
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.agencies import service as agencies
from kotacerdas.agencies.models import Agency

ACTOR = accounts.Actor.system("test")


def log_in(client, username: str) -> None:
    response = post_login(client, username)
    assert response.status_code == 303, response.text


def agency_count(session) -> int:
    return row_count(session, Agency)


FORM = {
    "name": "Dinas Ketahanan Pangan",
    "short_name": "DKP",
    "kind": "dinas",
    "parent_id": "",
    "region_code": "",
    "email": "dkp@musirawaskab.go.id",
    "phone": "",
    "address": "",
    "website": "",
}


@pytest.fixture
def admin_client(client, make_user):
    make_user("admin", "admin")
    client.cookies.set("kc_lang", "en")  # the visitor chose English
    log_in(client, "admin")
    return client


def test_public_list_shows_active_agencies_only(client, session, settings):
    agencies.seed_default_agencies(session, settings=settings, actor=ACTOR)
    dishub = agencies.get_agency_by_short_name(session, short_name="Dishub")
    agencies.update_agency(session, actor=ACTOR, agency_id=dishub.id, phone="0733-4510")
    agencies.deactivate_agency(
        session, actor=ACTOR, agency_id=agencies.get_agency_by_short_name(session, short_name="DLH").id
    )
    session.commit()

    page = client.get("/opd", params={"per_page": 200})
    found = client.get("/opd", params={"q": "perhubungan"})

    assert page.status_code == 200
    assert "Dinas Pekerjaan Umum dan Penataan Ruang" in page.text
    assert "Dinas Lingkungan Hidup" not in page.text
    assert "0733-4510" in found.text and "Dinas PUPR" not in found.text


def test_console_needs_a_login(client):
    response = client.get("/konsol/opd", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/masuk?next=/konsol/opd"


def test_agency_staff_may_not_manage_agencies(client, session, make_user):
    agency = agencies.create_agency(session, actor=ACTOR, name="Dinas Sosial", short_name="Dinsos", kind="dinas")
    session.commit()
    make_user("staf", "opd_staff", agency.id)
    log_in(client, "staf")

    assert client.get("/konsol/opd").status_code == 403
    assert client.get("/konsol/opd/baru").status_code == 403


def test_create_from_the_form_redirects_and_audits(admin_client, session):
    token = csrf_from(admin_client, "/konsol/opd/baru")

    response = admin_client.post("/konsol/opd/baru", data={**FORM, "csrf_token": token}, follow_redirects=False)

    assert response.status_code == 303
    agency = stored(session, sa.select(Agency).where(Agency.short_name == "DKP"))
    assert response.headers["location"] == f"/konsol/opd/{agency.id}?saved=1"
    assert agency.email == "dkp@musirawaskab.go.id" and agency.phone is None
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "agency.create"))
    assert entry.actor_label == "admin" and entry.after["short_name"] == "DKP"
    listed = admin_client.get("/konsol/opd")
    assert "DKP" in listed.text and f'href="/konsol/opd/{agency.id}"' in listed.text


def test_invalid_form_is_shown_again_with_the_message_and_the_values(admin_client, session):
    token = csrf_from(admin_client, "/konsol/opd/baru")

    response = admin_client.post(
        "/konsol/opd/baru", data={**FORM, "name": "", "short_name": "DKP-X", "csrf_token": token}
    )

    assert response.status_code == 422
    assert 'role="alert"' in response.text and "Full name is required." in response.text
    assert 'value="DKP-X"' in response.text and 'value="dkp@musirawaskab.go.id"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert agency_count(session) == 0


def test_duplicate_short_name_in_the_form_is_shown_again(admin_client, session):
    agencies.create_agency(session, actor=ACTOR, name="Dinas Ketahanan Pangan", short_name="DKP", kind="dinas")
    session.commit()
    token = csrf_from(admin_client, "/konsol/opd/baru")

    response = admin_client.post("/konsol/opd/baru", data={**FORM, "short_name": "dkp", "csrf_token": token})

    assert response.status_code == 409
    assert "Another OPD already has this short name." in response.text
    assert agency_count(session) == 1


@pytest.mark.parametrize("token", [None, "forged", "0" * 64])
def test_form_without_the_right_csrf_token_is_403_and_stores_nothing(admin_client, session, token):
    data = dict(FORM) if token is None else {**FORM, "csrf_token": token}

    response = admin_client.post("/konsol/opd/baru", data=data, follow_redirects=False)

    assert response.status_code == 403
    assert agency_count(session) == 0
    assert stored(session, sa.select(sa.func.count()).where(AuditEntry.action == "agency.create")) == 0


def test_edit_form_deactivates_with_the_unticked_box(admin_client, session):
    agency = agencies.create_agency(session, actor=ACTOR, name="Dinas Sosial", short_name="Dinsos", kind="dinas")
    session.commit()
    page = admin_client.get(f"/konsol/opd/{agency.id}")
    assert page.status_code == 200 and 'value="Dinsos"' in page.text and "checked" in page.text
    token = CSRF.search(page.text).group(1)

    # An unticked checkbox is simply absent from the form data.
    response = admin_client.post(
        f"/konsol/opd/{agency.id}",
        data={**FORM, "name": "Dinas Sosial", "short_name": "Dinsos", "csrf_token": token},
        follow_redirects=False,
    )

    assert response.status_code == 303
    saved = stored(session, sa.select(Agency).where(Agency.id == agency.id))
    assert (saved.active, saved.email) == (False, "dkp@musirawaskab.go.id")
    assert "Saved." in admin_client.get(response.headers["location"]).text


def test_edit_form_refuses_a_parent_loop_and_keeps_the_agency(admin_client, session):
    dinas = agencies.create_agency(session, actor=ACTOR, name="Dinas PUPR", short_name="Dinas PUPR", kind="dinas")
    upt = agencies.create_agency(
        session, actor=ACTOR, name="UPT Jalan", short_name="UPT Jalan", kind="upt", parent_id=dinas.id
    )
    session.commit()
    token = csrf_from(admin_client, f"/konsol/opd/{dinas.id}")

    response = admin_client.post(
        f"/konsol/opd/{dinas.id}",
        data={**FORM, "name": "Dinas PUPR", "short_name": "Dinas PUPR", "parent_id": str(upt.id), "active": "on"},
        headers={"X-CSRF-Token": token},
    )

    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert stored(session, sa.select(Agency.parent_id).where(Agency.id == dinas.id)) is None


def test_unknown_agency_page_is_404(admin_client):
    assert admin_client.get("/konsol/opd/4242").status_code == 404
