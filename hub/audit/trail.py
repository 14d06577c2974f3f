"""The audit trail of a running hub: which requests are processings, and their records.

What is a processing (and so gets a record):

- every request that reads features: ``/ogc/v1/collections/{id}/items`` and
  ``/items/{featureId}``, in any format, whatever the outcome;
- every call of the management API (``/api/v1/...``), the audit read API included, except its
  OpenAPI document and documentation page;
- every refused request (401 or 403, or one access control marked as denied), anywhere.

Metadata (landing pages, conformance, collection descriptions, queryables, OpenAPI documents)
and CORS preflight requests are not processings of data and are not logged.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool

from hub.audit.errors import AuditUnavailable
from hub.audit.models import KIND_REQUEST, KIND_SUBJECT
from hub.audit.otlp import export_headers
from hub.audit.processing import Processing
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.retention import configuration_problems, default_activity
from hub.audit.store import AuditStore, CallerIdentity, RecordDraft
from hub.audit.tracecontext import new_span_id
from hub.audit.writer import AuditWriter
from hub.audit.writer_process import WriterConfig
from hub.catalogue.database import database_url
from hub.errors import ConfigurationError
from hub.settings import Settings

LOG = logging.getLogger(__name__)

_FEATURES = re.compile(r"^/ogc/v1/collections/[^/]+/items(?:/[^/]+)?$")
_MANAGEMENT = "/api/v1/"
NOT_PROCESSINGS = frozenset({"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"})

STATUS_UNSET = 0
STATUS_ERROR = 2

CREDENTIAL_PARAMETERS = frozenset({"token", "access_token", "key", "api_key", "apikey", "code"})
"""Query parameters some clients put credentials in; their values never reach the log."""
REDACTED = "[redacted]"


def is_processing(method: str, path: str, status: int, processing: Processing) -> bool:
    """Whether this request gets a record (see the module's documentation)."""
    if status in (401, 403) or processing.denied_reason is not None:
        return True
    if method == "OPTIONS":
        return False
    if path.startswith(_MANAGEMENT):
        return path not in NOT_PROCESSINGS
    return _FEATURES.match(path) is not None


class AuditTrail:
    """The audit trail of one application: created with it, started in its lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = settings.audit.enabled
        self.default_activity = default_activity(settings)
        self.pseudonymiser = Pseudonymiser.from_environment(settings.audit.pseudonym_key_env)
        self.store: AuditStore | None = None
        self.writer: AuditWriter | None = None

    @property
    def database_url(self) -> str:
        """Where the records are kept: ``audit.database_url`` or the catalogue's database."""
        return self.settings.audit.database_url or self.settings.database_url

    async def start(self) -> None:
        """Open (and migrate) the audit database and launch the writer process, which also
        exports to OTLP if configured; :meth:`ready` waits for it."""
        if not self.enabled:
            LOG.warning("the audit trail is disabled: processings are not logged")
            return
        wanted = self.settings.audit.default_activity
        if wanted is not None and self.default_activity.id != wanted:
            # a typo here would file every request under another activity: refuse to start
            raise ConfigurationError(f"audit.default_activity {wanted!r} is not one of processing_activities")
        if _in_memory(self.database_url):
            # the writer process would open a database of its own, and the log must outlive the hub
            raise ConfigurationError(
                "the audit log needs a database file or server, not an in-memory SQLite database "
                "(set audit.database_url)"
            )
        for problem in configuration_problems(self.settings):
            LOG.warning("audit trail: %s", problem)
        self.store = await run_in_threadpool(
            partial(AuditStore.open, self.database_url, fsync=self.settings.audit.fsync)
        )
        audit = self.settings.audit
        config = WriterConfig(
            database_url=self.database_url,
            fsync=audit.fsync,
            otlp_endpoint=audit.otlp_endpoint,
            otlp_headers=export_headers(audit.otlp_headers_env),
        )
        # the server goes on starting while the process starts (see ready)
        self.writer = AuditWriter(config, timeout=audit.write_timeout)
        self.writer.launch()

    async def ready(self) -> None:
        """Wait until the writer process :meth:`start` launched is ready for records."""
        if self.writer is not None:
            await self.writer.ready()

    async def stop(self) -> None:
        """Write what is queued, stop the writer process and close the database."""
        writer, store = self.writer, self.store
        self.writer = self.store = None
        if writer is not None:
            await writer.stop()
        if store is not None:
            await run_in_threadpool(store.close)

    async def log(self, processing: Processing, status: int, name: str) -> None:
        """Store the records of a processing; AuditUnavailable when it cannot be logged."""
        writer = self.writer
        if writer is None:
            raise AuditUnavailable("the audit log is not running", cause="not started")
        try:
            drafts = self.drafts(processing, status, name)
        except AuditUnavailable as exc:
            # the refusal itself is still a processing to log, without the subjects it lacks
            processing.data_subjects.clear()
            processing.denied_reason = exc.detail
            with contextlib.suppress(AuditUnavailable):
                await writer.write(self.drafts(processing, exc.status, name))
            raise
        await writer.write(drafts)

    def drafts(self, processing: Processing, status: int, name: str) -> list[RecordDraft]:
        """The records of a processing: the request's own, and one per data subject when it
        concerned several (a record names at most one)."""
        activity = processing.activity or self.default_activity
        ended = datetime.now(UTC)
        subjects = [
            (self.pseudonymiser.pseudonym(subject), count)
            for subject, count in processing.data_subjects.items()
        ]
        caller = None
        if processing.caller_subject is not None or processing.caller_client is not None:
            caller = CallerIdentity(
                processing.caller_subject,
                processing.caller_issuer,
                processing.caller_client,
                tuple(processing.caller_roles),
            )
        foreign = processing.foreign.span_id if processing.foreign else None
        request = RecordDraft(
            kind=KIND_REQUEST,
            trace_id=processing.trace_id,
            span_id=processing.span_id,
            parent_span_id=foreign,
            foreign_span_id=foreign,
            name=name,
            start_time=processing.started,
            end_time=ended,
            status_code=STATUS_ERROR if status >= 500 else STATUS_UNSET,
            http_method=processing.method,
            http_status=status,
            path=processing.path,
            query=self._logged_query(processing),
            collection_id=processing.collection_id,
            result_count=processing.result_count,
            activity_id=activity.id,
            activity_uri=activity.uri,
            data_subject_id=subjects[0][0] if len(subjects) == 1 else None,
            data_subject_id_type=processing.data_subject_type if len(subjects) == 1 else None,
            denied_reason=processing.denied_reason,
            caller=caller,
        )
        drafts = [request]
        if len(subjects) > 1:
            for pseudonym, count in subjects:
                # the request's record, as a child span naming one subject
                drafts.append(
                    replace(
                        request,
                        kind=KIND_SUBJECT,
                        span_id=new_span_id(),
                        parent_span_id=processing.span_id,
                        foreign_span_id=None,
                        name=f"{name}: data subject",
                        query=None,
                        result_count=count,
                        data_subject_id=pseudonym,
                        data_subject_id_type=processing.data_subject_type,
                    )
                )
        return drafts

    def _logged_query(self, processing: Processing) -> str | None:
        """The query string as logged: credentials redacted, subject ids pseudonymised."""
        raw = processing.query_string
        if not raw:
            return None
        sensitive = CREDENTIAL_PARAMETERS | processing.pseudonymised_parameters
        if not any(name in raw for name in sensitive):
            return raw  # the common case, without parsing
        pairs = parse_qsl(raw, keep_blank_values=True)
        if not any(key in sensitive for key, _ in pairs):
            return raw
        logged = []
        for key, value in pairs:
            if key in CREDENTIAL_PARAMETERS:
                value = REDACTED
            elif key in processing.pseudonymised_parameters and value:
                # without a key a subject id can only be left out
                available = self.pseudonymiser.available
                value = f"pseudonym:{self.pseudonymiser.pseudonym(value)}" if available else REDACTED
            logged.append((key, value))
        return urlencode(logged)


def _in_memory(url: str) -> bool:
    """Whether ``url`` names an SQLite database that lives in one process's memory only."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    name = parsed.database or ""
    return name in ("", ":memory:") or "mode=memory" in name or parsed.query.get("mode") == "memory"
