"""Fixtures of the reports tests: regions, OPDs and categories seeded; staff of several OPDs; a report factory."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import TEST_ACTOR
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.regions import service as regions
from kotacerdas.reports import service
from kotacerdas.reports.enums import ReportSource

from .helpers import INSIDE, REPORTER, agency_id


@pytest.fixture
def seeded(session, settings) -> None:
    """Built-in regions, the default OPDs and the default report categories, committed."""
    regions.seed_builtin_regions(session, settings=settings)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    service.seed_default_categories(session, actor=TEST_ACTOR)
    session.commit()


@pytest.fixture
def staff(seeded, session, make_user) -> Callable[[str], User]:
    """Staff users by name: admin, operator, pupr_admin, pupr_staff, dlh_staff, pimpinan (created on first use)."""
    roles = {
        "admin": ("admin", None),
        "operator": ("operator", None),
        "pupr_admin": ("opd_admin", "Dinas PUPR"),
        "pupr_staff": ("opd_staff", "Dinas PUPR"),
        "pupr_staff2": ("opd_staff", "Dinas PUPR"),
        "dlh_staff": ("opd_staff", "DLH"),
        "dlh_admin": ("opd_admin", "DLH"),
        "pimpinan": ("pimpinan", None),
    }
    made: dict[str, User] = {}

    def get(name: str) -> User:
        if name not in made:
            role, agency = roles[name]
            made[name] = make_user(name.replace("_", "."), role, agency_id(session, agency) if agency else None)
        return made[name]

    return get


@pytest.fixture
def make_report(seeded, session, settings) -> Callable[..., service.SubmittedReport]:
    """Submit a report through the service (drain category, inside the kabupaten, with contact details) and commit."""

    def make(**overrides) -> service.SubmittedReport:
        values = {
            "category_code": "drainase-tersumbat",
            "description": "Saluran air tersumbat sampah di depan pasar, air meluap ke jalan.",
            "lat": INSIDE[0],
            "lon": INSIDE[1],
            "address": "Jl. Lintas Sumatera km 12",
            **REPORTER,
            "source": ReportSource.WEB,
        }
        values.update(overrides)
        submitted = service.submit_report(session, settings=settings, **values)
        session.commit()
        return submitted

    return make
