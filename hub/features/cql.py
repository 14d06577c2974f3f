"""CQL2 filters: parsing, checking against a collection's fields, and local evaluation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import shapely
from pygeofilter import ast, values
from pygeofilter.backends.native.evaluate import NativeEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from shapely.geometry import mapping, shape
from shapely.ops import transform as shapely_transform

from connectors.base import Feature
from hub.errors import BadRequest
from hub.features.crs import transformer

GEOMETRY_NAMES = frozenset({"geometry", "geom", "the_geom", "shape"})
"""Names a filter may use for a feature's geometry."""

FILTER_LANGS = ("cql2-text", "cql2-json")


def parse_filter(text: str, lang: str | None) -> ast.Node:
    """Parse a ``filter`` parameter in CQL2 text (default) or CQL2 JSON."""
    lang = lang or "cql2-text"
    if lang not in FILTER_LANGS:
        raise BadRequest(f"filter-lang must be one of {', '.join(FILTER_LANGS)}")
    try:
        node = parse_cql2_json(json.loads(text)) if lang == "cql2-json" else parse_cql2_text(text)
    except Exception as exc:  # the parsers raise a variety of lark and value errors
        raise BadRequest(f"filter is not valid {lang}: {exc}".strip()) from exc
    if not isinstance(node, ast.Node):
        raise BadRequest(f"filter is not a {lang} predicate")
    return node


def attributes(node: Any) -> Iterator[str]:
    """Every attribute name an expression refers to."""
    if isinstance(node, ast.Attribute):
        yield node.name
    elif isinstance(node, ast.Node):
        for child in node.get_sub_nodes():
            yield from attributes(child)
    elif isinstance(node, list):
        for child in node:
            yield from attributes(child)


def check_attributes(node: ast.Node, fields: Iterable[str]) -> None:
    """Refuse a filter that names a property the collection does not have."""
    known = set(fields)
    unknown = sorted({name for name in attributes(node) if name not in known} - GEOMETRY_NAMES)
    if unknown:
        raise BadRequest(
            f"filter names unknown propert{'y' if len(unknown) == 1 else 'ies'}: "
            f"{', '.join(unknown)}; see the collection's queryables"
        )


def _map_geometries(node: Any, convert: Callable[[Any], Any]) -> Any:
    """Rebuild an AST with every geometry literal passed through ``convert``."""
    if isinstance(node, values.Geometry):
        return values.Geometry(convert(node.geometry))
    if isinstance(node, values.Envelope):
        poly = shapely.box(node.x1, node.y1, node.x2, node.y2)
        return values.Geometry(convert(mapping(poly)))
    if isinstance(node, list):
        return [_map_geometries(child, convert) for child in node]
    if isinstance(node, ast.Node) and not isinstance(node, ast.Attribute):
        fields = {
            name: _map_geometries(getattr(node, name), convert)
            for name in node.__dataclass_fields__
        }
        return type(node)(**fields)
    return node


def transform_literals(node: ast.Node, source: str, target: str) -> ast.Node:
    """The expression with its spatial literals moved from ``source`` to ``target`` CRS."""
    if source == target:
        return node
    project = transformer(source, target).transform

    def convert(geometry: dict[str, Any]) -> dict[str, Any]:
        # segmentize first so that long edges follow the curvature of the target CRS
        geom = shape(geometry)
        if geom.length > 0:
            geom = shapely.segmentize(geom, max(geom.length / 200, 1e-9))
        return dict(mapping(shapely_transform(project, geom)))

    result: ast.Node = _map_geometries(node, convert)
    return result


def compile_predicate(node: ast.Node) -> Callable[[Feature], bool]:
    """A function telling whether a GeoJSON feature matches the expression."""
    attribute_map = {name: "geometry" for name in GEOMETRY_NAMES}
    attribute_map["*"] = "properties.*"
    evaluator = NativeEvaluator(attribute_map=attribute_map, use_getattr=False)
    compiled = evaluator.evaluate(node)

    def matches(feature: Feature) -> bool:
        try:
            return bool(compiled(feature))
        except (TypeError, KeyError, AttributeError, ValueError, shapely.errors.ShapelyError):
            # comparisons with a missing or null value, or a missing geometry, do not match
            return False

    return matches
