"""The hub's DCAT-AP-NL catalogue: ``/api/v1/catalog`` as Turtle, JSON-LD, RDF/XML or HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import Context
from hub.api.negotiation import negotiate
from hub.catalogue.dcat import RDF_FORMATS, build_catalog, serialise
from hub.catalogue.dcat_html import catalog_html
from hub.catalogue.registration import SourceRegistration
from hub.errors import PROBLEM_JSON, NotAcceptable
from hub.features.params import refuse_unknown
from hub.registry import CollectionBinding
from hub.settings import Settings

router = APIRouter(tags=["Catalogue"])


class CatalogFormat(StrEnum):
    """Values of ``f``: the representation asked for, overriding ``Accept``."""

    TTL = "ttl"
    TURTLE = "turtle"
    JSONLD = "jsonld"
    RDFXML = "rdfxml"
    HTML = "html"


# Offered media types in order of preference: a client that accepts anything gets Turtle.
MEDIA_TYPES = {
    "text/turtle": "turtle",
    "application/ld+json": "jsonld",
    "application/rdf+xml": "rdfxml",
    "text/html": "html",
}
_BY_F = {
    CatalogFormat.TTL: "turtle",
    CatalogFormat.TURTLE: "turtle",
    CatalogFormat.JSONLD: "jsonld",
    CatalogFormat.RDFXML: "rdfxml",
    CatalogFormat.HTML: "html",
}
_CONTENT_TYPES = {
    "turtle": "text/turtle; charset=utf-8",
    "jsonld": "application/ld+json",
    "rdfxml": "application/rdf+xml",
    "html": "text/html; charset=utf-8",
}
_PARAMETERS = frozenset({"f"})

_PROBLEM = {
    PROBLEM_JSON: {
        "schema": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
            },
        }
    }
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The DCAT-AP-NL 3.0 catalogue",
        "content": {
            "text/turtle": {"schema": {"type": "string"}},
            "application/ld+json": {"schema": {"type": "object"}},
            "application/rdf+xml": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    },
    400: {"description": "An unknown query parameter or value of `f`", "content": _PROBLEM},
    406: {"description": "None of the media types in `Accept` is offered", "content": _PROBLEM},
}

FormatQuery = Query(
    None,
    description="Representation: `ttl`/`turtle`, `jsonld`, `rdfxml` or `html`; overrides `Accept`",
)


def render_catalog(
    registrations: Sequence[SourceRegistration],
    bindings: Mapping[str, CollectionBinding],
    settings: Settings,
    kind: str,
) -> bytes:
    """The catalogue in one representation (blocking: rdflib builds and writes it)."""
    graph = build_catalog(registrations, bindings, settings)
    if kind == "html":
        return catalog_html(graph, settings.catalogue.language).encode("utf-8")
    return serialise(graph, RDF_FORMATS[kind])


@router.get("/catalog", summary="DCAT-AP-NL catalogue", response_class=Response, responses=RESPONSES)
async def catalog(request: Request, context: Context, f: CatalogFormat | None = FormatQuery) -> Response:
    """Every served collection as a DCAT dataset; restricted sources without restricted details."""
    refuse_unknown(request.query_params, _PARAMETERS)
    if f is not None:
        kind = _BY_F[f]
    else:
        media_type = negotiate(request.headers.get("accept"), list(MEDIA_TYPES))
        if media_type is None:
            raise NotAcceptable(
                f"the catalogue is offered as {', '.join(MEDIA_TYPES)}; "
                "or ask for one with f=ttl, jsonld, rdfxml or html"
            )
        kind = MEDIA_TYPES[media_type]
    stored = await run_in_threadpool(context.store.list)
    body = await run_in_threadpool(
        render_catalog,
        [s.registration for s in stored],
        context.registry.collections(),
        context.settings,
        kind,
    )
    return Response(body, media_type=_CONTENT_TYPES[kind], headers={"Vary": "Accept"})
