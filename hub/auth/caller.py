"""The authenticated (or anonymous) caller of a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Identity and entitlements read from a validated token; no subject means anonymous."""

    subject: str | None = None
    issuer: str | None = None
    client: str | None = None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        """Whether the request carried no token."""
        return self.subject is None


ANONYMOUS = Caller()
