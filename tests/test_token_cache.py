"""Tokens found valid are accepted again without verifying, but never past what verifying them
would allow: their expiry, and the keys the issuer publishes.

The validator fetches the keys of a real issuer on loopback over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from hub.auth.tokens import TokenValidator
from hub.errors import Unauthorized
from hub.settings import AuthSettings
from tests.fixtures.oidc import LoopbackIssuer, issuer


@pytest.fixture
def own_issuer() -> Iterator[LoopbackIssuer]:
    with issuer() as own:
        yield own


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_a_remembered_token_is_refused_once_it_expires(
    own_issuer: LoopbackIssuer, http: httpx.AsyncClient
) -> None:
    validator = TokenValidator(AuthSettings(**own_issuer.auth_settings(leeway_seconds=0)), http)
    expires = int(time.time()) + 2
    token = own_issuer.mint(sub="short-lived", roles=["medewerker"], exp=expires)

    first = await validator.validate(token)
    again = await validator.validate(token)
    assert first.subject == again.subject == "short-lived"
    assert again.roles == frozenset({"medewerker"})

    await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
    with pytest.raises(Unauthorized):
        await validator.validate(token)


async def test_a_remembered_token_is_verified_again_when_the_keys_change(
    own_issuer: LoopbackIssuer, http: httpx.AsyncClient
) -> None:
    settings = AuthSettings(**own_issuer.auth_settings(jwks_cache_seconds=3600, jwks_refresh_floor_seconds=0))
    validator = TokenValidator(settings, http)
    old = own_issuer.mint(sub="old-key", roles=["medewerker"])
    assert (await validator.validate(old)).subject == "old-key"
    assert (await validator.validate(old)).subject == "old-key"
    fetched = own_issuer.jwks_requests

    own_issuer.rotate()  # the old key is withdrawn from the JWKS
    new = own_issuer.mint(sub="new-key")
    assert (await validator.validate(new)).subject == "new-key"
    assert own_issuer.jwks_requests == fetched + 1

    # accepted a moment ago, but signed with a key the issuer no longer publishes
    with pytest.raises(Unauthorized):
        await validator.validate(old)


async def test_remembered_tokens_do_not_keep_stale_keys_alive(
    own_issuer: LoopbackIssuer, http: httpx.AsyncClient
) -> None:
    settings = AuthSettings(**own_issuer.auth_settings(jwks_cache_seconds=0, jwks_refresh_floor_seconds=0))
    validator = TokenValidator(settings, http)
    token = own_issuer.mint(sub="someone")
    await validator.validate(token)
    fetched = own_issuer.jwks_requests

    # with keys that are always due for a refresh, every use of the token fetches them again
    await validator.validate(token)
    await validator.validate(token)
    assert own_issuer.jwks_requests == fetched + 2

    own_issuer.rotate()
    with pytest.raises(Unauthorized):
        await validator.validate(token)


async def test_a_refused_token_stays_refused(own_issuer: LoopbackIssuer, http: httpx.AsyncClient) -> None:
    validator = TokenValidator(AuthSettings(**own_issuer.auth_settings()), http)
    wrong_audience = own_issuer.mint(sub="someone", aud="another-api")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await validator.validate(wrong_audience)
    # a valid token after the refused one is still accepted
    assert (await validator.validate(own_issuer.mint(sub="someone"))).subject == "someone"
