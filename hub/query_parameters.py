"""Query parameters on every API of the hub: honoured or refused, never silently dropped."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from hub.errors import BadRequest


async def single_valued_parameters(request: Request) -> None:
    """A query parameter given more than once is refused.

    No parameter of the hub's APIs takes several values (lists are comma-separated), and
    answering with one of them would silently drop the others.
    """
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadRequest(f"query parameter(s) given more than once: {', '.join(repeated)}")


def _declared(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _declared(dependency)
    return names


async def declared_parameters_only(request: Request) -> None:
    """A query parameter that the operation does not declare is refused (FastAPI would ignore it)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared(route.dependant)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")
