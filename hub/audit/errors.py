"""The audit trail's one error: a processing that cannot be logged is refused (503)."""

from __future__ import annotations

from hub.errors import ServiceUnavailable


class AuditUnavailable(ServiceUnavailable):
    """The record of a processing cannot be written, so the processing is not done."""

    title = "Audit log unavailable"
    type_slug = "audit-unavailable"

    def __init__(self, detail: str, *, cause: str | None = None) -> None:
        super().__init__(detail)
        self.cause = cause
        """What went wrong, for the hub's own log; never shown to the caller."""
