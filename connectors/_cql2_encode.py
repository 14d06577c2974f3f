"""Turn a pygeofilter AST back into CQL2 (text or JSON) to push a filter down to a source.

pygeofilter parses CQL2 but has no complete serializer, so this module encodes the subset of
nodes whose meaning it can carry over exactly, and reports which CQL2 conformance classes the
source must declare to understand the result. Anything else raises :class:`Unencodable`, and
the hub then evaluates the filter itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import shapely
from pygeofilter import ast, values
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

Encoding = Literal["cql2-text", "cql2-json"]

BASIC = "basic-cql2"
ADVANCED = "advanced-comparison-operators"
PROPERTY_PROPERTY = "property-property"
BASIC_SPATIAL = "basic-spatial-functions"
BASIC_SPATIAL_PLUS = "basic-spatial-functions-plus"
SPATIAL = "spatial-functions"

# Conformance class names used by drafts of CQL2 that servers in the field still declare.
_OLD_NAMES = {
    "basic-spatial-operators": BASIC_SPATIAL,
    "spatial-operators": SPATIAL,
    "temporal-operators": "temporal-functions",
}

_COMPARISON = {
    ast.ComparisonOp.EQ: "=",
    ast.ComparisonOp.NE: "<>",
    ast.ComparisonOp.LT: "<",
    ast.ComparisonOp.LE: "<=",
    ast.ComparisonOp.GT: ">",
    ast.ComparisonOp.GE: ">=",
}
# `literal op property` is rewritten as `property op' literal`, which basic CQL2 requires.
_MIRRORED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]+$")
_RESERVED = frozenset(
    {
        "AND", "OR", "NOT", "LIKE", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE", "DATE",
        "TIMESTAMP", "INTERVAL", "CASEI", "ACCENTI", "BBOX", "POINT", "LINESTRING", "POLYGON",
        "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON", "GEOMETRYCOLLECTION",
    }
)  # fmt: skip


class Unencodable(Exception):
    """The expression holds a node or literal this module cannot encode faithfully."""


def cql2_classes(conformance: Iterable[str]) -> frozenset[str]:
    """The CQL2 conformance class names (``basic-cql2``, ``cql2-text``...) a server declares."""
    names = set()
    for uri in conformance:
        if "/spec/cql2/" in uri and "/conf/" in uri:
            name = uri.rsplit("/conf/", 1)[1].strip("/")
            names.add(_OLD_NAMES.get(name, name))
    return frozenset(names)


@dataclass(slots=True)
class Encoded:
    """A filter in one CQL2 encoding and the conformance classes a server needs for it."""

    value: str | dict[str, Any]
    requires: set[str] = field(default_factory=set)
    spatial_literals: bool = False

    def as_parameter(self) -> str:
        """The filter as the value of the ``filter`` query parameter."""
        if isinstance(self.value, str):
            return self.value
        return json.dumps(self.value, separators=(",", ":"))


def encode(node: Any, encoding: Encoding) -> Encoded:
    """Encode ``node`` in ``encoding``; raise :class:`Unencodable` for unsupported parts."""
    encoder = _Encoder(encoding)
    value = encoder.condition(node)
    return Encoded(value, encoder.requires, encoder.spatial_literals)


def map_spatial_literals(node: Any, change: Callable[[BaseGeometry], BaseGeometry]) -> Any:
    """A copy of the expression with every geometry or envelope literal passed through ``change``."""
    if isinstance(node, values.Geometry | values.Envelope):
        return values.Geometry(dict(mapping(change(shape(node.geometry)))))
    if isinstance(node, ast.Function) and node.name.lower() == "bbox":
        return values.Geometry(dict(mapping(change(shapely.box(*_bbox_arguments(node))))))
    if isinstance(node, ast.Not):
        return ast.Not(map_spatial_literals(node.sub_node, change))
    if isinstance(node, ast.Combination):
        return type(node)(map_spatial_literals(node.lhs, change), map_spatial_literals(node.rhs, change))
    if isinstance(node, ast.SpatialComparisonPredicate):
        return type(node)(map_spatial_literals(node.lhs, change), map_spatial_literals(node.rhs, change))
    return node


def _bbox_arguments(node: ast.Function) -> tuple[float, float, float, float]:
    """The four numbers of a ``BBOX(...)`` literal as the CQL2 text parser delivers it."""
    arguments = node.arguments
    if len(arguments) != 4 or not all(_is_number(a) for a in arguments):
        raise Unencodable("BBOX literals need exactly four numbers")
    return (float(arguments[0]), float(arguments[1]), float(arguments[2]), float(arguments[3]))


def _is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


class _Encoder:
    """One encoding pass; collects the conformance classes the expression needs."""

    def __init__(self, encoding: Encoding) -> None:
        self.text = encoding == "cql2-text"
        self.requires: set[str] = {BASIC}
        self.spatial_literals = False

    # -- boolean structure -------------------------------------------------------------------

    def condition(self, node: Any) -> Any:
        """Encode a node that evaluates to true or false."""
        if isinstance(node, ast.Combination):
            word = node.op.value
            lhs, rhs = self.condition(node.lhs), self.condition(node.rhs)
            if self.text:
                return f"({lhs}) {word} ({rhs})"
            return {"op": word.lower(), "args": [lhs, rhs]}
        if isinstance(node, ast.Not):
            return self._negate(self.condition(node.sub_node))
        if isinstance(node, ast.Comparison):
            return self._comparison(node)
        if isinstance(node, ast.IsNull):
            prop = self._attribute(node.lhs)
            if self.text:
                return f"{prop} IS {'NOT ' if node.not_ else ''}NULL"
            return self._maybe_not({"op": "isNull", "args": [prop]}, node.not_)
        if isinstance(node, ast.Like):
            return self._like(node)
        if isinstance(node, ast.Between):
            return self._between(node)
        if isinstance(node, ast.In):
            return self._in(node)
        if isinstance(node, ast.SpatialComparisonPredicate):
            return self._spatial(node)
        raise Unencodable(f"{type(node).__name__} cannot be pushed down")

    def _negate(self, encoded: Any) -> Any:
        if self.text:
            return f"NOT ({encoded})"
        return {"op": "not", "args": [encoded]}

    def _maybe_not(self, encoded: Any, negated: bool) -> Any:
        return self._negate(encoded) if negated else encoded

    # -- predicates --------------------------------------------------------------------------

    def _comparison(self, node: ast.Comparison) -> Any:
        op = _COMPARISON[node.op]
        lhs, rhs = node.lhs, node.rhs
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            lhs, rhs, op = rhs, lhs, _MIRRORED[op]
        if not isinstance(lhs, ast.Attribute):
            raise Unencodable("comparisons need a property on one side")
        left = self._attribute(lhs)
        if isinstance(rhs, ast.Attribute):
            self.requires.add(PROPERTY_PROPERTY)
            right = self._attribute(rhs)
        else:
            right = self._scalar(rhs)
        if self.text:
            return f"{left} {op} {right}"
        return {"op": op, "args": [left, right]}

    def _like(self, node: ast.Like) -> Any:
        if node.nocase:
            raise Unencodable("case-insensitive LIKE is not pushed down")
        if not isinstance(node.pattern, str):
            raise Unencodable("LIKE needs a text pattern")
        self.requires.add(ADVANCED)
        prop = self._attribute(node.lhs)
        pattern = self._string(_like_pattern(node))
        if self.text:
            return f"{prop} {'NOT ' if node.not_ else ''}LIKE {pattern}"
        return self._maybe_not({"op": "like", "args": [prop, pattern]}, node.not_)

    def _between(self, node: ast.Between) -> Any:
        if not (_is_number(node.low) and _is_number(node.high)):
            raise Unencodable("BETWEEN is pushed down for numbers only")
        self.requires.add(ADVANCED)
        prop = self._attribute(node.lhs)
        low, high = self._scalar(node.low), self._scalar(node.high)
        if self.text:
            return f"{prop} {'NOT ' if node.not_ else ''}BETWEEN {low} AND {high}"
        return self._maybe_not({"op": "between", "args": [prop, low, high]}, node.not_)

    def _in(self, node: ast.In) -> Any:
        if not node.sub_nodes:
            raise Unencodable("IN needs at least one value")
        self.requires.add(ADVANCED)
        prop = self._attribute(node.lhs)
        options = [self._scalar(option) for option in node.sub_nodes]
        if self.text:
            joined = ", ".join(str(option) for option in options)
            return f"{prop} {'NOT ' if node.not_ else ''}IN ({joined})"
        return self._maybe_not({"op": "in", "args": [prop, options]}, node.not_)

    def _spatial(self, node: ast.SpatialComparisonPredicate) -> Any:
        name = node.op.value
        lhs, rhs = node.lhs, node.rhs
        if name == "INTERSECTS" and not isinstance(lhs, ast.Attribute):
            lhs, rhs = rhs, lhs  # symmetric, and basic CQL2 wants the property first
        if isinstance(lhs, ast.Attribute) and not isinstance(rhs, ast.Attribute):
            left, (right, kind) = self._attribute(lhs), self._geometry(rhs)
        elif isinstance(rhs, ast.Attribute) and not isinstance(lhs, ast.Attribute):
            (left, kind), right = self._geometry(lhs), self._attribute(rhs)
        else:
            raise Unencodable("spatial predicates need one property and one literal")
        self.spatial_literals = True
        if name != "INTERSECTS":
            self.requires.add(SPATIAL)
        elif kind in {"Point", "BBox"}:
            self.requires.add(BASIC_SPATIAL)
        else:
            self.requires.add(BASIC_SPATIAL_PLUS)
        if self.text:
            return f"S_{name}({left}, {right})"
        return {"op": f"s_{name.lower()}", "args": [left, right]}

    # -- operands ----------------------------------------------------------------------------

    def _attribute(self, node: Any) -> Any:
        if not isinstance(node, ast.Attribute):
            raise Unencodable("only plain properties are pushed down, not expressions")
        name = node.name
        if not self.text:
            return {"property": name}
        if _SIMPLE_NAME.match(name) and name.upper() not in _RESERVED:
            return name
        if '"' in name:
            raise Unencodable("property names with double quotes cannot be written in CQL2")
        return f'"{name}"'

    def _string(self, value: str) -> Any:
        if not self.text:
            return value
        # CQL2 escapes a quote by doubling it, but pygeofilter (which pygeoapi parses with)
        # rejects that; refusing keeps a pushed filter meaning the same everywhere.
        if "'" in value:
            raise Unencodable("text literals with single quotes are not pushed down")
        return f"'{value}'"

    def _scalar(self, value: Any) -> Any:
        if isinstance(value, bool):
            return ("TRUE" if value else "FALSE") if self.text else value
        if isinstance(value, int | float):
            if not math.isfinite(float(value)):
                raise Unencodable("non-finite numbers cannot be written in CQL2")
            return _number_text(value) if self.text else value
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, datetime):
            moment = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
            stamp = moment.isoformat().replace("+00:00", "Z")
            return f"TIMESTAMP('{stamp}')" if self.text else {"timestamp": stamp}
        if isinstance(value, date):
            return f"DATE('{value.isoformat()}')" if self.text else {"date": value.isoformat()}
        raise Unencodable(f"literal {type(value).__name__} is not pushed down")

    def _geometry(self, node: Any) -> tuple[Any, str]:
        if isinstance(node, values.Envelope):
            box = (node.x1, node.y1, node.x2, node.y2)
        elif isinstance(node, ast.Function) and node.name.lower() == "bbox":
            box = _bbox_arguments(node)
        elif isinstance(node, values.Geometry):
            geometry = shape(node.geometry)
            if geometry.is_empty:
                raise Unencodable("empty geometry literals are not pushed down")
            if self.text:
                return shapely.to_wkt(geometry, rounding_precision=-1, trim=True), geometry.geom_type
            return dict(mapping(geometry)), geometry.geom_type
        else:
            raise Unencodable(f"{type(node).__name__} is not a spatial literal")
        if not all(math.isfinite(n) for n in box):
            raise Unencodable("non-finite numbers cannot be written in CQL2")
        if self.text:
            return "BBOX({})".format(", ".join(_number_text(n) for n in box)), "BBox"
        return {"bbox": [float(n) for n in box]}, "BBox"


def _number_text(value: float) -> str:
    """A number in CQL2 text: shortest exact form, never in exponent notation."""
    if isinstance(value, int):
        return str(value)
    return str(np.format_float_positional(value, trim="-"))


def _like_pattern(node: ast.Like) -> str:
    """The pattern in CQL2 syntax (``%``, ``_``, backslash escape) whatever the AST's wildcards."""
    pattern = str(node.pattern)
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == node.escapechar and i + 1 < len(pattern):
            out.append(_escape_like(pattern[i + 1]))
            i += 2
            continue
        if char == node.wildcard:
            out.append("%")
        elif char == node.singlechar:
            out.append("_")
        else:
            out.append(_escape_like(char))
        i += 1
    return "".join(out)


def _escape_like(char: str) -> str:
    """A character that must match itself in a CQL2 LIKE pattern."""
    return "\\" + char if char in {"%", "_", "\\"} else char
