"""CityJSON helpers shared by the 3D connectors: vertices, footprints, attribute names, hand-over.

Both the ``3dbag`` and the ``cityjson`` connector turn one CityJSONFeature (a top-level
CityObject with its children and their vertices) into the same GeoJSON feature:

- ``id``: the top-level CityObject's id (for the 3D BAG ``NL.IMBAG.Pand.<16 digits>``);
- ``geometry``: its 2D footprint in the horizontal part of the vertices' CRS (RD for the 3D
  BAG), see :func:`footprint`;
- ``properties``: its attributes under release-independent names, see :func:`canonical_attributes`;
- ``cityjson``: the CityJSON itself for 3D output, see ``connectors.base.CITYJSON``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from connectors._crs import uri_for
from connectors.base import CITYJSON, RD_NAP, Feature

JsonType = Literal["string", "number", "integer", "boolean", "date", "date-time", "object", "array"]

BAG_PAND_ID = re.compile(r"^NL\.IMBAG\.Pand\.\d{16}$")
"""A BAG building (pand) id as the 3D BAG writes it; its first four digits are the municipality."""

HEIGHT_FIELDS = ("h_maaiveld", "h_dak_min", "h_dak_50p", "h_dak_70p", "h_dak_max")
"""Ground and roof heights (metres above NAP), always numbers in the hub's properties."""

BAG3D_FIELDS: dict[str, JsonType] = {
    # BAG registration data, the same in every release
    "identificatie": "string",
    "status": "string",
    "oorspronkelijkbouwjaar": "integer",
    "geconstateerd": "boolean",
    "documentdatum": "date",
    "documentnummer": "string",
    "voorkomenidentificatie": "integer",
    "begingeldigheid": "date",
    "eindgeldigheid": "date",
    "tijdstipregistratie": "date-time",
    "eindregistratie": "date-time",
    "tijdstipregistratielv": "date-time",
    "tijdstipeindregistratielv": "date-time",
    "tijdstipinactief": "date-time",
    "tijdstipinactieflv": "date-time",
    "tijdstipnietbaglv": "date-time",
    # heights
    "h_maaiveld": "number",
    "h_dak_min": "number",
    "h_dak_50p": "number",
    "h_dak_70p": "number",
    "h_dak_max": "number",
    # reconstruction
    "dak_type": "string",
    "bouwlagen": "integer",
    "kas_warenhuis": "boolean",
    "is_glas_dak": "boolean",
    "reconstructie_onvolledig": "boolean",
    "bag_bag_overlap": "number",
    "n_vlakken": "integer",
    "extrusie": "integer",
    "succes": "boolean",
    "rf_force_lod11": "boolean",
    # point cloud selection
    "pw_bron": "string",
    "pw_datum": "integer",
    "pw_selectie_reden": "string",
    "pw_onvoldoende": "boolean",
    "mutatie_ahn3_ahn4": "boolean",
    "mutatie_ahn4_ahn5": "boolean",
    "nodata_fractie_ahn3": "number",
    "nodata_fractie_ahn4": "number",
    "nodata_fractie_ahn5": "number",
    "nodata_radius_ahn3": "number",
    "nodata_radius_ahn4": "number",
    "nodata_radius_ahn5": "number",
    "puntdichtheid_ahn3": "number",
    "puntdichtheid_ahn4": "number",
    "puntdichtheid_ahn5": "number",
    # quality and derived figures per LoD
    "rmse_lod12": "number",
    "rmse_lod13": "number",
    "rmse_lod22": "number",
    "val3dity_lod12": "string",
    "val3dity_lod13": "string",
    "val3dity_lod22": "string",
    "volume_lod12": "number",
    "volume_lod13": "number",
    "volume_lod22": "number",
    "opp_grond": "number",
    "opp_dak_plat": "number",
    "opp_dak_schuin": "number",
    "opp_scheidingsmuur": "number",
    "opp_buitenmuur": "number",
}
"""The canonical names (and JSON types) of the 3D BAG attributes known from its releases.

Since 2022 the 3D BAG writes its own attributes with a ``b3_`` prefix and, from 2024 on, with
the AHN release in capitals (``b3_mutatie_AHN3_AHN4``) where v2024.04.20 wrote it in lower
case (``b3_mutatie_ahn3_ahn4``); the BAG's own attributes carry no prefix. The canonical
name of an attribute is its name without the prefix, in lower case: :func:`canonical_name`.
"""

SURFACE_TYPES = frozenset({"MultiSurface", "CompositeSurface"})
SOLID_TYPES = frozenset({"Solid"})
MULTI_SOLID_TYPES = frozenset({"MultiSolid", "CompositeSolid"})
MIN_AREA = 1e-9
"""Surfaces seen edge-on from above (walls) have no area and add nothing to a footprint."""


# --- attributes --------------------------------------------------------------------------


_CANONICAL_NAMES: dict[str, str] = {}
"""The answers of :func:`canonical_name` so far: a release has some sixty attribute names and
a page of buildings repeats them for every building."""
_REMEMBERED_NAMES = 4096
"""Most names remembered, so that a source inventing names cannot grow the table forever."""


def canonical_name(name: str) -> str:
    """The release-independent name of a 3D BAG attribute: ``b3_`` prefix dropped, lower case.

    Names without the prefix are the BAG's own (already lower case) or belong to a CityJSON
    file that is not from the 3D BAG; they are left as they are.
    """
    known = _CANONICAL_NAMES.get(name)
    if known is not None:
        return known
    found = name[3:].lower() if name[:3].lower() == "b3_" else name
    if len(_CANONICAL_NAMES) < _REMEMBERED_NAMES:
        _CANONICAL_NAMES[name] = found
    return found


def _number(value: Any) -> float | None:
    """A height as a float; text that holds a number counts, anything else is no value."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def canonical_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A CityObject's attributes under their canonical names, heights as numbers.

    When two names of one release map onto the same canonical name, a value wins over a
    null and the prefixed (newer) spelling wins over the bare one.
    """
    result: dict[str, Any] = {}
    if not attributes:
        return result
    keys = [canonical_name(name) for name in attributes]
    if len(set(keys)) == len(keys):  # as in every release so far: no two spellings of one name
        result = dict(zip(keys, attributes.values(), strict=True))
    else:
        _merge_spellings(result, attributes)
    for key in HEIGHT_FIELDS:
        if key in result:
            result[key] = _number(result[key])
    return result


def _merge_spellings(result: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    """Attributes into ``result`` under canonical names, where some share one."""
    prefixed: set[str] = set()
    for name, value in attributes.items():
        key = canonical_name(name)
        if key in result:
            current = result[key]
            newer = key != name
            if value is None or (current is not None and (key in prefixed or not newer)):
                continue
        result[key] = value
        if key != name:
            prefixed.add(key)


# --- vertices ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transform:
    """A CityJSON ``transform``: real coordinate = integer x scale + translate."""

    scale: tuple[float, float, float]
    translate: tuple[float, float, float]

    @classmethod
    def parse(cls, value: Any) -> Transform:
        """Read a ``transform`` member; ValueError when it is not three scales and translations."""
        if not isinstance(value, Mapping):
            raise ValueError("transform is not an object")
        scale, translate = _triple(value.get("scale")), _triple(value.get("translate"))
        if scale is None or translate is None:
            raise ValueError("transform needs three numbers in scale and in translate")
        return cls(scale, translate)

    def as_json(self) -> dict[str, list[float]]:
        """The ``transform`` member as CityJSON writes it."""
        return {"scale": list(self.scale), "translate": list(self.translate)}


def _triple(value: Any) -> tuple[float, float, float] | None:
    """Three finite numbers as floats, else None."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return float(value[0]), float(value[1]), float(value[2])


def decode_vertices(vertices: Any, transform: Transform | None) -> npt.NDArray[np.float64]:
    """The real x/y/z of a ``vertices`` array (ValueError when it is not a list of triples)."""
    if not isinstance(vertices, list):
        raise ValueError("vertices is not an array")
    if not vertices:
        return np.zeros((0, 3), dtype=np.float64)
    array = np.asarray(vertices, dtype=np.float64)
    if array.ndim != 2 or array.size != 3 * len(vertices):
        raise ValueError("vertices must be triples")
    return _transformed(array, transform)


def _transformed(array: npt.NDArray[np.float64], transform: Transform | None) -> npt.NDArray[np.float64]:
    """Integer vertices (their first columns, x/y/z in order) as real coordinates."""
    if transform is None:
        return array
    axes = array.shape[1]
    array = array * np.asarray(transform.scale[:axes]) + np.asarray(transform.translate[:axes])
    # integer x 0.001 + translate carries float noise (85309.78199999999 for 85309.782).
    # Rounding well below the data's own precision removes it; a translate may have more
    # decimals than the scale (3D BAG headers hold float32 values such as 85088.390625).
    for axis, scale in enumerate(transform.scale[:axes]):
        if scale > 0:
            digits = min(15, max(9, math.ceil(-math.log10(scale)) + 6))
            array[:, axis] = np.round(array[:, axis], digits)
    return array


class PlanVertices:
    """The x/y of a ``vertices`` array, decoded only where they are looked up.

    A 3D BAG building has hundreds of vertices for its LoD 1.2, 1.3 and 2.2 solids, and its
    footprint needs the ten or so of its LoD 0 surface: decoding those alone is most of the
    cost of reading a building saved. ``plan[indices]`` is the real x/y of those vertices;
    ValueError when one is not a triple of numbers, IndexError when one does not exist.
    """

    __slots__ = ("_raw", "_transform")

    def __init__(self, vertices: Any, transform: Transform | None):
        if not isinstance(vertices, list):
            raise ValueError("vertices is not an array")
        self._raw = vertices
        self._transform = transform

    def __getitem__(self, indices: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        raw = self._raw
        count = len(raw)
        chosen = []
        for index in indices.tolist():
            if not -count <= index < count:
                raise IndexError(f"vertex {index} does not exist")
            vertex = raw[index]
            if not isinstance(vertex, list) or len(vertex) != 3:
                raise ValueError("vertices must be triples")
            chosen.append(vertex[:2])
        array = np.asarray(chosen, dtype=np.float64).reshape(len(chosen), 2)
        return _transformed(array, self._transform)

    def decoded(self) -> npt.NDArray[np.float64]:
        """Every vertex's real x/y, for a footprint that looks at every surface."""
        return decode_vertices(self._raw, self._transform)[:, :2]


# --- footprints --------------------------------------------------------------------------


def lod_text(lod: Any) -> str:
    """A level of detail as CityJSON 1.1+ writes it (older files have numbers: 2 -> "2")."""
    if isinstance(lod, bool):
        raise ValueError("lod is not a number or text")
    if isinstance(lod, int):
        return str(lod)
    if isinstance(lod, float):
        return f"{lod:g}"  # JSON has one number type: 2.0 is LoD 2, as 2 is
    if isinstance(lod, str):
        return lod
    raise ValueError("lod is not a number or text")


def _lod_rank(lod: Any) -> float:
    try:
        return float(lod)
    except (TypeError, ValueError):
        return math.inf


def _surfaces(geometry: Mapping[str, Any]) -> Iterator[tuple[list[Any], int | None]]:
    """Every surface of a geometry (its rings) with its semantic surface index, if any."""
    kind = geometry.get("type")
    boundaries = geometry.get("boundaries") or []
    values = (geometry.get("semantics") or {}).get("values")

    def pick(index_path: tuple[int, ...]) -> int | None:
        node: Any = values
        for i in index_path:
            if not isinstance(node, list) or i >= len(node):
                return None
            node = node[i]
        return node if isinstance(node, int) and not isinstance(node, bool) else None

    if kind in SURFACE_TYPES:
        for s, surface in enumerate(boundaries):
            yield surface, pick((s,))
    elif kind in SOLID_TYPES:
        for h, shell in enumerate(boundaries):
            for s, surface in enumerate(shell):
                yield surface, pick((h, s))
    elif kind in MULTI_SOLID_TYPES:
        for d, solid in enumerate(boundaries):
            for h, shell in enumerate(solid):
                for s, surface in enumerate(shell):
                    yield surface, pick((d, h, s))


def _polygon(surface: list[Any], xy: npt.NDArray[np.float64] | PlanVertices) -> shapely.Polygon | None:
    """A surface seen from above: its rings' x/y as a polygon (None when it has no area)."""
    rings = [xy[np.asarray(ring, dtype=np.intp)] for ring in surface if len(ring) >= 3]
    if not rings:
        return None
    polygon = shapely.Polygon(rings[0], rings[1:])
    return polygon if polygon.area > MIN_AREA else None


def _combine(polygons: list[shapely.Polygon]) -> BaseGeometry:
    """One surface as it is; several merged into a Polygon or MultiPolygon."""
    if len(polygons) == 1:
        return polygons[0]
    merged = shapely.union_all(shapely.make_valid(np.array(polygons, dtype=object)))
    parts = [g for g in shapely.get_parts(merged) if isinstance(g, shapely.Polygon) and not g.is_empty]
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(parts)


def family_ids(city_objects: Mapping[str, Any], object_id: str) -> list[str]:
    """A CityObject's id and those of all its descendants (each once, even with two parents)."""
    seen = {object_id}
    order = [object_id]
    for current in order:
        for child in (city_objects.get(current) or {}).get("children") or []:
            if child in city_objects and child not in seen:
                seen.add(child)
                order.append(child)
    return order


def footprint(
    city_objects: Mapping[str, Any], object_id: str, xyz: npt.NDArray[np.float64] | PlanVertices
) -> BaseGeometry | None:
    """The 2D footprint of a top-level CityObject, from the best geometry it has.

    In order: the object's own LoD 0 surfaces (the 3D BAG's BAG polygon); the semantic
    ground surfaces of the object and its children at LoD 1.2 (else the lowest LoD that has
    any); the outline of the lowest LoD seen from above. None when nothing has an area.
    IndexError or ValueError mean the geometry refers to vertices that do not exist.
    ``xyz`` is the decoded vertices, or a :class:`PlanVertices` that decodes those it needs.
    """
    xy = xyz if isinstance(xyz, PlanVertices) else xyz[:, :2]
    family = [city_objects[i] for i in family_ids(city_objects, object_id)]
    own_lod0 = [
        polygon
        for geometry in family[0].get("geometry") or []
        if geometry.get("type") in SURFACE_TYPES and _lod_rank(geometry.get("lod")) < 1
        for surface, _ in _surfaces(geometry)
        if (polygon := _polygon(surface, xy)) is not None
    ]
    if own_lod0:
        return _combine(own_lod0)
    if isinstance(xy, PlanVertices):
        xy = xy.decoded()  # every surface is looked at from here on: decode them all at once

    ground: dict[str, list[shapely.Polygon]] = {}
    everything: dict[str, list[shapely.Polygon]] = {}
    for city_object in family:
        for geometry in city_object.get("geometry") or []:
            lod = str(geometry.get("lod"))
            surface_types = [
                s.get("type") if isinstance(s, Mapping) else None
                for s in (geometry.get("semantics") or {}).get("surfaces") or []
            ]
            for surface, semantic in _surfaces(geometry):
                polygon = _polygon(surface, xy)
                if polygon is None:
                    continue
                everything.setdefault(lod, []).append(polygon)
                if (
                    semantic is not None
                    and semantic < len(surface_types)
                    and surface_types[semantic] == "GroundSurface"
                ):
                    ground.setdefault(lod, []).append(polygon)
    for candidates in (ground, everything):
        if candidates:
            lod = "1.2" if "1.2" in candidates else min(candidates, key=_lod_rank)
            return _combine(candidates[lod])
    return None


# --- features ----------------------------------------------------------------------------


def top_level_ids(city_objects: Mapping[str, Any]) -> list[str]:
    """Ids of the CityObjects that have no parent, in document order."""
    return [
        object_id
        for object_id, city_object in city_objects.items()
        if isinstance(city_object, Mapping) and not city_object.get("parents")
    ]


def main_object_id(feature: Mapping[str, Any]) -> str:
    """The id of a CityJSONFeature's main CityObject (older writers leave out ``id``)."""
    city_objects = feature.get("CityObjects")
    if not isinstance(city_objects, Mapping) or not city_objects:
        raise ValueError("a CityJSONFeature without CityObjects")
    declared = feature.get("id")
    if isinstance(declared, str) and declared in city_objects:
        return declared
    tops = top_level_ids(city_objects)
    if len(tops) != 1:
        raise ValueError("a CityJSONFeature without id has no single top-level CityObject")
    return tops[0]


def geojson_geometry(geometry: BaseGeometry | None) -> dict[str, Any] | None:
    """A footprint as a GeoJSON geometry with list coordinates and closed rings."""
    if geometry is None:
        return None

    def rings(polygon: shapely.Polygon) -> list[list[list[float]]]:
        return [np.asarray(ring.coords)[:, :2].tolist() for ring in (polygon.exterior, *polygon.interiors)]

    if isinstance(geometry, shapely.Polygon):
        return {"type": "Polygon", "coordinates": rings(geometry)}
    if isinstance(geometry, shapely.MultiPolygon):
        return {"type": "MultiPolygon", "coordinates": [rings(p) for p in geometry.geoms]}
    raise ValueError(f"a footprint cannot be a {geometry.geom_type}")


def hand_over(
    feature: Mapping[str, Any],
    transform: Transform,
    crs: str,
    templates: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``cityjson`` member of a hub feature: a CityJSONFeature and what decodes it."""
    member: dict[str, Any] = {"transform": transform.as_json(), "crs": crs, "feature": feature}
    if templates:
        member["geometry-templates"] = templates
    return member


def to_geojson(
    feature: Mapping[str, Any],
    transform: Transform,
    *,
    crs: str = RD_NAP,
    templates: Mapping[str, Any] | None = None,
    shape: bool = True,
    geometry: bool = True,
) -> tuple[Feature, BaseGeometry | None]:
    """A CityJSONFeature as the hub's GeoJSON feature, and its footprint as a shapely geometry.

    Without ``geometry`` the feature's geometry is None (its footprint is not written out);
    without ``shape`` too, the footprint is not even found (nor the vertices decoded) and None
    is returned for it. ValueError or IndexError mean the CityJSONFeature is malformed.
    """
    object_id = main_object_id(feature)
    city_objects = feature["CityObjects"]
    main = city_objects[object_id]
    if not isinstance(main, Mapping):
        raise ValueError(f"CityObject {object_id} is not an object")
    outline = None
    if shape or geometry:
        outline = footprint(city_objects, object_id, PlanVertices(feature.get("vertices"), transform))
    result: Feature = {
        "type": "Feature",
        "id": object_id,
        "geometry": geojson_geometry(outline) if geometry else None,
        "properties": canonical_attributes(main.get("attributes")),
        CITYJSON: hand_over(feature, transform, crs, templates),
    }
    return result, outline


# --- reference systems -------------------------------------------------------------------

_EPSG_CODE = re.compile(
    r"^(?:https?://www\.opengis\.net/def/crs/EPSG/[^/]+/|urn:ogc:def:crs:EPSG:[^:]*:|EPSG:)(\d+)$",
    re.IGNORECASE,
)


def reference_system_uri(value: str) -> str:
    """An OGC CRS URI for a CityJSON ``referenceSystem`` written in any of the ways files do.

    ``urn:ogc:def:crs:EPSG::7415`` (CityJSON 1.0), ``https://www.opengis.net/def/crs/EPSG/0/7415``
    and ``EPSG:7415`` all become ``http://www.opengis.net/def/crs/EPSG/0/7415``; a compound
    URN (``urn:ogc:def:crs,crs:EPSG::28992,crs:EPSG::5709``) becomes the EPSG code pyproj finds
    for it. ValueError when it names no known CRS.
    """
    text = value.strip()
    match = _EPSG_CODE.match(text)
    if match:
        return f"http://www.opengis.net/def/crs/EPSG/0/{int(match.group(1))}"
    try:
        crs = CRS.from_user_input(text)
    except CRSError as exc:
        raise ValueError(f"unknown reference system {value!r}") from exc
    code = crs.to_epsg(min_confidence=70)
    if code is None:
        raise ValueError(f"reference system {value!r} has no EPSG code")
    return f"http://www.opengis.net/def/crs/EPSG/0/{code}"


def horizontal_uri(uri: str) -> str:
    """The 2D CRS of a (possibly compound or 3D) CRS: EPSG:7415 (RD + NAP) gives EPSG:28992."""
    try:
        crs = CRS.from_user_input(uri)
        if crs.is_compound:
            crs = crs.sub_crs_list[0]
        elif len(crs.axis_info) > 2:
            crs = crs.to_2d()
        return uri_for(crs)
    except (CRSError, ValueError) as exc:
        raise ValueError(f"no 2D coordinate reference system for {uri}") from exc
