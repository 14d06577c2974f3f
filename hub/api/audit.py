"""Stewards' read access to the audit trail: ``/api/v1/audit``.

Reading the log is itself a processing, and is logged like every other. A query must name a
trace, a processing activity or a data subject (Logboek Dataverwerkingen); the data subject is
given in clear and looked up by its pseudonym, which is also all its own record keeps.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from hub.audit.errors import AuditUnavailable
from hub.audit.logboek import as_span
from hub.audit.processing import current_processing
from hub.audit.store import AuditStore, RecordFilter
from hub.audit.trail import AuditTrail
from hub.errors import BadRequest, NotFound
from hub.features.params import refuse_unknown

router = APIRouter(prefix="/audit", tags=["Audit"])

MAX_LIMIT = 1000
# lowerCamelCase query keys (NL API Design Rules /core/naming-conventions)
_PARAMETERS = frozenset({"traceId", "activityId", "dataSubjectId", "since", "until", "limit", "after"})
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


# async, or FastAPI would run it in a worker thread on every request
async def get_audit_trail(request: Request) -> AuditTrail:
    """The application's audit trail."""
    trail: AuditTrail = request.app.state.audit_trail
    return trail


Trail = Annotated[AuditTrail, Depends(get_audit_trail)]


def _store(trail: AuditTrail) -> AuditStore:
    if trail.store is None:
        raise AuditUnavailable("the audit log is not kept by this hub", cause="audit trail disabled")
    return trail.store


class AuditRecord(BaseModel):
    """A record: a Logboek Dataverwerkingen span with its attributes."""

    id: int = Field(description="Position in the hash chain")
    trace_id: str = Field(description="16 bytes, hex")
    span_id: str = Field(description="8 bytes, hex")
    parent_span_id: str | None = Field(description="The calling operation: the caller's, or the request's")
    name: str
    start_time: datetime
    end_time: datetime
    status_code: int = Field(description="0 unset, 2 error")
    attributes: dict[str, Any] = Field(
        description="`dpl.core.processing_activity_id`, `dpl.core.data_subject_id` (pseudonymised), "
        "`dpl.core.data_subject_id_type`, `dpl.core.foreign_operation.span_id`, HTTP and hub details; "
        "`hub.caller_id` links to the caller's identity"
    )
    chain_hash: str


class AuditRecords(BaseModel):
    """A page of records, oldest first."""

    records: list[AuditRecord]
    next: str | None = Field(description="The next page, when there may be one")


class CallerIdentity(BaseModel):
    """A caller's identity, kept apart from the records."""

    id: int
    subject: str | None
    issuer: str | None
    client: str | None
    roles: list[str]
    created_at: datetime


def _single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} may be given once")
    return values[0] if values else None


def _moment(request: Request, name: str) -> datetime | None:
    raw = _single(request, name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 date-time, such as 2026-11-23T12:00:00Z") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name} must state its time zone (Z or an offset)")
    return moment


@router.get("/records", summary="Read the audit log", response_model=AuditRecords)
async def read_records(
    request: Request,
    trail: Trail,
    trace_id: Annotated[str | None, Query(alias="traceId", description="32 hex digits")] = None,
    activity_id: Annotated[
        str | None, Query(alias="activityId", description="A processing activity's id or URI")
    ] = None,
    data_subject_id: Annotated[
        str | None,
        Query(alias="dataSubjectId", description="A data subject's id in clear; looked up by its pseudonym"),
    ] = None,
    since: Annotated[str | None, Query(description="Processings that ended at or after (RFC 3339)")] = None,
    until: Annotated[str | None, Query(description="Processings that started by then (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    after: Annotated[int, Query(ge=0, description="Continue after this record id")] = 0,
) -> dict[str, Any]:
    """Records of one trace, processing activity or data subject."""
    refuse_unknown(request.query_params, _PARAMETERS)
    trace_id, activity_id, data_subject_id = (
        _single(request, "traceId"),
        _single(request, "activityId"),
        _single(request, "dataSubjectId"),
    )
    if trace_id is None and activity_id is None and data_subject_id is None:
        raise BadRequest("name a traceId, an activityId or a dataSubjectId")
    if trace_id is not None and not _TRACE_ID.match(trace_id):
        raise BadRequest("traceId must be 32 lower-case hex digits")
    store = _store(trail)
    pseudonym = None
    if data_subject_id is not None:
        if not data_subject_id.strip():
            raise BadRequest("dataSubjectId must not be empty")
        pseudonym = trail.pseudonymiser.pseudonym(data_subject_id.strip())
        processing = current_processing()
        if processing is not None:
            # this lookup is a processing about that subject, and logged as one
            processing.pseudonymised_parameters.add("dataSubjectId")
            processing.note_data_subject(data_subject_id.strip())
    wanted = RecordFilter(
        trace_id=trace_id,
        activity=activity_id,
        data_subject_id=pseudonym,
        since=_moment(request, "since"),
        until=_moment(request, "until"),
        after_id=after,
        limit=limit,
    )
    rows = await run_in_threadpool(store.records, wanted)
    next_link = None
    if len(rows) == limit:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
        params.append(("after", str(rows[-1]["id"])))
        next_link = f"{trail.settings.server.base_url}{request.url.path}?{urlencode(params)}"
    return {"records": [as_span(row) for row in rows], "next": next_link}


@router.get("/callers/{caller_id}", summary="A caller identity", response_model=CallerIdentity)
async def read_caller(caller_id: int, request: Request, trail: Trail) -> dict[str, Any]:
    """The identity a record's ``hub.caller_id`` links to."""
    refuse_unknown(request.query_params, frozenset())
    row = await run_in_threadpool(_store(trail).caller, caller_id)
    if row is None:
        raise NotFound(f"no caller identity {caller_id}")
    return row
