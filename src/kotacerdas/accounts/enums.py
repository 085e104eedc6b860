"""Roles and permissions."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class Role(LabelledEnum):
    """What a staff account may do; `opd_*` roles are scoped to one OPD."""

    ADMIN = ("admin", "Admin (Diskominfo)", "Administrator (Diskominfo)", "#8e24aa")
    OPERATOR = ("operator", "Operator (command center/BPBD)", "Operator (command center/BPBD)", "#1e88e5")
    OPD_ADMIN = ("opd_admin", "Admin OPD", "Agency administrator", "#00897b")
    OPD_STAFF = ("opd_staff", "Staf OPD", "Agency staff", "#43a047")
    PIMPINAN = ("pimpinan", "Pimpinan (baca saja)", "Leadership (read-only)", "#6d4c41")

    @property
    def needs_agency(self) -> bool:
        return self in (Role.OPD_ADMIN, Role.OPD_STAFF)


class Permission(LabelledEnum):
    """A single thing a role may do. Pages and API check these through one dependency."""

    CONSOLE = ("console.access", "Membuka konsol staf", "Open the staff console")
    REGIONS_MANAGE = ("regions.manage", "Mengelola wilayah", "Manage regions")
    AGENCIES_MANAGE = ("agencies.manage", "Mengelola OPD", "Manage agencies")
    USERS_MANAGE = ("users.manage", "Mengelola pengguna", "Manage users")
    AUDIT_READ = ("audit.read", "Membaca log audit", "Read the audit log")
    TOKENS_OWN = ("tokens.own", "Membuat token API sendiri", "Create own API tokens")
    REPORTS_TRIAGE = (
        "reports.triage",
        "Memverifikasi dan mendisposisikan semua aduan",
        "Verify and dispose every citizen report",
    )
    REPORTS_HANDLE = ("reports.handle", "Menangani aduan OPD sendiri", "Handle own agency's citizen reports")
    REPORTS_CONTACT = ("reports.contact", "Melihat kontak pelapor", "See reporters' contact details")
    REPORTS_CATEGORIES = ("reports.categories", "Mengelola kategori aduan", "Manage report categories")
    REPORTS_FIGURES = ("reports.figures", "Melihat kinerja penanganan aduan", "See report handling figures")
    ASSETS_EDIT = ("assets.edit", "Mengelola aset OPD sendiri", "Manage own agency's assets")
    ASSETS_IMPORT = ("assets.import", "Mengimpor data aset", "Import asset data")
    ASSETS_TYPES = ("assets.types", "Mengelola jenis aset", "Manage asset types")
    EVENTS_PUBLISH = ("events.publish", "Menerbitkan peristiwa dan peringatan", "Publish events and warnings")
    EVENTS_APPROVE = ("events.approve", "Menyetujui peristiwa", "Approve events")
    SENSORS_MANAGE = ("sensors.manage", "Mengelola perangkat sensor OPD sendiri", "Manage own agency's devices")
    SENSORS_RULES = ("sensors.rules", "Mengelola aturan peringatan sensor", "Manage sensor warning rules")
    NOTIFICATIONS_MANAGE = (
        "notifications.manage",
        "Mengelola kotak keluar dan webhook",
        "Manage the outbox and webhooks",
    )


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    # The command center triages reports; handling them is the OPDs' work. Seeing a reporter's contact details is
    # its own permission (UU 27/2022): OPD admins have it, their staff do not.
    # The command center and BPBD publish events; with approval on, another operator (or an admin) approves.
    # Devices are managed by the OPD that owns them, as assets are; the warning rules on them by the command center.
    Role.OPERATOR: frozenset(
        {
            Permission.CONSOLE,
            Permission.TOKENS_OWN,
            Permission.REPORTS_TRIAGE,
            Permission.REPORTS_FIGURES,
            Permission.EVENTS_PUBLISH,
            Permission.EVENTS_APPROVE,
            Permission.SENSORS_RULES,
        }
    ),
    Role.OPD_ADMIN: frozenset(
        {
            Permission.CONSOLE,
            Permission.TOKENS_OWN,
            Permission.REPORTS_HANDLE,
            Permission.REPORTS_CONTACT,
            Permission.REPORTS_FIGURES,
            Permission.ASSETS_EDIT,
            Permission.ASSETS_IMPORT,
            Permission.SENSORS_MANAGE,
        }
    ),
    Role.OPD_STAFF: frozenset(
        {
            Permission.CONSOLE,
            Permission.TOKENS_OWN,
            Permission.REPORTS_HANDLE,
            Permission.ASSETS_EDIT,
            Permission.SENSORS_MANAGE,
        }
    ),
    Role.PIMPINAN: frozenset({Permission.CONSOLE, Permission.AUDIT_READ, Permission.REPORTS_FIGURES}),
}


def role_has(role: str, permission: Permission) -> bool:
    """True when `role` grants `permission`."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False
