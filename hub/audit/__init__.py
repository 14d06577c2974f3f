"""The audit trail of every processing (Logboek Dataverwerkingen), kept per the Archiefwet.

Other layers need only :func:`current_processing` and the :class:`Processing` it returns (or
the ``note_*`` hooks); see ``docs/audit.md`` for the design.
"""

from hub.audit.processing import (
    Processing,
    current_processing,
    note_collection,
    note_features,
    note_result_count,
)

__all__ = ["Processing", "current_processing", "note_collection", "note_features", "note_result_count"]
