"""CRS helpers shared by the connectors: OGC URIs, cached transformers, densified boxes.

Coordinates handed to these helpers are in the *authority* axis order of their CRS (EPSG:4326
and EPSG:4258 are lat/lon, OGC CRS84 and EPSG:28992 are x/y), which is what OGC API clients
send in ``bbox`` with ``bbox-crs`` and in ``filter`` with ``filter-crs``.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from connectors.base import CRS84
from connectors.errors import UnsupportedQuery

EPSG_PREFIX = "http://www.opengis.net/def/crs/EPSG/0/"
WGS84 = EPSG_PREFIX + "4326"

MAX_POINTS_PER_EDGE = 4001

_local = threading.local()


def _cache(name: str) -> dict[object, object]:
    """A per-thread cache: pyproj objects must not be shared between threads."""
    cache: dict[object, object] = _local.__dict__.setdefault(name, {})
    return cache


def crs_for(uri: str) -> CRS:
    """The pyproj CRS for an OGC CRS URI, cached per thread."""
    cache = _cache("crs")
    found = cache.get(uri)
    if found is None:
        try:
            found = CRS.from_user_input(uri)
        except CRSError as exc:
            raise UnsupportedQuery(f"unknown coordinate reference system {uri!r}") from exc
        cache[uri] = found
    assert isinstance(found, CRS)
    return found


def transformer(source: str, target: str) -> Transformer:
    """A transformer between two CRS URIs in their authority axis order, cached per thread."""
    cache = _cache("transformers")
    key = (source, target)
    found = cache.get(key)
    if found is None:
        found = Transformer.from_crs(crs_for(source), crs_for(target), always_xy=False)
        cache[key] = found
    assert isinstance(found, Transformer)
    return found


def uri_for(crs: CRS) -> str:
    """The OGC URI of a pyproj CRS that has an EPSG or OGC identifier."""
    authority = crs.to_authority(min_confidence=90)
    if authority is None:
        raise ValueError(f"CRS has no EPSG or OGC identifier: {crs.name}")
    name, code = authority
    if name == "OGC":
        return f"http://www.opengis.net/def/crs/OGC/1.3/{code}"
    return f"http://www.opengis.net/def/crs/{name}/0/{code}"


def epsg_code(uri: str) -> int | None:
    """The EPSG code of an EPSG CRS URI (CRS84 counts as 4326, PostGIS's lon/lat), else None."""
    if uri == CRS84:
        return 4326
    if uri.startswith(EPSG_PREFIX) and uri.removeprefix(EPSG_PREFIX).isdigit():
        return int(uri.removeprefix(EPSG_PREFIX))
    return None


def northing_first(uri: str) -> bool:
    """Whether the CRS's first axis points north or south (latitude first, as EPSG:4326)."""
    axes = crs_for(uri).axis_info
    return bool(axes) and axes[0].direction in ("north", "south")


def densified_ring(
    minx: float, miny: float, maxx: float, maxy: float, points_per_edge: int = 21
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A closed ring around a box with ``points_per_edge`` points on each edge."""
    steps = np.linspace(0.0, 1.0, points_per_edge)[:-1]
    rising_x = minx + (maxx - minx) * steps
    rising_y = miny + (maxy - miny) * steps
    xs = np.concatenate(
        [rising_x, np.full_like(steps, maxx), maxx - (maxx - minx) * steps,
         np.full_like(steps, minx), [minx]]
    )  # fmt: skip
    ys = np.concatenate(
        [np.full_like(steps, miny), rising_y, np.full_like(steps, maxy),
         maxy - (maxy - miny) * steps, [miny]]
    )  # fmt: skip
    return xs, ys


def box_ring(
    minx: float, miny: float, maxx: float, maxy: float, source: str, target: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A box given in ``source`` as a closed ring in ``target``.

    Straight edges in one CRS are curves in another. Edges are split into steps of at most
    0.001 degree or 100 metres (at least 20 per edge), which keeps the chords within about a
    millimetre of the true curve at Dutch latitudes.
    """
    if source == target:
        return densified_ring(minx, miny, maxx, maxy, points_per_edge=2)
    step = 0.001 if crs_for(source).is_geographic else 100.0
    longest = max(maxx - minx, maxy - miny)
    points = int(min(max(21, math.ceil(longest / step) + 1), MAX_POINTS_PER_EDGE))
    return transform_ring(*densified_ring(minx, miny, maxx, maxy, points), source, target)


def transform_ring(
    xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64], source: str, target: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Transform coordinate arrays; refuse a box that does not exist in the target CRS."""
    if source != target:
        xs, ys = transformer(source, target).transform(xs, ys)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise UnsupportedQuery(f"the box cannot be expressed in {target}: outside its area")
    return xs, ys
