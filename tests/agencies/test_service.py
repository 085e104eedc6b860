"""The OPD registry through its service: seed, create, update, deactivate, checks and audit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.agencies import service as agencies
from kotacerdas.agencies.enums import AgencyKind
from kotacerdas.agencies.models import Agency
from kotacerdas.errors import Conflict, InvalidInput, NotFound
from kotacerdas.pagination import PageRequest
from kotacerdas.regions.models import Region

ACTOR = accounts.Actor.system("test")


def agency_count(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Agency))


def audit_of(session, entity_id: int) -> list[AuditEntry]:
    return list(
        session.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.entity_type == "agency", AuditEntry.entity_id == str(entity_id))
            .order_by(AuditEntry.id)
        )
    )


def add_kecamatan(session, code: str, name: str) -> None:
    if session.get(Region, "16.05") is None:
        session.add(Region(code="16.05", name="Kabupaten Musi Rawas", level="kabupaten", parent_code="16"))
    session.add(Region(code=code, name=name, level="kecamatan", parent_code="16.05"))
    session.flush()


def make_agency(session, short_name: str = "Dinas Uji", **values) -> Agency:
    return agencies.create_agency(
        session,
        actor=ACTOR,
        name=values.pop("name", short_name + " Kabupaten"),
        short_name=short_name,
        kind=values.pop("kind", "dinas"),
        **values,
    )


def test_seed_twice_stores_the_same_agencies(session, settings):
    first = agencies.seed_default_agencies(session, settings=settings, actor=ACTOR)
    session.commit()
    second = agencies.seed_default_agencies(session, settings=settings, actor=ACTOR)

    assert first == second == agency_count(session)
    # The default dinas/badan plus one office per kecamatan (from the built-in list when no regions are stored).
    assert first == len(agencies.DEFAULT_AGENCIES) + 14
    pupr = agencies.get_agency_by_short_name(session, short_name="Dinas PUPR")
    assert pupr.name == "Dinas Pekerjaan Umum dan Penataan Ruang"
    assert agencies.get_agency_by_short_name(session, short_name="Diskominfo").name == (
        "Dinas Komunikasi dan Informatika"
    )
    assert agencies.get_agency_by_short_name(session, short_name="BPBD").kind == AgencyKind.BADAN
    kecamatan = agencies.get_agency_by_short_name(session, short_name="Kec. Muara Beliti")
    assert (kecamatan.name, kecamatan.kind) == ("Kecamatan Muara Beliti", "kecamatan")


def test_seed_links_kecamatan_offices_to_stored_regions(session, settings):
    add_kecamatan(session, "16.05.09", "Muara Beliti")
    add_kecamatan(session, "16.05.01", "Tugumulyo")

    count = agencies.seed_default_agencies(session, settings=settings, actor=ACTOR)

    assert count == len(agencies.DEFAULT_AGENCIES) + 2
    office = agencies.get_agency_by_short_name(session, short_name="Kec. Muara Beliti")
    assert (office.name, office.region_code) == ("Kecamatan Muara Beliti", "16.05.09")


def test_seed_never_overwrites_edits_and_audits_what_it_creates(session, settings):
    agencies.seed_default_agencies(session, settings=settings, actor=ACTOR)
    pupr = agencies.get_agency_by_short_name(session, short_name="Dinas PUPR")
    agencies.update_agency(session, actor=ACTOR, agency_id=pupr.id, name="Dinas PUPR Musi Rawas", phone="0733-1")
    deactivated = agencies.deactivate_agency(
        session, actor=ACTOR, agency_id=agencies.get_agency_by_short_name(session, short_name="Dishub").id
    )
    before = agency_count(session)

    assert agencies.seed_default_agencies(session, settings=settings, actor=ACTOR) == before
    assert (pupr.name, pupr.phone) == ("Dinas PUPR Musi Rawas", "0733-1")
    assert deactivated.active is False
    created = [entry.action for entry in audit_of(session, pupr.id)]
    assert created == ["agency.create", "agency.update"]


def test_duplicate_short_name_is_a_conflict_in_any_letter_case(session):
    make_agency(session, "Diskominfo")

    with pytest.raises(Conflict) as caught:
        make_agency(session, "DISKOMINFO")

    assert caught.value.errors[0]["field"] == "short_name"
    assert agency_count(session) == 1


def test_update_refuses_a_duplicate_short_name_and_changes_nothing(session):
    make_agency(session, "Diskominfo")
    other = make_agency(session, "Dishub", phone="1")

    with pytest.raises(Conflict):
        agencies.update_agency(session, actor=ACTOR, agency_id=other.id, short_name="diskominfo", phone="2")

    assert (other.short_name, other.phone) == ("Dishub", "1")


def test_parent_must_exist_and_not_close_a_loop(session):
    dinas = make_agency(session, "Dinas PUPR")
    upt = make_agency(session, "UPT Jalan", kind="upt", parent_id=dinas.id)
    unit = make_agency(session, "Seksi Jalan", kind="upt", parent_id=upt.id)

    with pytest.raises(InvalidInput):
        agencies.update_agency(session, actor=ACTOR, agency_id=dinas.id, parent_id=dinas.id)
    with pytest.raises(InvalidInput) as caught:
        agencies.update_agency(session, actor=ACTOR, agency_id=dinas.id, parent_id=unit.id)
    assert caught.value.errors == [{"field": "parent_id", "reason": "cycle"}]
    with pytest.raises(InvalidInput):
        make_agency(session, "Yatim", parent_id=999_999)

    assert dinas.parent_id is None
    # Moving a unit up the tree is fine.
    assert agencies.update_agency(session, actor=ACTOR, agency_id=unit.id, parent_id=dinas.id).parent_id == dinas.id


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"kind": "kementerian"}, "kind"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"region_code": "99.99"}, "region_code"),
        ({"email": "bukan-email"}, "email"),
        ({"website": "javascript:alert(1)"}, "website"),
    ],
)
def test_invalid_fields_are_refused_by_name(session, values, field):
    with pytest.raises(InvalidInput) as caught:
        make_agency(session, "Dinas Uji", **values)

    assert caught.value.errors[0]["field"] == field
    assert agency_count(session) == 0


def test_update_changes_only_given_fields_and_audits_before_and_after(session):
    agency = make_agency(session, "DLH", email="dlh@example.go.id", phone="0733-2")

    agencies.update_agency(session, actor=ACTOR, agency_id=agency.id, email=None, address="Jl. Lintas Sumatera")

    assert (agency.email, agency.phone, agency.address) == (None, "0733-2", "Jl. Lintas Sumatera")
    entry = audit_of(session, agency.id)[-1]
    assert entry.action == "agency.update"
    assert entry.before["email"] == "dlh@example.go.id" and entry.after["email"] is None
    assert entry.before["address"] is None and entry.after["address"] == "Jl. Lintas Sumatera"
    assert "phone" not in entry.after


def test_deactivate_and_activate_are_audited(session):
    agency = make_agency(session, "Dinsos")

    agencies.deactivate_agency(session, actor=ACTOR, agency_id=agency.id)
    agencies.activate_agency(session, actor=ACTOR, agency_id=agency.id)

    actions = [entry.action for entry in audit_of(session, agency.id)]
    assert actions == ["agency.create", "agency.deactivate", "agency.activate"]
    assert agency.active is True


def test_list_filters_by_kind_active_and_text(session):
    make_agency(session, "Dinas PUPR", name="Dinas Pekerjaan Umum dan Penataan Ruang")
    make_agency(session, "BPBD", name="Badan Penanggulangan Bencana Daerah", kind="badan")
    closed = make_agency(session, "Dinas Lama", name="Dinas 100% Lama")
    agencies.deactivate_agency(session, actor=ACTOR, agency_id=closed.id)
    page = PageRequest(page=1, per_page=10)

    def short_names(**filters) -> list[str]:
        return [agency.short_name for agency in agencies.list_agencies(session, page=page, **filters).items]

    assert short_names(kind="badan") == ["BPBD"]
    assert short_names(active=True) == ["BPBD", "Dinas PUPR"]
    assert short_names(q="penataan") == ["Dinas PUPR"]
    # A % in the search text is a literal percent sign, not a wildcard.
    assert short_names(q="100%") == ["Dinas Lama"]
    assert short_names(q="%") == ["Dinas Lama"]
    assert agencies.list_agencies(session, page=PageRequest(page=2, per_page=2)).total == 3


def test_unknown_short_name_or_id_is_not_found(session):
    with pytest.raises(NotFound):
        agencies.get_agency_by_short_name(session, short_name="Dinas Tidak Ada")
    with pytest.raises(NotFound):
        agencies.get_agency(session, agency_id=12345)
