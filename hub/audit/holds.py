"""Legal holds: records that must not be destroyed while an investigation or dispute runs.

A hold sets one or more criteria (processing activity, data subject, trace, time range); a record
matching all of them is held, and with it every record of its trace, so that a processing is
kept whole. Released holds stay listed with their release time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.audit import models
from hub.audit.store import AuditStore
from hub.errors import BadRequest, NotFound


@dataclass(frozen=True, slots=True)
class HoldCriteria:
    """What a hold keeps; at least one criterion is set."""

    activity_id: str | None = None
    data_subject_id: str | None = None
    """A pseudonym."""
    trace_id: str | None = None
    from_time: datetime | None = None
    until_time: datetime | None = None

    def empty(self) -> bool:
        """Whether no criterion is set (such a hold would keep everything: refused)."""
        criteria = (self.activity_id, self.data_subject_id, self.trace_id, self.from_time, self.until_time)
        return all(value is None for value in criteria)


def add_hold(store: AuditStore, reason: str, criteria: HoldCriteria) -> int:
    """Place a hold; returns its id."""
    if not reason.strip():
        raise BadRequest("a legal hold needs a reason")
    if criteria.empty():
        raise BadRequest("a legal hold needs an activity, a data subject, a trace or a time range")
    if criteria.from_time and criteria.until_time and criteria.from_time > criteria.until_time:
        raise BadRequest("the hold's time range ends before it starts")
    with store.begin_write() as connection:
        inserted = connection.execute(
            sa.insert(models.legal_holds).values(
                reason=reason.strip(),
                activity_id=criteria.activity_id,
                data_subject_id=criteria.data_subject_id,
                trace_id=criteria.trace_id,
                from_time=criteria.from_time,
                until_time=criteria.until_time,
                created_at=datetime.now(UTC),
            )
        )
        return int(inserted.inserted_primary_key[0])


def release_hold(store: AuditStore, hold_id: int) -> None:
    """Release a hold: the records it kept may be destroyed at the next purge."""
    holds = models.legal_holds
    with store.begin_write() as connection:
        released = connection.execute(
            sa.update(holds)
            .where(holds.c.id == hold_id, holds.c.released_at.is_(None))
            .values(released_at=datetime.now(UTC))
        )
        if released.rowcount != 1:
            raise NotFound(f"no legal hold {hold_id} in force")


def list_holds(store: AuditStore, *, released: bool = False) -> list[dict[str, Any]]:
    """Holds in force (and released ones too with ``released``), oldest first."""
    holds = models.legal_holds
    query = sa.select(holds).order_by(holds.c.id)
    if not released:
        query = query.where(holds.c.released_at.is_(None))
    with store.engine.connect() as connection:
        return [models.row_dict(row) for row in connection.execute(query)]


def held_traces() -> sa.Select[Any]:
    """The trace ids a hold in force keeps (a subquery for the purge)."""
    record = models.records.alias("held_record")
    hold = models.legal_holds
    matches = sa.and_(
        hold.c.released_at.is_(None),
        sa.or_(hold.c.activity_id.is_(None), hold.c.activity_id == record.c.activity_id),
        sa.or_(hold.c.data_subject_id.is_(None), hold.c.data_subject_id == record.c.data_subject_id),
        sa.or_(hold.c.trace_id.is_(None), hold.c.trace_id == record.c.trace_id),
        sa.or_(hold.c.from_time.is_(None), record.c.end_time >= hold.c.from_time),
        sa.or_(hold.c.until_time.is_(None), record.c.start_time <= hold.c.until_time),
    )
    return sa.select(record.c.trace_id).join(hold, matches)
