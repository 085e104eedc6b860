"""Server-rendered pages: one Jinja2 environment per app, with the request's language and helpers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kotacerdas import __version__
from kotacerdas.config import Settings
from kotacerdas.i18n import LANGUAGE_NAMES, SUPPORTED_LOCALES, get_locale, gettext, ngettext

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def make_environment(settings: Settings) -> Environment:
    """The Jinja2 environment of an app: autoescaping, gettext in the request's language, display helpers."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html", "xml", "svg")),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    zone = settings.zone

    def local_time(value: datetime | None, fmt: str = "%d-%m-%Y %H:%M") -> str:
        """A UTC datetime shown in the regency's zone, with the zone's abbreviation (WIB, WITA, WIT)."""
        if value is None:
            return "–"
        local = value.astimezone(zone)
        return f"{local.strftime(fmt)} {local.tzname()}"

    env.filters["local_time"] = local_time

    def console_menu(user):
        """The console menu for `user`, so that every page extending dashboards/console_base.html shows it."""
        # Imported on use (as deps in render()): the domain services import far more than templating may at load.
        from kotacerdas.dashboards.service import console_menu as build_menu

        return build_menu(user)

    env.globals.update(
        settings=settings,
        version=__version__,
        supported_locales=SUPPORTED_LOCALES,
        language_names=LANGUAGE_NAMES,
        get_locale=get_locale,
        console_menu=console_menu,
    )
    return env


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render `template` for this request."""
    from kotacerdas.deps import request_csrf_token

    env: Environment = request.app.state.templates
    user = getattr(request.state, "current_user", None)
    values = {
        "request": request,
        "current_user": user,
        "locale": get_locale(),
        "csrf_token": request_csrf_token(request),
        "url_for": request.url_for,
        "current_path": request.url.path,
        **(context or {}),
    }
    html = env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)
