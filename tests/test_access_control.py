"""Access control through a running hub: tokens, collection policies, protected properties.

The hub validates tokens of a real issuer on loopback (discovery document and JWKS over HTTP).
The protected source is the BAG's ligplaatsen (houseboat moorings: home addresses), read
independently from the GeoPackage to know every value that must stay hidden.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as secrets_module
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pyogrio.raw
import pytest
from joserfc.jwk import RSAKey

from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served
from tests.fixtures.oidc import LoopbackIssuer, bearer, issuer, shared_issuer, steward, unsigned_token

PSEUDONYM_KEY_ENV = "ACCESS_TEST_PSEUDONYM_KEY"
PROTECTED = "ligplaatsen"
OPEN = "afvalbakken"

# Which roles may see which protected property, and under which processing activity.
PROTECTED_FIELDS = {
    "postcode": {"classification": "personal", "roles": ["zaakbehandelaar"]},
    "huisnummer": {"classification": "personal", "roles": ["zaakbehandelaar"]},
    "document": {
        "classification": "confidential",
        "roles": ["medewerker", "zaakbehandelaar"],
        "activities": ["bezwaarbehandeling"],
    },
}
ACTIVITIES = [
    {
        "id": "vergunningverlening",
        "uri": "https://example.org/verwerkingsregister/vergunningverlening",
        "name": "Vergunningverlening",
        "roles": ["zaakbehandelaar"],
        "retention_category": "12.1.8",
    },
    {
        "id": "bezwaarbehandeling",
        "uri": "https://example.org/verwerkingsregister/bezwaarbehandeling",
        "name": "Bezwaarbehandeling",
        "roles": ["medewerker", "zaakbehandelaar"],
    },
]


@dataclass(frozen=True)
class Case:
    """A caller (roles), the purpose it names, and the protected properties it must see."""

    name: str
    roles: tuple[str, ...] | None  # None: anonymous
    purpose: str | None
    visible: frozenset[str]


CASES = [
    Case("medewerker", ("medewerker",), None, frozenset()),
    Case("medewerker-bezwaar", ("medewerker",), "bezwaarbehandeling", frozenset({"document"})),
    Case("zaakbehandelaar", ("medewerker", "zaakbehandelaar"), None, frozenset()),
    Case(
        "zaakbehandelaar-vergunning",
        ("medewerker", "zaakbehandelaar"),
        "vergunningverlening",
        frozenset({"postcode", "huisnummer"}),
    ),
    Case(
        "zaakbehandelaar-bezwaar",
        ("medewerker", "zaakbehandelaar"),
        "bezwaarbehandeling",
        frozenset({"postcode", "huisnummer", "document"}),
    ),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = require_shared()
    sources = [
        {
            "id": OPEN,
            "title": "Afvalbakken",
            "connector": "file",
            "classification": "open",
            "path": str(data / "municipal" / "amsterdam_afvalbakken_2013.geojson"),
        },
        {
            "id": "ligplaatsen",
            "title": "Ligplaatsen",
            "connector": "file",
            "classification": "personal",
            "path": str(data / "bag" / "amsterdam_bag_adressen.gpkg"),
            "collections": [{"upstream": "ligplaatsen", "id": PROTECTED}],
            "access": {"roles": ["medewerker"]},
            "protected_fields": PROTECTED_FIELDS,
            "subject_field": "nummer_id",
        },
    ]
    # the data subjects (subject_field) are logged pseudonymised with a key from the environment
    os.environ[PSEUDONYM_KEY_ENV] = secrets_module.token_hex(32)
    settings = hub_settings(
        tmp_path_factory.mktemp("hub"),
        sources,
        processing_activities=ACTIVITIES,
        cors={"allow_origins": ["https://viewer.example.org"]},
        audit={"pseudonym_key_env": PSEUDONYM_KEY_ENV},
    )
    try:
        with serve_hub(settings) as base_url:
            wait_until_served(base_url, OPEN)
            wait_until_served(base_url, PROTECTED)
            yield base_url
    finally:
        del os.environ[PSEUDONYM_KEY_ENV]


@cache
def ligplaatsen() -> dict[str, list[Any]]:
    """Every value per property of the protected layer, read from the GeoPackage itself."""
    path = require_shared() / "bag" / "amsterdam_bag_adressen.gpkg"
    meta, _, _, columns = pyogrio.raw.read(path, layer="ligplaatsen")
    return {name: list(column) for name, column in zip(meta["fields"], columns, strict=True)}


def secrets(field: str) -> set[str]:
    """Values of ``field`` distinctive enough that finding one in a response means a leak."""
    return {str(v) for v in ligplaatsen()[field] if v is not None and len(str(v)) >= 6}


def headers_for(case: Case) -> dict[str, str]:
    return {} if case.roles is None else bearer(sub=f"user-{case.name}", roles=list(case.roles))


def params_for(case: Case, **params: Any) -> dict[str, Any]:
    return {**params, **({"purpose": case.purpose} if case.purpose else {})}


# every representation a caller can get of the protected collection
OUTPUTS = [
    ("items", {"f": "json", "limit": 100}),
    ("items", {"f": "html", "limit": 100}),
    ("items", {"f": "jsonld", "limit": 100}),
    ("items", {"f": "csv", "limit": 100}),
    ("items/{id}", {"f": "json"}),
    ("items/{id}", {"f": "html"}),
    ("items/{id}", {"f": "jsonld"}),
    ("queryables", {"f": "json"}),
    ("queryables", {"f": "html"}),
    ("schema", {"f": "json"}),
    ("", {"f": "json"}),
    ("", {"f": "html"}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_protected_properties_never_appear_in_any_output(hub: str, case: Case) -> None:
    hidden = set(PROTECTED_FIELDS) - case.visible
    collection = f"{hub}/ogc/v1/collections/{PROTECTED}"
    first = httpx.get(f"{collection}/items", params={"limit": 1}, headers=headers_for(case)).json()
    for path, params in OUTPUTS:
        url = f"{collection}/{path.format(id=first['features'][0]['id'])}".rstrip("/")
        response = httpx.get(url, params=params_for(case, **params), headers=headers_for(case), timeout=30)
        assert response.status_code == 200, (url, params, response.text[:300])
        body = response.text
        for field in hidden:
            assert f'"{field}"' not in body, (case.name, url, params, field)
            leaked = {value for value in secrets(field) if value in body}
            assert not leaked, (case.name, url, params, field, sorted(leaked)[:3])
        if path == "items" and params["f"] in ("json", "csv"):
            for field in case.visible:  # what the caller may see is really there
                assert any(value in body for value in secrets(field) or {str(ligplaatsen()[field][0])})
    openapi = httpx.get(f"{hub}/ogc/v1/openapi.json", headers=headers_for(case), timeout=30).text
    for field in hidden:
        assert f'"{field}"' not in openapi


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("field", sorted(PROTECTED_FIELDS))
def test_a_hidden_property_cannot_be_filtered_sorted_or_selected(hub: str, case: Case, field: str) -> None:
    items = f"{hub}/ogc/v1/collections/{PROTECTED}/items"
    native = ligplaatsen()[field][0]
    native = native.item() if hasattr(native, "item") else native  # numpy scalar to Python
    value = str(native)
    literal = value if isinstance(native, int) else f"'{value}'"
    attempts = [
        {"filter": f"{field} = {literal}"},
        {
            "filter": json.dumps({"op": "=", "args": [{"property": field}, native]}),
            "filter-lang": "cql2-json",
        },
        {"sortby": field},
        {"sortby": f"-{field}"},
        {"properties": f"nummer_id,{field}"},
        {field: value},
    ]
    for attempt in attempts:
        response = httpx.get(items, params=params_for(case, **attempt), headers=headers_for(case), timeout=30)
        if field in case.visible:
            assert response.status_code == 200, (attempt, response.text)
            features = response.json()["features"]
            if "filter" in attempt or field in attempt:
                assert features and all(str(f["properties"][field]) == value for f in features)
        else:
            assert response.status_code == 400, (case.name, attempt, response.status_code)
            assert response.headers["content-type"].startswith("application/problem+json")


def test_anonymous_callers_reach_open_collections_only(hub: str) -> None:
    assert httpx.get(f"{hub}/ogc/v1/collections/{OPEN}/items").status_code == 200
    listed = {
        c["id"] for c in httpx.get(f"{hub}/ogc/v1/collections", params={"f": "json"}).json()["collections"]
    }
    assert listed == {OPEN}
    for path in ("", "/items", "/items/1", "/queryables", "/schema"):
        response = httpx.get(f"{hub}/ogc/v1/collections/{PROTECTED}{path}")
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"].startswith("application/problem+json")
    assert PROTECTED not in httpx.get(f"{hub}/ogc/v1/openapi.json").text


def test_a_caller_without_the_collections_roles_is_forbidden(hub: str) -> None:
    headers = bearer(sub="bezoeker", roles=["bezoeker"], scope="profile")
    assert httpx.get(f"{hub}/ogc/v1/collections/{PROTECTED}/items", headers=headers).status_code == 403
    listed = httpx.get(f"{hub}/ogc/v1/collections", params={"f": "json"}, headers=headers).json()
    assert {c["id"] for c in listed["collections"]} == {OPEN}
    assert httpx.get(f"{hub}/ogc/v1/collections/{OPEN}/items", headers=headers).status_code == 200


def test_purposes_must_be_registered_and_allowed(hub: str) -> None:
    items = f"{hub}/ogc/v1/collections/{PROTECTED}/items"
    medewerker = bearer(sub="m", roles=["medewerker"])
    assert httpx.get(items, params={"purpose": "nieuwsgierigheid"}, headers=medewerker).status_code == 400
    assert httpx.get(items, params={"purpose": "vergunningverlening"}, headers=medewerker).status_code == 403
    assert (
        httpx.get(
            f"{hub}/ogc/v1/collections/{OPEN}/items", params={"purpose": "vergunningverlening"}
        ).status_code
        == 401
    )


def test_links_keep_the_purpose(hub: str) -> None:
    headers = bearer(sub="z", roles=["medewerker", "zaakbehandelaar"])
    page = httpx.get(
        f"{hub}/ogc/v1/collections/{PROTECTED}/items",
        params={"purpose": "vergunningverlening", "limit": 10},
        headers=headers,
    ).json()
    following = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert "purpose=vergunningverlening" in following
    assert "postcode" in httpx.get(following, headers=headers).json()["features"][0]["properties"]


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["medewerker", "zaakbehandelaar"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _confused(issuer: LoopbackIssuer) -> str:
    """HS256 signed with the issuer's public key as the secret (algorithm confusion)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "kid": issuer.key.kid}).encode())
    payload = part(json.dumps(issuer.claims(roles=["medewerker"])).encode())
    secret = issuer.key.as_pem(private=False)
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{part(signature)}"


def test_invalid_tokens_are_refused_everywhere(hub: str) -> None:
    iss = shared_issuer()
    stranger = RSAKey.generate_key(2048, parameters={"kid": iss.key.kid})
    bad_tokens = {
        "tampered": _tamper(iss.mint(roles=["bezoeker"])),
        "expired": iss.mint(roles=["medewerker"], iat=1_600_000_000, nbf=1_600_000_000, exp=1_600_000_060),
        "not yet valid": iss.mint(roles=["medewerker"], nbf=2_000_000_000),
        "wrong audience": iss.mint(roles=["medewerker"], aud="another-api"),
        "wrong issuer": iss.mint(roles=["medewerker"], iss="https://evil.example.org"),
        "no expiry": iss.mint(roles=["medewerker"], exp=None),
        "no subject": iss.mint(roles=["medewerker"], sub=None),
        "foreign key": iss.mint(roles=["medewerker"], key=stranger),
        "alg none": unsigned_token(iss.claims(roles=["medewerker"])),
        "algorithm confusion": _confused(iss),
        "garbage": "not-a-token",
        "encrypted form": "a.b.c.d.e",
    }
    for name, token in bad_tokens.items():
        for url in (
            f"{hub}/ogc/v1/collections/{PROTECTED}/items",
            f"{hub}/ogc/v1/collections/{OPEN}/items",  # never downgraded to anonymous
            f"{hub}/api/v1/sources",
        ):
            response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (name, url, response.status_code)
            assert 'error="invalid_token"' in response.headers["www-authenticate"], name
    assert (
        httpx.get(
            f"{hub}/ogc/v1/collections/{OPEN}/items", headers={"Authorization": "Basic dTpw"}
        ).status_code
        == 401
    )


def test_signing_key_rotation_is_followed(tmp_path: Path) -> None:
    with issuer() as own:
        settings = hub_settings(
            tmp_path, [], auth=own.auth_settings(jwks_cache_seconds=3600, jwks_refresh_floor_seconds=0)
        )
        with serve_hub(settings) as base_url:
            sources = f"{base_url}/api/v1/sources"
            steward_token = own.mint(roles=["steward"])
            assert httpx.get(sources, headers={"Authorization": f"Bearer {steward_token}"}).status_code == 200
            fetched = own.jwks_requests
            own.rotate()
            rotated = own.mint(roles=["steward"])
            # a token with a key id the hub has not seen makes it fetch the keys again
            assert httpx.get(sources, headers={"Authorization": f"Bearer {rotated}"}).status_code == 200
            assert own.jwks_requests == fetched + 1
            # the retired key is gone from the JWKS: tokens it signed are refused from now on
            assert httpx.get(sources, headers={"Authorization": f"Bearer {steward_token}"}).status_code == 401


def test_the_management_api_is_for_stewards(hub: str) -> None:
    sources = f"{hub}/api/v1/sources"
    assert httpx.get(sources).status_code == 401
    assert httpx.get(sources, headers=bearer(sub="m", roles=["medewerker"])).status_code == 403
    assert steward().get(sources).status_code == 200
    # the API's own description stays public (NL API Design Rules)
    assert httpx.get(f"{hub}/api/v1/openapi.json").status_code == 200


def test_health_shows_others_only_what_they_may_read(hub: str) -> None:
    anonymous = httpx.get(f"{hub}/api/v1/health").json()
    assert [s["id"] for s in anonymous["sources"]] == [OPEN]
    assert all(s["error"] is None for s in anonymous["sources"])
    assert {s["id"] for s in steward().get(f"{hub}/api/v1/health").json()["sources"]} == {OPEN, "ligplaatsen"}


def test_browsers_on_allowed_origins_may_send_tokens(hub: str) -> None:
    items = f"{hub}/ogc/v1/collections/{PROTECTED}/items"
    preflight = httpx.options(
        items,
        headers={
            "Origin": "https://viewer.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://viewer.example.org"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    # an honest 401 the browser script can read, not an opaque failure or a 200 error page
    denied = httpx.get(items, headers={"Origin": "https://viewer.example.org"})
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == "https://viewer.example.org"
    assert "www-authenticate" in denied.headers["access-control-expose-headers"].lower()
    other = httpx.options(
        items, headers={"Origin": "https://evil.example.org", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in other.headers
