"""The application factory: ``create_app(settings)``; nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors._network import GuardedClient, NetworkPolicy
from hub import API_VERSION, __version__
from hub.api import audit as audit_api
from hub.api import catalog, harvest, health, openapi, sources
from hub.audit.middleware import AuditMiddleware
from hub.audit.trail import AuditTrail
from hub.auth.dependencies import require_steward
from hub.auth.tokens import TokenValidator
from hub.catalogue.registration import SourceRegistration
from hub.catalogue.store import CatalogueStore
from hub.context import HubContext
from hub.cors import ProblemCORSMiddleware
from hub.errors import PROBLEM_JSON, BadRequest, HubError, InvalidRegistration, error_for_status
from hub.features.service import FeatureService
from hub.features.warnings import WarningHeaders
from hub.methods import allowed_methods
from hub.ogc.engine import OGC_PREFIX, OgcEngine
from hub.ogc.routes import build_router
from hub.query_parameters import declared_parameters_only, single_valued_parameters
from hub.records import routes as records
from hub.records.records import RECORDS_PREFIX
from hub.registry import SourceRegistry
from hub.settings import Settings

LOG = logging.getLogger(__name__)


def problem_response(error: HubError, request: Request) -> JSONResponse:
    """Render a hub error as RFC 9457 problem details."""
    return JSONResponse(
        error.problem(instance=request.url.path),
        status_code=int(error.status),
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


async def _seed_catalogue(context: HubContext) -> None:
    """Store the configuration file's sources in the catalogue."""
    settings = context.settings
    seeds = []
    for raw in settings.sources:
        try:
            seeds.append(SourceRegistration.model_validate(raw))
        except ValueError as exc:
            raise InvalidRegistration(f"source {raw.get('id', '?')!r} in the configuration: {exc}") from exc
    await run_in_threadpool(context.store.seed, seeds)


async def _follow_catalogue(context: HubContext) -> None:
    """Serve what the catalogue holds, also when another process (the CLI, another worker)
    changed it; newly served sources are probed in the background."""
    while True:
        stored = await run_in_threadpool(context.store.list)
        changed = await context.registry.sync([s.registration for s in stored])
        for source_id in changed:
            with contextlib.suppress(HubError):
                await context.registry.probe(source_id)
        await asyncio.sleep(context.settings.catalogue_poll_interval)


async def _probe_forever(context: HubContext) -> None:
    """Probe every source now and then, so health and harvested schemas stay current."""
    first = True
    while True:
        if not first and context.settings.probe_interval <= 0:
            return
        if first and not context.settings.probe_on_start:
            first = False
            continue
        first = False
        await asyncio.gather(
            *(context.registry.probe(live.registration.id) for live in context.registry.sources()),
            return_exceptions=True,
        )
        if context.settings.probe_interval <= 0:
            return
        await asyncio.sleep(context.settings.probe_interval)


class ApiVersionHeader:
    """Adds ``API-Version`` to every response (NL API Design Rules), errors included.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per
    request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"api-version" for name, _ in headers):
                    headers.append((b"api-version", API_VERSION.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_version)


def create_app(settings: Settings) -> FastAPI:
    """Build the hub's ASGI application for ``settings``."""
    trail = AuditTrail(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await run_in_threadpool(CatalogueStore.open, settings.database_url)
        user_agent = {"User-Agent": f"urban-twin-hub/{__version__}"}
        async with (
            # sources are reached only at public addresses or in the allowed networks
            GuardedClient(
                NetworkPolicy.allowing(settings.allowed_networks),
                follow_redirects=False,
                headers=user_agent,
                # Not more idle connections kept: httpcore's pool checks every one of them for
                # every request it assigns, so with 100 kept a page of 100 keys asked key by key
                # cost four times the CPU (measured) of reconnecting all but 20.
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            ) as http,
            # the identity provider is the operator's own configuration, not a steward's
            # registration: it may sit on the private network without that being opened to sources
            httpx.AsyncClient(follow_redirects=False, headers=user_agent) as operator_http,
        ):
            base_dir = settings.config_file.parent if settings.config_file else None
            service = FeatureService(max_scan_features=settings.server.max_scan_features)
            registry = SourceRegistry(http, base_dir=base_dir, service=service)
            engine = OgcEngine(settings, registry, service)
            tokens = TokenValidator(settings.auth, operator_http) if settings.auth else None
            context = HubContext(settings, http, store, registry, service, engine, tokens)
            app.state.hub = context
            # first: its writer process starts while the sources are read and the views built
            await trail.start()
            try:
                await _seed_catalogue(context)
                await registry.sync([s.registration for s in await run_in_threadpool(store.list)])
                await engine.rebuild()
                await trail.ready()
            except BaseException:
                await trail.stop()
                raise
            registry.subscribe(engine.rebuild)
            tasks = [
                asyncio.create_task(_probe_forever(context)),
                asyncio.create_task(_follow_catalogue(context)),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await registry.close()
                await trail.stop()
                await run_in_threadpool(store.close)

    app = FastAPI(
        title=settings.server.title,
        description="Source registrations, health and operations of the urban twin data hub",
        version=API_VERSION,
        lifespan=lifespan,
        redirect_slashes=False,
        dependencies=[Depends(single_valued_parameters)],
        # each API serves its own document (hub.api.openapi, hub.ogc.routes)
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    if settings.cors.allow_origins:
        # Browser viewers send bearer tokens; they must read the headers that carry meaning.
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors.allow_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Accept", "Accept-Language", "Content-Type", "traceparent"],
            expose_headers=[
                "API-Version",
                "Content-Crs",
                "Link",
                "Location",
                "WWW-Authenticate",
                "traceparent",
                "Warning",
            ],
            max_age=settings.cors.max_age,
        )

    # outside the others, so that what they answer themselves (CORS preflights) carries it too
    app.add_middleware(ApiVersionHeader)
    app.add_middleware(WarningHeaders)
    # Outermost, so that refusals made anywhere inside are logged too: keep it the last one added.
    app.add_middleware(AuditMiddleware, trail=trail)
    app.state.audit_trail = trail

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        return problem_response(BadRequest(problems), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem_response(error_for_status(exc.status_code, str(exc.detail)), request)
        # Starlette's own headers, such as the Allow of a 405 that RFC 9110 requires
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        LOG.exception("unexpected error on %s", request.url.path)
        response = problem_response(HubError("an unexpected error occurred; it has been logged"), request)
        # Starlette answers this from its ServerErrorMiddleware, outside every user middleware, so
        # ApiVersionHeader never sees the response
        response.headers["API-Version"] = API_VERSION
        return response

    # the OGC API has its own OpenAPI document, built by pygeoapi from the live collections
    app.include_router(build_router(), prefix=OGC_PREFIX, include_in_schema=False)
    # the management API declares its parameters to FastAPI, which would ignore any other
    declared = Depends(declared_parameters_only)
    app.include_router(
        sources.router,
        prefix="/api/v1",
        dependencies=[declared, Depends(require_steward)],
        responses=openapi.STEWARD_RESPONSES,
    )
    app.include_router(
        harvest.router,
        prefix="/api/v1",
        dependencies=[declared, Depends(require_steward)],
        responses=openapi.STEWARD_RESPONSES,
    )
    app.include_router(
        health.router, prefix="/api/v1", dependencies=[declared], responses=openapi.TOKEN_RESPONSES
    )
    app.include_router(catalog.router, prefix="/api/v1", dependencies=[declared])
    app.include_router(openapi.router, prefix="/api/v1", dependencies=[declared])
    app.include_router(records.router, prefix=RECORDS_PREFIX, include_in_schema=False)
    app.include_router(
        audit_api.router,
        prefix="/api/v1",
        dependencies=[Depends(require_steward)],
        responses=openapi.STEWARD_RESPONSES,
    )
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ASGI servers (``uvicorn --factory``): the file named by ``HUB_CONFIG_FILE``."""
    return create_app(Settings.load(os.environ.get("HUB_CONFIG_FILE")))
