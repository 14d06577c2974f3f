"""Tables of the audit trail, in the catalogue's database unless configured apart.

- ``audit_records``: one row per processing (Logboek Dataverwerkingen span), append-only and
  hash-chained in ``id`` order; ids are the chain positions, assigned by the writer.
- ``audit_callers``: caller identities, apart from the records, which link to them by id.
- ``audit_chain``: the one row holding the chain's head, so that truncation shows and several
  writers (processes) append to one chain.
- ``audit_declarations`` and ``audit_destroyed_ranges``: the kept declarations of destruction,
  and the runs of record ids each destroyed with the chain hash of the run's last record, which
  is how the chain still verifies across destroyed records.
- ``audit_legal_holds``: holds that block destruction.
- ``audit_destructions_in_progress``: a row exists only inside a purge's transaction; the
  database's triggers refuse deleting records or callers without one (and refuse every update).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.catalogue.models import NAMING_CONVENTION, UTCDateTime

HASH = sa.String(64)
"""A SHA-256 or HMAC-SHA-256 digest in lower-case hex."""

KIND_REQUEST = "request"
"""A record of a whole request: exactly one per logged request."""
KIND_SUBJECT = "data-subject"
"""A child record naming one of several data subjects a request concerned."""


class AuditBase(DeclarativeBase):
    """Declarative base of the audit tables (migrated in the catalogue's chain)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class AuditRecord(AuditBase):
    """One processing: the fields of a Logboek Dataverwerkingen span, with the HTTP exchange."""

    __tablename__ = "audit_records"
    __table_args__ = (
        sa.Index("ix_audit_records_activity_id_end_time", "activity_id", "end_time"),
        sa.CheckConstraint(f"kind IN ('{KIND_REQUEST}', '{KIND_SUBJECT}')", name="kind"),
        sa.CheckConstraint("status_code IN (0, 1, 2)", name="status_code"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(sa.String(16))
    trace_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    span_id: Mapped[str] = mapped_column(sa.String(16))
    parent_span_id: Mapped[str | None] = mapped_column(sa.String(16))
    foreign_span_id: Mapped[str | None] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(255))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int] = mapped_column(sa.SmallInteger)
    http_method: Mapped[str] = mapped_column(sa.String(16))
    http_status: Mapped[int] = mapped_column(sa.SmallInteger)
    path: Mapped[str] = mapped_column(sa.Text)
    query: Mapped[str | None] = mapped_column(sa.Text)
    collection_id: Mapped[str | None] = mapped_column(sa.String(255))
    result_count: Mapped[int | None] = mapped_column(sa.Integer)
    activity_id: Mapped[str] = mapped_column(sa.String(64))
    activity_uri: Mapped[str] = mapped_column(sa.Text)
    data_subject_id: Mapped[str | None] = mapped_column(HASH, index=True)
    data_subject_id_type: Mapped[str | None] = mapped_column(sa.String(255))
    denied_reason: Mapped[str | None] = mapped_column(sa.Text)
    caller_id: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    content_hash: Mapped[str] = mapped_column(HASH)
    chain_hash: Mapped[str] = mapped_column(HASH)


class AuditCaller(AuditBase):
    """A caller identity as its token stated it; shared by every record of the same identity."""

    __tablename__ = "audit_callers"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    subject: Mapped[str | None] = mapped_column(sa.Text)
    issuer: Mapped[str | None] = mapped_column(sa.Text)
    client: Mapped[str | None] = mapped_column(sa.Text)
    roles: Mapped[list[str]] = mapped_column(sa.JSON)
    identity_hash: Mapped[str] = mapped_column(HASH, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditChain(AuditBase):
    """The head of the record chain and of the declaration chain; a single row, id 1."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    last_record_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_chain_hash: Mapped[str] = mapped_column(HASH)
    last_caller_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_declaration_id: Mapped[int] = mapped_column(sa.Integer)
    last_declaration_hash: Mapped[str] = mapped_column(HASH)


class AuditDeclaration(AuditBase):
    """A declaration of destruction (Archiefwet): what was destroyed, why, how and when."""

    __tablename__ = "audit_declarations"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    destroyed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    category: Mapped[str] = mapped_column(sa.String(32))
    grounds: Mapped[str] = mapped_column(sa.Text)
    method: Mapped[str] = mapped_column(sa.Text)
    activity_id: Mapped[str] = mapped_column(sa.String(64))
    activity_uri: Mapped[str] = mapped_column(sa.Text)
    retention: Mapped[str] = mapped_column(sa.String(64))
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    record_count: Mapped[int] = mapped_column(sa.Integer)
    caller_count: Mapped[int] = mapped_column(sa.Integer)
    held_count: Mapped[int] = mapped_column(sa.Integer)
    first_record_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_record_id: Mapped[int] = mapped_column(sa.BigInteger)
    previous_hash: Mapped[str] = mapped_column(HASH)
    declaration_hash: Mapped[str] = mapped_column(HASH)


class AuditDestroyedRange(AuditBase):
    """A run of consecutive record ids one declaration destroyed, and the run's last chain hash."""

    __tablename__ = "audit_destroyed_ranges"

    first_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_chain_hash: Mapped[str] = mapped_column(HASH)
    declaration_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("audit_declarations.id"), index=True
    )


class AuditLegalHold(AuditBase):
    """A legal hold: records matching every criterion it sets (and their traces) are kept."""

    __tablename__ = "audit_legal_holds"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    activity_id: Mapped[str | None] = mapped_column(sa.String(64))
    data_subject_id: Mapped[str | None] = mapped_column(HASH)
    trace_id: Mapped[str | None] = mapped_column(sa.String(32))
    from_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    until_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditDestructionInProgress(AuditBase):
    """Present only inside a purge's transaction: the triggers let deletes through while it is."""

    __tablename__ = "audit_destructions_in_progress"

    declaration_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)


AUDIT_TABLES = frozenset(AuditBase.metadata.tables)
"""Names of the audit tables, which a comparison of the catalogue's own models leaves out."""

records: sa.Table = AuditRecord.__table__  # type: ignore[assignment]
callers: sa.Table = AuditCaller.__table__  # type: ignore[assignment]
chain: sa.Table = AuditChain.__table__  # type: ignore[assignment]
declarations: sa.Table = AuditDeclaration.__table__  # type: ignore[assignment]
destroyed_ranges: sa.Table = AuditDestroyedRange.__table__  # type: ignore[assignment]
legal_holds: sa.Table = AuditLegalHold.__table__  # type: ignore[assignment]
in_progress: sa.Table = AuditDestructionInProgress.__table__  # type: ignore[assignment]


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict keyed by column name."""
    return dict(row._mapping)
