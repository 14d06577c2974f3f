"""Reading the XML a WFS answers: a hardened parser, CRS names, GML 3.2 features, exceptions.

The XML comes from a server a steward registered, not from us, so it is parsed without DTDs,
entity expansion or network access, and a document that declares a DTD is refused.

Coordinates come out in the *authority* axis order of the CRS they are in, which is how the
connectors hand coordinates to the hub: ``urn:ogc:def:crs:EPSG::4326`` and ``::4258`` are
latitude first, EPSG:28992 is x/y. The legacy names ``EPSG:4326`` and
``http://www.opengis.net/gml/srs/epsg.xml#4326`` mean longitude first whatever the EPSG
register says (the convention of WFS 1.0 and of GeoServer), so those coordinates are swapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from connectors._crs import EPSG_PREFIX, northing_first
from connectors.base import CRS84, Feature, FieldType
from connectors.errors import UnsupportedQuery

GML32 = "http://www.opengis.net/gml/3.2"
GML31 = "http://www.opengis.net/gml"
GML_NAMESPACES = frozenset({GML32, GML31})
WFS20 = "http://www.opengis.net/wfs/2.0"
OWS_NAMESPACES = frozenset(
    {"http://www.opengis.net/ows/1.1", "http://www.opengis.net/ows/2.0", "http://www.opengis.net/ows"}
)
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XLINK = "http://www.w3.org/1999/xlink"


Element = Any
"""An lxml element (lxml ships no type information)."""

_EPSG_URN = re.compile(r"^urn:(?:x-)?ogc:def:crs:EPSG:[0-9.]*:(\d+)$", re.IGNORECASE)
_EPSG_URI = re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/[0-9.]+/(\d+)$", re.IGNORECASE)
_EPSG_LEGACY = re.compile(
    r"^(?:EPSG:(\d+)|https?://www\.opengis\.net/gml/srs/epsg\.xml#(\d+))$", re.IGNORECASE
)
_CRS84_NAMES = frozenset({
    "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "CRS:84", "OGC:CRS84", CRS84,
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
})  # fmt: skip

# Feature members that carry GML bookkeeping rather than the feature's own properties.
_GML_METADATA = frozenset({
    "boundedBy", "name", "description", "identifier", "descriptionReference", "metaDataProperty",
})  # fmt: skip
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class XmlError(ValueError):
    """The bytes are not an acceptable XML document."""


class GmlError(ValueError):
    """The document is XML but not GML this module can turn into features."""


def parse_xml(content: bytes) -> Element:
    """The root element of an XML document, parsed without DTDs, entities or network."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from exc
    if root is None:
        raise XmlError("empty XML document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        # A WFS never needs a DTD; one in a response can only be an attempt at entity tricks.
        raise XmlError("the document declares a DTD, which is refused")
    return root


def qname(element: Element) -> tuple[str | None, str]:
    """Namespace and local name of an element."""
    name = etree.QName(element)
    return name.namespace, name.localname


def local(element: Element) -> str:
    """The local name of an element (comments and other nodes give an empty name)."""
    if not isinstance(element.tag, str):
        return ""
    return str(etree.QName(element).localname)


def children(element: Element) -> list[Element]:
    """Child elements only (no comments or processing instructions)."""
    return [child for child in element if isinstance(child.tag, str)]


def text_of(element: Element) -> str:
    """The element's own text, stripped."""
    return (element.text or "").strip()


# -- CRS names ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SrsName:
    """A CRS name as a WFS writes it: the OGC URI it stands for, and its axis convention."""

    uri: str
    lon_first: bool
    """Positions are written x/y (longitude first) even if the CRS is latitude first."""


def read_srs_name(name: str) -> SrsName | None:
    """The CRS a ``srsName`` / ``DefaultCRS`` value stands for, or ``None`` if unknown."""
    value = name.strip()
    if value in _CRS84_NAMES:
        return SrsName(CRS84, lon_first=True)
    match = _EPSG_URN.match(value) or _EPSG_URI.match(value)
    if match:
        return SrsName(EPSG_PREFIX + str(int(match.group(1))), lon_first=False)
    legacy = _EPSG_LEGACY.match(value)
    if legacy:
        code = int(legacy.group(1) or legacy.group(2))
        return SrsName(EPSG_PREFIX + str(code), lon_first=True)
    return None


def urn_for(uri: str) -> str:
    """The ``urn:ogc:def:crs:EPSG::n`` name of an EPSG URI, the form WFS 2.0 servers expect."""
    if uri.startswith(EPSG_PREFIX):
        return f"urn:ogc:def:crs:EPSG::{uri.removeprefix(EPSG_PREFIX)}"
    if uri == CRS84:
        return "urn:ogc:def:crs:OGC:1.3:CRS84"
    return uri


def _needs_swap(srs: SrsName) -> bool:
    """Whether positions written under ``srs`` must be swapped into authority order."""
    if not srs.lon_first or srs.uri == CRS84:
        return False
    try:
        return northing_first(srs.uri)
    except UnsupportedQuery:
        return False


# -- geometries ---------------------------------------------------------------------------------


class _GeometryReader:
    """Turns GML geometry elements into GeoJSON geometries, tracking the one CRS they are in."""

    def __init__(self, default_srs: SrsName | None):
        self.default_srs = default_srs
        self.crs: str | None = None
        self._swap_cache: dict[SrsName, bool] = {}

    def read(self, element: Element, inherited: SrsName | None = None) -> dict[str, Any]:
        srs = self._srs(element, inherited)
        kind = local(element)
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise GmlError(f"GML geometry type {kind} is not supported")
        result: dict[str, Any] = handler(self, element, srs)
        return result

    def _srs(self, element: Element, inherited: SrsName | None) -> SrsName | None:
        name = element.get("srsName")
        if not name:
            return inherited
        srs = read_srs_name(name)
        if srs is None:
            raise GmlError(f"unknown coordinate reference system {name!r}")
        return srs

    def positions(self, element: Element, srs: SrsName | None) -> list[list[float]]:
        """The positions of a ``posList``, ``pos`` sequence or GML 2 ``coordinates``."""
        effective = srs or self.default_srs
        if effective is None:
            raise GmlError("a geometry names no coordinate reference system")
        if self.crs is None:
            self.crs = effective.uri
        elif self.crs != effective.uri:
            raise GmlError("the geometries of one answer are in different coordinate systems")
        points = self._raw_positions(element)
        swap = self._swap_cache.get(effective)
        if swap is None:
            swap = self._swap_cache[effective] = _needs_swap(effective)
        if swap:
            for point in points:
                point[0], point[1] = point[1], point[0]
        return points

    def _raw_positions(self, element: Element) -> list[list[float]]:
        dimension = _dimension(element)
        found: list[list[float]] = []
        for child in children(element):
            name = local(child)
            if name == "posList":
                found.extend(_split(text_of(child), _dimension(child, dimension)))
            elif name == "pos":
                found.extend(_split(text_of(child), _dimension(child, dimension), single=True))
            elif name == "pointProperty" or name == "pointRep":
                point = next(iter(children(child)), None)
                if point is not None:
                    found.extend(self._raw_positions(point))
            elif name == "coordinates":
                found.extend(_gml2_coordinates(child))
            elif name == "coord":
                found.append([float(text_of(part)) for part in children(child)])
        if not found:
            raise GmlError(f"a {local(element)} has no positions")
        return found


def _dimension(element: Element, default: int = 2) -> int:
    value = element.get("srsDimension")
    if value is None:
        return default
    try:
        dimension = int(value)
    except ValueError as exc:
        raise GmlError(f"srsDimension {value!r} is not a number") from exc
    if dimension not in (2, 3):
        raise GmlError(f"srsDimension {dimension} is not supported")
    return dimension


def _split(text: str, dimension: int, *, single: bool = False) -> list[list[float]]:
    try:
        numbers = [float(part) for part in text.split()]
    except ValueError as exc:
        raise GmlError("coordinates that are not numbers") from exc
    if single and len(numbers) in (2, 3):
        dimension = len(numbers)
    if not numbers or len(numbers) % dimension:
        raise GmlError(f"{len(numbers)} numbers do not make {dimension}D positions")
    return [numbers[i : i + dimension] for i in range(0, len(numbers), dimension)]


def _gml2_coordinates(element: Element) -> list[list[float]]:
    decimal = element.get("decimal", ".")
    separator = element.get("cs", ",")
    tuples = element.get("ts", " ")
    result: list[list[float]] = []
    for chunk in text_of(element).split(tuples if tuples.strip() else None):
        if not chunk:
            continue
        try:
            result.append([float(n.replace(decimal, ".")) for n in chunk.split(separator)])
        except ValueError as exc:
            raise GmlError("GML coordinates that are not numbers") from exc
    return result


def _point(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    return {"type": "Point", "coordinates": reader.positions(element, srs)[0]}


def _line(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": _line_positions(reader, element, srs)}


def _line_positions(reader: _GeometryReader, element: Element, srs: SrsName | None) -> list[list[float]]:
    if local(element) != "Curve":
        return reader.positions(element, srs)
    points: list[list[float]] = []
    for segments in children(element):
        for segment in children(segments):
            if local(segment) not in {"LineStringSegment", "GeodesicString"}:
                raise GmlError(f"curve segments of type {local(segment)} are not supported")
            part = reader.positions(segment, srs)
            points.extend(part[1:] if points and part and points[-1] == part[0] else part)
    return points


def _ring(reader: _GeometryReader, boundary: Element, srs: SrsName | None) -> list[list[float]]:
    ring = next(iter(children(boundary)), None)
    if ring is None:
        raise GmlError("a polygon boundary without a ring")
    if local(ring) == "LinearRing":
        return reader.positions(ring, srs)
    if local(ring) == "Ring":
        points: list[list[float]] = []
        for member in children(ring):
            curve = next(iter(children(member)), None)
            if curve is not None:
                part = _line_positions(reader, curve, reader._srs(curve, srs))
                points.extend(part[1:] if points and part and points[-1] == part[0] else part)
        return points
    raise GmlError(f"polygon rings of type {local(ring)} are not supported")


def _polygon_rings(reader: _GeometryReader, element: Element, srs: SrsName | None) -> list[list[list[float]]]:
    if local(element) == "Surface":
        rings: list[list[list[float]]] = []
        for patches in children(element):
            for patch in children(patches):
                if local(patch) != "PolygonPatch":
                    raise GmlError(f"surface patches of type {local(patch)} are not supported")
                rings.extend(_polygon_rings(reader, patch, srs))
        return rings
    exterior: list[list[list[float]]] = []
    interiors: list[list[list[float]]] = []
    for boundary in children(element):
        name = local(boundary)
        if name in {"exterior", "outerBoundaryIs"}:
            exterior.append(_ring(reader, boundary, srs))
        elif name in {"interior", "innerBoundaryIs"}:
            interiors.append(_ring(reader, boundary, srs))
    if len(exterior) != 1:
        raise GmlError("a polygon must have exactly one exterior ring")
    return exterior + interiors


def _polygon(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    if local(element) == "Surface" and len(_patches(element)) > 1:
        return _multi_polygon_of(reader, _patches(element), srs)
    return {"type": "Polygon", "coordinates": _polygon_rings(reader, element, srs)}


def _patches(element: Element) -> list[Element]:
    return [patch for patches in children(element) for patch in children(patches)]


def _multi_polygon_of(reader: _GeometryReader, parts: list[Element], srs: SrsName | None) -> dict[str, Any]:
    return {
        "type": "MultiPolygon",
        "coordinates": [_polygon_rings(reader, part, reader._srs(part, srs)) for part in parts],
    }


def _members(element: Element) -> list[Element]:
    """The geometries of a GML aggregate, from single (``*Member``) and array (``*Members``)
    properties alike."""
    found: list[Element] = []
    for member in children(element):
        name = local(member)
        if name.endswith("Members"):
            found.extend(children(member))
        elif name.endswith("Member"):
            found.extend(children(member)[:1])
    return found


def _multi_point(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    return {
        "type": "MultiPoint",
        "coordinates": [reader.read(p, srs)["coordinates"] for p in _members(element)],
    }


def _multi_line(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    lines = []
    for member in _members(element):
        geometry = reader.read(member, srs)
        if geometry["type"] == "MultiLineString":
            lines.extend(geometry["coordinates"])
        else:
            lines.append(geometry["coordinates"])
    return {"type": "MultiLineString", "coordinates": lines}


def _multi_polygon(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    polygons = []
    for member in _members(element):
        geometry = reader.read(member, srs)
        if geometry["type"] == "MultiPolygon":
            polygons.extend(geometry["coordinates"])
        else:
            polygons.append(geometry["coordinates"])
    return {"type": "MultiPolygon", "coordinates": polygons}


def _collection(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    return {"type": "GeometryCollection", "geometries": [reader.read(m, srs) for m in _members(element)]}


def _envelope(reader: _GeometryReader, element: Element, srs: SrsName | None) -> dict[str, Any]:
    lower = upper = None
    for child in children(element):
        if local(child) == "lowerCorner":
            lower = child
        elif local(child) == "upperCorner":
            upper = child
    if lower is None or upper is None:
        raise GmlError("an envelope without corners")
    holder = etree.Element("corners")
    for corner in (lower, upper):
        pos = etree.SubElement(holder, f"{{{GML32}}}pos")
        pos.text = corner.text
    (minx, miny), (maxx, maxy) = (p[:2] for p in reader.positions(holder, srs))
    ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
    return {"type": "Polygon", "coordinates": [ring]}


_HANDLERS = {
    "Point": _point,
    "LineString": _line,
    "Curve": _line,
    "LinearRing": _line,
    "Polygon": _polygon,
    "Surface": _polygon,
    "MultiPoint": _multi_point,
    "MultiLineString": _multi_line,
    "MultiCurve": _multi_line,
    "MultiPolygon": _multi_polygon,
    "MultiSurface": _multi_polygon,
    "MultiGeometry": _collection,
    "Envelope": _envelope,
}


def is_geometry(element: Element) -> bool:
    """Whether an element is a GML geometry this module reads."""
    namespace, name = qname(element)
    return namespace in GML_NAMESPACES and name in _HANDLERS


# -- features -----------------------------------------------------------------------------------


@dataclass(slots=True)
class FeatureCollectionPage:
    """What one GetFeature answer holds."""

    features: list[Feature]
    crs: str | None
    """The CRS (OGC URI) of the geometries, in its authority axis order; None if there were none."""
    number_matched: int | None
    number_returned: int | None
    has_next: bool
    """The server links a next page (WFS 2.0 ``next``), so this one was not the last."""
    type_names: set[tuple[str | None, str]]
    """The element names of the features, to check they are of the type asked for."""


def read_feature_collection(
    root: Element,
    *,
    default_srs: SrsName | None,
    geometry_property: str | None,
    fields: Mapping[str, FieldType],
) -> FeatureCollectionPage:
    """Turn a ``wfs:FeatureCollection`` (or GML 3.1 ``featureMember`` collection) into GeoJSON.

    ``default_srs`` is the CRS asked for, used for geometries that name none; ``geometry_property``
    is the property that becomes ``geometry`` (the first geometry when ``None``); ``fields`` types
    the property values (integers, numbers, booleans; the rest stays text).
    """
    if local(root) != "FeatureCollection":
        raise GmlError(f"expected a FeatureCollection, got {local(root)}")
    for child in children(root):
        if local(child) == "truncatedResponse":
            # WFS 2.0.2: the server failed while writing; what came before is not the answer.
            report = next(iter(children(child)), None)
            exceptions = read_exception_report(report) if report is not None else None
            reason = exceptions[0].text if exceptions else "no reason given"
            raise GmlError(f"the server cut its answer short ({reason})")
    reader = _GeometryReader(default_srs)
    features: list[Feature] = []
    type_names: set[tuple[str | None, str]] = set()
    for feature_element in _feature_elements(root):
        type_names.add(qname(feature_element))
        features.append(_feature(reader, feature_element, geometry_property, fields))
    return FeatureCollectionPage(
        features=features,
        crs=reader.crs,
        number_matched=_count(root.get("numberMatched")),
        number_returned=_count(root.get("numberReturned")),
        has_next=bool(root.get("next")),
        type_names=type_names,
    )


def _count(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None  # "unknown", as MapServer says when it has not counted
    return int(value)


def _feature_elements(collection: Element) -> list[Element]:
    found: list[Element] = []
    for member in children(collection):
        name = local(member)
        if name in {"member", "featureMember"}:
            for child in children(member):
                if local(child) == "FeatureCollection":
                    found.extend(_feature_elements(child))  # a join or several type names
                else:
                    found.append(child)
        elif name == "featureMembers":
            found.extend(children(member))
    return found


def _feature(
    reader: _GeometryReader,
    element: Element,
    geometry_property: str | None,
    fields: Mapping[str, FieldType],
) -> Feature:
    feature_id = element.get(f"{{{GML32}}}id") or element.get(f"{{{GML31}}}id") or element.get("fid")
    geometry: dict[str, Any] | None = None
    properties: dict[str, Any] = {}
    for child in children(element):
        namespace, name = qname(child)
        if namespace in GML_NAMESPACES and name in _GML_METADATA:
            continue
        inner = children(child)
        if inner and is_geometry(inner[0]):
            if geometry is None and (geometry_property is None or name == geometry_property):
                geometry = reader.read(inner[0])
            continue  # further geometries are not properties a GeoJSON feature can carry
        value = _value(child, fields.get(name))
        if name in properties:
            previous = properties[name]
            properties[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            properties[name] = value
    for name in fields:
        properties.setdefault(name, None)  # servers leave out null properties
    return {"type": "Feature", "id": feature_id, "geometry": geometry, "properties": properties}


def _value(element: Element, kind: FieldType | None) -> Any:
    """A property's value, typed by its schema type."""
    if element.get(f"{{{XSI}}}nil") in {"true", "1"}:
        return None
    inner = children(element)
    if inner:
        if len(inner) == 1 and local(inner[0]) in {"TimeInstant", "TimePeriod", "timePosition"}:
            return _time_value(inner[0])
        nested: dict[str, Any] = {}
        for child in inner:
            nested_value = _value(child, None)
            name = local(child)
            if name in nested:
                previous = nested[name]
                nested[name] = (
                    [*previous, nested_value] if isinstance(previous, list) else [previous, nested_value]
                )
            else:
                nested[name] = nested_value
        return nested
    text = text_of(element)
    if not text:
        # Servers write a null as an empty element (MapServer cannot tell null from ""), so
        # an empty value is taken as null; a reference-only element gives its link.
        href = element.get(f"{{{XLINK}}}href")
        return href or None
    return typed(text, kind)


def _time_value(element: Element) -> Any:
    """A GML time as ISO text (MapServer writes the bare ``timePosition``), a period as
    ``[begin, end]``."""
    if local(element) == "timePosition":
        return text_of(element) or None
    if local(element) == "TimeInstant":
        position = next((c for c in children(element) if local(c) == "timePosition"), None)
        return text_of(position) if position is not None else None
    bounds = {local(c): text_of(c) for c in children(element)}
    return [bounds.get("beginPosition"), bounds.get("endPosition")]


def typed(text: str, kind: FieldType | None) -> Any:
    """Text as the JSON value its schema type says (unchanged text when it does not parse)."""
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return text


# -- exception reports --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwsException:
    """One exception of an OWS ``ExceptionReport``."""

    code: str
    locator: str
    text: str


def read_exception_report(root: Element) -> list[OwsException] | None:
    """The exceptions of an ``ows:ExceptionReport`` (or WFS 1.0 ``ServiceExceptionReport``),
    or ``None`` when the document is something else."""
    name = local(root)
    if name not in {"ExceptionReport", "ServiceExceptionReport"}:
        return None
    found: list[OwsException] = []
    for exception in root.iter():
        if local(exception) not in {"Exception", "ServiceException"}:
            continue
        texts = [text_of(t) for t in exception if local(t) == "ExceptionText" and text_of(t)]
        message = " ".join(texts) or text_of(exception)
        found.append(
            OwsException(
                code=exception.get("exceptionCode") or exception.get("code") or "NoApplicableCode",
                locator=exception.get("locator") or "",
                text=" ".join(message.split())[:300],
            )
        )
    return found
