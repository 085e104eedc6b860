"""Small hand-made boundary files for the regions tests."""

from __future__ import annotations

import json


def square(lon: float, lat: float, half: float) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def bowtie(lon: float, lat: float, half: float) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat + half], [lon + half, lat - half], [lon - half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def feature(code: str, name: str, level: str, parent: str, geometry: dict | None, **extra) -> dict:
    properties = {"kode": code, "nama": name, "level": level, "induk": parent, **extra}
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def sukomulyo(geometry: dict | None = None, *, code: str = "16.05.01.2003", level: str = "desa") -> dict:
    """A fourth feature for the small file: desa Sukomulyo in Tugumulyo, by default a small square of its own."""
    return feature(code, "Sukomulyo", level, "16.05.01", square(102.95, -3.16, 0.01) if geometry is None else geometry)


def small_features() -> list[dict]:
    """A kabupaten, one kecamatan and one desa as nested squares around Tugumulyo."""
    return [
        feature("16.05", "Kabupaten Musi Rawas", "kabupaten", "16", square(102.96, -3.18, 0.2)),
        feature("16.05.01", "Tugumulyo", "kecamatan", "16.05", square(102.96, -3.18, 0.1)),
        feature("16.05.01.2002", "Surodadi", "desa", "16.05.01", square(102.96, -3.18, 0.02)),
    ]


def collection(features: list[dict], **extra) -> bytes:
    return json.dumps({"type": "FeatureCollection", **extra, "features": features}).encode()
