"""Records presented in the terms of the Logboek Dataverwerkingen (span fields and attributes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

ACTIVITY = "dpl.core.processing_activity_id"
SUBJECT = "dpl.core.data_subject_id"
SUBJECT_TYPE = "dpl.core.data_subject_id_type"
FOREIGN_SPAN = "dpl.core.foreign_operation.span_id"

# record column -> attribute name; standard names where OpenTelemetry has one, ``hub.*`` otherwise
_ATTRIBUTES = (
    ("activity_uri", ACTIVITY),
    ("data_subject_id", SUBJECT),
    ("data_subject_id_type", SUBJECT_TYPE),
    ("foreign_span_id", FOREIGN_SPAN),
    ("http_method", "http.request.method"),
    ("http_status", "http.response.status_code"),
    ("path", "url.path"),
    ("query", "url.query"),
    ("activity_id", "hub.processing_activity"),
    ("collection_id", "hub.collection_id"),
    ("result_count", "hub.result_count"),
    ("denied_reason", "hub.denied_reason"),
    ("caller_id", "hub.caller_id"),
    ("kind", "hub.record_kind"),
)


def attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's attributes; absent values are left out."""
    return {name: record[column] for column, name in _ATTRIBUTES if record.get(column) is not None}


def _time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_span(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as the read API shows it."""
    return {
        "id": record["id"],
        "trace_id": record["trace_id"],
        "span_id": record["span_id"],
        "parent_span_id": record["parent_span_id"],
        "name": record["name"],
        "start_time": _time(record["start_time"]),
        "end_time": _time(record["end_time"]),
        "status_code": record["status_code"],
        "attributes": attributes(record),
        "chain_hash": record["chain_hash"],
    }
