"""CQL2 helpers shared by the connectors: attribute names and spatial literals in the data CRS."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import shapely
from pygeofilter import ast, values
from shapely.geometry import mapping, shape

from connectors._crs import box_ring, transformer
from connectors.errors import UnsupportedQuery

MAX_SEGMENT_FRACTION = 1 / 256
"""Literal edges are split into at most this fraction of their length before transforming."""


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


def function_names(node: Any) -> Iterator[str]:
    """Every function name an expression calls."""
    if isinstance(node, ast.Function):
        yield node.name
    if isinstance(node, ast.Node):
        for child in node.get_sub_nodes():
            yield from function_names(child)
    elif isinstance(node, list):
        for child in node:
            yield from function_names(child)


def fingerprint(node: Any) -> str:
    """A stable text key for an expression (pygeofilter nodes are neither hashable nor all
    dataclasses, so ``repr`` is not reliable)."""
    if isinstance(node, ast.Attribute):
        return f"@{node.name!r}"
    if isinstance(node, ast.Not):
        return f"Not({fingerprint(node.sub_node)})"
    if isinstance(node, list):
        return "[" + ",".join(fingerprint(child) for child in node) + "]"
    if isinstance(node, values.Geometry):
        return "G" + json.dumps(node.geometry, sort_keys=True, default=str)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        parts = ",".join(f"{f.name}={fingerprint(getattr(node, f.name))}" for f in dataclasses.fields(node))
        return f"{type(node).__name__}({parts})"
    return f"{type(node).__name__}:{node!r}"


def _box_polygon(
    minx: float, miny: float, maxx: float, maxy: float, source: str, target: str
) -> values.Geometry:
    """A box literal as a densified polygon in the target CRS."""
    xs, ys = box_ring(minx, miny, maxx, maxy, source, target)
    ring = [[x, y] for x, y in zip(xs.tolist(), ys.tolist(), strict=True)]
    return values.Geometry({"type": "Polygon", "coordinates": [ring]})


def _transform_geometry(geometry: dict[str, Any], source: str, target: str) -> values.Geometry:
    """A geometry literal in the target CRS, long edges split so they follow its curvature."""
    geom = shape(geometry)
    if source != target:
        if geom.length > 0:
            geom = shapely.segmentize(geom, geom.length * MAX_SEGMENT_FRACTION)
        project = transformer(source, target)

        def move(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            xs, ys = project.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([xs, ys])

        geom = shapely.transform(geom, move)
        if not np.all(np.isfinite(shapely.get_coordinates(geom))):
            raise UnsupportedQuery(f"a filter geometry cannot be expressed in {target}")
    return values.Geometry(json.loads(json.dumps(mapping(geom))))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedQuery("a BBOX in a filter takes four numbers")
    return float(value)


def reproject_literals(node: Any, source: str, target: str) -> Any:
    """The expression with every spatial literal as a ``values.Geometry`` in ``target``.

    Handles geometry literals, ``values.Envelope`` (x1/x2 is the x range, y1/y2 the y range,
    as pygeofilter defines it), CQL2 text ``BBOX(...)`` (parsed as a function) and the
    ``BBOX(geom, ...)`` predicate, so that evaluators only ever see plain geometries.
    """
    if isinstance(node, values.Geometry):
        return _transform_geometry(node.geometry, source, target)
    if isinstance(node, values.Envelope):
        return _box_polygon(
            min(node.x1, node.x2), min(node.y1, node.y2),
            max(node.x1, node.x2), max(node.y1, node.y2), source, target,
        )  # fmt: skip
    if isinstance(node, ast.Function) and node.name.lower() == "bbox":
        numbers = [_number(arg) for arg in node.arguments]
        if len(numbers) == 6:  # 3D box: heights play no part in 2D intersection
            numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
        if len(numbers) != 4:
            raise UnsupportedQuery("a BBOX in a filter takes four numbers")
        minx, miny, maxx, maxy = numbers
        return _box_polygon(minx, miny, maxx, maxy, source, target)
    if isinstance(node, ast.BBox):
        box_crs = str(node.crs) if node.crs else source
        polygon = _box_polygon(
            _number(node.minx), _number(node.miny), _number(node.maxx), _number(node.maxy),
            box_crs, target,
        )  # fmt: skip
        return ast.GeometryIntersects(reproject_literals(node.lhs, source, target), polygon)
    if isinstance(node, list):
        return [reproject_literals(child, source, target) for child in node]
    if isinstance(node, ast.Not):
        return ast.Not(reproject_literals(node.sub_node, source, target))
    if isinstance(node, ast.Node) and dataclasses.is_dataclass(node):
        changes = {
            f.name: reproject_literals(getattr(node, f.name), source, target)
            for f in dataclasses.fields(node)
            if f.init
        }
        return dataclasses.replace(cast(Any, node), **changes)
    return node
