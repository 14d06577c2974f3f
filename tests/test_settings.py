"""Settings: the YAML file, with HUB_* environment variables and explicit overrides on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings


def test_environment_overrides_one_nested_key_and_keeps_the_files_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "hub.yml"
    config.write_text(
        "server: {title: Delft, base_url: 'https://data.delft.nl'}\n"
        "audit: {database_url: 'sqlite:///audit.db', write_timeout: 7}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HUB_AUDIT__FSYNC", "false")
    monkeypatch.setenv("HUB_SERVER__TITLE", "Gemeente Delft")
    settings = Settings.load(config, server={"default_limit": 25})
    assert settings.audit.fsync is False
    assert settings.audit.database_url == "sqlite:///audit.db" and settings.audit.write_timeout == 7
    assert settings.server.title == "Gemeente Delft"
    assert settings.server.base_url == "https://data.delft.nl" and settings.server.default_limit == 25
