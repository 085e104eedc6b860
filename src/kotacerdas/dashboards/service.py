"""What the public home and the console home show, gathered from the other domains' services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.config import Settings
from kotacerdas.i18n import _
from kotacerdas.regions import service as regions
from kotacerdas.reports import service as reports


@dataclass(frozen=True)
class KecamatanSummary:
    """A kecamatan as the home page lists it."""

    code: str
    name: str
    villages: int
    centroid_lat: float | None
    centroid_lon: float | None


@dataclass(frozen=True)
class MapBounds:
    """South-west and north-east corners (lat, lon) for the map's first view."""

    south: float
    west: float
    north: float
    east: float

    def as_attribute(self) -> str:
        return f"{self.south:.5f},{self.west:.5f},{self.north:.5f},{self.east:.5f}"


@dataclass(frozen=True)
class MenuItem:
    """One entry of the console menu; `href` is None for a capability that is not there yet."""

    key: str
    label: str
    description: str
    href: str | None


def list_kecamatan_summaries(session: Session, *, settings: Settings) -> list[KecamatanSummary]:
    """The regency's kecamatan by name, each with its number of desa and kelurahan."""
    summaries = [
        KecamatanSummary(
            code=kecamatan.code,
            name=kecamatan.name,
            villages=len(villages),
            centroid_lat=kecamatan.centroid_lat,
            centroid_lon=kecamatan.centroid_lon,
        )
        for kecamatan, villages in regions.list_kecamatan_with_villages(session, settings=settings)
    ]
    return sorted(summaries, key=lambda item: (item.name.casefold(), item.code))


def map_bounds(kecamatan: list[KecamatanSummary]) -> MapBounds | None:
    """A first view around the kecamatan centroids (the boundaries refine it in the browser), or None."""
    points = [
        (k.centroid_lat, k.centroid_lon) for k in kecamatan if k.centroid_lat is not None and k.centroid_lon is not None
    ]
    if not points:
        return None
    lats = [lat for lat, _lon in points]
    lons = [lon for _lat, lon in points]
    # Centroids sit inside the kecamatan; pad so the outer kecamatan are not cut at the edge.
    pad = max(0.05, 0.15 * max(max(lats) - min(lats), max(lons) - min(lons)))
    return MapBounds(min(lats) - pad, min(lons) - pad, max(lats) + pad, max(lons) + pad)


def reports_summary(session: Session, *, settings: Settings) -> reports.PublicReportCounts:
    """The beranda's citizen-reports card: public reports being handled now, and resolved this month."""
    return reports.count_public_reports(session, settings=settings)


def _reports_menu(user: User) -> list[MenuItem]:
    """The citizen-reports entries of the console menu: the inbox first, as it is the daily work."""
    staff = accounts.user_can(user, Permission.REPORTS_TRIAGE) or accounts.user_can(user, Permission.REPORTS_HANDLE)
    entries = [
        (
            staff,
            MenuItem("aduan", _("Report inbox"), _("Citizen reports, the OPD inbox and deadlines."), "/konsol/aduan"),
        ),
        (
            accounts.user_can(user, Permission.REPORTS_CATEGORIES),
            MenuItem(
                "kategori-aduan",
                _("Report categories"),
                _("What citizens can report, and which OPD handles it."),
                "/konsol/kategori-aduan",
            ),
        ),
        (
            accounts.user_can(user, Permission.REPORTS_FIGURES),
            MenuItem(
                "kinerja-aduan",
                _("Report handling performance"),
                _("The OPD league table: reports handled within the deadlines."),
                "/konsol/kinerja-aduan",
            ),
        ),
        (
            staff,
            MenuItem(
                "template-tanggapan",
                _("Response templates"),
                _("Ready-made texts for follow-up plans and responses."),
                "/konsol/template-tanggapan",
            ),
        ),
    ]
    return [item for allowed, item in entries if allowed]


def _assets_menu(user: User) -> list[MenuItem]:
    """The assets-registry entries of the console menu: the registry for the OPDs that keep it, the types for
    admins."""
    entries = [
        (
            accounts.user_can(user, Permission.ASSETS_EDIT),
            MenuItem("aset", _("Assets"), _("Infrastructure and facilities with their condition."), "/konsol/aset"),
        ),
        (
            accounts.user_can(user, Permission.ASSETS_TYPES),
            MenuItem(
                "jenis-aset",
                _("Asset types"),
                _("What the registry holds, and the attributes of each type."),
                "/konsol/jenis-aset",
            ),
        ),
    ]
    return [item for allowed, item in entries if allowed]


def _sensors_menu(user: User) -> list[MenuItem]:
    """The connected-devices entries of the console menu: the OPD's devices and their keys, the warning rules."""
    entries = [
        (
            accounts.user_can(user, Permission.SENSORS_MANAGE),
            MenuItem("sensor", _("Sensor devices"), _("Devices, their health and their keys."), "/konsol/sensor"),
        ),
        (
            accounts.user_can(user, Permission.SENSORS_RULES),
            MenuItem(
                "aturan-sensor",
                _("Sensor warning rules"),
                _("Thresholds that raise flood and other warnings by themselves."),
                "/konsol/sensor/aturan",
            ),
        ),
    ]
    return [item for allowed, item in entries if allowed]


def console_menu(user: User | None) -> list[MenuItem]:
    """The console menu for `user`: what their role may open, then the capabilities still to come."""
    if user is None:
        return []
    available = [
        (
            Permission.AGENCIES_MANAGE,
            MenuItem("opd", _("Agencies (OPD)"), _("Register the regional agencies."), "/konsol/opd"),
        ),
        (
            Permission.USERS_MANAGE,
            MenuItem("pengguna", _("Users"), _("Staff accounts and their roles."), "/konsol/pengguna"),
        ),
        (
            Permission.TOKENS_OWN,
            MenuItem("token", _("API tokens"), _("Tokens for other systems and devices."), "/konsol/token"),
        ),
        (
            Permission.NOTIFICATIONS_MANAGE,
            MenuItem("notifikasi", _("Outbox"), _("Outgoing emails and webhook calls."), "/konsol/notifikasi"),
        ),
        (
            Permission.NOTIFICATIONS_MANAGE,
            MenuItem("webhook", _("Webhooks"), _("Send events to other systems."), "/konsol/webhook"),
        ),
        (
            Permission.AUDIT_READ,
            MenuItem("audit", _("Audit log"), _("Who changed what, and when."), "/konsol/audit"),
        ),
    ]
    items = _reports_menu(user) + _assets_menu(user)
    if accounts.user_can(user, Permission.EVENTS_PUBLISH):
        items.append(
            MenuItem(
                "peristiwa", _("Events"), _("Publish incidents, warnings and public activities."), "/konsol/peristiwa"
            )
        )
    items += [item for permission, item in available if accounts.user_can(user, permission)]
    items += _sensors_menu(user)
    items += [
        MenuItem("rencana", _("Master plan"), _("Smart city master plan programmes and monitoring."), None),
    ]
    return items
