"""Make pygeoapi's OpenAPI document self-contained and true to what the hub serves.

pygeoapi's document ``$ref``s schemas.opengis.net and GitHub; with no network (and for
Spectral and Schemathesis) every reference must resolve inside the document. It also
documents operations the hub does not serve (OPTIONS, CQL2 POST) and a catch-all of
vendor parameters that the hub refuses; those are removed, and the parameters the hub
evaluates itself (filter, datetime) are added. What the hub refuses with a 400 is stated
(the CRSs and formats offered), every response type the hub sends is listed, and the
NL API Design Rules are followed: paths relative to the versioned server URL, the
``API-Version`` and ``Content-Crs`` headers, problem details for every error.
"""

from __future__ import annotations

import copy
from typing import Any

from connectors.base import CRS84
from hub import API_VERSION
from hub.design_rules import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA,
    declare_version_header,
    upper_camel_schema_names,
)
from hub.ogc.cityjson import describe_in_openapi
from hub.ogc.formats import (
    ITEM_FORMATS,
    ITEMS_FORMATS,
    OPENAPI_FORMATS,
    RESOURCE_FORMATS,
    SCHEMA_FORMATS,
)

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
_ITEMS_PATHS = ("/items", "/items/{featureId}")
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
    "problem": PROBLEM_SCHEMA,
    "FeatureGeoJson": _GEOJSON_FEATURE,
    "FeatureCollectionGeoJson": {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": {"$ref": "#/components/schemas/FeatureGeoJson"}},
            "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
            "timeStamp": {"type": "string", "format": "date-time"},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
        },
    },
    "cql2Expression": {"type": "object", "description": "A CQL2 JSON expression"},
    # pygeoapi documents an older queryables shape; Features Part 3 answers with a JSON Schema
    "jsonSchema": {
        "type": "object",
        "description": "A JSON Schema of the features' properties (OGC API Features Part 3)",
        "required": ["type", "properties"],
        "properties": {
            "$schema": {"type": "string"},
            "$id": {"type": "string"},
            "type": {"type": "string", "enum": ["object"]},
            "title": {"type": "string"},
            "properties": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    },
}


def _json(schema: dict[str, Any], description: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _problem(description: str) -> dict[str, Any]:
    return _json(PROBLEM, description, PROBLEM_JSON)


_OBJECT = {"type": "object"}
_TEXT = {"type": "string"}
_CONTENT_CRS = {
    "Content-Crs": {
        "description": "URI of the CRS of the coordinates in the response, in angle brackets",
        "required": True,
        "schema": {"type": "string", "pattern": "^<.+>$"},
    }
}


def _document_of(description: str, json_media: str = "application/json") -> dict[str, Any]:
    """A non-geo resource as JSON, JSON-LD or HTML (``f=json|jsonld|html``)."""
    return {
        "description": description,
        "content": {
            json_media: {"schema": _OBJECT},
            "application/ld+json": {"schema": _OBJECT},
            "text/html": {"schema": _TEXT},
        },
    }


_RESPONSES: dict[str, Any] = {
    "LandingPage": _document_of("The landing page, the conformance classes or the collections"),
    "Collection": _document_of("A feature collection's description"),
    "Queryables": {
        "description": "The queryable properties or the schema of the features, as JSON Schema or HTML",
        "content": {
            "application/schema+json": {"schema": {"$ref": "#/components/schemas/jsonSchema"}},
            "text/html": {"schema": _TEXT},
        },
    },
    "OpenApi": {
        "description": "This OpenAPI document, or its HTML view",
        "content": {OPENAPI_MEDIA_TYPE: {"schema": _OBJECT}, "text/html": {"schema": _TEXT}},
    },
    "Features": {
        "description": "A page of features",
        "headers": copy.deepcopy(_CONTENT_CRS),
        "content": {
            "application/geo+json": {"schema": {"$ref": "#/components/schemas/FeatureCollectionGeoJson"}},
            "application/ld+json": {"schema": _OBJECT},
            "text/html": {"schema": _TEXT},
            "text/csv": {"schema": _TEXT},
        },
    },
    "Feature": {
        "description": "One feature",
        "headers": copy.deepcopy(_CONTENT_CRS),
        "content": {
            "application/geo+json": {"schema": {"$ref": "#/components/schemas/FeatureGeoJson"}},
            "application/ld+json": {"schema": _OBJECT},
            "text/html": {"schema": _TEXT},
        },
    },
    "InvalidParameter": _problem("A query parameter is invalid or cannot be honoured"),
    "NotFound": _problem("The resource does not exist"),
    "ServerError": _problem("An unexpected error"),
    "UpstreamError": _problem("The source behind this collection failed"),
    "UpstreamTimeout": _problem("The source behind this collection did not answer in time"),
    "AuditUnavailable": _problem("Not processed: its record could not be written to the audit log"),
    "default": _problem("An error"),
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
        "schema": {"type": "string", "minLength": 1},
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
        "description": "CRS of the coordinates in the filter; with a filter only",
        "schema": {"type": "string", "format": "uri", "default": CRS84},
    },
    "lang": {
        "name": "lang",
        "in": "query",
        "required": False,
        "description": "Preferred language of titles and descriptions (e.g. nl-NL, en-US). A language "
        "the hub does not have falls back to the default, as with Accept-Language; the response's "
        "Content-Language says which was used.",
        "schema": {"type": "string"},
    },
}
_CRS_PARAMETERS = ("crs", "bbox-crs", "filter-crs")


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


def _formats(path: str) -> tuple[str, ...]:
    """What the resource at ``path`` is offered in (``hub.ogc.formats``)."""
    if path == "/openapi":
        return OPENAPI_FORMATS
    if path.endswith(("/queryables", "/schema")):
        return SCHEMA_FORMATS
    if path.endswith("/items"):
        return ITEMS_FORMATS
    if path.endswith("/items/{featureId}"):
        return ITEM_FORMATS
    return RESOURCE_FORMATS


def _format_parameter(formats: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": "f",
        "in": "query",
        "required": False,
        "description": "Output format; without it, the Accept header decides",
        "style": "form",
        "explode": False,
        "schema": {"type": "string", "enum": list(formats)},
    }


def _offered_crs_parameter(name: str, offered: list[str]) -> dict[str, Any]:
    """A CRS parameter of one collection: any CRS it does not offer is refused with 400."""
    parameter: dict[str, Any] = copy.deepcopy(_PARAMETERS.get(name) or _CRS_BASE[name])
    parameter["schema"] = {"type": "string", "format": "uri", "enum": list(offered)}
    return parameter


_CRS_BASE: dict[str, Any] = {
    "crs": {
        "name": "crs",
        "in": "query",
        "required": False,
        "description": "CRS of the coordinates in the response (default CRS84)",
        "style": "form",
        "explode": False,
    },
    "bbox-crs": {
        "name": "bbox-crs",
        "in": "query",
        "required": False,
        "description": "CRS of the bbox coordinates (default CRS84); with a bbox only",
        "style": "form",
        "explode": False,
    },
}


def _parameter_name(parameter: dict[str, Any]) -> str:
    name: str = parameter.get("name") or parameter.get("$ref", "").rsplit("/", 1)[-1]
    return name


def _offered_crs(resource: dict[str, Any]) -> list[str]:
    offered: list[str] = resource.get("providers", [{}])[0].get("crs") or [CRS84]
    return offered


def _property_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """A property-equality parameter: the hub compares the property's text form with the value,
    so any text is a valid value (one that matches nothing selects nothing)."""
    typed = parameter.get("schema", {})
    kind = typed.get("format") or typed.get("type") or "string"
    return {
        "name": parameter["name"],
        "in": "query",
        "required": False,
        "description": f"Features whose property {parameter['name']} ({kind}) has this value, as text",
        "style": "form",
        "explode": False,
        "schema": {"type": "string"},
    }


def _served_parameters(path: str, operation: dict[str, Any], resource: dict[str, Any]) -> list[Any]:
    """The operation's parameters as the hub accepts them."""
    offered = _offered_crs(resource)
    fields = {
        field
        for parameter in operation.get("parameters", [])
        if parameter.get("name") == "properties"
        for field in parameter.get("schema", {}).get("items", {}).get("enum", [])
    }
    kept: list[Any] = []
    for parameter in operation.get("parameters", []):
        name = _parameter_name(parameter)
        if name in ("vendorSpecificParameters", "ui"):
            continue  # refused by the hub
        if name == "properties" and path.endswith("/queryables"):
            continue  # refused by the hub: queryables are always listed whole
        if name in _CRS_PARAMETERS and resource:
            parameter = _offered_crs_parameter(name, offered)
        elif name == "f":
            parameter = _format_parameter(_formats(path))
        elif name == "limit":
            # OGC API Features: a limit above the maximum is served as the maximum, not refused
            parameter = copy.deepcopy(parameter)
            maximum = parameter["schema"].pop("maximum", None)
            if maximum is not None:
                parameter["description"] = (
                    f"Most features per page (default {parameter['schema'].get('default')}); "
                    f"a larger value is served as {maximum}"
                )
        elif name in fields and path.endswith("/items") and "name" in parameter:
            parameter = _property_parameter(parameter)
        elif name == "properties" and not parameter.get("schema", {}).get("items", {}).get("enum", True):
            # a collection whose schema is not known yet: no empty enum, which would be invalid
            parameter = copy.deepcopy(parameter)
            del parameter["schema"]["items"]["enum"]
        kept.append(parameter)
    return kept


def self_contained(document: dict[str, Any], config: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The document with local references only, as the hub serves it under ``prefix``."""
    doc: dict[str, Any] = _replace_remote(copy.deepcopy(document))
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(_SCHEMAS))
    components.setdefault("responses", {}).update(copy.deepcopy(_RESPONSES))
    parameters = components.setdefault("parameters", {})
    parameters.update(copy.deepcopy(_PARAMETERS))
    parameters.pop("vendorSpecificParameters", None)

    server_url: str = config["server"]["url"]
    if not server_url.endswith(prefix):
        raise ValueError(f"the OGC API is served under {prefix}, not at {server_url}")
    # the major version belongs in the server URL (NL API Design Rules /core/uri-version)
    doc["servers"] = [{"url": server_url, "description": "This hub"}]
    doc["info"]["version"] = API_VERSION
    contact = config["metadata"]["contact"]
    doc["info"]["contact"] = {
        **doc["info"].get("contact", {}),
        **{key: contact[key] for key in ("name", "url", "email") if contact.get(key)},
    }
    resources = config["resources"]
    paths: dict[str, Any] = {}
    for path, operations in doc.get("paths", {}).items():
        served = {verb: op for verb, op in operations.items() if verb == "get"}
        if not served:
            continue
        parts = path.split("/")
        resource = resources.get(parts[2], {}) if len(parts) > 2 and parts[1] == "collections" else {}
        for op in served.values():
            op["parameters"] = _served_parameters(path, op, resource)
            responses = op.setdefault("responses", {})
            responses.setdefault("400", {"$ref": "#/components/responses/InvalidParameter"})
            if path == "/openapi":
                responses["200"] = {"$ref": "#/components/responses/OpenApi"}
                responses.pop("default", None)
        if path.endswith("/items") or path.endswith("/items/{featureId}"):
            for op in served.values():
                op["responses"]["502"] = {"$ref": "#/components/responses/UpstreamError"}
                op["responses"]["504"] = {"$ref": "#/components/responses/UpstreamTimeout"}
                op["responses"]["503"] = {"$ref": "#/components/responses/AuditUnavailable"}
        if path.endswith("/items"):
            extra = ["filter", "filter-lang", "filter-crs"]
            if resource.get("providers", [{}])[0].get("time_field"):
                extra.append("datetime")
            present = {_parameter_name(p) for p in served["get"]["parameters"]}
            served["get"]["parameters"] += [
                _offered_crs_parameter(name, _offered_crs(resource))
                if name in _CRS_PARAMETERS
                else {"$ref": f"#/components/parameters/{name}"}
                for name in extra
                if name not in present
            ]
        if resource.get("providers", [{}])[0].get("hub_models") and path.endswith(_ITEMS_PATHS):
            describe_in_openapi(served["get"], components, items=path.endswith("/items"))
        paths[path] = served
    paths["/openapi.json"] = {
        "get": {
            "summary": "This OpenAPI document",
            "tags": ["server"],
            "operationId": "getOpenapiJson",
            "responses": {
                "200": _json(_OBJECT, "The OpenAPI document", OPENAPI_MEDIA_TYPE),
                "400": {"$ref": "#/components/responses/InvalidParameter"},
            },
        }
    }
    doc["paths"] = paths
    declare_version_header(doc)
    return upper_camel_schema_names(doc)
