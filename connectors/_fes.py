"""FES 2.0 filters for WFS 2.0: what a server says it can evaluate, and CQL2 turned into FES.

Only what a server's ``Filter_Capabilities`` lists is written, and only where the meaning is the
same as the hub's own evaluation: comparisons of a property with a literal of its own type,
``LIKE`` with its wildcards carried over, ``BETWEEN`` on numbers, ``IN`` as ORed equalities,
``AND``/``OR``/``NOT``, and ``Intersects`` with a geometry literal (a ``BBOX`` arrives here as a
polygon). Dates, functions, property-to-property comparisons and case-insensitive matching
are not written: the hub evaluates them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pygeofilter import ast, values

from connectors._gml import GML32, Element, local, text_of
from connectors.base import FieldType

FES20 = "http://www.opengis.net/fes/2.0"

GEOMETRY_NAMES = frozenset({"geometry", "geom", "the_geom", "shape"})
"""Names a CQL2 filter may use for a feature's geometry (as the hub accepts them)."""

_COMPARISONS: dict[ast.ComparisonOp, str] = {
    ast.ComparisonOp.EQ: "PropertyIsEqualTo",
    ast.ComparisonOp.NE: "PropertyIsNotEqualTo",
    ast.ComparisonOp.LT: "PropertyIsLessThan",
    ast.ComparisonOp.LE: "PropertyIsLessThanOrEqualTo",
    ast.ComparisonOp.GT: "PropertyIsGreaterThan",
    ast.ComparisonOp.GE: "PropertyIsGreaterThanOrEqualTo",
}
# `literal op property` is written as `property op' literal`.
_MIRRORED: dict[ast.ComparisonOp, ast.ComparisonOp] = {
    ast.ComparisonOp.EQ: ast.ComparisonOp.EQ,
    ast.ComparisonOp.NE: ast.ComparisonOp.NE,
    ast.ComparisonOp.LT: ast.ComparisonOp.GT,
    ast.ComparisonOp.LE: ast.ComparisonOp.GE,
    ast.ComparisonOp.GT: ast.ComparisonOp.LT,
    ast.ComparisonOp.GE: ast.ComparisonOp.LE,
}
_GML_OPERANDS = {
    "Point": ("Point",),
    "LineString": ("LineString", "Curve"),
    "Polygon": ("Polygon", "Surface"),
    "MultiPoint": ("MultiPoint",),
    "MultiLineString": ("MultiCurve", "MultiLineString"),
    "MultiPolygon": ("MultiSurface", "MultiPolygon"),
}


class FesUnsupported(Exception):
    """The expression (or a part of it) cannot be written as FES for this server."""


@dataclass(frozen=True, slots=True)
class FilterCapabilities:
    """The ``fes:Filter_Capabilities`` of a WFS 2.0 server, as far as the encoder uses them."""

    logical: bool = False
    comparison: frozenset[str] = frozenset()
    spatial: frozenset[str] = frozenset()
    operands: frozenset[str] | None = None
    """Geometry literal types (local names) the server reads; ``None`` when it does not say."""
    resource_id: bool = False

    @property
    def any(self) -> bool:
        """Whether the server evaluates any filter this module can write."""
        return bool(self.comparison or "Intersects" in self.spatial or "BBOX" in self.spatial)

    def reads_operand(self, name: str) -> bool:
        """Whether a geometry literal of this GML type may be sent."""
        return self.operands is None or name in self.operands


def read_filter_capabilities(element: Element | None) -> FilterCapabilities:
    """Parse a ``fes:Filter_Capabilities`` element (``None`` gives a server that filters nothing)."""
    if element is None:
        return FilterCapabilities()
    constraints: dict[str, bool] = {}
    comparison: set[str] = set()
    spatial: set[str] = set()
    operands: set[str] | None = None
    logical = False
    resource_id = False
    for node in element.iter():
        name = local(node)
        if name == "Constraint":
            default = next((c for c in node.iter() if local(c) == "DefaultValue"), None)
            constraints[node.get("name", "")] = default is not None and text_of(default).upper() == "TRUE"
        elif name == "LogicalOperators":
            logical = True
        elif name == "ComparisonOperator":
            comparison.add(_local_part(node.get("name", "")))
        elif name == "SpatialOperator":
            spatial.add(_local_part(node.get("name", "")))
        elif name == "GeometryOperand":
            operands = operands if operands is not None else set()
            operands.add(_local_part(node.get("name", "")))
        elif name == "ResourceIdentifier":
            resource_id = True
    # FES 2.0 conformance: the standard filter includes the logical operators.
    logical = (
        logical
        or constraints.get("ImplementsStandardFilter", False)
        or constraints.get("ImplementsMinStandardFilter", False)
    )
    return FilterCapabilities(
        logical=logical,
        comparison=frozenset(comparison),
        spatial=frozenset(spatial),
        operands=frozenset(operands) if operands is not None else None,
        resource_id=resource_id or constraints.get("ImplementsResourceId", False),
    )


def _local_part(name: str) -> str:
    return name.rsplit(":", 1)[-1]


class FesEncoder:
    """Writes pygeofilter expressions as FES 2.0 for one feature type of one server.

    Spatial literals must already be ``values.Geometry`` in the CRS named by ``srs_name``, in
    its authority axis order (``connectors._cql.reproject_literals`` does that).
    """

    def __init__(
        self,
        capabilities: FilterCapabilities,
        fields: Mapping[str, FieldType],
        geometry_property: str | None,
        srs_name: str,
    ):
        self.capabilities = capabilities
        self.fields = fields
        self.geometry_property = geometry_property
        self.srs_name = srs_name
        self._ids = 0

    def encode(self, node: Any) -> str:
        """One FES predicate (without the ``fes:Filter`` wrapper)."""
        if isinstance(node, ast.And | ast.Or):
            self._need_logical()
            name = "And" if isinstance(node, ast.And) else "Or"
            operands = "".join(self.encode(part) for part in _flatten(node, type(node)))
            return f"<fes:{name}>{operands}</fes:{name}>"
        if isinstance(node, ast.Not):
            return self._not(self.encode(node.sub_node))
        if isinstance(node, ast.Comparison):
            return self._comparison(node)
        if isinstance(node, ast.Between):
            return self._between(node)
        if isinstance(node, ast.Like):
            return self._like(node)
        if isinstance(node, ast.In):
            return self._in(node)
        if isinstance(node, ast.IsNull):
            name = self._property(node.lhs)
            self._need_operator("PropertyIsNull")
            encoded = f"<fes:PropertyIsNull>{_reference(name)}</fes:PropertyIsNull>"
            return self._not(encoded) if node.not_ else encoded
        if isinstance(node, ast.GeometryIntersects):
            return self._intersects(node)
        raise FesUnsupported(f"{type(node).__name__} has no FES equivalent here")

    def envelope(self, bounds: tuple[float, float, float, float]) -> str:
        """A ``fes:BBOX`` on the geometry property for a box in the encoder's CRS."""
        if "BBOX" not in self.capabilities.spatial or not self.capabilities.reads_operand("Envelope"):
            raise FesUnsupported("the server does not evaluate BBOX with an envelope")
        if self.geometry_property is None:
            raise FesUnsupported("the feature type has no known geometry property")
        minx, miny, maxx, maxy = bounds
        return (
            f"<fes:BBOX>{_reference(self.geometry_property)}"
            f"<gml:Envelope srsName={quoteattr(self.srs_name)}>"
            f"<gml:lowerCorner>{_number(minx)} {_number(miny)}</gml:lowerCorner>"
            f"<gml:upperCorner>{_number(maxx)} {_number(maxy)}</gml:upperCorner>"
            "</gml:Envelope></fes:BBOX>"
        )

    def equals(self, name: str, value: str) -> str:
        """``PropertyIsEqualTo`` for a property/value pair given as query-string text."""
        kind = self.fields.get(name)
        if kind not in {"string", "integer", "number", "boolean"}:
            raise FesUnsupported(f"property {name!r} cannot be compared here")
        self._need_operator("PropertyIsEqualTo")
        return (
            f'<fes:PropertyIsEqualTo matchCase="true">{_reference(name)}'
            f"{_literal(value)}</fes:PropertyIsEqualTo>"
        )

    # -- parts ------------------------------------------------------------------------------

    def _need_logical(self) -> None:
        if not self.capabilities.logical:
            raise FesUnsupported("the server does not combine filters with AND/OR/NOT")

    def _need_operator(self, name: str) -> None:
        if name not in self.capabilities.comparison:
            raise FesUnsupported(f"the server does not evaluate {name}")

    def _not(self, encoded: str) -> str:
        self._need_logical()
        return f"<fes:Not>{encoded}</fes:Not>"

    def _property(self, node: Any) -> str:
        if not isinstance(node, ast.Attribute):
            raise FesUnsupported("only properties can be compared (no functions or expressions)")
        if node.name not in self.fields:
            raise FesUnsupported(f"{node.name!r} is not a property of this feature type")
        return str(node.name)

    def _comparison(self, node: ast.Comparison) -> str:
        lhs, rhs, op = node.lhs, node.rhs, node.op
        if not isinstance(lhs, ast.Attribute):
            lhs, rhs, op = rhs, lhs, _MIRRORED[op]
        name = self._property(lhs)
        kind = self.fields[name]
        ordering = op not in (ast.ComparisonOp.EQ, ast.ComparisonOp.NE)
        literal = _checked_literal(rhs, kind, ordering=ordering)
        operator = _COMPARISONS[op]
        self._need_operator(operator)
        case = ' matchCase="true"' if kind == "string" else ""
        return f"<fes:{operator}{case}>{_reference(name)}{literal}</fes:{operator}>"

    def _between(self, node: ast.Between) -> str:
        name = self._property(node.lhs)
        kind = self.fields[name]
        low = _checked_literal(node.low, kind, ordering=True)
        high = _checked_literal(node.high, kind, ordering=True)
        self._need_operator("PropertyIsBetween")
        encoded = (
            f"<fes:PropertyIsBetween>{_reference(name)}"
            f"<fes:LowerBoundary>{low}</fes:LowerBoundary>"
            f"<fes:UpperBoundary>{high}</fes:UpperBoundary></fes:PropertyIsBetween>"
        )
        return self._not(encoded) if node.not_ else encoded

    def _like(self, node: ast.Like) -> str:
        name = self._property(node.lhs)
        if self.fields[name] != "string" or not isinstance(node.pattern, str):
            raise FesUnsupported("LIKE is written for text properties only")
        if node.nocase:
            raise FesUnsupported("case-insensitive LIKE is evaluated by the hub")
        self._need_operator("PropertyIsLike")
        attributes = (
            f"wildCard={quoteattr(node.wildcard)} singleChar={quoteattr(node.singlechar)} "
            f'escapeChar={quoteattr(node.escapechar)} matchCase="true"'
        )
        encoded = (
            f"<fes:PropertyIsLike {attributes}>{_reference(name)}"
            f"{_literal(node.pattern)}</fes:PropertyIsLike>"
        )
        return self._not(encoded) if node.not_ else encoded

    def _in(self, node: ast.In) -> str:
        name = self._property(node.lhs)
        kind = self.fields[name]
        if not node.sub_nodes:
            raise FesUnsupported("an empty IN list")
        self._need_operator("PropertyIsEqualTo")
        case = ' matchCase="true"' if kind == "string" else ""
        parts = [
            f"<fes:PropertyIsEqualTo{case}>{_reference(name)}"
            f"{_checked_literal(item, kind, ordering=False)}</fes:PropertyIsEqualTo>"
            for item in node.sub_nodes
        ]
        if len(parts) > 1:
            self._need_logical()
        encoded = parts[0] if len(parts) == 1 else f"<fes:Or>{''.join(parts)}</fes:Or>"
        return self._not(encoded) if node.not_ else encoded

    def _intersects(self, node: ast.GeometryIntersects) -> str:
        lhs, rhs = node.lhs, node.rhs
        if not isinstance(lhs, ast.Attribute):
            lhs, rhs = rhs, lhs
        if not isinstance(lhs, ast.Attribute) or not self._is_geometry(lhs.name):
            raise FesUnsupported("Intersects is written between the geometry and a literal only")
        if not isinstance(rhs, values.Geometry):
            raise FesUnsupported("Intersects needs a geometry literal")
        if "Intersects" not in self.capabilities.spatial:
            raise FesUnsupported("the server does not evaluate Intersects")
        assert self.geometry_property is not None
        return (
            f"<fes:Intersects>{_reference(self.geometry_property)}"
            f"{self._gml(rhs.geometry, top=True)}</fes:Intersects>"
        )

    def _is_geometry(self, name: str) -> bool:
        if self.geometry_property is None:
            return False
        return name == self.geometry_property or (name in GEOMETRY_NAMES and name not in self.fields)

    def _gml(self, geometry: Mapping[str, Any], *, top: bool = False) -> str:
        """A GeoJSON-like geometry as GML 3.2 in the encoder's CRS."""
        kind = str(geometry.get("type"))
        names = _GML_OPERANDS.get(kind)
        if names is None:
            raise FesUnsupported(f"a {kind} literal cannot be written as GML here")
        if top:
            element = next((n for n in names if self.capabilities.reads_operand(n)), None)
            if element is None:
                raise FesUnsupported(f"the server reads no GML {names[0]} literal")
        else:
            element = names[0]
        self._ids += 1
        head = f'gml:id="filter-geometry-{self._ids}"'
        if top:
            head += f" srsName={quoteattr(self.srs_name)}"
        coordinates = geometry["coordinates"]
        if kind == "Point":
            return f"<gml:Point {head}><gml:pos>{_positions([coordinates])}</gml:pos></gml:Point>"
        if kind == "LineString":
            line = f"<gml:posList>{_positions(coordinates)}</gml:posList>"
            if element == "Curve":
                return (
                    f"<gml:Curve {head}><gml:segments><gml:LineStringSegment>{line}"
                    "</gml:LineStringSegment></gml:segments></gml:Curve>"
                )
            return f"<gml:LineString {head}>{line}</gml:LineString>"
        if kind == "Polygon":
            rings = "".join(
                f"<gml:{'exterior' if i == 0 else 'interior'}><gml:LinearRing><gml:posList>"
                f"{_positions(ring)}</gml:posList></gml:LinearRing>"
                f"</gml:{'exterior' if i == 0 else 'interior'}>"
                for i, ring in enumerate(coordinates)
            )
            if element == "Surface":
                return (
                    f"<gml:Surface {head}><gml:patches><gml:PolygonPatch>{rings}"
                    "</gml:PolygonPatch></gml:patches></gml:Surface>"
                )
            return f"<gml:Polygon {head}>{rings}</gml:Polygon>"
        member_kind, member = {
            "MultiPoint": ("Point", "pointMember"),
            "MultiLineString": ("LineString", "curveMember"),
            "MultiPolygon": ("Polygon", "surfaceMember"),
        }[kind]
        if element in {"MultiLineString", "MultiPolygon"}:
            member = {"MultiLineString": "lineStringMember", "MultiPolygon": "polygonMember"}[element]
        members = "".join(
            f"<gml:{member}>{self._gml({'type': member_kind, 'coordinates': part})}</gml:{member}>"
            for part in coordinates
        )
        return f"<gml:{element} {head}>{members}</gml:{element}>"


def wrap(predicate: str) -> str:
    """A complete ``fes:Filter`` element around one predicate."""
    return f'<fes:Filter xmlns:fes="{FES20}" xmlns:gml="{GML32}">{predicate}</fes:Filter>'


def conjunction(predicates: list[str]) -> str:
    """Several predicates ANDed (the caller checked the server combines them)."""
    return predicates[0] if len(predicates) == 1 else f"<fes:And>{''.join(predicates)}</fes:And>"


def _flatten(node: Any, kind: type) -> Iterator[Any]:
    """The operands of nested ANDs (or ORs) as one list."""
    for side in (node.lhs, node.rhs):
        if isinstance(side, kind):
            yield from _flatten(side, kind)
        else:
            yield side


def _reference(name: str) -> str:
    return f"<fes:ValueReference>{escape(name)}</fes:ValueReference>"


def _literal(text: str) -> str:
    return f"<fes:Literal>{escape(text)}</fes:Literal>"


def _number(value: float) -> str:
    return repr(float(value))


def _positions(points: Any) -> str:
    return " ".join(f"{_number(p[0])} {_number(p[1])}" for p in points)


def _checked_literal(value: Any, kind: FieldType, *, ordering: bool) -> str:
    """A literal compared with a property of ``kind``, when both sides agree on its meaning."""
    if isinstance(value, bool):
        if kind != "boolean" or ordering:
            raise FesUnsupported("a boolean is only compared for equality with a boolean property")
        return _literal("true" if value else "false")
    if isinstance(value, int | float):
        if kind not in {"integer", "number"} or not math.isfinite(value):
            raise FesUnsupported("a number is compared with a numeric property only")
        return _literal(str(value) if isinstance(value, int) else _number(value))
    if isinstance(value, str):
        # Servers may compare text that looks like a number as a number; the order of text is
        # left to the hub, equality is checked by it on whatever comes back.
        if kind != "string" or ordering:
            raise FesUnsupported("text is compared for (in)equality with a text property only")
        return _literal(value)
    raise FesUnsupported(f"a {type(value).__name__} literal is evaluated by the hub")
