"""Typed dependencies of the management API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub.context import HubContext


# async, or FastAPI would run it in a worker thread on every request
async def get_context(request: Request) -> HubContext:
    """The application's long-lived parts."""
    context: HubContext = request.app.state.hub
    return context


Context = Annotated[HubContext, Depends(get_context)]
