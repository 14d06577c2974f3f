"""Alembic migrations of the catalogue; run them with :func:`hub.catalogue.database.upgrade`."""
