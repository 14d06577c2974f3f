"""Revisions of the catalogue schema, oldest first."""
