"""The representations each kind of OGC API resource is offered in: ``f``, and the ``profile``
of queryables.

pygeoapi answers a value it does not know with its default; the hub refuses it (400), so that a
representation asked for is honoured or refused, never silently replaced. The OpenAPI document
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
QUERYABLES_PROFILES: tuple[str, ...] = ("actual-domain", "valid-domain")


def refuse_unoffered(params: Mapping[str, str], name: str, offered: Collection[str]) -> None:
    """A value of parameter ``name`` outside ``offered`` is refused."""
    wanted = params.get(name)
    if wanted is not None and wanted not in offered:
        raise BadRequest(f"{name}={wanted!r} is not offered here; use one of: {', '.join(offered)}")


def refuse_unoffered_format(params: Mapping[str, str], offered: Collection[str]) -> None:
    """A value of ``f`` that the resource is not offered in is refused."""
    refuse_unoffered(params, "f", offered)
