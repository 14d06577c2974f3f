"""Make pygeoapi's OpenAPI document self-contained and true to what the hub serves.

pygeoapi's document ``$ref``s schemas.opengis.net and GitHub; with no network (and for
Spectral and Schemathesis) every reference must resolve inside the document. It also
documents operations the hub does not serve (OPTIONS, CQL2 POST) and a catch-all of
vendor parameters that the hub refuses; those are removed, and the parameters the hub
evaluates itself (filter, datetime) are added.
"""

from __future__ import annotations

import copy
from typing import Any

from connectors.base import CRS84

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
PROBLEM = {"$ref": "#/components/schemas/problem"}
_LINK = {
    "type": "object",
    "required": ["href"],
    "properties": {
        "href": {"type": "string"},
        "rel": {"type": "string"},
        "type": {"type": "string"},
        "hreflang": {"type": "string"},
        "title": {"type": "string"},
        "length": {"type": "integer"},
    },
}
_GEOJSON_FEATURE = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "geometry": {"type": "object", "nullable": True},
        "properties": {"type": "object", "nullable": True},
        "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
    },
}
_SCHEMAS: dict[str, Any] = {
    "link": _LINK,
    "problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
    },
    "featureGeoJSON": _GEOJSON_FEATURE,
    "featureCollectionGeoJSON": {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": {"$ref": "#/components/schemas/featureGeoJSON"}},
            "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
            "timeStamp": {"type": "string", "format": "date-time"},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
        },
    },
    "cql2Expression": {"type": "object", "description": "A CQL2 JSON expression"},
}


def _json(schema: dict[str, Any], description: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _problem(description: str) -> dict[str, Any]:
    return _json(PROBLEM, description, "application/problem+json")


_OBJECT = {"type": "object"}
_RESPONSES: dict[str, Any] = {
    "LandingPage": _json(_OBJECT, "The landing page"),
    "Collection": _json(_OBJECT, "A feature collection's description"),
    "Features": {
        "description": "A page of features",
        "content": {
            "application/geo+json": {"schema": {"$ref": "#/components/schemas/featureCollectionGeoJSON"}},
            "application/ld+json": {"schema": _OBJECT},
            "text/html": {"schema": {"type": "string"}},
        },
    },
    "Feature": {
        "description": "One feature",
        "content": {
            "application/geo+json": {"schema": {"$ref": "#/components/schemas/featureGeoJSON"}},
            "application/ld+json": {"schema": _OBJECT},
            "text/html": {"schema": {"type": "string"}},
        },
    },
    "InvalidParameter": _problem("A query parameter is invalid or cannot be honoured"),
    "NotFound": _problem("The resource does not exist"),
    "ServerError": _problem("An unexpected error"),
    "UpstreamError": _problem("The source behind this collection failed"),
    "UpstreamTimeout": _problem("The source behind this collection did not answer in time"),
}
_PARAMETERS: dict[str, Any] = {
    "featureId": {
        "name": "featureId",
        "in": "path",
        "required": True,
        "description": "Identifier of a feature",
        "schema": {"type": "string"},
    },
    "sortby": {
        "name": "sortby",
        "in": "query",
        "required": False,
        "description": "Comma-separated properties to sort by, '-' for descending",
        "schema": {"type": "string"},
        "style": "form",
        "explode": False,
    },
    "datetime": {
        "name": "datetime",
        "in": "query",
        "required": False,
        "description": "RFC 3339 instant or interval (start/end, '..' for open ends)",
        "schema": {"type": "string"},
    },
    "filter": {
        "name": "filter",
        "in": "query",
        "required": False,
        "description": "CQL2 filter (text, or JSON with filter-lang=cql2-json)",
        "schema": {"type": "string"},
    },
    "filter-lang": {
        "name": "filter-lang",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
    },
    "filter-crs": {
        "name": "filter-crs",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "uri", "default": CRS84},
    },
}


def _local_ref(ref: str) -> dict[str, Any]:
    """The local replacement of a remote reference."""
    fragment = ref.partition("#")[2]
    name = fragment.rsplit("/", 1)[-1] if fragment else ref.rsplit("/", 1)[-1].split(".")[0]
    if "/responses/" in fragment:
        return {"$ref": f"#/components/responses/{name if name in _RESPONSES else 'ServerError'}"}
    if "/parameters/" in fragment or ref.endswith("sortby.yaml"):
        return {"$ref": f"#/components/parameters/{name}"}
    if "cql2" in ref:
        return {"$ref": "#/components/schemas/cql2Expression"}
    if name == "link":
        return {"$ref": "#/components/schemas/link"}
    return {"$ref": "#/components/schemas/problem"}


def _replace_remote(node: Any) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return _local_ref(ref)
        return {key: _replace_remote(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace_remote(value) for value in node]
    return node


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


def self_contained(document: dict[str, Any], config: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The document with local references only, paths under ``prefix``, as the hub serves it."""
    doc: dict[str, Any] = _replace_remote(copy.deepcopy(document))
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(_SCHEMAS))
    components.setdefault("responses", {}).update(copy.deepcopy(_RESPONSES))
    parameters = components.setdefault("parameters", {})
    parameters.update(copy.deepcopy(_PARAMETERS))
    parameters.pop("vendorSpecificParameters", None)

    server_url: str = config["server"]["url"]
    doc["servers"] = [{"url": server_url.removesuffix(prefix), "description": "This hub"}]
    resources = config["resources"]
    paths: dict[str, Any] = {}
    for path, operations in doc.get("paths", {}).items():
        served = {verb: op for verb, op in operations.items() if verb == "get"}
        if not served:
            continue
        for op in served.values():
            op["parameters"] = [
                p
                for p in op.get("parameters", [])
                if p.get("$ref") != "#/components/parameters/vendorSpecificParameters"
            ]
            op.setdefault("responses", {}).setdefault(
                "400", {"$ref": "#/components/responses/InvalidParameter"}
            )
        if path.endswith("/items") or path.endswith("/items/{featureId}"):
            for op in served.values():
                op["responses"]["502"] = {"$ref": "#/components/responses/UpstreamError"}
                op["responses"]["504"] = {"$ref": "#/components/responses/UpstreamTimeout"}
        if path.endswith("/items"):
            collection_id = path.split("/")[2]
            extra = ["filter", "filter-lang", "filter-crs"]
            if resources.get(collection_id, {}).get("providers", [{}])[0].get("time_field"):
                extra.append("datetime")
            present = {p.get("$ref") for p in served["get"]["parameters"]}
            served["get"]["parameters"] += [
                {"$ref": f"#/components/parameters/{name}"}
                for name in extra
                if f"#/components/parameters/{name}" not in present
            ]
        local = prefix if path == "/" else f"{prefix}{path}"
        paths[local] = served
    paths[f"{prefix}/openapi.json"] = {
        "get": {
            "summary": "This OpenAPI document",
            "tags": ["server"],
            "operationId": "getOpenapiJson",
            "responses": {"200": _json(_OBJECT, "The OpenAPI document", OPENAPI_MEDIA_TYPE)},
        }
    }
    doc["paths"] = paths
    return doc
