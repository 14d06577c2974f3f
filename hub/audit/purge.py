"""Destroying expired audit records (Archiefwet), with a declaration of destruction kept for each.

Per processing activity, the records of processings that ended longer ago than the activity's
retention period are destroyed, except those a legal hold keeps. Each activity's destruction is
one transaction holding the chain lock: the records, the caller identities no longer referenced,
the declaration (category, grounds, method, date, count, the chain range it covered) and, per run
of consecutive destroyed ids, the chain hash of the run's last record, so the rest still verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import batched
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import chain as hashes
from hub.audit import models
from hub.audit.holds import held_traces
from hub.audit.retention import RetentionPolicy, known_activities, policy_for
from hub.audit.store import AuditStore
from hub.settings import Settings

DELETE_CHUNK = 500
"""Ids per DELETE statement (SQLite allows a limited number of bound parameters)."""


@dataclass(slots=True)
class Destruction:
    """What a purge destroyed (or, in a dry run, would destroy) for one processing activity."""

    activity_id: str
    category: str
    retention: str
    cutoff: datetime
    record_count: int
    held_count: int
    declaration: dict[str, Any] | None = None
    """The declaration written (None in a dry run, or when nothing was due)."""


@dataclass(slots=True)
class PurgeReport:
    """The outcome of ``hub audit purge``."""

    dry_run: bool
    destructions: list[Destruction] = field(default_factory=list)
    unknown_activities: dict[str, int] = field(default_factory=dict)
    """Records of activities with no known retention: kept, and counted here."""


def runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers in sorted ``ids``."""
    found: list[tuple[int, int]] = []
    for record_id in ids:
        if found and found[-1][1] == record_id - 1:
            found[-1] = (found[-1][0], record_id)
        else:
            found.append((record_id, record_id))
    return found


def purge(
    store: AuditStore, settings: Settings, *, now: datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Destroy every record past its retention that no legal hold keeps."""
    now = now or datetime.now(UTC)
    report = PurgeReport(dry_run=dry_run)
    activities = known_activities(settings)
    table = models.records
    with store.engine.connect() as connection:
        present = connection.execute(
            sa.select(table.c.activity_id, sa.func.count()).group_by(table.c.activity_id)
        ).all()
    for activity_id, count in sorted(present):
        activity = activities.get(activity_id)
        policy = policy_for(activity) if activity is not None else None
        if policy is None:
            report.unknown_activities[activity_id] = int(count)
            continue
        if dry_run:
            with store.engine.connect() as connection:
                due, held = _due(connection, policy, now)
            destruction = _destruction(policy, now, len(due), held)
        else:
            destruction = _destroy(store, policy, now)
        if destruction.record_count or destruction.held_count:
            report.destructions.append(destruction)
    return report


def _destruction(policy: RetentionPolicy, now: datetime, count: int, held: int) -> Destruction:
    return Destruction(
        activity_id=policy.activity.id,
        category=policy.category,
        retention=str(policy.period),
        cutoff=hashes.to_millis(policy.cutoff(now)),
        record_count=count,
        held_count=held,
    )


def _due(connection: Connection, policy: RetentionPolicy, now: datetime) -> tuple[list[Any], int]:
    """The (id, chain hash, caller id) of the activity's expired records no hold keeps, and how
    many expired records holds keep."""
    table = models.records
    expired = sa.and_(table.c.activity_id == policy.activity.id, table.c.end_time < policy.cutoff(now))
    held = table.c.trace_id.in_(held_traces())
    due = connection.execute(
        sa.select(table.c.id, table.c.chain_hash, table.c.caller_id)
        .where(expired, sa.not_(held))
        .order_by(table.c.id)
    ).all()
    kept = connection.execute(sa.select(sa.func.count()).select_from(table).where(expired, held)).scalar_one()
    return list(due), int(kept)


def _destroy(store: AuditStore, policy: RetentionPolicy, now: datetime) -> Destruction:
    with store.begin_write() as connection:
        head = store.locked_head(connection)
        due, held = _due(connection, policy, now)
        destruction = _destruction(policy, now, len(due), held)
        if not due:
            return destruction
        number = head["last_declaration_id"] + 1
        connection.execute(sa.insert(models.in_progress).values(declaration_id=number))
        ids = [row.id for row in due]
        for chunk in batched(ids, DELETE_CHUNK):
            connection.execute(sa.delete(models.records).where(models.records.c.id.in_(chunk)))
        callers = _destroy_unreferenced_callers(connection, {row.caller_id for row in due} - {None})
        chain_hash = {row.id: row.chain_hash for row in due}
        destroyed = [(first, last, chain_hash[last]) for first, last in runs(ids)]
        declaration: dict[str, Any] = {
            "id": number,
            "destroyed_at": hashes.to_millis(now),
            "category": policy.category,
            "grounds": policy.grounds,
            "method": (
                f"Deleted from the audit database ({store.engine.dialect.name}) in one transaction; "
                "not recoverable through the hub. Kept per run of destroyed record ids: the chain "
                "hash of its last record, so that the remaining records still verify."
            ),
            "activity_id": policy.activity.id,
            "activity_uri": policy.activity.uri,
            "retention": str(policy.period),
            "cutoff": destruction.cutoff,
            "record_count": len(ids),
            "caller_count": callers,
            "held_count": held,
            "first_record_id": ids[0],
            "last_record_id": ids[-1],
            "previous_hash": head["last_declaration_hash"],
        }
        declaration["declaration_hash"] = hashes.declaration_hash(
            head["last_declaration_hash"], declaration, destroyed
        )
        connection.execute(sa.insert(models.declarations).values(**declaration))
        connection.execute(
            sa.insert(models.destroyed_ranges),
            [
                {"first_id": first, "last_id": last, "last_chain_hash": last_hash, "declaration_id": number}
                for first, last, last_hash in destroyed
            ],
        )
        connection.execute(sa.delete(models.in_progress))
        connection.execute(
            sa.update(models.chain)
            .where(models.chain.c.id == 1)
            .values(last_declaration_id=number, last_declaration_hash=declaration["declaration_hash"])
        )
    destruction.declaration = declaration
    return destruction


def _destroy_unreferenced_callers(connection: Connection, candidates: Iterable[int]) -> int:
    """Delete the identities among ``candidates`` that no remaining record links to."""
    callers, table = models.callers, models.records
    destroyed = 0
    for chunk in batched(sorted(candidates), DELETE_CHUNK):
        referenced = sa.exists().where(table.c.caller_id == callers.c.id)
        result = connection.execute(sa.delete(callers).where(callers.c.id.in_(chunk), sa.not_(referenced)))
        destroyed += result.rowcount
    return destroyed


def declarations(store: AuditStore) -> list[dict[str, Any]]:
    """Every declaration of destruction, oldest first."""
    query = sa.select(models.declarations).order_by(models.declarations.c.id)
    with store.engine.connect() as connection:
        return [models.row_dict(row) for row in connection.execute(query)]
