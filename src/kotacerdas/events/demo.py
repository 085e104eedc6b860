"""Demo events of Musi Rawas: a flood warning on the Kelingi, a road closed at Desa Mandi Aur, a power cut, a
mobile health service and a posyandu day coming to a desa, and a landslide that is over. Seeded once, relative to
the time the demo runs, so that the portal's live page has something to show."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.events import service
from kotacerdas.events.enums import EventSource
from kotacerdas.regions import service as regions

# (category, level, title, description, instruction, region names (desa first, else kecamatan), hours from now to
# the start, hours it lasts, impacts, ended)
DEMO_EVENTS = (
    ("tanah_longsor", "waspada", "Longsor di ruas jalan Lubuk Rumbai",
     "Tebing setinggi 6 m longsor menutup separuh badan jalan. Alat berat Dinas PUPR sudah membersihkan material.",
     None, ("Muara Kelingi",), -72, 24, {"rumah": 2}, True),
    ("banjir", "siaga", "Banjir Sungai Kelingi di Muara Kelingi",
     "Tinggi muka air Sungai Kelingi naik 1,5 m sejak dini hari; permukiman di tepi sungai tergenang 40-70 cm.",
     "Warga bantaran sungai diminta mengungsi ke balai desa dan mengamankan dokumen penting.",
     ("Muara Kelingi",), -6, 48, {"kk": 120, "jiwa": 430, "rumah": 95, "pengungsi": 60}, False),
    ("jalan_ditutup", None, "Jalan Desa Mandi Aur ditutup sementara",
     "Jembatan darurat di Desa Mandi Aur sedang diperbaiki; kendaraan roda empat dialihkan lewat jalan kebun.",
     "Gunakan jalur alternatif melalui Desa Lubuk Muda.", ("Mandi Aur", "Muara Beliti"), -2, 30, {}, False),
    ("listrik_padam", None, "Pemadaman listrik bergilir di Tugumulyo",
     "PLN memperbaiki jaringan tegangan menengah; listrik padam bergilir pukul 09.00-15.00 WIB.",
     None, ("Tugumulyo",), 18, 6, {}, False),
    ("layanan_keliling", None, "Puskesmas keliling dan perekaman KTP-el",
     "Pemeriksaan kesehatan gratis dan perekaman KTP-el oleh Disdukcapil di balai desa.",
     "Bawa Kartu Keluarga untuk perekaman KTP-el.", ("Selangit",), 44, 5, {}, False),
    ("posyandu_vaksinasi", None, "Posyandu dan imunisasi campak-rubela",
     "Penimbangan balita dan imunisasi MR untuk anak usia 9 bulan sampai 15 tahun.",
     "Bawa buku KIA.", ("Purwodadi",), 68, 4, {}, False),
)  # fmt: skip


def _region_codes(session: Session, settings: Settings, names: tuple[str, ...]) -> list[str]:
    """The desa of the first name that is a desa, else the kecamatan of the names."""
    families = regions.list_kecamatan_with_villages(session, settings=settings)
    for name in names:
        for _kecamatan, villages in families:
            for village in villages:
                if village.name.lower() == name.lower():
                    return [village.code]
    return [kecamatan.code for kecamatan, _villages in families if kecamatan.name in names][:1]


def seed_demo_events(session: Session, *, settings: Settings) -> int:
    """Publish the demo events as the demo operator; nothing when events exist already."""
    if service.list_console_events(session, limit=1):
        return 0
    operator = accounts.get_user_by_username(session, username="operator")
    actor = accounts.Actor.system("demo")
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    count = 0
    for category, level, title, description, instruction, names, start, hours, impacts, ended in DEMO_EVENTS:
        codes = _region_codes(session, settings, names)
        if not codes:
            continue
        data = service.EventInput(
            category=category, level=level, title=title, description=description, instruction=instruction,
            starts_at=now + timedelta(hours=start), ends_at=now + timedelta(hours=start + hours), region_codes=codes,
            impacts=impacts,
        )  # fmt: skip
        event = service.raise_event(
            session, settings=settings, data=data, by=operator, actor=actor, source=EventSource.OPERATOR,
            now=now + timedelta(hours=min(start, 0)),
        )  # fmt: skip
        if ended:
            service.end_event(
                session, settings=settings, event_id=event.id, by=operator, actor=actor,
                note="Material longsor sudah dibersihkan; jalan dapat dilalui.",
                now=now + timedelta(hours=start + hours),
            )  # fmt: skip
        count += 1
    return count
