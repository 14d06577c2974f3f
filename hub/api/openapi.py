"""The management API's OpenAPI document, ``/api/v1/openapi.json``, and its HTML view.

FastAPI writes the document from the routes; here it is made to say what the hub does and what
the NL API Design Rules ask: paths relative to the versioned server URL, ``API-Version`` on every
response, and RFC 9457 problems for errors. FastAPI documents a ``422`` validation error with its
own body on every operation that has parameters, but the hub answers those with a ``400`` problem
(``hub.app``), so the document says ``400``. What every operation of this API can answer is
added here once: ``404`` where a path names a resource, ``422`` where a body is sent (a body the
hub cannot use, such as a registration whose probe fails), and the bearer token for operations
that declare ``401`` (the routers that authenticate declare it in ``hub.app``).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from hub import API_VERSION
from hub.api.deps import Context
from hub.audit.trail import NOT_PROCESSINGS
from hub.design_rules import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA,
    contact,
    declare_version_header,
    servers,
    upper_camel_schema_names,
)
from hub.features.params import refuse_unknown
from hub.settings import Settings

MANAGEMENT_PREFIX = "/api/v1"
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BEARER = "bearerAuth"

router = APIRouter(tags=["OpenAPI"])


def problem_response(description: str) -> dict[str, Any]:
    """An error response whose body is RFC 9457 problem details."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}}}


TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response("The bearer token is invalid or expired"),
}
"""Of routers that read the caller's token when one is sent."""
STEWARD_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response("A steward's bearer token is needed"),
    403: problem_response("The caller is not a steward"),
}
"""Of routers for stewards only."""


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schemas = [media.get("schema", {}) for media in response.get("content", {}).values()]
    return any(schema.get("$ref", "").endswith("/HTTPValidationError") for schema in schemas)


def management_document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The management API's document, built from the application's ``/api/v1`` routes."""
    document = get_openapi(
        title=f"{settings.server.title}: management",
        version=API_VERSION,
        description="Source registrations, health and the DCAT-AP-NL catalogue of the urban twin data hub",
        # every route of the application; the other APIs keep theirs out of this document
        routes=app.routes,
        servers=servers(settings, MANAGEMENT_PREFIX),
        contact=contact(settings),
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)

    paths: dict[str, Any] = {}
    for path, operations in document.get("paths", {}).items():
        if not path.startswith(f"{MANAGEMENT_PREFIX}/"):
            continue
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if _is_fastapi_validation_error(responses.get("422", {})):
                del responses["422"]
            # every operation refuses what it cannot honour (an unknown query parameter, a bad value)
            responses.setdefault("400", problem_response("A parameter or the body is invalid"))
            if "{" in path:
                responses.setdefault("404", problem_response("The resource does not exist"))
            if "requestBody" in operation:
                responses.setdefault("422", problem_response("The body is valid JSON but cannot be used"))
            if path not in NOT_PROCESSINGS:
                # the audit log refuses what it cannot record
                responses.setdefault(
                    "503", problem_response("Not processed: its record could not be written to the audit log")
                )
            if "401" in responses:
                # a token is required where 403 is possible too; elsewhere it is optional
                operation["security"] = [{BEARER: []}] if "403" in responses else [{}, {BEARER: []}]
        paths[path.removeprefix(MANAGEMENT_PREFIX)] = operations
    document["paths"] = paths
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token of the OpenID Connect provider the hub trusts",
        }
    }
    declare_version_header(document)
    return upper_camel_schema_names(document)


@router.get("/openapi.json", summary="This OpenAPI document", response_class=JSONResponse)
async def openapi_document(request: Request, context: Context) -> Response:
    """The management API's OpenAPI document; no authentication needed."""
    refuse_unknown(request.query_params, frozenset())
    app: FastAPI = request.app
    # built once per application: the routes do not change while it runs
    if app.openapi_schema is None:
        app.openapi_schema = management_document(app, context.settings)
    return JSONResponse(app.openapi_schema)


@router.get("/docs", summary="This OpenAPI document as HTML", response_class=HTMLResponse)
async def openapi_view(request: Request, context: Context) -> HTMLResponse:
    """An interactive view of the document (Swagger UI)."""
    refuse_unknown(request.query_params, frozenset())
    server = context.settings.server
    return get_swagger_ui_html(
        openapi_url=f"{server.base_url}{MANAGEMENT_PREFIX}/openapi.json", title=f"{server.title}: management"
    )
