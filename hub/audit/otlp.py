"""Copying committed records to an OpenTelemetry collector (OTLP/HTTP, JSON encoding).

The database is the log; the export is a copy for tracing tools. It runs in its own thread
after each commit, never in a request's path: when the collector is slow or down, batches wait
in a bounded queue and the oldest are dropped (and counted), but no request waits or fails.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from hub import __version__
from hub.audit.logboek import attributes
from hub.audit.models import KIND_REQUEST
from hub.audit.store import Appended

LOG = logging.getLogger(__name__)

QUEUE_BATCHES = 1000
"""Committed batches waiting for export at most; beyond that the oldest are dropped."""
MAX_SPANS_PER_EXPORT = 2000

_SERVER = 2  # OTLP SpanKind
_INTERNAL = 1
_STOP = object()


def _nanos(moment: datetime) -> str:
    # int64 fields are strings in the protobuf JSON mapping
    return str(int(moment.timestamp() * 1000) * 1_000_000)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": str(value)}


def span(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as an OTLP span (JSON encoding: ids in hex)."""
    return {
        "traceId": record["trace_id"],
        "spanId": record["span_id"],
        "parentSpanId": record["parent_span_id"] or "",
        "name": record["name"],
        "kind": _SERVER if record["kind"] == KIND_REQUEST else _INTERNAL,
        "startTimeUnixNano": _nanos(record["start_time"]),
        "endTimeUnixNano": _nanos(record["end_time"]),
        "attributes": [
            {"key": key, "value": _value(value)}
            for key, value in {**attributes(record), "hub.audit.record_id": record["id"]}.items()
        ],
        "status": {"code": record["status_code"]},
    }


def export_request(records: Sequence[Mapping[str, Any]], service_name: str) -> dict[str, Any]:
    """The body of one OTLP/HTTP traces export."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service_name}},
                        {"key": "service.version", "value": {"stringValue": __version__}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "hub.audit", "version": __version__},
                        "spans": [span(record) for record in records],
                    }
                ],
            }
        ]
    }


def export_headers(headers_env: Mapping[str, str]) -> dict[str, str]:
    """The export's HTTP headers, each read from the environment variable configured for it."""
    return {name: os.environ[variable] for name, variable in headers_env.items() if variable in os.environ}


class OtlpExporter:
    """Sends committed records to ``endpoint`` from a background thread."""

    def __init__(self, endpoint: str, *, headers: Mapping[str, str], service_name: str) -> None:
        self.endpoint = endpoint
        self._headers = {"Content-Type": "application/json", **headers}
        self._service_name = service_name
        self._queue: queue.Queue[Appended | object] = queue.Queue(QUEUE_BATCHES)
        self._thread: threading.Thread | None = None
        self.exported = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        """Start the export thread."""
        self._thread = threading.Thread(target=self._run, name="audit-otlp-export", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Export what is queued (within the client's timeout), then stop."""
        if self._thread is not None:
            self._put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def offer(self, appended: Appended) -> None:
        """Queue a committed batch for export; never blocks (the writer calls this)."""
        self._put(appended)

    def _put(self, item: Appended | object) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(dropped, Appended):
                    self.dropped += len(dropped.rows)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            stopping = False
            while not stopping:
                item = self._queue.get()
                if item is _STOP:
                    break
                rows = list(item.rows) if isinstance(item, Appended) else []
                while len(rows) < MAX_SPANS_PER_EXPORT:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stopping = True
                        break
                    if isinstance(more, Appended):
                        rows.extend(more.rows)
                if rows:
                    self._send(client, rows)

    def _send(self, client: httpx.Client, rows: list[dict[str, Any]]) -> None:
        try:
            response = client.post(
                self.endpoint,
                json=export_request(rows, self._service_name),
                headers=self._headers,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.failed += len(rows)
            LOG.warning("OTLP export of %d audit records to %s failed: %s", len(rows), self.endpoint, exc)
            return
        self.exported += len(rows)
