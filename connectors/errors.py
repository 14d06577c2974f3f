"""Errors a connector raises; the hub maps each onto an HTTP status for that collection only."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: something about the source itself went wrong."""

    def __init__(self, message: str, *, source_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.source_id = source_id


class UpstreamUnavailable(ConnectorError):
    """The source could not be reached or answered with a server error (502)."""


class UpstreamTimeout(ConnectorError):
    """The source did not answer within the configured timeout (504)."""


class UpstreamInvalidResponse(ConnectorError):
    """The source answered with something that is not what its contract promises (502)."""


class UnsupportedQuery(ConnectorError):
    """The query asks for something this source cannot do and the hub cannot make up (400)."""


class ConnectorConfigError(ConnectorError):
    """The registration's connection settings are unusable (a steward's error, 422)."""
