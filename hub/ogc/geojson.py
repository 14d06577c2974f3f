"""The GeoJSON items and item documents, written by the hub itself.

GeoJSON is what viewers and clients ask for on every pan and zoom; this path answers it on the
event loop, straight from the feature service, encoded with orjson. It writes the same document
pygeoapi writes (other formats, HTML and JSON-LD, still go through pygeoapi), with two
corrections: the ``self`` link keeps ``offset``, and ``next`` is left out when the source said
there is nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from connectors.base import Feature
from hub.features.service import ItemsResult
from hub.features.warnings import current_warnings

GEOJSON = "application/geo+json"
_ALTERNATES = (
    ("jsonld", "application/ld+json", "This document as RDF (JSON-LD)"),
    ("html", "text/html", "This document as HTML"),
)


def wants_geojson(request: Request) -> bool:
    """Whether the request asks for (Geo)JSON: ``f=json``, or no ``f`` and no HTML or JSON-LD
    preferred in ``Accept`` (browsers get pygeoapi's HTML, as before)."""
    f = request.query_params.get("f")
    if f is not None:
        return f == "json"
    accept = request.headers.get("accept", "")
    return "text/html" not in accept and "application/ld+json" not in accept


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def geojson_response(document: dict[str, Any], crs: str) -> Response:
    """A GeoJSON response with its ``Content-Crs``."""
    body = orjson.dumps(document, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{crs}>"})


def _query(params: Iterable[tuple[str, str]]) -> str:
    return "".join(f"&{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)


def items_document(
    result: ItemsResult,
    *,
    collection_url: str,
    title: str,
    params: QueryParams,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The FeatureCollection of an items request, with OGC API paging links."""
    items_url = f"{collection_url}/items"
    kept = [(k, v) for k, v in params.multi_items() if k not in ("f", "offset")]
    rest = _query(kept)
    at = f"&offset={offset}" if offset else ""
    links: list[dict[str, Any]] = [
        {
            "type": GEOJSON,
            "rel": "self",
            "title": "This document as GeoJSON",
            "href": f"{items_url}?f=json{at}{rest}",
        }
    ]
    links += [
        {"type": media, "rel": "alternate", "title": text, "href": f"{items_url}?f={f}{at}{rest}"}
        for f, media, text in _ALTERNATES
    ]
    if offset > 0:
        prev = max(0, offset - limit)
        links.append(
            {
                "type": GEOJSON,
                "rel": "prev",
                "title": "Items (prev)",
                "href": f"{items_url}?offset={prev}{rest}",
            }
        )
    returned = len(result.features)
    if result.number_matched is not None:
        more = result.number_matched > offset + returned
    else:
        more = result.has_more if result.has_more is not None else returned == limit
    if more:
        links.append(
            {
                "type": GEOJSON,
                "rel": "next",
                "title": "Items (next)",
                "href": f"{items_url}?offset={offset + returned}{rest}",
            }
        )
    links.append({"type": "application/json", "title": title, "rel": "collection", "href": collection_url})
    document: dict[str, Any] = {"type": "FeatureCollection", "features": result.features}
    document["numberReturned"] = returned
    if result.number_matched is not None:
        document["numberMatched"] = result.number_matched
    document["links"] = links
    document["timeStamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _add_warnings(document)
    return document


def item_document(feature: Feature, *, root_url: str, collection_url: str, title: str) -> dict[str, Any]:
    """One feature with its links."""
    item_url = f"{collection_url}/items/{quote(str(feature.get('id')), safe='')}"
    links = [
        {"type": "application/json", "rel": "root", "title": "The landing page of this server as JSON",
         "href": f"{root_url}?f=json"},
        {"type": "text/html", "rel": "root", "title": "The landing page of this server as HTML",
         "href": f"{root_url}?f=html"},
        {"rel": "self", "type": GEOJSON, "title": "This document as JSON", "href": f"{item_url}?f=json"},
    ]  # fmt: skip
    links += [
        {"rel": "alternate", "type": media, "title": text, "href": f"{item_url}?f={f}"}
        for f, media, text in _ALTERNATES
    ]
    links.append({"rel": "collection", "type": "application/json", "title": title, "href": collection_url})
    document = {**feature, "links": [*feature.get("links", []), *links]}
    _add_warnings(document)
    return document


def _add_warnings(document: dict[str, Any]) -> None:
    """A partial answer says so in the document too (a foreign member), not only in headers."""
    warnings = current_warnings()
    if warnings:
        document["warnings"] = [warning.as_json() for warning in warnings]
