"""Event groups, categories, alert levels, statuses and sources, each with its labels and colour."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class EventGroup(LabelledEnum):
    """The four kinds of event; only disasters (bencana) carry an alert level."""

    BENCANA = ("bencana", "Bencana", "Disaster", "#c62828")
    GANGGUAN_LAYANAN = ("gangguan_layanan", "Gangguan layanan", "Service disruption", "#ef6c00")
    KEGIATAN_PUBLIK = ("kegiatan_publik", "Kegiatan publik", "Public activity", "#1e88e5")
    INFORMASI = ("informasi", "Informasi", "Information", "#5f6b7a")


class EventCategory(LabelledEnum):
    """What happens; the group follows from the category (CATEGORY_GROUP)."""

    BANJIR = ("banjir", "Banjir", "Flood", "#1565c0")
    TANAH_LONGSOR = ("tanah_longsor", "Tanah longsor", "Landslide", "#6d4c41")
    KARHUTLA = ("karhutla", "Kebakaran hutan dan lahan", "Forest and land fire", "#e65100")
    PUTING_BELIUNG = ("puting_beliung", "Puting beliung", "Whirlwind", "#546e7a")
    KEBAKARAN_PERMUKIMAN = ("kebakaran_permukiman", "Kebakaran permukiman", "Residential fire", "#d84315")
    JALAN_DITUTUP = ("jalan_ditutup", "Jalan ditutup", "Road closed", "#ef6c00")
    JEMBATAN_PUTUS = ("jembatan_putus", "Jembatan putus", "Bridge down", "#bf360c")
    LISTRIK_PADAM = ("listrik_padam", "Listrik padam", "Power cut", "#f9a825")
    AIR_BERSIH_TERGANGGU = ("air_bersih_terganggu", "Air bersih terganggu", "Water supply disrupted", "#0277bd")
    TELEKOMUNIKASI_TERGANGGU = (
        "telekomunikasi_terganggu",
        "Jaringan telekomunikasi terganggu",
        "Telecommunication network disrupted",
        "#7b1fa2",
    )
    ACARA = ("acara", "Acara", "Event", "#1e88e5")
    LAYANAN_KELILING = ("layanan_keliling", "Layanan keliling", "Mobile service", "#00897b")
    POSYANDU_VAKSINASI = ("posyandu_vaksinasi", "Posyandu/vaksinasi", "Posyandu/vaccination", "#43a047")
    INFORMASI = ("informasi", "Informasi", "Information", "#5f6b7a")

    @property
    def group(self) -> EventGroup:
        return CATEGORY_GROUP[self]

    @property
    def is_hazard(self) -> bool:
        """True for disasters, which carry an alert level and a CAP warning."""
        return CATEGORY_GROUP[self] is EventGroup.BENCANA

    @property
    def is_activity(self) -> bool:
        """True for public activities, which go into the iCalendar feeds."""
        return CATEGORY_GROUP[self] is EventGroup.KEGIATAN_PUBLIK


CATEGORY_GROUP: dict[EventCategory, EventGroup] = {
    EventCategory.BANJIR: EventGroup.BENCANA,
    EventCategory.TANAH_LONGSOR: EventGroup.BENCANA,
    EventCategory.KARHUTLA: EventGroup.BENCANA,
    EventCategory.PUTING_BELIUNG: EventGroup.BENCANA,
    EventCategory.KEBAKARAN_PERMUKIMAN: EventGroup.BENCANA,
    EventCategory.JALAN_DITUTUP: EventGroup.GANGGUAN_LAYANAN,
    EventCategory.JEMBATAN_PUTUS: EventGroup.GANGGUAN_LAYANAN,
    EventCategory.LISTRIK_PADAM: EventGroup.GANGGUAN_LAYANAN,
    EventCategory.AIR_BERSIH_TERGANGGU: EventGroup.GANGGUAN_LAYANAN,
    EventCategory.TELEKOMUNIKASI_TERGANGGU: EventGroup.GANGGUAN_LAYANAN,
    EventCategory.ACARA: EventGroup.KEGIATAN_PUBLIK,
    EventCategory.LAYANAN_KELILING: EventGroup.KEGIATAN_PUBLIK,
    EventCategory.POSYANDU_VAKSINASI: EventGroup.KEGIATAN_PUBLIK,
    EventCategory.INFORMASI: EventGroup.INFORMASI,
}


class AlertLevel(LabelledEnum):
    """BNPB/BPBD warning levels, lowest first; `rank` orders them for "at least this level"."""

    NORMAL = ("normal", "Normal", "Normal", "#2e7d32")
    WASPADA = ("waspada", "Waspada", "Alert", "#f9a825")
    SIAGA = ("siaga", "Siaga", "Standby", "#ef6c00")
    AWAS = ("awas", "Awas", "Warning", "#c62828")

    @property
    def rank(self) -> int:
        return list(AlertLevel).index(self)


class EventStatus(LabelledEnum):
    """Where an event is. `draf` waits for approval and is never public; the rest are."""

    DRAF = ("draf", "Menunggu persetujuan", "Awaiting approval", "#78909c")
    AKTIF = ("aktif", "Aktif", "Active", "#c62828")
    DIPERBARUI = ("diperbarui", "Diperbarui", "Updated", "#ef6c00")
    SELESAI = ("selesai", "Selesai", "Ended", "#2e7d32")
    DIBATALKAN = ("dibatalkan", "Dibatalkan", "Cancelled", "#5f6b7a")


# Events the public sees, and those still going on.
PUBLIC_STATUSES = frozenset({EventStatus.AKTIF, EventStatus.DIPERBARUI, EventStatus.SELESAI, EventStatus.DIBATALKAN})
ONGOING_STATUSES = frozenset({EventStatus.AKTIF, EventStatus.DIPERBARUI})


class EventSource(LabelledEnum):
    """Who raised an event."""

    OPERATOR = ("operator", "Operator/BPBD", "Operator/BPBD")
    SENSOR_RULE = ("sensor_rule", "Aturan sensor", "Sensor rule")
    REPORT_CLUSTER = ("report_cluster", "Kumpulan aduan warga", "Cluster of citizen reports")


class UpdateKind(LabelledEnum):
    """A line of an event's timeline."""

    SUBMITTED = ("submitted", "Diajukan untuk persetujuan", "Submitted for approval")
    PUBLISHED = ("published", "Diterbitkan", "Published")
    UPDATED = ("updated", "Diperbarui", "Updated")
    ENDED = ("ended", "Selesai", "Ended")
    CANCELLED = ("cancelled", "Dibatalkan", "Cancelled")


class LinkKind(LabelledEnum):
    """What an event is linked to."""

    REPORT = ("report", "Aduan warga", "Citizen report")
    ASSET = ("asset", "Aset", "Asset")
    DEVICE = ("device", "Perangkat", "Device")


# The impact figures of the BPBD format (kaji cepat), as stored keys with their labels.
IMPACT_FIELDS: dict[str, tuple[str, str]] = {
    "kk": ("KK terdampak", "Families affected"),
    "jiwa": ("Jiwa terdampak", "People affected"),
    "rumah": ("Rumah terdampak", "Houses affected"),
    "fasilitas": ("Fasilitas terdampak", "Facilities affected"),
    "pengungsi": ("Pengungsi", "Displaced people"),
    "meninggal": ("Korban meninggal", "Dead"),
    "hilang": ("Korban hilang", "Missing"),
    "luka": ("Korban luka", "Injured"),
}
