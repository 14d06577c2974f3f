"""The audit database: appending chained records, and reading them back.

Synchronous on purpose: the web server appends through the single writer thread of
:mod:`hub.audit.writer` and reads through a threadpool; the CLI uses it directly. Appends from
several processes (workers, another hub on the same database) form one chain: each batch takes
the chain head's lock (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
reads the head, and moves it in the same transaction as its records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from hub.audit import chain as hashes
from hub.audit import models
from hub.catalogue.database import WRITE, create_engine, upgrade_engine


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """Who called, as the token said: kept apart from the records, linked by id."""

    subject: str | None
    issuer: str | None
    client: str | None
    roles: tuple[str, ...] = ()

    @property
    def identity_hash(self) -> str:
        """What equal identities share (and what the records' content hashes cover)."""
        return hashes.caller_hash(self.subject, self.issuer, self.client, self.roles)


@dataclass(slots=True)
class RecordDraft:
    """A record before it has its place in the chain (id and hashes)."""

    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    foreign_span_id: str | None
    name: str
    start_time: datetime
    end_time: datetime
    status_code: int
    http_method: str
    http_status: int
    path: str
    query: str | None
    collection_id: str | None
    result_count: int | None
    activity_id: str
    activity_uri: str
    data_subject_id: str | None
    data_subject_id_type: str | None
    denied_reason: str | None
    caller: CallerIdentity | None = None

    def values(self) -> dict[str, Any]:
        """The columns this draft fills, times cut to milliseconds."""
        own = (name for name in hashes.RECORD_FIELDS if name not in ("id", "caller_id"))
        values = {name: getattr(self, name) for name in own}
        values["start_time"] = hashes.to_millis(self.start_time)
        values["end_time"] = hashes.to_millis(self.end_time)
        return values


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What the read API asks for; at least one of the first three is set."""

    trace_id: str | None = None
    activity: str | None = None
    """An activity's id or its URI."""
    data_subject_id: str | None = None
    """A pseudonym."""
    since: datetime | None = None
    until: datetime | None = None
    after_id: int = 0
    limit: int = 100


@dataclass(slots=True)
class Appended:
    """Where a batch landed in the chain."""

    first_id: int
    last_id: int
    chain_hash: str
    rows: list[dict[str, Any]] = field(default_factory=list)


class AuditStore:
    """The audit tables of one database, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self.postgresql = engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, database_url: str | URL) -> AuditStore:
        """Open the audit tables at ``database_url``, migrating the database first."""
        engine = create_engine(database_url)
        try:
            upgrade_engine(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The engine of the audit database."""
        return self._engine

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def begin_write(self) -> Any:
        """A write transaction (SQLite: the write lock is taken at once)."""
        return self._writer.begin()

    def locked_head(self, connection: Connection) -> dict[str, Any]:
        """The chain head, locked until ``connection``'s transaction ends."""
        query = sa.select(models.chain).where(models.chain.c.id == 1).with_for_update()
        row = connection.execute(query).one()
        return models.row_dict(row)

    def append(self, drafts: Sequence[RecordDraft]) -> Appended:
        """Append records as one atomic batch at the chain's head."""
        with self.begin_write() as connection:
            head = self.locked_head(connection)
            caller_ids = self._caller_ids(connection, head, drafts)
            previous = head["last_chain_hash"]
            next_id = head["last_record_id"] + 1
            rows = []
            for draft in drafts:
                row = draft.values()
                row["id"] = next_id
                identity = draft.caller.identity_hash if draft.caller else None
                row["caller_id"] = caller_ids[identity] if identity else None
                row["content_hash"] = hashes.record_hash(row, identity)
                row["chain_hash"] = previous = hashes.link(previous, row["content_hash"])
                rows.append(row)
                next_id += 1
            if rows:
                connection.execute(sa.insert(models.records), rows)
            connection.execute(
                sa.update(models.chain)
                .where(models.chain.c.id == 1)
                .values(
                    last_record_id=next_id - 1,
                    last_chain_hash=previous,
                    last_caller_id=max([head["last_caller_id"], *caller_ids.values()]),
                )
            )
        return Appended(head["last_record_id"] + 1, next_id - 1, previous, rows)

    def _caller_ids(
        self, connection: Connection, head: dict[str, Any], drafts: Sequence[RecordDraft]
    ) -> dict[str, int]:
        """Ids of the batch's caller identities, inserting those not stored yet."""
        wanted = {d.caller.identity_hash: d.caller for d in drafts if d.caller is not None}
        if not wanted:
            return {}
        found = connection.execute(
            sa.select(models.callers.c.identity_hash, models.callers.c.id).where(
                models.callers.c.identity_hash.in_(wanted)
            )
        )
        ids: dict[str, int] = {identity: caller_id for identity, caller_id in found}
        new = []
        next_id = head["last_caller_id"] + 1
        now = datetime.now(UTC)
        for identity, caller in wanted.items():
            if identity in ids:
                continue
            ids[identity] = next_id
            new.append(
                {
                    "id": next_id,
                    "subject": caller.subject,
                    "issuer": caller.issuer,
                    "client": caller.client,
                    "roles": sorted(caller.roles),
                    "identity_hash": identity,
                    "created_at": now,
                }
            )
            next_id += 1
        if new:
            connection.execute(sa.insert(models.callers), new)
        return ids

    def head(self) -> dict[str, Any]:
        """The chain head as stored."""
        with self._engine.connect() as connection:
            return models.row_dict(connection.execute(sa.select(models.chain)).one())

    def records(self, wanted: RecordFilter) -> list[dict[str, Any]]:
        """Records matching every criterion set, oldest first, at most ``limit``."""
        table = models.records
        query = sa.select(table).where(table.c.id > wanted.after_id)
        if wanted.trace_id is not None:
            query = query.where(table.c.trace_id == wanted.trace_id)
        if wanted.activity is not None:
            query = query.where(
                sa.or_(table.c.activity_id == wanted.activity, table.c.activity_uri == wanted.activity)
            )
        if wanted.data_subject_id is not None:
            query = query.where(table.c.data_subject_id == wanted.data_subject_id)
        if wanted.since is not None:
            query = query.where(table.c.end_time >= wanted.since)
        if wanted.until is not None:
            query = query.where(table.c.start_time <= wanted.until)
        query = query.order_by(table.c.id).limit(wanted.limit)
        with self._engine.connect() as connection:
            return [models.row_dict(row) for row in connection.execute(query)]

    def caller(self, caller_id: int) -> dict[str, Any] | None:
        """A caller identity by id, or None."""
        query = sa.select(models.callers).where(models.callers.c.id == caller_id)
        with self._engine.connect() as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else models.row_dict(row)

    def count(self, **equal: Any) -> int:
        """How many records have these column values (for operations and tests)."""
        table = models.records
        query = sa.select(sa.func.count()).select_from(table)
        for name, value in equal.items():
            query = query.where(table.c[name] == value)
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
