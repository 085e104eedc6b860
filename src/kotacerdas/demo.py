"""The Musi Rawas demo: regions, boundaries, OPDs, one account per role, citizen reports in every state and an
infrastructure registry (assets/demo.py), some of the reports linked to the assets they are about.

Running it twice changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import types as asset_types
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.regions import service as regions
from kotacerdas.reports import service as reports
from kotacerdas.reports.enums import ReportSource, ReportType
from kotacerdas.reports.models import Report, ReportCategory

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
    categories: int = 0
    asset_types: int = 0
    reports: int = 0
    assets: int = 0
    linked_reports: int = 0
    events: int = 0
    sensors: int = 0
    sensor_observations: int = 0
    sensor_devices_file: Path | None = None
    other_users: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"Wilayah / regions: {self.regions}",
            f"Batas wilayah diimpor / boundaries imported: {self.boundaries}",
            f"OPD: {self.agencies}",
            f"Akun demo baru / demo accounts created: {self.users_created}",
            f"Kategori aduan / report categories: {self.categories}",
            f"Jenis aset / asset types: {self.asset_types}",
            f"Aduan warga contoh / sample citizen reports: {self.reports}",
            f"Aset contoh / sample assets: {self.assets} ({self.linked_reports} aduan terkait / reports linked)",
            f"Peristiwa contoh / sample events: {self.events}",
            f"Perangkat sensor contoh / sample devices: {self.sensors} ({self.sensor_observations} pengamatan / "
            "observations)",
        ] + (
            [f"Kunci perangkat demo / demo device keys (kotacerdas sensors simulate): {self.sensor_devices_file}"]
            if self.sensor_devices_file
            else []
        )


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
    summary.categories = reports.seed_default_categories(session, actor=actor)
    summary.asset_types = asset_types.seed_default_types(session, actor=actor)
    summary.reports = seed_demo_reports(session, settings=settings)
    # shapely and numpy load here, not when the CLI starts.
    from kotacerdas.assets.demo import seed_demo_assets

    if progress:
        progress("Aset contoh", 0, 1)
    summary.assets = seed_demo_assets(session, settings=settings)
    if summary.assets:
        summary.linked_reports = link_demo_reports(session)
    if progress:
        progress("Aset contoh", 1, 1)
    from kotacerdas.events.demo import seed_demo_events

    summary.events = seed_demo_events(session, settings=settings)
    from kotacerdas.sensors.demo import seed_demo_sensors

    sensors = seed_demo_sensors(session, settings=settings)
    summary.sensors, summary.sensor_observations = sensors.things, sensors.observations
    summary.sensor_devices_file = sensors.devices_file
    return summary


# (category, what the citizen wrote) — the demo's reports, placed near the centre of a kecamatan.
DEMO_REPORTS = (
    ("jalan-rusak", "Jalan berlubang besar di depan SD Negeri, sepeda motor sering jatuh saat hujan."),
    ("jalan-rusak", "Aspal jalan poros desa mengelupas sepanjang kurang lebih 200 meter."),
    ("jembatan-rusak", "Papan jembatan gantung sudah lapuk dan dua papan hilang, berbahaya bagi anak sekolah."),
    ("drainase-tersumbat", "Gorong-gorong tersumbat sampah, air meluap ke badan jalan setiap hujan deras."),
    ("genangan-banjir", "Air setinggi lutut menggenangi permukiman dekat sungai sejak semalam."),
    ("pju-mati", "Lampu jalan di simpang tiga mati sudah seminggu, rawan kecelakaan malam hari."),
    ("sampah-menumpuk", "Sampah di TPS pasar belum diangkut tiga hari dan mulai berbau."),
    ("air-bersih", "Air dari sambungan pipa keruh kecokelatan sejak dua hari lalu."),
    ("fasilitas-kesehatan", "Pustu sering tutup pada jam pelayanan, warga harus ke puskesmas kecamatan."),
    ("fasilitas-pendidikan", "Atap ruang kelas bocor, murid dipindah ke teras saat hujan."),
    ("ketertiban-umum", "Balap liar setiap malam Minggu di jalan lintas dekat kantor camat."),
    ("administrasi-kependudukan", "Pengurusan KK baru sudah tiga minggu belum selesai, mohon informasinya."),
)
DEMO_REPORT_COUNT = 48
PHOTO_CATEGORIES = {"jalan-rusak", "jembatan-rusak"}


# The asset types a demo report of each category may be about, and how near (metres) the asset must be.
REPORT_ASSET_TYPES = {
    "jalan-rusak": ("jalan",),
    "jembatan-rusak": ("jembatan",),
    "drainase-tersumbat": ("drainase",),
    "pju-mati": ("pju",),
    "sampah-menumpuk": ("pasar",),
    "air-bersih": ("air-bersih",),
    "fasilitas-kesehatan": ("pustu", "puskesmas"),
    "fasilitas-pendidikan": ("sekolah",),
}
LINK_RADIUS_M = 1500


def link_demo_reports(session: Session) -> int:
    """Link each unlinked report about a road, bridge, street light or facility to the nearest demo asset of that
    kind within LINK_RADIUS_M, as the demo admin (through the reports service, audited); returns how many."""
    from kotacerdas.assets.demo import nearest_demo_assets

    admin = accounts.get_user_by_username(session, username="admin")
    if admin is None:
        return 0
    session.flush()
    rows = session.execute(
        sa.select(Report.id, Report.lat, Report.lon, ReportCategory.code)
        .join(ReportCategory, ReportCategory.id == Report.category_id)
        .where(Report.asset_id.is_(None), ReportCategory.code.in_(list(REPORT_ASSET_TYPES)))
        .order_by(Report.id)
    ).all()
    found = nearest_demo_assets(
        session, points=[(row.lat, row.lon, REPORT_ASSET_TYPES[row.code]) for row in rows], radius_m=LINK_RADIUS_M
    )
    linked = 0
    for row, asset_id in zip(rows, found, strict=True):
        if asset_id is not None:
            reports.link_report_asset(
                session, report_id=row.id, asset_id=asset_id, by=admin, actor=accounts.Actor.of(admin)
            )
            linked += 1
    return linked


def _demo_photo(rng: random.Random) -> bytes:
    """A small drawn picture (grey road, brown holes) standing in for a citizen's photo."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (120, 170, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 200, 640, 480), fill=(95, 95, 100))
    for _ in range(rng.randint(2, 5)):
        x, y = rng.randint(40, 560), rng.randint(240, 430)
        draw.ellipse((x, y, x + rng.randint(40, 110), y + rng.randint(15, 40)), fill=(110, 80, 50))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def seed_demo_reports(session: Session, *, settings: Settings, seed: int = 1605) -> int:
    """Citizen reports in every state of the workflow, the same on every run (from `seed`); none when any exist."""
    if reports.list_public_reports(session, settings=settings, page=reports.PageRequest(per_page=1)).total:
        return 0
    kecamatan = [k for k in regions.list_kecamatan(session, settings=settings) if k.centroid_lat is not None]
    admin = accounts.get_user_by_username(session, username="admin")
    pupr = accounts.get_user_by_username(session, username="pupr.staf")
    if not kecamatan or admin is None or pupr is None:
        return 0
    rng = random.Random(seed)
    start = utcnow() - timedelta(days=60)
    made = 0
    for index in range(DEMO_REPORT_COUNT):
        category, text = DEMO_REPORTS[index % len(DEMO_REPORTS)]
        place = kecamatan[rng.randrange(len(kecamatan))]
        created = start + timedelta(days=rng.uniform(0, 58), hours=rng.uniform(0, 10))
        submitted = reports.submit_report(
            session,
            settings=settings,
            category_code=category,
            type=rng.choice([ReportType.PENGADUAN.value] * 4 + [ReportType.ASPIRASI.value]),
            description=text,
            lat=place.centroid_lat + rng.uniform(-0.01, 0.01),
            lon=place.centroid_lon + rng.uniform(-0.01, 0.01),
            anonymous=rng.random() < 0.15,
            photos=[_demo_photo(rng)] if category in PHOTO_CATEGORIES else [],
            source=ReportSource.WEB,
            now=created,
        )
        _advance_demo_report(session, settings=settings, report=submitted.report, admin=admin, pupr=pupr, rng=rng)
        made += 1
    return made


def _advance_demo_report(session: Session, *, settings: Settings, report, admin, pupr, rng: random.Random) -> None:
    """Move a demo report along the workflow as far as a random stage, a few working hours per step."""
    stage = rng.choice(["baru", "terverifikasi", "didisposisikan", "ditindaklanjuti", "selesai", "selesai", "ditolak"])
    if stage == "baru":
        return
    now = utcnow()
    when = min(report.created_at + timedelta(hours=rng.uniform(2, 60)), now)
    staff = {"by": admin, "actor": accounts.Actor.of(admin)}
    if stage == "ditolak":
        reports.close_report(
            session, settings=settings, report_id=report.id, outcome="reject", now=when,
            reason="Laporan tidak dapat diverifikasi: lokasi dan uraian tidak sesuai.", **staff,
        )  # fmt: skip
        return
    if stage == "terverifikasi":
        reports.verify_report(session, settings=settings, report_id=report.id, now=when, **staff)
        return
    reports.dispose_report(session, settings=settings, report_id=report.id, agency_id=None, now=when, **staff)
    if stage == "didisposisikan":
        return
    handler = pupr if report.agency_id == pupr.agency_id else admin
    handling = {"by": handler, "actor": accounts.Actor.of(handler)}
    when = min(when + timedelta(hours=rng.uniform(4, 120)), now)
    reports.follow_up_report(
        session, settings=settings, report_id=report.id, now=when,
        plan="Tim lapangan dijadwalkan meninjau lokasi dan menangani masalah ini.", **handling,
    )  # fmt: skip
    if stage == "selesai":
        when = min(when + timedelta(hours=rng.uniform(8, 200)), now)
        reports.resolve_report(
            session, settings=settings, report_id=report.id, now=when,
            note="Penanganan selesai dan sudah dicek oleh petugas di lapangan.", **handling,
        )  # fmt: skip
