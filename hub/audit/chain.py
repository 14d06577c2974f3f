"""The hash chain: canonical content of records, callers and declarations, and how they link.

A record's ``content_hash`` is SHA-256 over its canonical JSON (every column but the two
hashes, with the caller's identity hash in place of the bare caller id, so that a rewritten
identity shows too); its ``chain_hash`` is SHA-256 over the previous record's chain hash and its
own content hash. Record ids are dense chain positions, so a deleted record leaves a gap, an
inserted one breaks a link or lands beyond the head, and a changed one fails its content hash.
Anyone holding a copy can verify it: no secret is involved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
"""The chain hash before the first record (and the first declaration)."""

RECORD_FIELDS = (
    "id",
    "kind",
    "trace_id",
    "span_id",
    "parent_span_id",
    "foreign_span_id",
    "name",
    "start_time",
    "end_time",
    "status_code",
    "http_method",
    "http_status",
    "path",
    "query",
    "collection_id",
    "result_count",
    "activity_id",
    "activity_uri",
    "data_subject_id",
    "data_subject_id_type",
    "denied_reason",
    "caller_id",
)

CALLER_FIELDS = ("subject", "issuer", "client", "roles")

DECLARATION_FIELDS = (
    "id",
    "destroyed_at",
    "category",
    "grounds",
    "method",
    "activity_id",
    "activity_uri",
    "retention",
    "cutoff",
    "record_count",
    "caller_count",
    "held_count",
    "first_record_id",
    "last_record_id",
)


def to_millis(moment: datetime) -> datetime:
    """The instant in UTC, cut to whole milliseconds (what the log keeps, and what round-trips)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


# One encoder for every digest: json.dumps builds a new one per call when given options.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_RECORD_TIMES = ("start_time", "end_time")


def _iso(moment: datetime) -> str:
    # isoformat cuts (never rounds) to milliseconds, exactly as to_millis does
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def digest(content: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``content`` (sorted keys, no spaces, UTF-8, times as
    RFC 3339 UTC with milliseconds)."""
    canonical = {key: _iso(value) if isinstance(value, datetime) else value for key, value in content.items()}
    return hashlib.sha256(_ENCODER.encode(canonical).encode("utf-8")).hexdigest()


def link(previous: str, content_hash: str) -> str:
    """The chain hash following ``previous`` for content with ``content_hash``."""
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(content_hash)).hexdigest()


def record_hash(record: Mapping[str, Any], caller_hash: str | None) -> str:
    """The content hash of a record (a mapping with at least :data:`RECORD_FIELDS`)."""
    # the hot path of every append and of verify: times converted by name, not by type test
    content = {name: record[name] for name in RECORD_FIELDS}
    for name in _RECORD_TIMES:
        content[name] = _iso(content[name])
    content["caller"] = caller_hash
    return hashlib.sha256(_ENCODER.encode(content).encode("utf-8")).hexdigest()


def caller_hash(subject: str | None, issuer: str | None, client: str | None, roles: Iterable[str]) -> str:
    """The identity hash of a caller: equal identities share one row."""
    return digest({"subject": subject, "issuer": issuer, "client": client, "roles": sorted(roles)})


def declaration_hash(
    previous: str, declaration: Mapping[str, Any], ranges: Iterable[tuple[int, int, str]]
) -> str:
    """The hash of a declaration, over its fields, the runs it destroyed and the previous one."""
    content: dict[str, Any] = {name: declaration[name] for name in DECLARATION_FIELDS}
    content["ranges"] = [list(run) for run in sorted(ranges)]
    return link(previous, digest(content))
