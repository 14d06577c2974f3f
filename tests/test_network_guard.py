"""Sources cannot make the hub reach loopback, link-local, metadata or private addresses
unless ``allowed_networks`` allows them: at registration, on every connection, and after the
DNS answer for a registered name has changed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors._http import send
from connectors._network import AddressNotAllowed, GuardedClient, NetworkPolicy, non_public
from connectors.errors import UpstreamInvalidResponse
from connectors.ogcapi_features import OgcApiFeaturesConnector, OgcApiFeaturesSettings
from hub.errors import ConfigurationError
from hub.settings import Settings
from tests.fixtures.hub import hub_settings, serve_hub
from tests.fixtures.oidc import steward
from tests.fixtures.upstream import PygeoapiUpstream

LOOPBACK_ONLY = ["127.0.0.1/32"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.10.0.3", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::fb", "a multicast address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("240.0.0.1", "a reserved address"),
        ("fec0::1", "a site-local address"),
        ("192.0.2.10", "a special-purpose address that is not publicly routable"),
        ("::ffff:127.0.0.1", "a loopback address (127.0.0.1) in IPv6 form"),
        ("::ffff:169.254.169.254", "a cloud metadata address (169.254.169.254) in IPv6 form"),
        ("2002:a00:1::1", "a private address (10.0.0.1) in IPv6 form"),
        ("64:ff9b::7f00:1", "a loopback address (127.0.0.1) in IPv6 form"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, reason: str) -> None:
    assert non_public(ip_address(address)) == reason
    with pytest.raises(AddressNotAllowed) as refused:
        NetworkPolicy().check(address, ip_address(address))
    assert "allowed_networks" in refused.value.message


@pytest.mark.parametrize(
    "address", ["145.12.1.1", "2a00:1450:400e::200e", "::ffff:145.12.1.1", "64:ff9b::910c:101"]
)
def test_public_addresses_pass(address: str) -> None:
    assert non_public(ip_address(address)) is None
    NetworkPolicy().check(address, ip_address(address))


def test_allowed_networks_open_exactly_their_ranges() -> None:
    policy = NetworkPolicy.allowing(["127.0.0.1/32", "10.20.0.0/16"])
    assert policy.refusal(ip_address("127.0.0.1")) is None
    assert policy.refusal(ip_address("::ffff:127.0.0.1")) is None  # the same host, written as IPv6
    assert policy.refusal(ip_address("10.20.3.4")) is None
    assert policy.refusal(ip_address("127.0.0.2")) == "a loopback address"
    assert policy.refusal(ip_address("10.21.0.1")) == "a private address"
    assert policy.refusal(ip_address("::1")) == "a loopback address"


def test_allowed_networks_setting_takes_cidr_ranges(tmp_path: Path) -> None:
    settings = Settings.load(allowed_networks=["10.0.0.0/8", "fd00::/8"])
    assert [str(n) for n in settings.allowed_networks] == ["10.0.0.0/8", "fd00::/8"]
    assert Settings.load().allowed_networks == []
    for wrong in (["10.0.0.1/8"], ["localhost"], "10.0.0.0/8"):
        with pytest.raises(ConfigurationError, match="allowed_networks"):
            Settings.load(allowed_networks=wrong)


# --- registrations ------------------------------------------------------------------------


@pytest.fixture
def strict_hub(tmp_path: Path) -> Iterator[str]:
    """A hub that allows no non-public address at all (the default)."""
    with serve_hub(hub_settings(tmp_path, [], allowed_networks=[])) as base_url:
        yield base_url


def ogcapi_source(url: str, source_id: str = "bron", **extra: Any) -> dict[str, Any]:
    """A registration of an OGC API Features source at ``url``."""
    return {
        "id": source_id,
        "title": "Bron",
        "connector": "ogcapi-features",
        "classification": "open",
        "url": url,
        "timeout": 3,
        **extra,
    }


def refused(response: httpx.Response, *phrases: str) -> str:
    """Assert a 422 problem whose detail names the address and how to allow it."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    assert "allowed_networks" in detail, detail
    for phrase in phrases:
        assert phrase in detail, detail
    return detail


def test_registrations_of_non_public_addresses_are_refused_even_with_force(
    strict_hub: str, upstream_pygeoapi: PygeoapiUpstream
) -> None:
    port = upstream_pygeoapi.base_url.rsplit(":", 1)[1]
    cases = [
        (f"http://127.0.0.1:{port}", ["the address 127.0.0.1", "a loopback address", "127.0.0.1/32"]),
        ("http://169.254.169.254/latest", ["169.254.169.254", "a cloud metadata address"]),
        ("http://10.0.0.1", ["10.0.0.1", "a private address"]),
        (f"http://[::1]:{port}", ["the address ::1", "a loopback address", "::1/128"]),
        (f"http://localhost:{port}", ["localhost resolves to", "a loopback address"]),
        (f"http://[::ffff:127.0.0.1]:{port}", ["in IPv6 form", "127.0.0.1/32"]),
        ("http://[fd00:ec2::254]/", ["a cloud metadata address"]),
    ]
    for url, phrases in cases:
        for force in (False, True):
            answer = steward().post(
                f"{strict_hub}/api/v1/sources", json=ogcapi_source(url), params={"force": force}
            )
            refused(answer, *phrases)
    assert steward().get(f"{strict_hub}/api/v1/sources").json() == []


def test_the_right_cidr_admits_the_registration(tmp_path: Path, upstream_pygeoapi: PygeoapiUpstream) -> None:
    settings = hub_settings(tmp_path, [], allowed_networks=LOOPBACK_ONLY)
    port = upstream_pygeoapi.base_url.rsplit(":", 1)[1]
    with serve_hub(settings) as hub:
        for source_id, url in (
            ("numeriek", f"http://127.0.0.1:{port}"),
            ("naam", f"http://localhost:{port}"),
            ("ipv6-vorm", f"http://[::ffff:127.0.0.1]:{port}"),
        ):
            created = steward().post(
                f"{hub}/api/v1/sources",
                json=ogcapi_source(
                    url, source_id, collections=[{"upstream": "afvalbakken", "id": source_id}]
                ),
            )
            assert created.status_code == 201, created.text
            assert created.json()["status"]["state"] == "healthy"
            items = httpx.get(f"{hub}/ogc/v1/collections/{source_id}/items", params={"limit": 2})
            assert items.status_code == 200, items.text
        # ::1 lies outside 127.0.0.1/32 ...
        refused(
            steward().post(f"{hub}/api/v1/sources", json=ogcapi_source(f"http://[::1]:{port}", "v6")), "::1"
        )
        # ... and 127.0.0.2 too, though it is loopback as well
        refused(steward().post(f"{hub}/api/v1/sources", json=ogcapi_source(f"http://127.0.0.2:{port}", "v4")))


def test_ipv6_loopback_admitted_by_its_range(tmp_path: Path) -> None:
    with serve_hub(hub_settings(tmp_path, [], allowed_networks=["::1/128"])) as hub:
        port = hub.rsplit(":", 1)[1]
        # nothing need listen: with force, a reachable-but-down source is registered unhealthy
        created = steward().post(
            f"{hub}/api/v1/sources",
            json=ogcapi_source(f"http://[::1]:{int(port) + 1}", collections=["x"]),
            params={"force": True},
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"]["state"] == "unhealthy"
        assert "allowed_networks" not in created.json()["status"]["error"]


def test_postgis_hosts_are_checked_too(strict_hub: str) -> None:
    def postgis(dsn: str, source_id: str) -> dict[str, Any]:
        return {
            "id": source_id,
            "title": "Tabel",
            "connector": "postgis",
            "classification": "open",
            "dsn": dsn,
            "table": "public.panden",
        }

    url = f"{strict_hub}/api/v1/sources"
    refused(steward().post(url, json=postgis("postgresql://gis@10.1.2.3:5432/bgt", "a")), "10.1.2.3")
    refused(steward().post(url, json=postgis("postgresql://gis@localhost/bgt", "b")), "localhost resolves to")
    refused(steward().post(url, json=postgis("postgresql://gis@/bgt", "c")), "local socket")
    hidden = steward().post(url, json=postgis("postgresql://gis@db.example.org/bgt?host=10.0.0.5", "d"))
    assert hidden.status_code == 422, hidden.text
    assert "host, hostaddr or service" in hidden.json()["detail"]


def test_postgis_connects_to_the_checked_address_not_the_name(
    tmp_path: Path, postgis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors._network as network

    database = postgis_server.create_database("guarded")
    with postgis_server.connect("guarded") as conn:
        conn.execute("CREATE TABLE panden (id integer PRIMARY KEY, geom geometry(Point, 4326))")
        conn.execute("INSERT INTO panden VALUES (1, ST_SetSRID(ST_MakePoint(4.9, 52.37), 4326))")
    assert "@127.0.0.1:" in database
    # a name only the hub's resolver knows: libpq can reach the database only through the
    # address the hub checked and handed over (hostaddr), never by resolving the name itself
    monkeypatch.setattr(network, "_getaddrinfo", _Resolver(["127.0.0.1"]))
    dsn = database.replace("postgresql+psycopg://", "postgresql://").replace(
        "@127.0.0.1:", "@db.gemeente.test:"
    )
    source = {"id": "panden", "title": "Panden", "connector": "postgis", "classification": "open"}
    with serve_hub(hub_settings(tmp_path, [], allowed_networks=LOOPBACK_ONLY)) as hub:
        created = steward().post(
            f"{hub}/api/v1/sources", json={**source, "dsn": dsn, "table": "public.panden"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"]["state"] == "healthy"
        items = httpx.get(f"{hub}/ogc/v1/collections/panden/items").json()
        assert [f["id"] for f in items["features"]] == [1]


# --- every connection, every hop ----------------------------------------------------------


class _Redirecting(BaseHTTPRequestHandler):
    """Answers every GET with a redirect to ``target`` (set per server)."""

    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.server.target)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def redirecting_server(target: str) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that redirects every request to ``target``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    server.target = target  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_each_redirect_hop_is_checked_by_the_transport() -> None:
    with redirecting_server("http://127.0.0.2:9/next") as url:

        async def follow() -> None:
            async with GuardedClient(NetworkPolicy.allowing(LOOPBACK_ONLY), follow_redirects=True) as http:
                await http.get(f"{url}/start", timeout=5)

        with pytest.raises(AddressNotAllowed, match=r"127\.0\.0\.2"):
            asyncio.run(follow())


def test_a_source_redirecting_to_a_private_address_is_refused() -> None:
    with redirecting_server("http://10.0.0.1/latest/meta-data/") as url:

        async def fetch() -> None:
            async with GuardedClient(NetworkPolicy.allowing(LOOPBACK_ONLY)) as http:
                await send(http, "GET", f"{url}/collections", source_id="bron", seconds=5)

        with pytest.raises(UpstreamInvalidResponse, match="another host"):
            asyncio.run(fetch())


class _Resolver:
    """A DNS whose answer for a name changes, as an attacker's does in a rebinding attack."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return list(self.answers)


def test_dns_rebinding_is_caught_on_the_connection(upstream_pygeoapi: PygeoapiUpstream) -> None:
    port = int(upstream_pygeoapi.base_url.rsplit(":", 1)[1])
    resolver = _Resolver(["145.12.1.1"])  # public when the registration is checked
    policy = NetworkPolicy.allowing([], resolver=resolver)

    async def scenario() -> AddressNotAllowed:
        async with GuardedClient(policy) as http:
            connector = OgcApiFeaturesConnector(
                OgcApiFeaturesSettings(url=f"http://rebind.example:{port}"), source_id="bron", http=http
            )
            await connector.check_network(policy)  # what registration does: passes
            resolver.answers = ["145.12.1.1", "127.0.0.1"]  # then the name points home
            with pytest.raises(AddressNotAllowed) as caught:
                await connector.open()
                await connector.describe()
            return caught.value

    error = asyncio.run(scenario())
    assert error.source_id == "bron"
    assert "rebind.example resolves to 127.0.0.1" in error.message
    assert resolver.asked == 2


def test_a_name_that_turns_private_after_registration_answers_502(
    tmp_path: Path, upstream_pygeoapi: PygeoapiUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors._network as network

    port = int(upstream_pygeoapi.base_url.rsplit(":", 1)[1])
    resolver = _Resolver(["145.12.1.1"])
    monkeypatch.setattr(network, "_getaddrinfo", resolver)
    # served unprobed from the configuration, so nothing connects while the name is public
    source = ogcapi_source(
        f"http://rebind.example:{port}", collections=[{"upstream": "afvalbakken", "id": "bakken"}]
    )
    settings = hub_settings(tmp_path, [source], allowed_networks=[], probe_on_start=False)
    with serve_hub(settings) as hub:
        assert httpx.get(f"{hub}/ogc/v1/collections/bakken").status_code == 200
        resolver.answers = ["127.0.0.1"]
        answer = httpx.get(f"{hub}/ogc/v1/collections/bakken/items", timeout=30)
        assert answer.status_code == 502, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "rebind.example resolves to 127.0.0.1, a loopback address" in answer.json()["detail"]
        # the probe reports it as the source's health, too
        probed = steward().post(f"{hub}/api/v1/sources/bron/probe")
        assert probed.json()["state"] == "unhealthy"
        assert "allowed_networks" in probed.json()["error"]
