"""The processing a request is, as the audit record of it will tell it.

The audit middleware creates one :class:`Processing` per request and makes it reachable through
:func:`current_processing` before the application runs. The layers that learn something about
the request fill it in: access control (who calls, for which purpose, and a refusal), the
feature layer (which collection, how many features, about which data subjects). The middleware
turns it into the record when the response starts. Handlers only mutate the object; only the
middleware sets the context variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.audit.tracecontext import TraceParent
from hub.settings import ProcessingActivity

_CURRENT: ContextVar[Processing | None] = ContextVar("hub_audit_processing", default=None)


@dataclass(slots=True, eq=False)
class Processing:
    """What one request does to data; mutable while the request runs."""

    trace_id: str
    span_id: str
    foreign: TraceParent | None
    """The caller's operation, from its ``traceparent``; None when it sent none (or a bad one)."""
    started: datetime
    method: str
    path: str
    query_string: str

    # set by the access-control layer
    caller_subject: str | None = None
    caller_issuer: str | None = None
    caller_client: str | None = None
    caller_roles: tuple[str, ...] = ()
    activity: ProcessingActivity | None = None
    """The purpose the request named, already checked; None: the configured default."""
    denied_reason: str | None = None

    # set by the feature layer (and the audit read API)
    collection_id: str | None = None
    result_count: int | None = None
    data_subject_type: str | None = None
    """What identifies the data subjects: the registration's ``subject_field``."""
    data_subjects: dict[str, int] = field(default_factory=dict)
    """Data subject ids in clear, with the number of returned features about each; never stored."""
    pseudonymised_parameters: set[str] = field(default_factory=set)
    """Query parameters whose values identify a data subject: logged pseudonymised."""

    def note_collection(self, collection_id: str, subject_field: str | None) -> None:
        """The request reads this collection, whose features identify subjects by ``subject_field``."""
        self.collection_id = collection_id
        self.data_subject_type = subject_field
        if subject_field:
            self.pseudonymised_parameters.add(subject_field)

    def note_features(self, features: Iterable[Mapping[str, Any]]) -> None:
        """Count the data subjects of features the response carries (before any projection)."""
        subject_field = self.data_subject_type
        if not subject_field or self.collection_id is None:
            return
        for feature in features:
            value = (feature.get("properties") or {}).get(subject_field)
            if value is None or isinstance(value, (dict, list)):
                continue
            subject = str(value).strip()
            if subject:
                self.data_subjects[subject] = self.data_subjects.get(subject, 0) + 1

    def note_data_subject(self, subject: str, subject_type: str | None = None) -> None:
        """The request concerns this data subject (given in clear; the record pseudonymises it)."""
        self.data_subject_type = subject_type or self.data_subject_type
        self.data_subjects[subject] = self.data_subjects.get(subject, 0) + 1


def current_processing() -> Processing | None:
    """The processing of the request being handled, or None outside a logged request."""
    return _CURRENT.get()


def note_collection(collection_id: str, subject_field: str | None) -> None:
    """Feature-layer hook: the current request reads this collection."""
    processing = _CURRENT.get()
    if processing is not None:
        processing.note_collection(collection_id, subject_field)


def note_features(features: Iterable[Mapping[str, Any]]) -> None:
    """Feature-layer hook: the current response carries these features (their subjects count)."""
    processing = _CURRENT.get()
    if processing is not None:
        processing.note_features(features)


def note_result_count(count: int) -> None:
    """Feature-layer hook: how many features the current response carries."""
    processing = _CURRENT.get()
    if processing is not None:
        processing.result_count = count


def bind(processing: Processing | None) -> Any:
    """Make ``processing`` current (for the middleware only); returns the token to reset with."""
    return _CURRENT.set(processing)


def unbind(token: Any) -> None:
    """Restore the processing that was current before :func:`bind`."""
    _CURRENT.reset(token)
