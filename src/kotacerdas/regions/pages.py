"""HTML pages of the regions domain."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from kotacerdas.deps import OptionalUser, SessionDep, SettingsDep
from kotacerdas.regions import service
from kotacerdas.regions.enums import RegionLevel
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

OUTLINE_WIDTH = 320


@dataclass(frozen=True)
class Outline:
    """A region's boundary as an SVG path, drawn on the server so the page needs no script."""

    view_box: str
    path: str


def outline_of(geometry_text: str | None) -> Outline | None:
    """The boundary scaled into a OUTLINE_WIDTH-wide box (north up), simplified to about a pixel."""
    if not geometry_text:
        return None
    import shapely  # loaded on first use: start-up time

    geometry = shapely.from_geojson(geometry_text)
    min_x, min_y, max_x, max_y = geometry.bounds
    scale = OUTLINE_WIDTH / max(max_x - min_x, max_y - min_y, 1e-9)
    geometry = geometry.simplify(1 / scale, preserve_topology=True)
    parts = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        for ring in (polygon.exterior, *polygon.interiors):
            points = " ".join(f"{(x - min_x) * scale:.1f},{(max_y - y) * scale:.1f}" for x, y in ring.coords)
            parts.append(f"M{points}Z")
    width, height = (max_x - min_x) * scale, (max_y - min_y) * scale
    return Outline(view_box=f"0 0 {width:.1f} {height:.1f}", path=" ".join(parts))


@router.get("/wilayah", response_class=HTMLResponse)
def region_list(request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser) -> HTMLResponse:
    """The kabupaten's kecamatan, each with its desa and kelurahan."""
    tree = service.list_kecamatan_with_villages(session, settings=settings)
    return render(
        request,
        "regions/list.html",
        {"tree": tree, "village_total": sum(len(villages) for _k, villages in tree), "level_of": RegionLevel},
    )


@router.get("/wilayah/{code}", response_class=HTMLResponse)
def region_detail(
    request: Request, session: SessionDep, _user: OptionalUser, code: str = Path(max_length=20)
) -> HTMLResponse:
    """One region: its place in the hierarchy, its children and its boundary."""
    family = service.get_region_family(session, code=code)
    return render(
        request,
        "regions/detail.html",
        {
            "region": family.region,
            "parent": family.parent,
            "children": family.children,
            "outline": outline_of(family.region.geometry),
            "level_of": RegionLevel,
        },
    )
