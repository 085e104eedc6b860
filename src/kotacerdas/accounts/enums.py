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


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.CONSOLE, Permission.TOKENS_OWN}),
    Role.OPD_ADMIN: frozenset({Permission.CONSOLE, Permission.TOKENS_OWN}),
    Role.OPD_STAFF: frozenset({Permission.CONSOLE, Permission.TOKENS_OWN}),
    Role.PIMPINAN: frozenset({Permission.CONSOLE, Permission.AUDIT_READ}),
}


def role_has(role: str, permission: Permission) -> bool:
    """True when `role` grants `permission`."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False
