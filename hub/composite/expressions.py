"""Taking a filter over composite property names (``<member>:<property>``) apart by member."""

from __future__ import annotations

from functools import reduce

from pygeofilter import ast

from connectors._cql import attributes
from hub.features.cql import GEOMETRY_NAMES, rename_attributes

SEPARATOR = ":"
"""Between a member's name and its property's name. Not a dot: pygeofilter's evaluator reads
``a.b`` as a nested property, so a dotted flat name could never be filtered on."""


def composite_name(member: str, prop: str) -> str:
    """The composite property name of a member's property."""
    return f"{member}{SEPARATOR}{prop}"


def split_name(name: str) -> tuple[str, str] | None:
    """``(member, property)`` of a composite property name; ``None`` for the geometry."""
    if name in GEOMETRY_NAMES:
        return None
    member, separator, prop = name.partition(SEPARATOR)
    return (member, prop) if separator else None


def conjuncts(node: ast.Node | None) -> list[ast.Node]:
    """The terms of a conjunction (``a AND b AND c``), or the expression itself."""
    if node is None:
        return []
    if isinstance(node, ast.And):
        return conjuncts(node.lhs) + conjuncts(node.rhs)
    return [node]


def conjoin(nodes: list[ast.Node]) -> ast.Node | None:
    """The conjunction of ``nodes`` (``None`` for none)."""
    if not nodes:
        return None
    return reduce(ast.And, nodes)


def members_named(node: ast.Node) -> set[str]:
    """The members whose properties an expression names (the geometry belongs to no member)."""
    named = set()
    for name in attributes(node):
        parts = split_name(name)
        if parts is not None:
            named.add(parts[0])
    return named


def strip_member(node: ast.Node) -> ast.Node:
    """The expression in one member's own property names."""
    return rename_attributes(node, lambda name: (split_name(name) or ("", name))[1])


_NULL_REJECTING = (
    ast.Equal,
    ast.LessThan,
    ast.LessEqual,
    ast.GreaterThan,
    ast.GreaterEqual,
)


def null_rejecting(node: ast.Node) -> bool:
    """Whether the expression is false for a feature whose named properties are all null, as the
    hub evaluates it: then a feature without a match in a member can never satisfy it."""
    if isinstance(node, ast.And):
        return null_rejecting(node.lhs) or null_rejecting(node.rhs)
    if isinstance(node, ast.Or):
        return null_rejecting(node.lhs) and null_rejecting(node.rhs)
    if isinstance(node, _NULL_REJECTING):
        return True
    if isinstance(node, ast.Between | ast.Like | ast.In):
        return not bool(node.not_)
    if isinstance(node, ast.IsNull):
        return bool(node.not_)
    return False
