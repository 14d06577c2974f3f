"""The catalogue database: engines tuned per backend, and schema migrations run from code.

Migrations live in this package (``hub/catalogue/migrations``) and are driven by an alembic
``Config`` built here, so an installed hub needs no ``alembic.ini``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from hub.audit.models import AUDIT_TABLES
from hub.catalogue.models import DATABASE_ONLY, FOREIGN_TABLES
from hub.errors import ConfigurationError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

# Execution option that marks a connection as a writer; SQLite then takes the write lock up
# front (BEGIN IMMEDIATE) instead of failing when a read transaction later tries to write.
WRITE = "catalogue_write"

# Seconds a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT = 30.0

# Any fixed number: serialises concurrent upgrades of one PostgreSQL database across processes.
_MIGRATION_LOCK = 0x6875_6263_6174  # "hubcat"


def database_url(value: str | URL) -> URL:
    """Parse a database URL; a bare ``postgresql://`` means the installed psycopg 3 driver."""
    try:
        url = sa.make_url(value)
    except ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL: {exc}") from exc
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def create_engine(value: str | URL) -> Engine:
    """An engine for the catalogue, safe to share between the web server's threads."""
    url = database_url(value)
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        return sa.create_engine(url, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise ConfigurationError(f"unsupported database URL {_safe(url)}: {exc}") from exc


def _sqlite_engine(url: URL) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which opens transactions
        # lazily and so cannot be told to take the write lock early; "begin" below does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            _enable_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _enable_wal(cursor: Any) -> None:
    """WAL lets readers proceed while one thread writes; a no-op for in-memory databases.

    Switching a new file to WAL needs an exclusive lock, which SQLite does not wait for with its
    busy handler: several processes opening a fresh catalogue at once retry here instead.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic hook: leave out database objects the models deliberately do not describe."""
    if reflected and compare_to is None:
        # the audit tables share the database and the migration chain, not the catalogue's models
        if type_ == "table" and (name in FOREIGN_TABLES or name in AUDIT_TABLES):
            return False
        table = getattr(obj, "table", None)
        if (type_, name) in DATABASE_ONLY and getattr(table, "name", None) == "sources":
            return False
    return True


def alembic_config(value: str | URL | None = None, *, connection: Connection | None = None) -> Config:
    """An alembic configuration for the catalogue, with no ini file behind it."""
    # alembic is imported where it is used: the audit writer process opens databases without it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as attributes, not as the ini option, so that '%' in a password is not
    # taken for configparser interpolation.
    if value is not None:
        config.attributes["database_url"] = database_url(value)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision the code expects the database to be at."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise RuntimeError("the catalogue has no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(value: str | URL) -> None:
    """Create the catalogue's schema or bring it up to date; safe to run on every start."""
    engine = create_engine(value)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine) -> None:
    """Run the migrations through an existing engine (an in-memory SQLite database needs it)."""
    try:
        # One transaction for the whole upgrade: on PostgreSQL DDL is transactional, and on
        # SQLite the IMMEDIATE lock makes a second process wait and then find nothing to do.
        with engine.execution_options(**{WRITE: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            from alembic import command

            command.upgrade(alembic_config(engine.url, connection=connection), "head")
    except DBAPIError as exc:
        raise ConfigurationError(
            f"cannot prepare the catalogue database {_safe(engine.url)}: {exc.orig}"
        ) from exc


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)
