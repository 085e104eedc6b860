"""Fixtures of the assets tests: regions, OPDs, report categories and asset types seeded; staff of several OPDs and
roles; an asset factory; a report factory and a helper that takes a report through the workflow to "selesai"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import TEST_ACTOR
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import service
from kotacerdas.assets.models import Asset
from kotacerdas.assets.validation import RawAsset
from kotacerdas.regions import service as regions
from kotacerdas.reports import service as reports
from kotacerdas.reports.enums import ReportSource
from kotacerdas.reports.models import Report

from .helpers import INSIDE, REPORTER, act, agency_id, point


@pytest.fixture
def seeded(session, settings) -> None:
    """Built-in regions, the default OPDs, report categories and asset types, committed."""
    regions.seed_builtin_regions(session, settings=settings)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    reports.seed_default_categories(session, actor=TEST_ACTOR)
    service.seed_default_types(session, actor=TEST_ACTOR)
    session.commit()


@pytest.fixture
def staff(seeded, session, make_user) -> Callable[[str], User]:
    """Staff users by name (created on first use): admin, operator, pimpinan, pupr_admin, pupr_staff, dlh_staff,
    dishub_staff."""
    roles = {
        "admin": ("admin", None),
        "operator": ("operator", None),
        "pimpinan": ("pimpinan", None),
        "pupr_admin": ("opd_admin", "Dinas PUPR"),
        "pupr_staff": ("opd_staff", "Dinas PUPR"),
        "dlh_staff": ("opd_staff", "DLH"),
        "dishub_staff": ("opd_staff", "Dishub"),
    }
    made: dict[str, User] = {}

    def get(name: str) -> User:
        if name not in made:
            role, agency = roles[name]
            made[name] = make_user(name.replace("_", "."), role, agency_id(session, agency) if agency else None)
        return made[name]

    return get


@pytest.fixture
def make_asset(seeded, session, settings) -> Callable[..., Asset]:
    """Create an asset through the service as the system (default: a bridge of Dinas PUPR at INSIDE) and commit."""

    def make(**overrides: Any) -> Asset:
        values: dict[str, Any] = {
            "type": "jembatan",
            "name": "Jembatan Sungai Kelingi",
            "geometry": point(),
            "attributes": {"panjang_m": 42, "konstruksi": "beton"},
        }
        values.update(overrides)
        asset = service.create_asset(session, settings=settings, actor=TEST_ACTOR, by=None, raw=RawAsset(**values))
        session.commit()
        return asset

    return make


@pytest.fixture
def make_report(seeded, session, settings) -> Callable[..., Report]:
    """Submit a citizen report (drain category, at INSIDE, with contact details) and commit."""

    def make(**overrides: Any) -> Report:
        values: dict[str, Any] = {
            "category_code": "drainase-tersumbat",
            "description": "Saluran air tersumbat sampah di depan pasar, air meluap ke jalan.",
            "lat": INSIDE[0],
            "lon": INSIDE[1],
            "address": "Jl. Lintas Sumatera km 12",
            **REPORTER,
            "source": ReportSource.WEB,
        }
        values.update(overrides)
        submitted = reports.submit_report(session, settings=settings, **values)
        session.commit()
        return submitted.report

    return make


@pytest.fixture
def resolve(session, settings, staff) -> Callable[[Report, str], Report]:
    """Take a report through verify, dispose (to the given OPD), follow-up and resolve, and commit."""

    def run(report: Report, short_name: str = "Dinas PUPR") -> Report:
        admin = staff("admin")
        handler = staff("pupr_staff") if short_name == "Dinas PUPR" else staff("dlh_staff")
        common = {"settings": settings, "report_id": report.id}
        reports.dispose_report(session, agency_id=agency_id(session, short_name), **common, **act(admin))
        reports.follow_up_report(session, plan="Dibersihkan minggu ini oleh tim lapangan.", **common, **act(handler))
        reports.resolve_report(session, note="Saluran sudah dibersihkan.", **common, **act(handler))
        session.commit()
        return report

    return run
