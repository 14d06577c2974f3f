"""Shared test configuration; fixtures live in ``tests/fixtures`` as pytest plugins."""

pytest_plugins: list[str] = [
    "tests.fixtures.postgis",
    "tests.fixtures.upstream",
    "tests.fixtures.gokoala",
    "tests.fixtures.mapserver",
]
