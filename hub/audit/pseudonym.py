"""Pseudonymising data subject ids: keyed HMAC-SHA-256, the key from an environment variable.

The same id always gives the same pseudonym under one key, so a steward can look a subject up
by giving the id in clear; without the key the pseudonym cannot be reversed or recomputed. The
key never appears in the configuration file, only the variable's name.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from hub.audit.errors import AuditUnavailable
from hub.errors import ConfigurationError

MIN_KEY_BYTES = 16


class Pseudonymiser:
    """Turns data subject ids into pseudonyms; refuses (deny by default) when it has no key."""

    def __init__(self, key: bytes | None, variable: str) -> None:
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"the pseudonymisation key in {variable} is too short: at least {MIN_KEY_BYTES} bytes"
            )
        self._key = key
        self.variable = variable

    @classmethod
    def from_environment(cls, variable: str) -> Pseudonymiser:
        """The key held by environment variable ``variable`` (which may be unset)."""
        value = os.environ.get(variable)
        return cls(value.encode("utf-8") if value else None, variable)

    @property
    def available(self) -> bool:
        """Whether a key is set."""
        return self._key is not None

    def pseudonym(self, subject_id: str) -> str:
        """The pseudonym of ``subject_id``; AuditUnavailable when there is no key to make it with."""
        if self._key is None:
            raise AuditUnavailable(
                "a data subject id cannot be logged: the hub has no pseudonymisation key",
                cause=f"environment variable {self.variable} is not set",
            )
        return hmac.new(self._key, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()
