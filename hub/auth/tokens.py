"""Validating OIDC bearer tokens against the issuer's published signing keys.

Keys come from the issuer's discovery document and JWKS, are cached, and are fetched again when a
token names a key the cache does not hold (key rotation), at most once per
``jwks_refresh_floor_seconds`` so that tokens with made-up key ids cannot make the hub hammer the
issuer.

A client sends the same token with every request until it expires, and verifying its signature
is most of what a request to a small page costs. Tokens found valid are therefore remembered
with the caller they name, and accepted again without verifying, for as long as the keys they
were verified with are the hub's current ones and the token has not expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from hub.auth.caller import Caller
from hub.errors import ServiceUnavailable, Unauthorized
from hub.settings import AuthSettings

LOG = logging.getLogger(__name__)

_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})

ACCEPTED_TOKENS_KEPT = 4096
"""Valid tokens remembered: the active callers of a busy hub; beyond that the least recently
used is forgotten (and verified again when it returns)."""


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A token that was found valid, and what keeps it so."""

    caller: Caller
    keys: KeySet
    """The key set that verified it: once the keys are fetched again, it is verified again, so a
    token signed with a key the issuer withdrew is refused."""
    expires: float
    """Wall-clock time (``exp`` plus the leeway) from which validation would refuse it."""


def _claim(claims: dict[str, Any], dotted: str) -> Any:
    value: Any = claims
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(str(item) for item in value)
    return frozenset()


class TokenValidator:
    """Turns a bearer token into a :class:`Caller`, or refuses it with 401."""

    def __init__(self, settings: AuthSettings, http: httpx.AsyncClient):
        self._settings = settings
        self._http = http
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._accepted: OrderedDict[bytes, _Accepted] = OrderedDict()
        """Valid tokens by their SHA-256 digest, which bounds the memory whatever their size."""
        self._claims = jwt.JWTClaimsRegistry(
            leeway=settings.leeway_seconds,
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def validate(self, token: str) -> Caller:
        """The caller a valid token names; ``Unauthorized`` for anything else."""
        digest = hashlib.sha256(token.encode()).digest()
        accepted = self._accepted.get(digest)
        if accepted is not None:
            if accepted.keys is self._keys and not self._stale() and time.time() < accepted.expires:
                self._accepted.move_to_end(digest)
                return accepted.caller
            del self._accepted[digest]
        caller, keys, expires = await self._verify(token)
        self._accepted[digest] = _Accepted(caller, keys, expires)
        if len(self._accepted) > ACCEPTED_TOKENS_KEPT:
            self._accepted.popitem(last=False)
        return caller

    def _stale(self) -> bool:
        """Whether the keys are due to be fetched again."""
        return time.monotonic() - self._fetched_at > self._settings.jwks_cache_seconds

    async def _verify(self, token: str) -> tuple[Caller, KeySet, float]:
        """Check the token's signature and claims: the caller, the keys used and when it expires."""
        if token.count(".") != 2:  # compact JWS only; encrypted (JWE) tokens are not accepted
            raise Unauthorized("the bearer token is not a signed JWT", invalid_token=True)
        try:
            header = jws.extract_compact(token.encode()).headers()  # unverified, only to pick the key
        except (JoseError, ValueError) as exc:
            raise Unauthorized("the bearer token is not a JWT", invalid_token=True) from exc
        algorithm = header.get("alg")
        if algorithm not in self._settings.algorithms:
            raise Unauthorized(f"tokens signed with {algorithm!r} are not accepted", invalid_token=True)
        keys = await self._keyset(header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=list(self._settings.algorithms))
            self._claims.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise Unauthorized(f"the bearer token is not valid: {_reason(exc)}", invalid_token=True) from exc
        claims = decoded.claims
        caller = Caller(
            subject=str(claims["sub"]),
            issuer=str(claims["iss"]),
            client=str(claims.get("azp") or claims.get("client_id") or "") or None,
            roles=_strings(_claim(claims, self._settings.roles_claim)),
            scopes=_strings(_claim(claims, self._settings.scope_claim)),
        )
        # exp is essential and checked to be a number by the claims registry above
        return caller, keys, float(claims["exp"]) + self._settings.leeway_seconds

    async def _keyset(self, kid: Any) -> KeySet:
        keys = self._keys
        stale = self._stale()
        unknown_kid = keys is not None and kid is not None and not _has_kid(keys, kid)
        if keys is None or stale or unknown_kid:
            async with self._lock:
                since = time.monotonic() - self._fetched_at
                if self._keys is None or (
                    since >= self._settings.jwks_refresh_floor_seconds and (stale or unknown_kid)
                ):
                    self._keys = await self._fetch_keys()
                    self._fetched_at = time.monotonic()
            keys = self._keys
        assert keys is not None
        return keys

    async def _fetch_keys(self) -> KeySet:
        try:
            jwks_url = self._settings.jwks_url or await self._discover_jwks_url()
            response = await self._http.get(jwks_url, timeout=10)
            response.raise_for_status()
            published = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            LOG.warning("cannot fetch the issuer's signing keys: %s", exc)
            if self._keys is not None:
                return self._keys  # keep validating with the keys we have
            raise ServiceUnavailable("the token issuer's signing keys cannot be fetched") from exc
        # Symmetric ("oct") keys are never accepted: with them a public key could be used as an
        # HMAC secret (algorithm confusion).
        usable = [
            key for key in published if isinstance(key, dict) and key.get("kty") in _ASYMMETRIC_KEY_TYPES
        ]
        return KeySet.import_key_set({"keys": usable})

    async def _discover_jwks_url(self) -> str:
        discovery = self._settings.discovery_url or (
            self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        response = await self._http.get(discovery, timeout=10)
        response.raise_for_status()
        document = response.json()
        if document.get("issuer") != self._settings.issuer:
            raise ValueError(f"the discovery document names issuer {document.get('issuer')!r}")
        return str(document["jwks_uri"])


def _has_kid(keys: KeySet, kid: Any) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _reason(exc: Exception) -> str:
    return getattr(exc, "description", None) or exc.__class__.__name__
