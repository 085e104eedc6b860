"""The Musi Rawas demo: regions, boundaries, OPDs and one account per role. Running it twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.regions import service as regions

# Published on purpose: the demo is for trying the portal out; `kotacerdas demo` refuses to run in production.
DEMO_PASSWORD = "musirawas-demo"
DEMO_USERS = (
    ("admin", "Admin Diskominfo", "admin", None),
    ("operator", "Operator Command Center", "operator", None),
    ("pupr", "Admin Dinas PUPR", "opd_admin", "Dinas PUPR"),
    ("pupr.staf", "Staf Dinas PUPR", "opd_staff", "Dinas PUPR"),
    ("bupati", "Pimpinan", "pimpinan", None),
)


@dataclass
class DemoSummary:
    regions: int = 0
    boundaries: int = 0
    agencies: int = 0
    users_created: int = 0
    other_users: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"Wilayah / regions: {self.regions}",
            f"Batas wilayah diimpor / boundaries imported: {self.boundaries}",
            f"OPD: {self.agencies}",
            f"Akun demo baru / demo accounts created: {self.users_created}",
        ]


def seed_demo(
    session: Session,
    *,
    settings: Settings,
    boundaries: Path | None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoSummary:
    """Seed the demo into an empty or already-seeded database."""
    actor = accounts.Actor.system("demo")
    summary = DemoSummary()
    summary.regions = regions.seed_builtin_regions(session, settings=settings)
    if boundaries is not None:
        result = regions.import_boundaries(
            session,
            settings=settings,
            data=boundaries.read_bytes(),
            actor=actor,
            progress=(lambda done, total: progress("Batas wilayah", done, total)) if progress else None,
        )
        summary.boundaries = result.total
    summary.agencies = agencies.seed_default_agencies(session, settings=settings, actor=actor)
    for username, full_name, role, agency_short in DEMO_USERS:
        if username != "admin":
            summary.other_users.append(username)
        if accounts.get_user_by_username(session, username=username) is not None:
            continue
        agency_id = agencies.get_agency_by_short_name(session, short_name=agency_short).id if agency_short else None
        accounts.create_user(
            session,
            actor=actor,
            username=username,
            full_name=full_name,
            password=DEMO_PASSWORD,
            role=role,
            agency_id=agency_id,
        )
        summary.users_created += 1
    return summary
