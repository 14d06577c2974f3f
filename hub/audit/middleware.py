"""The audit middleware: a record for every processing before its response leaves, or a 503.

A pure ASGI middleware, outermost in the application, so that refusals made anywhere inside
(401, 403, 400, 404, 502...) are logged too. For every request it reads the caller's trace
context, creates the :class:`~hub.audit.processing.Processing` the inner layers fill in, and
sets the trace context connectors pass on to sources. When the response starts (status known,
body not yet sent) it stores the records of a processing and waits for their commit; if that
fails, the caller gets a 503 problem instead and the original response is never sent (FSC: no
processing without its log line).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.tracing import TRACE_HEADERS
from hub import API_VERSION
from hub.audit.errors import AuditUnavailable
from hub.audit.processing import Processing, bind, unbind
from hub.audit.tracecontext import format_traceparent, new_span_id, new_trace_id, parse_traceparent
from hub.audit.trail import AuditTrail, is_processing
from hub.errors import PROBLEM_JSON

LOG = logging.getLogger(__name__)


_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def _route_name(scope: Scope) -> str:
    """The operation's name: method and route template (no ids), or the path when unrouted."""
    path: str = scope["path"]
    template = getattr(scope.get("route"), "path", None)
    if template:
        # an included router's route knows its path without the prefix: put the prefix back
        params = scope.get("path_params", {})
        try:
            tail = _PARAMETER.sub(lambda match: str(params[match[1]]), template)
        except KeyError:
            tail = None
        if tail is not None and path.endswith(tail):
            path = path[: len(path) - len(tail)] + template
    return f"{scope['method']} {path}"


class AuditMiddleware:
    """Logs every processing (see :mod:`hub.audit.trail`) before its response starts."""

    def __init__(self, app: ASGIApp, *, trail: AuditTrail) -> None:
        self.app = app
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.trail.enabled:
            await self.app(scope, receive, send)
            return
        traceparents: list[str] = []
        tracestate: list[str] = []
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparents.append(value.decode("latin-1"))
            elif name == b"tracestate":
                tracestate.append(value.decode("latin-1"))
        foreign = parse_traceparent(traceparents) if traceparents else None
        processing = Processing(
            trace_id=foreign.trace_id if foreign else new_trace_id(),
            span_id=new_span_id(),
            foreign=foreign,
            started=datetime.now(UTC),
            method=scope["method"],
            path=scope["path"],
            query_string=scope.get("query_string", b"").decode("latin-1"),
        )
        traceparent = format_traceparent(processing.trace_id, processing.span_id)
        onward = {"traceparent": traceparent}
        if foreign is not None and tracestate:
            # tracestate travels with a valid traceparent only (W3C Trace Context)
            onward["tracestate"] = ",".join(tracestate)
        started = False
        refused = False

        async def audited_send(message: Message) -> None:
            nonlocal started, refused
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                if is_processing(scope["method"], scope["path"], status, processing):
                    # the collection the caller asked for, also when a composite read its members
                    # or the request was refused before any was read
                    requested = scope.get("path_params", {}).get("collection_id")
                    if requested:
                        processing.collection_id = requested
                    try:
                        await self.trail.log(processing, status, _route_name(scope))
                    except AuditUnavailable as exc:
                        refused = True
                        LOG.error(
                            "refused %s %s (trace %s): its processing could not be logged: %s",
                            scope["method"],
                            scope["path"],
                            processing.trace_id,
                            exc.cause or exc.detail,
                        )
                        await _refuse(send, exc, scope["path"], traceparent)
                        return
                    message["headers"] = [*message.get("headers", []), (b"traceparent", traceparent.encode())]
                await send(message)
            elif not refused:
                await send(message)

        processing_token = bind(processing)
        trace_token = TRACE_HEADERS.set(onward)
        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            # Starlette answers an unhandled error (500) outside every user middleware: log it here
            # (a cancelled request sent nothing and is no error of the hub's)
            if not started and is_processing(scope["method"], scope["path"], 500, processing):
                try:
                    await self.trail.log(processing, 500, _route_name(scope))
                except AuditUnavailable as exc:
                    LOG.error("a failed request could not be logged either: %s", exc.cause or exc.detail)
            raise
        finally:
            TRACE_HEADERS.reset(trace_token)
            unbind(processing_token)


async def _refuse(send: Send, error: AuditUnavailable, path: str, traceparent: str) -> None:
    """Answer 503 problem details in place of the response that could not be logged."""
    body = json.dumps(error.problem(instance=path)).encode("utf-8")
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"api-version", API_VERSION.encode()),
        (b"traceparent", traceparent.encode()),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": int(error.status), "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
