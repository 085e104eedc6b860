"""Public home (beranda) and the staff console home."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kotacerdas import charts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.dashboards import service
from kotacerdas.deps import OptionalUser, SessionDep, SettingsDep, require
from kotacerdas.events import service as events
from kotacerdas.i18n import _
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

ConsoleUser = Annotated[User, Depends(require(Permission.CONSOLE))]

BOUNDARIES_URL = "/api/v1/regions/geojson"
KECAMATAN_LIST_URL = "/api/v1/regions?level=kecamatan&per_page=200"
ACTIVE_EVENTS = events.EventFilters(ongoing_only=True)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser) -> HTMLResponse:
    """The public home: what the portal is, the regency's map, its kecamatan and what is coming."""
    kecamatan = service.list_kecamatan_summaries(session, settings=settings)
    villages_chart = charts.bar_chart(
        [(item.name, item.villages) for item in kecamatan],
        title=_("Villages (desa and kelurahan) per kecamatan"),
        horizontal=True,
        width=360,
        chart_id="chart-villages-per-kecamatan",
        empty_text=_("No regions have been loaded yet."),
    )
    return render(
        request,
        "dashboards/home.html",
        {
            "kecamatan": kecamatan,
            "village_total": sum(item.villages for item in kecamatan),
            "map_bounds": service.map_bounds(kecamatan),
            "boundaries_url": BOUNDARIES_URL,
            "kecamatan_list_url": KECAMATAN_LIST_URL,
            "villages_chart": villages_chart,
            "reports_summary": service.reports_summary(session, settings=settings),
            # Active warnings come first on the beranda; the page announces the events' feeds.
            "warnings": events.public_events(
                session, settings=settings, events=events.list_public_events(session, filters=ACTIVE_EVENTS, limit=6)
            ),
            "feed_links": events.feed_links(),
        },
    )


@router.get("/konsol", response_class=HTMLResponse)
def console_home(request: Request, user: ConsoleUser) -> HTMLResponse:
    """The staff console's home: a greeting and the menu of what the user's role may open."""
    return render(
        request,
        "dashboards/console_home.html",
        {"role_label": Role(user.role).label, "menu": service.console_menu(user)},
    )
