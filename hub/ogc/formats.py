"""The output formats (``f``) each kind of OGC API resource is offered in.

pygeoapi answers an ``f`` it does not know with its default format; the hub refuses it (400), so
that a format asked for is honoured or refused, never silently replaced. The OpenAPI document
lists the same values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from hub.errors import BadRequest

RESOURCE_FORMATS: tuple[str, ...] = ("json", "html", "jsonld")
"""Landing page, conformance, collections and a collection."""
SCHEMA_FORMATS: tuple[str, ...] = ("json", "html")
"""Queryables and schema: JSON Schema or HTML."""
OPENAPI_FORMATS: tuple[str, ...] = ("json", "html")
ITEMS_FORMATS: tuple[str, ...] = ("json", "html", "jsonld", "csv")
ITEM_FORMATS: tuple[str, ...] = ("json", "html", "jsonld")


def refuse_unoffered_format(params: Mapping[str, str], offered: Collection[str]) -> None:
    """A value of ``f`` that the resource is not offered in is refused."""
    wanted = params.get("f")
    if wanted is not None and wanted not in offered:
        raise BadRequest(f"f={wanted!r} is not offered here; use one of: {', '.join(offered)}")
