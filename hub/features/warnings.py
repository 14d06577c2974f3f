"""Warnings that travel with an answer: what a client must know when it gets less than it asked for.

A linked or union collection may answer with a *partial* result when one of its members fails
and its steward chose ``on_member_error: partial``. That must never be silent: whoever builds
the answer records a :class:`ResponseWarning`, and the route that sends the response shows every
recorded warning in a ``Warning`` header (and, for GeoJSON, in the document's ``warnings``
member).

The collector is a context variable holding a list, so that the warnings reach the route from
wherever the answer was built: tasks started by ``asyncio.gather`` and the worker threads
pygeoapi's handlers run in copy the context, and the copied variable still points at the same
list.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WARNING_HEADER = "Warning"
WARN_CODE = 199
"""RFC 7234's "miscellaneous warning": the answer is usable, but not what was asked for."""
WARN_AGENT = "urban-twin-hub"


@dataclass(frozen=True, slots=True)
class ResponseWarning:
    """Why an answer is incomplete: the part (member collection) that is missing, and why."""

    member: str
    """The name under which the missing part appears (a member of a linked or union collection)."""
    collection: str
    """The hub collection that failed to answer."""
    status: int
    """The HTTP status the failing part would have answered with on its own (502, 504, ...)."""
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The warning as a JSON object."""
        return asdict(self)

    def header_value(self) -> str:
        """The warning as a ``Warning`` header value: code, agent and a quoted text."""
        text = f"partial result: member {self.member} ({self.collection}) failed: {self.detail}"
        # quoted-string: no raw quotes, backslashes or line breaks inside
        quoted = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
        return f'{WARN_CODE} {WARN_AGENT} "{quoted}"'


_COLLECTED: ContextVar[list[ResponseWarning] | None] = ContextVar("RESPONSE_WARNINGS", default=None)


@contextmanager
def collect_warnings() -> Iterator[list[ResponseWarning]]:
    """Collect the warnings recorded while the block runs (also by tasks and threads it starts)."""
    collected: list[ResponseWarning] = []
    reset = _COLLECTED.set(collected)
    try:
        yield collected
    finally:
        _COLLECTED.reset(reset)


def warn(warning: ResponseWarning) -> None:
    """Record a warning for the answer being built (once; outside a collector it is dropped,
    as for a probe, which has no client to tell)."""
    collected = _COLLECTED.get()
    if collected is not None and warning not in collected:
        collected.append(warning)


def header_values(warnings: list[ResponseWarning]) -> list[str]:
    """The ``Warning`` header values for these warnings."""
    return [warning.header_value() for warning in warnings]


class WarningHeaders:
    """ASGI middleware: collects the warnings recorded while a request is answered and sends each
    as a ``Warning`` header, whatever the format (GeoJSON, HTML, CityJSON, ...)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with collect_warnings() as warnings:

            async def send_with_warnings(message: Message) -> None:
                if message["type"] == "http.response.start" and warnings:
                    extra = [(WARNING_HEADER.lower().encode(), value.encode("latin-1", "replace"))
                             for value in header_values(warnings)]  # fmt: skip
                    message["headers"] = [*message.get("headers", []), *extra]
                await send(message)

            await self.app(scope, receive, send_with_warnings)


def current_warnings() -> list[ResponseWarning]:
    """The warnings recorded so far for the answer being built."""
    return list(_COLLECTED.get() or ())
