"""CQL2 filters: parsing, checking against a collection's fields, and local evaluation."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, cast

import shapely
from pygeofilter import ast, values
from pygeofilter.backends.native.evaluate import NativeEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from connectors._cql import attributes, reproject_literals
from connectors.base import Feature
from hub.errors import BadRequest

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
    normalised: ast.Node = _rebuild(node, _bbox_function_as_envelope)
    if lang == "cql2-json":
        normalised = _rebuild(normalised, _json_bbox_in_order)
    return normalised


def check_attributes(node: ast.Node, fields: Iterable[str]) -> None:
    """Refuse a filter that names a property the collection does not have."""
    known = set(fields)
    unknown = sorted({name for name in attributes(node) if name not in known} - GEOMETRY_NAMES)
    if unknown:
        raise BadRequest(
            f"filter names unknown propert{'y' if len(unknown) == 1 else 'ies'}: "
            f"{', '.join(unknown)}; see the collection's queryables"
        )


def _rebuild(node: Any, leaf: Callable[[Any], Any]) -> Any:
    """Rebuild an AST bottom-up, passing every node through ``leaf`` (which may replace it)."""
    if isinstance(node, list):
        return [_rebuild(child, leaf) for child in node]
    if (
        isinstance(node, ast.Node)
        and not isinstance(node, (type, ast.Attribute))
        and dataclasses.is_dataclass(node)
    ):
        changes = {f.name: _rebuild(getattr(node, f.name), leaf) for f in dataclasses.fields(node) if f.init}
        node = dataclasses.replace(cast(Any, node), **changes)
    return leaf(node)


def _bbox_function_as_envelope(node: Any) -> Any:
    """CQL2 text ``BBOX(minx, miny, maxx, maxy)`` reaches us as a function call; make it a box."""
    if not isinstance(node, ast.Function):
        return node
    numbers = node.arguments
    if node.name.lower() != "bbox" or len(numbers) not in (4, 6):
        raise BadRequest(f"filter uses the function {node.name!r}, which is not supported")
    if not all(isinstance(n, (int, float)) for n in numbers):
        raise BadRequest("BBOX takes numbers only")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = (float(n) for n in numbers)
    return values.Envelope(minx, maxx, miny, maxy)


def _json_bbox_in_order(node: Any) -> Any:
    """pygeofilter builds ``{"bbox": [minx, miny, maxx, maxy]}`` as Envelope(x1, x2, y1, y2) from
    the list as it stands, which swaps miny and maxx; put the numbers where they belong."""
    if isinstance(node, values.Envelope):
        return values.Envelope(node.x1, node.y1, node.x2, node.y2)
    return node


def rename_attributes(node: ast.Node, rename: Callable[[str], str]) -> ast.Node:
    """The expression with every property name passed through ``rename`` (the tree is copied)."""

    def leaf(child: Any) -> Any:
        if isinstance(child, ast.Attribute):
            return ast.Attribute(rename(child.name))
        if isinstance(child, ast.Not):  # not a dataclass: _rebuild does not descend into it
            return ast.Not(rename_attributes(child.sub_node, rename))
        return child

    renamed: ast.Node = _rebuild(node, leaf)
    return renamed


def transform_literals(node: ast.Node, source: str, target: str) -> ast.Node:
    """The expression with its spatial literals moved from ``source`` to ``target`` CRS."""
    moved: ast.Node = reproject_literals(node, source, target)
    return moved


def _temporal_value(value: Any, kind: str) -> Any:
    """A date or date-time property value (often text in the source) as a Python value."""
    if not isinstance(value, str):
        return value
    text = value.strip().replace("/", "-")
    try:
        if kind == "date":
            return date.fromisoformat(text[:10])
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return value


def compile_predicate(
    node: ast.Node, field_types: Mapping[str, str] | None = None
) -> Callable[[Feature], bool]:
    """A function telling whether a GeoJSON feature matches the expression.

    Properties typed ``date`` or ``date-time`` are compared as such, as a source that filters
    them itself does, even when the feature carries them as text.
    """
    attribute_map = {name: "geometry" for name in GEOMETRY_NAMES}
    attribute_map["*"] = "properties.*"
    evaluator = NativeEvaluator(attribute_map=attribute_map, use_getattr=False)
    compiled = evaluator.evaluate(node)
    named = set(attributes(node))
    temporal = {
        name: kind
        for name, kind in (field_types or {}).items()
        if kind in ("date", "date-time") and name in named
    }

    def matches(feature: Feature) -> bool:
        if temporal:
            properties = dict(feature.get("properties") or {})
            for name, kind in temporal.items():
                properties[name] = _temporal_value(properties.get(name), kind)
            feature = {**feature, "properties": properties}
        try:
            return bool(compiled(feature))
        except (TypeError, KeyError, AttributeError, ValueError, shapely.errors.ShapelyError):
            # comparisons with a missing or null value, or a missing geometry, do not match
            return False

    return matches
