"""Hub settings: a YAML configuration file, overridden by ``HUB_*`` environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigurationError


class ServerSettings(BaseModel):
    """How the hub presents itself to clients."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        "http://localhost:8000",
        description="Public URL of the hub, without trailing slash; used in every link",
    )
    title: str = "Urban twin data hub"
    description: str = "Federated OGC API over the sources of a Dutch municipality"
    default_limit: int = Field(10, ge=1)
    max_limit: int = Field(1000, ge=1)
    native_geojson: bool = Field(
        True,
        description="Write GeoJSON items and item documents in the hub; false: through pygeoapi",
    )
    max_scan_features: int = Field(
        50_000,
        ge=1,
        description="Most features the hub reads from a source to filter or sort locally",
    )


# Absolute IRIs only: a relative or blank value would make the catalogue's RDF unparsable.
_IRI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s<>\"{}|\\^`]+$", re.I)
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class CatalogueSettings(BaseModel):
    """The organisation that runs the hub, as the DCAT catalogue names it, and the defaults the
    catalogue uses where a registration says nothing."""

    model_config = ConfigDict(extra="forbid")

    publisher: str | None = Field(
        None, description="Name of the organisation that runs the hub; the server title when absent"
    )
    publisher_uri: str | None = Field(
        None, description="URI of that organisation (its TOOI identifier, say); minted when absent"
    )
    contact_name: str | None = Field(None, description="Contact point of the hub; the publisher when absent")
    contact_email: str | None = None
    contact_url: str | None = None
    licence: str = Field(
        "http://publications.europa.eu/resource/authority/licence/CC0",
        description="Licence of the hub's APIs, and of sources whose registration names none",
    )
    theme: list[str] = Field(
        default_factory=lambda: ["http://publications.europa.eu/resource/authority/data-theme/REGI"],
        min_length=1,
        description="Theme URIs or labels of the services, and of sources whose registration names none",
    )
    language: str = Field(
        "nl", pattern=r"^[a-z]{2}$", description="ISO 639-1 language of titles and descriptions"
    )

    @field_validator("publisher_uri", "contact_url", "licence")
    @classmethod
    def _absolute_iri(cls, value: str | None) -> str | None:
        if value is not None and not _IRI.match(value):
            raise ValueError(f"{value!r} is not an absolute URI")
        return value

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class Settings(BaseSettings):
    """Everything the hub needs to start; sources come from the ``sources`` list of the file."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_nested_delimiter="__", extra="forbid")

    database_url: str = Field("sqlite:///hub.db", description="SQLAlchemy URL of the catalogue database")
    config_file: Path | None = Field(None, description="YAML configuration file that was read")
    server: ServerSettings = Field(default_factory=ServerSettings)
    catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    sources: list[dict[str, Any]] = Field(
        default_factory=list, description="Source registrations seeded at start-up"
    )
    probe_interval: float = Field(
        300.0, ge=0, description="Seconds between background health probes (0: never)"
    )
    catalogue_poll_interval: float = Field(
        2.0, gt=0, description="Seconds between checks of the catalogue for changes by others"
    )
    probe_on_start: bool = Field(True, description="Probe seeded sources in the background")

    @classmethod
    def load(cls, config_file: Path | str | None = None, **overrides: Any) -> Settings:
        """Read the YAML file (if any); ``HUB_*`` variables and ``overrides`` take precedence."""
        from_file: dict[str, Any] = {}
        if config_file is not None:
            path = Path(config_file)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except OSError as exc:
                raise ConfigurationError(f"cannot read configuration file {path}: {exc}") from exc
            except yaml.YAMLError as exc:
                raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigurationError(f"{path} must hold a mapping at the top level")
            from_file = loaded
            from_file["config_file"] = path.resolve()
        try:
            from_env = cls()
            merged = {
                **from_file,
                **from_env.model_dump(include=from_env.model_fields_set),
                **overrides,
            }
            settings = cls(**merged)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid configuration: {exc}") from exc
        return settings

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the configuration, relative to the configuration file's folder."""
        path = Path(value)
        if path.is_absolute() or self.config_file is None:
            return path
        return (self.config_file.parent / path).resolve()
