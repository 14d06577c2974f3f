"""The trace context the hub's current request runs in, for the requests connectors send on.

A context variable, like the caller's credentials, so that no connector signature changes: the
hub sets it for each logged request, and :func:`connectors._http.send` adds it to every request
to a source, so that the source's own log can name the hub's operation as its caller (W3C Trace
Context). Background work (probes, catalogue polling) runs outside any request and sends none.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

TRACE_HEADERS: ContextVar[Mapping[str, str] | None] = ContextVar("TRACE_HEADERS", default=None)
"""``traceparent`` (and ``tracestate`` when the caller sent one) for requests to sources."""


def with_trace_headers(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``headers`` plus the current trace context, if there is one; a caller's own value wins."""
    trace = TRACE_HEADERS.get()
    if not trace:
        return headers
    if not headers:
        return trace
    present = {name.lower() for name in headers}
    return {**{k: v for k, v in trace.items() if k.lower() not in present}, **headers}
