"""What the NL API Design Rules ask of every OpenAPI document the hub serves.

Each API builds its own document (pygeoapi builds the OGC API's, FastAPI the management API's);
these helpers add what the rules ask of all of them, so that each document states what every
response does: the ``API-Version`` header on every response (``/core/version-header``), RFC 9457
problem details for every error (``/core/error-handling/problem-details``), a contact with name,
e-mail and URL (``/core/doc-openapi-contact``), the major version in the server URL
(``/core/uri-version``) and schema names in UpperCamelCase.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hub import API_VERSION
from hub.settings import Settings

VERSION_HEADER = "API-Version"
PROBLEM_JSON = "application/problem+json"

HEADERS: dict[str, Any] = {
    VERSION_HEADER: {
        "description": "The full version of the API (semantic versioning), on every response",
        "required": True,
        "schema": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$", "example": API_VERSION},
    },
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "source": {"type": "string", "description": "The source that failed, when one did"},
    },
}
_SCHEMA_REF = "#/components/schemas/"


def contact(settings: Settings) -> dict[str, str]:
    """Who answers for the hub's APIs: the catalogue's contact point, else the hub itself."""
    catalogue = settings.catalogue
    found = {
        "name": catalogue.contact_name or catalogue.publisher or settings.server.title,
        "url": catalogue.contact_url or settings.server.base_url,
    }
    # no made-up address: without one configured the linter names the gap
    if catalogue.contact_email:
        found["email"] = catalogue.contact_email
    return found


def servers(settings: Settings, prefix: str) -> list[dict[str, str]]:
    """The server object of an API: the hub's public URL plus the API's versioned base path."""
    return [{"url": f"{settings.server.base_url}{prefix}", "description": "This hub"}]


def _responses(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every response object written out in the document (references are reached once, where
    they point)."""
    for response in document.get("components", {}).get("responses", {}).values():
        if "$ref" not in response:
            yield response
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                if "$ref" not in response:
                    yield response


def declare_version_header(document: dict[str, Any]) -> None:
    """Declare ``API-Version`` on every response, errors included, as the hub sends it."""
    document.setdefault("components", {}).setdefault("headers", {}).update(HEADERS)
    for response in _responses(document):
        response.setdefault("headers", {})[VERSION_HEADER] = {
            "$ref": f"#/components/headers/{VERSION_HEADER}"
        }


def _upper_camel(name: str) -> str:
    parts = [part for part in re.split(r"[^A-Za-z0-9]+", name) if part]
    return "".join(part[:1].upper() + part[1:] for part in parts) or name


def _rewrite_refs(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF) and ref[len(_SCHEMA_REF) :] in renamed:
            return {**node, "$ref": _SCHEMA_REF + renamed[ref[len(_SCHEMA_REF) :]]}
        return {key: _rewrite_refs(value, renamed) for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(value, renamed) for value in node]
    return node


def upper_camel_schema_names(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its component schemas named in UpperCamelCase, references followed."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    renamed = {name: _upper_camel(name) for name in schemas if _upper_camel(name) != name}
    clashes = {new for new in renamed.values() if new in schemas}
    renamed = {old: new for old, new in renamed.items() if new not in clashes}
    if not renamed:
        return document
    rewritten: dict[str, Any] = _rewrite_refs(document, renamed)
    rewritten["components"]["schemas"] = {
        renamed.get(name, name): schema for name, schema in rewritten["components"]["schemas"].items()
    }
    return rewritten
