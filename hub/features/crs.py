"""Coordinate reference systems the hub offers, and fast transformation of whole pages.

pygeoapi builds a new Transformer from WKT for every response and transforms point by point;
here transformers are cached per thread (``connectors._crs``) and a page's coordinates are
gathered into one array and transformed in one call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from connectors._crs import box_ring, crs_for, transformer
from connectors.base import CRS84, CRS84H, ETRS89, RD_NAP, RD_NEW, BBox, Feature
from hub.errors import BadRequest

WGS84 = "http://www.opengis.net/def/crs/EPSG/0/4326"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"

OFFERED_CRS: tuple[str, ...] = (CRS84, RD_NEW, ETRS89, WGS84, WEB_MERCATOR)
"""What every 2D collection can be served in, whatever its source stores."""

_ALIASES = {
    "EPSG:4326": WGS84,
    "EPSG:28992": RD_NEW,
    "EPSG:4258": ETRS89,
    "EPSG:3857": WEB_MERCATOR,
    "EPSG:7415": RD_NAP,
    "CRS84": CRS84,
    "OGC:CRS84": CRS84,
    "urn:ogc:def:crs:OGC:1.3:CRS84": CRS84,
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84": CRS84,
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84": CRS84,
    "http://www.opengis.net/def/crs/OGC/0/CRS84h": CRS84H,
}


def normalise_crs_uri(value: str) -> str:
    """Canonical OGC URI for a CRS given as URI, URN or ``EPSG:n`` (unknown ones unchanged)."""
    value = value.strip()
    if value in _ALIASES:
        return _ALIASES[value]
    for prefix in (
        "https://www.opengis.net/def/crs/EPSG/0/",
        "urn:ogc:def:crs:EPSG::",
        "urn:ogc:def:crs:EPSG:",
    ):
        if value.startswith(prefix):
            return f"http://www.opengis.net/def/crs/EPSG/0/{value.removeprefix(prefix)}"
    return value


def _digits(target: str) -> int:
    """Decimals that keep a millimetre: 9 for degrees, 3 for metres."""
    return 9 if crs_for(target).is_geographic else 3


def _coordinate_arrays(geometry: dict[str, Any]) -> Iterator[list[Any]]:
    """Yield every innermost position list of a GeoJSON geometry, in document order."""
    kind = geometry.get("type")
    if kind == "GeometryCollection":
        for member in geometry.get("geometries") or ():
            yield from _coordinate_arrays(member)
        return
    coordinates = geometry.get("coordinates")
    if coordinates is None:
        return
    stack: list[Any] = [coordinates]
    while stack:
        node = stack.pop()
        if node and isinstance(node[0], (int, float)):
            yield node
        else:
            stack.extend(node)


def transform_features(features: Iterable[Feature], source: str, target: str) -> None:
    """Transform the geometries of ``features`` in place, all positions in one call."""
    if source == target:
        return
    positions = [
        position
        for feature in features
        if feature.get("geometry")
        for position in _coordinate_arrays(feature["geometry"])
    ]
    if not positions:
        return
    xs = np.fromiter((p[0] for p in positions), dtype=float, count=len(positions))
    ys = np.fromiter((p[1] for p in positions), dtype=float, count=len(positions))
    tx, ty = transformer(source, target).transform(xs, ys)
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        raise BadRequest(f"the data cannot be expressed in {target}: it lies outside its area")
    digits = _digits(target)
    for position, x, y in zip(positions, tx.tolist(), ty.tolist(), strict=True):
        position[0] = round(x, digits)
        position[1] = round(y, digits)


def crs84_envelope(bbox: BBox) -> tuple[float, float, float, float]:
    """The CRS84 bounds of a box given in any CRS (densified, so it encloses the box)."""
    xs, ys = box_ring(*bbox.as_tuple(), bbox.crs, CRS84)
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def parse_bbox(value: str, crs: str) -> BBox:
    """Parse the ``bbox`` parameter: four numbers (six for 3D; heights are dropped)."""
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError as exc:
        raise BadRequest("bbox must be four comma-separated numbers") from exc
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BadRequest("bbox must be four comma-separated numbers")
    minx, miny, maxx, maxy = numbers
    if minx > maxx or miny > maxy:
        raise BadRequest("bbox minimum must not exceed its maximum (no antimeridian boxes)")
    if crs == CRS84 and not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
        raise BadRequest("a CRS84 bbox must lie within -180,-90,180,90")
    return BBox(minx, miny, maxx, maxy, crs=crs)
