"""The methods a path answers, for the ``Allow`` header of a ``405`` (RFC 9110).

Starlette answers a method a path does not take with the methods of the first route whose path
matches, so ``/sources``, served by a GET and a POST route, would claim to allow GET alone.
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.routing import Match


def allowed_methods(request: Request) -> str:
    """Every method some route of the application answers at this request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        route_methods = route.methods
        if not route_methods:
            continue
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route_methods
    return ", ".join(sorted(methods))
