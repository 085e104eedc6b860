"""Asset geometry: GeoJSON (or WKT) in, a checked shapely geometry out, with what the registry stores of it.

Points for point types; LineString or MultiLineString for line types (a road segment may be in several pieces).
Coordinates are WGS 84 longitude/latitude (RFC 7946); lengths are geodesic (haversine), in kilometres.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kotacerdas.assets.enums import GeometryKind
from kotacerdas.i18n import _

EARTH_RADIUS_KM = 6371.0088
# 7 decimals of a degree is about 1 cm: more is noise, and it keeps the stored text short.
PRECISION = 7
MAX_VERTICES = 20_000

if TYPE_CHECKING:
    import shapely

# shapely (and numpy under it) are imported on first use, not when the app starts (bench/startup.py).


class GeometryError(ValueError):
    """A geometry that cannot be stored; `reason` is a short code (empty, invalid, kind, one_point, coordinates,
    too_long) and the message says it in the user's language."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class CheckedGeometry:
    """A geometry fit to store: its GeoJSON text, a point on it, its bounding box and, for lines, its length."""

    geometry: str
    lat: float
    lon: float
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float
    length_km: float | None

    def columns(self) -> dict[str, Any]:
        """The `Asset` columns it fills."""
        return {
            "geometry": self.geometry,
            "lat": self.lat,
            "lon": self.lon,
            "min_lat": self.min_lat,
            "min_lon": self.min_lon,
            "max_lat": self.max_lat,
            "max_lon": self.max_lon,
            "length_km": self.length_km,
        }


def parse(value: Any) -> shapely.Geometry:
    """A shapely geometry from a GeoJSON geometry (dict or JSON text) or WKT text; GeometryError when unreadable."""
    import shapely
    from shapely.geometry import shape

    if value is None or value == "" or value == {}:
        raise GeometryError("empty", _("The geometry is empty."))
    try:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:
                return shapely.from_wkt(text)
        if not isinstance(value, dict) or "type" not in value:
            raise ValueError("not a GeoJSON geometry")
        if value.get("type") in ("Feature", "FeatureCollection"):
            raise ValueError("a Feature, not a geometry")
        if value.get("type") == "LineString" and isinstance(value.get("coordinates"), list):
            if len(value["coordinates"]) < 2:  # shapely refuses to build it; the user needs the real reason
                raise GeometryError("one_point", _("A line needs at least two different points."))
        return shape(value)
    except GeometryError:
        raise
    except Exception:  # shapely and json raise many kinds; all mean the same to the user
        raise GeometryError("invalid", _("The geometry cannot be read (GeoJSON geometry or WKT).")) from None


def check(value: Any, *, kind: GeometryKind | str) -> CheckedGeometry:
    """Parse `value` and check it fits `kind`; the columns to store. Does not check the kabupaten's boundary (the
    caller locates the point, see `validation.AssetCleaner`)."""
    import shapely
    from shapely.geometry import LineString, MultiLineString, Point

    geometry = parse(value)
    kind = GeometryKind(kind)
    if geometry.is_empty:
        raise GeometryError("empty", _("The geometry is empty."))
    if shapely.get_num_coordinates(geometry) > MAX_VERTICES:
        raise GeometryError("too_long", _("The geometry has more than %(n)d points.") % {"n": MAX_VERTICES})
    coordinates = shapely.get_coordinates(geometry)
    if not all(math.isfinite(c) for c in coordinates.ravel()) or not (
        (-180 <= coordinates[:, 0]).all()
        and (coordinates[:, 0] <= 180).all()
        and (-90 <= coordinates[:, 1]).all()
        and (coordinates[:, 1] <= 90).all()
    ):
        raise GeometryError(
            "coordinates",
            _("Coordinates must be longitude and latitude in degrees (WGS 84), longitude first."),
        )
    if kind == GeometryKind.POINT:
        if not isinstance(geometry, Point):
            raise GeometryError("kind", _("This asset type is a point; the geometry is a %(kind)s.") % _kind(geometry))
        point = geometry
        length = None
    else:
        if not isinstance(geometry, LineString | MultiLineString):
            raise GeometryError("kind", _("This asset type is a line; the geometry is a %(kind)s.") % _kind(geometry))
        parts = list(geometry.geoms) if isinstance(geometry, MultiLineString) else [geometry]
        if any(len(set(part.coords)) < 2 for part in parts):
            raise GeometryError("one_point", _("A line needs at least two different points."))
        length = round(sum(length_km(part) for part in parts), 4)
        longest = max(parts, key=length_km)
        point = longest.interpolate(0.5, normalized=True)
    rounded = shapely.set_precision(geometry, 10**-PRECISION) if kind == GeometryKind.LINE else geometry
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    return CheckedGeometry(
        geometry=json.dumps(_rounded_mapping(rounded), separators=(",", ":")),
        lat=round(point.y, PRECISION),
        lon=round(point.x, PRECISION),
        min_lat=min_lat,
        min_lon=min_lon,
        max_lat=max_lat,
        max_lon=max_lon,
        length_km=length,
    )


def length_km(line: shapely.LineString) -> float:
    """Geodesic length of a WGS 84 line (haversine on the mean Earth radius), in km."""
    import shapely

    coordinates = shapely.get_coordinates(line)
    if len(coordinates) < 2:
        return 0.0
    lon = [math.radians(x) for x in coordinates[:, 0]]
    lat = [math.radians(y) for y in coordinates[:, 1]]
    total = 0.0
    for i in range(1, len(lat)):
        a = (
            math.sin((lat[i] - lat[i - 1]) / 2) ** 2
            + math.cos(lat[i - 1]) * math.cos(lat[i]) * math.sin((lon[i] - lon[i - 1]) / 2) ** 2
        )
        total += 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
    return total


def _kind(geometry: shapely.Geometry) -> dict[str, str]:
    return {"kind": geometry.geom_type}


def _rounded_mapping(geometry: shapely.Geometry) -> dict[str, Any]:
    from shapely.geometry import mapping

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, PRECISION)
        if isinstance(value, list | tuple):
            return [rounded(item) for item in value]
        return value

    data = mapping(geometry)
    return {"type": data["type"], "coordinates": rounded(data["coordinates"])}
