"""The OpenAPI document of the OGC API Records: written here in full, self-contained (no remote
``$ref``), with the one collection id as an enum so that generated requests reach it, and what
the NL API Design Rules ask of every document (``hub.design_rules``)."""

from __future__ import annotations

import copy
from typing import Any

from hub import API_VERSION
from hub.design_rules import PROBLEM_JSON, PROBLEM_SCHEMA, contact, declare_version_header, servers
from hub.records.records import CATALOGUE_ID, GEOJSON, JSON, RECORDS_PREFIX
from hub.settings import Settings

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"

_REF = "#/components/"
_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_LINKS = {"type": "array", "items": {"$ref": f"{_REF}schemas/Link"}}

_SCHEMAS: dict[str, Any] = {
    "Link": {
        "type": "object",
        "required": ["href"],
        "properties": {
            "href": {"type": "string"},
            "rel": _STRING,
            "type": _STRING,
            "hreflang": _STRING,
            "title": _STRING,
            "protocol": {
                "type": "string",
                "description": "How to use the link, from the protocol codelist of the Dutch "
                "metadata profiles (`OGC:API features`: load it as GeoJSON)",
            },
        },
    },
    "Problem": PROBLEM_SCHEMA,
    "LandingPage": {
        "type": "object",
        "required": ["links"],
        "properties": {"title": _STRING, "description": _STRING, "links": _LINKS},
    },
    "ConfClasses": {
        "type": "object",
        "required": ["conformsTo"],
        "properties": {"conformsTo": _STRINGS},
    },
    "Time": {
        "type": "object",
        "nullable": True,
        "properties": {
            "date": {"type": "string", "format": "date"},
            "timestamp": {"type": "string", "format": "date-time"},
            "interval": {"type": "array", "minItems": 2, "maxItems": 2, "items": _STRING},
        },
    },
    "Theme": {
        "type": "object",
        "required": ["concepts", "scheme"],
        "properties": {
            "scheme": _STRING,
            "concepts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": _STRING, "title": _STRING, "url": _STRING},
                },
            },
        },
    },
    "Contact": {
        "type": "object",
        "properties": {
            "name": _STRING,
            "organization": _STRING,
            "emails": {
                "type": "array",
                "items": {"type": "object", "required": ["value"], "properties": {"value": _STRING}},
            },
            "links": _LINKS,
            "roles": _STRINGS,
        },
    },
    "Record": {
        "type": "object",
        "description": "A record of OGC API Records Part 1 (GeoJSON)",
        "required": ["id", "type", "time", "geometry", "properties", "links"],
        "properties": {
            "id": _STRING,
            "type": {"type": "string", "enum": ["Feature"]},
            "conformsTo": _STRINGS,
            "time": {"$ref": f"{_REF}schemas/Time"},
            "geometry": {
                "type": "object",
                "nullable": True,
                "description": "The extent in CRS84; null when unknown or restricted",
            },
            "properties": {
                "type": "object",
                "required": ["type", "title"],
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": ["dataset", "service"],
                        "description": "`dataset`: a served collection; `service`: a registered source",
                    },
                    "title": _STRING,
                    "description": _STRING,
                    "keywords": _STRINGS,
                    "themes": {"type": "array", "items": {"$ref": f"{_REF}schemas/Theme"}},
                    "contacts": {"type": "array", "items": {"$ref": f"{_REF}schemas/Contact"}},
                    "language": {"type": "object", "properties": {"code": _STRING}},
                    "externalIds": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["value"],
                            "properties": {"scheme": _STRING, "value": _STRING},
                        },
                    },
                    "formats": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": _STRING, "mediaType": _STRING}},
                    },
                    "license": _STRING,
                    "rights": _STRING,
                    "accessRights": {
                        "type": "string",
                        "description": "Concept of the EU access-right vocabulary",
                    },
                    "created": {"type": "string", "format": "date-time"},
                    "updated": {"type": "string", "format": "date-time"},
                },
            },
            "links": _LINKS,
        },
    },
    "Records": {
        "type": "object",
        "required": ["type", "features", "links"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": {"$ref": f"{_REF}schemas/Record"}},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
            "timeStamp": {"type": "string", "format": "date-time"},
            "links": _LINKS,
        },
    },
    "Catalog": {
        "type": "object",
        "required": ["id", "type", "itemType", "links"],
        "properties": {
            "id": _STRING,
            "type": {"type": "string", "enum": ["Catalog"]},
            "itemType": {"type": "string", "enum": ["record"]},
            "title": _STRING,
            "description": _STRING,
            "extent": {"type": "object"},
            "links": _LINKS,
        },
    },
    "Collections": {
        "type": "object",
        "required": ["collections", "links"],
        "properties": {
            "collections": {"type": "array", "items": {"$ref": f"{_REF}schemas/Catalog"}},
            "links": _LINKS,
        },
    },
}


def _list_parameter(name: str, description: str, items: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "style": "form",
        "explode": False,
        "schema": {"type": "array", "minItems": 1, "items": items or _STRING},
    }


def _parameters(settings: Settings) -> dict[str, Any]:
    server = settings.server
    return {
        "collectionId": {
            "name": "collectionId",
            "in": "path",
            "required": True,
            "description": "The record collection: the catalogue",
            "schema": {"type": "string", "enum": [CATALOGUE_ID]},
        },
        "recordId": {
            "name": "recordId",
            "in": "path",
            "required": True,
            "description": "A record: `source.<source id>` or `collection.<collection id>`",
            "schema": {"type": "string"},
        },
        "f": {
            "name": "f",
            "in": "query",
            "required": False,
            "description": "The format; only JSON is offered",
            "schema": {"type": "string", "enum": ["json"], "default": "json"},
        },
        "q": _list_parameter(
            "q",
            "Search terms, separated by commas: records whose title, description or a keyword "
            "holds any of them. The words of one term must appear in that order.",
        ),
        "bbox": _list_parameter(
            "bbox",
            "Records whose extent meets this box: minimum longitude, minimum latitude, maximum "
            "longitude, maximum latitude in CRS84 (six numbers with heights)",
            {"type": "number"},
        )
        | {"schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
        "datetime": {
            "name": "datetime",
            "in": "query",
            "required": False,
            "description": "Records whose time meets this RFC 3339 instant or interval "
            "(start/end, `..` for an open end)",
            "schema": {"type": "string"},
        },
        "type": _list_parameter("type", "Records of these types: `dataset`, `service`"),
        "ids": _list_parameter("ids", "Records with these ids"),
        "externalIds": _list_parameter(
            "externalIds", "Records with one of these external ids (a dataset's DCAT identifier)"
        ),
        "limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"Records per page (a larger value is served as {server.max_limit})",
            "schema": {"type": "integer", "minimum": 1, "default": server.default_limit},
        },
        "offset": {
            "name": "offset",
            "in": "query",
            "required": False,
            "description": "Records to skip",
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
    }


def _ok(description: str, schema: str, media_type: str = JSON) -> dict[str, Any]:
    return {
        "description": description,
        "content": {media_type: {"schema": {"$ref": f"{_REF}schemas/{schema}"}}},
    }


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"{_REF}schemas/Problem"}}},
    }


def _operation(
    operation_id: str, summary: str, ok: dict[str, Any], parameters: list[str], *, not_found: bool = False
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": ok,
        "400": _problem("An unknown query parameter or an invalid value"),
        "500": _problem("An unexpected error"),
    }
    if not_found:
        responses["404"] = _problem("No such collection or record")
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Catalogue"],
            "parameters": [{"$ref": f"{_REF}parameters/{name}"} for name in parameters],
            "responses": responses,
        }
    }


def records_openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``/records/v1`` for this hub; paths are relative to the
    server URL, which carries the major version."""
    items = ["collectionId", "q", "bbox", "datetime", "type", "ids", "externalIds", "limit", "offset", "f"]
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"{settings.server.title}: catalogue (OGC API Records)",
            "description": "The hub's catalogue as OGC API Records Part 1: a record per registered "
            "source and per served collection, searchable by text, place and time, with links that "
            "load the data as the OGC API Features serves it.",
            "version": API_VERSION,
            "contact": contact(settings),
            "license": {"name": "EUPL-1.2", "url": "https://opensource.org/license/eupl-1-2"},
        },
        "servers": servers(settings, RECORDS_PREFIX),
        "tags": [{"name": "Catalogue", "description": "OGC API Records"}],
        "paths": {
            "/": _operation("getLandingPage", "Landing page", _ok("The landing page", "LandingPage"), ["f"]),
            "/conformance": _operation(
                "getConformance", "Conformance classes", _ok("The conformance classes", "ConfClasses"), ["f"]
            ),
            "/collections": _operation(
                "getCollections", "Record collections", _ok("The record collections", "Collections"), ["f"]
            ),
            "/collections/{collectionId}": _operation(
                "getCollection",
                "The catalogue",
                _ok("The record collection", "Catalog"),
                ["collectionId", "f"],
                not_found=True,
            ),
            "/collections/{collectionId}/items": _operation(
                "getRecords", "Records", _ok("A page of records", "Records", GEOJSON), items, not_found=True
            ),
            "/collections/{collectionId}/items/{recordId}": _operation(
                "getRecord",
                "One record",
                _ok("The record", "Record", GEOJSON),
                ["collectionId", "recordId", "f"],
                not_found=True,
            ),
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenapi",
                    "summary": "This OpenAPI document",
                    "tags": ["Catalogue"],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": {OPENAPI_MEDIA_TYPE: {"schema": {"type": "object"}}},
                        },
                        "400": _problem("An unknown query parameter"),
                    },
                }
            },
        },
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "parameters": _parameters(settings),
        },
    }
    declare_version_header(document)
    return document
