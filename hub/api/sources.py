"""Stewards' management of source registrations: ``/api/v1/sources``."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from hub.api.deps import Context
from hub.api.health import SourceStatus, source_status
from hub.api.openapi import problem_response
from hub.catalogue.registration import SourceRegistration
from hub.errors import Conflict, InvalidRegistration, NotFound

router = APIRouter(prefix="/sources", tags=["Sources"])

RegistrationBody = Body(
    description="A source registration: the registration's keys plus the connector's settings",
    examples=[
        {
            "id": "afvalbakken",
            "title": "Afvalbakken",
            "connector": "file",
            "classification": "open",
            "path": "data/afvalbakken.geojson",
        }
    ],
)
ForceQuery = Query(False, description="Register even when the probe fails (shown as unhealthy)")


def parse_registration(body: dict[str, Any]) -> SourceRegistration:
    """Validate a request body as a registration; problems become a 422 with every error."""
    try:
        return SourceRegistration.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidRegistration(problems) from exc


@router.get("", summary="List source registrations")
async def list_sources(context: Context) -> list[dict[str, Any]]:
    """Every registration, as stored."""
    stored = await run_in_threadpool(context.store.list)
    return [s.registration.public_dict() for s in stored]


@router.get("/{source_id}", summary="Get one source registration")
async def get_source(source_id: str, context: Context) -> dict[str, Any]:
    """One registration."""
    stored = await run_in_threadpool(context.store.get, source_id)
    if stored is None:
        raise NotFound(f"no source {source_id!r}")
    return stored.registration.public_dict()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a source",
    responses={409: problem_response("A source with this id is registered already")},
)
async def create_source(
    context: Context,
    response: Response,
    body: dict[str, Any] = RegistrationBody,
    force: bool = ForceQuery,
) -> dict[str, Any]:
    """Probe and register a source; it is served at once."""
    registration = parse_registration(body)
    if await run_in_threadpool(context.store.get, registration.id) is not None:
        raise Conflict(f"a source {registration.id!r} is registered already")
    # stored before it is served, so that the catalogue follower never sees a live source
    # that the catalogue does not hold
    prepared = await context.registry.prepare(registration, probe=True, force=force)
    try:
        await run_in_threadpool(context.store.add, registration)
    except Conflict:
        await prepared.live.connector.close()
        raise
    try:
        live = await context.registry.serve(prepared)
    except Conflict:
        await run_in_threadpool(context.store.delete, registration.id)
        raise
    response.headers["Location"] = f"{context.settings.server.base_url}/api/v1/sources/{registration.id}"
    return {
        **registration.public_dict(),
        "status": source_status(context, live).model_dump(mode="json"),
    }


@router.put("/{source_id}", summary="Replace a source registration")
async def replace_source(
    source_id: str,
    context: Context,
    body: dict[str, Any] = RegistrationBody,
    force: bool = ForceQuery,
) -> dict[str, Any]:
    """Probe and replace a registration; the new one is served at once."""
    registration = parse_registration(body)
    if registration.id != source_id:
        raise InvalidRegistration(f"the body's id {registration.id!r} differs from {source_id!r}")
    if await run_in_threadpool(context.store.get, source_id) is None:
        raise NotFound(f"no source {source_id!r}")
    prepared = await context.registry.prepare(registration, probe=True, force=force)
    try:
        await run_in_threadpool(context.store.replace, registration)
    except NotFound:
        await prepared.live.connector.close()
        raise
    live = await context.registry.serve(prepared)
    return {
        **registration.public_dict(),
        "status": source_status(context, live).model_dump(mode="json"),
    }


@router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a source")
async def delete_source(source_id: str, context: Context) -> Response:
    """Withdraw a source and its collections at once."""
    await run_in_threadpool(context.store.delete, source_id)
    # a stored source may never have been served (its connector could not be built)
    with contextlib.suppress(NotFound):
        await context.registry.deactivate(source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{source_id}/probe", summary="Probe a source now")
async def probe_source(source_id: str, context: Context) -> SourceStatus:
    """Probe a source again and return its health."""
    live = await context.registry.probe(source_id)
    return source_status(context, live)
