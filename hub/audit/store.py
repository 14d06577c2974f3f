"""The audit database: appending chained records, and reading them back.

Synchronous on purpose: the web server appends through its writer process
(:mod:`hub.audit.writer_process`) and reads through a threadpool; the CLI uses it directly. Appends from
several processes (workers, another hub on the same database) form one chain: each batch takes
the chain head's lock (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
reads the head, and moves it in the same transaction as its records.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
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
        return _identity_hash(self.subject, self.issuer, self.client, self.roles)


@functools.lru_cache(maxsize=4096)
def _identity_hash(
    subject: str | None, issuer: str | None, client: str | None, roles: tuple[str, ...]
) -> str:
    # a few callers make most requests: their hash is needed twice for every record they cause
    return hashes.caller_hash(subject, issuer, client, roles)


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
        values = {name: getattr(self, name) for name in _DRAFT_FIELDS}
        values["start_time"] = hashes.to_millis(self.start_time)
        values["end_time"] = hashes.to_millis(self.end_time)
        return values


_DRAFT_FIELDS = tuple(name for name in hashes.RECORD_FIELDS if name not in ("id", "caller_id"))


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

    def __init__(self, engine: Engine, *, fsync: bool = True) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self.postgresql = engine.dialect.name == "postgresql"
        self.fsync = fsync
        self._sql = _AppendStatements(engine)
        if engine.dialect.name == "sqlite":
            # In WAL mode NORMAL still commits atomically and survives the process being killed;
            # only FULL waits for the disk (fsync) on every commit.
            level = "FULL" if fsync else "NORMAL"

            @event.listens_for(engine, "connect")
            def _synchronous(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute(f"PRAGMA synchronous = {level}")
                finally:
                    cursor.close()

    @classmethod
    def open(cls, database_url: str | URL, *, fsync: bool = True) -> AuditStore:
        """Open the audit tables at ``database_url``, migrating the database first."""
        engine = create_engine(database_url)
        try:
            upgrade_engine(engine)
            # the migration's connections were opened before the store set its pragmas
            engine.dispose()
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, fsync=fsync)

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

    def writer_connection(self) -> Connection:
        """A connection for a long-lived writer to pass to :meth:`append` (no pool trip per batch)."""
        return self._writer.connect()

    def append(self, drafts: Sequence[RecordDraft], *, connection: Connection | None = None) -> Appended:
        """Append records as one atomic batch at the chain's head."""
        if connection is None:
            with self._writer.connect() as own:
                return self.append(drafts, connection=own)
        sql = self._sql
        with connection.begin():
            if self.postgresql and not self.fsync:
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            last_id, previous, last_caller = connection.exec_driver_sql(sql.head).one()
            caller_ids = self._caller_ids(connection, last_caller, drafts)
            next_id = last_id + 1
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
                # the statement is written out once: per record, Core's compiling and parameter
                # handling would cost more than the rest of the append
                connection.exec_driver_sql(sql.insert, [sql.parameters(row) for row in rows])
            connection.exec_driver_sql(
                sql.move_head, (next_id - 1, previous, max([last_caller, *caller_ids.values()]))
            )
        return Appended(last_id + 1, next_id - 1, previous, rows)

    def _caller_ids(
        self, connection: Connection, last_caller: int, drafts: Sequence[RecordDraft]
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
        next_id = last_caller + 1
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


class _AppendStatements:
    """The SQL of an append in the driver's own parameter style, with the column conversions
    Core would apply, so that stored values are the same either way."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        table = models.records
        self.columns = [column.name for column in table.columns]
        self.insert = (
            f"INSERT INTO {table.name} ({', '.join(self.columns)}) "
            f"VALUES ({', '.join(marker for _ in self.columns)})"
        )
        lock = " FOR UPDATE" if dialect.name == "postgresql" else ""
        self.head = (
            f"SELECT last_record_id, last_chain_hash, last_caller_id FROM audit_chain WHERE id = 1{lock}"
        )
        self.move_head = (
            f"UPDATE audit_chain SET last_record_id = {marker}, last_chain_hash = {marker}, "
            f"last_caller_id = {marker} WHERE id = 1"
        )
        self._convert = [
            (position, processor)
            for position, column in enumerate(table.columns)
            if (processor := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """A row's values in column order, converted for the driver."""
        values = [row[name] for name in self.columns]
        for position, processor in self._convert:
            values[position] = processor(values[position])
        return tuple(values)
