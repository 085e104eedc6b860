"""Public routes of the assets domain: the asset map (its GeoJSON API and the page `/peta-aset`) and the
"Kondisi Infrastruktur" figures (their JSON API and the page `/kondisi-infrastruktur`, which needs no JavaScript).

Everything here is public and read-only: the map shows active assets only (archived ones are off the map), and
assets carry no personal data. The asset page itself (`/aset/{id}`) lives in `pages.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session

from kotacerdas import charts
from kotacerdas.agencies import service as agencies
from kotacerdas.assets import indicators as figures
from kotacerdas.assets.enums import SCALE_CONDITIONS, UNKNOWN_COLOUR, Condition, ConditionScale, GeometryKind
from kotacerdas.assets.types import list_types, type_name
from kotacerdas.config import Settings
from kotacerdas.deps import OptionalUser, SessionDep, SettingsDep
from kotacerdas.errors import InvalidInput, NotFound
from kotacerdas.i18n import _, get_locale
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.regions import service as regions
from kotacerdas.web.api_inputs import parse_bbox
from kotacerdas.web.forms import kept_filters
from kotacerdas.web.templating import render

router = APIRouter()

GEOJSON_MEDIA_TYPE = "application/geo+json"
MAP_URL = "/api/v1/assets/map"
BOUNDARIES_URL = "/api/v1/regions/geojson?level=kecamatan"
# The map changes when an asset does: a short shared cache evens out many visitors panning the same places.
MAP_CACHE = "public, max-age=30"
FIGURES_CACHE = "public, max-age=60"
# Filter values are type codes or conditions: short, and a few at most.
VALUES_MAX = 40
VALUE_LENGTH_MAX = 40


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON_MEDIA_TYPE


def _values(items: list[str] | None, field: str) -> list[str]:
    """Repeated parameters and comma-separated lists alike (`type=a&type=b` or `type=a,b`), without blanks."""
    values: list[str] = []
    for item in items or ():
        values.extend(part.strip() for part in item.split(",") if part.strip())
    if len(values) > VALUES_MAX or any(len(value) > VALUE_LENGTH_MAX for value in values):
        raise InvalidInput(_("Too many or too long filter values."), errors=[{"field": field, "reason": "too_long"}])
    return values


# --- the JSON API -------------------------------------------------------------------------------------------------


@router.get(
    "/api/v1/assets/map",
    tags=["assets"],
    response_class=GeoJSONResponse,
    responses={
        **PROBLEM_RESPONSES,
        200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "An RFC 7946 FeatureCollection"},
    },
)
def assets_map(
    session: SessionDep,
    bbox: Annotated[
        str,
        Query(
            min_length=7,
            max_length=200,
            description="The viewport: west,south,east,north in degrees (WGS 84)",
            examples=["102.5,-3.5,103.5,-2.5"],
        ),
    ],
    zoom: Annotated[int, Query(ge=0, le=22, description="The map's zoom level: lines get finer, clusters smaller")],
    types: Annotated[
        list[str] | None, Query(alias="type", description="Asset type codes (repeated or comma-separated)")
    ] = None,
    conditions: Annotated[
        list[str] | None,
        Query(
            alias="condition",
            description="Condition values, or `unknown` for not inspected (repeated or comma-separated)",
        ),
    ] = None,
    kecamatan: Annotated[str | None, Query(max_length=20, description="Kecamatan code, e.g. 16.05.09")] = None,
    agency: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Owner OPD id")] = None,
) -> GeoJSONResponse:
    """Active assets in a map viewport as GeoJSON: roads and drains as lines simplified for the zoom, points one by
    one or clustered (with each cluster's count by condition). Each feature carries the asset's id, type code, name,
    condition and colour."""
    # The map index loads on first use (or with the map's preload), not with the app.
    from kotacerdas.assets import mapindex

    collection = mapindex.viewport_geojson(
        session,
        bbox=parse_bbox(bbox),
        zoom=zoom,
        types=_values(types, "type"),
        conditions=_values(conditions, "condition"),
        kecamatan_code=(kecamatan or "").strip() or None,
        agency_id=agency,
    )
    return GeoJSONResponse(collection, headers={"Cache-Control": MAP_CACHE})


@router.get(
    "/api/v1/assets/indicators",
    tags=["assets"],
    response_model=figures.InfrastructureIndicators,
    responses=PROBLEM_RESPONSES,
)
def assets_indicators(session: SessionDep, settings: SettingsDep) -> Any:
    """The "Kondisi Infrastruktur" figures: road length by condition and the "jalan mantap" share (kabupaten roads,
    not inspected ones counted in the total), facilities that work, and assets not inspected for 12 months per OPD."""
    result = figures.infrastructure_indicators(session, settings=settings, locale=get_locale())
    return JSONResponse(
        jsonable_encoder(result), headers={"Cache-Control": FIGURES_CACHE, "Content-Language": get_locale()}
    )


# --- the map page -------------------------------------------------------------------------------------------------


def _map_bounds(session: Session, settings: Settings) -> str | None:
    """South,west,north,east of the regency for the map's first view: its boundary's box, else around the kecamatan
    centres (the report map does the same)."""
    try:
        kabupaten = regions.get_region(session, code=settings.region_code)
    except NotFound:
        kabupaten = None
    box = (
        (kabupaten.min_lat, kabupaten.min_lon, kabupaten.max_lat, kabupaten.max_lon) if kabupaten is not None else None
    )
    if box is not None and None not in box:
        return "{:.5f},{:.5f},{:.5f},{:.5f}".format(*box)
    points = [
        (k.centroid_lat, k.centroid_lon)
        for k in regions.list_kecamatan(session, settings=settings)
        if k.centroid_lat is not None and k.centroid_lon is not None
    ]
    if not points:
        return None
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    pad = max(0.05, 0.15 * max(max(lats) - min(lats), max(lons) - min(lons)))
    return f"{min(lats) - pad:.5f},{min(lons) - pad:.5f},{max(lats) + pad:.5f},{max(lons) + pad:.5f}"


def _condition_options() -> list[tuple[str, str]]:
    from kotacerdas.assets import mapindex

    return [(condition.value, condition.label) for condition in Condition] + [
        (mapindex.UNKNOWN_KEY, _("Not inspected yet"))
    ]


def _legend() -> list[dict[str, Any]]:
    """The condition colours of each scale, and the colour of assets not inspected yet."""
    names = {
        ConditionScale.ROAD: _("Roads"),
        ConditionScale.STRUCTURE: _("Bridges, drains and buildings"),
        ConditionScale.FACILITY: _("Facilities"),
    }
    return [
        {"name": names[scale], "items": [(c.label, c.colour) for c in SCALE_CONDITIONS[scale]]}
        for scale in ConditionScale
    ] + [{"name": _("Not inspected yet"), "items": [(_("Condition not known yet"), UNKNOWN_COLOUR)]}]


@router.get("/peta-aset", response_class=HTMLResponse, include_in_schema=False)
def asset_map_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: OptionalUser,
    type: Annotated[str, Query(max_length=40)] = "",  # noqa: A002 - the public parameter's name
    condition: Annotated[str, Query(max_length=40)] = "",
    kecamatan: Annotated[str, Query(max_length=20)] = "",
    agency: Annotated[str, Query(max_length=12)] = "",
) -> HTMLResponse:
    """The public asset map: one layer per type, coloured by condition, with filters and a legend."""
    from kotacerdas.assets import mapindex

    locale = get_locale()
    kinds = list_types(session)
    kecamatan_list = regions.list_kecamatan(session, settings=settings)
    agency_list = agencies.list_agency_choices(session, active_only=True)
    # Values that are not offered are dropped, as the report list does: a stale link shows everything.
    filters = kept_filters(
        type=type if type in {kind.code for kind in kinds} else "",
        condition=condition if condition in {value for value, _label in _condition_options()} else "",
        kecamatan=kecamatan if kecamatan in {k.code for k in kecamatan_list} else "",
        agency=agency if agency in {str(a.id) for a in agency_list} else "",
    )
    layers = [
        {"code": kind.code, "name": type_name(kind, locale), "line": kind.geometry_kind == GeometryKind.LINE.value}
        for kind in kinds
    ]
    return render(
        request,
        "assets/public_map.html",
        {
            "filters": filters,
            "type_options": [(kind.code, type_name(kind, locale)) for kind in kinds],
            "condition_options": _condition_options(),
            "kecamatan_options": [(k.code, k.name) for k in kecamatan_list],
            "agency_options": [(str(a.id), a.name) for a in agency_list],
            "layers": layers,
            "condition_labels": dict(_condition_options()),
            "condition_colours": {c.value: c.colour for c in Condition} | {mapindex.UNKNOWN_KEY: UNKNOWN_COLOUR},
            "legend": _legend(),
            "map": {
                "bounds": _map_bounds(session, settings),
                "boundaries_url": BOUNDARIES_URL,
                "tile_url": settings.map_tile_url,
                "tile_attribution": settings.map_tile_attribution,
            },
            "map_url": MAP_URL,
        },
    )


# --- the indicators page ------------------------------------------------------------------------------------------


def _pct_text(value: float | None) -> str:
    return "–" if value is None else charts.format_number(value) + "%"


def _road_charts(result: figures.InfrastructureIndicators) -> dict[str, str]:
    road_scale = SCALE_CONDITIONS[ConditionScale.ROAD]
    series = [c.label for c in road_scale] + [_("Not inspected yet")]
    colours = [c.colour for c in road_scale] + [UNKNOWN_COLOUR]
    keys = [c.value for c in road_scale] + [figures.UNKNOWN]
    kabupaten = result.roads
    return {
        "roads_donut": charts.donut_chart(
            [(label, kabupaten.km[key]) for label, key in zip(series, keys, strict=True)],
            title=_("Kabupaten roads by condition"),
            colours=colours,
            unit="km",
            centre_label=_("Mantap %(pct)s") % {"pct": _pct_text(kabupaten.mantap_pct)},
            empty_text=_("No kabupaten road is registered yet."),
        ),
        "roads_by_kecamatan": charts.stacked_bar_chart(
            [(row.name, [row.km[key] for key in keys]) for row in result.roads_by_kecamatan],
            series=series,
            colours=colours,
            unit="km",
            title=_("Kabupaten road length by condition per kecamatan"),
            empty_text=_("No kabupaten road is registered yet."),
        ),
        "mantap_by_kecamatan": charts.bar_chart(
            [(row.name, row.mantap_pct or 0.0) for row in result.roads_by_kecamatan],
            horizontal=True,
            unit="%",
            colours=[Condition.BAIK.colour],
            title=_("Share of kabupaten roads in steady condition (mantap) per kecamatan"),
            empty_text=_("No kabupaten road is registered yet."),
        ),
    }


def _facility_charts(result: figures.InfrastructureIndicators) -> dict[str, str]:
    scale = SCALE_CONDITIONS[ConditionScale.FACILITY]
    series = [c.label for c in scale] + [_("Not inspected yet")]
    colours = [c.colour for c in scale] + [UNKNOWN_COLOUR]
    keys = [c.value for c in scale] + [figures.UNKNOWN]
    return {
        "facilities_by_type": charts.stacked_bar_chart(
            [(row.name, [row.counts[key] for key in keys]) for row in result.facilities_by_type],
            series=series,
            colours=colours,
            percent=True,
            title=_("Facilities by condition per type"),
            empty_text=_("No facility is registered yet."),
        ),
        "facilities_by_kecamatan": charts.bar_chart(
            [(row.name, row.functioning_pct or 0.0) for row in result.facilities_by_kecamatan],
            horizontal=True,
            unit="%",
            colours=[Condition.BERFUNGSI.colour],
            title=_("Share of inspected facilities that work, per kecamatan"),
            empty_text=_("No facility is registered yet."),
        ),
    }


def _stale_chart(result: figures.InfrastructureIndicators) -> str:
    return charts.stacked_bar_chart(
        [(row.name, [row.never_inspected, row.stale - row.never_inspected]) for row in result.stale_by_agency],
        series=[_("Never inspected"), _("Last inspected over 12 months ago")],
        colours=[UNKNOWN_COLOUR, Condition.RUSAK_SEDANG.colour],
        title=_("Assets without an inspection in the last 12 months per OPD"),
        empty_text=_("No asset is registered yet."),
    )


@router.get("/kondisi-infrastruktur", response_class=HTMLResponse, include_in_schema=False)
def indicators_page(request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser) -> HTMLResponse:
    """Kondisi Infrastruktur: the jalan mantap share, road length by condition, facilities that work and assets not
    inspected for 12 months, as charts and tables drawn on the server (no JavaScript needed)."""
    result = figures.infrastructure_indicators(session, settings=settings, locale=get_locale())
    road_scale = SCALE_CONDITIONS[ConditionScale.ROAD]
    facility_scale = SCALE_CONDITIONS[ConditionScale.FACILITY]
    return render(
        request,
        "assets/public_indicators.html",
        {
            "result": result,
            "charts": {**_road_charts(result), **_facility_charts(result), "stale": _stale_chart(result)},
            "road_columns": [(c.value, c.label) for c in road_scale] + [(figures.UNKNOWN, _("Not inspected yet"))],
            "facility_columns": [(c.value, c.label) for c in facility_scale]
            + [(figures.UNKNOWN, _("Not inspected yet"))],
            "format_number": charts.format_number,
            "format_pct": _pct_text,
        },
    )
