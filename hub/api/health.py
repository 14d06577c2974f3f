"""Health of the hub and of each source: ``/api/v1/health``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from hub.api.deps import Context
from hub.auth.caller import Caller
from hub.auth.dependencies import authenticate
from hub.auth.policy import may_read
from hub.context import HubContext
from hub.registry import HealthState, LiveSource

router = APIRouter(tags=["Health"])


class SourceStatus(BaseModel):
    """What the hub last learned about one source."""

    id: str
    title: str
    connector: str
    state: HealthState
    checked_at: datetime | None
    latency_ms: float | None
    error: str | None
    collections: list[str]


class HealthReport(BaseModel):
    """The hub is up; ``status`` is ``degraded`` while any source is unhealthy."""

    status: str
    sources: list[SourceStatus]


def source_status(context: HubContext, live: LiveSource) -> SourceStatus:
    """The status of one live source."""
    registration = live.registration
    health = live.health
    return SourceStatus(
        id=registration.id,
        title=registration.title,
        connector=registration.connector,
        state=health.state,
        checked_at=health.checked_at,
        latency_ms=health.latency_ms,
        error=health.error,
        collections=sorted(cid for cid, b in context.registry.collections().items() if b.source is live),
    )


@router.get("/health", summary="Health of the hub and its sources")
async def health(context: Context, caller: Annotated[Caller, Depends(authenticate)]) -> HealthReport:
    """Each source's state and last latency: stewards see every source and its last error,
    other callers the sources they may read, without error details (they can name internal hosts)."""
    auth = context.settings.auth
    steward = auth is not None and auth.steward_role in caller.roles
    statuses = [
        source_status(context, live)
        for live in context.registry.sources()
        if steward or may_read(caller, live.registration)
    ]
    statuses += [
        SourceStatus(
            id=registration.id,
            title=registration.title,
            connector=registration.connector,
            state=HealthState.UNHEALTHY,
            checked_at=None,
            latency_ms=None,
            error=error,
            collections=[],
        )
        for registration, error in context.registry.unservable()
        if steward
    ]
    if not steward:
        statuses = [status.model_copy(update={"error": None}) for status in statuses]
    degraded = any(s.state is HealthState.UNHEALTHY for s in statuses)
    return HealthReport(status="degraded" if degraded else "ok", sources=statuses)
