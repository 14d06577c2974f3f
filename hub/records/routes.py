"""OGC API Records under ``/records/v1``: landing page, conformance, the one record collection,
its records (searchable and paged) and the API's own OpenAPI document.

Only JSON is offered (``f=json``); any other ``f`` and any unknown parameter answer ``400``.
The catalogue is read at request time (registrations from the store, collections from the
registry), so a source registered or withdrawn shows in the next answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from connectors.base import CRS84
from hub.api.deps import Context
from hub.catalogue.dcat import CATALOG_PATH
from hub.catalogue.registration import SourceRegistration
from hub.catalogue.store import CatalogueStore
from hub.errors import NotFound
from hub.features.params import refuse_unknown
from hub.records.openapi import OPENAPI_MEDIA_TYPE, records_openapi
from hub.records.records import (
    CATALOGUE_ID,
    GEOJSON,
    JSON,
    JSON_LD,
    RECORDS_PREFIX,
    Catalogue,
    build_catalogue,
    period_member,
    rfc3339,
)
from hub.records.search import parse_record_query, refuse_all_but_format
from hub.registry import CollectionBinding
from hub.settings import Settings

_RECORDS = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    # the name of the core class in the drafts, which clients such as OWSLib still look for
    f"{_RECORDS}core",
    f"{_RECORDS}record-core",
    f"{_RECORDS}record-collection",
    f"{_RECORDS}record-api",
    f"{_RECORDS}record-core-query-parameters",
    f"{_RECORDS}json",
    f"{_RECORDS}oas30",
]
TRS_GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"

router = APIRouter(tags=["OGC API Records"])


def _json(
    document: Mapping[str, Any], media_type: str = JSON, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(document), media_type=media_type, headers=headers)


def _geojson(document: Mapping[str, Any]) -> Response:
    # records are GeoJSON in CRS84, and say so like every geo response of the hub
    return _json(document, GEOJSON, {"Content-Crs": f"<{CRS84}>"})


def _records_url(settings: Settings) -> str:
    return f"{settings.server.base_url}{RECORDS_PREFIX}"


def _read_catalogue(
    store: CatalogueStore,
    served: dict[str, SourceRegistration],
    bindings: dict[str, CollectionBinding],
    settings: Settings,
) -> Catalogue:
    """Blocking: the store is read and the records are written in a worker thread."""
    return build_catalogue(store.list(), served, bindings, settings)


async def _catalogue(context: Context) -> Catalogue:
    registry = context.registry
    served = {live.registration.id: live.registration for live in registry.sources()}
    return await run_in_threadpool(
        _read_catalogue, context.store, served, registry.collections(), context.settings
    )


def _check_collection(collection_id: str) -> None:
    if collection_id != CATALOGUE_ID:
        raise NotFound(f"no record collection {collection_id!r}; the catalogue is {CATALOGUE_ID!r}")


def _collection_document(catalogue: Catalogue, settings: Settings) -> dict[str, Any]:
    base = _records_url(settings)
    url = f"{base}/collections/{CATALOGUE_ID}"
    document: dict[str, Any] = {
        "id": CATALOGUE_ID,
        "type": "Catalog",
        "itemType": "record",
        "title": f"{settings.server.title}: catalogue",
        "description": "A record per registered source (type service) and per served collection "
        "(type dataset), with links that load the data as it is served by the OGC API Features",
        "language": {"code": settings.catalogue.language},
        "conformsTo": [f"{_RECORDS}record-core"],
        "links": [
            {"rel": "self", "type": JSON, "title": "This collection", "href": url},
            {"rel": "root", "type": JSON, "title": "OGC API Records", "href": base},
            {"rel": "items", "type": GEOJSON, "title": "The records", "href": f"{url}/items"},
            {
                "rel": "describedby",
                "type": JSON_LD,
                "title": "The DCAT-AP-NL catalogue",
                "href": f"{settings.server.base_url}{CATALOG_PATH}?f=jsonld",
            },
        ],
    }
    extent: dict[str, Any] = {}
    if catalogue.extent is not None:
        extent["spatial"] = {"bbox": [list(catalogue.extent)], "crs": CRS84}
    time_member = period_member(catalogue.period)
    if time_member is not None:
        extent["temporal"] = {"interval": [time_member["interval"]], "trs": TRS_GREGORIAN}
    if extent:
        document["extent"] = extent
    if catalogue.updated is not None:
        document["updated"] = rfc3339(catalogue.updated)
    return document


def _page_url(items_url: str, params: Mapping[str, str], offset: int, limit: int) -> str:
    query = {**params, "offset": str(offset), "limit": str(limit)}
    return f"{items_url}?{urlencode(query)}"


# The API root is also answered with a trailing slash (never redirected): OGC clients such as
# OWSLib build every URL as base + "/". Everywhere else a trailing slash is a 404.
@router.get("/", include_in_schema=False)
@router.get("", summary="Landing page")
async def landing_page(request: Request, context: Context) -> Response:
    """The landing page of the catalogue API: its description, conformance and record collection."""
    refuse_all_but_format(request.query_params)
    settings = context.settings
    base = _records_url(settings)
    return _json(
        {
            "title": f"{settings.server.title}: catalogue (OGC API Records)",
            "description": "The hub's catalogue as OGC API Records: what is served, by whom, "
            "under which licence, and where to load it",
            "links": [
                {"rel": "self", "type": JSON, "title": "This document", "href": base},
                {
                    "rel": "service-desc",
                    "type": OPENAPI_MEDIA_TYPE,
                    "title": "The OpenAPI document",
                    "href": f"{base}/openapi.json",
                },
                {"rel": "conformance", "type": JSON, "title": "Conformance", "href": f"{base}/conformance"},
                {"rel": "data", "type": JSON, "title": "Record collections", "href": f"{base}/collections"},
                {
                    "rel": f"{OGC_REL}data",
                    "type": JSON,
                    "title": "Record collections",
                    "href": f"{base}/collections",
                },
            ],
        }
    )


@router.get("/conformance", summary="Conformance classes")
async def conformance(request: Request) -> Response:
    """The conformance classes this API implements."""
    refuse_all_but_format(request.query_params)
    return _json({"conformsTo": CONFORMANCE})


@router.get("/collections", summary="Record collections")
async def collections(request: Request, context: Context) -> Response:
    """The one record collection: the catalogue."""
    refuse_all_but_format(request.query_params)
    catalogue = await _catalogue(context)
    base = _records_url(context.settings)
    return _json(
        {
            "collections": [_collection_document(catalogue, context.settings)],
            "links": [{"rel": "self", "type": JSON, "title": "This document", "href": f"{base}/collections"}],
        }
    )


@router.get("/collections/{collection_id}", summary="One record collection")
async def collection(collection_id: str, request: Request, context: Context) -> Response:
    """The catalogue's description."""
    refuse_all_but_format(request.query_params)
    _check_collection(collection_id)
    return _json(_collection_document(await _catalogue(context), context.settings))


@router.get("/collections/{collection_id}/items", summary="Records")
async def items(collection_id: str, request: Request, context: Context) -> Response:
    """A page of the records that match every criterion given."""
    _check_collection(collection_id)
    settings = context.settings
    params = request.query_params
    query = parse_record_query(
        params, default_limit=settings.server.default_limit, max_limit=settings.server.max_limit
    )
    catalogue = await _catalogue(context)
    matched = [record for record in catalogue.records if query.matches(record)]
    page = matched[query.offset : query.offset + query.limit]
    items_url = f"{_records_url(settings)}/collections/{CATALOGUE_ID}/items"
    kept = {key: value for key, value in params.items() if key not in ("offset", "limit")}
    links = [
        {
            "rel": "self",
            "type": GEOJSON,
            "title": "This page",
            "href": _page_url(items_url, kept, query.offset, query.limit),
        },
        {
            "rel": "collection",
            "type": JSON,
            "title": "The catalogue",
            "href": f"{_records_url(settings)}/collections/{CATALOGUE_ID}",
        },
    ]
    if query.offset + query.limit < len(matched):
        links.append(
            {
                "rel": "next",
                "type": GEOJSON,
                "title": "Next page",
                "href": _page_url(items_url, kept, query.offset + query.limit, query.limit),
            }
        )
    if query.offset > 0:
        links.append(
            {
                "rel": "prev",
                "type": GEOJSON,
                "title": "Previous page",
                "href": _page_url(items_url, kept, max(query.offset - query.limit, 0), query.limit),
            }
        )
    return _geojson(
        {
            "type": "FeatureCollection",
            "features": [record.document for record in page],
            "numberMatched": len(matched),
            "numberReturned": len(page),
            "timeStamp": rfc3339(datetime.now(UTC)),
            "links": links,
        }
    )


@router.get("/collections/{collection_id}/items/{record_id}", summary="One record")
async def item(collection_id: str, record_id: str, request: Request, context: Context) -> Response:
    """One record by id."""
    refuse_all_but_format(request.query_params)
    _check_collection(collection_id)
    record = (await _catalogue(context)).by_id.get(record_id)
    if record is None:
        raise NotFound(f"no record {record_id!r} in the catalogue")
    return _geojson(record.document)


@router.get("/openapi.json", summary="OpenAPI document of this API")
async def openapi_document(request: Request, context: Context) -> Response:
    """This API's OpenAPI document: self-contained, served without authentication."""
    refuse_unknown(request.query_params, frozenset())
    return _json(records_openapi(context.settings), OPENAPI_MEDIA_TYPE)
