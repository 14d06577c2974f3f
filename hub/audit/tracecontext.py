"""W3C Trace Context (``traceparent``): reading the caller's, minting our own span.

Only version ``00`` is understood fully; a later version is read by its first four fields as the
specification asks. Anything malformed is ignored, and the request starts a new trace.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """The trace a caller is in and the span (operation) of theirs that called us."""

    trace_id: str
    span_id: str
    flags: str


def parse_traceparent(values: list[str]) -> TraceParent | None:
    """The caller's trace context, or None when absent, repeated or malformed."""
    if len(values) != 1:
        # several traceparent headers cannot be told apart: the specification says to ignore them
        return None
    match = _TRACEPARENT.match(values[0].strip(" \t"))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, flags)


class _RandomPool(threading.local):
    """Random bytes from the operating system, fetched 4 KiB at a time: every request mints a
    trace and a span id, and a system call for each cost more than the rest of minting them."""

    size = 4096

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.buffer = b""
        self.position = 0

    def hex(self, length: int) -> str:
        if self.position + length > len(self.buffer):
            self.buffer = os.urandom(self.size)
            self.position = 0
        start = self.position
        self.position += length
        return self.buffer[start : start + length].hex()


_RANDOM = _RandomPool()
# a forked child must not mint the ids its parent minted from the same bytes
os.register_at_fork(after_in_child=_RANDOM.clear)


def new_trace_id() -> str:
    """A random 16-byte trace id, in lower-case hex."""
    while True:
        value = _RANDOM.hex(16)
        if value != _INVALID_TRACE_ID:
            return value


def new_span_id() -> str:
    """A random 8-byte span id, in lower-case hex."""
    while True:
        value = _RANDOM.hex(8)
        if value != _INVALID_SPAN_ID:
            return value


def format_traceparent(trace_id: str, span_id: str) -> str:
    """A version-00 ``traceparent`` naming our span; always sampled, since nothing is sampled out."""
    return f"00-{trace_id}-{span_id}-01"
