"""Alembic environment of the catalogue, driven by :mod:`hub.catalogue.database` (no ini file)."""

from __future__ import annotations

from alembic import context

from hub.audit.models import AuditBase
from hub.catalogue.database import include_object
from hub.catalogue.models import Base

config = context.config


def run_online() -> None:
    """Migrate through the connection (and transaction) the caller opened."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run catalogue migrations through hub.catalogue.database.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=[Base.metadata, AuditBase.metadata],
        include_object=include_object,
        compare_type=True,
        # The catalogue's SQLite engine issues its own BEGIN, so its DDL is transactional too.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Write the SQL of the migrations, for a DBA to review and run."""
    url = config.attributes.get("database_url")
    if url is None:
        raise RuntimeError("offline migrations need the database URL to pick the SQL dialect")
    context.configure(
        url=url,
        target_metadata=[Base.metadata, AuditBase.metadata],
        include_object=include_object,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
