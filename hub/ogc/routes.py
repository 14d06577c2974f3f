"""OGC API Features under ``/ogc/v1``: the hub validates, pygeoapi presents.

Every route validates its parameters itself first (refusing what it cannot honour), then runs
pygeoapi's handler in a worker thread and turns its ``(headers, status, content)`` into a
response; pygeoapi's own error bodies are re-rendered as RFC 9457 problem details.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from pygeoapi import api as pygeoapi_api
from pygeoapi.api import APIRequest
from pygeoapi.api import itemtypes as pygeoapi_items
from pygeoapi.formats import F_HTML
from pygeoapi.util import render_j2_template
from starlette.concurrency import run_in_threadpool

from connectors.base import CALLER_CREDENTIALS
from hub.auth.dependencies import CurrentAccess
from hub.auth.policy import Access, refuse_unreadable
from hub.errors import PROBLEM_JSON, HubError, NotFound, error_for_status
from hub.features.params import (
    COMMON_PARAMETERS,
    CollectionTerms,
    parse_item_crs,
    parse_items_request,
    refuse_unknown,
)
from hub.ogc import cityjson as cityjson_output
from hub.ogc.cityjson import model_format
from hub.ogc.engine import EngineState, OgcEngine
from hub.ogc.formats import (
    ITEM_FORMATS,
    ITEMS_FORMATS,
    OPENAPI_FORMATS,
    QUERYABLES_PROFILES,
    RESOURCE_FORMATS,
    SCHEMA_FORMATS,
    refuse_unoffered,
    refuse_unoffered_format,
)
from hub.ogc.geojson import geojson_response, item_document, items_document, wants_geojson
from hub.ogc.openapi import OPENAPI_MEDIA_TYPE
from hub.ogc.provider import ITEM_CRS, ITEMS_REQUEST

# Parameters the hub evaluates itself; pygeoapi must not parse them (its CQL2 text parser
# rejects CQL2 JSON on GET, and it transforms a bbox by its two corners), but the links it
# builds must still carry them.
_HUB_ONLY = frozenset({"bbox", "bbox-crs", "datetime", "filter", "filter-crs", "filter-lang", "purpose"})
# 3D models (CityJSON) are offered on 3D collections only, which ``model_format`` checks
_MODEL_FORMATS = tuple(fmt.value for fmt in cityjson_output.ModelFormat)


CONFORMANCE = sorted(
    [
        "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
        "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
        "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
        "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
        "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
        "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
        "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    ]
)
"""What the hub implements; pygeoapi's own list claims editing (Part 4), which the hub does not
offer, and lacks the filter classes, which it does."""


def _conformance(api: Any, request: APIRequest) -> tuple[dict[str, str], int, str]:
    headers = request.get_response_headers(**api.api_headers)
    content = {"conformsTo": CONFORMANCE}
    if request.format == F_HTML:
        template_dir = api.config["server"]["templates"]
        return (
            headers,
            200,
            render_j2_template(api.tpl_config, template_dir, "conformance.html", content, request.locale),
        )
    return headers, 200, json.dumps(content)


# async, or FastAPI would run it in a worker thread on every request
async def get_engine(request: Request) -> OgcEngine:
    """The OGC engine of this application."""
    engine: OgcEngine = request.app.state.hub.engine
    return engine


Engine = Annotated[OgcEngine, Depends(get_engine)]


class _LinkOnlyParams(dict[str, str]):
    """Query parameters that pygeoapi sees when it builds links but not when it parses."""

    def __init__(self, params: Mapping[str, str], hidden: frozenset[str]):
        super().__init__(params)
        self._hidden = hidden

    def get(self, key: str, default: Any = None) -> Any:
        return default if key in self._hidden else super().get(key, default)


def _pygeoapi_request(
    request: Request, state: EngineState, hidden: frozenset[str] = frozenset()
) -> APIRequest:
    api_request = APIRequest(request, state.api.locales)
    api_request._args = _LinkOnlyParams(request.query_params, hidden)
    return api_request


def _problem_from_pygeoapi(status: int, content: str | bytes) -> HubError:
    try:
        body = json.loads(content)
        detail = str(body.get("description") or body.get("detail") or "request failed")
    except (ValueError, AttributeError):
        detail = "request failed"
    return error_for_status(status, detail)


async def _run(handler: Callable[..., Any], *args: Any) -> Response:
    headers, status, content = await run_in_threadpool(handler, *args)
    if status >= 400 and "json" in str(headers.get("Content-Type", "json")):
        raise _problem_from_pygeoapi(status, content)
    return Response(content=content, status_code=status, headers=dict(headers))


def _bearer_token(request: Request) -> str | None:
    """The caller's bearer token, which a ``hub`` source may forward to its peer."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _terms(engine: OgcEngine, state: EngineState, access: Access, collection_id: str) -> CollectionTerms:
    """The collection's terms in the caller's view; 401/403 when it exists but is not theirs."""
    terms = state.terms.get(collection_id)
    if terms is None:
        hidden = engine.state.bindings.get(collection_id)
        if hidden is not None:
            refuse_unreadable(access.caller, hidden.source.registration)
        raise NotFound(f"no collection {collection_id!r}")
    return terms


def build_router() -> APIRouter:
    """The router of the OGC API Features endpoints."""
    router = APIRouter(tags=["OGC API Features"])

    # The API root is also answered with a trailing slash (never redirected): OGC clients such as
    # OWSLib build every URL as base + "/". Everywhere else a trailing slash is a 404.
    @router.get("/", include_in_schema=False)
    @router.get("", summary="Landing page")
    async def landing_page(request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, COMMON_PARAMETERS)
        refuse_unoffered_format(request.query_params, RESOURCE_FORMATS)
        return await _run(pygeoapi_api.landing_page, state.api, _pygeoapi_request(request, state))

    @router.get("/conformance", summary="Conformance classes")
    async def conformance(request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, COMMON_PARAMETERS)
        refuse_unoffered_format(request.query_params, RESOURCE_FORMATS)
        return await _run(_conformance, state.api, _pygeoapi_request(request, state))

    @router.get("/collections", summary="Feature collections")
    async def collections(request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, COMMON_PARAMETERS)
        refuse_unoffered_format(request.query_params, RESOURCE_FORMATS)
        return await _run(pygeoapi_api.describe_collections, state.api, _pygeoapi_request(request, state))

    @router.get("/collections/{collection_id}", summary="One feature collection")
    async def collection(
        collection_id: str, request: Request, engine: Engine, access: CurrentAccess
    ) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, COMMON_PARAMETERS)
        refuse_unoffered_format(request.query_params, RESOURCE_FORMATS)
        _terms(engine, state, access, collection_id)
        return await _run(
            pygeoapi_api.describe_collections,
            state.api,
            _pygeoapi_request(request, state),
            collection_id,
        )

    @router.get("/collections/{collection_id}/queryables", summary="Queryable properties")
    async def queryables(
        collection_id: str, request: Request, engine: Engine, access: CurrentAccess
    ) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, COMMON_PARAMETERS | {"profile"})
        refuse_unoffered_format(request.query_params, SCHEMA_FORMATS)
        refuse_unoffered(request.query_params, "profile", QUERYABLES_PROFILES)
        _terms(engine, state, access, collection_id)
        return await _run(
            pygeoapi_items.get_collection_queryables,
            state.api,
            _pygeoapi_request(request, state),
            collection_id,
        )

    @router.get("/collections/{collection_id}/schema", summary="Schema of the features")
    async def schema(collection_id: str, request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, COMMON_PARAMETERS)
        refuse_unoffered_format(request.query_params, SCHEMA_FORMATS)
        _terms(engine, state, access, collection_id)
        return await _run(
            pygeoapi_api.get_collection_schema,
            state.api,
            _pygeoapi_request(request, state),
            collection_id,
        )

    @router.get("/collections/{collection_id}/items", summary="Features")
    async def items(collection_id: str, request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        terms = _terms(engine, state, access, collection_id)
        refuse_unoffered_format(request.query_params, (*ITEMS_FORMATS, *_MODEL_FORMATS))
        model = model_format(request, three_d=terms.three_d)
        items_request = parse_items_request(request.query_params, terms, model_output=model is not None)
        CALLER_CREDENTIALS.set(_bearer_token(request))
        if model is not None:
            binding = state.bindings[collection_id]
            return await cityjson_output.items_response(
                await engine.service.items(binding, items_request),
                model,
                collection_url=f"{engine.base_url}/collections/{collection_id}",
                title=binding.title,
                params=request.query_params,
                limit=items_request.limit,
                offset=items_request.offset,
                skip_geometry=items_request.skip_geometry,
            )
        if engine.native_geojson and wants_geojson(request):
            binding = state.bindings[collection_id]
            result = await engine.service.items(binding, items_request)
            document = items_document(
                result,
                collection_url=f"{engine.base_url}/collections/{collection_id}",
                title=binding.title,
                params=request.query_params,
                limit=items_request.limit,
                offset=items_request.offset,
            )
            return geojson_response(document, items_request.crs)
        ITEMS_REQUEST.set(items_request)
        return await _run(
            pygeoapi_items.get_collection_items,
            state.api,
            _pygeoapi_request(request, state, _HUB_ONLY),
            collection_id,
        )

    @router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature")
    async def item(
        collection_id: str, feature_id: str, request: Request, engine: Engine, access: CurrentAccess
    ) -> Response:
        state = await engine.view(access)
        terms = _terms(engine, state, access, collection_id)
        refuse_unoffered_format(request.query_params, (*ITEM_FORMATS, *_MODEL_FORMATS))
        model = model_format(request, three_d=terms.three_d)
        crs = parse_item_crs(request.query_params, terms, model_output=model is not None)
        CALLER_CREDENTIALS.set(_bearer_token(request))
        if model is not None:
            binding = state.bindings[collection_id]
            return await cityjson_output.item_response(
                await engine.service.item(binding, feature_id, crs, models=True),
                model,
                collection_url=f"{engine.base_url}/collections/{collection_id}",
                title=binding.title,
            )
        if engine.native_geojson and wants_geojson(request):
            binding = state.bindings[collection_id]
            feature = await engine.service.item(binding, feature_id, crs)
            document = item_document(
                feature,
                root_url=engine.base_url,
                collection_url=f"{engine.base_url}/collections/{collection_id}",
                title=binding.title,
            )
            return geojson_response(document, crs)
        ITEM_CRS.set(crs)
        return await _run(
            pygeoapi_items.get_collection_item,
            state.api,
            _pygeoapi_request(request, state),
            collection_id,
            feature_id,
        )

    @router.get("/openapi.json", summary="OpenAPI document of this API", include_in_schema=False)
    async def openapi_document(request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        refuse_unknown(request.query_params, frozenset())
        return Response(json.dumps(state.openapi), media_type=OPENAPI_MEDIA_TYPE)

    @router.get("/openapi", summary="OpenAPI document or its HTML view", include_in_schema=False)
    async def openapi_view(request: Request, engine: Engine, access: CurrentAccess) -> Response:
        state = await engine.view(access)
        # pygeoapi's landing page links here as service-desc (?f=json) and service-doc (?f=html)
        refuse_unknown(request.query_params, COMMON_PARAMETERS)
        refuse_unoffered_format(request.query_params, OPENAPI_FORMATS)
        wants_html = request.query_params.get("f") == "html" or (
            "f" not in request.query_params and "text/html" in request.headers.get("accept", "")
        )
        if wants_html:
            return get_swagger_ui_html(
                openapi_url=f"{request.url.path}.json", title=state.openapi["info"]["title"]
            )
        return Response(json.dumps(state.openapi), media_type=OPENAPI_MEDIA_TYPE)

    return router


__all__ = ["PROBLEM_JSON", "build_router"]
