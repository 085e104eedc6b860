"""Reading and checking a GeoJSON boundary file: every feature is checked before anything is stored.

Part of the regions service: other domains use it through `regions/service.py`, which imports it only when a file
is imported, because shapely and numpy take a noticeable share of the app's start-up time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.validation import explain_validity

from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _
from kotacerdas.regions.enums import RegionLevel

# A file with thousands of bad features would make an unreadable answer; the count is in the message.
MAX_REPORTED_ERRORS = 1000

ACCEPTED_CRS = frozenset(
    {
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "urn:ogc:def:crs:OGC::CRS84",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "OGC:CRS84",
        "CRS84",
        "EPSG:4326",
        "urn:ogc:def:crs:EPSG::4326",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
    }
)
_CODE_SHAPES = {
    RegionLevel.KABUPATEN: re.compile(r"[0-9]{2}\.[0-9]{2}"),
    RegionLevel.KECAMATAN: re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}"),
    # Kemendagri numbers kelurahan 1xxx and desa 2xxx.
    RegionLevel.KELURAHAN: re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.1[0-9]{3}"),
    RegionLevel.DESA: re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.2[0-9]{3}"),
}


@dataclass(frozen=True)
class Feature:
    """One good feature of a boundary file, ready to be stored."""

    index: int
    code: str
    name: str
    level: str
    parent: str
    geometry: shapely.Geometry
    centroid: tuple[float, float] | None  # (lon, lat)

    def row(self, now: Any) -> dict[str, Any]:
        """The values of its `regions` row."""
        geometry = self.geometry
        min_lon, min_lat, max_lon, max_lat = geometry.bounds
        if self.centroid is not None:
            centroid_lon, centroid_lat = self.centroid
        else:
            # The representative point is always inside the polygon; the true centroid of a C shape is not.
            point = geometry.representative_point()
            centroid_lon, centroid_lat = point.x, point.y
        return {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "parent_code": self.parent,
            "centroid_lat": centroid_lat,
            "centroid_lon": centroid_lon,
            "min_lat": min_lat,
            "min_lon": min_lon,
            "max_lat": max_lat,
            "max_lon": max_lon,
            "geometry": shapely.to_geojson(geometry),
            "updated_at": now,
        }


def check_collection(
    data: bytes,
    *,
    region_code: str,
    stored_codes: Callable[[Iterable[str]], set[str]],
    progress: Callable[[int, int], None] | None,
) -> list[Feature]:
    """Every feature of the file, or InvalidInput listing every bad one. A parent may come from the same file or be
    stored already: `stored_codes` says which of some codes are stored."""
    items = _parse_collection(data)
    total = len(items)
    errors: list[dict[str, Any]] = []
    bad: set[int] = set()
    features: list[Feature] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        feature, problems = _check_feature(index, item, region_code=region_code)
        errors += problems
        if problems:
            bad.add(index)
        code = feature.code if feature else (problems[0]["kode"] if problems else None)
        if isinstance(code, str):
            code = code.strip()
            if code in first_index:
                errors.append(
                    _error(
                        index,
                        code,
                        _("Duplicate code; it first appears at feature {first}.").format(first=first_index[code]),
                    )
                )
                bad.add(index)
                feature = None
            else:
                first_index[code] = index
        if feature is not None:
            features.append(feature)
        if progress is not None and index % 25 == 0:
            progress(index, total)
    # The kabupaten's parent is its province, which is not stored.
    wanted = {f.parent for f in features if f.level != RegionLevel.KABUPATEN} - set(first_index)
    stored = stored_codes(wanted) if wanted else set()
    for feature in features:
        if (
            feature.level != RegionLevel.KABUPATEN
            and feature.parent not in first_index
            and feature.parent not in stored
        ):
            errors.append(
                _error(
                    feature.index,
                    feature.code,
                    _("The parent {parent} is neither in the file nor stored.").format(parent=feature.parent),
                )
            )
            bad.add(feature.index)
    if errors:
        errors.sort(key=lambda error: error["index"])
        raise InvalidInput(
            _("{bad} of {total} features are wrong; nothing was imported. See errors.").format(
                bad=len(bad), total=total
            ),
            errors=errors[:MAX_REPORTED_ERRORS],
        )
    if progress is not None:
        progress(total, total)
    return features


# --- the file ---------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _parse_collection(data: bytes) -> list[Any]:
    """The features of a GeoJSON FeatureCollection; InvalidInput (one error) when the file is not one."""
    detail = _("The file is not a GeoJSON FeatureCollection; nothing was imported.")
    try:
        document = json.loads(data, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidInput(detail, errors=[_error(None, None, _("The file is not UTF-8 text."))]) from None
    except ValueError as exc:
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        reason = (
            _("The file is not JSON (line {line}, column {column}).").format(line=line, column=column)
            if line
            else _("The file is not JSON.")
        )
        raise InvalidInput(detail, errors=[_error(None, None, reason)]) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        reason = _('The top level must be an object with "type": "FeatureCollection".')
        raise InvalidInput(detail, errors=[_error(None, None, reason)])
    if "crs" in document and (problem := _crs_problem(document["crs"])):
        raise InvalidInput(detail, errors=[_error(None, None, problem)])
    features = document.get("features")
    if not isinstance(features, list):
        raise InvalidInput(detail, errors=[_error(None, None, _('"features" must be a list.'))])
    if not features:
        raise InvalidInput(detail, errors=[_error(None, None, _("The file has no features."))])
    return features


def _error(index: int | None, code: Any, reason: str) -> dict[str, Any]:
    return {"index": index, "kode": code if isinstance(code, str) else None, "reason": reason}


def _crs_problem(member: Any) -> str | None:
    """None when a GeoJSON `crs` member names WGS 84 longitude/latitude, else the reason."""
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if isinstance(name, str) and name.strip() in ACCEPTED_CRS:
        return None
    return _("The coordinate reference system must be WGS 84 longitude/latitude (CRS84 or EPSG:4326).")


# --- one feature ------------------------------------------------------------------------------------------------


def _check_feature(index: int, feature: Any, *, region_code: str) -> tuple[Feature | None, list[dict[str, Any]]]:
    """The feature when it is a good region boundary; otherwise every reason it is not (parents checked later)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, [_error(index, None, _("The item is not a GeoJSON Feature."))]
    properties = feature.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    code = properties.get("kode")
    errors = []
    missing = [key for key in ("kode", "nama", "level", "induk") if not isinstance(properties.get(key), str)]
    missing += [key for key in ("kode", "nama", "level", "induk") if key not in missing and not properties[key].strip()]
    if missing:
        errors.append(_error(index, code, _("Missing property: {names}.").format(names=", ".join(missing))))
    if "crs" in feature and (problem := _crs_problem(feature["crs"])):
        errors.append(_error(index, code, problem))
    level: RegionLevel | None = None
    if "level" not in missing:
        try:
            level = RegionLevel(properties["level"].strip())
        except ValueError:
            errors.append(
                _error(
                    index,
                    code,
                    _("Unknown level {level}; use kabupaten, kecamatan, desa or kelurahan.").format(
                        level=properties["level"]
                    ),
                )
            )
    if "kode" not in missing:
        code = code.strip()
        if code != region_code and not code.startswith(region_code + "."):
            errors.append(
                _error(index, code, _("The code is outside this kabupaten ({region}).").format(region=region_code))
            )
        elif level is not None and not _CODE_SHAPES[level].fullmatch(code):
            errors.append(
                _error(
                    index,
                    code,
                    _("The code does not fit the level {level} (for example {example}).").format(
                        level=level.value, example=_example_code(level, region_code)
                    ),
                )
            )
        elif "induk" not in missing and level is not None:
            parent = properties["induk"].strip()
            expected = code[:2] if level == RegionLevel.KABUPATEN else code.rsplit(".", 1)[0]
            if parent != expected:
                errors.append(
                    _error(
                        index,
                        code,
                        _("The parent (induk) {parent} does not match the code; expected {expected}.").format(
                            parent=parent, expected=expected
                        ),
                    )
                )
    if "nama" not in missing and len(properties["nama"].strip()) > 120:
        errors.append(_error(index, code, _("The name is longer than 120 characters.")))
    centroid, problem = _centroid(properties.get("centroid"))
    if problem:
        errors.append(_error(index, code, problem))
    geometry, problem = _geometry(feature.get("geometry"))
    if problem:
        errors.append(_error(index, code, problem))
    if errors:
        return None, errors
    return (
        Feature(
            index=index,
            code=code,
            name=properties["nama"].strip(),
            level=level.value,
            parent=properties["induk"].strip(),
            geometry=shapely.force_2d(geometry),
            centroid=centroid,
        ),
        [],
    )


def _example_code(level: RegionLevel, region_code: str) -> str:
    return {
        RegionLevel.KABUPATEN: region_code,
        RegionLevel.KECAMATAN: f"{region_code}.09",
        RegionLevel.KELURAHAN: f"{region_code}.09.1003",
        RegionLevel.DESA: f"{region_code}.09.2001",
    }[level]


def _centroid(value: Any) -> tuple[tuple[float, float] | None, str | None]:
    if value is None:
        return None, None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and -180 <= value[0] <= 180
        and -90 <= value[1] <= 90
    ):
        return (float(value[0]), float(value[1])), None
    return None, _("The centroid must be [longitude, latitude] in degrees.")


# --- its geometry -----------------------------------------------------------------------------------------------


def _geometry(member: Any) -> tuple[shapely.Geometry | None, str | None]:
    """The feature's shapely geometry, or the reason it cannot be a region boundary."""
    if not isinstance(member, dict):
        return None, _("The feature has no geometry.")
    kind = member.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        return None, _("The geometry must be a Polygon or MultiPolygon, not {kind}.").format(kind=kind)
    if "crs" in member and (problem := _crs_problem(member["crs"])):
        return None, problem
    coordinates = member.get("coordinates")
    if kind == "Polygon":
        geometry, problem = _polygon(coordinates)
    else:
        if not isinstance(coordinates, list):
            return None, _malformed()
        parts = []
        for rings in coordinates:
            part, problem = _polygon(rings)
            if problem:
                return None, problem
            if not part.is_empty:
                parts.append(part)
        geometry, problem = shapely.MultiPolygon(parts), None
    if problem:
        return None, problem
    if geometry.is_empty:
        return None, _("The geometry is empty.")
    if not shapely.is_valid(geometry):
        return None, _("The geometry is invalid: {explanation}.").format(explanation=explain_validity(geometry))
    return geometry, None


def _polygon(rings: Any) -> tuple[shapely.Polygon | None, str | None]:
    if not isinstance(rings, list):
        return None, _malformed()
    if not rings:
        return shapely.Polygon(), None
    arrays = []
    for ring in rings:
        array, problem = _ring_problem(ring)
        if problem:
            return None, problem
        arrays.append(array)
    return shapely.Polygon(arrays[0], arrays[1:]), None


def _malformed() -> str:
    return _("The coordinates are malformed: every position must be [longitude, latitude].")


def _ring_problem(ring: Any) -> tuple[np.ndarray | None, str | None]:
    """The ring's (lon, lat) array, or the reason it is not a closed GeoJSON ring in degrees."""
    try:
        array = np.asarray(ring)
    except ValueError:
        array = None
    if array is None or array.dtype.kind not in "iuf" or array.ndim != 2 or array.shape[1] not in (2, 3):
        return None, _malformed()
    array = array[:, :2].astype(float)
    if not np.isfinite(array).all():
        return None, _malformed()
    if (np.abs(array[:, 0]) > 180).any() or (np.abs(array[:, 1]) > 90).any():
        return None, _(
            "Coordinates are outside the longitude/latitude range; the file must be in WGS 84 degrees, longitude first."
        )
    if len(array) < 4:
        return None, _("A ring needs at least 4 positions.")
    if not (array[0] == array[-1]).all():
        return None, _("A ring is not closed: its last position must repeat the first.")
    return array, None
