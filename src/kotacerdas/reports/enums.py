"""Status, type, SLA tier and category group of citizen reports, each with its labels and colour."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class ReportStatus(LabelledEnum):
    """Where a report is in the SP4N-LAPOR! workflow."""

    BARU = ("baru", "Baru", "New", "#546e7a")
    TERVERIFIKASI = ("terverifikasi", "Terverifikasi", "Verified", "#1e88e5")
    DIDISPOSISIKAN = ("didisposisikan", "Didisposisikan", "Assigned to an agency", "#5e35b1")
    DITINDAKLANJUTI = ("ditindaklanjuti", "Ditindaklanjuti", "In progress", "#f57c00")
    SELESAI = ("selesai", "Selesai", "Resolved", "#2e7d32")
    DITOLAK = ("ditolak", "Ditolak", "Rejected", "#c62828")
    BUKAN_WEWENANG = ("bukan_wewenang", "Bukan wewenang", "Not our authority", "#8d6e63")
    DUPLIKAT = ("duplikat", "Duplikat", "Duplicate", "#78909c")
    DIARSIPKAN = ("diarsipkan", "Diarsipkan", "Archived", "#9e9e9e")

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES

    @property
    def open311(self) -> str:
        """The Open311 GeoReport v2 status: `open` or `closed`."""
        return "open" if self.is_open else "closed"


OPEN_STATUSES = frozenset(
    {ReportStatus.BARU, ReportStatus.TERVERIFIKASI, ReportStatus.DIDISPOSISIKAN, ReportStatus.DITINDAKLANJUTI}
)
CLOSED_STATUSES = frozenset(set(ReportStatus) - OPEN_STATUSES)
# Statuses an OPD works on: disposed to it and not yet closed.
WITH_AGENCY_STATUSES = frozenset({ReportStatus.DIDISPOSISIKAN, ReportStatus.DITINDAKLANJUTI})


class ReportType(LabelledEnum):
    """What the citizen sends, as SP4N-LAPOR! classifies it."""

    PENGADUAN = ("pengaduan", "Pengaduan", "Complaint", "#c62828")
    ASPIRASI = ("aspirasi", "Aspirasi", "Suggestion", "#1e88e5")
    PERMINTAAN_INFORMASI = ("permintaan_informasi", "Permintaan informasi", "Information request", "#00897b")


class SlaTier(LabelledEnum):
    """Resolution-time tier of a category; `default_days` are working days."""

    RINGAN = ("ringan", "Ringan (2 hari kerja)", "Light (2 working days)")
    NORMATIF = ("normatif", "Normatif (5 hari kerja)", "Normative (5 working days)")
    NON_PENGAWASAN = ("non_pengawasan", "Non-pengawasan (14 hari kerja)", "Non-supervisory (14 working days)")
    PENGAWASAN = ("pengawasan", "Pengawasan (60 hari kerja)", "Supervisory (60 working days)")

    @property
    def default_days(self) -> int:
        return {"ringan": 2, "normatif": 5, "non_pengawasan": 14, "pengawasan": 60}[self.value]


class CategoryGroup(LabelledEnum):
    """The group a report category belongs to."""

    JALAN_JEMBATAN = ("jalan_jembatan", "Jalan & Jembatan", "Roads & bridges", "#6d4c41")
    DRAINASE_BANJIR = ("drainase_banjir", "Drainase & Banjir", "Drainage & flooding", "#0277bd")
    PENERANGAN_JALAN = ("penerangan_jalan", "Penerangan Jalan Umum", "Street lighting", "#f9a825")
    SAMPAH_KEBERSIHAN = ("sampah_kebersihan", "Sampah & Kebersihan", "Waste & cleanliness", "#558b2f")
    AIR_BERSIH = ("air_bersih", "Air Bersih", "Clean water", "#0097a7")
    FASILITAS_KESEHATAN = ("fasilitas_kesehatan", "Fasilitas Kesehatan", "Health facilities", "#d81b60")
    FASILITAS_PENDIDIKAN = ("fasilitas_pendidikan", "Fasilitas Pendidikan", "Education facilities", "#3949ab")
    KETERTIBAN_UMUM = ("ketertiban_umum", "Ketertiban Umum", "Public order", "#5d4037")
    PELAYANAN_ADMINISTRASI = ("pelayanan_administrasi", "Pelayanan Administrasi", "Administrative services", "#455a64")
    LAINNYA = ("lainnya", "Lainnya", "Other", "#757575")


class UpdateKind(LabelledEnum):
    """One entry on a report's timeline."""

    SUBMITTED = ("submitted", "Laporan diterima", "Report received")
    VERIFIED = ("verified", "Diverifikasi", "Verified")
    DISPOSED = ("disposed", "Didisposisikan ke OPD", "Assigned to an agency")
    REDISPOSED = ("redisposed", "Dialihkan ke OPD lain", "Moved to another agency")
    FOLLOWED_UP = ("followed_up", "Rencana tindak lanjut", "Follow-up plan")
    RESOLVED = ("resolved", "Selesai ditangani", "Resolved")
    REJECTED = ("rejected", "Ditolak", "Rejected")
    NOT_AUTHORITY = ("not_authority", "Bukan wewenang pemerintah kabupaten", "Not the regency's authority")
    DUPLICATE = ("duplicate", "Ditandai duplikat", "Marked as duplicate")
    ARCHIVED = ("archived", "Diarsipkan", "Archived")
    REOPENED = ("reopened", "Dibuka kembali oleh pelapor", "Reopened by the reporter")
    RATED = ("rated", "Penilaian pelapor", "Reporter's rating")
    COMMENT = ("comment", "Tanggapan", "Response")
    NOTE = ("note", "Catatan internal", "Internal note")
    ASSIGNED = ("assigned", "Ditugaskan ke petugas", "Assigned to a staff member")
    HIDDEN = ("hidden", "Disembunyikan dari publik", "Hidden from the public")
    UNHIDDEN = ("unhidden", "Ditampilkan kembali", "Shown again")
    BREACH = ("breach", "Melewati tenggat", "Deadline missed")


class Deadline(LabelledEnum):
    """The three SLA deadlines of a report."""

    VERIFY = ("verify", "Verifikasi", "Verification")
    FOLLOW_UP = ("follow_up", "Rencana tindak lanjut", "Follow-up plan")
    RESOLVE = ("resolve", "Penyelesaian", "Resolution")


class PhotoKind(LabelledEnum):
    """Whether a photo came with the report or shows the work done."""

    REPORT = ("report", "Foto laporan", "Report photo")
    AFTER = ("after", "Foto hasil", "After photo")


class ReportSource(LabelledEnum):
    """The channel a report came in through."""

    WEB = ("web", "Portal web", "Web portal")
    API = ("api", "API", "API")
    OPEN311 = ("open311", "Open311", "Open311")
